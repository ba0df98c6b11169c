//! Configuration of a ward node: one TOML file, every field overridable by an
//! environment variable `TREEM_WARD_<FIELD>` (the field name in upper case,
//! e.g. `TREEM_WARD_WARD=25320`, `TREEM_WARD_NATS_URL=nats://town:4222`).
//!
//! Every field but `ward` has a default that runs on one laptop:
//!
//! ```toml
//! province = "70"            # Bình Phước
//! town = "690"               # Bình Long
//! ward = "25320"             # Hưng Chiến (required)
//! author = "officer"         # default officer id written on events
//! data_dir = "treem-ward-data"
//! http_addr = "127.0.0.1:7410"
//! nats_url = "nats://127.0.0.1:4222"
//! max_in_flight = 1024       # publishes awaiting their JetStream ack
//! backoff_min_ms = 100       # retry delay after a failed sync, doubling…
//! backoff_max_ms = 5000      # …up to this
//! min_free_bytes = 16777216  # refuse new records below 16 MiB free disk; 0: no check
//! # hierarchy_file = "hierarchy.json"   # default: the shipped hierarchy
//! # NATS identity and TLS (SECURITY.md, "NATS identities and TLS"); unset: none
//! # nats_nkey_seed_file = "/etc/treem/nats/ward-70-690-25320.nk"   # mode 0600
//! # nats_tls_ca_file = "/etc/treem/nats/ca.pem"                    # TLS required
//! # nats_tls_cert_file = "…"  nats_tls_key_file = "…"              # mutual TLS
//! ```
//!
//! [`Config::validate`] checks that the ward exists in the hierarchy, so a
//! typo in a code is caught at start-up rather than at the town.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use treem_auth::nats::{ClientAuth, optional_path};
use treem_proto::hierarchy::{Hierarchy, HierarchyError};
use treem_proto::subject::WardPath;

/// Prefix of the environment overrides.
pub const ENV_PREFIX: &str = "TREEM_WARD_";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Province code (mã tỉnh), e.g. "70".
    pub province: String,
    /// Town code (mã thị xã), e.g. "690".
    pub town: String,
    /// Ward or commune code (mã phường/xã), e.g. "25320". Required.
    pub ward: String,
    /// Officer id written on events when the caller names none.
    pub author: String,
    /// Where the ward log and `http.addr` live.
    pub data_dir: PathBuf,
    /// Local HTTP API; keep it on 127.0.0.1 on an officer's laptop.
    pub http_addr: SocketAddr,
    /// The town's NATS server: one URL, or several separated by commas (the
    /// nodes of a JetStream cluster, deploy/nats/cluster/).
    pub nats_url: String,
    /// Publishes sent before the first of them must be acknowledged.
    pub max_in_flight: usize,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Free disk space the ward log keeps: below it new records are refused
    /// with a "disk full" error instead of meeting ENOSPC inside sled. 0
    /// turns the check off (see `log.rs`, "Full disk and I/O errors").
    pub min_free_bytes: u64,
    /// Hierarchy JSON to use instead of the shipped one.
    pub hierarchy_file: Option<PathBuf>,
    /// This ward's NATS identity: the nkey seed file `treem-nats-auth` made
    /// for it (`ward-<p>-<t>-<w>.nk`, mode 0600). Unset: no login (the
    /// single-machine setup of deploy/nats/treem.conf).
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// PEM certificate of the CA that signed the NATS server's certificate.
    /// Set, TLS is required (a server without TLS is refused).
    pub nats_tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key for mutual TLS (both or neither).
    pub nats_tls_cert_file: Option<PathBuf>,
    pub nats_tls_key_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            province: "70".into(),
            town: "690".into(),
            ward: String::new(),
            author: "officer".into(),
            data_dir: PathBuf::from("treem-ward-data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7410)),
            nats_url: "nats://127.0.0.1:4222".into(),
            max_in_flight: 1024,
            backoff_min_ms: 100,
            backoff_max_ms: 5000,
            min_free_bytes: crate::log::DEFAULT_MIN_FREE_BYTES,
            hierarchy_file: None,
            nats_nkey_seed_file: None,
            nats_tls_ca_file: None,
            nats_tls_cert_file: None,
            nats_tls_key_file: None,
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
    #[error("no ward code configured: set `ward = \"25320\"` (your ward's code) in the config file or {ENV_PREFIX}WARD")]
    MissingWard,
    #[error("cannot read hierarchy file {path}: {detail}")]
    Hierarchy { path: PathBuf, detail: String },
    #[error(
        "{0}; check province, town and ward in the config (Bình Long is province 70, town 690, wards 25320 25324 25325 25326 25333 25336)"
    )]
    NotInHierarchy(HierarchyError),
    #[error("{field} is not valid: {detail}")]
    Invalid { field: &'static str, detail: String },
}

