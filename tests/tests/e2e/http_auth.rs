//! HTTP: who may read what (issue 4, SECURITY.md "Attacks tried by the
//! tests"). The town and the province run in process with auth on, as in
//! production; tokens are made, listed and revoked with the real
//! `treem-town token …` / `treem-province token …` binaries while the
//! services run, and every request below is sent by a client that carries
//! only the credentials the attack gives it.
//!
//! Checked: no token, garbage, a forged or foreign token → 401, always the
//! same body; a viewer on case summaries → 403; an officer → 200 and an
//! audit line naming the token's id; a revoked token → 401 at the next
//! request; no 401/403 body carries token material or case data; `/health`
//! and `/metrics` stay open; no secret reaches the token file, the audit
//! log or `token list`.

use std::path::Path;

use serde_json::{Value, json};
use tokio::process::Command;
use treem_auth::guard::UNAUTHENTICATED;
use treem_auth::{AuditLog, Outcome, Token};

use crate::crash::bin;
use crate::system::System;

/// `treem-<service> token <args>` on `data_dir`: (success, stdout, stderr).
async fn token_cli(service: &str, data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let prefix = format!("TREEM_{}_", service.to_uppercase());
    let out = Command::new(bin(&format!("treem-{service}")))
        .arg("token")
        .args(args)
        .env(format!("{prefix}DATA_DIR"), data_dir)
        .env_remove(format!("{prefix}CONFIG"))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the token command runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A new token of `role` from the real command; its text (printed once, alone on stdout).
async fn create(service: &str, data_dir: &Path, name: &str, role: &str) -> Token {
    let (ok, stdout, stderr) = token_cli(service, data_dir, &["create", "--name", name, "--role", role]).await;
    assert!(ok, "token create failed: {stderr}");
    assert!(stderr.contains("only this once"), "{stderr}");
    Token::parse(stdout.trim_end()).unwrap_or_else(|e| panic!("stdout is not a token ({e}): {stdout:?}"))
}

/// One request with exactly the `authorization` headers given: (status, headers, body).
async fn call(url: &str, authorization: &[&str]) -> (u16, reqwest::header::HeaderMap, String) {
    // A client of its own: not the harness's, which carries the admin token.
    let mut req = reqwest::Client::new().get(url);
    for a in authorization {
        req = req.header("authorization", *a);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

fn bearer(t: &Token) -> String {
    format!("Bearer {}", t.expose())
}

/// `t` with the last characters of its secret changed: its real id, a wrong secret.
fn forged(t: &Token) -> String {
    let text = t.expose();
    let tail = if text.ends_with("AA") { "QA" } else { "AA" };
    format!("Bearer {}{tail}", &text[..text.len() - 2])
}

/// The body of every 401, byte for byte.
fn unauthenticated_body() -> String {
    json!({ "error": UNAUTHENTICATED }).to_string()
}

/// A refusal's body says nothing of tokens or cases.
fn assert_leaks_nothing(body: &str, tokens: &[&Token], names: &[&str]) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("refusal is not JSON ({e}): {body}"));
    assert_eq!(v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["error".to_string()]), "{body}");
    for t in tokens {
        let text = t.expose();
        assert!(!body.contains(&text[23..]) && !body.contains(t.id()), "a refusal names a token: {body}");
    }
    for n in names {
        assert!(!body.contains(n), "a refusal names a token holder: {body}");
    }
    for case_word in ["categories", "abuse", "cases_counted", "female", "by_sex", "towns"] {
        assert!(!body.contains(case_word), "a refusal carries case data ({case_word}): {body}");
    }
}

