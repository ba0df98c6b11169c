//! # treem-province — the province roll-up (Sở LĐ-TB&XH)
//!
//! Consumes every town's projection snapshots from the JetStream stream
//! `TREEM_PROJECTIONS_<province>` (which this crate creates and owns, see
//! [`stream`]), keeps the newest snapshot of each town and year in sled
//! ([`store`]), and serves the province-wide roll-up over HTTP ([`http`]) —
//! the same read surface as a town's, summed exactly over towns
//! ([`rollup`]: numerators and denominators, never percentages). `watch`
//! ([`watch`]) prints snapshots live as they arrive.
//!
//! The province sees aggregates only: counts and fractions per town and
//! ward, never a case (DESIGN.md invariant 5).
//!
//! Map: [`config`] → [`start`] spawns the consumer loop (`consumer`: pull,
//! check with `intake`, store or park, fsync, ack) and the HTTP server, and
//! returns a [`Node`]; [`Node::shutdown`] stops both and syncs the store.
//! NATS being unreachable is normal: the node starts and serves what it has,
//! and attaches to the stream when NATS comes back.
//!
//! This crate depends on `treem-proto` only, never on the ward or town crates.

pub mod config;
mod consumer;
mod durable;
pub mod http;
pub mod intake;
pub mod metrics;
pub mod rollup;
pub mod store;
pub mod stream;
pub mod watch;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

pub use config::{Config, ConfigError};
pub use watch::{WatchError, WatchOptions, watch, watch_with};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot create data_dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on http_addr {addr}: {source} (is another process using it?)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write the bound HTTP address to {path}: {source}")]
    AddrFile { path: PathBuf, source: std::io::Error },
    #[error("API tokens or audit log: {0}")]
    Auth(#[from] treem_auth::guard::AuthError),
}

/// A running province node.
pub struct Node {
    /// Where the read API actually listens (also written to `<data_dir>/http.addr`).
    pub http_addr: SocketAddr,
    shutdown: signal::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: store::Store,
}

/// Validates `config`, opens the store, binds the HTTP API, writes
/// `<data_dir>/http.addr`, spawns the consumer and the server, and returns.
/// Does not wait for NATS.
pub async fn start(config: Config) -> Result<Node, Error> {
    config.validate()?;
    let hierarchy = Arc::new(config.hierarchy()?);
    let catalogue = Arc::new(config.catalogue()?);
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir { path: config.data_dir.clone(), source })?;
    let store = store::Store::open(&config.store_dir())?;
    let auth = Arc::new(treem_auth::Auth::open(&config.data_dir, config.auth)?);
    let metrics = Arc::new(metrics::Metrics::default());

    let listener =
        tokio::net::TcpListener::bind(config.http_addr).await.map_err(|source| Error::Bind { addr: config.http_addr, source })?;
    let http_addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.http_addr, source })?;
    let addr_file = config.http_addr_file();
    write_atomically(&addr_file, http_addr.to_string().as_bytes()).map_err(|source| Error::AddrFile { path: addr_file.clone(), source })?;

    let (shutdown, shutdown_rx) = signal::channel(false);
    let state = http::AppState {
        province: config.province.clone(),
        hierarchy: hierarchy.clone(),
        catalogue,
        store: store.clone(),
        metrics: metrics.clone(),
        silent_after_days: config.silent_after_days.max(1),
    };
    let mut http_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, http::router(state, auth)).with_graceful_shutdown(async move {
            let _ = http_shutdown.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    let consumer = consumer::Consumer {
        province: config.province.clone(),
        nats_url: config.nats_url.clone(),
        nats_auth: config.nats_auth(),
        stream_replicas: config.stream_replicas,
        hierarchy,
        store: store.clone(),
        metrics,
    };
    let consuming = tokio::spawn(consumer.run(shutdown_rx));
    tracing::info!(province = %config.province, http_addr = %http_addr, nats_url = %config.nats_url, nats = %config.nats_auth().describe(), data_dir = %config.data_dir.display(), "province node started");
    Ok(Node { http_addr, shutdown, tasks: vec![server, consuming], store })
}

impl Node {
    /// Stops the consumer (after its current batch is stored and acked) and
    /// the HTTP server (after in-flight requests), then syncs the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a province task panicked");
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::error!(error = %e, "final store sync failed");
        }
        tracing::info!("province node stopped");
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader sees the old content or the new, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}
