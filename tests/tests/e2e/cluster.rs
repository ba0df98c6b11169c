//! The town and the province on a three-node JetStream cluster (R3 streams,
//! deploy/nats/cluster/), while wards record and replicate without pause:
//! first a node that does not lead the ward event stream is killed, then the
//! stream's leader. Nothing a ward acknowledged is lost or applied twice,
//! the town keeps applying while a node is down, and the province gets the
//! town's snapshots.
//!
//! The figures RELIABILITY.md quotes ("JetStream cluster") are printed on
//! stderr as `cluster figure: ...` lines; see them with
//! `cargo nextest run -p treem-tests -E 'test(cluster)' --no-capture`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use treem_proto::subject;
use treem_tests::{NatsCluster, wait_for};

/// Deadline of each wait. Generous (loaded 2-core CI); a passing run only
/// waits as long as it needs.
const WAIT: Duration = Duration::from_secs(40);

/// The wards that record during the whole scenario.
const WARDS: [&str; 3] = ["25320", "25324", "25325"];

/// One record per ward every PACE: ~120 events/s in all, a steady load
/// that keeps every phase busy without swamping 2 cores.
const PACE: Duration = Duration::from_millis(25);

/// Indicator the writers observe; the last observation per ward and year is
/// what the town shows, so final values are known exactly.
const CODE: &str = "15";
const YEARS: [u16; 4] = [2022, 2023, 2024, 2025];

/// Events the town must apply while a node is down before the test calls
/// it "kept applying".
const APPLIED_WHILE_DOWN: u64 = 100;

struct Parts {
    dir: TempDir,
    cluster: NatsCluster,
    http: reqwest::Client,
}

impl Parts {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The API token `http` sends, for the town and the province; and the
    /// wards' signing keys, registered at the town.
    fn provision_tokens(&self) {
        treem_tests::auth::provision(&self.path("town"));
        treem_tests::auth::provision(&self.path("province"));
        let dirs: Vec<(std::path::PathBuf, &str)> = crate::system::WARDS.iter().map(|w| (self.path(&format!("ward-{w}")), *w)).collect();
        let wards: Vec<(&std::path::Path, &str)> = dirs.iter().map(|(d, w)| (d.as_path(), *w)).collect();
        treem_tests::provenance::provision(&self.path("town"), &wards);
    }

    async fn town(&self) -> treem_town::Node {
        treem_town::start(treem_town::Config {
            data_dir: self.path("town"),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: self.cluster.urls(),
            stream_replicas: 3,
            backoff_min_ms: 20,
            backoff_max_ms: 300,
            batch_size: 200,
            ..Default::default()
        })
        .await
        .expect("town starts")
    }

