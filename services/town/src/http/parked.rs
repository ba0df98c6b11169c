//! The parked messages (dead letters) and their replay:
//!
//! - `GET /api/v1/parked[?status=parked|replayed]`: every record, oldest
//!   first, with its reason, its place in its ward's sequence when known,
//!   whether the dead-letter stream has it, and for a replayed one when and
//!   what came of it;
//! - `GET /api/v1/parked/{n}`: one record with the exact message;
//! - `POST /api/v1/parked/{n}/replay`: runs the message through the fold
//!   again with the code, catalogue and hierarchy in force now (see
//!   [`crate::replay`]).
//!
//! Every route here needs an `admin` token and is audited (parked messages
//! can hold raw events; see [`super`]). A replay command records who asked
//! for it: `requested_by: "token <id>"` (`token list` names its holder).
//!
//! The handler first tries the replay on a scratch copy and answers 422
//! with the reason (nothing published, nothing changed) when it would still
//! fail. Otherwise it publishes the replay command to the town's stream and
//! waits until the consumer has folded it, then answers with the outcome.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use treem_proto::subject;
use uuid::Uuid;

use super::ApiError;
use crate::Shared;
use crate::parked::Parked;
use crate::replay::{self, ReplayCommand, ReplayOutcome, ReplayRefusal, Replayed};

/// How long a replay request waits for the consumer to fold its command.
const REPLAY_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
}

/// One record as the list shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    pub n: u64,
    /// `parked` (still refused) or `replayed`.
    pub status: String,
    pub subject: String,
    pub reason: String,
    pub ward: Option<String>,
    pub seq: Option<u64>,
    pub event_id: Option<Uuid>,
    /// True when its ward seq was consumed (refused by the rules in its turn).
    pub seq_consumed: bool,
    /// `published` once the dead-letter stream acknowledged it, else `pending`.
    pub deadletter: String,
    pub replayed: Option<Replayed>,
    /// The message, lossily as text and cut at 4 KiB.
    pub message: String,
}

/// One record with the exact message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    /// The message as received: exact when `payload_utf8`, else lossily.
    pub payload: String,
    pub payload_utf8: bool,
    pub payload_len: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReplayResponse {
    pub n: u64,
    /// `replayed`, or `accepted` when the consumer had not folded the
    /// command in time (it will; see `GET /api/v1/parked/{n}`).
    pub status: String,
    pub outcome: Option<ReplayOutcome>,
    /// Where the replay command sits in the town's stream.
    pub command_seq: u64,
    pub message: String,
}

fn summary(shared: &Shared, n: u64, p: Parked) -> Summary {
    let published = shared.store.deadletter_published() >= n;
    Summary {
        n,
        status: if p.replayed.is_some() { "replayed" } else { "parked" }.into(),
        subject: p.subject,
        reason: p.reason,
        ward: p.ward,
        seq: p.seq,
        event_id: p.event_id,
        seq_consumed: p.seq_consumed,
        deadletter: if published { "published" } else { "pending" }.into(),
        replayed: p.replayed,
        message: p.message,
    }
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Summary>>, ApiError> {
    let Query(p) = params?;
    let want = match p.status.as_deref() {
        None | Some("all") => None,
        Some(s @ ("parked" | "replayed")) => Some(s.to_owned()),
        Some(other) => return Err(ApiError::bad(format!("status {other:?} is not one of parked, replayed, all"))),
    };
    let all = shared.store.parked_all();
    Ok(Json(all.into_iter().map(|(n, p)| summary(&shared, n, p)).filter(|s| want.as_ref().is_none_or(|w| *w == s.status)).collect()))
}

fn number(path: Result<Path<u64>, PathRejection>) -> Result<u64, ApiError> {
    path.map(|Path(n)| n).map_err(|e| ApiError::bad(format!("{}; give the parked message's number, e.g. /api/v1/parked/3", e.body_text())))
}

fn record(shared: &Shared, n: u64) -> Result<Parked, ApiError> {
    shared.store.parked_record(n).ok_or_else(|| ApiError::not_found(ReplayRefusal::NotFound { n }.to_string()))
}

pub async fn show(State(shared): State<Arc<Shared>>, path: Result<Path<u64>, PathRejection>) -> Result<Json<Detail>, ApiError> {
    let n = number(path)?;
    let rec = record(&shared, n)?;
    let bytes = rec.payload();
    let (payload, payload_utf8) = match String::from_utf8(bytes.clone()) {
        Ok(text) => (text, true),
        Err(_) => (String::from_utf8_lossy(&bytes).into_owned(), false),
    };
    Ok(Json(Detail { summary: summary(&shared, n, rec), payload, payload_utf8, payload_len: bytes.len() }))
}

fn refusal(e: ReplayRefusal) -> ApiError {
    match e {
        ReplayRefusal::NotFound { .. } => ApiError::not_found(e.to_string()),
        ReplayRefusal::AlreadyReplayed { .. } | ReplayRefusal::Mismatch { .. } => ApiError::conflict(e.to_string()),
        ReplayRefusal::StillRefused { .. } | ReplayRefusal::BadCommand { .. } => ApiError::unprocessable(e.to_string()),
    }
}

pub async fn replay(
    State(shared): State<Arc<Shared>>,
    caller: treem_auth::Caller,
    path: Result<Path<u64>, PathRejection>,
) -> Result<(StatusCode, Json<ReplayResponse>), ApiError> {
    let n = number(path)?;
    let rec = record(&shared, n)?;
    let cmd = ReplayCommand::for_record(n, &rec, chrono::Utc::now(), &caller.attribution());
    // Would it take effect now? If not, say why and publish nothing. (With
    // the ward keys as the file has them now: a key just registered counts.)
    shared.ctx.provenance.refresh();
    let (store, ctx, check) = (shared.store.clone(), shared.ctx.clone(), cmd.clone());
    tokio::task::spawn_blocking(move || replay::dry_run(&store.tree, &ctx, &check))
        .await
        .map_err(|e| ApiError::unavailable(format!("replay check failed: {e}")))?
        .map_err(refusal)?;
    let to = subject::town_replay_subject(&shared.config.province, &shared.config.town);
    let body = serde_json::to_vec(&cmd).expect("a replay command serialises");
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::unavailable(format!("cannot record the replay command in the town's stream ({e}); is NATS up? nothing was replayed"))
    };
    let ack = shared.js.publish(to, body.into()).await.map_err(|e| unreachable(&e))?.await.map_err(|e| unreachable(&e))?;
    let command_seq = ack.sequence;
    tracing::info!(parked = n, command_seq, "replay command recorded in the town's stream");
    let deadline = tokio::time::Instant::now() + REPLAY_WAIT;
    loop {
        // Registered before looking, so a batch committed meanwhile still wakes us.
        let folded = shared.applied_notify.notified();
        if let Some(result) = shared.store.take_replay_result(command_seq) {
            let outcome = result.map_err(refusal)?;
            let message = format!("parked message #{n} replayed: {outcome}");
            return Ok((
                StatusCode::OK,
                Json(ReplayResponse { n, status: "replayed".into(), outcome: Some(outcome), command_seq, message }),
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            let message = format!(
                "the replay command is in the town's stream at seq {command_seq} but the town has not folded it yet; see GET /api/v1/parked/{n}"
            );
            return Ok((StatusCode::ACCEPTED, Json(ReplayResponse { n, status: "accepted".into(), outcome: None, command_seq, message })));
        }
        tokio::select! {
            _ = folded => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
