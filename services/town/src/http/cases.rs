//! `GET /api/v1/cases?year=2024[&ward=25320]`: case counts by category,
//! status, sex and age band. Counts only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::{ApiError, check_ward, check_year};
use crate::Shared;
use crate::projection::cases::{self, CaseSummary};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    year: Option<u16>,
    ward: Option<String>,
}

pub async fn summary(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CaseSummary>, ApiError> {
    let Query(p) = params?;
    let year = check_year(p.year)?;
    check_ward(&shared, p.ward.as_deref())?;
    Ok(Json(cases::summary(&shared.store.tree, year, p.ward.as_deref())))
}