    async fn province(&self) -> treem_province::Node {
        treem_province::start(treem_province::Config {
            data_dir: self.path("province"),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: self.cluster.urls(),
            stream_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("province starts")
    }

    async fn ward(&self, ward: &str) -> treem_ward::Node {
        treem_ward::start(treem_ward::Config {
            ward: ward.into(),
            data_dir: self.path(&format!("ward-{ward}")),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: self.cluster.urls(),
            backoff_min_ms: 20,
            backoff_max_ms: 300,
            ..Default::default()
        })
        .await
        .expect("ward starts")
    }
}

/// What one writer had acknowledged (HTTP 201) when it stopped.
struct Written {
    ward: String,
    recorded: u64,
    /// The numerator last recorded per year.
    last: BTreeMap<u16, u64>,
}

/// Records `indicator.observed` at `addr` every PACE until `stop`; counts
/// 201s in `recorded`. Any other answer fails the test: recording never
/// depends on NATS.
fn writer(
    http: reqwest::Client,
    ward: &str,
    addr: std::net::SocketAddr,
    recorded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Written> {
    let ward = ward.to_string();
    tokio::spawn(async move {
        let url = format!("http://{addr}/api/v1/events");
        let mut last = BTreeMap::new();
        let mut tick = tokio::time::interval(PACE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let year = YEARS[(i % YEARS.len() as u64) as usize];
            let numerator = (i * 7) % 90;
            let body = json!({"kind": "indicator.observed", "body": {
                "indicator": CODE, "year": year, "numerator": numerator, "denominator": 100, "source": "health_centre"}});
            let r = http.post(&url).json(&body).send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let status = r.status().as_u16();
            assert_eq!(status, 201, "ward {ward} refused a record while the cluster was degraded: {}", r.text().await.unwrap_or_default());
            last.insert(year, numerator);
            recorded.fetch_add(1, Ordering::Relaxed);
            i += 1;
        }
        Written { ward, recorded: i, last }
    })
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// Events applied by the town, all wards together (`applied` of /api/v1/sync).
async fn town_applied(http: &reqwest::Client, town: &treem_town::Node) -> Option<u64> {
    let v = get_json(http, &format!("http://{}/api/v1/sync", town.http_addr)).await?;
    v["wards"].as_array()?.iter().map(|w| w["applied"].as_u64()).sum()
}

/// Events acknowledged by the stream, all wards together (`acked_seq` of each ward's /api/v1/status).
async fn wards_acked(http: &reqwest::Client, wards: &[treem_ward::Node]) -> Option<u64> {
    let mut total = 0;
    for w in wards {
        total += get_json(http, &format!("http://{}/api/v1/status", w.http_addr)).await?["acked_seq"].as_u64()?;
    }
    Some(total)
}

/// The server name leading the town's durable consumer, if it has a leader.
async fn consumer_leader(js: &jetstream::Context, stream: &str) -> Option<String> {
    let s = js.get_stream(stream).await.ok()?;
    s.consumer_info(subject::town_consumer("690")).await.ok()?.cluster.as_ref()?.leader.clone()
}

/// Waits until the stream has a leader and every other replica is online
/// and current (a restarted node caught up).
async fn wait_replicas_current(js: &jetstream::Context, stream: &str) {
    wait_for(&format!("stream {stream}: a leader and two current replicas"), WAIT, || async move {
        let info = js.get_stream(stream).await.ok()?.info().await.ok()?.clone();
        let c = info.cluster?;
        (c.leader.is_some() && c.replicas.len() == 2 && c.replicas.iter().all(|p| p.current && !p.offline)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_cluster_loses_nothing_when_a_node_and_the_stream_leader_die() {
    treem_tests::init_tracing();
    let started = Instant::now();
    let mut parts =
        Parts { dir: tempfile::tempdir().expect("temp dir"), cluster: NatsCluster::start().await, http: treem_tests::auth::client() };
    parts.provision_tokens();
    eprintln!("cluster figure: 3-node cluster ready (R3 placement possible) after {:?}", started.elapsed());
    let http = parts.http.clone();
    let events = subject::town_events_stream("70", "690");
    let projections = subject::province_projections_stream("70");

    let province = parts.province().await;
    let town = parts.town().await;
    let mut wards = Vec::new();
    for w in WARDS {
        wards.push(parts.ward(w).await);
    }
    let js = jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(parts.cluster.connect().await);
    for name in [&events, &projections] {
        wait_for(&format!("{name} exists with 3 replicas"), WAIT, || {
            let js = js.clone();
            async move {
                let info = js.get_stream(name).await.ok()?.info().await.ok()?.clone();
                (info.config.num_replicas == 3).then_some(())
            }
        })
        .await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let recorded = Arc::new(AtomicU64::new(0));
    let writers: Vec<JoinHandle<Written>> =
        wards.iter().zip(WARDS).map(|(node, w)| writer(http.clone(), w, node.http_addr, recorded.clone(), stop.clone())).collect();
    wait_for("the town applies the first events", WAIT, || async { (town_applied(&http, &town).await? >= 50).then_some(()) }).await;

    // --- 1. A node that does not lead the ward event stream dies. ----------
    let leader = parts.cluster.stream_leader(&events).await;
    let follower = (leader + 1) % 3;
    let led_consumer = consumer_leader(&js, &events).await.is_some_and(|c| c == parts.cluster.server_name(follower));
    let applied_before = town_applied(&http, &town).await.expect("town sync");
    parts.cluster.kill(follower).await;
    let down_at = Instant::now();
    wait_for(&format!("the town keeps applying with node {} down", follower + 1), WAIT, || async {
        (town_applied(&http, &town).await? >= applied_before + APPLIED_WHILE_DOWN).then_some(())
    })
    .await;
    eprintln!(
        "cluster figure: follower {} killed (it {} the town's consumer): the town applied {APPLIED_WHILE_DOWN} more events after {:?}",
        parts.cluster.server_name(follower),
        if led_consumer { "led" } else { "did not lead" },
        down_at.elapsed()
    );
    let restarting = Instant::now();
    parts.cluster.restart(follower).await;
    wait_replicas_current(&js, &events).await;
    eprintln!("cluster figure: follower restarted and current again after {:?}", restarting.elapsed());

    // --- 2. The stream leader dies while the wards replicate. --------------
    let leader = parts.cluster.stream_leader(&events).await;
    let led_consumer = consumer_leader(&js, &events).await.is_some_and(|c| c == parts.cluster.server_name(leader));
    let applied_before = town_applied(&http, &town).await.expect("town sync");
    let recorded_at_kill = recorded.load(Ordering::Relaxed);
    let killed_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_nanos() as i128;
    let t0 = Instant::now();
    parts.cluster.kill(leader).await;
    // Replication resumed: an event recorded after the kill is acknowledged
    // by the new leader (acked counts are contiguous prefixes per ward, so a
    // total above what was recorded at the kill means exactly that); and the
    // town applied one. Both polled together, so each time is measured to
    // within one poll (~50 ms plus an HTTP round trip).
    let (mut replication_resumed, mut applying_resumed) = (None, None);
    while replication_resumed.is_none() || applying_resumed.is_none() {
        assert!(
            t0.elapsed() < WAIT,
            "{WAIT:?} after killing the stream leader: wards acked {:?}, town applied {:?}, {recorded_at_kill} recorded at the kill",
            wards_acked(&http, &wards).await,
            town_applied(&http, &town).await
        );
        if replication_resumed.is_none() && wards_acked(&http, &wards).await.is_some_and(|n| n > recorded_at_kill) {
            replication_resumed = Some(t0.elapsed());
        }
        if applying_resumed.is_none() && town_applied(&http, &town).await.is_some_and(|n| n > recorded_at_kill) {
            applying_resumed = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_leader = parts.cluster.stream_leader(&events).await;
    assert_ne!(new_leader, leader);
    let info = js.get_stream(&events).await.expect("stream").info().await.expect("stream info").clone();
    let leader_since = info.cluster.as_ref().and_then(|c| c.leader_since);
    // The server's own timestamp of the new leadership, against the wall
    // clock at the kill (same machine, same clock).
    let election = leader_since.map(|s| Duration::from_nanos(u64::try_from(s.unix_timestamp_nanos() - killed_at).unwrap_or(0)));
    let applied_during = town_applied(&http, &town).await.expect("town sync") - applied_before;
    assert!(parts.cluster.is_running(new_leader) && !parts.cluster.is_running(leader));
    eprintln!(
        "cluster figure: stream leader {} killed (it {} the town's consumer) → new leader {} elected after {} (leader_since − kill); \
         ward acks resumed after {:?}; the town applied an event recorded after the kill after {:?}; \
         {applied_during} events applied with the old leader down",
        parts.cluster.server_name(leader),
        if led_consumer { "also led" } else { "did not lead" },
        parts.cluster.server_name(new_leader),
        election.map_or("?".into(), |d| format!("{d:?}")),
        replication_resumed.expect("measured"),
        applying_resumed.expect("measured"),
    );
    let restarting = Instant::now();
    parts.cluster.restart(leader).await;
    wait_replicas_current(&js, &events).await;
    eprintln!("cluster figure: old leader restarted and current again after {:?}", restarting.elapsed());

    // --- 3. Stop recording; everything acknowledged arrives exactly once. --
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.expect("writer task"));
    }
    let total: u64 = written.iter().map(|w| w.recorded).sum();
    let town_sync = format!("http://{}/api/v1/sync", town.http_addr);
    for (node, w) in wards.iter().zip(&written) {
        let status_url = format!("http://{}/api/v1/status", node.http_addr);
        let n = w.recorded;
        wait_for(&format!("ward {} has all {n} events acknowledged", w.ward), WAIT, || {
            let (http, url) = (http.clone(), status_url.clone());
            async move {
                let v = get_json(&http, &url).await?;
                (v["last_seq"] == n && v["acked_seq"] == n && v["pending"] == 0).then_some(())
            }
        })
        .await;
        let s = wait_for(&format!("town applies ward {} up to seq {n}", w.ward), WAIT, || {
            let (http, url, ward) = (http.clone(), town_sync.clone(), w.ward.clone());
            async move {
                let v = get_json(&http, &url).await?;
                let s = v["wards"].as_array()?.iter().find(|s| s["ward"] == ward)?.clone();
                (s["last_seq_applied"].as_u64()? >= n).then_some(s)
            }
        })
        .await;
        assert_eq!(s["last_seq_applied"], n, "ward {}: {s}", w.ward);
        assert_eq!(s["applied"], n, "ward {}: every acknowledged event applied exactly once: {s}", w.ward);
        assert_eq!((s["held"].as_u64(), s["parked"].as_u64()), (Some(0), Some(0)), "{s}");
        for (year, numerator) in &w.last {
            let url = format!("http://{}/api/v1/indicators?year={year}&code={CODE}&ward={}", town.http_addr, w.ward);
            let v = get_json(&http, &url).await.expect("town indicators");
            assert_eq!(v["indicators"][0]["numerator"], *numerator, "ward {} year {year}: the last observation wins: {v}", w.ward);
        }
    }
    let stream_messages = js.get_stream(&events).await.expect("stream").info().await.expect("info").state.messages;
    assert!(stream_messages >= total, "the stream holds {stream_messages} messages, fewer than the {total} events acknowledged");

    // --- 4. The province got the town's snapshots. -------------------------
    let forwarded = wait_for("the town forwarded every snapshot", WAIT, || {
        let (http, url) = (http.clone(), town_sync.clone());
        async move {
            let v = get_json(&http, &url).await?;
            (v["outbox_pending"] == 0 && v["stream_error"].is_null()).then(|| v["forwarded_version"].as_u64()).flatten()
        }
    })
    .await;
    let province_sync = format!("http://{}/api/v1/sync", province.http_addr);
    wait_for(&format!("the province holds town 690's snapshot version {forwarded}"), WAIT, || {
        let (http, url) = (http.clone(), province_sync.clone());
        async move {
            let v = get_json(&http, &url).await?;
            let t = v["towns"].as_array()?.iter().find(|t| t["town"] == "690")?.clone();
            (t["last_version"] == forwarded).then_some(())
        }
    })
    .await;
    for year in YEARS {
        let t = get_json(&http, &format!("http://{}/api/v1/indicators?year={year}&code={CODE}", town.http_addr)).await.expect("town");
        let p =
            get_json(&http, &format!("http://{}/api/v1/indicators?year={year}&code={CODE}", province.http_addr)).await.expect("province");
        let (t, p) = (&t["indicators"][0], &p["indicators"][0]);
        assert_eq!((&t["numerator"], &t["denominator"]), (&p["numerator"], &p["denominator"]), "year {year}: town {t} vs province {p}");
    }
    eprintln!(
        "cluster figure: {total} events acknowledged by {} wards, {total} applied once, 0 lost; stream holds {stream_messages} \
         ({} duplicates absorbed by the town); province at snapshot version {forwarded}; whole test {:?}",
        WARDS.len(),
        stream_messages - total,
        started.elapsed()
    );

    for w in wards {
        w.shutdown().await;
    }
    town.shutdown().await;
    province.shutdown().await;
}

/// A town and province that ran with one replica (say, before the second and
/// third machine arrived) scale their streams to three at their next start
/// with `stream_replicas = 3`, keeping what the streams hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_r1_streams_are_scaled_to_r3_at_the_next_start() {
    treem_tests::init_tracing();
    let parts =
        Parts { dir: tempfile::tempdir().expect("temp dir"), cluster: NatsCluster::start().await, http: treem_tests::auth::client() };
    parts.provision_tokens();
    let js = jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(parts.cluster.connect().await);
    let events = subject::town_events_stream("70", "690");
    let projections = subject::province_projections_stream("70");
    let replicas = |name: String| {
        let js = js.clone();
        move || {
            let (js, name) = (js.clone(), name.clone());
            async move { Some(js.get_stream(&name).await.ok()?.info().await.ok()?.config.num_replicas) }
        }
    };

    // The same data directories as `Parts::town` / `Parts::province`, one replica.
    let town = treem_town::start(treem_town::Config {
        data_dir: parts.path("town"),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        nats_url: parts.cluster.urls(),
        backoff_min_ms: 20,
        backoff_max_ms: 300,
        ..Default::default()
    })
    .await
    .expect("town starts with 1 replica");
    let province = treem_province::start(treem_province::Config {
        data_dir: parts.path("province"),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        nats_url: parts.cluster.urls(),
        ..Default::default()
    })
    .await
    .expect("province starts with 1 replica");
    let ward = parts.ward("25333").await;
    let url = format!("http://{}/api/v1/events", ward.http_addr);
    for i in 0..20u64 {
        let body = json!({"kind": "indicator.observed", "body": {
            "indicator": CODE, "year": 2025, "numerator": i, "denominator": 100, "source": "health_centre"}});
        let r = parts.http.post(&url).json(&body).send().await.expect("POST an event");
        assert_eq!(r.status().as_u16(), 201);
    }
    assert_eq!(wait_for("the events stream exists", WAIT, replicas(events.clone())).await, 1);
    assert_eq!(wait_for("the projections stream exists", WAIT, replicas(projections.clone())).await, 1);
    let sync = format!("http://{}/api/v1/sync", town.http_addr);
    wait_for("the town applies the 20 events", WAIT, || {
        let (http, sync) = (parts.http.clone(), sync.clone());
        async move {
            let v = get_json(&http, &sync).await?;
            (v["wards"].as_array()?.iter().find(|w| w["ward"] == "25333")?["applied"] == 20).then_some(())
        }
    })
    .await;
    town.shutdown().await;
    province.shutdown().await;

    let town = parts.town().await;
    let province = parts.province().await;
    for name in [&events, &projections] {
        let check = replicas(name.clone());
        wait_for(&format!("{name} scaled to 3 replicas"), WAIT, || {
            let check = check.clone();
            async move { (check().await? == 3).then_some(()) }
        })
        .await;
        wait_replicas_current(&js, name).await;
    }
    let held = js.get_stream(&events).await.expect("stream").info().await.expect("info").state.messages;
    assert_eq!(held, 20, "scaling keeps what the stream holds");
    // The town still works on the scaled stream: more events arrive.
    for i in 0..5u64 {
        let body = json!({"kind": "indicator.observed", "body": {
            "indicator": CODE, "year": 2024, "numerator": i, "denominator": 100, "source": "health_centre"}});
        let r = parts.http.post(&url).json(&body).send().await.expect("POST an event");
        assert_eq!(r.status().as_u16(), 201);
    }
    let sync = format!("http://{}/api/v1/sync", town.http_addr);
    wait_for("the town applies all 25 events on the R3 stream", WAIT, || {
        let (http, sync) = (parts.http.clone(), sync.clone());
        async move {
            let v = get_json(&http, &sync).await?;
            let w = v["wards"].as_array()?.iter().find(|w| w["ward"] == "25333")?.clone();
            (w["applied"] == 25 && w["last_seq_applied"] == 25).then_some(())
        }
    })
    .await;
    ward.shutdown().await;
    town.shutdown().await;
    province.shutdown().await;
}
