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
//! | `GET /api/v1/cases/{id}` (the child's identity), `POST /api/v1/cases/{id}/withdraw-consent` | [`cases`] |
//! | `GET /api/v1/status` | [`status`] |
//! | `GET /`, `POST /entry/{form}`, `/events/{id}/correct`, `/events/{id}/retract` (pages) | `crate::web` |
//!
//! The API binds to 127.0.0.1 by default: it is the officer's own machine.
//! The events it returns are the replicated form, which carries no
//! identity. The one route that serves a child's identity, and the one that
//! erases it, answer only requests from this machine (a loopback peer),
//! whatever `http_addr` is: exposing the API on a network never exposes
//! identities.

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
        .route("/api/v1/cases/{id}", get(cases::show))
        .route("/api/v1/cases/{id}/withdraw-consent", post(cases::withdraw_consent))
        .route("/api/v1/status", get(status::get))
        // The officer's data-entry page (`/`, `/entry/…`, `/events/{id}/…`) is `crate::web`'s.
        .merge(crate::web::router(state.clone()))
        // Every refusal says why, unknown routes and methods too (found by fuzzing: axum's defaults answer with an empty body).
        .fallback(|uri: axum::http::Uri| async move {
            error::ApiError::NotFound(format!(
                "no endpoint {uri}; the ward API has /health, /metrics, /api/v1/events, /api/v1/cases, /api/v1/cases/{{id}}, /api/v1/cases/{{id}}/withdraw-consent, /api/v1/status"
            ))
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            error::ApiError::MethodNotAllowed(format!("{method} is not allowed on {uri}; see the routes of the ward API (services/ward/src/http/mod.rs)"))
        })
        .with_state(state)
}

/// Serves until `shutdown` turns true, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
    // The peer address lets `cases` serve identities to this machine only.
    axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}
