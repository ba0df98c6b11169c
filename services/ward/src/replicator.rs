//! The replicator (đồng bộ lên thị xã): publishes the ward log, in seq order,
//! to the town's JetStream stream `TREEM_EVENTS_<province>_<town>`, and
//! remembers durably what the town acknowledged.
//!
//! - Subject: [`treem_proto::subject::event_subject`]; header `Nats-Msg-Id`
//!   = the envelope id, and `Nats-Expected-Stream` = the town's stream, so a
//!   stray stream capturing the subject cannot swallow the ward's events.
//! - Pipelined: up to `max_in_flight` publishes are sent before the first
//!   ack is awaited; acks are collected in publish order (`FuturesOrdered`),
//!   so "acked" is always a contiguous prefix of the log.
//! - Progress (`acked_seq`, with the stream sequence its ack named) is
//!   noted every
//!   [`ACK_PERSIST_EVERY`] acks (durable with the next group commit, not
//!   waited for) and stored durably at the end of each round, so a restart
//!   resumes from it. Losing the last few acks to a crash only re-publishes
//!   them, which JetStream de-duplication and the town's per-ward seq absorb.
//! - Reconciliation: on every (re)connect of the NATS client, before sending
//!   anything, the replicator asks the stream for the newest message it
//!   holds for this ward and moves `acked_seq` back if the stream lost
//!   events (`reconcile.rs`). Counted by the client's `connects` statistic,
//!   so a reconnect that happens while the ward is idle is checked too.
//! - A backlog (a round of [`CATCH_UP_MIN`] events or more) is a catch-up:
//!   logged at INFO with `from_seq`/`to_seq` when it starts, with the
//!   acknowledged seq, percentage and rate every [`PROGRESS_EVERY`], and
//!   when it ends; the same figures are in the status (`catch_up`).
//! - No network is normal, not an error: when NATS is unreachable or the
//!   town has not created its stream yet, the round stops, the reason is
//!   stored as `last_error` (and logged at WARN), and the next round starts
//!   from `acked_seq + 1` after an exponential backoff
//!   (`backoff_min`…`backoff_max`), or as soon as the connection is
//!   re-established.
//! - Recording never waits for the network: the replicator is woken by the
//!   log after each append, and otherwise looks again every
//!   [`IDLE_POLL`].
//! - It only ever reads durable events ([`WardLog::read_stored_from`]), so
//!   nothing leaves the ward that a crash could take back; and it publishes
//!   each event's stored bytes unchanged, as the ward signed them.
//!
//! # What an acknowledgement means
//!
//! "Recorded" is the ward's promise (the event is fsynced in its log, see
//! [`crate::log`]). A JetStream ack is the town server's: the message is in
//! the stream's files, in the page cache, fsynced within `sync_interval`
//! (2 min by default). So `acked_seq` means "need not be sent again unless
//! the stream loses it", never "may be forgotten": the log keeps every
//! event, and reconciliation re-sends what a power cut at the town took
//! back. RELIABILITY.md ("Durability") has the whole argument and figures.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::{Notify, watch};
use treem_proto::subject;

use crate::log::{AckMark, CatchUp, LogError, WardLog};
use crate::reconcile::reconcile;

/// How often an idle replicator looks at the log without being woken.
pub const IDLE_POLL: Duration = Duration::from_secs(3);
/// Acks between two durable writes of `acked_seq` within a round.
pub const ACK_PERSIST_EVERY: u64 = 256;
/// A round of at least this many events is a catch-up (INFO logs, status).
pub const CATCH_UP_MIN: u64 = 100;
/// How often a catch-up logs its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Events read from the log at a time.
const READ_BATCH: usize = 256;
/// How long a round waits for a connection under way before it calls NATS
/// unreachable.
const CONNECT_GRACE: Duration = Duration::from_secs(2);
/// How long a publish may wait for its ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the replicator needs from the node configuration.
#[derive(Debug, Clone)]
pub struct ReplicatorConfig {
    pub nats_url: String,
    /// The ward's NATS identity and TLS (empty: none).
    pub nats_auth: treem_auth::nats::ClientAuth,
    pub max_in_flight: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Why a replication round stopped before the end of the log.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("not connected to the town's NATS at {url}; events stay queued in the ward and are sent when it is reachable")]
    Unreachable { url: String },
    #[error("the town's stream {stream} does not exist yet (is the town node set up?); events stay queued in the ward")]
    NoStream { stream: String },
    #[error("no acknowledgement from the town's NATS within {secs}s; will retry")]
    TimedOut { secs: u64 },
    #[error("publishing seq {seq} failed: {detail}")]
    Publish { seq: u64, detail: String },
    #[error("cannot ask the town's stream {stream} what it holds for this ward: {detail}; will retry before sending")]
    Reconcile { stream: String, detail: String },
    #[error("{0}")]
    Log(#[from] LogError),
}

