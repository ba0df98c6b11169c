//! `GET /api/v1/parked`: the dead letters — messages the province could not
//! use, with the reason and the stream sequence to fetch them whole.

use axum::Json;
use axum::extract::State;

use super::{ApiError, AppState};
use crate::store::Parked;

pub async fn get(State(state): State<AppState>) -> Result<Json<Vec<Parked>>, ApiError> {
    Ok(Json(state.store.parked()?))
}
