//! `GET /api/v1/stipend?year=2024`: the collaborator stipend of plan
//! section D for every ward and the town, month by month at the base
//! salary in force (see [`crate::stipend`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::{ApiError, check_year};
use crate::Shared;
use crate::stipend::{self, YearStipend};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    year: Option<u16>,
}

pub async fn get(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<YearStipend>, ApiError> {
    let Query(p) = params?;
    let year = check_year(p.year)?;
    Ok(Json(stipend::for_town(&shared.store.tree, &shared.wards, &shared.ward_names, year)))
}
