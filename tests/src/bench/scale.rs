//! Scale beyond one town: many simulated wards with the real town and
//! province services, on one nats-server and on the three-node JetStream
//! cluster.
//!
//! A scenario is a synthetic hierarchy ([`super::hierarchy::synthetic`]):
//!
//! - **Bình Phước 2021**: one province, 11 towns, 111 communes;
//! - **Vietnam 2025**: 34 provinces, 3,321 communes. The two-level
//!   administration has no towns; each province gets one aggregation town
//!   over all its communes (97 or 98), as treem keeps a town node over
//!   former units.
//!
//! Every town and province runs in this process ([`treem_town::start`],
//! [`treem_province::start`]) against fresh NATS, in one of two
//! [`Setup`]s, each scenario once per setup asked for:
//!
//! - [`Setup::Single`]: one nats-server ([`crate::NatsServer`], the shipped
//!   `deploy/nats/treem.conf`), streams with one replica;
//! - [`Setup::Cluster`]: the three-node JetStream cluster
//!   ([`crate::NatsCluster`], the shipped `deploy/nats/cluster/`), every
//!   town's and province's stream with `stream_replicas = 3`, and every
//!   service and simulated ward given the three URLs (clients pick a node
//!   at random, as the services do).
//!
//! Each simulated ward publishes a one-month backlog — `days` × `per_day` events of the
//! benchmark mix, seq 1, 2, 3…, its last event an observation of
//! [`MARKER_CODE`] with numerator 1 — exactly as a ward's replicator does
//! (subject, `Nats-Msg-Id`, `Nats-Expected-Stream`, up to 1024 in flight),
//! but from memory instead of a sled log, so thousands of wards fit on one
//! machine. At most `concurrent_wards` wards publish at once (a month's
//! outage ending everywhere at the same moment).
//!
//! Figures:
//! - publish rate: events / time until every backlog is acknowledged;
//! - town throughput: events / time until every town applied every event
//!   (the towns' own `applied_total`);
//! - roll-up: time until every province's figure of [`MARKER_CODE`] counts
//!   all of its communes — the whole month is then visible at the province;
//!   reported as the time after the last town finished applying;
//! - live roll-up latency: `probes` rounds; in each, one ward per province
//!   records an observation of [`PROBE_CODE`] (numerator = round) and the
//!   time until its province's API shows it is taken, p50/p99 over all;
//! - capacity: the town throughput × 86,400 is the events a day the setup
//!   keeps up with; divided by the scenario's events per commune and day it
//!   is the number of communes the setup serves before it stops being
//!   enough. That is a ceiling of this machine, not of NATS alone: the
//!   towns, the provinces and the simulated wards share its cores with the
//!   nats-servers, so CPU seconds are taken from `/proc` over the timed
//!   part (publish → roll-up complete) — this process (services + wards)
//!   and the nats-server processes — to show which side used them.
//!
//! The smoke run ([`super::Options::smoke`]) runs both setups at its tiny
//! size: the cluster adds about 3 s a scenario (three servers electing a
//! meta leader, R3 stream placement), 7 s in all in a debug build. At full
//! size the cluster's untimed part is long too: creating 68 R3 streams and
//! their consumers on a loaded 2-core machine took minutes for Vietnam.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use treem_proto::provenance::{EventHash, RegisteredKey, SigningKey};
use treem_proto::subject::{self, WardPath};

use super::hierarchy::{synthetic, synthetic_codes};
use super::jetstream::{IN_FLIGHT, context};
use super::procs::Viewer;
use super::stats::{Latencies, cpu_times, rate};
use super::system::get_json;
use super::workload::{CURRENT_YEAR, MARKER_CODE, Mix, PROBE_CODE, envelope, observed};
use super::{Scratch, wait_until};
use crate::{NatsCluster, NatsServer};

/// The NATS a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Setup {
    /// One nats-server, streams with one replica.
    #[default]
    Single,
    /// The three-node JetStream cluster, streams with three replicas.
    Cluster,
}

impl Setup {
    /// Both, in the order they run.
    pub const ALL: [Setup; 2] = [Setup::Single, Setup::Cluster];

