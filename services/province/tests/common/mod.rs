//! Test harness of treem-province: a real `nats-server` with JetStream on a
//! port the OS picks and its own store directory (killed on drop), a province
//! node configured on the test hierarchy (690 and a made-up 691) and the
//! shipped catalogue, and helpers to publish as a town would and to poll the API.
//!
//! The API needs a token (auth is on, as in production): every data dir a
//! test configures gets the one admin [`token`] of the test process, and
//! [`get`] sends it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::Utc;
use serde_json::Value;
use treem_auth::{Role, Token, TokenStore};
use treem_proto::judge::Fraction;
use treem_proto::projection::TownSnapshot;
use treem_proto::subject;
use treem_province::Config;

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A nats-server child process with JetStream.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    pub store_dir: PathBuf,
}

/// `TREEM_NATS_SERVER` (set by scripts/test.sh to the pinned binary), else
/// `nats-server` on PATH.
fn nats_server_bin() -> String {
    match std::env::var("TREEM_NATS_SERVER") {
        Ok(path) if !path.is_empty() => {
            assert!(Path::new(&path).exists(), "TREEM_NATS_SERVER={path} does not exist");
            path
        }
        _ => "nats-server".into(),
    }
}

impl NatsServer {
    /// Starts on a port nats-server picks (`-p -1`), storing under `store_dir`.
    pub fn start(store_dir: &Path) -> NatsServer {
        NatsServer::spawn(None, store_dir)
    }

    /// Starts on `port` (e.g. to restart a stopped server where clients expect it).
    pub fn start_on(port: u16, store_dir: &Path) -> NatsServer {
        NatsServer::spawn(Some(port), store_dir)
    }

    fn spawn(port: Option<u16>, store_dir: &Path) -> NatsServer {
        let port_arg = port.map_or("-1".to_string(), |p| p.to_string());
        let mut child = Command::new(nats_server_bin())
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}); install nats-server (scripts/install-nats.sh) or set TREEM_NATS_SERVER", nats_server_bin())
            });
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the log until the end, so the pipe never fills up.
        std::thread::spawn(move || {
            let mut port = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    port = rest.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                }
                if line.contains("Server is ready") {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(DEADLINE) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                panic!("nats-server did not become ready ({other:?})");
            }
        };
        NatsServer { child, port, store_dir: store_dir.to_path_buf() }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn testdata(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(file)
}

/// A province "70" configuration on the test hierarchy (the shipped one plus
/// town 691 with two wards) and the shipped catalogue.
pub fn province_config(data_dir: &Path, nats_url: &str) -> Config {
    provision(data_dir);
    Config {
        province: "70".into(),
        data_dir: data_dir.to_path_buf(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        nats_url: nats_url.into(),
        stream_replicas: 1,
        hierarchy_file: Some(testdata("hierarchy.json")),
        catalogue_file: None,
        auth: true,
        ..Default::default()
    }
}

/// The admin token of this test process.
pub fn token() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(|| Token::generate().expect("a random token"))
}

/// Gives [`token`] to the province whose data dir is `data_dir` (once).
pub fn provision(data_dir: &Path) {
    let store = TokenStore::open(&treem_auth::auth_dir(data_dir)).expect("open the token store");
    if !store.list().expect("list tokens").iter().any(|t| t.id == token().id()) {
        store.add(token(), "province tests", Role::Admin).expect("add the test token");
    }
}

pub fn f(numerator: u64, denominator: u64) -> Fraction {
    Fraction { numerator, denominator }
}

pub fn snapshot(town: &str, year: u16, version: u64, indicators: &[(&str, Fraction)], cases: &[(&str, u64)]) -> TownSnapshot {
    TownSnapshot {
        province: "70".into(),
        town: town.into(),
        year,
        version,
        produced_at: Utc::now(),
        wards_total: if town == "690" { 6 } else { 2 },
        indicators: indicators.iter().map(|(c, f)| (c.to_string(), *f)).collect(),
        wards: Default::default(),
        cases_counted: cases.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
        suppressed: Default::default(),
    }
}

pub async fn jetstream(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.expect("connect to the test nats-server"))
}

/// Waits until the province has created its stream.
pub async fn wait_for_stream(js: &jetstream::Context) {
    let name = subject::province_projections_stream("70");
    let deadline = Instant::now() + DEADLINE;
    while js.get_stream(&name).await.is_err() {
        assert!(Instant::now() < deadline, "stream {name} was not created in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes as a town does: its subject, `Nats-Msg-Id` = `msg_id()`, and
/// waits for the JetStream ack. Returns whether JetStream saw a duplicate.
pub async fn publish(js: &jetstream::Context, snap: &TownSnapshot) -> bool {
    let subject = subject::projection_subject(&snap.province, &snap.town, subject::VIEW_INDICATORS);
    publish_raw(js, &subject, serde_json::to_vec(snap).unwrap(), Some(snap.msg_id())).await
}

pub async fn publish_raw(js: &jetstream::Context, subject: &str, payload: Vec<u8>, msg_id: Option<String>) -> bool {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id.as_str());
    }
    let ack = js
        .publish_with_headers(subject.to_string(), headers, payload.into())
        .await
        .expect("publish sent")
        .await
        .expect("publish acknowledged by JetStream");
    ack.duplicate
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().get(format!("http://{addr}{path}")).bearer_auth(token().expose()).send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("HTTP body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Polls `path` until `ready` holds on its JSON body; returns that body.
pub async fn wait_for(addr: SocketAddr, path: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = get(addr, path).await;
        if status == 200 && ready(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last answer of {path}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the sync view shows `town` at `version`.
pub async fn wait_for_version(addr: SocketAddr, town: &str, version: u64) -> Value {
    wait_for(addr, "/api/v1/sync", &format!("town {town} at version {version}"), |b| {
        b["towns"].as_array().is_some_and(|ts| ts.iter().any(|t| t["town"] == town && t["last_version"].as_u64() == Some(version)))
    })
    .await
}

/// The indicator `code` in an `/api/v1/indicators` answer.
pub fn indicator<'a>(body: &'a Value, code: &str) -> &'a Value {
    body["indicators"]
        .as_array()
        .and_then(|is| is.iter().find(|i| i["code"] == code))
        .unwrap_or_else(|| panic!("indicator {code} not in {body}"))
}

/// A metric's value from the Prometheus text.
pub async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not in {text}"))
}

/// Waits until a metric reaches `value` (counters move just after the store
/// write the API already shows, so a single read could race them).
pub async fn wait_for_metric(addr: SocketAddr, name: &str, value: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = metric(addr, name).await;
        if got == value {
            return;
        }
        assert!(Instant::now() < deadline, "metric {name} is {got}, expected {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
