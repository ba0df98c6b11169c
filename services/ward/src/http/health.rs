//! `GET /health` → `{"status":"ok","ward":"25320"}`: the process is up and
//! its log open. Sync state is in `/api/v1/status`, not here: no network is
//! a normal state for a ward.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;

pub async fn get(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "ward": state.log.ward().ward }))
}
