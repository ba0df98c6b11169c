//! Signing in from a browser: the same tokens, roles and audit log as the
//! API, carried in a cookie instead of an `Authorization` header.
//!
//! - The officer pastes a token into the sign-in form; [`Auth::sign_in`]
//!   checks it against the token store exactly as the guard does.
//! - The answer sets [`COOKIE`] to the token with `HttpOnly` (page scripts
//!   cannot read it — the pages have none anyway), `SameSite=Strict` (no
//!   other site's page can make the browser send it), `Path=/` and a
//!   `Max-Age` of [`MAX_AGE_SECS`] (a working day; then sign in again).
//!   Not `Secure`: the services speak plain HTTP on a loopback or office
//!   address (SECURITY.md); behind an HTTPS proxy the proxy may add it.
//! - Only guards made with [`crate::Guard::browser`] read the cookie, so
//!   the JSON API keeps needing the header. A token revoked with `token
//!   revoke` stops working at the next page, as on the API.
//! - POSTed forms of the pages (sign-in, sign-out) are refused when the
//!   browser says they come from another site ([`same_origin`]).
//!
//! Nothing here is stored on the server: the cookie holds the token, and
//! the token store holds only its hash.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::audit::{AuditEntry, AuditError, Outcome};
use crate::guard::{Auth, Caller, Denied};
use crate::role::Role;
use crate::token::Token;

/// The name of the session cookie.
pub const COOKIE: &str = "treem_session";
/// How long a browser stays signed in: 12 hours.
pub const MAX_AGE_SECS: u64 = 12 * 3600;
/// The sign-in page every service with pages serves.
pub const SIGN_IN_PATH: &str = "/login";

