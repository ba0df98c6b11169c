//! Durability that means what it says (issue 3): what "recorded" and a
//! JetStream ack promise, and what the ward does when either runs out.
//!
//! - The town's stream loses acknowledged events (simulated by restoring an
//!   older copy of nats-server's store, as a power cut before the 2-minute
//!   fsync would): the ward notices on reconnect and sends them again; the
//!   town ends with every event exactly once, whether it had applied the
//!   lost events already or not, and even when a copy of the ward's newest
//!   event (a publish flushed on reconnect) reached the stream first.
//! - The disk under the ward log fills up (a 4 MiB tmpfs; the test mounts
//!   it and so must run as root, as CI does — it fails, never skips,
//!   otherwise): new records are refused with 507 "disk full" (the CLI
//!   exits non-zero), the log stays intact across a restart, and recording
//!   resumes once a filler file is deleted, without a restart. Once with the
//!   reserve check off (sled meets ENOSPC itself and poisons its handle; the
//!   log reopens it), once with the reserve on (refused before writing).
//! - A ward offline for longer than the stream's de-duplication window (2 s
//!   here) comes back with 20,000 events, some of them already in the
//!   stream: it catches up completely, with progress in its status, and the
//!   town applies each event once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::{Value, json};
use treem_proto::subject;
use treem_tests::wait_for;

use crate::crash::bin;
use crate::system::{System, WAIT, observed};

const WARD: &str = "25320";

fn stream_name() -> String {
    subject::town_events_stream("70", "690")
}

async fn ward_status(sys: &System, ward: &treem_ward::Node) -> Value {
    sys.get(format!("http://{}/api/v1/status", ward.http_addr)).await
}

/// Waits until the ward's status satisfies `check`; returns that status.
async fn wait_status(sys: &System, ward: &treem_ward::Node, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let url = format!("http://{}/api/v1/status", ward.http_addr);
    wait_for(what, WAIT, || {
        let http = sys.http.clone();
        let url = url.clone();
        let check = &check;
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            check(&v).then_some(v)
        }
    })
    .await
}

async fn record_n(sys: &System, ward: &treem_ward::Node, n: u64) {
    for i in 0..n {
        sys.record(ward, "indicator.observed", observed("15", 2021 + (i % 4) as u16, i % 90, 100)).await;
    }
}

/// The ward seq of every message in the stream, in stream order.
async fn stream_ward_seqs(sys: &System) -> Vec<u64> {
    let js = jetstream::new(sys.nats.connect().await);
    let mut stream = js.get_stream(stream_name()).await.expect("the town's stream exists");
    let state = stream.info().await.expect("stream info").state.clone();
    let mut seqs = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let m = stream.get_raw_message(seq).await.unwrap_or_else(|e| panic!("stream message {seq}: {e}"));
        let env: Value = serde_json::from_slice(&m.payload).expect("an envelope");
        seqs.push(env["seq"].as_u64().expect("an envelope has a seq"));
    }
    seqs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Stops NATS gracefully and copies its store to `snapshot`.
async fn snapshot_store(sys: &mut System, snapshot: &Path) {
    sys.nats.stop().await;
    copy_dir(sys.nats.store_dir(), snapshot);
}

/// Stops NATS, puts the old copy of its store back, starts it on the same
/// port: the stream loses what it stored (and acknowledged) since the copy.
async fn restore_store(sys: &mut System, snapshot: &Path) {
    sys.nats.stop().await;
    let store = sys.nats.store_dir().to_path_buf();
    std::fs::remove_dir_all(&store).expect("remove the store");
    copy_dir(snapshot, &store);
    sys.nats.restart().await;
}

