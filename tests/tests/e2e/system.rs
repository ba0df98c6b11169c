//! A whole treem system in one test process: a real nats-server, the town,
//! the province and any wards, each with its own temporary sled directory
//! and HTTP on 127.0.0.1:0. Scenarios start what they need and talk to it
//! over HTTP and NATS, as users would.
//!
//! The town and province APIs need a token: [`System::new`] gives the
//! process's admin token ([`treem_tests::auth`]) to the town and province
//! data dirs, and `http` (so [`System::get`] and [`System::post`]) sends it
//! with every request.
//!
//! The town refuses events of wards whose signing key it has not
//! registered: [`System::new`] makes a key in each ward's data directory
//! (`ward-<code>`) and registers them all in the town's keys file
//! ([`treem_tests::provenance`]). A scenario that puts a ward elsewhere
//! calls `treem_tests::provenance::provision` for it; one that publishes
//! events by hand signs them with [`System::signer`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use treem_tests::{NatsServer, wait_for};

pub const WAIT: Duration = Duration::from_secs(60);

pub const WARDS: [&str; 6] = ["25320", "25324", "25325", "25326", "25333", "25336"];

pub struct System {
    pub dir: TempDir,
    pub nats: NatsServer,
    pub http: reqwest::Client,
}

impl System {
    pub async fn new() -> System {
        treem_tests::init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        treem_tests::auth::provision(&dir.path().join("town"));
        treem_tests::auth::provision(&dir.path().join("province"));
        let ward_dirs: Vec<(PathBuf, &str)> = WARDS.iter().map(|w| (dir.path().join(format!("ward-{w}")), *w)).collect();
        let wards: Vec<(&std::path::Path, &str)> = ward_dirs.iter().map(|(d, w)| (d.as_path(), *w)).collect();
        treem_tests::provenance::provision(&dir.path().join("town"), &wards);
        System { dir, nats: NatsServer::start().await, http: treem_tests::auth::client() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Signs envelopes as `ward` does (for events published by hand).
    pub fn signer(&self, ward: &str) -> treem_tests::provenance::WardSigner {
        treem_tests::provenance::WardSigner::of(&self.path(&format!("ward-{ward}")), ward)
    }

    pub fn town_config(&self) -> treem_town::Config {
        treem_town::Config {
            data_dir: self.path("town"),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: self.nats.url(),
            backoff_min_ms: 20,
            backoff_max_ms: 300,
            batch_size: 200,
            ..Default::default()
        }
    }

    pub async fn town(&self) -> treem_town::Node {
        treem_town::start(self.town_config()).await.expect("town starts")
    }

    pub fn province_config(&self) -> treem_province::Config {
        treem_province::Config {
            data_dir: self.path("province"),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: self.nats.url(),
            ..Default::default()
        }
    }

    pub async fn province(&self) -> treem_province::Node {
        treem_province::start(self.province_config()).await.expect("province starts")
    }

    pub fn ward_config(&self, ward: &str) -> treem_ward::Config {
        treem_ward::Config {
            ward: ward.into(),
            data_dir: self.path(&format!("ward-{ward}")),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: self.nats.url(),
            backoff_min_ms: 20,
            backoff_max_ms: 300,
            ..Default::default()
        }
    }

    pub async fn ward(&self, ward: &str) -> treem_ward::Node {
        treem_ward::start(self.ward_config(ward)).await.expect("ward starts")
    }

    pub async fn get(&self, url: String) -> Value {
        let r = self.http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_else(|e| panic!("GET {url}: body is not JSON: {e}"));
        assert!(status.is_success(), "GET {url} → {status}: {body}");
        body
    }

    /// POST returning (status, body).
    pub async fn post(&self, url: String, body: Value) -> (u16, Value) {
        let r = self.http.post(&url).json(&body).send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Records an event at a ward over its HTTP API; panics unless recorded.
    pub async fn record(&self, ward: &treem_ward::Node, kind: &str, body: Value) -> Value {
        let (status, resp) = self.post(format!("http://{}/api/v1/events", ward.http_addr), json!({"kind": kind, "body": body})).await;
        assert_eq!(status, 201, "recording {kind} {body}: {resp}");
        resp
    }

    /// Waits until the town has applied `seq` of `ward`.
    pub async fn town_applied(&self, town: &treem_town::Node, ward: &str, seq: u64) -> Value {
        let url = format!("http://{}/api/v1/sync", town.http_addr);
        wait_for(&format!("town applies {ward} up to seq {seq}"), WAIT, || {
            let url = url.clone();
            let http = self.http.clone();
            let ward = ward.to_string();
            async move {
                let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                let w = v["wards"].as_array()?.iter().find(|w| w["ward"] == ward)?.clone();
                (w["last_seq_applied"].as_u64()? >= seq).then_some(w)
            }
        })
        .await
    }

    /// The town's (or a ward's) figure of one indicator: (numerator, denominator, status).
    pub async fn town_indicator(&self, town: &treem_town::Node, year: u16, code: &str, ward: Option<&str>) -> Value {
        let mut url = format!("http://{}/api/v1/indicators?year={year}&code={code}", town.http_addr);
        if let Some(w) = ward {
            url.push_str(&format!("&ward={w}"));
        }
        self.get(url).await["indicators"][0].clone()
    }
}

pub fn observed(code: &str, year: u16, numerator: u64, denominator: u64) -> Value {
    json!({"indicator": code, "year": year, "numerator": numerator, "denominator": denominator, "source": "health_centre"})
}
