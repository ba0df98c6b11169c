//! Configuration of the province node: one TOML file, every field overridable
//! from the environment as `TREEM_PROVINCE_<FIELD>` (upper case), validated at
//! start-up and by `treem-province check-config`.
//!
//! ```toml
//! province = "70"                      # Sở LĐ-TB&XH Bình Phước
//! data_dir = "data/province"           # sled store and http.addr live here
//! http_addr = "127.0.0.1:7430"
//! nats_url = "nats://127.0.0.1:4222"
//! # hierarchy_file = "/etc/treem/hierarchy.json"   # default: the shipped one
//! # catalogue_file = "/etc/treem/catalogue.json"   # default: the shipped one
//! auth = true                          # API tokens required (SECURITY.md)
//! # NATS identity and TLS (SECURITY.md, "NATS identities and TLS"); unset: none
//! # nats_nkey_seed_file = "/etc/treem/nats/province-70.nk"   # mode 0600
//! # nats_tls_ca_file = "/etc/treem/nats/ca.pem"              # TLS required
//! # nats_tls_cert_file = "…"  nats_tls_key_file = "…"        # mutual TLS
//! ```
//!
//! Every field has a default that runs on one machine, so an empty file (or
//! no file) is a valid configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use treem_auth::nats::{ClientAuth, ClientAuthError, optional_path};
use treem_proto::catalogue::{Catalogue, CatalogueError};
use treem_proto::hierarchy::{Hierarchy, HierarchyError};

/// Prefix of the environment overrides, e.g. `TREEM_PROVINCE_NATS_URL`.
pub const ENV_PREFIX: &str = "TREEM_PROVINCE_";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Code of the province this node rolls up (mã tỉnh), e.g. `"70"`.
    pub province: String,
    /// Directory of the sled store and of `http.addr`.
    pub data_dir: PathBuf,
    /// Where the read API listens; port 0 lets the OS choose (tests).
    pub http_addr: SocketAddr,
    /// NATS: one URL, or several separated by commas (the nodes of a
    /// JetStream cluster, deploy/nats/cluster/); the client fails over
    /// between them.
    pub nats_url: String,
    /// Replicas of the projections stream: 1 on one nats-server, 3 on the
    /// three-node cluster of deploy/nats/cluster/ (1–5, at most the number of
    /// nodes). An existing stream is scaled to this count at start.
    pub stream_replicas: usize,
    /// Administrative hierarchy to load instead of the shipped one.
    pub hierarchy_file: Option<PathBuf>,
    /// Indicator catalogue to load instead of the shipped one.
    pub catalogue_file: Option<PathBuf>,
    /// Require a bearer token on the API (SECURITY.md): `viewer` for
    /// indicators and sync, `officer` for case counts, `admin` for parked
    /// messages; tokens come from `treem-province token create`. `false`
    /// lets anyone who reaches `http_addr` read everything, and is accepted
    /// only on a loopback address.
    pub auth: bool,
    /// The province's NATS identity: the nkey seed file `treem-nats-auth`
    /// made for it (`province-<p>.nk`, mode 0600). Unset: no login (the
    /// single-machine setup of deploy/nats/treem.conf).
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// PEM certificate of the CA that signed the NATS server's certificate.
    /// Set, TLS is required (a server without TLS is refused).
    pub nats_tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key for mutual TLS (both or neither).
    pub nats_tls_cert_file: Option<PathBuf>,
    pub nats_tls_key_file: Option<PathBuf>,
    /// The dashboard marks a town silent (red) when its newest snapshot is
    /// older than this many days, or it never sent one. Default 7.
    pub silent_after_days: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            province: "70".into(),
            data_dir: PathBuf::from("data/province"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7430)),
            nats_url: "nats://127.0.0.1:4222".into(),
            stream_replicas: 1,
            hierarchy_file: None,
            catalogue_file: None,
            auth: true,
            nats_nkey_seed_file: None,
            nats_tls_ca_file: None,
            nats_tls_cert_file: None,
            nats_tls_key_file: None,
            silent_after_days: 7,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("environment variable {var}={value:?} is not valid: {detail}")]
    Env { var: String, value: String, detail: String },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("nats_url {0:?} must start with nats://, tls://, ws:// or wss://")]
    NatsUrl(String),
    #[error("stream_replicas {0} must be 1–5 (1 on one nats-server, 3 on the cluster of deploy/nats/cluster)")]
    StreamReplicas(usize),
    #[error("cannot read hierarchy file {path}: {source}")]
    ReadHierarchy { path: PathBuf, source: std::io::Error },
    #[error("hierarchy: {0}")]
    Hierarchy(#[from] HierarchyError),
    #[error("cannot read catalogue file {path}: {source}")]
    ReadCatalogue { path: PathBuf, source: std::io::Error },
    #[error("catalogue: {0}")]
    Catalogue(#[from] CatalogueError),
    #[error("province {0:?} has no towns in the hierarchy; nothing to roll up (check hierarchy_file)")]
    NoTowns(String),
    #[error(
        "auth = false is allowed only on a loopback http_addr, not {0}; keep auth = true and create tokens with `treem-province token create`"
    )]
    AuthOffOnNetwork(SocketAddr),
    #[error("NATS credentials: {0}")]
    NatsAuth(#[from] ClientAuthError),
}

