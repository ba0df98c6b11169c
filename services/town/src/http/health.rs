//! `GET /health` and `GET /metrics` (Prometheus text format).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;

use crate::Shared;

pub async fn health(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let stream_error = shared.last_error.lock().expect("lock").clone();
    Json(serde_json::json!({
        "status": "ok",
        "service": "town",
        "town": shared.config.town,
        "ward_stream": if stream_error.is_some() { "unreachable" } else { "ok" },
        "stream_error": stream_error,
    }))
}

pub async fn metrics(State(shared): State<Arc<Shared>>) -> String {
    let mut out = String::new();
    out.push_str("# TYPE treem_town_applied_total counter\n");
    out.push_str(&format!("treem_town_applied_total {}\n", shared.applied_total.load(Ordering::Relaxed)));
    out.push_str(&format!("treem_town_stream_seq {}\n", shared.store.stream_seq()));
    out.push_str(&format!("treem_town_outbox_pending {}\n", shared.store.outbox().len()));
    out.push_str(&format!("treem_town_parked {}\n", shared.store.parked().len()));
    out
}
