//! `treem-soak`: the long fault-injection run, on demand.
//!
//! Runs the whole system (nats-server, the province, the town, N wards, as
//! their binaries) under a seeded random schedule of faults, then checks
//! every invariant of DESIGN.md §3; see `treem_tests::faults` for what is
//! injected and checked. Several runs go one after the other, seeds
//! `--seed`, `--seed`+1, …
//!
//! ```text
//! cargo build --workspace --bins
//! target/debug/treem-soak --seed 1 --runs 3 --duration 2m --wards 6
//! target/debug/treem-soak --seed 1234 --duration 10m --wards 6 --fault-every 3s --rate 20 --json-out soak.json
//! ```
//!
//! Prints a human summary of each run as it ends, then the totals, then
//! every report as JSON (also written to `--json-out` if given). Exits 1 if
//! any run found a violation; its seed, given back to `--seed` with
//! `--runs 1`, replays the same schedule (the timing still varies).
//! Progress (each fault as it is injected) goes to stderr; `RUST_LOG`
//! filters it (default `info`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use treem_tests::faults::{self, Params, Report};

const USAGE: &str = "usage: treem-soak [--seed N] [--runs N] [--duration 10m] [--wards 1-6] [--fault-every 3s] [--rate 20]
                  [--converge-deadline 5m] [--bin-dir DIR] [--json-out FILE] [--keep]
  --seed N               seed of the first run (default: from the clock); run k uses seed N+k
  --runs N               runs one after the other (default 1)
  --duration D           fault window of each run, e.g. 90s, 10m (default 10m)
  --wards N              wards to run, 1 to 6 (default 6)
  --fault-every D        mean time between two faults (default 3s)
  --rate R               events per second each ward records (default 20)
  --converge-deadline D  longest wait for convergence after the last fault (default 5m)
  --bin-dir DIR          where treem-ward, treem-town, treem-province are (default: next to this binary)
  --json-out FILE        also write the JSON reports to FILE
  --keep                 keep each run's directory (logs, data) even when it passes";

struct Args {
    seed: u64,
    runs: u64,
    params: Params,
    json_out: Option<PathBuf>,
}

fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (number, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = number.parse().with_context(|| format!("{s:?} is not a duration; use e.g. 90s, 10m, 1h, 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => bail!("unknown unit {other:?} in {s:?}; use ms, s, m or h"),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn parse_args() -> anyhow::Result<Args> {
    let clock_seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut params = Params {
        seed: clock_seed,
        duration: Duration::from_secs(600),
        wards: 6,
        fault_every: Duration::from_secs(3),
        rate: 20.0,
        converge_deadline: Duration::from_secs(300),
        bin_dir: faults::system::bin_dir_near_exe(),
        keep: false,
    };
    let mut runs = 1;
    let mut json_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--seed" => params.seed = value("--seed")?.parse().context("--seed needs a whole number")?,
            "--runs" => runs = value("--runs")?.parse().context("--runs needs a whole number")?,
            "--duration" => params.duration = parse_duration(&value("--duration")?)?,
            "--wards" => params.wards = value("--wards")?.parse().context("--wards needs a number from 1 to 6")?,
            "--fault-every" => params.fault_every = parse_duration(&value("--fault-every")?)?,
            "--rate" => params.rate = value("--rate")?.parse().context("--rate needs a number of events per second")?,
            "--converge-deadline" => params.converge_deadline = parse_duration(&value("--converge-deadline")?)?,
            "--bin-dir" => params.bin_dir = PathBuf::from(value("--bin-dir")?),
            "--json-out" => json_out = Some(PathBuf::from(value("--json-out")?)),
            "--keep" => params.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if !(1..=faults::WARDS.len()).contains(&params.wards) {
        bail!("--wards must be 1 to {}", faults::WARDS.len());
    }
    if runs == 0 || params.rate <= 0.0 || params.fault_every.is_zero() {
        bail!("--runs, --rate and --fault-every must be above zero");
    }
    for name in ["treem-ward", "treem-town", "treem-province"] {
        if !params.bin_dir.join(name).is_file() {
            bail!("{} is missing: run `cargo build --workspace --bins` first, or give --bin-dir", params.bin_dir.join(name).display());
        }
    }
    Ok(Args { seed: params.seed, runs, params, json_out })
}

fn totals(reports: &[Report]) -> serde_json::Value {
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
    for r in reports {
        for (k, n) in &r.faults_injected {
            *by_kind.entry(k.clone()).or_default() += n;
        }
    }
    let converge: Vec<f64> = reports.iter().filter_map(|r| r.converge_secs).collect();
    json!({
        "runs": reports.len(),
        "passed": reports.iter().filter(|r| r.passed()).count(),
        "failed_seeds": reports.iter().filter(|r| !r.passed()).map(|r| r.seed).collect::<Vec<_>>(),
        "faults_total": sum(|r| r.faults_total),
        "faults_injected": by_kind,
        "events_acknowledged": sum(|r| r.events_acknowledged),
        "events_lost": sum(|r| r.events_lost),
        "applied_twice": sum(|r| r.applied_twice),
        "redelivered_events": sum(|r| r.redelivered_events),
        "redelivered_snapshots": sum(|r| r.redelivered_snapshots),
        "converge_secs_max": converge.iter().copied().fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.max(c)))),
        "converge_secs_mean": (!converge.is_empty()).then(|| converge.iter().sum::<f64>() / converge.len() as f64),
    })
}

#[global_allocator]
static ALLOCATOR: treem_heap::Allocator = treem_heap::Allocator;

fn main() -> ExitCode {
    treem_heap::configure();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("treem-soak: {e:#}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let mut reports = Vec::new();
    for k in 0..args.runs {
        let params = Params { seed: args.seed.wrapping_add(k), ..args.params.clone() };
        let report = runtime.block_on(faults::run(&params));
        println!("{}", report.summary());
        reports.push(report);
    }
    let totals = totals(&reports);
    println!(
        "treem-soak: {} of {} runs passed; {} faults; {} events acknowledged, {} lost, {} applied twice",
        totals["passed"],
        totals["runs"],
        totals["faults_total"],
        totals["events_acknowledged"],
        totals["events_lost"],
        totals["applied_twice"]
    );
    let document = json!({"totals": totals, "reports": reports});
    let text = serde_json::to_string_pretty(&document).expect("reports serialise");
    println!("{text}");
    if let Some(path) = &args.json_out
        && let Err(e) = std::fs::write(path, &text)
    {
        eprintln!("treem-soak: cannot write {}: {e}", path.display());
    }
    if reports.iter().all(Report::passed) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
