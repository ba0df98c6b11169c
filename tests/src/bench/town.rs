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
use super::jetstream::{context, raw_consume};
use super::procs::{Service, Viewer};
use super::stats::rate;
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
}

/// Raw consume, the town's apply and the rebuild over the town's stream.
pub async fn run(opts: &Options, scratch: &Scratch, nats_url: &str) -> anyhow::Result<StreamFigures> {
    let js = context(async_nats::connect(nats_url).await?);
    let stream = subject::town_events_stream("70", "690");
    let batch = treem_town::Config::default().batch_size;
    let mut f = StreamFigures::default();
    let (read, ack) = raw_consume(&js, &stream, batch, true).await?;
    f.messages = read;
    f.raw_consume_ack = ack;
    eprintln!("  raw consume, explicit ack: {read} messages, {ack:.0}/s");
    f.raw_consume_no_ack = raw_consume(&js, &stream, batch, false).await?.1;
    eprintln!("  raw consume, no ack: {:.0}/s", f.raw_consume_no_ack);

    let last = js.get_stream(&stream).await?.info().await?.state.last_sequence;
    let viewer = Viewer::new()?;
    let http = viewer.client()?;
    let started = Instant::now();
    let town = start_town(opts, scratch, "town-full-stream", &viewer, nats_url).await?;
    let addr = town.addr.clone();
    wait_until("the fresh town applied the whole stream", Duration::from_secs(3600), Duration::from_millis(20), || {
        let (http, addr) = (http.clone(), addr.clone());
        async move { town_positions(&http, &addr, &[]).await.ok().filter(|(_, s)| *s >= last).map(|_| ()) }
    })
    .await?;
    f.town_apply = rate(read, started.elapsed());
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
    let started = Instant::now();
    let (store, rebuilt) = treem_town::rebuild::rebuild_into(&js, &config, &ctx, &scratch.path("rebuild").join("store"))
        .await
        .map_err(|e| anyhow::anyhow!("rebuild: {e}"))?;
    f.rebuild = rate(rebuilt, started.elapsed());
    drop(store);
    eprintln!("  rebuild: {rebuilt} messages, {:.0}/s", f.rebuild);
    Ok(f)
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