/// The stream lost the newest 60 of 100 acknowledged events while the town
/// was down: only the ward can bring them back, and it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_lost_acknowledged_events_gets_them_again() {
    let mut sys = System::new().await;
    let town = sys.town().await;
    let ward = sys.ward(WARD).await;
    record_n(&sys, &ward, 40).await;
    sys.town_applied(&town, WARD, 40).await;
    wait_status(&sys, &ward, "ward acked 40", |s| s["acked_seq"] == 40).await;
    // The town stops: whatever the stream loses from now on, it never saw.
    town.shutdown().await;

    let snapshot = sys.path("nats-store-at-40");
    snapshot_store(&mut sys, &snapshot).await;
    sys.nats.restart().await;
    record_n(&sys, &ward, 60).await;
    wait_status(&sys, &ward, "ward acked 100", |s| s["acked_seq"] == 100 && s["pending"] == 0).await;
    assert_eq!(stream_ward_seqs(&sys).await, (1..=100).collect::<Vec<_>>(), "JetStream acknowledged all 100");

    // Power cut at the town before its fsync: the stream is back at 40.
    restore_store(&mut sys, &snapshot).await;
    let status = wait_status(&sys, &ward, "the ward notices the loss and sends again", |s| {
        s["last_rewind"]["to_seq"] == 40 && s["acked_seq"] == 100 && s["pending"] == 0
    })
    .await;
    assert_eq!(status["last_rewind"]["from_acked_seq"], 100, "{status}");
    assert_eq!(stream_ward_seqs(&sys).await, (1..=100).collect::<Vec<_>>(), "the stream holds every event again, once, in order: {status}");

    let town = sys.town().await;
    let w = sys.town_applied(&town, WARD, 100).await;
    assert_eq!(w["applied"], 100, "{w}");
    assert_eq!(w["held"], 0, "{w}");
    ward.shutdown().await;
    town.shutdown().await;
}

/// Same loss while the town was running: it had applied the lost events,
/// skips them when they come again (by seq), and applies what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_that_applied_the_lost_events_applies_each_once() {
    let mut sys = System::new().await;
    let town = sys.town().await;
    let ward = sys.ward(WARD).await;
    record_n(&sys, &ward, 30).await;
    sys.town_applied(&town, WARD, 30).await;
    wait_status(&sys, &ward, "ward acked 30", |s| s["acked_seq"] == 30).await;

    let snapshot = sys.path("nats-store-at-30");
    snapshot_store(&mut sys, &snapshot).await;
    sys.nats.restart().await;
    record_n(&sys, &ward, 50).await;
    sys.town_applied(&town, WARD, 80).await;
    wait_status(&sys, &ward, "ward acked 80", |s| s["acked_seq"] == 80).await;

    restore_store(&mut sys, &snapshot).await;
    wait_status(&sys, &ward, "the ward notices the loss and sends again", |s| {
        s["last_rewind"]["to_seq"] == 30 && s["acked_seq"] == 80 && s["pending"] == 0
    })
    .await;
    record_n(&sys, &ward, 5).await;
    let w = sys.town_applied(&town, WARD, 85).await;
    assert_eq!(w["applied"], 85, "each event applied once: {w}");
    assert_eq!(w["last_seq_applied"], 85, "{w}");
    ward.shutdown().await;
    town.shutdown().await;
}

