//! treem's benchmark suite (issue 5, DESIGN.md §8): every stage measured
//! side by side with the raw limit of the part it sits on, in the same run
//! on the same machine, printed as one table.
//!
//! Run it with `scripts/bench.sh` (release build, nats-server, PostgreSQL,
//! then `treem-bench`); the smoke test `tests/tests/e2e/bench_smoke.rs`
//! runs every stage at [`Options::smoke`] size so the suite never rots. A
//! benchmark never fails the test suite over a figure: the smoke test only
//! checks that every stage ran and produced one.
//!
//! Stages, in the order they run (each module's doc says exactly what is
//! timed):
//!
//! | module | stage | raw limit |
//! | --- | --- | --- |
//! | [`disk`] | ward durable appends, 1 and 16 writers | sled insert + flush + fdatasync (1, per 100); write + fdatasync |
//! | [`jetstream`] | ward → town replication of a backlog | JetStream publish with `Nats-Msg-Id`, 1024 in flight |
//! | [`system`] | catch-up of six wards; latency record → town → province; town API overview under 64 clients; memory | the replication and consume limits |
//! | [`town`] | town apply of a full stream; rebuild; a ward's memory | pull fetch + explicit ack; pull fetch |
//! | [`postgres`] | the central-PostgreSQL alternative: inserts, the overview as SQL | — |
//! | [`scale`] | many simulated wards: 111 communes / 11 towns, 3,321 communes / 34 provinces; one nats-server, then the R3 cluster | the same run on one nats-server (for the cluster) |
//!
//! Everything a run writes lives in one directory under [`Options::dir`]
//! (ward logs, stores, service logs, the PostgreSQL cluster), removed at
//! the end unless [`Options::keep`]. The nats-servers are the test harness's
//! ([`crate::NatsServer`]): the shipped `deploy/nats/treem.conf`, their store
//! under the system temp dir (`TMPDIR`), which `scripts/bench.sh` points at
//! the same directory.

pub mod disk;
pub mod hierarchy;
pub mod jetstream;
pub mod postgres;
pub mod procs;
pub mod report;
pub mod scale;
pub mod stats;
pub mod system;
pub mod town;
pub mod workload;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub use report::{Report, Row};

use crate::NatsServer;

/// Sizes and durations of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the run directory is created.
    pub dir: PathBuf,
    /// Where `treem-ward`, `treem-town` and `treem-province` are.
    pub bin_dir: PathBuf,
    /// Keep the run directory afterwards.
    pub keep: bool,
    /// Seconds of each timed loop of the disk stage.
    pub disk_secs: f64,
    /// Wards coming online in the catch-up (1–6).
    pub wards: usize,
    /// Unsynced events of each of them.
    pub per_ward: u64,
    /// Backlog of the replication ward.
    pub replication_events: u64,
    /// Events per second (all wards together) of the latency stage, and for how long.
    pub latency_rate: f64,
    pub latency_secs: f64,
    /// Concurrent dashboard clients of the API stage, and for how long.
    pub api_clients: usize,
    pub api_secs: f64,
    /// Seconds an idle ward runs before its memory is read.
    pub idle_secs: f64,
    /// Events recorded by the ward whose memory is read while recording.
    pub rss_records: u64,
    /// Seconds of each pgbench run.
    pub pg_secs: u64,
    /// Scale simulations.
    pub scale: Vec<scale::Scenario>,
    /// The NATS each scale simulation runs against, each in turn.
    pub scale_setups: Vec<scale::Setup>,
    /// Stage groups to run (`disk`, `replication`, `system`, `postgres`, `scale`); empty: all.
    pub only: Vec<String>,
}

/// The stage groups, for [`Options::only`].
pub const GROUPS: [&str; 5] = ["disk", "replication", "system", "postgres", "scale"];

impl Options {
    /// The real run: the sizes of issue 5.
    pub fn full(bin_dir: PathBuf) -> Options {
        Options {
            dir: std::env::temp_dir(),
            bin_dir,
            keep: false,
            disk_secs: 5.0,
            wards: 6,
            per_ward: 200_000,
            replication_events: 200_000,
            latency_rate: 1000.0,
            latency_secs: 30.0,
            api_clients: 64,
            api_secs: 20.0,
            idle_secs: 3.0,
            rss_records: 10_000,
            pg_secs: 10,
            scale: vec![scale::Scenario::binh_phuoc(30, 20), scale::Scenario::vietnam(30, 10)],
            scale_setups: scale::Setup::ALL.to_vec(),
            only: Vec::new(),
        }
    }

    /// Every stage at a size that runs in seconds (the smoke test).
    pub fn smoke(bin_dir: PathBuf) -> Options {
        let mut bp = scale::Scenario::binh_phuoc(2, 5);
        (bp.towns_per_province, bp.wards_per_town, bp.probes) = (2, vec![2], 1);
        let mut vn = scale::Scenario::vietnam(2, 5);
        (vn.provinces, vn.wards_per_town, vn.probes) = (2, vec![2], 1);
        Options {
            dir: std::env::temp_dir(),
            bin_dir,
            keep: false,
            disk_secs: 0.2,
            wards: 6,
            per_ward: 150,
            replication_events: 200,
            latency_rate: 60.0,
            latency_secs: 1.0,
            api_clients: 64,
            api_secs: 0.5,
            idle_secs: 0.2,
            rss_records: 32,
            pg_secs: 1,
            scale: vec![bp, vn],
            scale_setups: scale::Setup::ALL.to_vec(),
            only: Vec::new(),
        }
    }

