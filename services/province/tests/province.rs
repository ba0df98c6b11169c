//! End-to-end scenarios of the province node against a real nats-server:
//! towns publish snapshots as they do in production, the province rolls
//! them up, and the HTTP API is checked for exact figures.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::*;
use treem_proto::subject;
use treem_province::stream::{StreamError, ensure_stream};

#[tokio::test]
async fn two_towns_roll_up_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let node = treem_province::start(province_config(&tmp.path().join("province"), &nats.url())).await.unwrap();
    let addr = node.http_addr;
    assert_eq!(std::fs::read_to_string(tmp.path().join("province/http.addr")).unwrap(), addr.to_string());

    let js = jetstream(&nats.url()).await;
    wait_for_stream(&js).await;
    publish(&js, &snapshot("690", 2025, 4, &[("4a", f(7, 100)), ("1", f(2, 6))], &[("abuse", 2), ("injury", 1)])).await;
    publish(&js, &snapshot("691", 2025, 1, &[("4a", f(3, 50)), ("1", f(1, 2))], &[("abuse", 1), ("child_marriage", 1)])).await;
    publish(&js, &snapshot("691", 2024, 2, &[("4a", f(40, 50))], &[("abuse", 9)])).await;
    wait_for_version(addr, "690", 4).await;
    wait_for_version(addr, "691", 2).await;

    // Province: 7/100 + 3/50 = 10/150 = 6.67 %; wards 2/6 + 1/2 = 3 of 8 wards.
    let (status, body) = get(addr, "/api/v1/indicators?year=2025").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "province");
    assert_eq!(body["province"], "70");
    assert_eq!(body["year"], 2025);
    assert!(body["town"].is_null());
    assert_eq!(body["towns_reporting"], serde_json::json!(["690", "691"]));
    let four_a = indicator(&body, "4a");
    assert_eq!((four_a["numerator"].as_u64(), four_a["denominator"].as_u64()), (Some(10), Some(150)));
    assert!((four_a["value"].as_f64().unwrap() - 1000.0 / 150.0).abs() < 1e-9, "{four_a}");
    assert_eq!(four_a["status"], "achieved", "{four_a}");
    assert!(four_a["reason"].as_str().unwrap().contains("6.67 %"), "{four_a}");
    let one = indicator(&body, "1");
    assert_eq!((one["numerator"].as_u64(), one["denominator"].as_u64(), one["value"].as_f64()), (Some(3), Some(8), Some(3.0)));

    // One town, one code.
    let (status, body) = get(addr, "/api/v1/indicators?year=2025&town=691&code=4a").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["scope"].as_str(), body["town"].as_str(), body["version"].as_u64()), (Some("town"), Some("691"), Some(1)));
    assert_eq!(body["indicators"].as_array().unwrap().len(), 1);
    assert_eq!(indicator(&body, "4a")["value"].as_f64(), Some(6.0));

    // Another year holds only 691's 2024 snapshot; a year nobody reported has no data.
    let (_, body) = get(addr, "/api/v1/indicators?year=2024&code=4a").await;
    assert_eq!(indicator(&body, "4a")["numerator"].as_u64(), Some(40));
    let (_, body) = get(addr, "/api/v1/indicators?year=2023&code=4a").await;
    assert_eq!(indicator(&body, "4a")["status"], "no_data");

    // Cases by category, province and per town.
    let (status, body) = get(addr, "/api/v1/cases?year=2025").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cases_counted"]["abuse"], 3);
    assert_eq!(body["cases_counted"]["injury"], 1);
    assert_eq!(body["cases_counted"]["child_marriage"], 1);
    assert_eq!(body["cases_counted"]["child_labour"], 0);
    assert_eq!(body["towns"]["690"]["abuse"], 2);
    assert_eq!(body["towns"]["691"]["abuse"], 1);
    let (_, body) = get(addr, "/api/v1/cases?year=2025&town=690").await;
    assert_eq!((body["scope"].as_str(), body["cases_counted"]["abuse"].as_u64()), (Some("town"), Some(2)));

    // Sync: versions, years, nothing parked.
    let (_, body) = get(addr, "/api/v1/sync").await;
    let towns = body["towns"].as_array().unwrap();
    let t691 = towns.iter().find(|t| t["town"] == "691").unwrap();
    assert_eq!(t691["years"], serde_json::json!([2024, 2025]));
    assert_eq!(t691["parked"], 0);
    assert!(t691["produced_at"].is_string());
    assert_eq!(body["nats_connected"], true);

    // Bad requests say what is wrong.
    for (path, needle) in [
        ("/api/v1/indicators?year=2020", "outside the plan period"),
        ("/api/v1/indicators?year=2031", "outside the plan period"),
        ("/api/v1/indicators", "give the year"),
        ("/api/v1/indicators?year=abc", "not a number"),
        ("/api/v1/indicators?year=2025&town=999", "town \"999\""),
        ("/api/v1/indicators?year=2025&code=zz", "unknown indicator \"zz\""),
        ("/api/v1/cases?year=1999", "outside the plan period"),
    ] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{path}: {body}");
    }
    let (status, body) = get(addr, "/nope").await;
    assert_eq!(status, 404, "{body}");

    let (status, health) = get(addr, "/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    wait_for_metric(addr, "treem_province_snapshots_applied_total", 3).await;
    node.shutdown().await;
}