    /// The name `--scale-on` takes: `single` or `cluster`.
    pub fn name(self) -> &'static str {
        match self {
            Setup::Single => "single",
            Setup::Cluster => "cluster",
        }
    }

    /// The setup named `name` (see [`Setup::name`]).
    pub fn parse(name: &str) -> Option<Setup> {
        Setup::ALL.into_iter().find(|s| s.name() == name)
    }

    /// `stream_replicas` of every town and province.
    pub fn replicas(self) -> usize {
        match self {
            Setup::Single => 1,
            Setup::Cluster => crate::cluster::NODES,
        }
    }

    /// How the report names the NATS of a run.
    pub fn describe(self) -> &'static str {
        match self {
            Setup::Single => "one nats-server",
            Setup::Cluster => "the R3 cluster",
        }
    }
}

/// A running [`Setup`].
enum Nats {
    Single(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    async fn start(setup: Setup) -> Nats {
        match setup {
            Setup::Single => Nats::Single(NatsServer::start().await),
            Setup::Cluster => Nats::Cluster(NatsCluster::start().await),
        }
    }

    /// What services take as `nats_url`: one URL or the three, comma-separated.
    fn url(&self) -> String {
        match self {
            Nats::Single(n) => n.url(),
            Nats::Cluster(c) => c.urls(),
        }
    }

    async fn connect(&self) -> async_nats::Client {
        match self {
            Nats::Single(n) => n.connect().await,
            Nats::Cluster(c) => c.connect().await,
        }
    }
}

/// The shape and volume of one simulation.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub provinces: usize,
    pub towns_per_province: usize,
    /// Wards of each town, cycled over the towns in order.
    pub wards_per_town: Vec<usize>,
    pub days: u64,
    pub per_day: u64,
    pub concurrent_wards: usize,
    pub probes: usize,
}

impl Scenario {
    /// Bình Phước in 2021: 111 communes in 11 towns.
    pub fn binh_phuoc(days: u64, per_day: u64) -> Scenario {
        Scenario {
            name: "Bình Phước 2021".into(),
            provinces: 1,
            towns_per_province: 11,
            wards_per_town: vec![11, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],
            days,
            per_day,
            concurrent_wards: 256,
            probes: 5,
        }
    }

    /// Vietnam in 2025: 3,321 communes in 34 provinces (23 of 98, 11 of 97).
    pub fn vietnam(days: u64, per_day: u64) -> Scenario {
        let mut wards = vec![98; 23];
        wards.extend([97; 11]);
        Scenario {
            name: "Vietnam 2025".into(),
            provinces: 34,
            towns_per_province: 1,
            wards_per_town: wards,
            days,
            per_day,
            concurrent_wards: 256,
            probes: 3,
        }
    }

    pub fn wards(&self) -> usize {
        (0..self.provinces * self.towns_per_province).map(|i| self.wards_per_town[i % self.wards_per_town.len()]).sum()
    }
}

/// What one simulation measured.
#[derive(Debug, Clone, Default)]
pub struct ScaleFigures {
    /// The scenario's name ([`Scenario::name`]).
    pub scenario: String,
    /// It with the run's size and setup, as the report names it.
    pub name: String,
    pub wards: usize,
    pub towns: usize,
    pub provinces: usize,
    pub events: u64,
    pub publish_rate: f64,
    pub town_rate: f64,
    pub towns_done: Duration,
    pub rollup_done: Duration,
    pub rollup_after_towns: Duration,
    pub probes: Latencies,
    /// Events a day one server keeps up with, from the town throughput.
    pub per_day_capacity: f64,
    pub per_day: u64,
    pub setup: Setup,
    /// Wall time of the timed part (publish → every province complete).
    pub timed: Duration,
    /// CPU time over it of this process (services and simulated wards)…
    pub cpu_services: Duration,
    /// …and of the nats-server processes.
    pub cpu_nats: Duration,
}

impl ScaleFigures {
    /// Communes the setup keeps up with at this scenario's events per commune and day.
    pub fn communes_capacity(&self) -> f64 {
        self.per_day_capacity / (self.per_day.max(1) as f64)
    }
}

