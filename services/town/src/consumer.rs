//! The apply loop: fetch a batch from the durable pull consumer, fold it
//! into the store in one atomic durable commit, then acknowledge each
//! message. See `store` for what a crash at any point does.
//!
//! A fetcher task pulls the next batch and prepares it (decoding, hashes,
//! signature checks on all cores, with the ward keys read again first:
//! `store::prepare_batch`) while the current one is folded and committed:
//! one batch ahead, in order. Nothing is acknowledged before its batch is
//! committed, so a batch fetched but lost with its session is redelivered.
//!
//! The forwarder is woken after each committed batch, but at most every
//! `FORWARD_EVERY` (500 ms) while full batches follow one another (see there).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use tokio::sync::{Notify, mpsc, watch};

use crate::Shared;
use crate::fold::Outcome;
use crate::store::{self, PreparedBatch};
use crate::stream;

/// Longest a fetch (500 ms expiry) may wait for its next message before the
/// session is restarted.
const FETCH_DEADLINE: Duration = Duration::from_millis(2000);

/// While full batches follow one another (a catch-up), the forwarder is
/// woken at most this often: each wake recomputes the snapshot of every
/// changed year over the whole store, which would otherwise run after
/// every batch and take a large share of the CPU the fold needs. A batch
/// that is not full (the town is up to date) wakes it at once.
const FORWARD_EVERY: Duration = Duration::from_millis(500);

