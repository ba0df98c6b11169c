//! Fault injection of the whole system: a seeded random schedule of crashes,
//! outages and bad links while wards record, then a check of every
//! invariant of DESIGN.md §3. Used by the short run in the test suite
//! (`tests/tests/e2e/faults.rs`) and by `treem-soak`, the long run a person
//! starts (`tests/src/bin/treem-soak.rs`).
//!
//! A run ([`run`]):
//! 1. starts the system as real processes ([`system::Rig`]): nats-server,
//!    the province, the town, `wards` wards, every NATS client behind its
//!    own TCP proxy ([`crate::proxy`]);
//! 2. starts one writer per ward ([`load`]) that records events over HTTP and
//!    keeps the ones the ward acknowledged;
//! 3. plays the schedule of the seed ([`schedule`]) over the fault window:
//!    kill -9 of any service (restarted after a random delay), kill -9 or
//!    restart of nats-server (same port, same store), cut, slow and lossy
//!    links, raw re-publication of old stream messages;
//! 4. stops the writers, waits for every fault to end, heals everything,
//!    and measures how long the system takes to converge;
//! 5. checks every invariant ([`check`]), stops the town and runs
//!    `treem-town rebuild`, which must find the rebuilt projection equal to
//!    the live one;
//! 6. returns a [`Report`]: faults injected by kind, events acknowledged,
//!    lost (must be 0), applied twice (must be 0), time to converge, and
//!    every violation found.
//!
//! The seed fixes the schedule and each writer's choices; it does not fix
//! timing (where a kill lands, how fast a restart is). A failing run is
//! re-run with its seed to replay the same faults, and usually fails the
//! same way, but not always at the same event.
//!
//! The run directory (service logs, data directories) is removed after a
//! passing run and kept after a failing one; the report names it.

pub mod check;
pub mod load;
pub mod schedule;
pub mod system;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use treem_proto::subject;

pub use schedule::{Fault, Link, ScheduleParams, Service, SplitMix64, Step, Target};
use system::{PROVINCE, Rig, TOWN};

use crate::proxy::ProxyStats;

/// The wards of Bình Long, in the order runs use them.
pub const WARDS: [&str; 6] = ["25320", "25324", "25325", "25326", "25333", "25336"];

/// The seed of the test suite's short run: its schedule holds every kind of
/// fault (a unit test of `schedule` keeps it so).
pub const SHORT_RUN_SEED: u64 = 7;

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct Params {
    pub seed: u64,
    /// The fault window (writers record during it).
    pub duration: Duration,
    /// 1 to 6.
    pub wards: usize,
    /// Mean time between two fault starts.
    pub fault_every: Duration,
    /// Events per second each writer records (on average).
    pub rate: f64,
    /// How long the system may take to converge once every fault has ended.
    pub converge_deadline: Duration,
    /// Where `treem-ward`, `treem-town` and `treem-province` are.
    pub bin_dir: PathBuf,
    /// Keep the run directory even if the run passes.
    pub keep: bool,
}