#[tokio::test]
async fn older_versions_and_duplicates_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let node = treem_province::start(province_config(&tmp.path().join("province"), &nats.url())).await.unwrap();
    let addr = node.http_addr;
    let js = jetstream(&nats.url()).await;
    wait_for_stream(&js).await;

    let newer = snapshot("690", 2025, 5, &[("4a", f(9, 100))], &[("abuse", 4)]);
    assert!(!publish(&js, &newer).await);
    // The same message again within the window: JetStream drops it.
    assert!(publish(&js, &newer).await, "JetStream should report the duplicate");
    // The same snapshot again past the window (no dedup id): the store ignores it.
    let subject = subject::projection_subject("70", "690", subject::VIEW_INDICATORS);
    publish_raw(&js, &subject, serde_json::to_vec(&newer).unwrap(), None).await;
    // An older version arriving late.
    publish(&js, &snapshot("690", 2025, 3, &[("4a", f(1, 100))], &[("abuse", 1)])).await;
    // A marker after all of them: once it is stored, everything before is settled.
    publish(&js, &snapshot("691", 2025, 1, &[("4a", f(0, 10))], &[])).await;
    wait_for_version(addr, "691", 1).await;

    let (_, body) = get(addr, "/api/v1/indicators?year=2025&town=690&code=4a").await;
    assert_eq!(body["version"], 5);
    assert_eq!((indicator(&body, "4a")["numerator"].as_u64(), indicator(&body, "4a")["denominator"].as_u64()), (Some(9), Some(100)));
    let (_, body) = get(addr, "/api/v1/cases?year=2025").await;
    assert_eq!(body["cases_counted"]["abuse"], 4, "the duplicate must be counted once: {body}");
    wait_for_metric(addr, "treem_province_snapshots_applied_total", 2).await;
    wait_for_metric(addr, "treem_province_snapshots_duplicate_total", 1).await;
    wait_for_metric(addr, "treem_province_snapshots_stale_total", 1).await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_poison_message_is_parked_and_the_next_one_still_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let node = treem_province::start(province_config(&tmp.path().join("province"), &nats.url())).await.unwrap();
    let addr = node.http_addr;
    let js = jetstream(&nats.url()).await;
    wait_for_stream(&js).await;

    let on_690 = subject::projection_subject("70", "690", subject::VIEW_INDICATORS);
    publish_raw(&js, &on_690, b"{this is not json".to_vec(), Some("junk-1".into())).await;
    // 691's snapshot published on 690's subject: a town publishing for another.
    let forged = snapshot("691", 2025, 9, &[("4a", f(1, 2))], &[]);
    publish_raw(&js, &on_690, serde_json::to_vec(&forged).unwrap(), Some(forged.msg_id())).await;
    // A town the hierarchy does not know.
    let stranger = snapshot("999", 2025, 1, &[], &[]);
    publish(&js, &stranger).await;
    publish(&js, &snapshot("690", 2025, 1, &[("4a", f(7, 100))], &[])).await;
    wait_for_version(addr, "690", 1).await;

    let (_, parked) = get(addr, "/api/v1/parked").await;
    let parked = parked.as_array().unwrap();
    assert_eq!(parked.len(), 3, "{parked:?}");
    assert!(parked[0]["reason"].as_str().unwrap().contains("not a town snapshot"), "{}", parked[0]);
    assert!(parked[0]["stream_seq"].is_u64());
    assert!(parked[1]["reason"].as_str().unwrap().contains("a town may publish only its own snapshot"), "{}", parked[1]);
    assert!(parked[2]["reason"].as_str().unwrap().contains("\"999\""), "{}", parked[2]);
    let (_, sync) = get(addr, "/api/v1/sync").await;
    let t690 = sync["towns"].as_array().unwrap().iter().find(|t| t["town"] == "690").unwrap().clone();
    assert_eq!(t690["parked"], 2, "{sync}");
    assert_eq!(sync["parked_other"], 1, "{sync}");
    // The forged figure did not reach 691.
    let (_, body) = get(addr, "/api/v1/indicators?year=2025&town=691&code=4a").await;
    assert_eq!(indicator(&body, "4a")["status"], "no_data");

    // Every message is settled on the server: nothing pending, nothing to redeliver.
    let mut stream = js.get_stream(subject::province_projections_stream("70")).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let info = stream.consumer_info(subject::province_consumer("70")).await.unwrap();
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "messages left unsettled: {info:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stream.info().await.unwrap().state.messages, 4);
    wait_for_metric(addr, "treem_province_messages_parked_total", 3).await;
    node.shutdown().await;
}

