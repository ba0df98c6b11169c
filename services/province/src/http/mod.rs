//! The province's read API (axum), the same surface as the town's over all
//! towns of the province. Only this module knows HTTP; it reads the store and
//! never writes it.
//!
//! | endpoint | answers |
//! | --- | --- |
//! | `GET /health` | `{"status":"ok","service":"province","province","nats_connected","snapshots","parked"}` |
//! | `GET /metrics` | Prometheus text |
//! | `GET /api/v1/indicators?year=&town=&code=` | [`indicators::IndicatorsResponse`] |
//! | `GET /api/v1/cases?year=&town=` | [`cases::CasesResponse`] |
//! | `GET /api/v1/sync` | [`sync::SyncResponse`] |
//! | `GET /api/v1/parked` | the dead letters, oldest first |
//!
//! Errors are `{"error": "..."}` with the status chosen in [`error`].
//!
//! Who may read what (SECURITY.md; the guard is `treem_auth::guard`):
//! `/health` and `/metrics` are open (no case data); indicators and sync
//! need a `viewer` token; case counts need `officer` and every request is
//! audited; parked messages need `admin` and are audited too.

pub mod cases;
pub mod error;
pub mod health;
pub mod indicators;
mod params;
pub mod parked;
pub mod sync;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use treem_auth::{Auth, Role};
use treem_proto::catalogue::Catalogue;
use treem_proto::hierarchy::Hierarchy;

pub use error::ApiError;

use crate::metrics::Metrics;
use crate::store::Store;

/// What every handler reads.
#[derive(Clone)]
pub struct AppState {
    pub province: String,
    pub hierarchy: Arc<Hierarchy>,
    pub catalogue: Arc<Catalogue>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The dashboard's threshold for a silent town (config `silent_after_days`).
    pub silent_after_days: u32,
}

impl AppState {
    /// Codes of the province's towns, in hierarchy order.
    pub fn town_codes(&self) -> Vec<&str> {
        self.hierarchy.province(&self.province).map(|p| p.towns.iter().map(|t| t.code.as_str()).collect()).unwrap_or_default()
    }
}

pub fn router(state: AppState, auth: Arc<Auth>) -> Router {
    let viewer = Router::new()
        .route("/api/v1/indicators", get(indicators::get))
        .route("/api/v1/sync", get(sync::get))
        .route_layer(from_fn_with_state(auth.require(Role::Viewer), treem_auth::guard));
    let officer = Router::new()
        .route("/api/v1/cases", get(cases::get))
        .route_layer(from_fn_with_state(auth.require(Role::Officer).audited(), treem_auth::guard));
    let admin = Router::new()
        .route("/api/v1/parked", get(parked::get))
        .route_layer(from_fn_with_state(auth.require(Role::Admin).audited(), treem_auth::guard));
    Router::new()
        .route("/health", get(health::get))
        .route("/metrics", get(health::metrics))
        .merge(viewer)
        .merge(officer)
        .merge(admin)
        // The web pages (dashboard, sign-in) are `crate::web`'s.
        .merge(crate::web::router(state.clone(), auth))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NotFound(format!(
                "no endpoint {uri}; try /health, /metrics, /api/v1/indicators?year=2025, /api/v1/cases?year=2025, /api/v1/sync, /api/v1/parked"
            ))
        })
        .with_state(state)
}
