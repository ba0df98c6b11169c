//! `GET /api/v1/cases?year=2025[&town=690]`: cases opened in the year by
//! category, for the province (sum over towns) and per town. Counts only —
//! the province never sees a case (invariant 5).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::indicators::Scope;
use super::{ApiError, AppState, params};
use crate::rollup;

#[derive(Debug, Deserialize)]
pub struct CasesQuery {
    pub year: Option<String>,
    pub town: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CasesResponse {
    pub scope: Scope,
    pub province: String,
    pub town: Option<String>,
    pub year: u16,
    /// Category → cases opened, summed over the towns below.
    pub cases_counted: BTreeMap<String, u64>,
    /// Town → category → cases opened, for each town that reported the year.
    pub towns: BTreeMap<String, BTreeMap<String, u64>>,
}

pub async fn get(State(state): State<AppState>, Query(q): Query<CasesQuery>) -> Result<Json<CasesResponse>, ApiError> {
    let year = params::year(q.year.as_deref())?;
    let town = params::town(&state, q.town.as_deref())?;
    let snaps: Vec<_> = state.store.snapshots_for_year(year)?.into_iter().filter(|s| town.as_ref().is_none_or(|t| &s.town == t)).collect();
    let towns = snaps.iter().map(|s| (s.town.clone(), rollup::sum_cases(year, [s]))).collect();
    Ok(Json(CasesResponse {
        scope: if town.is_some() { Scope::Town } else { Scope::Province },
        province: state.province.clone(),
        town,
        year,
        cases_counted: rollup::sum_cases(year, &snaps),
        towns,
    }))
}
