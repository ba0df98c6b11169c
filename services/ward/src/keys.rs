//! The ward's signing key (khóa ký của phường/xã): the ed25519 key that
//! signs every event this ward records, so its town can verify that an
//! event is this ward's and unaltered (provenance: the signing bytes, the
//! hash chain and the verification are `treem_proto::provenance`). The
//! secret never leaves the ward's data directory; the town registers the
//! public half (`treem-ward keys show --public` → `treem-town keys add`).
//!
//! # Files
//!
//! `<data_dir>/provenance/` (mode 0700) holds `signing-key.json` (mode 0600):
//!
//! ```json
//! {"ward": "70.690.25320",
//!  "active": {"key_id": "…", "public_key": "<hex>", "secret_key": "<hex>", "valid_from_seq": 41, "created_at": "…"},
//!  "retired": [{"key_id": "…", "public_key": "<hex>", "valid_from_seq": 1, "until_seq": 40, "created_at": "…", "retired_at": "…"}]}
//! ```
//!
//! The secret is 32 bytes from the operating system's random generator.
//! Only the active key keeps its secret: a rotation erases the old secret
//! (the file is replaced whole) and keeps its public half, so `keys show
//! --public` still lists every key a town needs to verify the whole log.
//!
//! # Invariants
//!
//! - The key is made once: at the first open of the ward log
//!   ([`crate::log::WardLog::open`]) or by `treem-ward keys init`, valid
//!   from the log's next seq — 1 for a new ward, `last + 1` for a ward whose
//!   log holds events from before signing (schema 1 and 2, accepted
//!   unsigned by the town).
//! - A key signs the seqs from its `valid_from_seq` up to the next key's.
//!   A rotation ([`WardKeys::rotate`]) happens with the log held
//!   exclusively (`treem-ward keys rotate` refuses while `serve` runs), so
//!   it falls between two events.
//! - The file is replaced atomically (a 0600 temporary file, fsync, rename,
//!   fsync of the directory), and is durable before the log signs anything
//!   with its key.
//!
//! # Crash behaviour
//!
//! - While creating: no file, or the whole file. No event was signed by a
//!   key that was lost, since the file is durable before its first use; the
//!   next open makes a key again.
//! - While rotating: the old file (the rotation did not happen; run it
//!   again) or the new one; never a mix.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use treem_proto::provenance::{self, KeyRegistration, SigningKey};
use treem_proto::subject::WardPath;

use crate::durable::sync_dir;

/// The directory of the key file, inside the data directory.
pub const KEYS_DIR: &str = "provenance";
/// The key file, inside [`KEYS_DIR`].
pub const KEY_FILE: &str = "signing-key.json";

/// Why the signing key could not be read, made or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot {action} the signing key file {path}: {source}; check the ward data directory (permissions, free space)")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error(
        "the signing key file {path} is damaged ({detail}); restore it from the ward's backup. Without it the ward cannot sign: move it away, run `treem-ward keys init` to make a new key and register that key at the town"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("the signing key file {path} belongs to ward {found}, not {expected}; point data_dir at this ward's own directory")]
    WrongWard { path: PathBuf, found: String, expected: String },
    #[error("the operating system's random generator failed ({0}); no key was made")]
    Random(String),
    #[error(
        "the active signing key is valid from seq {valid_from}, but the log ends at seq {last_seq}: the log is older than its key (restored from an older backup?); restore the key file of the same backup, or ask the town before recording again"
    )]
    AheadOfLog { valid_from: u64, last_seq: u64 },
    #[error("a new key cannot start at seq {seq}: the active key {key_id} already signs from seq {active_from}")]
    RotateBackwards { seq: u64, key_id: String, active_from: u64 },
}

/// The key that signs now, with its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveKey {
    key_id: String,
    public_key: String,
    secret_key: String,
    valid_from_seq: u64,
    created_at: DateTime<Utc>,
}

/// A key that signed seqs `valid_from_seq..=until_seq`; its secret is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    pub key_id: String,
    pub public_key: String,
    pub valid_from_seq: u64,
    pub until_seq: u64,
    pub created_at: DateTime<Utc>,
    pub retired_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// `"<province>.<town>.<ward>"`.
    ward: String,
    active: ActiveKey,
    #[serde(default)]
    retired: Vec<RetiredKey>,
}

/// The ward's keys, loaded from its data directory.
pub struct WardKeys {
    path: PathBuf,
    ward: WardPath,
    file: KeyFile,
    signing: SigningKey,
}

impl std::fmt::Debug for WardKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WardKeys").field("path", &self.path).field("key_id", &self.file.active.key_id).finish_non_exhaustive()
    }
}

