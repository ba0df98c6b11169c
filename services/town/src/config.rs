//! Town aggregator configuration: one TOML file, every field overridable by
//! an environment variable `TREEM_TOWN_<FIELD>`, validated at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use treem_auth::nats::{ClientAuth, optional_path};
use treem_proto::catalogue::Catalogue;
use treem_proto::hierarchy::Hierarchy;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Province code of this town (Bình Phước: "70").
    pub province: String,
    /// Town code (Bình Long: "690").
    pub town: String,
    /// Where the sled projection store lives.
    pub data_dir: PathBuf,
    /// HTTP API address; port 0 picks a free one (written to `<data_dir>/http.addr`).
    pub http_addr: SocketAddr,
    /// The town's NATS: one URL, or several separated by commas (the nodes
    /// of a JetStream cluster, deploy/nats/cluster/); the client fails over
    /// between them.
    pub nats_url: String,
    /// Replicas of the ward event stream: 1 on one nats-server, 3 on the
    /// three-node cluster of deploy/nats/cluster/ (1–5, at most the number
    /// of nodes). An existing stream is scaled to this count at start.
    pub stream_replicas: usize,
    /// JetStream de-duplication window of the ward event stream, in seconds.
    /// A first line only: the town de-duplicates by ward sequence whatever the window.
    pub duplicate_window_secs: u64,
    /// Messages fetched and applied per atomic commit.
    pub batch_size: usize,
    /// sled's page cache for the town store, in MiB (1–4096). sled's own
    /// default, 1 GiB, is what a town grew to while applying a large stream;
    /// the views read through an in-memory figures cache, so a small page
    /// cache costs the apply rate little (BENCHMARKS.md). Default 16.
    pub store_cache_mb: u64,
    /// Back-off bounds while NATS or the province stream is unreachable.
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Another hierarchy file than the shipped one.
    pub hierarchy_file: Option<PathBuf>,
    /// Another indicator catalogue than the shipped one (say, a newer one
    /// that knows an indicator a ward already records).
    pub catalogue_file: Option<PathBuf>,
    /// Require a bearer token on the API (SECURITY.md): `viewer` for
    /// indicators and sync, `officer` for case summaries, `admin` for parked
    /// messages; tokens come from `treem-town token create`. `false` lets
    /// anyone who reaches `http_addr` read everything, and is accepted only
    /// on a loopback address.
    pub auth: bool,
    /// The wards' public signing keys (JSON, ward code → keys; filled by
    /// `treem-town keys add`, SECURITY.md). Default `<data_dir>/ward_keys.json`.
    /// Re-read when it changes, while the town runs.
    pub ward_keys_file: Option<PathBuf>,
    /// Refuse (park) unsigned events from a ward that has no registered key.
    /// A ward with a registered key must sign whatever this says (events
    /// before its first key excepted). `false` only for a trial without
    /// provisioned keys.
    pub require_signatures: bool,
    /// Sensitive counts (abuse, child marriage, HIV; `treem_proto::projection`)
    /// from 1 to `suppress_below − 1` are withheld from what is forwarded to
    /// the province, marked "suppressed" (never zero). 0 or 1 withholds
    /// nothing (a warning is logged at start). Default 5.
    pub suppress_below: u64,
    /// The town's NATS identity: the nkey seed file `treem-nats-auth` made
    /// for it (`town-<p>-<t>.nk`, mode 0600). Unset: no login (the
    /// single-machine setup of deploy/nats/treem.conf). SECURITY.md.
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// PEM certificate of the CA that signed the NATS server's certificate.
    /// Set, TLS is required (a server without TLS is refused).
    pub nats_tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key for mutual TLS (both or neither).
    pub nats_tls_cert_file: Option<PathBuf>,
    pub nats_tls_key_file: Option<PathBuf>,
    /// The dashboard marks a ward silent (red) when its newest event is
    /// older than this many days, or it never synced. Default 7.
    pub silent_after_days: u32,
    /// A TrueType font with Vietnamese glyphs for the PDF reports (embedded,
    /// subset, in each PDF). Default DejaVu Sans of Debian's
    /// `fonts-dejavu-core` (scripts/install-browser.sh installs it).
    pub report_font: PathBuf,
}

