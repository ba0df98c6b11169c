//! The town office's HTTP JSON API (reference: `services/town/API.md`).
//! Only this module knows HTTP; status mapping lives in [`error`].
//!
//! Who may read what (SECURITY.md; the guard is `treem_auth::guard`):
//!
//! | routes | role | audited |
//! | --- | --- | --- |
//! | `/health`, `/metrics` (no case data) | none | no |
//! | `/api/v1/indicators`, `/api/v1/sync`, `/api/v1/stipend` | viewer | no |
//! | `/api/v1/cases` (case summaries) | officer | every request |
//! | `/api/v1/parked…` (raw events) and replay | admin | every request |

mod cases;
mod error;
mod health;
pub mod indicators;
pub mod parked;
mod stipend;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use treem_auth::{Auth, Role};

use crate::Shared;

pub use error::ApiError;

pub fn router(shared: Arc<Shared>, auth: Arc<Auth>) -> Router {
    let open = Router::new().route("/health", get(health::health)).route("/metrics", get(health::metrics));
    let viewer = Router::new()
        .route("/api/v1/indicators", get(indicators::list))
        .route("/api/v1/sync", get(sync::status))
        .route("/api/v1/stipend", get(stipend::get))
        .route_layer(from_fn_with_state(auth.require(Role::Viewer), treem_auth::guard));
    let officer = Router::new()
        .route("/api/v1/cases", get(cases::summary))
        .route_layer(from_fn_with_state(auth.require(Role::Officer).audited(), treem_auth::guard));
    let admin = Router::new()
        .route("/api/v1/parked", get(parked::list))
        .route("/api/v1/parked/{n}", get(parked::show))
        .route("/api/v1/parked/{n}/replay", post(parked::replay))
        .route_layer(from_fn_with_state(auth.require(Role::Admin).audited(), treem_auth::guard));
    // The web pages (dashboard, reports, sign-in) are `crate::web`'s.
    open.merge(viewer).merge(officer).merge(admin).with_state(shared.clone()).merge(crate::web::router(shared, auth))
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