/// The same loss, but a copy of the ward's newest event reaches the
/// restored stream before the ward checks it — as a publish the NATS client
/// had queued while the server was down and flushes on reconnect would. The
/// newest message of the ward then looks complete; the ack marks tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_flushed_on_reconnect_do_not_hide_a_loss() {
    let mut sys = System::new().await;
    let town = sys.town().await;
    let ward = sys.ward(WARD).await;
    record_n(&sys, &ward, 40).await;
    sys.town_applied(&town, WARD, 40).await;
    wait_status(&sys, &ward, "ward acked 40", |s| s["acked_seq"] == 40).await;
    town.shutdown().await;
    let snapshot = sys.path("nats-store-at-40");
    snapshot_store(&mut sys, &snapshot).await;
    sys.nats.restart().await;
    record_n(&sys, &ward, 60).await;
    wait_status(&sys, &ward, "ward acked 100", |s| s["acked_seq"] == 100 && s["pending"] == 0).await;
    let newest = sys.get(format!("http://{}/api/v1/events?after=99&limit=1", ward.http_addr)).await[0].clone();
    ward.shutdown().await;

    restore_store(&mut sys, &snapshot).await;
    let js = jetstream::new(sys.nats.connect().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", newest["id"].as_str().expect("an event id"));
    let subject = format!("treem.v1.events.70.690.{WARD}.indicator.observed");
    let ack = js.publish_with_headers(subject, headers, serde_json::to_vec(&newest).unwrap().into()).await.unwrap().await.unwrap();
    assert_eq!(ack.sequence, 41, "the copy lands right after the 40 survivors");

    let ward = sys.ward(WARD).await;
    let status = wait_status(&sys, &ward, "the ward sees through the copy and sends again", |s| {
        s["last_rewind"]["from_acked_seq"] == 100 && s["acked_seq"] == 100 && s["pending"] == 0
    })
    .await;
    assert!(status["last_rewind"]["to_seq"].as_u64().unwrap() <= 40, "re-sent from an event still in place: {status}");
    let seqs = stream_ward_seqs(&sys).await;
    let mut distinct = seqs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct, (1..=100).collect::<Vec<_>>(), "every event is in the stream again: {seqs:?}");

    let town = sys.town().await;
    let w = sys.town_applied(&town, WARD, 100).await;
    assert_eq!(w["applied"], 100, "{w}");
    assert_eq!(w["held"], 0, "{w}");

    // A restart that loses nothing is not mistaken for a loss, although the
    // stream now holds the copy of 100 before 41…99.
    sys.nats.restart().await;
    record_n(&sys, &ward, 1).await;
    let after = wait_status(&sys, &ward, "ward acked 101 after a plain restart", |s| s["acked_seq"] == 101).await;
    assert_eq!(after["last_rewind"], status["last_rewind"], "no new rewind: {after}");
    sys.town_applied(&town, WARD, 101).await;
    ward.shutdown().await;
    town.shutdown().await;
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "4m") at `path`. Fails the test
    /// loudly when it cannot (not root, no mount(8)): never skips.
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount(8) to make a small tmpfs for the full-disk test: {e}"));
        assert!(
            out.status.success(),
            "\n\n*** the full-disk test could not mount a {size} tmpfs at {} ***\n\
             mount said: {}\n\
             This test must run as root (CI does): it fills a small file system under a ward log.\n\
             Run the suite as root (e.g. in the CI container), it never skips.\n",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { path }
    }

    /// Writes a file that takes every free byte of the tmpfs.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("create the filler");
        let chunk = vec![0xa5u8; 4096];
        while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
        // Drain whatever smaller remainder is left.
        while f.write_all(&chunk[..1]).is_ok() {}
        filler
    }

    /// Writes a filler leaving about `leave` bytes free.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let free = available(&self.path);
        assert!(free > leave, "the tmpfs has {free} bytes free, fewer than the {leave} to leave");
        std::fs::write(&filler, vec![0x5au8; (free - leave) as usize]).expect("write the filler");
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            // Still busy (a failing test left a handle open): detach it.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Free bytes of the file system holding `path`, from df(1).
fn available(path: &Path) -> u64 {
    let out = Command::new("df").args(["-B1", "--output=avail"]).arg(path).output().expect("run df");
    String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df prints the free bytes")
}

async fn post_observation(sys: &System, ward: &treem_ward::Node, i: u64) -> (u16, Value) {
    sys.post(
        format!("http://{}/api/v1/events", ward.http_addr),
        json!({"kind": "indicator.observed", "body": observed("15", 2021 + (i % 4) as u16, i % 90, 100)}),
    )
    .await
}

/// Records until the ward refuses; returns the events recorded meanwhile
/// (id, seq) and the refusal.
async fn record_until_refused(sys: &System, ward: &treem_ward::Node, recorded: &mut Vec<(String, u64)>) -> Value {
    for i in 0..5000 {
        let (status, body) = post_observation(sys, ward, i).await;
        match status {
            201 => recorded.push((body["id"].as_str().unwrap().to_string(), body["seq"].as_u64().unwrap())),
            507 => return body,
            other => panic!("recording on a filling disk: expected 201 or 507, got {other}: {body}"),
        }
    }
    panic!("the ward never refused a record on a full disk");
}

