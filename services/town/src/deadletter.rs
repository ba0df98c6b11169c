//! The dead-letter stream: every message the town parks is also published,
//! once, to JetStream stream `TREEM_DEADLETTER_<p>_<t>` on subject
//! `treem.v1.deadletter.<p>.<t>` (names from `treem_proto::subject`), so
//! operators and tools can watch poison input without the town's HTTP API.
//!
//! # Message format
//!
//! The body is the original message, byte for byte (it may not even be
//! JSON). Everything the town knows of it is in headers:
//!
//! | header | value |
//! | --- | --- |
//! | `Nats-Msg-Id` | `deadletter-<town>-<n>`: de-duplicates a re-publish |
//! | `Treem-Parked` | `n`, the record's number at the town (`GET /api/v1/parked/{n}`) |
//! | `Treem-Reason` | why it was refused (control characters replaced by spaces) |
//! | `Treem-Original-Subject` | the subject it came on |
//! | `Treem-Province`, `Treem-Town` | the town that parked it |
//! | `Treem-Ward`, `Treem-Seq`, `Treem-Event-Id` | when known |
//! | `Treem-Seq-Consumed` | `true` when the rules refused the event in its turn (its seq consumed), `false` when it could not be read or placed |
//!
//! Headers rather than a JSON wrapper: the body stays exactly what the ward
//! sent, so a tool can re-publish or diff it, and the metadata is readable
//! with `nats stream view` without decoding anything.
//!
//! # Outbox
//!
//! Parked records are written by the fold in its atomic batch; this task
//! publishes every record above `meta/deadletter_published` in order, waits
//! for JetStream's acknowledgements and only then moves that mark forward.
//! A crash between the two re-publishes with the same `Nats-Msg-Id` (dropped
//! by JetStream inside its de-duplication window; after it, a consumer of
//! the stream sees `Treem-Parked` twice). Publishing never holds up the
//! consumer: parked messages never block the events behind them, whether the
//! dead-letter stream is reachable or not.
//!
//! The town's store stays the authority on a record (its replay status in
//! particular); the stream is a copy of what was refused, kept for ever.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use tokio::sync::watch;
use treem_proto::subject;

use crate::Shared;
use crate::config::Config;
use crate::parked::Parked;

/// Records published per round (bounded so acks are awaited regularly).
const BATCH: u64 = 256;
/// Longest header value sent; reasons are a sentence, this only guards.
const MAX_HEADER: usize = 2000;

pub const HEADER_PARKED: &str = "Treem-Parked";
pub const HEADER_REASON: &str = "Treem-Reason";
pub const HEADER_ORIGINAL_SUBJECT: &str = "Treem-Original-Subject";
pub const HEADER_PROVINCE: &str = "Treem-Province";
pub const HEADER_TOWN: &str = "Treem-Town";
pub const HEADER_WARD: &str = "Treem-Ward";
pub const HEADER_SEQ: &str = "Treem-Seq";
pub const HEADER_EVENT_ID: &str = "Treem-Event-Id";
pub const HEADER_SEQ_CONSUMED: &str = "Treem-Seq-Consumed";