/// Runs until `shutdown` turns true (or its sender is dropped).
pub async fn run(log: WardLog, config: ReplicatorConfig, mut shutdown: watch::Receiver<bool>) {
    let ward = log.ward().ward.clone();
    let backoff = Backoff::new(config.backoff_min, config.backoff_max);
    // Woken when the connection to NATS is (re-)established, so a ward
    // coming back online starts catching up at once, not after its backoff.
    let connected = Arc::new(Notify::new());
    let client = loop {
        let on_event = connected.clone();
        let options = match config.nats_auth.apply(async_nats::ConnectOptions::new()) {
            Ok(options) => options,
            Err(e) => {
                // Checked at start (Config::validate); a seed file removed or
                // made readable by others since then lands here.
                tracing::error!(%ward, error = %e, "cannot use the NATS credentials; events stay queued in the ward");
                let _ = log.set_sync_error(&format!("cannot use the NATS credentials: {e}"), chrono::Utc::now());
                if wait_or_stop(&mut shutdown, config.backoff_max).await {
                    return;
                }
                continue;
            }
        };
        let connect = options
            .name(format!("treem-ward-{ward}"))
            .event_callback(move |event| {
                let on_event = on_event.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        on_event.notify_one();
                    }
                }
            })
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(move |attempt| backoff.delay(attempt as u32))
            // One URL or several (a cluster), comma-separated.
            .connect(crate::config::nats_urls(&config.nats_url));
        match connect.await {
            Ok(client) => break client,
            Err(e) => {
                // Only a malformed address gets here: retry_on_initial_connect
                // makes an unreachable server a background retry.
                tracing::warn!(%ward, url = %config.nats_url, error = %e, "cannot set up the NATS connection");
                let _ = log.set_sync_error(&format!("cannot set up the NATS connection to {}: {e}", config.nats_url), chrono::Utc::now());
                if wait_or_stop(&mut shutdown, config.backoff_max).await {
                    return;
                }
            }
        }
    };
    // Ack futures dropped by a failed round keep their permit in the
    // client's background acker until their ack or `ack_timeout`; twice the
    // window means a new round rarely waits for them.
    let js = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .ack_timeout(ACK_TIMEOUT)
        .max_ack_inflight(config.max_in_flight.max(1).saturating_mul(2))
        .backpressure_on_inflight(true)
        .build(client.clone());
    let stream = subject::town_events_stream(&log.ward().province, &log.ward().town);
    let appended = log.appended();
    // Connections made so far (initial connect included): a change means a
    // (re)connect, after which the stream is reconciled before sending.
    let stats = client.statistics();
    let mut reconciled_at: Option<u64> = None;
    let mut failures: u32 = 0;
    // The last error warned about: an offline ward retries for weeks, so a
    // repeated error is logged at debug, a new one at warn.
    let mut last_warned: Option<String> = None;
    // The first seq of the last catch-up announced at INFO: a round that
    // starts from the same seq again (retries after a failure) is debug.
    let mut announced: Option<u64> = None;

    loop {
        if *shutdown.borrow() {
            break;
        }
        let round = async {
            let must_reconcile = reconciled_at != Some(stats.connects.load(Ordering::SeqCst));
            let to = log.last_seq();
            let nothing_to_send = log.acked_seq()? >= to;
            if nothing_to_send && !must_reconcile {
                return Ok(None);
            }
            if client.connection_state() != State::Connected {
                if nothing_to_send {
                    // Reconcile once connected (the idle wait wakes on it).
                    return Ok(None);
                }
                // A connection may be under way (always so right after
                // start): give it a moment before calling it unreachable.
                tokio::select! {
                    _ = connected.notified() => {}
                    _ = tokio::time::sleep(CONNECT_GRACE) => {}
                }
                if client.connection_state() != State::Connected {
                    return Err(SyncError::Unreachable { url: config.nats_url.clone() });
                }
            }
            // Events recorded during the wait for a connection belong to
            // this round too (one catch-up, not a stale range and another).
            let to = log.last_seq();
            if must_reconcile {
                // Read before asking: a reconnect during the request is
                // checked again by the next round.
                let connects = stats.connects.load(Ordering::SeqCst);
                reconcile(&log, &js, &stream).await?;
                reconciled_at = Some(connects);
            }
            let from = log.acked_seq()? + 1;
            if from > to {
                return Ok(None);
            }
            if to - from + 1 >= CATCH_UP_MIN && announced != Some(from) {
                announced = Some(from);
                tracing::info!(%ward, from_seq = from, to_seq = to, events = to - from + 1, "catching up with the town");
            } else if to - from + 1 >= CATCH_UP_MIN {
                tracing::debug!(%ward, from_seq = from, to_seq = to, "catching up with the town (retry)");
            } else {
                tracing::debug!(%ward, from_seq = from, to_seq = to, "sending to the town");
            }
            publish_range(&log, &js, &stream, config.max_in_flight.max(1), from, to).await.map(Some)
        };
        let outcome = tokio::select! {
            outcome = round => outcome,
            _ = shutdown.changed() => break,
        };
        match outcome {
            Ok(None) => {
                failures = 0;
                last_warned = None;
                announced = None;
                // Caught up: sleep until an append, a (re)connect (to
                // reconcile), a poll tick or shutdown.
                tokio::select! {
                    _ = appended.notified() => {}
                    _ = connected.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => break,
                }
            }
            Ok(Some(acked)) => {
                failures = 0;
                last_warned = None;
                announced = None;
                tracing::debug!(%ward, acked_seq = acked, "town acknowledged");
                if let Err(e) = log.set_sync_ok(chrono::Utc::now()) {
                    tracing::warn!(%ward, error = %e, "cannot note the sync time");
                }
            }
            Err(e) => {
                let delay = backoff.delay(failures);
                failures = failures.saturating_add(1);
                let message = e.to_string();
                if last_warned.as_deref() == Some(message.as_str()) {
                    tracing::debug!(%ward, error = %message, retry_in_ms = delay.as_millis() as u64, "sync with the town failed again");
                } else {
                    tracing::warn!(%ward, error = %message, retry_in_ms = delay.as_millis() as u64, "sync with the town failed");
                }
                if let Err(le) = log.set_sync_error(&message, chrono::Utc::now()) {
                    tracing::warn!(%ward, error = %le, "cannot note the sync error");
                }
                last_warned = Some(message);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = connected.notified() => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    tracing::info!(%ward, "replicator stopped");
}

/// Sleeps `delay`; returns true if shutdown was asked meanwhile.
async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Publishes seqs `from..=to` with up to `max_in_flight` awaiting acks.
/// Returns the highest seq acknowledged (= `to` on success); on error,
/// stores the contiguous acked prefix first.
async fn publish_range(log: &WardLog, js: &Context, stream: &str, max_in_flight: usize, from: u64, to: u64) -> Result<u64, SyncError> {
    let mut acked = from - 1;
    // The ack mark of the prefix `1..=acked`: the highest stream sequence
    // its acks named, and which event that was (see `sync_state.rs`).
    let mut mark = match log.ack_marks()?.last() {
        Some(m) if m.seq == acked => *m,
        _ => AckMark { seq: acked, stream_seq: 0, event_seq: 0 },
    };
    let mut persisted = acked;
    let mut progress = Progress::start(log, from, to);
    let mut next = from;
    let mut buffer = VecDeque::new();
    let mut in_flight = FuturesOrdered::new();

    let result: Result<(), SyncError> = async {
        loop {
            while in_flight.len() < max_in_flight && next <= to {
                if buffer.is_empty() {
                    // The stored bytes, exactly as signed (see `WardLog::read_stored_from`).
                    buffer.extend(log.read_stored_from(next - 1, READ_BATCH)?);
                    if buffer.is_empty() {
                        break;
                    }
                }
                let (env, bytes) = buffer.pop_front().expect("buffer is not empty");
                let seq = env.seq;
                let publish = PublishMessage::build().payload(bytes.into()).message_id(env.msg_id()).expected_stream(stream);
                let ack = js.send_publish(subject::event_subject(&env), publish).await.map_err(|e| classify(e.kind(), seq, stream, &e))?;
                in_flight.push_back(async move { (seq, ack.await) });
                next = seq + 1;
            }
            let Some((seq, ack)) = in_flight.next().await else { return Ok(()) };
            match ack {
                Ok(ack) => {
                    tracing::trace!(seq, stream_seq = ack.sequence, duplicate = ack.duplicate, "acked");
                    acked = seq;
                    // For a duplicate, JetStream gives the original's position.
                    if ack.sequence >= mark.stream_seq {
                        (mark.stream_seq, mark.event_seq) = (ack.sequence, seq);
                    }
                    mark.seq = seq;
                    if acked - persisted >= ACK_PERSIST_EVERY {
                        // Durable with the next group commit; not waited for.
                        drop(log.note_acked_at(mark)?);
                        persisted = acked;
                        if let Some(p) = progress.as_mut() {
                            p.update(log, acked);
                        }
                    }
                }
                Err(e) => return Err(classify(e.kind(), seq, stream, &e)),
            }
        }
    }
    .await;

    if acked > persisted {
        log.set_acked_at(mark).await?;
    }
    if let Some(p) = progress.as_mut() {
        p.update(log, acked);
    }
    result.map(|()| acked)
}

/// The progress of a catch-up: logged every [`PROGRESS_EVERY`] and kept in
/// the status ([`CatchUp`]).
struct Progress {
    state: CatchUp,
    started: Instant,
    logged: Instant,
}

impl Progress {
    /// `Some` when `from..=to` is a catch-up ([`CATCH_UP_MIN`] events or more).
    fn start(log: &WardLog, from: u64, to: u64) -> Option<Progress> {
        if to - from + 1 < CATCH_UP_MIN {
            return None;
        }
        let state =
            CatchUp { from_seq: from, to_seq: to, acked_seq: from - 1, started_at: chrono::Utc::now(), finished_at: None, per_sec: 0.0 };
        log.set_catch_up(state.clone());
        let now = Instant::now();
        Some(Progress { state, started: now, logged: now })
    }

    fn update(&mut self, log: &WardLog, acked: u64) {
        let ward = &log.ward().ward;
        let elapsed = self.started.elapsed().as_secs_f64();
        self.state.acked_seq = acked;
        self.state.per_sec = if elapsed > 0.0 { (acked + 1 - self.state.from_seq) as f64 / elapsed } else { 0.0 };
        let per_sec = self.state.per_sec.round() as u64;
        if acked >= self.state.to_seq {
            self.state.finished_at = Some(chrono::Utc::now());
            tracing::info!(%ward, from_seq = self.state.from_seq, to_seq = self.state.to_seq, secs = format!("{elapsed:.1}"), per_sec, "caught up with the town");
        } else if self.logged.elapsed() >= PROGRESS_EVERY {
            self.logged = Instant::now();
            let percent = format!("{:.0}", self.state.percent());
            tracing::info!(%ward, acked_seq = acked, to_seq = self.state.to_seq, percent, per_sec, "catching up with the town");
        }
        log.set_catch_up(self.state.clone());
    }
}

fn classify(kind: PublishErrorKind, seq: u64, stream: &str, e: &dyn std::fmt::Display) -> SyncError {
    match kind {
        PublishErrorKind::StreamNotFound => SyncError::NoStream { stream: stream.into() },
        PublishErrorKind::TimedOut => SyncError::TimedOut { secs: ACK_TIMEOUT.as_secs() },
        _ => SyncError::Publish { seq, detail: e.to_string() },
    }
}

/// Exponential backoff: `min · 2^attempt`, capped at `max`.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max: max.max(min) }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(5000));
        let delays: Vec<u128> = (0..8).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.delay(1000).as_millis(), 5000);
    }
}
