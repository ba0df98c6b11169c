//! `treem-bench`: treem's benchmark suite, every stage side by side with the
//! raw limit of the part under it, measured in the same run; prints one
//! table (Markdown). See `treem_tests::bench` for what each stage times and
//! `BENCHMARKS.md` for figures. `scripts/bench.sh` builds, installs what it
//! needs and runs this.
//!
//! ```text
//! treem-bench [--dir PATH] [--bin-dir DIR] [--smoke] [--only disk,replication,system,postgres,scale]
//!             [--per-ward N] [--wards N] [--replication-events N] [--disk-secs S]
//!             [--latency-rate R] [--latency-secs S] [--api-clients N] [--api-secs S]
//!             [--rss-records N] [--pg-secs S] [--scale-days D] [--scale-per-day N]
//!             [--scale-on single,cluster] [--json-out FILE] [--keep]
//! ```

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use treem_tests::bench::{self, Options, scale};

const USAGE: &str = "usage: treem-bench [options]
  --dir PATH              where the run directory goes (default: the system temp dir; put it on the disk you care about)
  --bin-dir DIR           treem-ward, treem-town, treem-province (default: next to this binary)
  --smoke                 every stage at its smallest size (seconds), as the smoke test runs it
  --only G1,G2            stage groups: disk, replication, system, postgres, scale (default: all)
  --per-ward N            unsynced events of each ward in the catch-up (default 200000)
  --wards N               wards coming online in the catch-up, 1-6 (default 6)
  --replication-events N  backlog of the replication ward (default 200000)
  --disk-secs S           duration of each timed disk loop (default 5)
  --latency-rate R        events/s of the latency stage, all wards together (default 1000)
  --latency-secs S        its duration (default 30)
  --api-clients N         concurrent clients of the API stage and the SQL overview (default 64)
  --api-secs S            its duration (default 20)
  --rss-records N         events recorded by the ward whose memory is read (default 10000)
  --pg-secs S             duration of each pgbench run (default 10)
  --scale-days D          days of backlog of each simulated ward (default 30)
  --scale-per-day N       events a day of each simulated ward (default 20 for Binh Phuoc, 10 for Vietnam)
  --scale-on S1,S2        NATS of each scale simulation: single (one nats-server), cluster (the three-node
                          JetStream cluster of deploy/nats/cluster, R3 streams) (default: single,cluster)
  --json-out FILE         also write the report as JSON
  --keep                  keep the run directory";

#[global_allocator]
static ALLOCATOR: treem_heap::Allocator = treem_heap::Allocator;

fn main() -> anyhow::Result<()> {
    treem_heap::configure();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    let exe = std::env::current_exe()?;
    let mut opts = Options::full(exe.parent().context("the binary has a directory")?.to_path_buf());
    let mut json_out: Option<PathBuf> = None;
    let (mut days, mut per_day): (Option<u64>, Option<u64>) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value; see --help"));
        match flag.as_str() {
            "--dir" => opts.dir = PathBuf::from(value()?),
            "--bin-dir" => opts.bin_dir = PathBuf::from(value()?),
            "--smoke" => {
                // Flags given before --smoke keep their effect where it has one.
                let before = opts;
                opts = Options::smoke(before.bin_dir);
                (opts.dir, opts.keep, opts.only, opts.scale_setups) = (before.dir, before.keep, before.only, before.scale_setups);
            }
            "--only" => {
                opts.only = value()?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = opts.only.iter().find(|g| !bench::GROUPS.contains(&g.as_str())) {
                    bail!("--only: unknown group {bad:?}; groups are {}", bench::GROUPS.join(", "));
                }
            }
            "--per-ward" => opts.per_ward = value()?.parse().context("--per-ward: a number")?,
            "--wards" => opts.wards = value()?.parse().context("--wards: a number")?,
            "--replication-events" => opts.replication_events = value()?.parse().context("--replication-events: a number")?,
            "--disk-secs" => opts.disk_secs = value()?.parse().context("--disk-secs: seconds")?,
            "--latency-rate" => opts.latency_rate = value()?.parse().context("--latency-rate: events per second")?,
            "--latency-secs" => opts.latency_secs = value()?.parse().context("--latency-secs: seconds")?,
            "--api-clients" => opts.api_clients = value()?.parse().context("--api-clients: a number")?,
            "--api-secs" => opts.api_secs = value()?.parse().context("--api-secs: seconds")?,
            "--rss-records" => opts.rss_records = value()?.parse().context("--rss-records: a number")?,
            "--pg-secs" => opts.pg_secs = value()?.parse().context("--pg-secs: whole seconds")?,
            "--scale-days" => days = Some(value()?.parse().context("--scale-days: a number")?),
            "--scale-per-day" => per_day = Some(value()?.parse().context("--scale-per-day: a number")?),
            "--scale-on" => {
                let names = value()?;
                opts.scale_setups = names
                    .split(',')
                    .map(|s| {
                        scale::Setup::parse(s.trim())
                            .with_context(|| format!("--scale-on: unknown setup {s:?}; setups are single, cluster"))
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--json-out" => json_out = Some(PathBuf::from(value()?)),
            "--keep" => opts.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if !(1..=6).contains(&opts.wards) {
        bail!("--wards must be 1 to 6 (the wards of Bình Long)");
    }
    if opts.per_ward == 0 || opts.replication_events == 0 || opts.latency_rate <= 0.0 || opts.api_clients == 0 {
        bail!("sizes and rates must be positive");
    }
    if opts.scale_setups.is_empty() {
        bail!("--scale-on needs at least one of single, cluster");
    }
    if days.is_some() || per_day.is_some() {
        let d = days.unwrap_or(30);
        opts.scale = vec![scale::Scenario::binh_phuoc(d, per_day.unwrap_or(20)), scale::Scenario::vietnam(d, per_day.unwrap_or(10))];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let scratch = bench::Scratch::new(&opts.dir, opts.keep)?;
    let report = runtime.block_on(bench::run_in(&opts, &scratch))?;
    println!("{}", report.table());
    if opts.keep {
        eprintln!("treem-bench: run directory kept: {}", scratch.root().display());
    } else {
        eprintln!("treem-bench: removing the run directory {}", scratch.root().display());
    }
    drop(scratch);
    if let Some(path) = json_out {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?).with_context(|| format!("write {}", path.display()))?;
    }
    if !report.failures.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