#[tokio::test]
async fn state_survives_restart_and_the_node_serves_while_nats_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let nats_dir = tmp.path().join("nats");
    let data_dir = tmp.path().join("province");
    let mut nats = NatsServer::start(&nats_dir);
    let port = nats.port;
    let config = province_config(&data_dir, &nats.url());

    let node = treem_province::start(config.clone()).await.unwrap();
    let js = jetstream(&nats.url()).await;
    wait_for_stream(&js).await;
    publish(&js, &snapshot("690", 2025, 1, &[("4a", f(7, 100))], &[("abuse", 2)])).await;
    publish(&js, &snapshot("691", 2025, 1, &[("4a", f(3, 50))], &[])).await;
    wait_for_version(node.http_addr, "691", 1).await;
    node.shutdown().await;

    // Restart with NATS still up: same figures, straight from the store.
    let node = treem_province::start(config.clone()).await.unwrap();
    let (_, body) = get(node.http_addr, "/api/v1/indicators?year=2025&code=4a").await;
    assert_eq!((indicator(&body, "4a")["numerator"].as_u64(), indicator(&body, "4a")["denominator"].as_u64()), (Some(10), Some(150)));
    node.shutdown().await;

    // NATS goes down; the province still starts and serves what it holds.
    nats.stop();
    drop(js);
    let node = treem_province::start(config.clone()).await.unwrap();
    let addr = node.http_addr;
    let (status, health) = get(addr, "/health").await;
    assert_eq!((status, health["nats_connected"].as_bool()), (200, Some(false)), "{health}");
    let (_, sync) = get(addr, "/api/v1/sync").await;
    assert!(sync["consumer_error"].as_str().is_some_and(|e| e.contains("NATS")), "{sync}");
    let (_, body) = get(addr, "/api/v1/cases?year=2025").await;
    assert_eq!(body["cases_counted"]["abuse"], 2);

    // NATS comes back on the same port with its store: the province attaches
    // and resumes from its durable consumer position.
    let _nats = NatsServer::start_on(port, &nats_dir);
    let js = jetstream(&format!("nats://127.0.0.1:{port}")).await;
    publish(&js, &snapshot("690", 2025, 2, &[("4a", f(8, 100))], &[("abuse", 3)])).await;
    let sync = wait_for_version(addr, "690", 2).await;
    assert!(sync["consumer_error"].is_null(), "{sync}");
    let (_, body) = get(addr, "/api/v1/indicators?year=2025&code=4a").await;
    assert_eq!((indicator(&body, "4a")["numerator"].as_u64(), indicator(&body, "4a")["denominator"].as_u64()), (Some(11), Some(150)));
    // Only the new snapshot was applied after the restart. (A nats-server
    // killed with -9 may have lost the consumer's last ack floor and
    // redeliver: those count as duplicates, never applied twice.)
    wait_for_metric(addr, "treem_province_snapshots_applied_total", 1).await;
    node.shutdown().await;
}