impl Params {
    /// The short run of the test suite: 4 wards, 20 s of faults.
    pub fn short(seed: u64, bin_dir: PathBuf) -> Params {
        Params {
            seed,
            duration: Duration::from_secs(20),
            wards: 4,
            fault_every: Duration::from_millis(1200),
            rate: 15.0,
            converge_deadline: Duration::from_secs(120),
            bin_dir,
            keep: false,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub wards: usize,
    pub fault_window_secs: f64,
    pub fault_every_secs: f64,
    /// Events per second each writer aimed at.
    pub rate: f64,
    pub wall_secs: f64,
    pub faults_planned: usize,
    /// Faults injected, by kind (a fault whose target could not be brought
    /// back still counts, and is a violation).
    pub faults_injected: BTreeMap<String, u64>,
    pub faults_total: u64,
    /// Raw copies re-published on the town's stream and the province's.
    pub redelivered_events: u64,
    pub redelivered_snapshots: u64,
    pub requests: u64,
    pub events_acknowledged: u64,
    /// Requests without an answer (the event may or may not be recorded).
    pub requests_unanswered: u64,
    pub events_in_logs: u64,
    pub events_lost: u64,
    pub applied_twice: u64,
    pub stream_messages: u64,
    /// From the end of the last fault until every check of convergence held.
    pub converge_secs: Option<f64>,
    /// `treem-town rebuild` found the rebuilt projection equal to the live one.
    pub rebuild_equal: Option<bool>,
    pub restarts: BTreeMap<String, u32>,
    pub proxies: BTreeMap<String, ProxyStats>,
    pub violations: Vec<String>,
    pub work_dir: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        s += &format!(
            "fault run seed {} {verdict}: {} wards, {:.0} s of faults, {:.0} s in all\n",
            self.seed, self.wards, self.fault_window_secs, self.wall_secs
        );
        let kinds: Vec<String> = self.faults_injected.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        s += &format!("  faults injected: {} ({})\n", self.faults_total, kinds.join(", "));
        s += &format!("  redelivered copies: {} ward events, {} snapshots\n", self.redelivered_events, self.redelivered_snapshots);
        s += &format!(
            "  events acknowledged: {} of {} requests ({} unanswered); in the ward logs: {}; stream messages: {}\n",
            self.events_acknowledged, self.requests, self.requests_unanswered, self.events_in_logs, self.stream_messages
        );
        s += &format!("  events lost: {}   applied twice: {}\n", self.events_lost, self.applied_twice);
        s += &format!(
            "  converged {} after the last fault; rebuild equals live: {}\n",
            self.converge_secs.map_or("NEVER".into(), |c| format!("{c:.1} s")),
            self.rebuild_equal.map_or("not run".into(), |b| b.to_string())
        );
        for v in &self.violations {
            s += &format!("  VIOLATION: {v}\n");
        }
        if !self.passed() {
            s += &format!(
                "  replay this schedule: treem-soak --seed {} --runs 1 --wards {} --duration {}s --fault-every {}s --rate {}\n",
                self.seed, self.wards, self.fault_window_secs, self.fault_every_secs, self.rate
            );
        }
        if let Some(dir) = &self.work_dir {
            s += &format!("  run directory (logs, data): {dir}\n");
        }
        s
    }
}

/// Counters of a run's fault tasks.
#[derive(Default)]
struct Injected {
    by_kind: std::sync::Mutex<BTreeMap<String, u64>>,
    redelivered_events: AtomicU64,
    redelivered_snapshots: AtomicU64,
    problems: std::sync::Mutex<Vec<String>>,
}

/// One full run (see the module doc). Never panics on a finding: every
/// problem is a violation in the report.
pub async fn run(params: &Params) -> Report {
    let started = Instant::now();
    let mut report = Report {
        seed: params.seed,
        wards: params.wards,
        fault_window_secs: params.duration.as_secs_f64(),
        fault_every_secs: params.fault_every.as_secs_f64(),
        rate: params.rate,
        faults_injected: schedule::kinds().map(|k| (k.to_string(), 0)).collect(),
        ..Report::default()
    };
    let dir = match tempfile::Builder::new().prefix(&format!("treem-faults-{}-", params.seed)).tempdir() {
        Ok(d) => d,
        Err(e) => {
            report.violations.push(format!("cannot create the run directory: {e}"));
            return report;
        }
    };
    tracing::info!(seed = params.seed, wards = params.wards, dir = %dir.path().display(), "fault run starting");
    let rig = match Rig::start(dir.path(), &params.bin_dir, params.wards, params.seed).await {
        Ok(rig) => rig,
        Err(e) => {
            report.violations.push(format!("the system did not start: {e:#}"));
            report.work_dir = Some(dir.keep().display().to_string());
            return report;
        }
    };
    play(params, &rig, &mut report).await;

    for (service, proc) in &rig.procs {
        let proc = proc.lock().await;
        report.restarts.insert(service.name(), proc.starts.saturating_sub(1));
        report.violations.extend(proc.unexpected_exits.iter().cloned());
    }
    report.proxies = rig.proxies.iter().map(|(link, p)| (link.name(), p.stats())).collect();
    rig.kill_all().await;
    if !report.passed() {
        rig.keep_nats_evidence().await;
    }
    drop(rig);
    report.wall_secs = started.elapsed().as_secs_f64();
    if !report.passed() || params.keep {
        report.work_dir = Some(dir.keep().display().to_string());
    }
    tracing::info!(seed = params.seed, passed = report.passed(), "fault run finished");
    report
}

async fn play(params: &Params, rig: &Arc<Rig>, report: &mut Report) {
    // The load.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (i, ward) in WARDS.iter().enumerate().take(params.wards) {
        let addr_file = rig.proc(Service::Ward(i)).lock().await.addr_file();
        let seed = params.seed ^ (0xA11CE + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        writers.push(tokio::spawn(load::write(i, ward.to_string(), addr_file, rig.http.clone(), seed, params.rate, stop.clone())));
    }

    // The faults, each target's one after the other.
    let steps = schedule::schedule(
        params.seed,
        &ScheduleParams { duration: params.duration, wards: params.wards, fault_every: params.fault_every },
    );
    report.faults_planned = steps.len();
    let injected = Arc::new(Injected::default());
    let mut locks: BTreeMap<Target, Arc<Mutex<()>>> = BTreeMap::new();
    let mut tasks = Vec::new();
    let window = Instant::now();
    for step in steps {
        tokio::time::sleep_until(window + step.at).await;
        let lock = locks.entry(step.fault.target()).or_default().clone();
        let (rig, injected) = (rig.clone(), injected.clone());
        let fault = step.fault.clone();
        tasks.push((step, tokio::spawn(async move { inject(&rig, fault, &lock, &injected).await })));
    }
    tokio::time::sleep_until(window + params.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut ledgers = Vec::new();
    for w in writers {
        match w.await {
            Ok(ledger) => ledgers.push(ledger),
            Err(e) => report.violations.push(format!("a writer failed: {e}")),
        }
    }
    for (step, task) in tasks {
        if let Err(e) = task.await {
            report.violations.push(format!("harness failure during \"{}\" at {:?}: {e}", step.fault, step.at));
        }
    }
    report.faults_injected.extend(injected.by_kind.lock().expect("lock").clone());
    report.faults_total = report.faults_injected.values().sum();
    report.redelivered_events = injected.redelivered_events.load(Ordering::Relaxed);
    report.redelivered_snapshots = injected.redelivered_snapshots.load(Ordering::Relaxed);
    report.violations.extend(injected.problems.lock().expect("lock").drain(..));
    for l in &ledgers {
        report.requests += l.posts;
        report.requests_unanswered += l.unanswered;
        report.violations.extend(l.refused.iter().map(|r| format!("the ward refused a request of the load: {r}")));
    }

    // Heal, converge.
    report.violations.extend(rig.heal_all().await);
    let healed = Instant::now();
    let deadline = healed + params.converge_deadline;
    let mut waiting_for = String::new();
    loop {
        let why = match check::converged(rig).await {
            Ok(()) => {
                report.converge_secs = Some(healed.elapsed().as_secs_f64());
                break;
            }
            Err(why) => why,
        };
        // Say what the system is waiting for each time it changes (the
        // figures in it move, so compare only its first words).
        let what: String = why.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        if what != waiting_for {
            tracing::info!(after_secs = format!("{:.1}", healed.elapsed().as_secs_f64()), waiting_for = %why, "converging");
            waiting_for = what;
        }
        if Instant::now() > deadline {
            report.violations.push(format!(
                "not converged {:?} after the last fault: {why} ({})",
                params.converge_deadline,
                rig.stream_diagnosis().await
            ));
            // Where are the events the town waits for: lost by the stream, or skipped?
            for (ward, seq) in check::lagging_wards(rig).await.into_iter().take(3) {
                report.violations.push(format!("the town waits for {}", rig.locate(&ward, seq).await));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!(converge_secs = ?report.converge_secs, "faults over; checking the invariants");

    // Every invariant.
    let verdict = check::verify(rig, &ledgers).await;
    report.events_acknowledged = verdict.events_acknowledged;
    report.events_in_logs = verdict.events_in_logs;
    report.events_lost = verdict.events_lost;
    report.applied_twice = verdict.applied_twice;
    report.stream_messages = verdict.stream_messages;
    report.violations.extend(verdict.violations);
    if verdict.unlisted > 0 {
        report.violations.push(format!("... and {} more violations", verdict.unlisted));
    }

    // Rebuild equals live.
    match rebuild(rig).await {
        Ok(()) => report.rebuild_equal = Some(true),
        Err(e) => {
            report.rebuild_equal = Some(false);
            report.violations.push(e);
        }
    }
}

/// Injects one fault and ends it, holding its target's lock throughout.
async fn inject(rig: &Rig, fault: Fault, lock: &Mutex<()>, injected: &Injected) {
    let _target = lock.lock().await;
    tracing::info!(fault = %fault, "injecting");
    *injected.by_kind.lock().expect("lock").entry(fault.kind().to_string()).or_default() += 1;
    let problem = match fault {
        Fault::Kill { service, down } => {
            rig.proc(service).lock().await.kill().await;
            tokio::time::sleep(down).await;
            rig.proc(service).lock().await.start(&rig.http).await.err().map(|e| format!("restart after \"{fault}\": {e:#}"))
        }
        Fault::KillNats { down } => {
            rig.nats.lock().await.kill().await;
            tokio::time::sleep(down).await;
            rig.nats.lock().await.restart().await;
            None
        }
        Fault::RestartNats => {
            rig.nats.lock().await.restart().await;
            None
        }
        Fault::Cut { link, span } => {
            rig.proxy(link).cut();
            tokio::time::sleep(span).await;
            rig.proxy(link).heal();
            None
        }
        Fault::Slow { link, latency, span } => {
            rig.proxy(link).set_latency(latency);
            tokio::time::sleep(span).await;
            rig.proxy(link).heal();
            None
        }
        Fault::Lossy { link, lossy, span } => {
            rig.proxy(link).set_lossy(Some(lossy));
            tokio::time::sleep(span).await;
            rig.proxy(link).heal();
            None
        }
        Fault::Redeliver { events, snapshots, seed } => {
            let mut rng = SplitMix64::new(seed);
            let e = rig.redeliver(&subject::town_events_stream(PROVINCE, TOWN), events, &mut rng).await;
            let s = rig.redeliver(&subject::province_projections_stream(PROVINCE), snapshots, &mut rng).await;
            injected.redelivered_events.fetch_add(e, Ordering::Relaxed);
            injected.redelivered_snapshots.fetch_add(s, Ordering::Relaxed);
            None
        }
    };
    if let Some(p) = problem {
        tracing::error!(problem = %p, "a fault could not be ended");
        injected.problems.lock().expect("lock").push(p);
    }
}

/// Stops the town gracefully and runs `treem-town rebuild --into <new dir>`,
/// which replays the whole stream into a fresh store and exits 0 only if
/// its views equal the live store's. The town stays stopped.
async fn rebuild(rig: &Rig) -> Result<(), String> {
    let mut town = rig.proc(Service::Town).lock().await;
    if !town.stop().await {
        return Err("the town did not stop cleanly on SIGTERM before the rebuild".into());
    }
    let into = (1..).map(|n| rig.dir.join(format!("rebuild-{n}"))).find(|p| !p.exists()).expect("a free name");
    let mut cmd = town.command().map_err(|e| e.to_string())?;
    // The rebuild reads the stream directly, not through the town's proxy.
    cmd.env("TREEM_TOWN_NATS_URL", &rig.nats_url).arg("rebuild").arg("--into").arg(&into);
    match tokio::time::timeout(Duration::from_secs(300), cmd.status()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(format!(
            "treem-town rebuild exited with {s}: the rebuilt projection differs from the live one; see {}",
            town.log_path().display()
        )),
        Ok(Err(e)) => Err(format!("cannot run treem-town rebuild: {e}")),
        Err(_) => Err("treem-town rebuild did not finish within 300 s".into()),
    }
}
