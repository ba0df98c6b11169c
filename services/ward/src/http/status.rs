//! `GET /api/v1/status` → [`LogStatus`] as JSON:
//! `{"ward","last_seq","acked_seq","pending","last_sync_at","last_error","last_error_at","last_rewind","catch_up"}`.
//! `catch_up` is the replicator's current (or last) backlog round with its
//! rate; `last_rewind` the last time the town's stream had lost events.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::error::ApiError;
use crate::log::LogStatus;

pub async fn get(State(state): State<AppState>) -> Result<Json<LogStatus>, ApiError> {
    Ok(Json(state.log.status()?))
}
