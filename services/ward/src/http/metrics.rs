//! `GET /metrics`: Prometheus text format.
//!
//! - `treem_ward_last_seq` — highest recorded seq;
//! - `treem_ward_acked_seq` — highest seq acknowledged by the town;
//! - `treem_ward_pending` — recorded, not yet acknowledged.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::ApiError;

pub async fn get(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let s = state.log.status()?;
    let ward = &s.ward;
    let mut out = String::new();
    for (name, help, value) in [
        ("treem_ward_last_seq", "Highest sequence number recorded in the ward log.", s.last_seq),
        ("treem_ward_acked_seq", "Highest sequence number acknowledged by the town (contiguous).", s.acked_seq),
        ("treem_ward_pending", "Recorded events not yet acknowledged by the town.", s.pending),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{ward=\"{ward}\"}} {value}\n"));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
