//! The JetStream parts: raw publish and raw consume (the limits), and the
//! ward → town replication stage.
//!
//! - [`raw_publish`]: async-nats JetStream publishes with `Nats-Msg-Id`, at
//!   most `in_flight` awaiting their ack (acks collected in order, as the
//!   ward's replicator does), of exactly the bytes a ward publishes, into a
//!   stream configured like the town's (file storage, same de-duplication
//!   window).
//! - [`raw_consume`]: a pull consumer over a whole stream, fetching batches
//!   of the town's `batch_size` and, for the explicit-ack variant, acking
//!   every message; nothing else.
//! - [`replication`]: a ward with a backlog in its log comes online
//!   ([`treem_ward::start`], in process); the time until the town's stream
//!   acknowledged the whole backlog.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use treem_proto::subject::WardPath;

use super::hierarchy::{BENCH_TOWN, REPLICATION_WARD};
use super::stats::rate;
use super::workload::fill_ward_log;
use super::{Scratch, wait_until};

/// Publishes awaiting their ack, for the raw figure and the ward (its default `max_in_flight`).
pub const IN_FLIGHT: usize = 1024;

/// One message as a ward publishes it.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub ward: String,
    pub kind: &'static str,
    pub msg_id: String,
    pub payload: Bytes,
}

/// A JetStream context with timeouts long enough for a loaded machine.
pub fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new().timeout(Duration::from_secs(30)).ack_timeout(Duration::from_secs(30)).build(client)
}

/// The town's stream configuration, for `town` of province 70.
pub fn town_config(nats_url: &str, town: &str) -> treem_town::Config {
    treem_town::Config { town: town.into(), nats_url: nats_url.into(), ..Default::default() }
}

/// Publishes `messages` into a new stream shaped like the town's, at most
/// `in_flight` unacknowledged. Returns publishes per second; deletes the stream.
pub async fn raw_publish(js: &jetstream::Context, messages: &[RawMessage], in_flight: usize) -> anyhow::Result<f64> {
    let name = "BENCH_RAW_PUBLISH";
    let mut config = treem_town::stream::stream_config(&town_config("", BENCH_TOWN));
    config.name = name.into();
    config.subjects = vec!["bench.raw.>".into()];
    let _ = js.delete_stream(name).await;
    js.create_stream(config).await.context("create the raw publish stream")?;
    let started = Instant::now();
    let mut acks = FuturesOrdered::new();
    for m in messages {
        let publish = PublishMessage::build().payload(m.payload.clone()).message_id(m.msg_id.clone());
        let ack = js.send_publish(format!("bench.raw.{}.{}", m.ward, m.kind), publish).await.context("raw publish")?;
        acks.push_back(std::future::IntoFuture::into_future(ack));
        while acks.len() >= in_flight {
            acks.next().await.expect("an ack is pending").context("raw publish ack")?;
        }
    }
    while let Some(ack) = acks.next().await {
        ack.context("raw publish ack")?;
    }
    let figure = rate(messages.len() as u64, started.elapsed());
    js.delete_stream(name).await.context("delete the raw publish stream")?;
    Ok(figure)
}

/// Reads every message of `stream` through a new pull consumer, in fetches
/// of `batch`, acking each one if `explicit_ack`. Returns (messages, per second).
pub async fn raw_consume(js: &jetstream::Context, stream: &str, batch: usize, explicit_ack: bool) -> anyhow::Result<(u64, f64)> {
    consume_each(js, stream, batch, explicit_ack, |_| Ok(())).await
}

/// [`raw_consume`], handing each message to `each` (before its ack).
pub async fn consume_each(
    js: &jetstream::Context,
    stream: &str,
    batch: usize,
    explicit_ack: bool,
    mut each: impl FnMut(&jetstream::Message) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, f64)> {
    let mut s = js.get_stream(stream).await.with_context(|| format!("stream {stream}"))?;
    let last = s.info().await?.state.last_sequence;
    let ack_policy = if explicit_ack { consumer::AckPolicy::Explicit } else { consumer::AckPolicy::None };
    let consumer = s
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy,
            max_ack_pending: 100_000,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .context("create the raw consumer")?;
    let started = Instant::now();
    let (mut read, mut reached) = (0u64, 0u64);
    while reached < last {
        let mut messages = consumer.fetch().max_messages(batch).expires(Duration::from_millis(500)).messages().await.context("fetch")?;
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
            reached = reached.max(m.info().map(|i| i.stream_sequence).unwrap_or(0));
            read += 1;
            each(&m)?;
            if explicit_ack {
                m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            }
        }
    }
    Ok((read, rate(read, started.elapsed())))
}

/// Figures of the replication stage.
#[derive(Debug, Clone, Copy)]
pub struct Replication {
    pub events: u64,
    /// treem: backlog acknowledged per second, from the ward's start.
    pub ward: f64,
    /// Raw publishes per second of the same messages.
    pub raw: f64,
}

/// Fills the log of [`REPLICATION_WARD`] with `events`, publishes the same
/// messages raw, then starts the ward and times its catch-up.
pub async fn replication(scratch: &Scratch, nats_url: &str, hierarchy_file: &Path, events: u64) -> anyhow::Result<Replication> {
    let client = async_nats::connect(nats_url).await.context("connect to nats-server")?;
    let js = context(client);
    treem_town::stream::ensure_stream(&js, &town_config(nats_url, BENCH_TOWN)).await.context("create the bench town's stream")?;

    let data_dir = scratch.dir("replication-ward")?;
    let ward = WardPath { province: "70".into(), town: BENCH_TOWN.into(), ward: REPLICATION_WARD.into() };
    let mut messages = Vec::with_capacity(events as usize);
    let mut sink = |env: &treem_proto::Envelope| {
        messages.push(RawMessage {
            ward: env.ward.clone(),
            kind: env.event.kind(),
            msg_id: env.msg_id(),
            payload: Bytes::from(env.encode()),
        })
    };
    let last = fill_ward_log(&data_dir, ward, events, 7, &mut sink).await?;
    if last != events {
        bail!("the replication ward's log ends at seq {last}, expected {events}");
    }
    // The ward's replicator publishes in seq order; so does the raw figure.
    let raw = raw_publish(&js, &messages, IN_FLIGHT).await?;
    drop(messages);

    let config = treem_ward::Config {
        ward: REPLICATION_WARD.into(),
        town: BENCH_TOWN.into(),
        data_dir: data_dir.clone(),
        http_addr: "127.0.0.1:0".parse()?,
        nats_url: nats_url.into(),
        max_in_flight: IN_FLIGHT,
        hierarchy_file: Some(hierarchy_file.to_path_buf()),
        ..Default::default()
    };
    let started = Instant::now();
    let node = treem_ward::start(config).await.context("start the replication ward")?;
    let log = node.log.clone();
    wait_until("the replication ward's backlog is acknowledged", Duration::from_secs(600), Duration::from_millis(5), || {
        let log = log.clone();
        async move { log.acked_seq().ok().filter(|&a| a >= last).map(|_| ()) }
    })
    .await?;
    let ward = rate(events, started.elapsed());
    eprintln!("  raw publish {raw:.0}/s; the ward caught up {events} events at {ward:.0}/s");
    node.shutdown().await;
    Ok(Replication { events, ward, raw })
}
