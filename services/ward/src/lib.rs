//! # treem-ward — the ward node (phường/xã)
//!
//! Runs on the child-protection officer's laptop, fully offline-first:
//!
//! - [`log`]: the durable, append-only ward log on sled, with group commit —
//!   an event is "recorded" only once it is on stable storage; a full disk
//!   refuses new records with a clear error and recovers without a restart;
//! - [`identity`]: the case register; a child's identity stays here, is
//!   never part of an event, is sealed under a key of its own ([`vault`])
//!   and erased for good when consent is withdrawn;
//! - [`keys`]: the ward's signing key; every event is signed and chained
//!   to the one before (provenance), so the town can verify it;
//! - [`replicator`]: publishes the log in order to the town's JetStream
//!   stream whenever the network allows, remembering what was acknowledged,
//!   and on every (re)connect checks that the stream still holds it
//!   (`reconcile.rs`), sending again what the stream lost;
//! - [`http`]: the local HTTP API (record, list, status, health, metrics);
//! - [`web`]: the officer's data-entry page, local and offline, on the same server;
//! - [`csv_import`]: bulk import of indicator observations, all-or-nothing;
//! - [`config`]: TOML + `TREEM_WARD_*` environment configuration;
//! - [`cli`]: the `treem-ward` command line.
//!
//! Wire types (envelope, kinds, subjects, catalogue, hierarchy) come from
//! `treem-proto`; this crate defines none. It knows nothing of the town or
//! the province beyond the stream and subjects it publishes to.
//!
//! [`start`] opens the log, spawns the replicator and the HTTP server and
//! returns a [`Node`]; [`Node::shutdown`] stops them (replicator first, then
//! HTTP after in-flight requests) and makes the log durable.

pub mod cli;
pub mod config;
pub mod csv_import;
mod durable;
mod group_commit;
pub mod http;
pub mod identity;
pub mod keys;
pub mod log;
mod log_db;
mod reconcile;
pub mod replicator;
mod sync_state;
pub mod vault;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use treem_proto::catalogue::Catalogue;

pub use config::Config;
pub use log::{LogError, LogStatus, WardLog};

/// The file in the data directory holding the bound HTTP address of a
/// running node (for the CLI when the log is locked by that node).
pub const HTTP_ADDR_FILE: &str = "http.addr";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Identity(#[from] identity::IdentityError),
    #[error("cannot listen on {addr}: {source}; is another ward node running? change http_addr")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    AddrFile { path: PathBuf, source: std::io::Error },
}

/// A running ward node.
#[derive(Debug)]
pub struct Node {
    /// The address the HTTP API actually listens on.
    pub http_addr: SocketAddr,
    /// The node's log; clones share it with the running tasks.
    pub log: WardLog,
    data_dir: PathBuf,
    shutdown: watch::Sender<bool>,
    replicator: JoinHandle<()>,
    http: JoinHandle<std::io::Result<()>>,
}

/// Opens the log, binds HTTP, writes `<data_dir>/http.addr`, spawns the
/// replicator and the HTTP server. NATS being down is not an error.
pub async fn start(config: Config) -> Result<Node, Error> {
    config.validate()?;
    let log = WardLog::open(&config.data_dir, config.ward_path(), Catalogue::shipped())?;
    log.set_min_free_bytes(config.min_free_bytes);
    // Finish what a crash interrupted in the case register before serving.
    identity::recover(&log).await?;
    let listener =
        tokio::net::TcpListener::bind(config.http_addr).await.map_err(|source| Error::Bind { addr: config.http_addr, source })?;
    let http_addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.http_addr, source })?;
    let addr_file = config.data_dir.join(HTTP_ADDR_FILE);
    durable::write_atomically(&addr_file, http_addr.to_string().as_bytes())
        .map_err(|source| Error::AddrFile { path: addr_file.clone(), source })?;

    let (shutdown, stop) = watch::channel(false);
    let replicator = tokio::spawn(replicator::run(
        log.clone(),
        replicator::ReplicatorConfig {
            nats_url: config.nats_url.clone(),
            nats_auth: config.nats_auth(),
            max_in_flight: config.max_in_flight,
            backoff_min: config.backoff_min(),
            backoff_max: config.backoff_max(),
        },
        stop.clone(),
    ));
    let state = http::AppState { log: log.clone(), default_author: config.author.clone() };
    let http = tokio::spawn(http::serve(listener, state, stop));
    tracing::info!(ward = %config.ward, %http_addr, nats_url = %config.nats_url, nats = %config.nats_auth().describe(), "ward node started");
    Ok(Node { http_addr, log, data_dir: config.data_dir, shutdown, replicator, http })
}

impl Node {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the replicator, lets HTTP finish in-flight requests, removes
    /// `http.addr` and makes the log durable.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.replicator.await {
            tracing::warn!(error = %e, "replicator task ended abnormally");
        }
        match self.http.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "HTTP task ended abnormally"),
        }
        let _ = std::fs::remove_file(self.data_dir.join(HTTP_ADDR_FILE));
        if let Err(e) = self.log.flush().await {
            tracing::error!(error = %e, "final flush of the ward log failed");
        }
        tracing::info!(ward = %self.log.ward().ward, "ward node stopped");
    }
}
