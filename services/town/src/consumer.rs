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
    let mut received = Received::default();
    while !*stop.borrow() {
        let started = std::time::Instant::now();
        match session(&shared, &js, &forward, &mut stop, &mut received).await {
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
    received: &mut Received,
) -> Result<(), String> {
    let s = stream::ensure_stream(js, &shared.config).await.map_err(|e| e.to_string())?;
    let (consumer, start_after) = stream::ensure_consumer(&s, &shared.config, shared.store.stream_seq(), received.fallback())
        .await
        .map_err(|e| received.failed(e.to_string()))?;
    *received = Received::after(start_after);
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
        // Their stream sequences, read once when fetched (`store::input_of`).
        let seqs: Vec<u64> = input.iter().map(|(_, _, seq)| *seq).collect();
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
        for seq in seqs {
            received.acked(seq);
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

/// How long the server may give no answer about the town's consumer before
/// the consumer is deleted and created after what this process received
/// ([`stream::ensure_consumer`]).
const NO_ANSWER_FALLBACK: Duration = Duration::from_secs(10);

/// The stream sequences this process received and acknowledged since it
/// last created the consumer: every one up to `contiguous`, and those above
/// a gap (a message lost in flight, not yet delivered again). A floor the
/// town knows without the server, for when the server cannot say
/// ([`NO_ANSWER_FALLBACK`]); unknown until a session created the consumer.
#[derive(Default)]
struct Received {
    contiguous: Option<u64>,
    above: std::collections::BTreeSet<u64>,
    /// Since when sessions have failed to set up the consumer.
    failing_since: Option<std::time::Instant>,
}

/// Sequences kept above a gap at most; beyond, the floor stays where it is
/// (a fallback then reads more again, which the fold skips by seq).
const ABOVE_GAP_KEPT: usize = 100_000;

impl Received {
    fn after(start_after: u64) -> Received {
        Received { contiguous: Some(start_after), above: Default::default(), failing_since: None }
    }

    fn acked(&mut self, seq: u64) {
        let Some(contiguous) = self.contiguous.as_mut() else { return };
        if seq <= *contiguous {
            return;
        }
        if seq == *contiguous + 1 {
            *contiguous = seq;
            while self.above.remove(&(*contiguous + 1)) {
                *contiguous += 1;
            }
        } else if self.above.len() < ABOVE_GAP_KEPT {
            self.above.insert(seq);
        }
    }

    /// The floor to fall back on, once the consumer has had no answer for
    /// [`NO_ANSWER_FALLBACK`].
    fn fallback(&self) -> Option<u64> {
        self.failing_since.filter(|t| t.elapsed() >= NO_ANSWER_FALLBACK).and(self.contiguous)
    }

    fn failed(&mut self, error: String) -> String {
        self.failing_since.get_or_insert_with(std::time::Instant::now);
        error
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_received_floor_stops_at_a_gap_until_it_fills_and_is_offered_only_after_failing_long_enough() {
        let mut r = Received::after(10);
        for seq in [11, 13, 14, 9, 11] {
            r.acked(seq);
        }
        assert_eq!(r.contiguous, Some(11), "13 and 14 wait above the gap at 12");
        r.acked(12);
        assert_eq!(r.contiguous, Some(14));
        assert!(r.above.is_empty());

        assert_eq!(r.fallback(), None, "not failing");
        r.failed("no answer".into());
        assert_eq!(r.fallback(), None, "failing, but not for long");
        r.failing_since = std::time::Instant::now().checked_sub(NO_ANSWER_FALLBACK);
        assert_eq!(r.fallback(), Some(14));

        let mut unknown = Received::default();
        unknown.acked(1);
        unknown.failing_since = std::time::Instant::now().checked_sub(NO_ANSWER_FALLBACK);
        assert_eq!(unknown.fallback(), None, "a process that never created the consumer knows no floor");
    }
}
