//! `treem-syncbench`: what `sync_interval: always` would cost the town's
//! nats-server, measured rather than guessed (RELIABILITY.md, "Durability").
//!
//! Starts nats-server twice with `deploy/nats/treem.conf`: as shipped
//! (`sync_interval: "2m"`), and with that one line changed to
//! `sync_interval: always` (an fsync after every write). Each gets its own
//! store directory under `--dir` (default: the system temp dir; point it at
//! the disk you care about — a tmpfs makes fsync free and the figures
//! meaningless). On each, it creates a stream shaped like the town's (file
//! storage, R1, 2-minute de-duplication window) and publishes `--count`
//! envelope-sized messages (~450 bytes) with a `Nats-Msg-Id` header, at most
//! `--in-flight` awaiting their ack — what a ward does when it catches up —
//! and reports publishes per second (the median of `--rounds` runs, each on
//! a fresh stream).
//!
//! Usage:
//! `cargo run -p treem-tests --bin treem-syncbench -- [--count 5000] [--in-flight 1024] [--rounds 3] [--dir PATH]`
//! (`--in-flight` takes a comma-separated list, e.g. `1024,1`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use futures::StreamExt;
use futures::stream::FuturesOrdered;

struct Args {
    count: u64,
    in_flight: Vec<usize>,
    rounds: usize,
    dir: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args { count: 5000, in_flight: vec![1024], rounds: 3, dir: std::env::temp_dir() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--count" => args.count = value()?.parse().context("--count: a number of publishes")?,
            "--in-flight" => {
                args.in_flight =
                    value()?.split(',').map(|v| v.trim().parse()).collect::<Result<_, _>>().context("--in-flight: numbers, e.g. 1024,1")?
            }
            "--rounds" => args.rounds = value()?.parse().context("--rounds: a number")?,
            "--dir" => args.dir = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!("treem-syncbench [--count 5000] [--in-flight 1024[,1]] [--rounds 3] [--dir PATH]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }
    if args.count == 0 || args.rounds == 0 || args.in_flight.contains(&0) {
        bail!("--count, --rounds and --in-flight must be at least 1");
    }
    Ok(args)
}

/// A nats-server started for the bench, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(config: &Path, store: &Path, log: &Path) -> anyhow::Result<Server> {
    // A free port: bound and released here (a bench, not a test: the tiny
    // window before nats-server binds it is acceptable).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log_file = std::fs::File::create(log)?;
    let child = Command::new(treem_tests::nats::nats_server_binary())
        .arg("-c")
        .arg(config)
        .arg("-sd")
        .arg(store)
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("start nats-server")?;
    let server = Server { child, url: format!("nats://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(client) = async_nats::connect(&server.url).await
            && jetstream::new(client).query_account().await.is_ok()
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("nats-server did not start; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `count` messages with at most `in_flight` unacknowledged;
/// returns publishes per second.
async fn publish(url: &str, name: &str, count: u64, in_flight: usize) -> anyhow::Result<f64> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(30))
        .ack_timeout(Duration::from_secs(30))
        .max_ack_inflight(in_flight.saturating_mul(2))
        .backpressure_on_inflight(true)
        .build(client);
    let _ = js.delete_stream(name).await;
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    let body = "x".repeat(300);
    let started = Instant::now();
    let mut acks = FuturesOrdered::new();
    for seq in 1..=count {
        let payload = format!(
            r#"{{"id":"{}","schema":1,"province":"70","town":"690","ward":"25320","seq":{seq},"kind":"indicator.observed","pad":"{body}"}}"#,
            uuid::Uuid::now_v7()
        );
        let id = uuid::Uuid::now_v7().to_string();
        let ack = js
            .send_publish(format!("{name}.25320.indicator.observed"), PublishMessage::build().payload(payload.into()).message_id(id))
            .await?;
        acks.push_back(std::future::IntoFuture::into_future(ack));
        while acks.len() >= in_flight {
            acks.next().await.expect("an ack is pending")?;
        }
    }
    while let Some(ack) = acks.next().await {
        ack?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

#[global_allocator]
static ALLOCATOR: treem_heap::Allocator = treem_heap::Allocator;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    treem_heap::configure();
    let args = parse_args()?;
    let shipped = treem_tests::repo_root().join("deploy/nats/treem.conf");
    let text = std::fs::read_to_string(&shipped).with_context(|| format!("read {}", shipped.display()))?;
    let line =
        text.lines().find(|l| l.trim_start().starts_with("sync_interval:")).context("deploy/nats/treem.conf sets no sync_interval")?;
    let always = text.replace(line, "  sync_interval: always");

    let work = tempfile::Builder::new().prefix("treem-syncbench-").tempdir_in(&args.dir)?;
    let always_conf = work.path().join("treem-always.conf");
    std::fs::write(&always_conf, always)?;
    println!(
        "{}; stores under {}; {} publishes of ~450 B with Nats-Msg-Id, median of {} round(s)",
        String::from_utf8_lossy(&Command::new(treem_tests::nats::nats_server_binary()).arg("--version").output()?.stdout).trim(),
        work.path().display(),
        args.count,
        args.rounds
    );
    println!("{:<32} {:>9} {:>12}", "config", "in flight", "publishes/s");
    for (label, config) in [(format!("shipped ({})", line.trim()), shipped.clone()), ("sync_interval: always".to_string(), always_conf)] {
        let store = work.path().join(if config == shipped { "store-shipped" } else { "store-always" });
        let server = start_server(&config, &store, &store.with_extension("log")).await?;
        for &in_flight in &args.in_flight {
            let mut rates = Vec::new();
            for round in 0..args.rounds {
                rates.push(publish(&server.url, &format!("BENCH{round}"), args.count, in_flight).await?);
            }
            rates.sort_by(f64::total_cmp);
            println!("{label:<32} {in_flight:>9} {:>12.0}", rates[rates.len() / 2]);
        }
        drop(server);
    }
    Ok(())
}
