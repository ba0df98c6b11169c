//! The axum guard: a middleware that reads `Authorization: Bearer <token>`,
//! checks the token against the [`TokenStore`] and the role the route
//! needs, puts the [`Caller`] in the request's extensions for the handler,
//! and — on audited routes — writes an [`AuditEntry`] for every request
//! before its answer leaves.
//!
//! A service builds one [`Auth`] at start and layers its routes:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use axum::{Router, routing::get, middleware::from_fn_with_state};
//! # use treem_auth::{Auth, Role};
//! # fn demo(auth: Arc<Auth>) -> Router {
//! let viewer = Router::new()
//!     .route("/api/v1/indicators", get(|| async { "…" }))
//!     .route_layer(from_fn_with_state(auth.require(Role::Viewer), treem_auth::guard));
//! let officer = Router::new()
//!     .route("/api/v1/cases", get(|| async { "…" }))
//!     .route_layer(from_fn_with_state(auth.require(Role::Officer).audited(), treem_auth::guard));
//! Router::new().route("/health", get(|| async { "ok" })).merge(viewer).merge(officer)
//! # }
//! ```
//!
//! Answers it gives instead of the handler's (the whole body is shown; no
//! other detail ever reaches the caller — the reason goes to the audit log
//! and the debug log only):
//!
//! | status | when | body |
//! | --- | --- | --- |
//! | 401 + `WWW-Authenticate: Bearer` | no, malformed, unknown, wrongly-signed or revoked token | [`UNAUTHENTICATED`] |
//! | 403 | the token's role is below the route's | `this endpoint needs the <role> role; …` |
//! | 503 | the token store cannot be read, or (audited route) the audit line cannot be written | says which, without paths |
//!
//! Web pages use the same tokens through a cookie ([`crate::session`]): a
//! guard made [`Guard::browser`] also takes the token from the session
//! cookie, and sends a request without a valid one to the sign-in page
//! (303 to `/login?next=…`) instead of answering 401; 403 is a short page.
//! The JSON API routes never read the cookie, so a browser can never be
//! made to call them with its session (no CSRF on the API).
//!
//! With `auth = false` in a service's configuration the guard lets every
//! request through as an anonymous admin (audited routes are still
//! audited, with no token id); the services allow that only on a loopback
//! address.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::audit::{AuditEntry, AuditError, AuditLog, Outcome};
use crate::role::Role;
use crate::store::{StoreError, TokenStore, Verified};
use crate::token::Token;

