//! The town office's web pages (trang web của thị xã), beside the JSON API
//! of [`crate::http`]: the dashboard ([`dashboard`]) and the evaluation
//! reports ([`report`]: HTML, CSV, XLSX, PDF), in Vietnamese by default,
//! English with `?lang=en`. Every asset is served by the town itself
//! (one stylesheet, no script, no font or chart fetched from elsewhere),
//! so the pages work with no internet.
//!
//! | route | role | audited |
//! | --- | --- | --- |
//! | `GET /login`, `POST /login`, `POST /logout`, `GET /assets/treem.css` | none | sign-ins are |
//! | `GET /`, `GET /dashboard?year=&office=&lang=` | viewer | only when it shows case summaries (officer and above) |
//! | `GET /reports/evaluation?kind=&from=&to=&format=&lang=` | viewer | no (aggregates only) |
//!
//! Pages take the same tokens as the API: a bearer header, or the session
//! cookie the sign-in form sets (`treem_auth::session`); without either
//! the browser is sent to `/login`. The rendering itself is `treem-web`'s;
//! this module reads the town store into its models.

pub mod dashboard;
pub mod export;
pub mod pdf;
pub mod report;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Datelike;
pub use treem_auth::login::html_response;
use treem_auth::{Auth, Caller, Role};
use treem_proto::event::{FIRST_YEAR, LAST_YEAR};
use treem_web::html::{self, Page, Reader};
use treem_web::{Lang, labels};

use crate::Shared;

/// What the page handlers reach.
#[derive(Clone)]
pub struct WebState {
    pub shared: Arc<Shared>,
    pub auth: Arc<Auth>,
}

impl WebState {
    /// "Thị xã Bình Long".
    pub fn place(&self) -> String {
        let c = &self.shared.config;
        self.shared
            .ctx
            .hierarchy
            .town(&c.province, &c.town)
            .map(|t| labels::place(&t.kind, &t.name))
            .unwrap_or_else(|_| format!("Town {}", c.town))
    }

    /// The wards as the pages show them: "Phường Hưng Chiến".
    pub fn ward_names(&self) -> Vec<String> {
        self.shared.ward_names.iter().map(|n| labels::capitalise(n)).collect()
    }
}

/// The pages' routes, with their own state; merge into any router.
pub fn router<S: Clone + Send + Sync + 'static>(shared: Arc<Shared>, auth: Arc<Auth>) -> Router<S> {
    let pages = Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard", get(dashboard::page))
        .route("/reports/evaluation", get(report::get))
        .route_layer(from_fn_with_state(auth.require(Role::Viewer).browser(), treem_auth::guard));
    let state = WebState { shared, auth };
    Router::new()
        .route(treem_web::CSS_PATH, get(css))
        .merge(pages)
        .with_state(state.clone())
        .merge(treem_auth::login::router(state.auth.clone(), state.place()))
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], treem_web::CSS).into_response()
}

/// The year this is in Vietnam, within the plan period: the default page.
pub fn this_year() -> u16 {
    let y = chrono::Utc::now().with_timezone(&treem_web::format::vietnam()).year();
    u16::try_from(y).unwrap_or(LAST_YEAR).clamp(FIRST_YEAR, LAST_YEAR)
}

/// `?year=` of a page: absent → this year; otherwise 2021–2030.
pub fn year_param(raw: Option<&str>, lang: Lang) -> Result<u16, String> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(this_year());
    };
    match raw.parse::<u16>() {
        Ok(y) if (FIRST_YEAR..=LAST_YEAR).contains(&y) => Ok(y),
        _ => Err(match lang {
            Lang::Vi => format!("Năm «{raw}» không hợp lệ: hãy chọn một năm từ {FIRST_YEAR} đến {LAST_YEAR}."),
            Lang::En => format!("Year {raw:?} is not valid: choose a year from {FIRST_YEAR} to {LAST_YEAR}."),
        }),
    }
}

/// The reader for the page header.
pub fn reader(caller: &Caller, headers: &HeaderMap) -> Reader {
    Reader {
        name: caller.name.clone(),
        role: caller.role.as_str().into(),
        can_sign_out: treem_auth::session::token_text(headers).is_some(),
    }
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
