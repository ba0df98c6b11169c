//! The apply loop: fetch a batch from the durable pull consumer, fold it
//! into the store in one atomic durable commit, then acknowledge each
//! message. See `store` for what a crash at any point does.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};

use crate::Shared;
use crate::fold::Outcome;
use crate::stream;

/// Longest a fetch (500 ms expiry) may take before the session is restarted.
const FETCH_DEADLINE: Duration = Duration::from_millis(2000);

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
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let fetch = consumer.fetch().max_messages(shared.config.batch_size).expires(Duration::from_millis(500)).messages();
        let mut batch = tokio::select! {
            b = fetch => b.map_err(|e| format!("fetch: {e}"))?,
            _ = stop.changed() => return Ok(()),
        };
        // A fetch from a server that just died is only abandoned by the client
        // after its expiry plus a heartbeat grace of seconds; bound the wait so
        // the session starts over against a live server at once.
        let mut messages = Vec::new();
        let collect = async {
            while let Some(m) = batch.next().await {
                match m {
                    Ok(m) => messages.push(m),
                    Err(e) => {
                        tracing::debug!(error = %e, "fetch ended early");
                        break;
                    }
                }
            }
        };
        let stalled = tokio::time::timeout(FETCH_DEADLINE, collect).await.is_err();
        if stalled {
            if messages.is_empty() {
                return Err("fetch from the ward stream stalled (server gone?); starting a new session".into());
            }
            tracing::debug!(received = messages.len(), "fetch stalled after some messages; applying them");
        }
        if messages.is_empty() {
            continue;
        }
        let input: Vec<(String, Vec<u8>, u64)> = messages
            .iter()
            .map(|m| {
                let sseq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                (m.subject.to_string(), m.payload.to_vec(), sseq)
            })
            .collect();
        // A ward key registered meanwhile counts from this batch on.
        shared.ctx.provenance.refresh();
        let store = shared.store.clone();
        let ctx = shared.ctx.clone();
        let outcomes = tokio::task::spawn_blocking(move || store.apply_batch(&ctx, &input))
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
        for m in &messages {
            m.ack().await.map_err(|e| format!("ack: {e}"))?;
        }
        shared.applied_notify.notify_waiters();
        forward.notify_one();
        if stalled {
            // The rest of that pull may be lost with its connection; a new
            // session restarts the consumer from its ack floor, so those
            // messages come again now rather than after the ack wait.
            return Err("fetch from the ward stream stalled after some messages; starting a new session".into());
        }
    }
}
