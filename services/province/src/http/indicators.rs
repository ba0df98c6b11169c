//! `GET /api/v1/indicators?year=2025[&town=690][&code=4a]`: every indicator
//! (or one) judged against its target, for the whole province (sum over
//! towns, see [`crate::rollup`]) or for one town (its own snapshot).
//!
//! Each indicator is the proto `IndicatorProgress` plus `"suppressed"`: when
//! `true`, a town withheld the figure as a small sensitive count (abuse,
//! child marriage, HIV), so `numerator` and `value` are `null` — never 0 —
//! and `suppressed_by` names the towns; a province total with any withheld
//! part is suppressed too (the province cannot add what it never received).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, params};
use crate::rollup::{self, Shown};

#[derive(Debug, Deserialize)]
pub struct IndicatorsQuery {
    pub year: Option<String>,
    pub town: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Province,
    Town,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndicatorsResponse {
    pub scope: Scope,
    pub province: String,
    /// The town asked for; `null` for the province.
    pub town: Option<String>,
    pub year: u16,
    /// Towns whose snapshot of the year is included.
    pub towns_reporting: BTreeSet<String>,
    /// For a town: the version of its snapshot shown, and when the town made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_at: Option<DateTime<Utc>>,
    pub indicators: Vec<Shown>,
}

pub async fn get(State(state): State<AppState>, Query(q): Query<IndicatorsQuery>) -> Result<Json<IndicatorsResponse>, ApiError> {
    let year = params::year(q.year.as_deref())?;
    let town = params::town(&state, q.town.as_deref())?;
    let code = params::code(&state, q.code.as_deref())?;
    let response = match town {
        None => {
            let snaps = state.store.snapshots_for_year(year)?;
            IndicatorsResponse {
                scope: Scope::Province,
                province: state.province.clone(),
                town: None,
                year,
                towns_reporting: rollup::towns_reporting(year, &snaps),
                version: None,
                produced_at: None,
                indicators: rollup::province_progress(&state.catalogue, year, &snaps, code.as_deref()),
            }
        }
        Some(town) => {
            let snap = state.store.snapshot(&town, year)?;
            IndicatorsResponse {
                scope: Scope::Town,
                province: state.province.clone(),
                towns_reporting: rollup::towns_reporting(year, snap.as_ref()),
                version: snap.as_ref().map(|s| s.version),
                produced_at: snap.as_ref().map(|s| s.produced_at),
                indicators: rollup::town_progress(&state.catalogue, year, snap.as_ref(), code.as_deref()),
                town: Some(town),
                year,
            }
        }
    };
    Ok(Json(response))
}