#[derive(Debug, thiserror::Error)]
pub enum DeadletterError {
    #[error("cannot create or check the dead-letter stream {stream}: {detail}")]
    Stream { stream: String, detail: String },
    #[error("cannot publish parked message #{n} to the dead-letter stream: {detail}; it stays in the outbox")]
    Publish { n: u64, detail: String },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

pub fn stream_config(config: &Config) -> stream::Config {
    stream::Config {
        name: subject::deadletter_stream(&config.province, &config.town),
        subjects: vec![subject::deadletter_subject(&config.province, &config.town)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        // Kept for ever: dead letters are evidence, and they are few.
        max_age: Duration::ZERO,
        duplicate_window: Duration::from_secs(config.duplicate_window_secs),
        num_replicas: config.stream_replicas,
        ..Default::default()
    }
}

/// Creates the dead-letter stream, or brings an existing one to our configuration.
pub async fn ensure_stream(js: &jetstream::Context, config: &Config) -> Result<stream::Stream, DeadletterError> {
    let wanted = stream_config(config);
    let err = |e: &dyn std::fmt::Display| DeadletterError::Stream { stream: wanted.name.clone(), detail: e.to_string() };
    match js.get_stream(&wanted.name).await {
        Ok(mut s) => {
            let have = s.info().await.map_err(|e| err(&e))?.config.clone();
            if have.subjects != wanted.subjects
                || have.max_age != wanted.max_age
                || have.duplicate_window != wanted.duplicate_window
                || have.num_replicas != wanted.num_replicas
            {
                js.update_stream(wanted.clone()).await.map_err(|e| err(&e))?;
            }
            Ok(s)
        }
        Err(_) => js.get_or_create_stream(wanted.clone()).await.map_err(|e| err(&e)),
    }
}

/// A header value without the line breaks NATS headers cannot carry.
fn header_value(s: &str) -> String {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match clean.char_indices().nth(MAX_HEADER) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// The dead letter of record `n`: headers and the original bytes.
pub fn message(config: &Config, n: u64, rec: &Parked) -> (async_nats::HeaderMap, Bytes) {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", format!("deadletter-{}-{n}", config.town).as_str());
    h.insert(HEADER_PARKED, n.to_string().as_str());
    h.insert(HEADER_REASON, header_value(&rec.reason).as_str());
    h.insert(HEADER_ORIGINAL_SUBJECT, header_value(&rec.subject).as_str());
    h.insert(HEADER_PROVINCE, header_value(&config.province).as_str());
    h.insert(HEADER_TOWN, header_value(&config.town).as_str());
    if let Some(w) = &rec.ward {
        h.insert(HEADER_WARD, header_value(w).as_str());
    }
    if let Some(seq) = rec.seq {
        h.insert(HEADER_SEQ, seq.to_string().as_str());
    }
    if let Some(id) = rec.event_id {
        h.insert(HEADER_EVENT_ID, id.to_string().as_str());
    }
    h.insert(HEADER_SEQ_CONSUMED, if rec.seq_consumed { "true" } else { "false" });
    (h, Bytes::from(rec.payload()))
}

/// Runs until `stop` turns true: publishes parked records as they appear.
pub async fn run(shared: Arc<Shared>, js: jetstream::Context, mut stop: watch::Receiver<bool>) {
    let min = Duration::from_millis(shared.config.backoff_min_ms);
    let max = Duration::from_millis(shared.config.backoff_max_ms);
    let mut backoff = min;
    let mut stream_ready = false;
    loop {
        if *stop.borrow() {
            return;
        }
        // Registered before looking, so a batch committed meanwhile still wakes us.
        let wake = shared.applied_notify.notified();
        match publish_pending(&shared, &js, &mut stream_ready).await {
            Ok(0) => {
                backoff = min;
                tokio::select! {
                    _ = wake => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok(_) => backoff = min,
            Err(e) => {
                stream_ready = false;
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "dead-letter stream unavailable; parked messages wait in the outbox");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

/// Publishes up to [`BATCH`] records above the mark; returns how many it moved the mark by.
async fn publish_pending(shared: &Shared, js: &jetstream::Context, stream_ready: &mut bool) -> Result<u64, DeadletterError> {
    let store = &shared.store;
    let done = store.deadletter_published();
    let last = store.parked_next();
    if done >= last {
        return Ok(0);
    }
    if !*stream_ready {
        ensure_stream(js, &shared.config).await?;
        *stream_ready = true;
    }
    let to = subject::deadletter_subject(&shared.config.province, &shared.config.town);
    let upto = last.min(done + BATCH);
    let mut acks = Vec::new();
    for n in done + 1..=upto {
        // Records are never deleted; a missing one has nothing to publish.
        let Some(rec) = store.parked_record(n) else {
            acks.push((n, None));
            continue;
        };
        let (headers, payload) = message(&shared.config, n, &rec);
        let ack = js
            .publish_with_headers(to.clone(), headers, payload)
            .await
            .map_err(|e| DeadletterError::Publish { n, detail: e.to_string() })?;
        acks.push((n, Some(ack)));
    }
    let mut reached = done;
    let mut failed = None;
    for (n, ack) in acks {
        if let Some(ack) = ack
            && let Err(e) = ack.await
        {
            failed = Some(DeadletterError::Publish { n, detail: format!("not acknowledged: {e}") });
            break;
        }
        reached = n;
    }
    if reached > done {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.set_deadletter_published(reached))
            .await
            .map_err(|e| DeadletterError::Publish { n: reached, detail: e.to_string() })??;
        tracing::info!(from = done + 1, to = reached, "published parked messages to the dead-letter stream");
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(reached - done),
    }
}
