//! The client side of NATS security, shared by the ward, the town and the
//! province: which nkey a service logs in with, and which certificate
//! authority its TLS connection trusts.
//!
//! Each service has the same four optional settings (in its own config,
//! named `nats_nkey_seed_file`, `nats_tls_ca_file`, `nats_tls_cert_file`,
//! `nats_tls_key_file`) and builds a [`ClientAuth`] from them:
//!
//! - **nkey seed file**: the identity's seed (`SU…`, made by
//!   `treem-nats-auth`). The server sends a nonce, the client signs it; the
//!   seed never travels. Secrets come only from files, never from the config
//!   text or the environment, and [`ClientAuth::validate`] refuses a seed
//!   file that group or others may read, as ssh does.
//! - **TLS CA file**: PEM certificate(s) of the authority that signed the
//!   server's certificate. When set, TLS is *required*: a server that does
//!   not offer TLS is refused rather than spoken to in clear.
//! - **TLS cert and key files** (both or neither): a client certificate, for
//!   a server that asks for one (`verify: true`, mutual TLS).
//!
//! None set is the local, single-machine setup (`deploy/nats/treem.conf`,
//! no auth, loopback). Nothing here logs a seed; [`ClientAuth::describe`]
//! gives the public key and file names, for start-up logs.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::keys::{KeyError, read_user_seed};

/// How a service authenticates to NATS and what its TLS trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAuth {
    pub nkey_seed_file: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("nats_nkey_seed_file: {0}")]
    Seed(#[from] KeyError),
    #[error(
        "nats_nkey_seed_file {path} may be read by other users (mode {mode:o}); it is a secret: `chmod 600 {path}` (and keep its directory private)"
    )]
    SeedReadableByOthers { path: PathBuf, mode: u32 },
    #[error("{field} {path}: {detail}")]
    File { field: &'static str, path: PathBuf, detail: String },
    #[error("nats_tls_cert_file and nats_tls_key_file go together: set both (mutual TLS) or neither")]
    HalfClientCert,
    #[error("nats_tls_cert_file needs nats_tls_ca_file: a client certificate is only sent over TLS, which needs the server's CA")]
    ClientCertWithoutCa,
}

impl ClientAuth {
    /// Whether any setting is given (otherwise: no auth, TLS only if the
    /// URL or the server asks for it).
    pub fn is_configured(&self) -> bool {
        self.nkey_seed_file.is_some() || self.tls_ca_file.is_some() || self.tls_cert_file.is_some() || self.tls_key_file.is_some()
    }

    /// Checks every file now, so that a mistake stops the service at start
    /// rather than at its first connection: the seed is a user seed no one
    /// else may read; the TLS files are readable PEM.
    pub fn validate(&self) -> Result<(), ClientAuthError> {
        if let Some(path) = &self.nkey_seed_file {
            check_private(path)?;
            read_user_seed(path)?;
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) | (None, Some(_)) => return Err(ClientAuthError::HalfClientCert),
            (Some(_), Some(_)) if self.tls_ca_file.is_none() => return Err(ClientAuthError::ClientCertWithoutCa),
            _ => {}
        }
        for (field, path) in [
            ("nats_tls_ca_file", &self.tls_ca_file),
            ("nats_tls_cert_file", &self.tls_cert_file),
            ("nats_tls_key_file", &self.tls_key_file),
        ] {
            if let Some(path) = path {
                check_pem(field, path)?;
            }
        }
        if let Some(path) = &self.tls_key_file {
            check_private(path).map_err(|e| match e {
                ClientAuthError::SeedReadableByOthers { path, mode } => ClientAuthError::File {
                    field: "nats_tls_key_file",
                    detail: format!("may be read by other users (mode {mode:o}); it is a private key: `chmod 600 {}`", path.display()),
                    path,
                },
                e => e,
            })?;
        }
        Ok(())
    }

    /// Adds the identity and TLS settings to `options`. Reads the seed file
    /// (the seed goes to the client and nowhere else).
    pub fn apply(&self, mut options: async_nats::ConnectOptions) -> Result<async_nats::ConnectOptions, ClientAuthError> {
        if let Some(path) = &self.nkey_seed_file {
            check_private(path)?;
            let (seed, _) = read_user_seed(path)?;
            options = options.nkey(seed);
        }
        if let Some(ca) = &self.tls_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }

    /// For logs: the public key and the TLS files, never the seed.
    pub fn describe(&self) -> String {
        let identity = match &self.nkey_seed_file {
            None => "none".to_owned(),
            Some(path) => match read_user_seed(path) {
                Ok((_, kp)) => format!("nkey {}", kp.public_key()),
                Err(_) => format!("nkey from {} (unreadable)", path.display()),
            },
        };
        let tls = match (&self.tls_ca_file, &self.tls_cert_file) {
            (None, _) => "not required".to_owned(),
            (Some(ca), None) => format!("required, CA {}", ca.display()),
            (Some(ca), Some(cert)) => format!("required, CA {}, client certificate {}", ca.display(), cert.display()),
        };
        format!("identity: {identity}; TLS: {tls}")
    }
}