/// The one body of every 401, whatever was wrong with the token.
pub const UNAUTHENTICATED: &str =
    "missing, invalid or revoked token; send 'Authorization: Bearer <token>' with a token from your administrator";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Who made a request that the guard let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None` when authentication is disabled.
    pub token_id: Option<String>,
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// For logs on this machine, e.g. `token 1f0c… (Lan)`.
    pub fn label(&self) -> String {
        match &self.token_id {
            Some(id) => format!("token {id} ({})", self.name),
            None => self.name.clone(),
        }
    }

    /// For records that leave this machine (a command in a NATS stream):
    /// the token id only, e.g. `token 1f0c…`; `token list` names its holder.
    pub fn attribution(&self) -> String {
        match &self.token_id {
            Some(id) => format!("token {id}"),
            None => self.name.clone(),
        }
    }
}

/// A handler argument for routes behind the guard; refused as 401 when the
/// guard did not run (fail closed).
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Response> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(unauthenticated)
    }
}

/// Tokens and audit log of one service.
pub struct Auth {
    pub(crate) enabled: bool,
    pub(crate) store: TokenStore,
    pub(crate) audit: AuditLog,
}

impl Auth {
    /// Opens `<data_dir>/auth/` (creating it). With `enabled` false every
    /// request passes as an anonymous admin; the audit log is kept anyway.
    pub fn open(data_dir: &Path, enabled: bool) -> Result<Auth, AuthError> {
        let dir = crate::auth_dir(data_dir);
        let store = TokenStore::open(&dir)?;
        let audit = AuditLog::open(&dir)?;
        if !enabled {
            tracing::warn!(dir = %dir.display(), "HTTP authentication is DISABLED (auth = false): anyone who reaches the API reads everything");
        } else if !store.has_active()? {
            tracing::warn!(
                tokens = %store.path().display(),
                "no active API token: every API request except /health and /metrics gets 401; create one with `token create --name NAME --role admin`"
            );
        }
        Ok(Auth { enabled, store, audit })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    pub fn audit_path(&self) -> &Path {
        self.audit.path()
    }

    /// A guard for routes that need `need`.
    pub fn require(self: &Arc<Self>, need: Role) -> Guard {
        Guard { auth: self.clone(), need, audited: false, browser: false }
    }

    /// `cookie`: a web page's guard, which may take the token from the
    /// session cookie when there is no `Authorization` header.
    pub(crate) fn authenticate(&self, headers: &HeaderMap, need: Role, cookie: bool) -> Result<Caller, Denied> {
        if !self.enabled {
            return Ok(Caller { token_id: None, name: "anonymous (auth disabled)".into(), role: Role::Admin });
        }
        let malformed = Denied::Unauthenticated { reason: "malformed", token_id: None, name: None };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let token = match (values.next(), values.next()) {
            (Some(value), None) => {
                let text = value.to_str().map_err(|_| malformed.clone())?;
                let (scheme, rest) = text.split_once(' ').ok_or_else(|| malformed.clone())?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(malformed);
                }
                Token::parse(rest.trim_matches(' ')).map_err(|_| malformed)?
            }
            (None, _) if cookie && crate::session::token_text(headers).is_some() => {
                let text = crate::session::token_text(headers).unwrap_or_default();
                Token::parse(&text).map_err(|_| malformed)?
            }
            _ => {
                let reason = if headers.contains_key(header::AUTHORIZATION) { "several Authorization headers" } else { "missing" };
                return Err(Denied::Unauthenticated { reason, token_id: None, name: None });
            }
        };
        let record = match self.store.verify(&token) {
            Ok(Verified::Active(r)) => r,
            Ok(Verified::Revoked(r)) => {
                return Err(Denied::Unauthenticated { reason: "revoked", token_id: Some(r.id), name: Some(r.name) });
            }
            Ok(Verified::Unknown) => {
                return Err(Denied::Unauthenticated { reason: "unknown token", token_id: Some(token.id().to_owned()), name: None });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token store; refusing every request until it can");
                return Err(Denied::Unavailable("the token store cannot be read; an operator must look at the service's log"));
            }
        };
        let caller = Caller { token_id: Some(record.id), name: record.name, role: record.role };
        if !caller.role.allows(need) {
            return Err(Denied::Forbidden { caller, need });
        }
        Ok(caller)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Denied {
    Unauthenticated { reason: &'static str, token_id: Option<String>, name: Option<String> },
    Forbidden { caller: Caller, need: Role },
    Unavailable(&'static str),
}

/// What a route needs; the state of [`guard`].
#[derive(Clone)]
pub struct Guard {
    auth: Arc<Auth>,
    need: Role,
    audited: bool,
    /// A web page: the session cookie is accepted, and refusals are pages.
    browser: bool,
}

impl Guard {
    /// Also write an audit line for every request (the route serves
    /// case-level data).
    pub fn audited(mut self) -> Guard {
        self.audited = true;
        self
    }

    /// For web pages (see the module docs): the token may come from the
    /// session cookie; no valid token → 303 to the sign-in page.
    pub fn browser(mut self) -> Guard {
        self.browser = true;
        self
    }
}

fn unauthenticated() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, Json(serde_json::json!({ "error": UNAUTHENTICATED }))).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"treem\""));
    r
}

fn forbidden(need: Role) -> Response {
    let message = format!("this endpoint needs the {need} role; ask your administrator for a token with it");
    (StatusCode::FORBIDDEN, Json(serde_json::json!({ "error": message }))).into_response()
}

fn unavailable(message: &str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The middleware; use with `axum::middleware::from_fn_with_state(guard, treem_auth::guard)`.
pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = AuditEntry::query_of(req.uri().query());
    let entry =
        |outcome, status: StatusCode, reason: Option<&str>, id: Option<String>, name: Option<String>, role: Option<Role>| AuditEntry {
            at: Utc::now(),
            outcome,
            status: status.as_u16(),
            reason: reason.map(str::to_owned),
            token_id: id,
            token_name: name,
            role,
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
        };
    let (response, audit) = match g.auth.authenticate(req.headers(), g.need, g.browser) {
        Ok(caller) => {
            req.extensions_mut().insert(caller.clone());
            let mut response = next.run(req).await;
            // Case data and its refusals are never kept by a proxy or browser cache.
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            let e = entry(Outcome::Served, response.status(), None, caller.token_id, Some(caller.name), Some(caller.role));
            (response, e)
        }
        Err(Denied::Unauthenticated { reason, token_id, name }) => {
            tracing::debug!(reason, token_id = token_id.as_deref().unwrap_or("-"), %path, "request refused: 401");
            let r = if g.browser { crate::session::to_sign_in(req.uri()) } else { unauthenticated() };
            let e = entry(Outcome::Unauthenticated, r.status(), Some(reason), token_id, name, None);
            (r, e)
        }
        Err(Denied::Forbidden { caller, need }) => {
            tracing::debug!(token_id = caller.token_id.as_deref().unwrap_or("-"), role = %caller.role, %need, %path, "request refused: 403");
            let r = if g.browser { crate::session::forbidden_page(need) } else { forbidden(need) };
            let e = entry(Outcome::Forbidden, r.status(), Some("role too low"), caller.token_id, Some(caller.name), Some(caller.role));
            (r, e)
        }
        Err(Denied::Unavailable(message)) => return unavailable(message),
    };
    if !g.audited {
        return response;
    }
    let served = audit.outcome == Outcome::Served;
    match g.auth.audit.record(audit).await {
        Ok(()) => response,
        Err(e) if served => {
            tracing::error!(error = %e, %path, "audit log write failed: case data withheld (503)");
            unavailable("the audit log cannot be written, so case data is not served; an operator must look at the service's log")
        }
        Err(e) => {
            tracing::error!(error = %e, %path, "audit log write failed for a refused request");
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;

    async fn serve(auth: Arc<Auth>) -> String {
        let app = Router::new()
            .route("/open", get(|| async { "open" }))
            .merge(
                Router::new()
                    .route("/view", get(|c: Caller| async move { c.label() }))
                    .route_layer(from_fn_with_state(auth.require(Role::Viewer), guard)),
            )
            .merge(
                Router::new()
                    .route("/cases", get(|| async { "secret case data" }))
                    .route_layer(from_fn_with_state(auth.require(Role::Officer).audited(), guard)),
            )
            .route("/unguarded", get(|c: Caller| async move { c.label() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn call(base: &str, path: &str, auth: Option<&str>) -> (u16, String, HeaderMap) {
        let mut req = reqwest::Client::new().get(format!("{base}{path}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.text().await.unwrap(), headers)
    }

    #[tokio::test]
    async fn the_guard_answers_401_403_200_and_audits() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Arc::new(Auth::open(dir.path(), true).unwrap());
        let (viewer, _) = auth.store().create("viewer", Role::Viewer).unwrap();
        let (officer, _) = auth.store().create("officer", Role::Officer).unwrap();
        let base = serve(auth.clone()).await;
        let bearer = |t: &Token| format!("Bearer {}", t.expose());

        assert_eq!(call(&base, "/open", None).await.0, 200);
        let (status, body, headers) = call(&base, "/cases", None).await;
        assert_eq!(status, 401);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer realm=\"treem\"");
        let unauth_body = body;
        let unknown = Token::generate().unwrap();
        let officer_text = officer.expose();
        let wrong_secret =
            format!("Bearer {}{}", &officer_text[..officer_text.len() - 2], if officer_text.ends_with("AA") { "BA" } else { "AA" });
        for a in [
            "Bearer".to_string(),
            "Bearer ".into(),
            "Bearer garbage".into(),
            format!("Basic {}", officer.expose()),
            format!("Token {}", officer.expose()),
            bearer(&unknown),
            wrong_secret,
        ] {
            let (status, body, _) = call(&base, "/cases", Some(&a)).await;
            assert_eq!((status, &body), (401, &unauth_body), "{a}");
        }
        let (status, body, _) = call(&base, "/cases", Some(&bearer(&viewer))).await;
        assert_eq!(status, 403);
        assert!(body.contains("officer role") && !body.contains(viewer.id()), "{body}");
        assert_eq!(call(&base, "/view", Some(&bearer(&viewer))).await.1, format!("token {} (viewer)", viewer.id()));
        assert_eq!(call(&base, "/view", Some(&format!("bearer  {}", officer.expose()))).await.0, 200, "scheme is case-insensitive");
        let (status, body, headers) = call(&base, "/cases", Some(&bearer(&officer))).await;
        assert_eq!((status, body.as_str()), (200, "secret case data"));
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        // A handler that expects a caller but sits outside the guard refuses.
        assert_eq!(call(&base, "/unguarded", None).await.0, 401);

        auth.store().revoke(officer.id()).unwrap();
        assert_eq!(call(&base, "/cases", Some(&bearer(&officer))).await.0, 401);

        let lines = AuditLog::read_all(auth.audit_path()).unwrap();
        let outcomes: Vec<_> = lines.iter().map(|e| (e.outcome, e.status, e.reason.clone())).collect();
        assert_eq!(outcomes.len(), 1 + 7 + 1 + 1 + 1, "{outcomes:?}");
        assert_eq!(outcomes[0], (Outcome::Unauthenticated, 401, Some("missing".into())));
        assert_eq!(outcomes[6].2.as_deref(), Some("unknown token"));
        assert_eq!(lines[6].token_id.as_deref(), Some(unknown.id()));
        assert_eq!(outcomes[8], (Outcome::Forbidden, 403, Some("role too low".into())));
        assert_eq!(
            (lines[9].outcome, lines[9].token_id.as_deref(), lines[9].path.as_str()),
            (Outcome::Served, Some(officer.id()), "/cases")
        );
        assert_eq!((lines[10].reason.as_deref(), lines[10].token_name.as_deref()), (Some("revoked"), Some("officer")));
        let text = std::fs::read_to_string(auth.audit_path()).unwrap();
        for t in [&viewer, &officer, &unknown] {
            assert!(!text.contains(&t.expose()[23..]), "audit log holds a secret");
        }
    }

    #[tokio::test]
    async fn disabled_auth_lets_everyone_through_and_still_audits() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Arc::new(Auth::open(dir.path(), false).unwrap());
        let base = serve(auth.clone()).await;
        assert_eq!(call(&base, "/cases", None).await.0, 200);
        let lines = AuditLog::read_all(auth.audit_path()).unwrap();
        assert_eq!((lines.len(), lines[0].token_id.clone(), lines[0].outcome), (1, None, Outcome::Served));
    }
}