/// Runs one scenario on fresh NATS of `setup`; everything is stopped after.
pub async fn run(scratch: &Scratch, scenario: &Scenario, setup: Setup) -> anyhow::Result<ScaleFigures> {
    let dir = scratch.dir(&format!("scale-{}-{}", scenario.provinces, setup.name()))?;
    let codes = synthetic_codes(scenario.provinces, scenario.towns_per_province, &scenario.wards_per_town);
    let hierarchy = synthetic(&dir, &codes)?;
    let wards: Vec<WardPath> = codes
        .iter()
        .flat_map(|(p, ts)| {
            ts.iter().flat_map(move |(t, ws)| ws.iter().map(move |w| WardPath { province: p.clone(), town: t.clone(), ward: w.clone() }))
        })
        .collect();
    let per_ward = scenario.days * scenario.per_day;
    let events = wards.len() as u64 * (per_ward + 1);
    // Untimed: every ward's signed backlog, built on all cores.
    let (mut backlogs, mut tips) = (Vec::new(), Vec::new());
    let chunk = wards.len().div_ceil(8).max(1);
    let mut builders = Vec::new();
    for (c, part) in wards.chunks(chunk).enumerate() {
        let (part, days) = (part.to_vec(), scenario.days);
        builders.push(tokio::task::spawn_blocking(move || {
            part.into_iter().enumerate().map(|(i, w)| Backlog::build(w, (c * chunk + i) as u64, per_ward, days)).collect::<Vec<_>>()
        }));
    }
    for b in builders {
        for backlog in b.await? {
            tips.push(backlog.tip());
            backlogs.push(backlog);
        }
    }
    for (p, ts) in &codes {
        for (t, ws) in ts {
            let keys: treem_town::provenance::KeysFile = ws
                .iter()
                .map(|w| {
                    let tip = tips.iter().find(|x| &x.path.ward == w).expect("every ward has a backlog");
                    (w.clone(), vec![tip.registered.clone()])
                })
                .collect();
            std::fs::write(dir.join(format!("keys-{p}-{t}.json")), serde_json::to_vec(&keys)?)?;
        }
    }
    let nats = Nats::start(setup).await;
    let viewer = Viewer::new()?;
    let mut provinces = Vec::new();
    let mut towns = Vec::new();
    for (p, ts) in &codes {
        let data_dir = dir.join(format!("province-{p}"));
        viewer.provision(&data_dir)?;
        let config = treem_province::Config {
            province: p.clone(),
            data_dir,
            http_addr: "127.0.0.1:0".parse()?,
            nats_url: nats.url(),
            stream_replicas: setup.replicas(),
            hierarchy_file: Some(hierarchy.clone()),
            ..Default::default()
        };
        provinces.push((p.clone(), ts.iter().map(|(_, w)| w.len() as u64).sum::<u64>(), treem_province::start(config).await?));
        for (t, _) in ts {
            let data_dir = dir.join(format!("town-{t}"));
            viewer.provision(&data_dir)?;
            let config = treem_town::Config {
                province: p.clone(),
                town: t.clone(),
                data_dir,
                http_addr: "127.0.0.1:0".parse()?,
                nats_url: nats.url(),
                stream_replicas: setup.replicas(),
                hierarchy_file: Some(hierarchy.clone()),
                ward_keys_file: Some(dir.join(format!("keys-{p}-{t}.json"))),
                ..Default::default()
            };
            towns.push(treem_town::start(config).await?);
        }
    }
    let js = context(nats.connect().await);
    for (p, ts) in &codes {
        for (t, _) in ts {
            let stream = subject::town_events_stream(p, t);
            wait_until(&format!("town {t} created {stream}"), Duration::from_secs(120), Duration::from_millis(20), || {
                let (js, stream) = (js.clone(), stream.clone());
                async move { js.get_stream(&stream).await.ok().map(|_| ()) }
            })
            .await?;
        }
    }

    let clients: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..wards.len().clamp(1, 16) {
            v.push(context(nats.connect().await));
        }
        v
    };
    // Untimed: every stream takes publishes through every connection. On the
    // cluster a stream exists (get_stream answers) before its leader is
    // elected and its subjects are known on every node; until then a
    // publish gets "no responders". A ward's replicator retries that; the
    // simulated wards do not, so wait here. The probe names another stream
    // in `Nats-Expected-Stream`: the stream answers with an error and
    // stores nothing.
    let mut probed = std::collections::BTreeSet::new();
    for b in &backlogs {
        let Some(first) = b.messages.first() else { continue };
        if !probed.insert(b.stream.clone()) {
            continue;
        }
        for c in clients.iter().chain([&js]) {
            wait_until(&format!("{} takes publishes", b.stream), Duration::from_secs(120), Duration::from_millis(20), || {
                let (c, subject) = (c.clone(), first.subject.clone());
                async move {
                    let publish = PublishMessage::build().payload(bytes::Bytes::new()).expected_stream("TREEM_BENCH_NOT_THIS_STREAM");
                    match c.send_publish(subject, publish).await.ok()?.await {
                        Err(e) if e.kind() == PublishErrorKind::StreamNotFound => None,
                        _ => Some(()),
                    }
                }
            })
            .await?;
        }
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(scenario.concurrent_wards.max(1)));
    let started = Instant::now();
    let cpu_before = cpu_times();
    let mut publishers = Vec::new();
    for (i, ward) in backlogs.into_iter().enumerate() {
        let (js, gate) = (clients[i % clients.len()].clone(), gate.clone());
        publishers.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let mut acks = FuturesOrdered::new();
            for m in ward.messages {
                let publish = PublishMessage::build().payload(m.payload).message_id(m.msg_id).expected_stream(ward.stream.as_str());
                let ack = js.send_publish(m.subject, publish).await?;
                acks.push_back(std::future::IntoFuture::into_future(ack));
                while acks.len() >= IN_FLIGHT {
                    acks.next().await.expect("an ack is pending")?;
                }
            }
            while let Some(ack) = acks.next().await {
                ack?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for p in publishers {
        p.await??;
    }
    let published = started.elapsed();
    let applied = || towns.iter().map(|t| t.shared.applied_total.load(Ordering::Relaxed)).sum::<u64>();
    wait_until("every town applied every simulated event", Duration::from_secs(7200), Duration::from_millis(20), || {
        let done = applied() >= events;
        async move { done.then_some(()) }
    })
    .await?;
    let towns_done = started.elapsed();
    let http = viewer.client()?;
    for (p, wards_in, node) in &provinces {
        let url = format!("http://{}/api/v1/indicators?year={CURRENT_YEAR}&code={MARKER_CODE}", node.http_addr);
        wait_until(&format!("province {p} counts its {wards_in} communes"), Duration::from_secs(1200), Duration::from_millis(50), || {
            let (http, url) = (http.clone(), url.clone());
            async move { (numerator(&http, &url).await? >= *wards_in).then_some(()) }
        })
        .await?;
    }
    let rollup_done = started.elapsed();
    let cpu_after = cpu_times();

    let mut probes = Latencies::default();
    for round in 1..=scenario.probes as u64 {
        for (p, _, node) in &provinces {
            let tip = tips.iter_mut().find(|t| &t.path.province == p).context("a province has wards")?;
            let m = tip.next(observed(PROBE_CODE, round));
            let t0 = Instant::now();
            let stream = subject::town_events_stream(&tip.path.province, &tip.path.town);
            let publish = PublishMessage::build().payload(m.payload).message_id(m.msg_id).expected_stream(stream.as_str());
            js.send_publish(m.subject, publish).await?.await?;
            let url = format!("http://{}/api/v1/indicators?year={CURRENT_YEAR}&code={PROBE_CODE}", node.http_addr);
            wait_until(&format!("province {p} shows probe {round}"), Duration::from_secs(120), Duration::from_millis(5), || {
                let (http, url) = (http.clone(), url.clone());
                async move { (numerator(&http, &url).await? >= round).then_some(()) }
            })
            .await?;
            probes.push(t0.elapsed());
        }
    }

    for t in towns {
        t.shutdown().await;
    }
    for (_, _, p) in provinces {
        p.shutdown().await;
    }
    drop(nats);
    let town_rate = rate(events, towns_done);
    let (n_wards, n_towns, n_provinces) = (wards.len(), codes.iter().map(|(_, t)| t.len()).sum::<usize>(), codes.len());
    Ok(ScaleFigures {
        name: format!(
            "{} ({n_wards} communes, {n_towns} town{}, {n_provinces} province{}{})",
            scenario.name,
            if n_towns == 1 { "" } else { "s" },
            if n_provinces == 1 { "" } else { "s" },
            if setup == Setup::Cluster { ", R3 cluster" } else { "" }
        ),
        scenario: scenario.name.clone(),
        wards: n_wards,
        towns: n_towns,
        provinces: n_provinces,
        events,
        publish_rate: rate(events, published),
        town_rate,
        towns_done,
        rollup_done,
        rollup_after_towns: rollup_done.saturating_sub(towns_done),
        probes,
        per_day_capacity: town_rate * 86_400.0,
        per_day: scenario.per_day,
        setup,
        timed: rollup_done,
        cpu_services: cpu_after.0.saturating_sub(cpu_before.0),
        cpu_nats: cpu_after.1.saturating_sub(cpu_before.1),
    })
}

/// One message of a simulated ward, ready to publish.
struct Message {
    subject: String,
    msg_id: String,
    payload: bytes::Bytes,
}

/// A simulated ward's signing key and the end of its hash chain.
struct Tip {
    path: WardPath,
    key: SigningKey,
    registered: RegisteredKey,
    prev: Option<EventHash>,
    next_seq: u64,
}

impl Tip {
    /// Signs `event` as the ward's next one, chained to the one before.
    fn next(&mut self, event: treem_proto::event::Event) -> Message {
        let mut env = envelope(&self.path, self.next_seq, Utc::now(), event);
        self.prev = Some(self.key.sign(&mut env, self.prev));
        self.next_seq += 1;
        Message { subject: subject::event_subject(&env), msg_id: env.msg_id(), payload: env.encode().into() }
    }
}

/// A simulated ward's month: `per_ward` events of the mix spread over
/// `days`, then the marker; signed and chained as a ward's log does.
struct Backlog {
    stream: String,
    messages: Vec<Message>,
    tip: Tip,
}

impl Backlog {
    fn build(path: WardPath, index: u64, per_ward: u64, days: u64) -> Backlog {
        let mut rng = crate::faults::SplitMix64::new(0x5ca1e + index);
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let key = SigningKey::from_secret(&secret);
        let registered = RegisteredKey { key_id: key.key_id(), public_key: key.public_key().to_hex(), valid_from_seq: 1 };
        let stream = subject::town_events_stream(&path.province, &path.town);
        let mut tip = Tip { path, key, registered, prev: None, next_seq: 1 };
        let mut mix = Mix::new(9000 + index);
        let now = Utc::now();
        let mut messages = Vec::with_capacity(per_ward as usize + 1);
        for seq in 1..=per_ward + 1 {
            let event = if seq > per_ward { observed(MARKER_CODE, 1) } else { mix.next_any() };
            let age = chrono::Duration::seconds(((per_ward + 1 - seq) * days * 86_400 / (per_ward + 1)) as i64);
            let mut env = envelope(&tip.path, seq, now - age, event);
            tip.prev = Some(tip.key.sign(&mut env, tip.prev));
            messages.push(Message { subject: subject::event_subject(&env), msg_id: env.msg_id(), payload: env.encode().into() });
        }
        tip.next_seq = per_ward + 2;
        Backlog { stream, messages, tip }
    }

    fn tip(&self) -> Tip {
        Tip {
            path: self.tip.path.clone(),
            key: self.tip.key.clone(),
            registered: self.tip.registered.clone(),
            prev: self.tip.prev,
            next_seq: self.tip.next_seq,
        }
    }
}

/// The numerator of the first indicator of a province `/api/v1/indicators` answer.
async fn numerator(http: &reqwest::Client, url: &str) -> Option<u64> {
    let v = get_json(http, url).await.ok()?;
    Some(v["indicators"][0]["numerator"].as_u64().unwrap_or(0))
}
