//! The town office's HTTP JSON API (reference: `services/town/API.md`).
//! Only this module knows HTTP; status mapping lives in [`error`].

mod cases;
mod error;
mod health;
mod indicators;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::Shared;

pub use error::ApiError;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/indicators", get(indicators::list))
        .route("/api/v1/cases", get(cases::summary))
        .route("/api/v1/sync", get(sync::status))
        .route("/api/v1/parked", get(sync::parked))
        .with_state(shared)
}

/// A year from a query, checked against the plan period.
pub fn check_year(year: Option<u16>) -> Result<u16, ApiError> {
    let year = year.ok_or_else(|| ApiError::bad("give ?year=YYYY (2021–2030)"))?;
    if !(treem_proto::event::FIRST_YEAR..=treem_proto::event::LAST_YEAR).contains(&year) {
        return Err(ApiError::bad(format!("year {year} is outside the plan period 2021–2030")));
    }
    Ok(year)
}

/// A ward code from a query, checked against the town's wards.
pub fn check_ward(shared: &Shared, ward: Option<&str>) -> Result<(), ApiError> {
    match ward {
        Some(w) if !shared.wards.iter().any(|x| x == w) => {
            Err(ApiError::not_found(format!("ward {w:?} is not in town {}; wards are {}", shared.config.town, shared.wards.join(", "))))
        }
        _ => Ok(()),
    }
}
