//! `GET /api/v1/sync`: how up to date the province is with each town of the
//! hierarchy — the last snapshot version received, when the town produced
//! it, the years held, and dead letters from that town.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TownSync {
    pub town: String,
    pub name: String,
    /// Highest snapshot version held for the town (any year); `null` if none yet.
    pub last_version: Option<u64>,
    /// When the town produced that snapshot.
    pub produced_at: Option<DateTime<Utc>>,
    pub years: BTreeSet<u16>,
    /// Messages on the town's subject that were parked.
    pub parked: u64,
    /// The small-count threshold the town applied to its latest snapshot
    /// (sensitive counts below it withheld); `0`: a town that withholds
    /// nothing (older version, or `suppress_below` ≤ 1). `null` if none yet.
    pub suppress_below: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResponse {
    pub province: String,
    /// Whether the consumer is attached to the projections stream now.
    pub nats_connected: bool,
    /// Why it is not, if it tried and failed (NATS down, stream incompatible…).
    pub consumer_error: Option<String>,
    pub towns: Vec<TownSync>,
    /// Parked messages whose subject names no town of the province.
    pub parked_other: u64,
}

pub async fn get(State(state): State<AppState>) -> Result<Json<SyncResponse>, ApiError> {
    let snaps = state.store.all_snapshots()?;
    let mut parked = state.store.parked_counts()?;
    let towns: Vec<TownSync> = state
        .hierarchy
        .province(&state.province)
        .map(|p| p.towns.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let mine: Vec<_> = snaps.iter().filter(|s| s.town == t.code).collect();
            let latest = mine.iter().max_by_key(|s| s.version);
            TownSync {
                town: t.code.clone(),
                name: t.name.clone(),
                last_version: latest.map(|s| s.version),
                produced_at: latest.map(|s| s.produced_at),
                years: mine.iter().map(|s| s.year).collect(),
                parked: parked.remove(&Some(t.code.clone())).unwrap_or(0),
                suppress_below: latest.map(|s| s.suppressed.below),
            }
        })
        .collect();
    Ok(Json(SyncResponse {
        province: state.province.clone(),
        nats_connected: state.metrics.nats_connected.load(Ordering::Relaxed),
        consumer_error: state.metrics.error(),
        towns,
        parked_other: parked.values().sum(),
    }))
}
