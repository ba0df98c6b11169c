//! Sync status per ward: last seq applied, when its newest event was
//! recorded, lag, events held behind a gap, parked messages and messages
//! refused for their provenance (forged, altered, replayed). "Synced"
//! is never claimed without these figures (DESIGN.md §9).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::fold;
use crate::keys;
use crate::kv::{Kv, KvScan};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WardSync {
    pub ward: String,
    pub name: String,
    pub last_seq_applied: u64,
    pub last_event_recorded_at: Option<DateTime<Utc>>,
    /// Seconds between now and the newest applied event's recording time.
    pub lag_seconds: Option<i64>,
    pub applied: u64,
    pub parked: u64,
    /// Events received ahead of a gap and waiting for it to fill.
    pub held: u64,
    /// The first missing seq range, if events are held: [from, to].
    pub gap: Option<(u64, u64)>,
    /// Messages for this ward refused for their provenance: a signature
    /// that does not verify, an unsigned copy, a different event at a seq
    /// already taken, a broken hash chain (`crate::provenance`). Each is in
    /// the parked messages with its reason; none used up a seq.
    pub provenance_failures: u64,
}

pub fn ward_sync<K: Kv + KvScan>(kv: &K, ward: &str, name: &str, now: DateTime<Utc>) -> WardSync {
    // The position first: a batch writes it with the sync facts at once, but
    // two reads are not one snapshot, and a batch committed between them
    // would otherwise show a position ahead of the facts (applied, parked).
    let pos = kv.get(&keys::pos(ward)).map(|v| keys::u64_of(&v)).unwrap_or(0);
    let info = fold::ward_info(kv, ward);
    let held = kv.scan_prefix(&keys::held_prefix(ward));
    let gap = held.first().map(|(k, _)| (pos + 1, keys::trailing_u64(k) - 1));
    WardSync {
        ward: ward.into(),
        name: name.into(),
        last_seq_applied: pos,
        last_event_recorded_at: info.last_recorded_at,
        lag_seconds: info.last_recorded_at.map(|t| (now - t).num_seconds().max(0)),
        applied: info.applied,
        parked: info.parked,
        held: held.len() as u64,
        gap,
        provenance_failures: info.provenance_failures,
    }
}
