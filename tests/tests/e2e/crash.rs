//! kill -9 of a ward node while it records and replicates: every event it
//! answered "recorded" for survives and reaches the town exactly once.
//! The ward runs as its real binary, in its own process, so the kill is real.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use treem_proto::subject;
use treem_tests::wait_for;

use crate::system::{System, WAIT, observed};

/// A binary of the workspace, built next to this test binary by `cargo nextest run --workspace`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build the workspace binaries first (cargo build --workspace --bins)", path.display());
    path
}

fn spawn_ward(sys: &System, ward: &str) -> Child {
    let data = sys.path(&format!("ward-{ward}"));
    std::fs::create_dir_all(&data).unwrap();
    let _ = std::fs::remove_file(data.join("http.addr"));
    Command::new(bin("treem-ward"))
        .arg("serve")
        .env("TREEM_WARD_WARD", ward)
        .env("TREEM_WARD_DATA_DIR", &data)
        .env("TREEM_WARD_HTTP_ADDR", "127.0.0.1:0")
        .env("TREEM_WARD_NATS_URL", sys.nats.url())
        .env("TREEM_WARD_BACKOFF_MIN_MS", "20")
        .env("TREEM_WARD_BACKOFF_MAX_MS", "300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ward binary starts")
}

async fn ward_addr(sys: &System, ward: &str) -> String {
    let file = sys.path(&format!("ward-{ward}")).join("http.addr");
    let http = sys.http.clone();
    wait_for("ward binary serves HTTP", WAIT, || {
        let file = file.clone();
        let http = http.clone();
        async move {
            let addr = std::fs::read_to_string(&file).ok()?;
            http.get(format!("http://{addr}/health")).send().await.ok()?.status().is_success().then_some(addr)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_ward_mid_recording_and_replication_loses_nothing() {
    let sys = System::new().await;
    let town = sys.town().await;
    let mut child = spawn_ward(&sys, "25326");
    let addr = ward_addr(&sys, "25326").await;

    // Four writers record as fast as they can; we kill -9 mid-way.
    let recorded = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (http, addr, recorded, stop) = (sys.http.clone(), addr.clone(), recorded.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({"kind": "indicator.observed", "body": observed("16", 2022, (w * 1000 + i) % 500, 500)});
                let Ok(r) = http.post(format!("http://{addr}/api/v1/events")).json(&body).send().await else { break };
                if r.status().as_u16() != 201 {
                    break;
                }
                let v: Value = r.json().await.unwrap();
                recorded.lock().unwrap().insert(v["id"].as_str().unwrap().to_string());
            }
        }));
    }
    // Kill once the town has applied some of them, i.e. mid-replication.
    sys.town_applied(&town, "25326", 50).await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = recorded.lock().unwrap().clone();
    assert!(acknowledged.len() >= 50, "writers recorded {}", acknowledged.len());

    // Restart: the log holds every acknowledged event, and replication resumes.
    let mut child = spawn_ward(&sys, "25326");
    let addr = ward_addr(&sys, "25326").await;
    let status = sys.get(format!("http://{addr}/api/v1/status")).await;
    let last = status["last_seq"].as_u64().unwrap();
    let mut in_log = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = sys.get(format!("http://{addr}/api/v1/events?after={after}&limit=1000")).await;
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        for e in &page {
            in_log.insert(e["id"].as_str().unwrap().to_string());
            after = e["seq"].as_u64().unwrap();
        }
    }
    assert_eq!(in_log.len() as u64, last, "the log's seqs are contiguous 1..={last}");
    let lost: Vec<_> = acknowledged.difference(&in_log).collect();
    assert!(lost.is_empty(), "{} events answered 'recorded' are missing after kill -9: {lost:?}", lost.len());

    let w = sys.town_applied(&town, "25326", last).await;
    assert_eq!(w["applied"], last, "every event applied exactly once: {w}");
    let js = jetstream::new(sys.nats.connect().await);
    let mut stream = js.get_stream(subject::town_events_stream("70", "690")).await.unwrap();
    let url = format!("http://{addr}/api/v1/status");
    wait_for("ward sees everything acknowledged", WAIT, || {
        let http = sys.http.clone();
        let url = url.clone();
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            (v["acked_seq"] == last).then_some(())
        }
    })
    .await;
    assert_eq!(stream.info().await.unwrap().state.messages, last, "stream de-duplicated the re-sent events");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    town.shutdown().await;
}

