//! # treem-town — the town aggregator (thị xã)
//!
//! Consumes every ward's events from the town's JetStream stream through a
//! durable pull consumer, applies each exactly once in that ward's order
//! ([`fold`]), keeps the projections and the consumer position together in
//! sled ([`store`]), serves the town office over HTTP ([`http`]) and forwards
//! per-year numerators and denominators to the province through a durable
//! outbox ([`forwarder`]), small sensitive counts withheld ([`suppress`]).
//! [`rebuild`] replays the stream into a fresh store.
//! The office's web pages — dashboard and evaluation reports — are [`web`];
//! the collaborator stipend of plan section D is [`stipend`].
//! Each ward event's signature and hash chain are verified against the
//! ward's registered keys before it applies ([`provenance`]).
//! Messages it cannot apply are parked with the reason ([`parked`]), copied to
//! a dead-letter stream ([`deadletter`]) and can be replayed by an operator
//! once the town understands them ([`replay`]).
//!
//! Owns: the fold, the town store, the town API. Does not own: the wire
//! format (`treem-proto`), ward logs, province roll-ups. Never holds a
//! child's identity: cases arrive pseudonymous with coarse attributes.

pub mod config;
pub mod consumer;
pub mod deadletter;
pub mod evlog;
pub mod fold;
pub mod forwarder;
pub mod http;
pub mod keys;
pub mod kv;
pub mod parked;
pub mod priority;
pub mod projection;
pub mod provenance;
pub mod rebuild;
pub mod records;
pub mod replay;
pub mod stipend;
pub mod store;
pub mod stream;
pub mod suppress;
pub mod web;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use config::Config;
use fold::Ctx;
use store::TownStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    AddrFile { path: std::path::PathBuf, source: std::io::Error },
    #[error("NATS connection options are invalid: {0}")]
    Nats(String),
    #[error("API tokens or audit log: {0}")]
    Auth(#[from] treem_auth::guard::AuthError),
}

/// State shared by the tasks and the HTTP handlers.
pub struct Shared {
    pub config: Config,
    pub ctx: Arc<Ctx>,
    pub store: TownStore,
    /// The town's ward codes and names, in hierarchy order.
    pub wards: Vec<String>,
    pub ward_names: Vec<String>,
    pub last_error: Mutex<Option<String>>,
    pub forward_error: Mutex<Option<String>>,
    pub applied_total: AtomicU64,
    pub forwarded_version: AtomicU64,
    pub applied_notify: Notify,
    /// Each year's figures, computed once per committed batch.
    pub figures: projection::indicators::FiguresCache,
    /// The indicator answers as sent, once per committed batch.
    pub rendered: http::indicators::Rendered,
    /// For the replay commands the HTTP API publishes to the town's stream.
    pub js: async_nats::jetstream::Context,
}

/// A running town aggregator.
pub struct Node {
    pub http_addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Writes `addr` to `<data_dir>/http.addr` (write, then rename).
pub fn write_addr_file(data_dir: &std::path::Path, addr: SocketAddr) -> Result<(), Error> {
    let path = data_dir.join("http.addr");
    let tmp = data_dir.join("http.addr.tmp");
    std::fs::write(&tmp, addr.to_string()).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|source| Error::AddrFile { path, source })
}

/// Connects as the town's NATS identity (`auth`: its nkey and TLS; empty
/// for the local setup), retrying in the background while NATS is away.
pub async fn connect(url: &str, name: &str, auth: &treem_auth::nats::ClientAuth) -> Result<async_nats::Client, Error> {
    auth.apply(async_nats::ConnectOptions::new())
        .map_err(|e| Error::Nats(e.to_string()))?
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| Duration::from_millis((100 * attempts as u64).min(2000)))
        // One URL or several (a cluster), comma-separated.
        .connect(config::nats_urls(url))
        .await
        .map_err(|e| Error::Nats(e.to_string()))
}

impl Ctx {
    /// What the fold needs, from the configuration: hierarchy, catalogue
    /// and the wards' keys (files are read now; the keys file again when it
    /// changes, see [`provenance::WardKeys::refresh`]).
    pub fn from_config(config: &Config) -> Result<Ctx, Error> {
        let hierarchy = config.validate()?;
        Ok(Ctx {
            province: config.province.clone(),
            town: config.town.clone(),
            hierarchy,
            catalogue: config.catalogue()?,
            provenance: config.ward_keys()?,
        })
    }
}

