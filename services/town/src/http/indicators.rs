//! `GET /api/v1/indicators?year=2025[&ward=25320][&code=4a]`: every
//! indicator's numerator, denominator, value, target, status and reason, for
//! the town or one ward.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use treem_proto::judge::IndicatorProgress;

use super::{ApiError, check_ward, check_year};
use crate::Shared;
use crate::projection::indicators;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    year: Option<u16>,
    ward: Option<String>,
    code: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Response {
    scope: &'static str,
    province: String,
    town: String,
    ward: Option<String>,
    year: u16,
    indicators: Vec<IndicatorProgress>,
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Response>, ApiError> {
    let Query(p) = params?;
    let year = check_year(p.year)?;
    check_ward(&shared, p.ward.as_deref())?;
    if let Some(code) = &p.code
        && shared.ctx.catalogue.get(code).is_none()
    {
        return Err(ApiError::not_found(format!(
            "unknown indicator {code:?}; known codes are {}",
            shared.ctx.catalogue.codes().join(", ")
        )));
    }
    let figures = indicators::figures(&shared.store.tree, &shared.ctx.catalogue, &shared.wards, year);
    let scope_figures = match &p.ward {
        Some(w) => figures.wards.get(w).cloned().unwrap_or_default(),
        None => figures.town,
    };
    Ok(Json(Response {
        scope: if p.ward.is_some() { "ward" } else { "town" },
        province: shared.config.province.clone(),
        town: shared.config.town.clone(),
        ward: p.ward,
        year,
        indicators: indicators::progress(&shared.ctx.catalogue, year, &scope_figures, p.code.as_deref()),
    }))
}