/// DejaVu Sans as Debian's `fonts-dejavu-core` installs it.
pub const DEFAULT_REPORT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

impl Default for Config {
    fn default() -> Self {
        Config {
            province: "70".into(),
            town: "690".into(),
            data_dir: PathBuf::from("data/town"),
            http_addr: "127.0.0.1:7420".parse().expect("valid default address"),
            nats_url: "nats://127.0.0.1:4222".into(),
            stream_replicas: 1,
            duplicate_window_secs: 600,
            batch_size: 1000,
            store_cache_mb: 16,
            backoff_min_ms: 100,
            backoff_max_ms: 5000,
            hierarchy_file: None,
            catalogue_file: None,
            auth: true,
            ward_keys_file: None,
            require_signatures: true,
            suppress_below: treem_proto::projection::DEFAULT_SUPPRESS_BELOW,
            nats_nkey_seed_file: None,
            nats_tls_ca_file: None,
            nats_tls_cert_file: None,
            nats_tls_key_file: None,
            silent_after_days: 7,
            report_font: PathBuf::from(DEFAULT_REPORT_FONT),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML for the town: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("environment variable {var}={value:?} is not valid: {detail}")]
    Env { var: String, value: String, detail: String },
    #[error("hierarchy: {0}")]
    Hierarchy(String),
    #[error("catalogue file {path}: {detail}")]
    Catalogue { path: PathBuf, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path` (or the defaults), then applies `TREEM_TOWN_*` overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse { path: p.into(), detail: e.to_string() })?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env { var: var.into(), value, detail: e.to_string() })
        }
        let v = |k: &str| get(&format!("TREEM_TOWN_{k}")).map(|x| (format!("TREEM_TOWN_{k}"), x));
        if let Some((_, x)) = v("PROVINCE") {
            self.province = x;
        }
        if let Some((_, x)) = v("TOWN") {
            self.town = x;
        }
        if let Some((_, x)) = v("DATA_DIR") {
            self.data_dir = x.into();
        }
        if let Some((k, x)) = v("HTTP_ADDR") {
            self.http_addr = parse(&k, x)?;
        }
        if let Some((_, x)) = v("NATS_URL") {
            self.nats_url = x;
        }
        if let Some((k, x)) = v("STREAM_REPLICAS") {
            self.stream_replicas = parse(&k, x)?;
        }
        if let Some((k, x)) = v("DUPLICATE_WINDOW_SECS") {
            self.duplicate_window_secs = parse(&k, x)?;
        }
        if let Some((k, x)) = v("BATCH_SIZE") {
            self.batch_size = parse(&k, x)?;
        }
        if let Some((k, x)) = v("STORE_CACHE_MB") {
            self.store_cache_mb = parse(&k, x)?;
        }
        if let Some((k, x)) = v("BACKOFF_MIN_MS") {
            self.backoff_min_ms = parse(&k, x)?;
        }
        if let Some((k, x)) = v("BACKOFF_MAX_MS") {
            self.backoff_max_ms = parse(&k, x)?;
        }
        if let Some((_, x)) = v("HIERARCHY_FILE") {
            // Empty unsets it, as for the other files (and in the ward and the province).
            self.hierarchy_file = (!x.is_empty()).then(|| x.into());
        }
        if let Some((_, x)) = v("CATALOGUE_FILE") {
            self.catalogue_file = (!x.is_empty()).then(|| x.into());
        }
        if let Some((k, x)) = v("AUTH") {
            self.auth = parse(&k, x)?;
        }
        if let Some((k, x)) = v("SILENT_AFTER_DAYS") {
            self.silent_after_days = parse(&k, x)?;
        }
        if let Some((_, x)) = v("REPORT_FONT") {
            self.report_font = x.into();
        }
        if let Some((_, x)) = v("WARD_KEYS_FILE") {
            self.ward_keys_file = (!x.is_empty()).then(|| x.into());
        }
        if let Some((k, x)) = v("REQUIRE_SIGNATURES") {
            self.require_signatures = parse(&k, x)?;
        }
        if let Some((k, x)) = v("SUPPRESS_BELOW") {
            self.suppress_below = parse(&k, x)?;
        }
        if let Some((_, x)) = v("NATS_NKEY_SEED_FILE") {
            self.nats_nkey_seed_file = optional_path(&x);
        }
        if let Some((_, x)) = v("NATS_TLS_CA_FILE") {
            self.nats_tls_ca_file = optional_path(&x);
        }
        if let Some((_, x)) = v("NATS_TLS_CERT_FILE") {
            self.nats_tls_cert_file = optional_path(&x);
        }
        if let Some((_, x)) = v("NATS_TLS_KEY_FILE") {
            self.nats_tls_key_file = optional_path(&x);
        }
        Ok(())
    }

    pub fn hierarchy(&self) -> Result<Hierarchy, ConfigError> {
        match &self.hierarchy_file {
            None => Ok(Hierarchy::shipped()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                Hierarchy::parse(&text).map_err(|e| ConfigError::Hierarchy(e.to_string()))
            }
        }
    }

    /// The keys file of the wards' public keys (`ward_keys_file`, or
    /// `<data_dir>/ward_keys.json`).
    pub fn ward_keys_path(&self) -> PathBuf {
        self.ward_keys_file.clone().unwrap_or_else(|| self.data_dir.join(crate::provenance::KEYS_FILE))
    }

    /// The wards' public keys, read from [`Config::ward_keys_path`].
    pub fn ward_keys(&self) -> Result<crate::provenance::WardKeys, ConfigError> {
        crate::provenance::WardKeys::load(Some(self.ward_keys_path()), self.require_signatures)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The NATS identity and TLS settings (SECURITY.md).
    pub fn nats_auth(&self) -> ClientAuth {
        ClientAuth {
            nkey_seed_file: self.nats_nkey_seed_file.clone(),
            tls_ca_file: self.nats_tls_ca_file.clone(),
            tls_cert_file: self.nats_tls_cert_file.clone(),
            tls_key_file: self.nats_tls_key_file.clone(),
        }
    }

    /// The indicator catalogue: `catalogue_file` or the shipped one.
    pub fn catalogue(&self) -> Result<Catalogue, ConfigError> {
        match &self.catalogue_file {
            None => Ok(Catalogue::shipped()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                Catalogue::parse(&text).map_err(|e| ConfigError::Catalogue { path: p.clone(), detail: e.to_string() })
            }
        }
    }

    /// Checks everything that can be checked without starting.
    pub fn validate(&self) -> Result<Hierarchy, ConfigError> {
        let h = self.hierarchy()?;
        self.catalogue()?;
        self.ward_keys()?;
        h.town(&self.province, &self.town).map_err(|e| ConfigError::Hierarchy(e.to_string()))?;
        if !(1..=4096).contains(&self.store_cache_mb) {
            return Err(ConfigError::Invalid(format!("store_cache_mb {} must be 1–4096 (MiB of sled page cache)", self.store_cache_mb)));
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(ConfigError::Invalid(format!("batch_size {} must be 1–10000", self.batch_size)));
        }
        if self.backoff_min_ms == 0 || self.backoff_min_ms > self.backoff_max_ms {
            return Err(ConfigError::Invalid("backoff_min_ms must be ≥ 1 and ≤ backoff_max_ms".into()));
        }
        if self.duplicate_window_secs == 0 {
            return Err(ConfigError::Invalid("duplicate_window_secs must be at least 1".into()));
        }
        if !(1..=5).contains(&self.stream_replicas) {
            return Err(ConfigError::Invalid(format!(
                "stream_replicas {} must be 1–5 (1 on one nats-server, 3 on the cluster of deploy/nats/cluster)",
                self.stream_replicas
            )));
        }
        if nats_urls(&self.nats_url).is_empty() {
            return Err(ConfigError::Invalid("nats_url must not be empty; use e.g. nats://127.0.0.1:4222".into()));
        }
        for url in nats_urls(&self.nats_url) {
            url.parse::<async_nats::ServerAddr>().map_err(|e| {
                ConfigError::Invalid(format!("nats_url {url:?}: {e}; use e.g. nats://127.0.0.1:4222 (several separated by commas)"))
            })?;
        }
        self.nats_auth().validate().map_err(|e| ConfigError::Invalid(format!("NATS credentials: {e}")))?;
        if self.suppress_below > 1000 {
            return Err(ConfigError::Invalid(format!(
                "suppress_below {} is more than 1000; small sensitive counts are those below 5 to 20 (default 5)",
                self.suppress_below
            )));
        }
        if self.silent_after_days == 0 {
            return Err(ConfigError::Invalid("silent_after_days must be at least 1 (default 7)".into()));
        }
        if !self.auth && !self.http_addr.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "auth = false is allowed only on a loopback http_addr, not {}; keep auth = true and create tokens with `treem-town token create`",
                self.http_addr
            )));
        }
        Ok(h)
    }
}

/// The URLs of a `nats_url` setting: one, or several separated by commas
/// (async-nats parses a `&str` as ONE address, so a list is split here and
/// handed over as a `Vec`).
pub fn nats_urls(nats_url: &str) -> Vec<&str> {
    nats_url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_validation() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "TREEM_TOWN_BATCH_SIZE" => Some("50".into()),
            "TREEM_TOWN_NATS_URL" => Some("nats://10.0.0.1:4222".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.batch_size, 50);
        assert_eq!(c.nats_url, "nats://10.0.0.1:4222");
        assert!(c.validate().is_ok());
        let err = c.apply_env(|k| (k == "TREEM_TOWN_BATCH_SIZE").then(|| "many".into())).unwrap_err();
        assert!(err.to_string().contains("TREEM_TOWN_BATCH_SIZE"), "{err}");
        c.apply_env(|k| (k == "TREEM_TOWN_STREAM_REPLICAS").then(|| "3".into())).unwrap();
        assert_eq!(c.stream_replicas, 3);
        c.nats_url = "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224".into();
        assert_eq!(nats_urls(&c.nats_url), ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]);
        assert!(c.validate().is_ok());
        c.stream_replicas = 6;
        assert!(c.validate().unwrap_err().to_string().contains("stream_replicas"));
        c.stream_replicas = 1;
        c.town = "999".into();
        assert!(c.validate().unwrap_err().to_string().contains("999"));
        c.town = "690".into();
        assert!(c.auth, "auth is on by default");
        c.apply_env(|k| (k == "TREEM_TOWN_AUTH").then(|| "false".into())).unwrap();
        assert!(!c.auth && c.validate().is_ok(), "off on loopback");
        c.http_addr = "0.0.0.0:7420".parse().unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("auth = false"));
        // A file set, then unset by an empty variable: the shipped data again.
        for var in ["TREEM_TOWN_HIERARCHY_FILE", "TREEM_TOWN_CATALOGUE_FILE", "TREEM_TOWN_WARD_KEYS_FILE"] {
            c.apply_env(|k| (k == var).then(|| "/etc/treem/x.json".into())).unwrap();
            c.apply_env(|k| (k == var).then(String::new)).unwrap();
        }
        assert_eq!((c.hierarchy_file, c.catalogue_file, c.ward_keys_file), (None, None, None));
    }
}
