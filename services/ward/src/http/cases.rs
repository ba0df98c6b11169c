//! `/api/v1/cases`: open a case, read a child's identity, withdraw consent.
//!
//! - `POST /api/v1/cases`, body `{"author"?, "identity": {"name","date_of_birth","address","guardian"},
//!   "year", "category", "groups": ["a"], "sex"}` → `201 {"case_id","id","seq"}`.
//!   The identity stays in this ward, sealed under the case's own key
//!   ([`crate::identity`]); the recorded `case.opened` carries only sex, age
//!   band, category, groups and year.
//! - `GET /api/v1/cases/{id}` → `200 {"case_id","identity"}` for the
//!   officer; `404` no such case; `410` erased at the child's request.
//! - `POST /api/v1/cases/{id}/withdraw-consent`, body `{"author"?, "reason"}`
//!   → `200` the [`ConsentWithdrawal`] recorded; the identity is erased for
//!   good, the case's coarse events and counts stay. `409` if already done.
//!
//! The last two answer requests from this machine only (loopback peer):
//! `403` otherwise, even when `http_addr` was opened to a network.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, parse_body};
use treem_proto::event::{CaseCategory, Sex};

use crate::identity::{self, ConsentWithdrawal, Identity, IdentityError, OpenCase};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCaseRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub identity: Identity,
    pub year: u16,
    pub category: CaseCategory,
    #[serde(default)]
    pub groups: Vec<char>,
    pub sex: Sex,
}

impl OpenCaseRequest {
    pub fn new(author: Option<String>, case: OpenCase) -> Self {
        let OpenCase { identity, year, category, groups, sex } = case;
        OpenCaseRequest { author, identity, year, category, groups, sex }
    }

    pub fn into_parts(self) -> (Option<String>, OpenCase) {
        let OpenCaseRequest { author, identity, year, category, groups, sex } = self;
        (author, OpenCase { identity, year, category, groups, sex })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseOpenedResponse {
    pub case_id: Uuid,
    pub id: Uuid,
    pub seq: u64,
}

pub async fn post(State(state): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<CaseOpenedResponse>), ApiError> {
    let req: OpenCaseRequest = parse_body(&body, "a case: {\"identity\": {…}, \"year\", \"category\", \"groups\", \"sex\"}")?;
    let (author, case) = req.into_parts();
    let author = author.unwrap_or_else(|| state.default_author.clone());
    let (case_id, env) = identity::open_case(&state.log, &author, case).await?;
    Ok((StatusCode::CREATED, Json(CaseOpenedResponse { case_id, id: env.id, seq: env.seq })))
}

/// The answer to `GET /api/v1/cases/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseIdentity {
    pub case_id: Uuid,
    pub identity: Identity,
}

/// The body of `POST /api/v1/cases/{id}/withdraw-consent`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawConsentRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Who asked, on which document; never the child's identity.
    pub reason: String,
}

/// Refuses a request that does not come from this machine.
fn from_this_machine(parts: &Parts) -> Result<(), ApiError> {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) if peer.ip().is_loopback() => Ok(()),
        Some(ConnectInfo(peer)) => Err(ApiError::Forbidden(format!(
            "a child's identity is served only to this machine, not to {}; use `treem-ward case show` on the ward's computer",
            peer.ip()
        ))),
        None => Err(ApiError::Forbidden("a child's identity is served only to this machine, and this request's origin is unknown".into())),
    }
}

fn case_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    raw.parse().map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a case id; give the UUID `treem-ward case open` printed")))
}

pub async fn show(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Result<Json<CaseIdentity>, ApiError> {
    from_this_machine(&parts)?;
    let case_id = case_id(path)?;
    match identity::identity_of(&state.log, case_id)? {
        Some(identity) => Ok(Json(CaseIdentity { case_id, identity })),
        None => Err(IdentityError::UnknownCase { case_id }.into()),
    }
}

pub async fn withdraw_consent(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    parts: Parts,
    body: Bytes,
) -> Result<Json<ConsentWithdrawal>, ApiError> {
    from_this_machine(&parts)?;
    let case_id = case_id(path)?;
    let req: WithdrawConsentRequest = parse_body(&body, "{\"reason\": \"…\"} (and optionally \"author\")")?;
    let author = req.author.unwrap_or_else(|| state.default_author.clone());
    Ok(Json(identity::withdraw_consent(&state.log, case_id, &author, &req.reason).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: Option<&str>) -> Parts {
        let mut req = axum::http::Request::new(());
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        }
        req.into_parts().0
    }

    #[test]
    fn identities_are_served_to_this_machine_only() {
        assert!(from_this_machine(&parts(Some("127.0.0.1:50000"))).is_ok());
        assert!(from_this_machine(&parts(Some("[::1]:50000"))).is_ok());
        for refused in [parts(Some("192.168.1.20:50000")), parts(Some("[fe80::1]:50000")), parts(None)] {
            let e = from_this_machine(&refused).unwrap_err();
            assert_eq!(e.status(), StatusCode::FORBIDDEN, "{e}");
        }
    }
}