impl Config {
    /// Reads `path` (if given) as TOML, then applies `TREEM_PROVINCE_*`
    /// overrides from the process environment. Does not validate.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, |var| std::env::var(var).ok())
    }

    /// [`Config::load`] with the environment supplied by `env` (for tests).
    pub fn load_with_env(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), detail: e.to_string() })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |field: &str| {
            let var = format!("{ENV_PREFIX}{}", field.to_uppercase());
            env(&var).map(|value| (var, value))
        };
        if let Some((_, v)) = get("province") {
            self.province = v;
        }
        if let Some((_, v)) = get("data_dir") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some((var, value)) = get("http_addr") {
            self.http_addr = value.parse().map_err(|e: std::net::AddrParseError| ConfigError::Env {
                var,
                value: value.clone(),
                detail: format!("{e}; expected host:port such as 127.0.0.1:7430"),
            })?;
        }
        if let Some((_, v)) = get("nats_url") {
            self.nats_url = v;
        }
        if let Some((var, value)) = get("stream_replicas") {
            self.stream_replicas = value.parse().map_err(|e: std::num::ParseIntError| ConfigError::Env {
                var,
                value: value.clone(),
                detail: format!("{e}; expected a replica count 1–5"),
            })?;
        }
        if let Some((_, v)) = get("hierarchy_file") {
            self.hierarchy_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some((_, v)) = get("catalogue_file") {
            self.catalogue_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some((var, value)) = get("auth") {
            self.auth = value.parse().map_err(|e: std::str::ParseBoolError| ConfigError::Env {
                var,
                value: value.clone(),
                detail: format!("{e}; expected true or false"),
            })?;
        }
        if let Some((_, v)) = get("nats_nkey_seed_file") {
            self.nats_nkey_seed_file = optional_path(&v);
        }
        if let Some((_, v)) = get("nats_tls_ca_file") {
            self.nats_tls_ca_file = optional_path(&v);
        }
        if let Some((_, v)) = get("nats_tls_cert_file") {
            self.nats_tls_cert_file = optional_path(&v);
        }
        if let Some((_, v)) = get("nats_tls_key_file") {
            self.nats_tls_key_file = optional_path(&v);
        }
        if let Some((var, value)) = get("silent_after_days") {
            self.silent_after_days = value.parse().map_err(|e: std::num::ParseIntError| ConfigError::Env {
                var,
                value: value.clone(),
                detail: format!("{e}; expected a number of days, at least 1"),
            })?;
        }
        Ok(())
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

    /// Checks every field, and that the hierarchy and catalogue load and the
    /// province is in the hierarchy with at least one town.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.province.trim().is_empty() {
            return Err(ConfigError::Empty { field: "province" });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Empty { field: "data_dir" });
        }
        let urls = nats_urls(&self.nats_url);
        if urls.is_empty() {
            return Err(ConfigError::NatsUrl(self.nats_url.clone()));
        }
        if let Some(bad) = urls.iter().find(|u| !["nats://", "tls://", "ws://", "wss://"].iter().any(|s| u.starts_with(s))) {
            return Err(ConfigError::NatsUrl((*bad).to_string()));
        }
        if !(1..=5).contains(&self.stream_replicas) {
            return Err(ConfigError::StreamReplicas(self.stream_replicas));
        }
        if !self.auth && !self.http_addr.ip().is_loopback() {
            return Err(ConfigError::AuthOffOnNetwork(self.http_addr));
        }
        self.nats_auth().validate()?;
        let hierarchy = self.hierarchy()?;
        let province = hierarchy.province(&self.province)?;
        if province.towns.is_empty() {
            return Err(ConfigError::NoTowns(self.province.clone()));
        }
        self.catalogue()?;
        Ok(())
    }

    /// The hierarchy in force: `hierarchy_file` or the shipped one.
    pub fn hierarchy(&self) -> Result<Hierarchy, ConfigError> {
        match &self.hierarchy_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadHierarchy { path: path.clone(), source })?;
                Ok(Hierarchy::parse(&text)?)
            }
            None => Ok(Hierarchy::shipped()),
        }
    }

    /// The indicator catalogue: `catalogue_file` or the shipped one.
    pub fn catalogue(&self) -> Result<Catalogue, ConfigError> {
        match &self.catalogue_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadCatalogue { path: path.clone(), source })?;
                Ok(Catalogue::parse(&text)?)
            }
            None => Ok(Catalogue::shipped()),
        }
    }

    /// Directory of the sled store.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// File holding the address the HTTP API actually bound.
    pub fn http_addr_file(&self) -> PathBuf {
        self.data_dir.join("http.addr")
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
    use std::collections::HashMap;

    #[test]
    fn empty_file_gives_defaults_that_validate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("province.toml");
        std::fs::write(&path, "").unwrap();
        let c = Config::load_with_env(Some(&path), |_| None).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.province, "70");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:7430");
        c.validate().unwrap();
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("province.toml");
        std::fs::write(&path, "nats_url = \"nats://10.0.0.1:4222\"\ndata_dir = \"/x\"\n").unwrap();
        let env: HashMap<&str, &str> =
            [("TREEM_PROVINCE_NATS_URL", "nats://10.0.0.2:4222"), ("TREEM_PROVINCE_HTTP_ADDR", "0.0.0.0:9000")].into();
        let c = Config::load_with_env(Some(&path), |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.nats_url, "nats://10.0.0.2:4222");
        assert_eq!(c.http_addr.to_string(), "0.0.0.0:9000");
        assert_eq!(c.data_dir, PathBuf::from("/x"));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = Config::load_with_env(None, |k| (k == "TREEM_PROVINCE_HTTP_ADDR").then(|| "nope".into())).unwrap_err();
        assert!(err.to_string().contains("TREEM_PROVINCE_HTTP_ADDR"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("province.toml");
        std::fs::write(&path, "provinc = \"70\"\n").unwrap();
        let err = Config::load_with_env(Some(&path), |_| None).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");

        let c = Config { province: "99".into(), ..Config::default() };
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("\"99\""), "{err}");

        let c = Config { nats_url: "http://x".into(), ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::NatsUrl(_))));
        let c = Config { nats_url: "nats://a:4222,http://b:4222".into(), ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::NatsUrl(u)) if u == "http://b:4222"));
        let c = Config { stream_replicas: 0, ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::StreamReplicas(0))));
        assert!(Config::default().auth, "auth is on by default");
        let c = Config { auth: false, ..Config::default() };
        c.validate().unwrap();
        let c = Config { auth: false, http_addr: "0.0.0.0:7430".parse().unwrap(), ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::AuthOffOnNetwork(_))));
        let err = Config::load_with_env(None, |k| (k == "TREEM_PROVINCE_AUTH").then(|| "no".into())).unwrap_err();
        assert!(err.to_string().contains("TREEM_PROVINCE_AUTH"), "{err}");
    }

    #[test]
    fn a_cluster_is_several_urls_and_three_replicas() {
        let env: HashMap<&str, &str> = [
            ("TREEM_PROVINCE_NATS_URL", "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224"),
            ("TREEM_PROVINCE_STREAM_REPLICAS", "3"),
        ]
        .into();
        let c = Config::load_with_env(None, |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.stream_replicas, 3);
        assert_eq!(nats_urls(&c.nats_url), ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]);
        c.validate().unwrap();
        let err = Config::load_with_env(None, |k| (k == "TREEM_PROVINCE_STREAM_REPLICAS").then(|| "three".into())).unwrap_err();
        assert!(err.to_string().contains("TREEM_PROVINCE_STREAM_REPLICAS"), "{err}");
    }
}