    fn runs(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
}

/// The run directory: removed on drop unless kept.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Scratch {
    pub fn new(parent: &Path, keep: bool) -> anyhow::Result<Scratch> {
        std::fs::create_dir_all(parent)?;
        let mut dir = tempfile::Builder::new().prefix("treem-bench-").tempdir_in(parent).context("create the run directory")?;
        if keep {
            dir.disable_cleanup(true);
        }
        let path = dir.path().to_path_buf();
        Ok(Scratch { dir: Some(dir), path })
    }

    pub fn root(&self) -> &Path {
        &self.path
    }

    /// `<run>/<name>` (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `<run>/<name>`, created.
    pub fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let p = self.path(name);
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // TempDir removes the directory unless cleanup was disabled.
        self.dir.take();
    }
}

/// Polls `check` every `every` until it gives a value, for at most
/// `deadline`; an error naming `what` after that. The benchmarks' version
/// of [`crate::wait_for`], which panics instead.
pub async fn wait_until<F, Fut, T>(what: &str, deadline: Duration, every: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if started.elapsed() >= deadline {
            anyhow::bail!("timed out after {:?} waiting until {what}", started.elapsed());
        }
        tokio::time::sleep(every).await;
    }
}

/// Awaits a stage; a failure is noted in the report (and printed) instead of ending the run.
async fn stage<T>(report: &mut Report, name: &str, fut: impl Future<Output = anyhow::Result<T>>) -> Option<T> {
    eprintln!("== {name}");
    let started = Instant::now();
    match fut.await {
        Ok(v) => {
            eprintln!("   ({name}: {:.1} s)", started.elapsed().as_secs_f64());
            Some(v)
        }
        Err(e) => {
            eprintln!("   {name} FAILED: {e:#}");
            report.failures.push(format!("{name}: {e:#}"));
            None
        }
    }
}

/// Runs every stage of `opts` in a new run directory, removed (unless
/// kept) before the report is returned.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let scratch = Scratch::new(&opts.dir, opts.keep)?;
    run_in(opts, &scratch).await
}

/// Runs every stage of `opts` in the run directory `scratch` and returns the report.
pub async fn run_in(opts: &Options, scratch: &Scratch) -> anyhow::Result<Report> {
    let mut report = Report::new(stats::machine(scratch.root()));
    eprintln!("treem-bench: {}; run directory {}", report.machine, scratch.root().display());
    let mut figures = report::Figures::default();

    if opts.runs("disk") {
        figures.disk = stage(&mut report, "ward durable appends vs sled and fdatasync", disk::run(scratch, opts.disk_secs)).await;
    }
    let hierarchy_file = hierarchy::with_bench_town(scratch.root())?;
    let nats = NatsServer::start().await;
    if opts.runs("replication") {
        figures.replication = stage(
            &mut report,
            "ward → town replication vs raw JetStream publish",
            jetstream::replication(scratch, &nats.url(), &hierarchy_file, opts.replication_events),
        )
        .await;
    }
    let mut load = None;
    if opts.runs("system") {
        let mut live = system::LiveFigures::default();
        load = stage(&mut report, "fill: six wards record their backlog offline", async {
            let mut copy = postgres::CopyFile::create(scratch.path("postgres-load.txt"))?;
            system::fill(opts, scratch, &mut copy).await?;
            copy.finish()
        })
        .await;
        let running = match load {
            Some(_) => stage(&mut report, "catch-up: the wards come online", system::catch_up(opts, scratch, &nats.url(), &mut live)).await,
            None => None,
        };
        if let Some(running) = running {
            stage(
                &mut report,
                "latency record → town → province",
                system::latency(&running, opts.latency_rate, opts.latency_secs, &mut live),
            )
            .await;
            stage(&mut report, "town API under dashboard clients", system::api(&running, opts.api_clients, opts.api_secs, &mut live)).await;
            stage(&mut report, "memory of the running services", system::measure_and_stop(running, &mut live)).await;
            figures.live = Some(live);
            figures.stream =
                stage(&mut report, "town apply of the full stream, rebuild vs raw consume", town::run(opts, scratch, &nats.url())).await;
        }
        figures.ward_memory =
            stage(&mut report, "a ward's memory, idle and recording", town::ward_memory(opts, scratch, &nats.url(), &hierarchy_file)).await;
    }
    drop(nats);
    if opts.runs("postgres") {
        let doc = String::from_utf8(
            workload::envelope(
                &treem_proto::subject::WardPath { province: "70".into(), town: "690".into(), ward: "25320".into() },
                1,
                chrono::Utc::now(),
                workload::Mix::new(1).next_event(),
            )
            .encode(),
        )?;
        let (path, lines) = match load.take() {
            Some(l) => l,
            None => {
                // Without the system stage, load a small sample of the mix instead.
                let mut copy = postgres::CopyFile::create(scratch.path("postgres-load.txt"))?;
                let ward = treem_proto::subject::WardPath { province: "70".into(), town: "690".into(), ward: "25320".into() };
                let mut sink = |env: &treem_proto::Envelope| copy.push(env);
                workload::fill_ward_log(&scratch.path("postgres-sample-ward"), ward, opts.per_ward, 1, &mut sink).await?;
                copy.finish()?
            }
        };
        figures.postgres = stage(
            &mut report,
            "PostgreSQL: inserts and the overview query",
            postgres::run(scratch, &path, lines, &doc, opts.pg_secs, opts.api_clients),
        )
        .await;
    }
    if opts.runs("scale") {
        for scenario in &opts.scale {
            for &setup in &opts.scale_setups {
                let name = format!("scale: {} ({} communes) on {}", scenario.name, scenario.wards(), setup.describe());
                if let Some(f) = stage(&mut report, &name, scale::run(scratch, scenario, setup)).await {
                    figures.scale.push(f);
                }
            }
        }
    }
    report.rows = report::rows(opts, &figures);
    Ok(report)
}
