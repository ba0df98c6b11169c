//! The ward's local HTTP API, for the officer's tools and the CLI when a
//! node is running. One resource per file; the mapping of errors to HTTP
//! statuses lives in [`error`] only.
//!
//! | route | file |
//! | --- | --- |
//! | `GET /health` | [`health`] |
//! | `GET /metrics` | [`metrics`] |
//! | `POST /api/v1/events`, `GET /api/v1/events?after=&limit=` | [`events`] |
//! | `POST /api/v1/cases` | [`cases`] |
//! | `GET /api/v1/status` | [`status`] |
//!
//! The API binds to 127.0.0.1 by default: it is the officer's own machine.
//! It never serves a child's identity: the events it returns are the
//! replicated form, which carries none.

pub mod cases;
pub mod error;
pub mod events;
pub mod health;
pub mod metrics;
pub mod status;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::log::WardLog;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub log: WardLog,
    /// Author written on events whose request names none.
    pub default_author: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::get))
        .route("/metrics", get(metrics::get))
        .route("/api/v1/events", post(events::post).get(events::list))
        .route("/api/v1/cases", post(cases::post))
        .route("/api/v1/status", get(status::get))
        .with_state(state)
}

/// Serves until `shutdown` turns true, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}
