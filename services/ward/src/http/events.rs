//! `/api/v1/events`: record an event, list recorded events.
//!
//! `POST` body: the proto Event JSON form with an optional author,
//! `{"author": "officer-1", "kind": "indicator.observed", "body": {…}}`
//! → `201 {"id","seq","kind","recorded_at"}` once the event is durable.
//! Malformed JSON → 400; unknown kind, wrong shape or a refused event → 422;
//! either way nothing is recorded. `case.opened` is refused here: cases are
//! opened with `POST /api/v1/cases`, which keeps the identity in the ward.
//!
//! `GET ?after=0&limit=100` → the envelopes with seq > `after`, at most
//! `limit` (≤ [`MAX_LIMIT`]), in the replicated JSON form.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use treem_proto::{Envelope, Event};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;

/// Most events one `GET` returns.
pub const MAX_LIMIT: usize = 1000;

/// The answer to a recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub id: Uuid,
    pub seq: u64,
    pub kind: String,
    pub recorded_at: DateTime<Utc>,
}

impl From<&Envelope> for Recorded {
    fn from(env: &Envelope) -> Self {
        Recorded { id: env.id, seq: env.seq, kind: env.event.kind().into(), recorded_at: env.recorded_at }
    }
}

/// The request body of `POST /api/v1/events`, as the CLI sends it.
pub fn request_body(author: Option<&str>, event: &Event) -> Value {
    let mut value = serde_json::to_value(event).expect("an event always serialises");
    if let (Some(author), Some(obj)) = (author, value.as_object_mut()) {
        obj.insert("author".into(), Value::String(author.into()));
    }
    value
}

/// Reads `{"author"?, "kind", "body"}` into an author and an event.
pub fn parse_request(body: &[u8]) -> Result<(Option<String>, Event), ApiError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the body is not valid JSON ({e}); send {{\"kind\": \"indicator.observed\", \"body\": {{…}}}}"))
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Err(ApiError::Unprocessable("the body must be a JSON object with \"kind\" and \"body\"".into()));
    };
    let author = match obj.remove("author") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::Unprocessable("\"author\" must be a string (the officer's id)".into())),
    };
    let known = Event::KINDS.join(", ");
    match obj.get("kind") {
        Some(Value::String(kind)) if Event::KINDS.contains(&kind.as_str()) => {}
        Some(Value::String(kind)) => {
            return Err(ApiError::Unprocessable(format!("unknown kind {kind:?}; known kinds are {known}")));
        }
        _ => return Err(ApiError::Unprocessable(format!("\"kind\" is missing or not a string; give one of {known}"))),
    }
    let event: Event = serde_json::from_value(value)
        .map_err(|e| ApiError::Unprocessable(format!("the event does not have the shape of its kind: {e}")))?;
    Ok((author, event))
}

pub async fn post(State(state): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    let (author, event) = parse_request(&body)?;
    let author = author.unwrap_or_else(|| state.default_author.clone());
    let env = state.log.append(&author, event).await?;
    Ok((StatusCode::CREATED, Json(Recorded::from(&env))))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    pub after: u64,
    pub limit: Option<usize>,
}

pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Vec<Envelope>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(format!("{}; use ?after=<seq>&limit=<1–{MAX_LIMIT}>", e.body_text())))?;
    let limit = params.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    Ok(Json(state.log.read_from(params.after, limit)?))
}
