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

pub mod cases;
pub mod error;
pub mod health;
pub mod indicators;
mod params;
pub mod parked;
pub mod sync;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
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
}

impl AppState {
    /// Codes of the province's towns, in hierarchy order.
    pub fn town_codes(&self) -> Vec<&str> {
        self.hierarchy.province(&self.province).map(|p| p.towns.iter().map(|t| t.code.as_str()).collect()).unwrap_or_default()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::get))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/indicators", get(indicators::get))
        .route("/api/v1/cases", get(cases::get))
        .route("/api/v1/sync", get(sync::get))
        .route("/api/v1/parked", get(parked::get))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NotFound(format!(
                "no endpoint {uri}; try /health, /metrics, /api/v1/indicators?year=2025, /api/v1/cases?year=2025, /api/v1/sync, /api/v1/parked"
            ))
        })
        .with_state(state)
}