/// A `Write` the test can read while `watch` writes to it.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    async fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.text().contains(needle) {
            assert!(Instant::now() < deadline, "watch did not print {needle:?}; printed so far:\n{}", self.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn watch_prints_each_update() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let config = province_config(&tmp.path().join("province"), &nats.url());

    // Before the province has created the stream, watch says what to do.
    let err = treem_province::watch(&config, SharedBuf::default(), std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("start `treem-province serve` first"), "{err}");

    let node = treem_province::start(config.clone()).await.unwrap();
    let js = jetstream(&nats.url()).await;
    wait_for_stream(&js).await;
    publish(&js, &snapshot("690", 2025, 1, &[("4a", f(7, 100)), ("1", f(2, 6))], &[])).await;

    let out = SharedBuf::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn({
        let (config, out) = (config.clone(), out.clone());
        async move {
            treem_province::watch(&config, out, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    // The latest snapshot of each town first, then live updates.
    out.wait_for("town=690 year=2025 version=1 ").await;
    publish(&js, &snapshot("691", 2025, 2, &[("4a", f(3, 50))], &[])).await;
    out.wait_for("town=691 year=2025 version=2 ").await;
    let on_691 = subject::projection_subject("70", "691", subject::VIEW_INDICATORS);
    publish_raw(&js, &on_691, b"garbage".to_vec(), None).await;
    out.wait_for("refused subject=treem.v1.projections.70.691.indicators").await;

    stop.send(()).unwrap();
    watcher.await.unwrap().unwrap();
    let text = out.text();
    let first = text.lines().find(|l| l.starts_with("town=690")).unwrap();
    assert!(first.ends_with(" 1=2/6 4a=7/100"), "{first}");
    let second = text.lines().find(|l| l.starts_with("town=691")).unwrap();
    assert!(second.ends_with(" 4a=3/50"), "{second}");
    node.shutdown().await;
}

#[tokio::test]
async fn an_existing_stream_is_checked_and_repaired_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let js = jetstream(&nats.url()).await;
    let name = subject::province_projections_stream("70");

    // Someone created it with a short dedup window and a per-subject cap: updated.
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject::province_projections_filter("70")],
        duplicate_window: Duration::from_secs(60),
        max_messages_per_subject: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut s = ensure_stream(&js, "70", 1).await.unwrap();
    let config = s.info().await.unwrap().config.clone();
    assert_eq!(config.duplicate_window, Duration::from_secs(600));
    assert!(config.max_messages_per_subject <= 0, "{config:?}");

    // In memory: cannot be changed in place, so refuse with how to fix it.
    js.delete_stream(&name).await.unwrap();
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject::province_projections_filter("70")],
        storage: jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let err = ensure_stream(&js, "70", 1).await.unwrap_err();
    assert!(matches!(err, StreamError::Incompatible { field: "storage", .. }), "{err}");
    assert!(err.to_string().contains("nats stream rm"), "{err}");
}

#[test]
fn check_config_refuses_a_province_not_in_the_hierarchy() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_treem-province");
    let path = tmp.path().join("province.toml");
    std::fs::write(&path, "province = \"70\"\n").unwrap();
    let ok = std::process::Command::new(bin).args(["--config"]).arg(&path).arg("check-config").output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = std::process::Command::new(bin)
        .args(["--config"])
        .arg(&path)
        .arg("check-config")
        .env("TREEM_PROVINCE_PROVINCE", "99")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("province \"99\" is not in the hierarchy"), "{stderr}");
}