/// Opens the store, binds HTTP and starts consuming and forwarding.
pub async fn start(config: Config) -> Result<Node, Error> {
    let hierarchy = config.validate()?;
    if config.suppress_below <= 1 {
        tracing::warn!(
            suppress_below = config.suppress_below,
            "small sensitive counts are forwarded to the province as they are (suppress_below ≤ 1)"
        );
    }
    let town = hierarchy.town(&config.province, &config.town).map_err(|e| config::ConfigError::Hierarchy(e.to_string()))?;
    let wards: Vec<String> = town.wards.iter().map(|w| w.code.clone()).collect();
    let ward_names: Vec<String> = town.wards.iter().map(|w| format!("{} {}", w.kind, w.name)).collect();
    let store = TownStore::open_with_cache(&config.data_dir.join("store"), config.store_cache_mb << 20)?;
    let auth = Arc::new(treem_auth::Auth::open(&config.data_dir, config.auth)?);
    let listener =
        tokio::net::TcpListener::bind(config.http_addr).await.map_err(|source| Error::Bind { addr: config.http_addr, source })?;
    let http_addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.http_addr, source })?;
    // The version the province last acknowledged: every outbox entry before the
    // oldest still pending (or all of them) was forwarded before this start.
    let forwarded = match store.outbox().first() {
        Some(&(n, _)) => n - 1,
        None => store.tree.get(keys::META_OUTBOX_NEXT).ok().flatten().map(|v| keys::u64_of(&v)).unwrap_or(0),
    };
    let ctx = Ctx::from_config(&config)?;
    let unkeyed: Vec<&String> = wards.iter().filter(|w| !ctx.provenance.wards().contains(w)).collect();
    if !unkeyed.is_empty() {
        tracing::warn!(
            wards = ?unkeyed,
            keys_file = %config.ward_keys_path().display(),
            require_signatures = config.require_signatures,
            "wards without a registered signing key (their events are parked while require_signatures is on); register them with `treem-town keys add`"
        );
    }
    tracing::info!(town = %config.town, nats_url = %config.nats_url, nats = %config.nats_auth().describe(), "connecting to NATS");
    let client = connect(&config.nats_url, &format!("treem-town-{}", config.town), &config.nats_auth()).await?;
    let js = async_nats::jetstream::new(client);
    let shared = Arc::new(Shared {
        config,
        ctx: Arc::new(ctx),
        store,
        wards,
        ward_names,
        last_error: Mutex::new(None),
        forward_error: Mutex::new(None),
        applied_total: AtomicU64::new(0),
        forwarded_version: AtomicU64::new(forwarded),
        applied_notify: Notify::new(),
        figures: Default::default(),
        rendered: Default::default(),
        js: js.clone(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let forward = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(consumer::run(shared.clone(), js.clone(), forward.clone(), stop_rx.clone())));
    tasks.push(tokio::spawn(deadletter::run(shared.clone(), js.clone(), stop_rx.clone())));
    tasks.push(tokio::spawn(forwarder::run(shared.clone(), js, forward, stop_rx.clone())));
    let app = http::router(shared.clone(), auth);
    let mut http_stop = stop_rx;
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "town HTTP server failed");
        }
    }));
    write_addr_file(&shared.config.data_dir, http_addr)?;
    tracing::info!(town = %shared.config.town, %http_addr, "town aggregator started");
    Ok(Node { http_addr, shared, stop, tasks })
}

impl Shared {
    /// The figures of `year` (see [`projection::indicators::FiguresCache`]); blocking.
    pub fn figures(&self, year: u16) -> Arc<projection::indicators::YearFigures> {
        self.figures.get(&self.store, &self.ctx.catalogue, &self.wards, year)
    }

    /// The figures of `year`, from async code: the cached copy at once, or
    /// computed on a blocking thread.
    pub async fn figures_async(self: &Arc<Self>, year: u16) -> Arc<projection::indicators::YearFigures> {
        if let Some(f) = self.figures.cached(&self.store, year) {
            return f;
        }
        let shared = self.clone();
        match tokio::task::spawn_blocking(move || shared.figures(year)).await {
            Ok(f) => f,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

impl Node {
    /// Stops consuming, forwarding and serving; waits for every task; flushes.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        if let Err(e) = self.shared.store.sync() {
            tracing::error!(error = %e, "final flush of the town store failed");
        }
    }
}
