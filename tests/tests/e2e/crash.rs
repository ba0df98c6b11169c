//! kill -9 of a ward node while it records and replicates: every event it
//! answered "recorded" for survives and reaches the town exactly once.
//! The ward runs as its real binary, in its own process, so the kill is real.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use treem_proto::subject;
use treem_tests::wait_for;

use crate::system::{System, WAIT, observed};

/// A binary of the workspace, built next to this test binary by `cargo nextest run --workspace`.
fn bin(name: &str) -> PathBuf {
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