#[tokio::test]
async fn a_town_added_to_the_hierarchy_gets_its_parked_snapshots_applied_at_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    // First on the shipped hierarchy, which has no town 691.
    let config = treem_province::Config { hierarchy_file: None, ..province_config(&tmp.path().join("province"), &nats.url()) };
    let node = treem_province::start(config.clone()).await.unwrap();
    let js = jetstream(&nats.url()).await;
    wait_for_stream(&js).await;
    publish(&js, &snapshot("691", 2025, 3, &[("4a", f(3, 50))], &[])).await;
    publish(&js, &snapshot("690", 2025, 1, &[("4a", f(7, 100))], &[])).await;
    wait_for_version(node.http_addr, "690", 1).await;
    let (_, parked) = get(node.http_addr, "/api/v1/parked").await;
    assert_eq!(parked.as_array().unwrap().len(), 1, "{parked}");
    assert_eq!(parked[0]["recheck"], true);
    node.shutdown().await;

    // The operator adds 691 to the hierarchy and restarts.
    let config = treem_province::Config { hierarchy_file: Some(testdata("hierarchy.json")), ..config };
    let node = treem_province::start(config).await.unwrap();
    wait_for_version(node.http_addr, "691", 3).await;
    let (_, parked) = get(node.http_addr, "/api/v1/parked").await;
    assert_eq!(parked, serde_json::json!([]));
    let (_, body) = get(node.http_addr, "/api/v1/indicators?year=2025&code=4a").await;
    assert_eq!((indicator(&body, "4a")["numerator"].as_u64(), indicator(&body, "4a")["denominator"].as_u64()), (Some(10), Some(150)));
    node.shutdown().await;
}

/// A child process killed when the test ends, even by a failed assertion.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the `treem-province serve` binary on `data_dir`; returns it and its HTTP address.
async fn spawn_binary(data_dir: &std::path::Path, nats_url: &str) -> (Running, std::net::SocketAddr) {
    let addr_file = data_dir.join("http.addr");
    let _ = std::fs::remove_file(&addr_file);
    provision(data_dir);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_treem-province"))
        .arg("serve")
        .env("TREEM_PROVINCE_DATA_DIR", data_dir)
        .env("TREEM_PROVINCE_HTTP_ADDR", "127.0.0.1:0")
        .env("TREEM_PROVINCE_NATS_URL", nats_url)
        .env("TREEM_PROVINCE_HIERARCHY_FILE", testdata("hierarchy.json"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start treem-province");
    let child = Running(child);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(addr) = std::fs::read_to_string(&addr_file).ok().and_then(|a| a.trim().parse().ok()) {
            return (child, addr);
        }
        assert!(Instant::now() < deadline, "treem-province did not write {}", addr_file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_keeps_its_state_through_kill_9_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let data_dir = tmp.path().join("province");
    let (mut child, addr) = spawn_binary(&data_dir, &nats.url()).await;
    let js = jetstream(&nats.url()).await;
    wait_for_stream(&js).await;
    publish(&js, &snapshot("690", 2025, 1, &[("4a", f(7, 100))], &[])).await;
    publish(&js, &snapshot("691", 2025, 1, &[("4a", f(3, 50))], &[])).await;
    wait_for_version(addr, "691", 1).await;
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    let (mut child, addr) = spawn_binary(&data_dir, &nats.url()).await;
    // A snapshot the HTTP view showed may not have been flushed when the kill
    // came (sled serves reads from its write buffers); it was not
    // acknowledged either, so JetStream delivers it again once its ack wait
    // runs out: wait for that, and longer on a loaded machine.
    let deadline = Instant::now() + treem_province::stream::ACK_WAIT + Duration::from_secs(30);
    loop {
        let (_, body) = get(addr, "/api/v1/indicators?year=2025&code=4a").await;
        let got = (indicator(&body, "4a")["numerator"].as_u64(), indicator(&body, "4a")["denominator"].as_u64());
        if got == (Some(10), Some(150)) {
            break;
        }
        assert!(Instant::now() < deadline, "the province lost a snapshot through kill -9: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + DEADLINE;
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "treem-province did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}
