//! Test helpers of the ward crate: a real `nats-server` (OS-chosen port, own
//! store directory, killed on drop), ward configs in temp dirs, event
//! builders and waiting on a condition with a deadline.
//!
//! A minimal copy of the shared harness in `tests/src`, so the ward's own
//! tests stand alone.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use treem_proto::Event;
use treem_proto::event::IndicatorObserved;
use treem_proto::subject::WardPath;
use treem_ward::Config;

pub const PROVINCE: &str = "70";
pub const TOWN: &str = "690";
pub const WARD: &str = "25320";

pub fn ward_path() -> WardPath {
    WardPath { province: PROVINCE.into(), town: TOWN.into(), ward: WARD.into() }
}

/// A valid observation of indicator 4a (a rate over 100 children).
pub fn observation(n: u64) -> Event {
    Event::IndicatorObserved(IndicatorObserved {
        indicator: "4a".into(),
        year: 2021 + (n % 10) as u16,
        numerator: n % 100,
        denominator: Some(100),
        source: "health_centre".into(),
    })
}

/// A ward config in `dir`, HTTP on an OS-chosen port, fast retries.
pub fn config(dir: &Path, nats_url: &str) -> Config {
    Config {
        ward: WARD.into(),
        data_dir: dir.to_path_buf(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        nats_url: nats_url.into(),
        backoff_min_ms: 20,
        backoff_max_ms: 300,
        ..Config::default()
    }
}

/// A URL where nothing listens (port taken from the OS, then released).
pub fn dead_nats_url() -> String {
    format!("nats://127.0.0.1:{}", free_port())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Logs of the code under test, shown for failing tests; `RUST_LOG` filters
/// (default: warnings only).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Polls `check` until it returns true, failing loudly after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real nats-server with JetStream, on `port`, storing in `store`.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    pub store: PathBuf,
}

impl NatsServer {
    /// The binary: `$TREEM_NATS_SERVER`, else `nats-server` on PATH.
    pub fn binary() -> String {
        std::env::var("TREEM_NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
    }

    pub fn start(store: &Path) -> NatsServer {
        NatsServer::start_on(free_port(), store)
    }

    pub fn start_on(port: u16, store: &Path) -> NatsServer {
        let bin = NatsServer::binary();
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin:?} ({e}); install nats-server or set TREEM_NATS_SERVER"));
        let server = NatsServer { child, port, store: store.to_path_buf() };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {addr} within 10s");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the town's stream of ward events, retrying while JetStream starts.
pub async fn create_town_stream(js: &async_nats::jetstream::Context) -> async_nats::jetstream::stream::Stream {
    let config = async_nats::jetstream::stream::Config {
        name: treem_proto::subject::town_events_stream(PROVINCE, TOWN),
        subjects: vec![treem_proto::subject::town_events_filter(PROVINCE, TOWN)],
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(stream) => return stream,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot create the town stream: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