/// A secret file must not be readable by group or others.
fn check_private(path: &Path) -> Result<(), ClientAuthError> {
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ClientAuthError::SeedReadableByOthers { path: path.into(), mode });
    }
    Ok(())
}

fn check_pem(field: &'static str, path: &Path) -> Result<(), ClientAuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| ClientAuthError::File { field, path: path.into(), detail: e.to_string() })?;
    if !text.contains("-----BEGIN ") {
        return Err(ClientAuthError::File { field, path: path.into(), detail: "is not a PEM file (no -----BEGIN line)".into() });
    }
    Ok(())
}

/// Turns an empty string (an environment override that clears a setting)
/// into `None`.
pub fn optional_path(value: &str) -> Option<PathBuf> {
    let v = value.trim();
    (!v.is_empty()).then(|| PathBuf::from(v))
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;

    use super::*;
    use crate::nats::keys::KeyDir;

    #[test]
    fn a_private_user_seed_validates_and_is_never_described() {
        let out = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(out.path()).unwrap();
        keys.ensure("ward-70-690-25320").unwrap();
        let seed_file = keys.seed_file("ward-70-690-25320");
        let auth = ClientAuth { nkey_seed_file: Some(seed_file.clone()), ..Default::default() };
        auth.validate().unwrap();
        let seed = std::fs::read_to_string(&seed_file).unwrap();
        let described = auth.describe();
        assert!(described.contains(&keys.keys("ward-70-690-25320").unwrap().current.unwrap()), "{described}");
        assert!(!described.contains(seed.trim()));
        assert!(!format!("{auth:?}").contains(seed.trim()));
        auth.apply(async_nats::ConnectOptions::new()).unwrap();

        std::fs::set_permissions(&seed_file, Permissions::from_mode(0o644)).unwrap();
        let e = auth.validate().unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(!e.to_string().contains(seed.trim()));
    }

    #[test]
    fn tls_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n").unwrap();
        let auth = ClientAuth { tls_ca_file: Some(pem.clone()), ..Default::default() };
        auth.validate().unwrap();
        let missing = ClientAuth { tls_ca_file: Some(dir.path().join("nope.pem")), ..Default::default() };
        assert!(missing.validate().unwrap_err().to_string().contains("nats_tls_ca_file"));
        let half = ClientAuth { tls_ca_file: Some(pem.clone()), tls_cert_file: Some(pem.clone()), ..Default::default() };
        assert!(matches!(half.validate(), Err(ClientAuthError::HalfClientCert)));
        let no_ca = ClientAuth { tls_cert_file: Some(pem.clone()), tls_key_file: Some(pem.clone()), ..Default::default() };
        assert!(matches!(no_ca.validate(), Err(ClientAuthError::ClientCertWithoutCa)));
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n").unwrap();
        std::fs::set_permissions(&key, Permissions::from_mode(0o644)).unwrap();
        let open_key = ClientAuth {
            nkey_seed_file: None,
            tls_ca_file: Some(pem.clone()),
            tls_cert_file: Some(pem.clone()),
            tls_key_file: Some(key.clone()),
        };
        assert!(open_key.validate().unwrap_err().to_string().contains("private key"));
        std::fs::set_permissions(&key, Permissions::from_mode(0o600)).unwrap();
        open_key.validate().unwrap();
        assert!(!ClientAuth::default().is_configured() && open_key.is_configured());
        assert_eq!(optional_path("  "), None);
        assert_eq!(optional_path("/etc/treem/ward.nk"), Some(PathBuf::from("/etc/treem/ward.nk")));
    }
}
