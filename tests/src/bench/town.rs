//! Stages over the town's full stream, once the live system has stopped
//! (nothing else runs on the machine meanwhile):
//!
//! - raw consume: a pull consumer over the whole stream, fetch + explicit
//!   ack of each message (the limit of the town's apply), and fetch without
//!   acks (the limit of a rebuild, which reads with `AckPolicy::None`);
//! - town apply: a town binary with an empty store reads the whole stream
//!   durably (its fold, atomic sled batch, `fdatasync`, acks). The figure
//!   runs from the spawn of the process until its `/api/v1/sync` says
//!   `stream_seq` reached the stream's last message; its `VmHWM` then is
//!   the town's memory after applying them all;
//! - rebuild: [`treem_town::rebuild::rebuild_into`] (what `treem-town
//!   rebuild` runs) into a fresh store, in this process.
//! - the CPU time of each of the four, of the process doing the work and
//!   of the nats-server (`/proc`): whether the machine's two cores were the
//!   limit, and what an event cost each side; and the rebuild's in-order
//!   time (its fold and sled's `apply_batch`, one thread,
//!   [`treem_town::store::InOrderTimes`]);
//! - the memory of a ward: a ward binary with an empty log, idle, then
//!   while it records over HTTP.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use treem_proto::subject;
use treem_town::fold::Ctx;

use super::hierarchy::{BENCH_TOWN, RSS_WARD};
use super::jetstream::{consume_each, context, raw_consume};
use super::procs::{Service, Viewer};
use super::stats::{Cpu, cores, cpu_of, cpu_times, rate};
use super::system::{keys_file, start_town, town_positions, ward_env};
use super::{Options, Scratch, wait_until};

/// What the full-stream stages measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamFigures {
    pub messages: u64,
    pub raw_consume_ack: f64,
    pub raw_consume_no_ack: f64,
    pub town_apply: f64,
    pub rss_town_applied: u64,
    pub rebuild: f64,
    /// CPU over each of the four: where the machine's cores went.
    pub cpu_raw_ack: Cpu,
    pub cpu_raw_no_ack: Cpu,
    pub cpu_apply: Cpu,
    pub cpu_rebuild: Cpu,
    /// The stream's signatures checked alone (`treem_proto::signatures::verify_all`).
    pub signatures: Signatures,
    /// The rebuild's in-order time: the fold, and sled's `apply_batch`.
    pub rebuild_in_order: treem_town::store::InOrderTimes,
}

/// ed25519 checks of every signature of the stream, in batches as the
/// town makes them, on every core: the part of the town's work that no
/// event goes without, measured alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct Signatures {
    pub checked: u64,
    pub cores: usize,
    pub cpu: Cpu,
}

impl Signatures {
    pub fn rate(&self) -> f64 {
        rate(self.checked, self.cpu.wall)
    }
}

/// Raw consume, the town's apply and the rebuild over the town's stream.
pub async fn run(opts: &Options, scratch: &Scratch, nats_url: &str) -> anyhow::Result<StreamFigures> {
    let js = context(async_nats::connect(nats_url).await?);
    let stream = subject::town_events_stream("70", "690");
    let batch = treem_town::Config::default().batch_size;
    let mut f = StreamFigures::default();
    let (consumed, cpu) = Cpu::of(raw_consume(&js, &stream, batch, true)).await;
    let (read, ack) = consumed?;
    (f.messages, f.raw_consume_ack, f.cpu_raw_ack) = (read, ack, cpu);
    eprintln!("  raw consume, explicit ack: {read} messages, {ack:.0}/s");
    let (consumed, cpu) = Cpu::of(raw_consume(&js, &stream, batch, false)).await;
    (f.raw_consume_no_ack, f.cpu_raw_no_ack) = (consumed?.1, cpu);
    eprintln!("  raw consume, no ack: {:.0}/s", f.raw_consume_no_ack);

    let last = js.get_stream(&stream).await?.info().await?.state.last_sequence;
    let viewer = Viewer::new()?;
    let http = viewer.client()?;
    let (started, nats_before) = (Instant::now(), cpu_times().1);
    let town = start_town(opts, scratch, "town-full-stream", &viewer, nats_url).await?;
    let addr = town.addr.clone();
    wait_until("the fresh town applied the whole stream", Duration::from_secs(3600), Duration::from_millis(20), || {
        let (http, addr) = (http.clone(), addr.clone());
        async move { town_positions(&http, &addr, &[]).await.ok().filter(|(_, s)| *s >= last).map(|_| ()) }
    })
    .await?;
    let wall = started.elapsed();
    f.town_apply = rate(read, wall);
    // The town's whole life so far is the apply (and its start).
    f.cpu_apply = Cpu { process: cpu_of(town.pid()?), nats: cpu_times().1.saturating_sub(nats_before), wall };
    f.rss_town_applied = town.peak_rss()?;
    eprintln!("  town applied {read} messages: {:.0}/s, peak RSS {} MiB", f.town_apply, f.rss_town_applied / (1 << 20));
    town.stop().await?;

    let config = treem_town::Config {
        nats_url: nats_url.into(),
        data_dir: scratch.path("rebuild"),
        ward_keys_file: Some(keys_file(scratch)),
        ..Default::default()
    };
    let ctx = Ctx::from_config(&config).context("the rebuild's town configuration")?;
    let (rebuilt, cpu) = Cpu::of(treem_town::rebuild::rebuild_into(&js, &config, &ctx, &scratch.path("rebuild").join("store"))).await;
    let (store, rebuilt) = rebuilt.map_err(|e| anyhow::anyhow!("rebuild: {e}"))?;
    (f.rebuild, f.cpu_rebuild) = (rate(rebuilt, cpu.wall), cpu);
    f.rebuild_in_order = store.in_order_times();
    drop(store);
    eprintln!("  rebuild: {rebuilt} messages, {:.0}/s", f.rebuild);
    f.signatures = signatures_alone(&js, &stream, batch, &keys_file(scratch)).await?;
    eprintln!(
        "  signature checks alone: {} on {} cores, {:.0}/s, {:.2} µs of CPU each",
        f.signatures.checked,
        f.signatures.cores,
        f.signatures.rate(),
        f.signatures.cpu.per_event_us(f.signatures.checked).0
    );
    Ok(f)
}

