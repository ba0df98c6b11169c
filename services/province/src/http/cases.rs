//! `GET /api/v1/cases?year=2025[&town=690]`: cases opened in the year by
//! category, for the province (sum over towns) and per town. Counts only —
//! the province never sees a case (invariant 5).
//!
//! A count a town withheld (a small sensitive count: abuse, child marriage)
//! is `null`, never 0, and listed in `suppressed`; the province total of
//! that category is then `null` too (see [`crate::rollup`]).

use std::collections::{BTreeMap, BTreeSet};

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
    /// Category → cases opened, summed over the towns below; `null` when a
    /// town withheld it.
    pub cases_counted: BTreeMap<String, Option<u64>>,
    /// Town → category → cases opened, for each town that reported the year;
    /// `null` where the town withheld it.
    pub towns: BTreeMap<String, BTreeMap<String, Option<u64>>>,
    /// Categories whose total is suppressed (small sensitive counts withheld by a town).
    #[serde(default)]
    pub suppressed: BTreeSet<String>,
}

pub async fn get(State(state): State<AppState>, Query(q): Query<CasesQuery>) -> Result<Json<CasesResponse>, ApiError> {
    let year = params::year(q.year.as_deref())?;
    let town = params::town(&state, q.town.as_deref())?;
    let snaps: Vec<_> = state.store.snapshots_for_year(year)?.into_iter().filter(|s| town.as_ref().is_none_or(|t| &s.town == t)).collect();
    let towns = snaps.iter().map(|s| (s.town.clone(), rollup::sum_cases(year, [s]))).collect();
    let cases_counted = rollup::sum_cases(year, &snaps);
    let suppressed = cases_counted.iter().filter(|(_, n)| n.is_none()).map(|(c, _)| c.clone()).collect();
    Ok(Json(CasesResponse {
        scope: if town.is_some() { Scope::Town } else { Scope::Province },
        province: state.province.clone(),
        town,
        year,
        cases_counted,
        towns,
        suppressed,
    }))
}