/// Every event in `recorded` is in the ward's log, and seqs run 1..=last.
async fn assert_log_intact(sys: &System, ward: &treem_ward::Node, recorded: &[(String, u64)]) -> u64 {
    let mut all = Vec::new();
    loop {
        let after = all.len();
        let page = sys.get(format!("http://{}/api/v1/events?after={after}&limit=1000", ward.http_addr)).await;
        let page = page.as_array().expect("a list of envelopes").clone();
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    for (i, env) in all.iter().enumerate() {
        assert_eq!(env["seq"], i as u64 + 1, "seqs run without gaps");
    }
    for (id, seq) in recorded {
        let env = &all[*seq as usize - 1];
        assert_eq!(env["id"].as_str(), Some(id.as_str()), "recorded event seq {seq} is intact");
    }
    all.len() as u64
}

/// The reserve check off: sled itself meets ENOSPC, its handle is poisoned,
/// the ward refuses with 507 until space returns, then reopens the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_records_and_recovers_when_space_returns() {
    let sys = System::new().await;
    let disk = Tmpfs::mount(sys.path("ward-disk"), "4m");
    let town = sys.town().await;
    let mut config = sys.ward_config(WARD);
    config.data_dir = disk.path.join("ward");
    config.min_free_bytes = 0;
    // The ward lives on the small disk: its key, registered at the town, too.
    treem_tests::provenance::provision(&sys.path("town"), &[(&config.data_dir, WARD)]);
    let ward = treem_ward::start(config.clone()).await.expect("ward starts");

    let mut recorded = Vec::new();
    for i in 0..30 {
        let (status, body) = post_observation(&sys, &ward, i).await;
        assert_eq!(status, 201, "{body}");
        recorded.push((body["id"].as_str().unwrap().to_string(), body["seq"].as_u64().unwrap()));
    }
    let filler = disk.fill();
    let refusal = record_until_refused(&sys, &ward, &mut recorded).await;
    let text = refusal["error"].as_str().unwrap_or_default();
    assert!(text.starts_with("disk full"), "a clear error: {refusal}");
    // Refused again while the disk is full, and the status still answers.
    let (status, body) = post_observation(&sys, &ward, 1).await;
    assert_eq!(status, 507, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("free disk space"), "{body}");
    let s = ward_status(&sys, &ward).await;
    assert!(s["last_seq"].as_u64().unwrap() >= recorded.last().unwrap().1, "{s}");

    // The CLI goes through the running node and says the same, exiting non-zero.
    let out = Command::new(bin("treem-ward"))
        .args(["record", "observation", "--indicator", "15", "--year", "2024", "--numerator", "1", "--denominator", "2"])
        .args(["--source", "health_centre"])
        .env("TREEM_WARD_WARD", WARD)
        .env("TREEM_WARD_DATA_DIR", &config.data_dir)
        .output()
        .expect("run treem-ward");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the CLI must fail on a full disk; stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("disk full"), "the CLI says why: {stderr}");

    // Space comes back: recording resumes without a restart.
    std::fs::remove_file(&filler).expect("delete the filler");
    let (status, body) = post_observation(&sys, &ward, 7).await;
    assert_eq!(status, 201, "recording resumes once there is room: {body}");
    recorded.push((body["id"].as_str().unwrap().to_string(), body["seq"].as_u64().unwrap()));
    let last = assert_log_intact(&sys, &ward, &recorded).await;
    let w = sys.town_applied(&town, WARD, last).await;
    assert_eq!(w["applied"], last, "{w}");

    // And everything recorded is still there after a restart.
    ward.shutdown().await;
    let ward = treem_ward::start(config).await.expect("ward restarts");
    assert_eq!(assert_log_intact(&sys, &ward, &recorded).await, last);
    ward.shutdown().await;
    town.shutdown().await;
    drop(disk);
}

/// The reserve check on: the ward refuses before the disk is full, writes
/// nothing (no seq is used), and records again once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_reserve_refuses_before_sled_runs_out_of_space() {
    let sys = System::new().await;
    let disk = Tmpfs::mount(sys.path("ward-disk"), "4m");
    let reserve = 1024 * 1024;
    let mut config = sys.ward_config(WARD);
    config.data_dir = disk.path.join("ward");
    config.min_free_bytes = reserve;
    let ward = treem_ward::start(config.clone()).await.expect("ward starts");
    let mut recorded = Vec::new();
    for i in 0..10 {
        let (status, body) = post_observation(&sys, &ward, i).await;
        assert_eq!(status, 201, "{body}");
        recorded.push((body["id"].as_str().unwrap().to_string(), body["seq"].as_u64().unwrap()));
    }
    let filler = disk.fill_leaving(reserve + 128 * 1024);
    let refusal = record_until_refused(&sys, &ward, &mut recorded).await;
    let text = refusal["error"].as_str().unwrap_or_default();
    assert!(text.starts_with("disk full") && text.contains("kept in reserve"), "{refusal}");
    assert!(available(&disk.path) > 0, "refused before the disk was full");
    let last_ok = recorded.last().unwrap().1;

    std::fs::remove_file(&filler).expect("delete the filler");
    let (status, body) = post_observation(&sys, &ward, 3).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["seq"], last_ok + 1, "the refused records used no seq");
    recorded.push((body["id"].as_str().unwrap().to_string(), body["seq"].as_u64().unwrap()));
    assert_eq!(assert_log_intact(&sys, &ward, &recorded).await, last_ok + 1);
    ward.shutdown().await;
    drop(disk);
}