fn spawn_town(sys: &System) -> Child {
    let data = sys.path("town");
    std::fs::create_dir_all(&data).unwrap();
    let _ = std::fs::remove_file(data.join("http.addr"));
    Command::new(bin("treem-town"))
        .arg("serve")
        .env("TREEM_TOWN_DATA_DIR", &data)
        .env("TREEM_TOWN_HTTP_ADDR", "127.0.0.1:0")
        .env("TREEM_TOWN_NATS_URL", sys.nats.url())
        .env("TREEM_TOWN_BATCH_SIZE", "10")
        .env("TREEM_TOWN_BACKOFF_MIN_MS", "20")
        .env("TREEM_TOWN_BACKOFF_MAX_MS", "300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("town binary starts")
}

async fn town_sync(sys: &System, addr: &str) -> Option<Value> {
    sys.http.get(format!("http://{addr}/api/v1/sync")).send().await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_town_mid_stream_counts_nothing_twice() {
    let sys = System::new().await;
    let mut town = spawn_town(&sys);
    let town_addr_file = sys.path("town").join("http.addr");
    let read_addr = || {
        let file = town_addr_file.clone();
        let http = sys.http.clone();
        async move {
            let addr = std::fs::read_to_string(&file).ok()?;
            http.get(format!("http://{addr}/health")).send().await.ok()?.status().is_success().then_some(addr)
        }
    };
    wait_for("town binary serves HTTP", WAIT, read_addr).await;
    let js = jetstream::new(sys.nats.connect().await);
    wait_for("town created its stream", WAIT, || {
        let js = js.clone();
        async move { js.get_stream(subject::town_events_stream("70", "690")).await.ok().map(|_| ()) }
    })
    .await;
    // Now the town goes down while two wards build a backlog.
    town.start_kill().unwrap();
    town.wait().await.unwrap();
    let a = sys.ward("25320").await;
    let b = sys.ward("25336").await;
    sys.record(&a, "population.reported", json!({"year": 2023, "figures": {"children_under_16": 100000}})).await;
    sys.record(&b, "population.reported", json!({"year": 2023, "figures": {"children_under_16": 100000}})).await;
    // Each case counts once in indicator 11a, so a double application would show.
    let n = 400u64;
    for i in 0..n {
        for w in [&a, &b] {
            let (status, resp) = sys
                .post(
                    format!("http://{}/api/v1/cases", w.http_addr),
                    json!({"identity": {"name": format!("Trẻ {i}"), "date_of_birth": "2012-05-05", "address": "ấp 1", "guardian": "G"},
                           "year": 2023, "category": "injury", "sex": if i % 2 == 0 { "female" } else { "male" }}),
                )
                .await;
            assert_eq!(status, 201, "{resp}");
        }
    }
    let want = n + 1;
    for w in [&a, &b] {
        let url = format!("http://{}/api/v1/status", w.http_addr);
        wait_for("the backlog is in the stream", WAIT, || {
            let (http, url) = (sys.http.clone(), url.clone());
            async move {
                let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                (v["acked_seq"] == want).then_some(())
            }
        })
        .await;
    }
    // Restart the town and kill -9 it as soon as it has applied part of the backlog.
    let mut town = spawn_town(&sys);
    let addr = wait_for("town binary serves HTTP", WAIT, read_addr).await;
    let deadline = std::time::Instant::now() + WAIT;
    let applied_at_kill = loop {
        let applied: u64 = match town_sync(&sys, &addr).await {
            Some(v) => v["wards"].as_array().map(|ws| ws.iter().filter_map(|w| w["last_seq_applied"].as_u64()).sum()).unwrap_or(0),
            None => 0,
        };
        if applied >= 1 {
            town.start_kill().unwrap();
            break applied;
        }
        assert!(std::time::Instant::now() < deadline, "town never started applying");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    town.wait().await.unwrap();
    tracing::info!(applied_at_kill, of = 2 * want, "killed the town mid-stream");
    assert!(applied_at_kill < 2 * want, "the town was killed after it had applied everything; the test needs it mid-stream");
    let mut town = spawn_town(&sys);
    let addr = wait_for("town binary serves HTTP again", WAIT, read_addr).await;
    wait_for("town applies both backlogs after kill -9", WAIT, || async {
        let v = town_sync(&sys, &addr).await?;
        let ws = v["wards"].as_array()?;
        let done = ws.iter().filter(|w| w["ward"] == "25320" || w["ward"] == "25336").all(|w| w["last_seq_applied"] == want);
        done.then_some(())
    })
    .await;
    let v = town_sync(&sys, &addr).await.unwrap();
    for w in v["wards"].as_array().unwrap().iter().filter(|w| w["ward"] == "25320" || w["ward"] == "25336") {
        assert_eq!(w["applied"], want, "{w}");
    }
    let ind = sys.get(format!("http://{addr}/api/v1/indicators?year=2023&code=11a")).await;
    let t = &ind["indicators"][0];
    assert_eq!((t["numerator"].as_u64(), t["denominator"].as_u64()), (Some(2 * n), Some(200000)), "each injury counted once: {t}");
    let cases = sys.get(format!("http://{addr}/api/v1/cases?year=2023")).await;
    assert_eq!(cases["categories"]["injury"]["by_sex"]["female"], n, "{cases}");
    town.start_kill().unwrap();
    town.wait().await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}
