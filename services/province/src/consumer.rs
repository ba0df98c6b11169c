//! The consumer loop: pulls town snapshots from the province's durable
//! consumer, stores them, and acknowledges them only once they are durable.
//!
//! Protocol, per batch (group commit):
//! 1. wait for one message, then take whatever else is already buffered, up to
//!    [`BATCH`] messages;
//! 2. on a blocking thread, [`examine`](crate::intake::examine) each message
//!    and either apply it to the store (version rule) or park it with the
//!    reason; then one `Store::sync` (flush + fsync) for the whole batch;
//! 3. ack every message: `+ACK` for snapshots (applied, duplicate or stale),
//!    `+TERM` for parked ones, so a poison message is never redelivered and
//!    never blocks the rest.
//!
//! At each start, dead letters that a configuration change may have made
//! acceptable (a town added to the hierarchy) are fetched again from the
//! stream by sequence and re-examined.
//!
//! If the store fails, nothing of the batch is acknowledged: JetStream
//! redelivers after the ack wait and the version rule makes re-application
//! harmless. If NATS goes away, the loop backs off and re-attaches; the HTTP
//! API keeps serving what is stored meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::{self, AckKind};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use treem_proto::hierarchy::Hierarchy;

use crate::intake::{self, Refusal};
use crate::metrics::Metrics;
use crate::store::{Applied, Parked, Store, StoreError};
use crate::stream::{self, Backoff};

/// Most messages made durable by one fsync.
pub const BATCH: usize = 256;

