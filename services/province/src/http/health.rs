//! `GET /health` (is the process serving, is it attached to NATS) and
//! `GET /metrics` (Prometheus text).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;

/// Always 200 while the process serves: NATS being away is normal, and is
/// reported in `nats_connected` rather than as a failure.
pub async fn get(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": "province",
        "province": state.province,
        "nats_connected": state.metrics.nats_connected.load(Ordering::Relaxed),
        "snapshots": state.store.snapshot_count(),
        "parked": state.store.parked_count(),
    }))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(state.store.snapshot_count(), state.store.parked_count());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}