/// Why a sign-in was refused. Both say as little as the guard's 401.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("this token is not valid (mistyped, unknown or revoked); ask your administrator for a token")]
    Invalid,
    #[error("the token store cannot be read; an operator must look at the service's log")]
    Unavailable,
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The token text of the session cookie, if the request carries one.
pub fn token_text(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` that signs the browser in with `token`.
pub fn set_cookie(token: &Token) -> HeaderValue {
    let text = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECS}", token.expose());
    let mut v = HeaderValue::from_str(&text).expect("a token is a valid cookie value");
    v.set_sensitive(true);
    v
}

/// `Set-Cookie` that signs the browser out.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")).expect("a valid cookie")
}

/// Where to go after signing in: a path of this site only (`/…`, not
/// `//host…`), else the front page. Keeps the sign-in form from being an
/// open redirect.
pub fn safe_next(next: Option<&str>) -> String {
    match next.map(str::trim) {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Whether a POSTed form comes from a page of this same site, by what the
/// browser says: `Sec-Fetch-Site` (`same-origin`, or `none` when typed),
/// else `Origin` matching `Host`. A request with neither (curl, an old
/// browser) passes: the cookie's `SameSite=Strict` still keeps other sites
/// from riding a session.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST).and_then(|v| v.to_str().ok())) {
        (Some("null"), _) => false,
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// 303 to the sign-in page, coming back to `uri` afterwards.
pub fn to_sign_in(uri: &Uri) -> Response {
    let back = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!("{SIGN_IN_PATH}?next={}", encode(back));
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static(SIGN_IN_PATH)));
    r
}

/// The 403 of a page: the role it needs, in both languages.
pub fn forbidden_page(need: Role) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>403</title><link rel=\"stylesheet\" href=\"/assets/treem.css\"></head><body><main><section class=\"notice error\"><h1>Không đủ quyền / Not allowed</h1><p>Trang này cần vai trò <strong>{need}</strong>; hãy đề nghị quản trị viên cấp mã truy cập có vai trò này. — This page needs the <strong>{need}</strong> role.</p><p><a href=\"{SIGN_IN_PATH}\">Đăng nhập bằng mã khác / Sign in with another token</a></p></section></main></body></html>"
    );
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Auth {
    /// Checks a token pasted into the sign-in form, as the guard checks a
    /// header, and records the attempt in the audit log (never the
    /// secret). With authentication disabled there is nothing to check.
    pub async fn sign_in(&self, text: &str) -> Result<(Option<Token>, Caller), SignInError> {
        if !self.enabled {
            return Ok((None, Caller { token_id: None, name: "anonymous (auth disabled)".into(), role: Role::Admin }));
        }
        let token = Token::parse(text.trim()).ok();
        let mut headers = HeaderMap::new();
        if let Some(t) = &token
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
        {
            headers.insert(header::AUTHORIZATION, v);
        }
        let result = self.authenticate(&headers, Role::Viewer, false);
        let (outcome, status, reason, token_id, name, role) = match &result {
            Ok(c) => (Outcome::Served, 303, None, c.token_id.clone(), Some(c.name.clone()), Some(c.role)),
            Err(Denied::Unauthenticated { reason, token_id, name }) => {
                (Outcome::Unauthenticated, 401, Some(*reason), token_id.clone(), name.clone(), None)
            }
            Err(Denied::Forbidden { caller, .. }) => {
                (Outcome::Forbidden, 403, Some("role too low"), caller.token_id.clone(), Some(caller.name.clone()), Some(caller.role))
            }
            Err(Denied::Unavailable(_)) => return Err(SignInError::Unavailable),
        };
        self.audit
            .record(AuditEntry {
                at: Utc::now(),
                outcome,
                status,
                reason: reason.map(|r| format!("sign-in: {r}")),
                token_id,
                token_name: name,
                role,
                method: "POST".into(),
                path: SIGN_IN_PATH.into(),
                query: None,
            })
            .await?;
        match (result, token) {
            (Ok(caller), Some(token)) => Ok((Some(token), caller)),
            _ => Err(SignInError::Invalid),
        }
    }

    /// Records that `caller` was served case-level data as part of a page
    /// (the dashboard's case summaries), like an audited route does. The
    /// page must not show the data when this fails.
    pub async fn record_read(&self, caller: &Caller, path: &str, query: Option<&str>) -> Result<(), AuditError> {
        self.audit
            .record(AuditEntry {
                at: Utc::now(),
                outcome: Outcome::Served,
                status: 200,
                reason: None,
                token_id: caller.token_id.clone(),
                token_name: Some(caller.name.clone()),
                role: Some(caller.role),
                method: "GET".into(),
                path: path.into(),
                query: AuditEntry::query_of(query),
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;

    #[test]
    fn cookies_next_and_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; treem_session=treem_abc_def ; c=d"));
        assert_eq!(token_text(&h).as_deref(), Some("treem_abc_def"));
        assert_eq!(token_text(&HeaderMap::new()), None);
        assert_eq!(safe_next(Some("/dashboard?year=2024")), "/dashboard?year=2024");
        for bad in ["//evil.example/", "https://evil.example/", "\\\\evil", "/x\r\nSet-Cookie: a"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7420"));
        assert!(same_origin(&h), "no Origin: curl");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:7420"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
        let c = set_cookie(&Token::generate().unwrap());
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"), "{c}");
        let r = to_sign_in(&"/dashboard?year=2024&lang=en".parse().unwrap());
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/login?next=/dashboard%3Fyear%3D2024%26lang%3Den");
    }

    #[tokio::test]
    async fn sign_in_checks_the_store_and_audits_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open(dir.path(), true).unwrap();
        let (viewer, _) = auth.store().create("Lan", Role::Viewer).unwrap();
        let (token, caller) = auth.sign_in(&format!("  {}\n", viewer.expose())).await.unwrap();
        assert_eq!((token.unwrap().id(), caller.role), (viewer.id(), Role::Viewer));
        assert!(matches!(auth.sign_in("treem_nope").await, Err(SignInError::Invalid)));
        auth.store().revoke(viewer.id()).unwrap();
        assert!(matches!(auth.sign_in(&viewer.expose()).await, Err(SignInError::Invalid)));
        auth.record_read(&caller, "/dashboard", Some("year=2024")).await.unwrap();
        let lines = AuditLog::read_all(auth.audit_path()).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!((lines[0].outcome, lines[0].path.as_str()), (Outcome::Served, "/login"));
        assert_eq!(lines[2].reason.as_deref(), Some("sign-in: revoked"));
        assert_eq!((lines[3].path.as_str(), lines[3].query.as_deref()), ("/dashboard", Some("year=2024")));
        let text = std::fs::read_to_string(auth.audit_path()).unwrap();
        assert!(!text.contains(&viewer.expose()[23..]), "the audit log holds no secret");
    }
}
