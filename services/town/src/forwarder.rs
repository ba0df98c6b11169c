//! Forwards changed years to the province through the durable outbox
//! (`out/` keys, written in the same atomic commit as the projection
//! change). For each changed year it publishes one [`TownSnapshot`] — the
//! numerators and denominators of every indicator for the town and each
//! ward, and case counts by category; never a percentage alone, never a
//! case — and deletes the outbox entries only once JetStream acknowledged.
//!
//! Small sensitive counts (abuse, child marriage, HIV) below the town's
//! `suppress_below` are withheld from every snapshot before it leaves
//! ([`crate::suppress`]): the province receives them marked "suppressed",
//! never the number.
//!
//! A crash between publish and delete re-publishes the same snapshot
//! version: the province keeps the highest version per town and year, and
//! `Nats-Msg-Id` de-duplicates inside the window, so it is harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, watch};
use treem_proto::projection::TownSnapshot;
use treem_proto::subject;

use crate::Shared;
use crate::projection::indicators;

/// The snapshot of `year` at outbox version `version`, as forwarded: with
/// the small sensitive counts withheld.
pub fn snapshot(shared: &Shared, year: u16, version: u64) -> TownSnapshot {
    let figures = shared.figures(year);
    let mut cases_counted: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, category), (n, _)) in indicators::case_counts(&shared.store.tree, year) {
        *cases_counted.entry(category).or_default() += n;
    }
    let mut snap = TownSnapshot {
        province: shared.config.province.clone(),
        town: shared.config.town.clone(),
        year,
        version,
        produced_at: chrono::Utc::now(),
        wards_total: shared.wards.len() as u32,
        indicators: figures.town.clone(),
        wards: figures.wards.clone(),
        cases_counted,
        suppressed: Default::default(),
    };
    crate::suppress::apply(&mut snap, &shared.ctx.catalogue, shared.config.suppress_below);
    snap
}

pub async fn run(shared: Arc<Shared>, js: async_nats::jetstream::Context, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let min = Duration::from_millis(shared.config.backoff_min_ms);
    let max = Duration::from_millis(shared.config.backoff_max_ms);
    let mut backoff = min;
    loop {
        if *stop.borrow() {
            return;
        }
        match forward_once(&shared, &js).await {
            Ok(_) => {
                backoff = min;
                *shared.forward_error.lock().expect("lock") = None;
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "province unreachable; outbox kept");
                *shared.forward_error.lock().expect("lock") = Some(e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

/// Publishes one snapshot per year pending in the outbox. Returns how many.
async fn forward_once(shared: &Shared, js: &async_nats::jetstream::Context) -> Result<usize, String> {
    let pending = shared.store.outbox();
    let Some(&(last, _)) = pending.last() else { return Ok(0) };
    let years: BTreeSet<u16> = pending.iter().map(|&(_, y)| y).collect();
    let subject = subject::projection_subject(&shared.config.province, &shared.config.town, subject::VIEW_INDICATORS);
    let mut acks = Vec::new();
    for year in &years {
        let snap = snapshot(shared, *year, last);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", snap.msg_id().as_str());
        let payload = Bytes::from(serde_json::to_vec(&snap).expect("snapshot serialises"));
        let ack = js.publish_with_headers(subject.clone(), headers, payload).await.map_err(|e| format!("publish snapshot {year}: {e}"))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| format!("province stream did not acknowledge: {e}"))?;
    }
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || store.outbox_done(last)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    shared.forwarded_version.store(last, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(version = last, years = years.len(), "forwarded to province");
    Ok(years.len())
}
