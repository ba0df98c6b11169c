//! `GET /api/v1/sync`: per ward, last seq applied, lag, gaps, parked (the
//! parked messages themselves are in [`super::parked`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::Shared;
use crate::projection::sync::{self, WardSync};

#[derive(Debug, Serialize)]
pub struct Response {
    town: String,
    stream_seq: u64,
    /// The consumer's last error, if the ward stream is unreachable now.
    stream_error: Option<String>,
    /// Outbox version last acknowledged by the province stream.
    forwarded_version: u64,
    outbox_pending: usize,
    forward_error: Option<String>,
    parked: usize,
    wards: Vec<WardSync>,
}

pub async fn status(State(shared): State<Arc<Shared>>) -> Json<Response> {
    let now = chrono::Utc::now();
    let wards = shared.wards.iter().zip(&shared.ward_names).map(|(w, n)| sync::ward_sync(&shared.store.tree, w, n, now)).collect();
    Json(Response {
        town: shared.config.town.clone(),
        stream_seq: shared.store.stream_seq(),
        stream_error: shared.last_error.lock().expect("lock").clone(),
        forwarded_version: shared.forwarded_version.load(std::sync::atomic::Ordering::Relaxed),
        outbox_pending: shared.store.outbox().len(),
        forward_error: shared.forward_error.lock().expect("lock").clone(),
        parked: shared.store.parked().len(),
        wards,
    })
}
