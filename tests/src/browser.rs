//! Headless Chromium for the browser tests, driven through `chromedriver`
//! over the W3C WebDriver protocol — plain JSON over HTTP, spoken here with
//! the `reqwest` client the tests already use (a WebDriver crate such as
//! fantoccini would add a second HTTP stack for the dozen calls needed).
//!
//! Both programs are Debian's (`chromium`, `chromium-driver`), installed
//! by `scripts/install-browser.sh`; `.ci/run` runs it before the tests.
//! Without them [`Browser::start`] panics with the command to run: the
//! browser tests fail loudly, they never skip.
//!
//! Chromium runs with `--headless --no-sandbox --disable-gpu
//! --disable-background-networking --disable-component-update
//! --disable-sync --no-first-run` and a profile in a temporary directory,
//! so it reaches nothing but the servers the test started. Downloads land
//! in a directory of the test ([`Browser::download_dir`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::wait_for;

/// The WebDriver id of an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A program from `TREEM_<VAR>` or the first of `names` on PATH; panics with how to install it.
pub fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} is not installed (looked for {} on PATH and ${var}): run `scripts/install-browser.sh` as root (Debian's chromium and chromium-driver). The browser tests never skip.",
        names[0],
        names.join(", ")
    );
}

/// A headless Chromium under chromedriver, with one WebDriver session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session of
    /// `width`×`height` pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = program("TREEM_CHROMIUM", &["chromium", "chromium-browser"]);
        let chromedriver = program("TREEM_CHROMEDRIVER", &["chromedriver"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let profile = tempfile::tempdir().expect("temp dir");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", profile.path().join("chromedriver.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/install-browser.sh", chromedriver.display()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let status = format!("{base}/status");
        wait_for("chromedriver answers /status", Duration::from_secs(30), || {
            let http = http.clone();
            let status = status.clone();
            async move {
                let v: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                v["value"]["ready"].as_bool().filter(|r| *r)
            }
        })
        .await;
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--lang=vi-VN",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                    format!("--window-size={width},{height}"),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                    "intl.accept_languages": "vi-VN,vi"
                }
            }
        }}});
        let r: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.expect("POST /session").json().await.expect("session JSON");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not start Chromium ({}): {r}", chromium.display()))
            .to_string();
        Browser { http, base, session, driver, profile }
    }

    pub fn download_dir(&self) -> PathBuf {
        self.profile.path().join("downloads")
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status();
        let v: Value = r.json().await.unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        assert!(status.is_success(), "WebDriver {method} {path} → {status}: {v}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The element of a CSS selector; panics when there is none.
    pub async fn find(&self, css: &str) -> String {
        let v = self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Clears a field and types `text` into it, as a person would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// Picks the option of `value` in a `<select>`.
    pub async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]")).await;
    }

    /// A PNG of the window, written to `path` (directories made).
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Scrolls so the element of `css` is at the top of the window.
    pub async fn scroll_to(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "arguments[0].scrollIntoView({block: 'start'});", "args": [{ELEMENT: id}]})),
        )
        .await;
    }

    /// Closes the session and stops chromedriver.
    pub async fn close(mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        let _ = self.driver.kill().await;
    }
}

/// Where the browser tests put their screenshots: `<repo>/target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| crate::repo_root().join("target")).join("screenshots")
}
