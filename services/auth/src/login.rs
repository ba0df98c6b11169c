//! `GET /login`, `POST /login`, `POST /logout`: signing a browser in with
//! an access token and out again (the cookie is [`crate::session`]'s), the
//! same for every office service: [`router`] with the service's tokens and
//! the name of its place. A refused sign-in is answered 401 with the form
//! again and one message, whatever was wrong; every attempt is in the audit
//! log.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use treem_web::Lang;

use crate::Auth;
use crate::session::{self, SignInError};

/// What the sign-in pages need of a service: its tokens, and the place the
/// form names ("Thị xã Bình Long").
#[derive(Clone)]
struct SignInState {
    auth: Arc<Auth>,
    place: String,
}

/// The routes `/login` and `/logout`, with their own state; merge into any router.
pub fn router<S: Clone + Send + Sync + 'static>(auth: Arc<Auth>, place: String) -> Router<S> {
    Router::new().route("/login", get(form).post(submit)).route("/logout", post(sign_out)).with_state(SignInState { auth, place })
}

/// An HTML page, not cached (it may hold figures a later sign-out must not leave behind).
pub fn html_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

#[derive(Debug, Deserialize)]
struct FormQuery {
    next: Option<String>,
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
    next: Option<String>,
    lang: Option<String>,
}

async fn form(State(w): State<SignInState>, Query(q): Query<FormQuery>) -> Response {
    let lang = Lang::parse(q.lang.as_deref());
    let next = session::safe_next(q.next.as_deref());
    html_response(StatusCode::OK, treem_web::login::page(lang, &w.place, &next, None))
}

fn cross_site(lang: Lang) -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        treem_web::html::notice(
            "error",
            "403",
            lang.t("Biểu mẫu này phải được gửi từ chính trang của hệ thống.", "This form must be sent from this site's own page."),
        ),
    )
}

async fn submit(State(w): State<SignInState>, headers: HeaderMap, Form(f): Form<SignIn>) -> Response {
    let lang = Lang::parse(f.lang.as_deref());
    if !session::same_origin(&headers) {
        return cross_site(lang);
    }
    let next = session::safe_next(f.next.as_deref());
    match w.auth.sign_in(&f.token).await {
        Ok((token, caller)) => {
            tracing::info!(token_id = caller.token_id.as_deref().unwrap_or("-"), role = %caller.role, "signed in to the web pages");
            let mut r =
                (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_str(&next).unwrap_or(HeaderValue::from_static("/")))])
                    .into_response();
            if let Some(t) = token {
                r.headers_mut().insert(header::SET_COOKIE, session::set_cookie(&t));
            }
            r
        }
        Err(SignInError::Invalid) => {
            let msg = lang.t(
                "Mã truy cập không hợp lệ (gõ sai, không có hoặc đã bị thu hồi). Hãy kiểm tra lại hoặc đề nghị quản trị viên cấp mã mới.",
                "This access token is not valid (mistyped, unknown or revoked). Check it, or ask your administrator for a new one.",
            );
            html_response(StatusCode::UNAUTHORIZED, treem_web::login::page(lang, &w.place, &next, Some(msg)))
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in could not be checked or recorded");
            html_response(
                StatusCode::SERVICE_UNAVAILABLE,
                treem_web::login::page(
                    lang,
                    &w.place,
                    &next,
                    Some(lang.t(
                        "Hệ thống chưa kiểm tra được mã; hãy báo quản trị viên.",
                        "The token could not be checked; tell your administrator.",
                    )),
                ),
            )
        }
    }
}

async fn sign_out(headers: HeaderMap) -> Response {
    if !session::same_origin(&headers) {
        return cross_site(Lang::Vi);
    }
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static("/login"))]).into_response();
    r.headers_mut().insert(header::SET_COOKIE, session::clear_cookie());
    r
}