/// Runs until `stop` turns true. Reconnects and backs off on any error.
pub async fn run(shared: Arc<Shared>, js: async_nats::jetstream::Context, forward: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let min = Duration::from_millis(shared.config.backoff_min_ms);
    let max = Duration::from_millis(shared.config.backoff_max_ms);
    let mut backoff = min;
    while !*stop.borrow() {
        let started = std::time::Instant::now();
        match session(&shared, &js, &forward, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                // A session that ran a while was healthy: the next failure
                // starts the back-off afresh instead of where it once climbed.
                if started.elapsed() > max {
                    backoff = min;
                }
                *shared.last_error.lock().expect("lock") = Some(e.clone());
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "ward stream unavailable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

async fn session(
    shared: &Arc<Shared>,
    js: &async_nats::jetstream::Context,
    forward: &Arc<Notify>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let s = stream::ensure_stream(js, &shared.config).await.map_err(|e| e.to_string())?;
    let consumer = stream::ensure_consumer(&s, &shared.config, shared.store.stream_seq()).await.map_err(|e| e.to_string())?;
    tracing::info!(stream = %s.cached_info().config.name, "consuming ward events");
    *shared.last_error.lock().expect("lock") = None;
    // The next batch is fetched while this one is folded; the fetcher stops
    // with the session (dropping the guard aborts it), and what it fetched
    // but this loop never acknowledged comes again with the next session.
    let (tx, mut fetched) = mpsc::channel(1);
    let _fetcher = AbortOnDrop(tokio::spawn(fetcher(shared.clone(), consumer, tx)));
    let mut wake = ForwardWake { forward: forward.clone(), last: None, held: false };
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let due = wake.due();
        let next = tokio::select! {
            b = fetched.recv() => b,
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                wake.now();
                continue;
            }
            _ = stop.changed() => return Ok(()),
        };
        let Ready { messages, input, prepared, stalled } = match next {
            Some(batch) => batch?,
            None => return Err("the ward stream fetcher ended; starting a new session".into()),
        };
        let store = shared.store.clone();
        let ctx = shared.ctx.clone();
        let outcomes = tokio::task::spawn_blocking(move || store.apply_prepared_batch(&ctx, &input, prepared))
            .await
            .map_err(|e| format!("apply task: {e}"))?
            .map_err(|e| e.to_string())?;
        let mut applied = 0u64;
        for o in &outcomes {
            match o {
                Outcome::Applied { ward, seq, then_applied } => {
                    applied += 1 + then_applied;
                    tracing::trace!(ward, seq, "applied");
                }
                Outcome::Duplicate { ward, seq } => tracing::debug!(ward, seq, "duplicate skipped"),
                Outcome::Held { ward, seq, expected } => tracing::info!(ward, seq, expected, "held behind a gap"),
                Outcome::Parked { .. } => {}
            }
        }
        shared.applied_total.fetch_add(applied, std::sync::atomic::Ordering::Relaxed);
        // Acknowledge only after the commit above is durable.
        let acking = std::time::Instant::now();
        for m in &messages {
            m.ack().await.map_err(|e| format!("ack: {e}"))?;
        }
        tracing::debug!(messages = messages.len(), ack_us = acking.elapsed().as_micros() as u64, "batch acknowledged");
        shared.applied_notify.notify_waiters();
        if messages.len() < shared.config.batch_size {
            wake.now();
        } else {
            wake.soon();
        }
        if stalled {
            // The rest of that pull may be lost with its connection; a new
            // session restarts the consumer from its ack floor, so those
            // messages come again now rather than after the ack wait.
            return Err("fetch from the ward stream stalled after some messages; starting a new session".into());
        }
    }
}

/// One fetched batch, never empty; `stalled`: the fetch stalled after these
/// (the session starts over once they are applied).
struct Fetched {
    messages: Vec<async_nats::jetstream::Message>,
    stalled: bool,
}

/// A fetched batch as `(subject, payload, stream_seq)`, prepared for the fold.
struct Ready {
    messages: Vec<async_nats::jetstream::Message>,
    input: Vec<store::Input>,
    prepared: PreparedBatch,
    stalled: bool,
}

/// Wakes of the forwarder after committed batches, at most one per
/// [`FORWARD_EVERY`] while batches are full; a wake held back is given when
/// due, or when the session ends.
struct ForwardWake {
    forward: Arc<Notify>,
    last: Option<tokio::time::Instant>,
    held: bool,
}

impl ForwardWake {
    fn now(&mut self) {
        self.forward.notify_one();
        self.last = Some(tokio::time::Instant::now());
        self.held = false;
    }

    /// After a full batch: wakes now if the last wake is old enough, else holds it.
    fn soon(&mut self) {
        match self.last {
            Some(last) if last.elapsed() < FORWARD_EVERY => self.held = true,
            _ => self.now(),
        }
    }

    /// When the wake held back is due.
    fn due(&self) -> Option<tokio::time::Instant> {
        self.held.then(|| self.last.map_or_else(tokio::time::Instant::now, |l| l + FORWARD_EVERY))
    }
}

impl Drop for ForwardWake {
    fn drop(&mut self) {
        if self.held {
            self.forward.notify_one();
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fetches batches in order and prepares each ([`store::prepare_batch`]:
/// decoding, hashes, signatures) into `tx`, until a fetch fails or stalls
/// (sent last) or the session drops the receiver.
async fn fetcher(shared: Arc<Shared>, consumer: PullConsumer, tx: mpsc::Sender<Result<Ready, String>>) {
    loop {
        let batch = match fetch(&consumer, shared.config.batch_size).await {
            Ok(b) if b.messages.is_empty() => continue,
            Ok(b) => prepare(&shared, b).await,
            Err(e) => Err(e),
        };
        let last = batch.as_ref().map_or(true, |b| b.stalled);
        if tx.send(batch).await.is_err() || last {
            return;
        }
    }
}

/// Prepares a fetched batch with the ward keys in force: a key registered
/// meanwhile counts from this batch on.
async fn prepare(shared: &Arc<Shared>, Fetched { messages, stalled }: Fetched) -> Result<Ready, String> {
    let input: Vec<store::Input> = messages.iter().map(store::input_of).collect();
    shared.ctx.provenance.refresh();
    let ctx = shared.ctx.clone();
    let (input, prepared) = tokio::task::spawn_blocking(move || {
        let prepared = store::prepare_batch(&ctx, &input);
        (input, prepared)
    })
    .await
    .map_err(|e| format!("prepare task: {e}"))?;
    Ok(Ready { messages, input, prepared, stalled })
}

/// One fetch of up to `batch_size` messages (500 ms expiry).
async fn fetch(consumer: &PullConsumer, batch_size: usize) -> Result<Fetched, String> {
    let mut batch = consumer
        .fetch()
        .max_messages(batch_size)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    // A fetch from a server that just died is only abandoned by the client
    // after its expiry plus a heartbeat grace of seconds; bound the wait so
    // the session starts over against a live server at once.
    // A stall is no message for that long, not a slow batch: on a saturated
    // machine a full batch may take longer while messages keep coming.
    let mut messages = Vec::new();
    let stalled = loop {
        match tokio::time::timeout(FETCH_DEADLINE, batch.next()).await {
            Err(_) => break true,
            Ok(None) => break false,
            Ok(Some(Ok(m))) => messages.push(m),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "fetch ended early");
                break false;
            }
        }
    };
    if stalled {
        if messages.is_empty() {
            return Err("fetch from the ward stream stalled (server gone?); starting a new session".into());
        }
        tracing::debug!(received = messages.len(), "fetch stalled after some messages; applying them");
    }
    Ok(Fetched { messages, stalled })
}