impl Config {
    /// Reads `path` (or only defaults when `None`), then applies the
    /// `TREEM_WARD_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, |var| std::env::var(var).ok())
    }

    /// [`Config::load`] with the environment given as a lookup function.
    pub fn load_with_env(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
                Config::from_toml(&text).map_err(|detail| ConfigError::Parse { path: path.into(), detail })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env { var: var.into(), value: value.into(), detail: e.to_string() })
        }
        let var = |field: &str| format!("{ENV_PREFIX}{}", field.to_uppercase());
        let get = |field: &str| env(&var(field)).map(|v| (var(field), v));
        if let Some((_, v)) = get("province") {
            self.province = v;
        }
        if let Some((_, v)) = get("town") {
            self.town = v;
        }
        if let Some((_, v)) = get("ward") {
            self.ward = v;
        }
        if let Some((_, v)) = get("author") {
            self.author = v;
        }
        if let Some((_, v)) = get("data_dir") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some((k, v)) = get("http_addr") {
            self.http_addr = parse(&k, &v)?;
        }
        if let Some((_, v)) = get("nats_url") {
            self.nats_url = v;
        }
        if let Some((k, v)) = get("max_in_flight") {
            self.max_in_flight = parse(&k, &v)?;
        }
        if let Some((k, v)) = get("backoff_min_ms") {
            self.backoff_min_ms = parse(&k, &v)?;
        }
        if let Some((k, v)) = get("backoff_max_ms") {
            self.backoff_max_ms = parse(&k, &v)?;
        }
        if let Some((k, v)) = get("min_free_bytes") {
            self.min_free_bytes = parse(&k, &v)?;
        }
        if let Some((_, v)) = get("hierarchy_file") {
            self.hierarchy_file = if v.trim().is_empty() { None } else { Some(PathBuf::from(v)) };
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
        Ok(())
    }

    /// The hierarchy in force: the configured file, or the shipped one.
    pub fn hierarchy(&self) -> Result<Hierarchy, ConfigError> {
        match &self.hierarchy_file {
            None => Ok(Hierarchy::shipped()),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| ConfigError::Hierarchy { path: path.clone(), detail: e.to_string() })?;
                Hierarchy::parse(&text).map_err(|e| ConfigError::Hierarchy { path: path.clone(), detail: e.to_string() })
            }
        }
    }

    /// Checks everything that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ward.trim().is_empty() {
            return Err(ConfigError::MissingWard);
        }
        self.hierarchy()?.ward(&self.province, &self.town, &self.ward).map_err(ConfigError::NotInHierarchy)?;
        let invalid = |field, detail: &str| Err(ConfigError::Invalid { field, detail: detail.into() });
        if self.author.trim().is_empty() {
            return invalid("author", "must not be empty; give the officer's id");
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight", "must be at least 1");
        }
        if self.backoff_min_ms == 0 || self.backoff_min_ms > self.backoff_max_ms {
            return invalid("backoff_min_ms", "must be at least 1 and at most backoff_max_ms");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if nats_urls(&self.nats_url).is_empty() {
            return invalid("nats_url", "must not be empty; use e.g. nats://127.0.0.1:4222");
        }
        for url in nats_urls(&self.nats_url) {
            if let Err(e) = url.parse::<async_nats::ServerAddr>() {
                return Err(ConfigError::Invalid {
                    field: "nats_url",
                    detail: format!("{url:?}: {e}; use e.g. nats://127.0.0.1:4222 (several separated by commas)"),
                });
            }
        }
        self.nats_auth().validate().map_err(|e| ConfigError::Invalid { field: "nats credentials", detail: e.to_string() })?;
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

    /// This ward's place in the hierarchy, as used in subjects and envelopes.
    pub fn ward_path(&self) -> WardPath {
        WardPath { province: self.province.clone(), town: self.town.clone(), ward: self.ward.clone() }
    }

    pub fn backoff_min(&self) -> Duration {
        Duration::from_millis(self.backoff_min_ms)
    }

    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }
}