/// Offline for longer than the de-duplication window with a large backlog,
/// part of which the stream already holds (acks lost to a crash): the ward
/// catches up completely, showing progress, and the town applies each
/// event once although JetStream no longer recognises the duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_ward_beyond_the_dedup_window_catches_up_once() {
    const WINDOW: Duration = Duration::from_secs(2);
    const BEFORE: u64 = 300;
    const BACKLOG: u64 = 20_000;
    let mut sys = System::new().await;
    let town_config = treem_town::Config { duplicate_window_secs: WINDOW.as_secs(), ..sys.town_config() };
    let town = treem_town::start(town_config).await.expect("town starts");
    let ward = sys.ward(WARD).await;
    let observations = |from: u64, n: u64| -> Vec<treem_proto::Event> {
        (from..from + n)
            .map(|i| {
                serde_json::from_value(json!({"kind": "indicator.observed", "body": observed("15", 2021 + (i % 4) as u16, i % 90, 100)}))
                    .expect("an observation")
            })
            .collect()
    };
    ward.log.append_all("officer", observations(0, BEFORE)).await.expect("record");
    sys.town_applied(&town, WARD, BEFORE).await;
    wait_status(&sys, &ward, "ward acked the first events", |s| s["acked_seq"] == BEFORE).await;

    // The ward goes away (no network) and keeps recording.
    sys.nats.stop().await;
    let away_since = Instant::now();
    for batch in 0..BACKLOG / 1000 {
        ward.log.append_all("officer", observations(BEFORE + batch * 1000, 1000)).await.expect("record offline");
    }
    // A crash lost the ward's record of the first acks: those events, which
    // the stream holds, are sent again, after the window has forgotten them.
    ward.log.rewind_acked(0, "test: acks lost to a crash").await.expect("rewind");
    let last = BEFORE + BACKLOG;
    let s = ward_status(&sys, &ward).await;
    assert_eq!((s["last_seq"].as_u64(), s["pending"].as_u64()), (Some(last), Some(last)), "{s}");
    wait_for("the ward has been away longer than the de-duplication window", WAIT, || async {
        (away_since.elapsed() > WINDOW + Duration::from_millis(500)).then_some(())
    })
    .await;

    let back = Instant::now();
    sys.nats.restart().await;
    let url = format!("http://{}/api/v1/status", ward.http_addr);
    let pendings = std::cell::RefCell::new(Vec::new());
    let status = wait_for("the ward catches up", WAIT, || {
        let http = sys.http.clone();
        let url = url.clone();
        let pendings = &pendings;
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            pendings.borrow_mut().push(v["pending"].as_u64()?);
            // The replicator notes the catch-up's end just after the last
            // ack: wait for both, not only the ack.
            (v["pending"] == 0 && v["acked_seq"] == last && v["catch_up"]["finished_at"].is_string()).then_some(v)
        }
    })
    .await;
    let caught_up_in = back.elapsed();
    let catch_up = &status["catch_up"];
    // The catch-up reported is the last round: on a loaded machine a first
    // round can be cut short (an ack timeout) and a second one resumes from
    // where the acks reached, so `from_seq` is at least 1, not always 1.
    let from = catch_up["from_seq"].as_u64().unwrap_or(0);
    assert!((1..=last).contains(&from) && catch_up["to_seq"].as_u64() == Some(last), "{status}");
    assert!(catch_up["finished_at"].is_string() && catch_up["per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{status}");
    let pendings = pendings.into_inner();
    assert!(pendings.windows(2).all(|w| w[1] <= w[0]), "pending only falls: {pendings:?}");

    let w = sys.town_applied(&town, WARD, last).await;
    assert_eq!(w["applied"], last, "each event applied once: {w}");
    let js = jetstream::new(sys.nats.connect().await);
    let messages = js.get_stream(stream_name()).await.unwrap().info().await.unwrap().state.messages;
    assert!(
        messages >= last + BEFORE,
        "the {BEFORE} events sent again after the window are stored again ({messages} messages); the town skipped them by seq"
    );
    tracing::info!(events = last, secs = caught_up_in.as_secs_f64(), per_sec = catch_up["per_sec"].as_f64(), "offline catch-up measured");
    ward.shutdown().await;
    town.shutdown().await;
}
