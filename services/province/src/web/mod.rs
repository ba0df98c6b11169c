//! The province office's web pages (Sở LĐ-TB&XH): the dashboard over every
//! town of the province ([`dashboard`]), the same layout as a town's over
//! its wards (`treem_web::dashboard`), in Vietnamese by default and English
//! with `?lang=en`. Served with its one stylesheet by the province itself;
//! nothing is fetched from elsewhere.
//!
//! | route | role | audited |
//! | --- | --- | --- |
//! | `GET /login`, `POST /login`, `POST /logout`, `GET /assets/treem.css` | none | sign-ins are |
//! | `GET /`, `GET /dashboard?year=&office=&lang=` | viewer | only when it shows case counts (officer and above) |
//!
//! Pages take the API's tokens, as a bearer header or the session cookie
//! of the sign-in form (`treem_auth::session`). The province holds
//! aggregates only: a figure a town withheld (a small sensitive count) is
//! shown as withheld, never as zero.

pub mod dashboard;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use treem_auth::login::html_response;
use treem_auth::{Auth, Role};
use treem_web::html::{self, Page};
use treem_web::{Lang, labels};

use crate::http::AppState;

/// What the page handlers reach.
#[derive(Clone)]
pub struct WebState {
    pub app: AppState,
    pub auth: Arc<Auth>,
}

impl WebState {
    /// "Tỉnh Bình Phước".
    pub fn place(&self) -> String {
        self.app
            .hierarchy
            .province(&self.app.province)
            .map(|p| format!("Tỉnh {}", p.name))
            .unwrap_or_else(|_| format!("Province {}", self.app.province))
    }

    /// The province's towns as the pages show them: ("690", "Thị xã Bình Long").
    pub fn towns(&self) -> Vec<(String, String)> {
        self.app
            .hierarchy
            .province(&self.app.province)
            .map(|p| p.towns.iter().map(|t| (t.code.clone(), labels::place(&t.kind, &t.name))).collect())
            .unwrap_or_default()
    }
}

/// The pages' routes, with their own state; merge into any router.
pub fn router<S: Clone + Send + Sync + 'static>(app: AppState, auth: Arc<Auth>) -> Router<S> {
    let pages = Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard", get(dashboard::page))
        .route_layer(from_fn_with_state(auth.require(Role::Viewer).browser(), treem_auth::guard));
    let state = WebState { app, auth };
    Router::new()
        .route(treem_web::CSS_PATH, get(css))
        .merge(pages)
        .with_state(state.clone())
        .merge(treem_auth::login::router(state.auth.clone(), state.place()))
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], treem_web::CSS).into_response()
}

/// A page that says what was wrong and how to fix it.
pub fn error_page(w: &WebState, lang: Lang, status: StatusCode, text: &str) -> Response {
    let body = html::page(&Page {
        lang,
        title: format!("{} — {}", w.place(), status.as_u16()),
        place: w.place(),
        nav: vec![("/dashboard".into(), lang.t("Bảng theo dõi", "Dashboard").into(), false)],
        body: html::notice("error", lang.t("Không thể hiển thị trang", "This page cannot be shown"), text),
        ..Default::default()
    });
    html_response(status, body)
}