/// The URLs of a `nats_url` setting: one, or several separated by commas
/// (the nodes of a JetStream cluster). async-nats parses a `&str` as ONE
/// address, so a list is split here and handed over as a `Vec`.
pub fn nats_urls(nats_url: &str) -> Vec<&str> {
    nats_url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_plus_ward_validate() {
        let c = Config::load_with_env(None, env(&[("TREEM_WARD_WARD", "25320")])).unwrap();
        assert_eq!(c.province, "70");
        assert_eq!(c.town, "690");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:7410");
        assert_eq!(c.max_in_flight, 1024);
        c.validate().unwrap();
    }

    #[test]
    fn nats_url_may_list_the_nodes_of_a_cluster() {
        let urls = "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224";
        let c = Config::load_with_env(None, env(&[("TREEM_WARD_WARD", "25320"), ("TREEM_WARD_NATS_URL", urls)])).unwrap();
        assert_eq!(nats_urls(&c.nats_url), ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]);
        c.validate().unwrap();
        let c = Config::load_with_env(None, env(&[("TREEM_WARD_WARD", "25320"), ("TREEM_WARD_NATS_URL", " , ")])).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("nats_url"));
    }

    #[test]
    fn toml_then_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.toml");
        std::fs::write(&path, "ward = \"25324\"\nmax_in_flight = 8\nnats_url = \"nats://town:4222\"\n").unwrap();
        let c = Config::load_with_env(Some(&path), env(&[("TREEM_WARD_MAX_IN_FLIGHT", "16"), ("TREEM_WARD_HTTP_ADDR", "127.0.0.1:0")]))
            .unwrap();
        assert_eq!(c.ward, "25324");
        assert_eq!(c.max_in_flight, 16);
        assert_eq!(c.nats_url, "nats://town:4222");
        assert_eq!(c.http_addr.port(), 0);
        c.validate().unwrap();
    }

    #[test]
    fn the_example_file_is_valid() {
        let c = Config::from_toml(include_str!("../ward.example.toml")).unwrap();
        assert_eq!(c, Config { ward: "25320".into(), ..Config::default() });
        c.validate().unwrap();
    }

    #[test]
    fn a_hierarchy_file_replaces_the_shipped_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.json");
        let unit = r#""valid_from": "2025-07-01", "valid_to": null"#;
        std::fs::write(
            &path,
            format!(
                r#"{{"provinces": [{{"code": "75", "name": "Đồng Nai", {unit}, "towns": [{{"code": "BL", "name": "Bình Long", "kind": "cụm", {unit},
                "wards": [{{"code": "25326", "name": "Bình Long", "kind": "phường", {unit}}}]}}]}}]}}"#
            ),
        )
        .unwrap();
        let pairs = [("TREEM_WARD_PROVINCE", "75"), ("TREEM_WARD_TOWN", "BL"), ("TREEM_WARD_WARD", "25326")];
        let mut c = Config::load_with_env(None, env(&pairs)).unwrap();
        assert!(c.validate().is_err(), "not in the shipped hierarchy");
        c.hierarchy_file = Some(path);
        c.validate().unwrap();
    }

    #[test]
    fn clear_errors() {
        let e = Config::load_with_env(None, env(&[])).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("no ward code configured"), "{e}");

        let e = Config::load_with_env(None, env(&[("TREEM_WARD_WARD", "99999")])).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("99999") && e.to_string().contains("25320"), "{e}");

        let e = Config::load_with_env(None, env(&[("TREEM_WARD_MAX_IN_FLIGHT", "lots")])).unwrap_err();
        assert!(e.to_string().contains("TREEM_WARD_MAX_IN_FLIGHT"), "{e}");

        let e = Config::from_toml("wrad = \"25320\"").unwrap_err();
        assert!(e.contains("wrad"), "{e}");
    }
}
