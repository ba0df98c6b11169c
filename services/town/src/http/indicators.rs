//! `GET /api/v1/indicators?year=2025[&ward=25320][&code=4a]`: every
//! indicator's numerator, denominator, value, target, status and reason, for
//! the town or one ward.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response as HttpResponse};
use bytes::Bytes;
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

/// The answers without `code` (what a dashboard asks for), as sent, per
/// (year, ward) and store generation: every client asking between two
/// batches gets the same bytes, rendered once.
#[derive(Default)]
pub struct Rendered {
    answers: Mutex<HashMap<AnswerKey, (u64, Bytes)>>,
}

/// (year, ward; none for the town).
type AnswerKey = (u16, Option<String>);

pub async fn list(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<HttpResponse, ApiError> {
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
    // Read before the figures: an answer cached under this generation
    // shows at least what was committed by then.
    let generation = shared.store.generation();
    let key = (year, p.ward.clone());
    if p.code.is_none()
        && let Some((g, body)) = shared.rendered.answers.lock().expect("rendered lock").get(&key)
        && *g == generation
    {
        return Ok(json(body.clone()));
    }
    let figures = shared.figures_async(year).await;
    let scope_figures = match &p.ward {
        Some(w) => figures.wards.get(w).cloned().unwrap_or_default(),
        None => figures.town.clone(),
    };
    let cacheable = p.code.is_none();
    let body = Bytes::from(
        serde_json::to_vec(&Response {
            scope: if p.ward.is_some() { "ward" } else { "town" },
            province: shared.config.province.clone(),
            town: shared.config.town.clone(),
            ward: p.ward,
            year,
            indicators: indicators::progress(&shared.ctx.catalogue, year, &scope_figures, p.code.as_deref()),
        })
        .expect("the indicators answer serialises"),
    );
    if cacheable {
        shared.rendered.answers.lock().expect("rendered lock").insert(key, (generation, body.clone()));
    }
    Ok(json(body))
}

fn json(body: Bytes) -> HttpResponse {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
