//! The one place where errors become HTTP statuses. Every error body is
//! `{"error": "<what was wrong and how to fix it>"}`.
//!
//! - 400: the body is not JSON, or a query parameter or case id is not well-formed;
//! - 403: a child's identity asked for from another machine than this one;
//! - 404: no such case in this ward, or no such endpoint; 405: wrong method;
//! - 409: consent for the case was already withdrawn;
//! - 410 Gone: the child's identity was erased (consent withdrawn);
//! - 422: well-formed JSON that is refused (unknown kind, missing field,
//!   validation, unknown event or case): nothing was recorded;
//! - 507 Insufficient Storage: the disk under the ward log is full; nothing
//!   was recorded (the message starts with "disk full" and says to free
//!   space; the log recovers by itself once there is room);
//! - 500: storage failed; the message says whether the event may exist.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::identity::IdentityError;
use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Invalid(_)
            | LogError::TooLarge { .. }
            | LogError::BadAuthor(_)
            | LogError::UnknownEvent { .. }
            | LogError::NestedCorrection { .. }
            | LogError::KindMismatch { .. }
            | LogError::CaseIdChanged { .. }
            | LogError::UnknownCase { .. }
            | LogError::CaseNeedsIdentity
            | LogError::AckBeyondEnd { .. } => ApiError::Unprocessable(e.to_string()),
            LogError::DiskFull { .. } | LogError::NotDurableDiskFull(_) => ApiError::InsufficientStorage(e.to_string()),
            LogError::Locked { .. }
            | LogError::Keys(_)
            | LogError::WrongWard { .. }
            | LogError::Storage { .. }
            | LogError::NotDurable(_)
            | LogError::Corrupt { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Log(log) => log.into(),
            IdentityError::Corrupt { .. } | IdentityError::Vault(_) | IdentityError::KeyMissing { .. } => ApiError::Internal(e.to_string()),
            IdentityError::UnknownCase { .. } => ApiError::NotFound(e.to_string()),
            IdentityError::Erased { .. } => ApiError::Gone(e.to_string()),
            IdentityError::AlreadyErased { .. } => ApiError::Conflict(e.to_string()),
            other => ApiError::Unprocessable(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// Parses a JSON request body: syntax errors are 400, shape errors 422.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON ({e}); send {what} as a JSON object")))?;
    serde_json::from_value(value).map_err(|e| ApiError::Unprocessable(format!("the body is not {what}: {e}")))
}