/// Audit lines of a service's data dir.
fn audit(data_dir: &Path) -> Vec<treem_auth::AuditEntry> {
    AuditLog::read_all(&treem_auth::auth_dir(data_dir).join(treem_auth::audit::FILE)).expect("audit log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn town_api_needs_the_right_token_and_audits_case_reads() {
    let sys = System::new().await;
    let town = sys.town().await;
    let ward = sys.ward("25320").await;
    let (status, case) = sys
        .post(
            format!("http://{}/api/v1/cases", ward.http_addr),
            json!({"identity": {"name": "Trần Thị Canary", "date_of_birth": "2014-07-09", "address": "tổ 4 khu phố 2", "guardian": "Trần Văn Canary"},
                   "year": 2025, "category": "abuse", "sex": "female"}),
        )
        .await;
    assert_eq!(status, 201, "{case}");
    sys.town_applied(&town, "25320", 1).await;

    // Tokens made while the town runs, by the command an administrator uses.
    let dir = sys.path("town");
    let viewer = create("town", &dir, "Viewer Lan", "viewer").await;
    let officer = create("town", &dir, "Officer Minh", "officer").await;
    let admin = create("town", &dir, "Admin Hoa", "admin").await;
    let names = ["Viewer Lan", "Officer Minh", "Admin Hoa"];
    let all = [&viewer, &officer, &admin];
    let base = format!("http://{}", town.http_addr);
    let cases = format!("{base}/api/v1/cases?year=2025");
    let protected =
        [format!("{base}/api/v1/indicators?year=2025"), format!("{base}/api/v1/sync"), cases.clone(), format!("{base}/api/v1/parked")];

    // Open: no case data there.
    for path in ["/health", "/metrics"] {
        assert_eq!(call(&format!("{base}{path}"), &[]).await.0, 200, "{path}");
    }

    // No token, then garbage of every kind: 401, one body, whatever was wrong.
    let unknown = Token::generate().unwrap();
    let officer_text = officer.expose();
    let attempts: Vec<Vec<String>> = vec![
        vec![],
        vec!["Bearer garbage".into()],
        vec!["Bearer ".into()],
        vec!["Basic dXNlcjpwYXNzd29yZA==".into()],
        vec![officer_text.clone()],
        vec![format!("Token {officer_text}")],
        vec![bearer(&unknown)],
        vec![forged(&officer)],
        vec![format!("Bearer treem_{}_", officer.id())],
        vec![format!("Bearer {}", officer_text.to_uppercase())],
        vec![bearer(&officer), "Bearer garbage".into()],
    ];
    for url in &protected {
        for a in &attempts {
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            let (status, headers, body) = call(url, &refs).await;
            assert_eq!(status, 401, "{url} with {a:?}: {body}");
            assert_eq!(body, unauthenticated_body(), "{url} with {a:?}");
            assert_eq!(headers["www-authenticate"], "Bearer realm=\"treem\"");
            assert_leaks_nothing(&body, &all, &names);
        }
    }
    // A token in the query string is not a token.
    assert_eq!(call(&format!("{cases}&access_token={officer_text}"), &[]).await.0, 401);

    // Viewer: aggregates yes, case summaries and parked messages no.
    assert_eq!(call(&protected[0], &[&bearer(&viewer)]).await.0, 200);
    assert_eq!(call(&protected[1], &[&bearer(&viewer)]).await.0, 200);
    for url in [&cases, &protected[3]] {
        let (status, _, body) = call(url, &[&bearer(&viewer)]).await;
        assert_eq!(status, 403, "{url}: {body}");
        assert_leaks_nothing(&body, &all, &names);
    }
    // Officer: case summaries yes, parked messages (raw events) no.
    let (status, headers, body) = call(&cases, &[&bearer(&officer)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["categories"]["abuse"]["total"], 1, "{summary}");
    assert!(!body.contains("Canary"), "the town never holds a child's identity: {body}");
    let (status, _, body) = call(&protected[3], &[&bearer(&officer)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin role"), "{body}");
    // Admin: everything.
    for url in &protected {
        assert_eq!(call(url, &[&bearer(&admin)]).await.0, 200, "{url}");
    }
    // The parked command with a viewer's token is refused by the API, with its reason.
    let out = Command::new(bin("treem-town"))
        .args(["parked", "list"])
        .env("TREEM_TOWN_DATA_DIR", &dir)
        .env("TREEM_TOKEN", viewer.expose())
        .env_remove("TREEM_TOWN_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("admin role"), "{out:?}");

    // The audit log: the officer's read, with the token's id and name, what and when.
    let lines = audit(&dir);
    let read = lines
        .iter()
        .find(|e| e.outcome == Outcome::Served && e.token_id.as_deref() == Some(officer.id()))
        .unwrap_or_else(|| panic!("no audit line for the officer's read: {lines:#?}"));
    assert_eq!((read.status, read.path.as_str(), read.query.as_deref()), (200, "/api/v1/cases", Some("year=2025")));
    assert_eq!((read.token_name.as_deref(), read.role), (Some("Officer Minh"), Some(treem_auth::Role::Officer)));
    assert!(chrono::Utc::now() - read.at < chrono::Duration::minutes(5), "{read:?}");
    assert!(
        lines.iter().any(|e| e.outcome == Outcome::Forbidden && e.token_id.as_deref() == Some(viewer.id())),
        "the viewer's refused read"
    );
    assert!(lines.iter().any(|e| e.outcome == Outcome::Unauthenticated && e.reason.as_deref() == Some("missing")));
    let in_query = lines.iter().find(|e| e.query.as_deref().is_some_and(|q| q.contains("access_token"))).expect("the query-string attempt");
    assert_eq!(in_query.query.as_deref(), Some("year=2025&access_token=treem_<redacted>"), "a token in a URL is not logged");
    assert!(lines.iter().all(|e| e.path == "/api/v1/cases" || e.path.starts_with("/api/v1/parked")), "only case-level routes are audited");

    // Revoked while the town runs: refused at the next request.
    let (ok, stdout, stderr) = token_cli("town", &dir, &["revoke", officer.id()]).await;
    assert!(ok && stdout.contains("revoked"), "{stdout} {stderr}");
    for url in [&cases, &protected[0]] {
        let (status, _, body) = call(url, &[&bearer(&officer)]).await;
        assert_eq!((status, body.as_str()), (401, unauthenticated_body().as_str()), "{url}");
    }
    assert!(audit(&dir).iter().any(|e| e.reason.as_deref() == Some("revoked") && e.token_id.as_deref() == Some(officer.id())));

    // No secret anywhere the service or the command keeps or prints.
    let (_, list, _) = token_cli("town", &dir, &["list"]).await;
    assert!(list.lines().any(|l| l.starts_with(officer.id()) && l.contains("revoked")), "{list}");
    let kept = [
        list,
        std::fs::read_to_string(treem_auth::auth_dir(&dir).join("tokens.json")).unwrap(),
        std::fs::read_to_string(treem_auth::auth_dir(&dir).join(treem_auth::audit::FILE)).unwrap(),
    ];
    for t in all.iter().copied().chain([&unknown]) {
        let secret = &t.expose()[23..];
        assert!(kept.iter().all(|k| !k.contains(secret)), "a token secret is stored or printed");
    }
    ward.shutdown().await;
    town.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn province_api_needs_the_right_token_and_audits_case_reads() {
    let sys = System::new().await;
    let province = sys.province().await;
    let dir = sys.path("province");
    let viewer = create("province", &dir, "Province viewer", "viewer").await;
    let officer = create("province", &dir, "Province officer", "officer").await;
    // A token of the town is not a token of the province.
    let town_dir = sys.path("town");
    let town_officer = create("town", &town_dir, "Town officer", "officer").await;
    let all = [&viewer, &officer, &town_officer];
    let names = ["Province viewer", "Province officer", "Town officer"];
    let base = format!("http://{}", province.http_addr);
    let cases = format!("{base}/api/v1/cases?year=2025");
    let indicators = format!("{base}/api/v1/indicators?year=2025");

    assert_eq!(call(&format!("{base}/health"), &[]).await.0, 200);
    assert_eq!(call(&format!("{base}/metrics"), &[]).await.0, 200);
    for a in [vec![], vec!["Bearer garbage".to_string()], vec![bearer(&town_officer)], vec![forged(&officer)]] {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        for url in [&cases, &indicators, &format!("{base}/api/v1/parked")] {
            let (status, _, body) = call(url, &refs).await;
            assert_eq!((status, body.as_str()), (401, unauthenticated_body().as_str()), "{url} with {a:?}");
            assert_leaks_nothing(&body, &all, &names);
        }
    }
    assert_eq!(call(&indicators, &[&bearer(&viewer)]).await.0, 200);
    let (status, _, body) = call(&cases, &[&bearer(&viewer)]).await;
    assert_eq!(status, 403, "{body}");
    assert_leaks_nothing(&body, &all, &names);
    let (status, _, body) = call(&cases, &[&bearer(&officer)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(call(&format!("{base}/api/v1/parked"), &[&bearer(&officer)]).await.0, 403);

    let lines = audit(&dir);
    assert!(
        lines.iter().any(|e| e.outcome == Outcome::Served && e.token_id.as_deref() == Some(officer.id()) && e.path == "/api/v1/cases"),
        "{lines:#?}"
    );
    let (ok, _, stderr) = token_cli("province", &dir, &["revoke", officer.id()]).await;
    assert!(ok, "{stderr}");
    let (status, _, body) = call(&cases, &[&bearer(&officer)]).await;
    assert_eq!((status, body.as_str()), (401, unauthenticated_body().as_str()));
    province.shutdown().await;
}

#[test]
fn the_ward_api_binds_loopback_and_auth_is_on_by_default() {
    // The ward's local API takes no token: it listens on 127.0.0.1 unless
    // its operator says otherwise (SECURITY.md).
    assert!(treem_ward::Config::default().http_addr.ip().is_loopback());
    assert!(treem_town::Config::default().auth && treem_province::Config::default().auth);
    for (file, service) in [("town.toml", "town"), ("province.toml", "province")] {
        let text = std::fs::read_to_string(treem_tests::repo_root().join("deploy/config").join(file)).unwrap();
        assert!(text.lines().any(|l| l.trim() == "auth = true"), "deploy/config/{file} ships auth = true for the {service}");
    }
}