/// What the consumer needs; cloned into its task.
#[derive(Clone)]
pub struct Consumer {
    pub province: String,
    pub nats_url: String,
    /// The province's NATS identity and TLS (empty: none).
    pub nats_auth: treem_auth::nats::ClientAuth,
    /// Replicas of the projections stream (config `stream_replicas`).
    pub stream_replicas: usize,
    pub hierarchy: Arc<Hierarchy>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

/// How one message was settled.
#[derive(Debug)]
enum Settled {
    Snapshot { town: String, year: u16, version: u64, applied: Applied },
    Parked(Refusal),
}

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error("{0}")]
    Attach(#[from] stream::StreamError),
    #[error("cannot pull from the consumer: {0}")]
    Pull(String),
    #[error("the pull subscription ended")]
    Ended,
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl Consumer {
    /// Runs until `shutdown` turns true. Never returns an error: every failure
    /// is logged, counted and retried with backoff.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let client_name = format!("treem-province-{}", self.province);
        self.metrics.set_error(Some(format!("not connected to NATS at {} yet", self.nats_url)));
        let Some(client) = stream::connect(&self.nats_url, &self.nats_auth, &client_name, &mut shutdown).await else {
            return;
        };
        let js = jetstream::new(client.clone());
        let mut backoff = Backoff::default();
        let mut rechecked = false;
        loop {
            match self.attach_and_consume(&js, &mut shutdown, &mut backoff, &mut rechecked).await {
                Ok(()) => {
                    // Send the last acks before the connection is dropped.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), client.flush()).await;
                    self.metrics.nats_connected.store(false, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    self.metrics.nats_connected.store(false, Ordering::Relaxed);
                    self.metrics.set_error(Some(e.to_string()));
                    Metrics::inc(&self.metrics.consumer_errors);
                    let delay = backoff.next_delay();
                    let retry_in_ms = delay.as_millis() as u64;
                    match &e {
                        ConsumeError::Store(_) => {
                            tracing::error!(error = %e, retry_in_ms, "cannot store town snapshots; nothing was acknowledged, will retry")
                        }
                        // An operator must act: retrying alone will not fix these.
                        ConsumeError::Attach(
                            stream::StreamError::Incompatible { .. } | stream::StreamError::IncompatibleConsumer { .. },
                        ) => tracing::error!(error = %e, retry_in_ms, "cannot consume town projections"),
                        _ => tracing::warn!(error = %e, retry_in_ms, "projection consumer interrupted; will retry"),
                    }
                    if !stream::pause(delay, &mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    async fn attach_and_consume(
        &self,
        js: &jetstream::Context,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        rechecked: &mut bool,
    ) -> Result<(), ConsumeError> {
        let s = stream::ensure_stream(js, &self.province, self.stream_replicas).await?;
        if !*rechecked {
            self.recheck_parked(&s).await?;
            *rechecked = true;
        }
        let consumer = stream::ensure_consumer(&s, &self.province).await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .heartbeat(std::time::Duration::from_secs(5))
            .expires(std::time::Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| ConsumeError::Pull(e.to_string()))?;
        self.metrics.nats_connected.store(true, Ordering::Relaxed);
        self.metrics.set_error(None);
        tracing::info!(stream = %s.cached_info().config.name, consumer = %stream::consumer_config(&self.province).durable_name.unwrap_or_default(), "consuming town projections");
        backoff.reset();
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                _ = shutdown.changed() => return Ok(()),
            };
            let first = match next {
                None => return Err(ConsumeError::Ended),
                Some(Ok(m)) => m,
                Some(Err(e)) if matches!(e.kind(), jetstream::consumer::pull::MessagesErrorKind::MissingHeartbeat) => {
                    tracing::warn!(error = %e, "no heartbeat from the projections consumer; NATS may be unreachable");
                    continue;
                }
                Some(Err(e)) => return Err(ConsumeError::Pull(e.to_string())),
            };
            let mut batch = vec![first];
            let mut pending_error = None;
            while batch.len() < BATCH {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => batch.push(m),
                    Some(Some(Err(e))) => {
                        pending_error = Some(ConsumeError::Pull(e.to_string()));
                        break;
                    }
                    Some(None) => {
                        pending_error = Some(ConsumeError::Ended);
                        break;
                    }
                    None => break,
                }
            }
            self.settle(batch).await?;
            if let Some(e) = pending_error {
                return Err(e);
            }
        }
    }

    /// Once per start: dead letters refused for a reason configuration can
    /// fix (a town missing from the hierarchy) are fetched again from the
    /// stream and re-examined; those now accepted are applied (version rule)
    /// and leave the dead letters.
    async fn recheck_parked(&self, s: &jetstream::stream::Stream) -> Result<(), ConsumeError> {
        let store = self.store.clone();
        let parked = tokio::task::spawn_blocking(move || store.parked()).await.expect("the store task does not panic")?;
        let mut fetched = Vec::new();
        for seq in parked.iter().filter(|p| p.recheck).filter_map(|p| p.stream_seq) {
            match s.get_raw_message(seq).await {
                Ok(m) => fetched.push((seq, m.subject.to_string(), m.payload)),
                Err(e) => tracing::warn!(seq, error = %e, "cannot fetch a parked message to re-examine; it stays parked"),
            }
        }
        if fetched.is_empty() {
            return Ok(());
        }
        let (store, hierarchy, province) = (self.store.clone(), self.hierarchy.clone(), self.province.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            for (seq, subject, payload) in &fetched {
                if let Ok(snap) = intake::examine(&province, &hierarchy, subject, payload) {
                    let applied = store.apply(&snap)?;
                    store.unpark(*seq)?;
                    tracing::info!(seq, town = %snap.town, year = snap.year, version = snap.version, outcome = ?applied, "parked message accepted under the current configuration");
                }
            }
            store.sync()
        })
        .await
        .expect("the store task does not panic")?;
        Ok(())
    }

    /// Stores or parks a batch, makes it durable, then acknowledges it.
    async fn settle(&self, batch: Vec<jetstream::Message>) -> Result<(), ConsumeError> {
        let items: Vec<(String, bytes::Bytes, Option<u64>)> =
            batch.iter().map(|m| (m.subject.to_string(), m.payload.clone(), m.info().ok().map(|i| i.stream_sequence))).collect();
        let (store, hierarchy, province) = (self.store.clone(), self.hierarchy.clone(), self.province.clone());
        let settled = tokio::task::spawn_blocking(move || -> Result<Vec<Settled>, StoreError> {
            let mut out = Vec::with_capacity(items.len());
            for (subject, payload, seq) in &items {
                match intake::examine(&province, &hierarchy, subject, payload) {
                    Ok(snap) => {
                        let applied = store.apply(&snap)?;
                        out.push(Settled::Snapshot { town: snap.town, year: snap.year, version: snap.version, applied });
                    }
                    Err(refusal) => {
                        let parked = Parked::new(
                            *seq,
                            subject,
                            intake::subject_town(subject),
                            refusal.to_string(),
                            refusal.depends_on_config(),
                            payload,
                        );
                        store.park(&parked)?;
                        out.push(Settled::Parked(refusal));
                    }
                }
            }
            store.sync()?;
            Ok(out)
        })
        .await
        .expect("the store task does not panic")?;
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);

        for (msg, settled) in batch.iter().zip(settled) {
            let seq = msg.info().ok().map(|i| i.stream_sequence).unwrap_or_default();
            let ack = match settled {
                Settled::Snapshot { town, year, version, applied } => {
                    match applied {
                        Applied::New | Applied::Replaced { .. } => {
                            Metrics::inc(&self.metrics.applied);
                            tracing::debug!(town = %town, year, version, seq, outcome = ?applied, "town snapshot stored");
                        }
                        Applied::Duplicate => {
                            Metrics::inc(&self.metrics.duplicates);
                            tracing::debug!(town = %town, year, version, seq, "duplicate town snapshot ignored");
                        }
                        Applied::Stale { held } => {
                            Metrics::inc(&self.metrics.stale);
                            tracing::debug!(town = %town, year, version, held, seq, "older town snapshot ignored; a newer one is held");
                        }
                    }
                    AckKind::Ack
                }
                Settled::Parked(reason) => {
                    Metrics::inc(&self.metrics.parked);
                    tracing::warn!(subject = %msg.subject, seq, reason = %reason, "message parked as a dead letter");
                    AckKind::Term
                }
            };
            if let Err(e) = msg.ack_with(ack).await {
                // Stored durably already; a redelivery is ignored by the version rule.
                tracing::warn!(subject = %msg.subject, seq, error = %e, "ack failed; the message will be redelivered and ignored");
            }
        }
        Ok(())
    }
}
