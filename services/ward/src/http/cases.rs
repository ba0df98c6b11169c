//! `POST /api/v1/cases`: open a case.
//!
//! Body: `{"author"?, "identity": {"name","date_of_birth","address","guardian"},
//! "year", "category", "groups": ["a"], "sex"}` → `201 {"case_id","id","seq"}`.
//! The identity stays in this ward ([`crate::identity`]); the recorded
//! `case.opened` carries only sex, age band, category, groups and year.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, parse_body};
use treem_proto::event::{CaseCategory, Sex};

use crate::identity::{self, Identity, OpenCase};

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