/// Reads the whole stream, decodes every event (untimed), then checks all
/// their signatures with [`treem_proto::signatures::verify_all`] the way the
/// town's preparation does: each batch of `batch` split over the cores, one
/// `verify_all` per share. Fails if any signature does not verify (the
/// stream holds only good events).
async fn signatures_alone(
    js: &async_nats::jetstream::Context,
    stream: &str,
    batch: usize,
    keys: &std::path::Path,
) -> anyhow::Result<Signatures> {
    use treem_proto::provenance::{PublicKey, decode_sealed, unhex};
    use treem_proto::signatures::{SignatureCheck, verify_all};
    let file: treem_town::provenance::KeysFile = serde_json::from_slice(&std::fs::read(keys)?).context("the bench's ward keys file")?;
    let mut public = std::collections::HashMap::new();
    for k in file.values().flatten() {
        public.insert(k.key_id.clone(), PublicKey::from_hex(&k.public_key)?);
    }
    let mut events = Vec::new();
    consume_each(js, stream, batch, false, |m| {
        let (env, seal) = decode_sealed(&m.payload)?;
        let sig = env.sig.context("an event of the bench without a signature")?;
        let key = public.get(&sig.key_id).with_context(|| format!("key {} is not in the keys file", sig.key_id))?;
        events.push((key, seal.signing_bytes, unhex(&sig.signature).context("signature hex")?));
        Ok(())
    })
    .await?;
    let cores = cores();
    let share = batch.div_ceil(cores).max(1);
    let (valid, cpu) = Cpu::of(async {
        let shares: Vec<&[_]> = events.chunks(share).collect();
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..cores)
                .map(|t| {
                    let mine: Vec<&[_]> = shares.iter().skip(t).step_by(cores).copied().collect();
                    scope.spawn(move || {
                        mine.iter()
                            .map(|share| {
                                let checks: Vec<SignatureCheck<'_>> =
                                    share.iter().map(|(key, message, signature)| SignatureCheck { key, message, signature }).collect();
                                verify_all(&checks).into_iter().filter(|ok| *ok).count()
                            })
                            .sum::<usize>()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("a checking thread does not panic")).sum::<usize>()
        })
    })
    .await;
    anyhow::ensure!(valid == events.len(), "{} of the stream's {} signatures did not verify", events.len() - valid, events.len());
    Ok(Signatures { checked: events.len() as u64, cores, cpu })
}

/// Peak memory of a ward binary: (idle, after recording `records` events over HTTP from 16 writers).
pub async fn ward_memory(opts: &Options, scratch: &Scratch, nats_url: &str, hierarchy: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let dir = scratch.path("ward-rss");
    let env = ward_env(&dir, RSS_WARD, BENCH_TOWN, nats_url, Some(hierarchy));
    let ward = Service::start(&opts.bin_dir, "treem-ward", "ward-rss", &dir, &scratch.path("logs"), &env).await?;
    tokio::time::sleep(Duration::from_secs_f64(opts.idle_secs)).await;
    let idle = ward.peak_rss()?;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/events", ward.addr);
    let writers = 16u64;
    let mut tasks = FuturesUnordered::new();
    for w in 0..writers {
        let (http, url) = (http.clone(), url.clone());
        let n = opts.rss_records / writers + u64::from(w < opts.rss_records % writers);
        tasks.push(async move {
            for i in 0..n {
                let body = json!({"kind": "indicator.observed", "body": {
                    "indicator": "4a", "year": 2025, "numerator": i % 100, "denominator": 1000, "source": "bench"}});
                let r = http.post(&url).json(&body).send().await?;
                anyhow::ensure!(r.status().as_u16() == 201, "recording at the memory ward → {}", r.status());
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.next().await {
        r?;
    }
    let recording = ward.peak_rss()?;
    ward.stop().await?;
    Ok((idle, recording))
}