fn ward_key(w: &WardPath) -> String {
    format!("{}.{}.{}", w.province, w.town, w.ward)
}

fn new_key(valid_from_seq: u64) -> Result<(ActiveKey, SigningKey), KeyError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    let signing = SigningKey::from_secret(&secret);
    let active = ActiveKey {
        key_id: signing.key_id(),
        public_key: signing.public_key().to_hex(),
        secret_key: provenance::hex(&secret),
        valid_from_seq,
        created_at: Utc::now(),
    };
    Ok((active, signing))
}

impl WardKeys {
    /// Where the key file of the ward in `data_dir` lives.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEYS_DIR).join(KEY_FILE)
    }

    /// The ward's keys, if it has any yet.
    pub fn load(data_dir: &Path, ward: &WardPath) -> Result<Option<WardKeys>, KeyError> {
        let path = Self::path(data_dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyError::Io { action: "read", path, source }),
        };
        let corrupt = |detail: String| KeyError::Corrupt { path: path.clone(), detail };
        let file: KeyFile = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.ward != ward_key(ward) {
            return Err(KeyError::WrongWard { path, found: file.ward, expected: ward_key(ward) });
        }
        let secret: [u8; 32] = provenance::unhex(&file.active.secret_key)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("secret_key is not 64 hex digits".into()))?;
        let signing = SigningKey::from_secret(&secret);
        if signing.key_id() != file.active.key_id || signing.public_key().to_hex() != file.active.public_key {
            return Err(corrupt("the secret key does not match the public key beside it".into()));
        }
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "the signing key file is readable by other users; chmod 600 it");
        }
        Ok(Some(WardKeys { path, ward: ward.clone(), file, signing }))
    }

    /// The ward's keys; makes the first key, valid from `valid_from_seq`,
    /// if the ward has none yet.
    pub fn load_or_create(data_dir: &Path, ward: &WardPath, valid_from_seq: u64) -> Result<WardKeys, KeyError> {
        if let Some(keys) = Self::load(data_dir, ward)? {
            return Ok(keys);
        }
        let (active, signing) = new_key(valid_from_seq.max(1))?;
        let keys = WardKeys {
            path: Self::path(data_dir),
            ward: ward.clone(),
            file: KeyFile { ward: ward_key(ward), active, retired: Vec::new() },
            signing,
        };
        keys.save()?;
        tracing::info!(ward = %ward.ward, key_id = %keys.key_id(), valid_from_seq = keys.valid_from_seq(), path = %keys.path.display(), "made the ward's signing key; register it at the town: treem-ward keys show --public");
        Ok(keys)
    }

    /// Checks that the key fits a log ending at `last_seq`.
    pub fn check_against_log(&self, last_seq: u64) -> Result<(), KeyError> {
        if self.valid_from_seq() > last_seq + 1 {
            return Err(KeyError::AheadOfLog { valid_from: self.valid_from_seq(), last_seq });
        }
        Ok(())
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn key_id(&self) -> &str {
        &self.file.active.key_id
    }

    /// The first seq the active key signs.
    pub fn valid_from_seq(&self) -> u64 {
        self.file.active.valid_from_seq
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.file.active.created_at
    }

    pub fn retired(&self) -> &[RetiredKey] {
        &self.file.retired
    }

    pub fn file_path(&self) -> &Path {
        &self.path
    }

    /// Replaces the active key by a new one that signs from `valid_from_seq`
    /// (the log's next seq) and erases the old secret. If the active key
    /// has signed nothing yet (`valid_from_seq` is its own first seq), it is
    /// dropped rather than retired.
    pub fn rotate(&mut self, valid_from_seq: u64) -> Result<(), KeyError> {
        let old = self.file.active.clone();
        if valid_from_seq < old.valid_from_seq {
            return Err(KeyError::RotateBackwards { seq: valid_from_seq, key_id: old.key_id, active_from: old.valid_from_seq });
        }
        let (active, signing) = new_key(valid_from_seq)?;
        let mut file = self.file.clone();
        if valid_from_seq > old.valid_from_seq {
            file.retired.push(RetiredKey {
                key_id: old.key_id.clone(),
                public_key: old.public_key.clone(),
                valid_from_seq: old.valid_from_seq,
                until_seq: valid_from_seq - 1,
                created_at: old.created_at,
                retired_at: Utc::now(),
            });
        }
        file.active = active;
        let before = std::mem::replace(&mut self.file, file);
        if let Err(e) = self.save() {
            self.file = before;
            return Err(e);
        }
        self.signing = signing;
        tracing::info!(ward = %self.ward.ward, old_key_id = %old.key_id, key_id = %self.key_id(), valid_from_seq, "rotated the ward's signing key; register the new one at the town");
        Ok(())
    }

    /// What a town registers: every key, retired ones first, one per line of
    /// `treem-ward keys show --public`.
    pub fn registrations(&self) -> Vec<KeyRegistration> {
        let reg = |key_id: &str, public_key: &str, valid_from_seq: u64| KeyRegistration {
            province: self.ward.province.clone(),
            town: self.ward.town.clone(),
            ward: self.ward.ward.clone(),
            key_id: key_id.into(),
            public_key: public_key.into(),
            valid_from_seq,
        };
        let mut out: Vec<KeyRegistration> = self.file.retired.iter().map(|r| reg(&r.key_id, &r.public_key, r.valid_from_seq)).collect();
        let a = &self.file.active;
        out.push(reg(&a.key_id, &a.public_key, a.valid_from_seq));
        out
    }

    /// Writes the file atomically, readable by the ward's user only.
    fn save(&self) -> Result<(), KeyError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { action, path, source }
        };
        let dir = self.path.parent().expect("the key file is inside a directory");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("create the directory of", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io("restrict the directory of", dir))?;
        let tmp = dir.join(format!(".{KEY_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let text = serde_json::to_vec_pretty(&self.file).expect("the key file serialises");
        {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io("create", &tmp))?;
            f.write_all(&text).and_then(|()| f.sync_all()).map_err(io("write", &tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io("replace", &self.path))?;
        sync_dir(dir).map_err(io("sync the directory of", &self.path))?;
        if let Some(data_dir) = dir.parent() {
            sync_dir(data_dir).map_err(io("sync the directory of", dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use treem_proto::provenance::KeyRing;

    fn ward() -> WardPath {
        WardPath { province: "70".into(), town: "690".into(), ward: "25320".into() }
    }

    #[test]
    fn made_once_private_and_reloaded_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let keys = WardKeys::load_or_create(dir.path(), &ward(), 1).unwrap();
        let again = WardKeys::load_or_create(dir.path(), &ward(), 7).unwrap();
        assert_eq!(again.key_id(), keys.key_id(), "an existing key is kept");
        assert_eq!(again.valid_from_seq(), 1);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&WardKeys::path(dir.path())), 0o600);
        assert_eq!(mode(&dir.path().join(KEYS_DIR)), 0o700);
        let other = WardPath { ward: "25324".into(), ..ward() };
        assert!(matches!(WardKeys::load(dir.path(), &other), Err(KeyError::WrongWard { .. })));
        assert!(matches!(keys.check_against_log(0), Ok(())));
    }

    #[test]
    fn rotation_retires_the_old_key_erases_its_secret_and_lists_both() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = WardKeys::load_or_create(dir.path(), &ward(), 1).unwrap();
        let old = keys.key_id().to_owned();
        let old_secret = keys.file.active.secret_key.clone();
        keys.rotate(11).unwrap();
        assert_ne!(keys.key_id(), old);
        let text = std::fs::read_to_string(WardKeys::path(dir.path())).unwrap();
        assert!(!text.contains(&old_secret), "the old secret is gone from the file");
        let regs = keys.registrations();
        assert_eq!(
            regs.iter().map(|r| (r.key_id.as_str(), r.valid_from_seq)).collect::<Vec<_>>(),
            [(old.as_str(), 1), (keys.key_id(), 11)]
        );
        let ring = KeyRing::new(regs.iter().map(KeyRegistration::key)).unwrap();
        assert_eq!(ring.range(&old), Some((1, Some(10))));
        // Reloaded: the new key signs.
        let loaded = WardKeys::load(dir.path(), &ward()).unwrap().unwrap();
        assert_eq!(loaded.key_id(), keys.key_id());
        assert_eq!(loaded.retired().len(), 1);
        // A key that signed nothing yet is replaced, not retired.
        let mut keys = loaded;
        keys.rotate(11).unwrap();
        assert_eq!(keys.retired().len(), 1);
        assert!(matches!(keys.rotate(5), Err(KeyError::RotateBackwards { .. })));
        assert!(matches!(keys.check_against_log(5), Err(KeyError::AheadOfLog { valid_from: 11, last_seq: 5 })));
    }

    #[test]
    fn a_damaged_file_is_an_error_never_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = WardKeys::load_or_create(dir.path(), &ward(), 1).unwrap();
        let path = keys.file_path().to_path_buf();
        std::fs::write(&path, b"{not json").unwrap();
        let err = WardKeys::load_or_create(dir.path(), &ward(), 1).unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("restore it from the ward's backup"), "{err}");
    }
}
