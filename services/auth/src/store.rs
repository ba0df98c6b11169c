//! The token store: `<data_dir>/auth/tokens.json`, one JSON document that
//! several processes share — the serving town or province reads it, the
//! `token create|revoke` command (another process, possibly while the
//! service runs) rewrites it.
//!
//! Layout:
//!
//! ```json
//! {"version": 1, "tokens": [
//!   {"id": "1f0c…", "name": "Chị Lan, phòng LĐ-TB&XH", "role": "officer",
//!    "sha256": "<64 hex digits: SHA-256 of the secret>",
//!    "created_at": "2025-05-01T08:00:00Z", "revoked_at": null}
//! ]}
//! ```
//!
//! Why a file and not the service's sled tree: sled allows one process per
//! database, and the serving process holds it, so a command run beside it
//! could not write a token. The other way round — an admin HTTP endpoint
//! that creates tokens — needs a first admin token to exist, and puts the
//! power to mint credentials on the network. A small file that both read
//! and that writers replace atomically needs neither.
//!
//! Writers (any process) take an exclusive advisory lock on
//! `tokens.lock`, read the current file, change it, write
//! `tokens.json.tmp`, fsync it, rename it over `tokens.json` and fsync the
//! directory. A crash at any point leaves the old file or the new one
//! whole (at worst a stale `.tmp`, overwritten by the next writer); a
//! revocation that returned has reached the disk. Readers take no lock:
//! the rename is atomic. The service checks the file's metadata (inode,
//! size, modification and change times) on every request and reads it
//! again when any of them moved, so a revocation applies to the very next
//! request.
//!
//! Records are never deleted: a revoked token stays listed with
//! `revoked_at`, so audit lines that name its id can still be attributed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::role::Role;
use crate::token::{self, Token, TokenError};

const FILE: &str = "tokens.json";
const LOCK: &str = "tokens.lock";
const VERSION: u32 = 1;
/// Longest token name, in characters.
pub const NAME_MAX: usize = 80;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source} (check that the directory exists and belongs to the service's user)")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid token file ({detail}); restore it from a backup, or move it away and create the tokens again")]
    Corrupt { path: PathBuf, detail: String },
    #[error("no token with id {0:?}; see `token list`")]
    NotFound(String),
    #[error("a token with id {0:?} exists already; generate a new token")]
    IdTaken(String),
    #[error("token name {0:?} is not valid: give 1–{NAME_MAX} characters without control characters, e.g. \"Lan, town office\"")]
    BadName(String),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// One token as stored: never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub id: String,
    /// Who holds it (a person or a dashboard); shown in lists and the audit log.
    pub name: String,
    pub role: Role,
    /// SHA-256 of the 32 secret bytes, lowercase hex.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: u32,
    tokens: Vec<TokenRecord>,
}

/// What [`TokenStore::verify`] found for a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The secret matches a token that is not revoked.
    Active(TokenRecord),
    /// The secret matches, but the token was revoked.
    Revoked(TokenRecord),
    /// No token has that id, or the secret does not match it.
    Unknown,
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

#[derive(Default)]
struct Cache {
    /// `None`: the file did not exist when last looked at.
    stamp: Option<Stamp>,
    loaded: bool,
    by_id: HashMap<String, (TokenRecord, [u8; 32])>,
}

pub struct TokenStore {
    dir: PathBuf,
    cache: Mutex<Cache>,
}

impl TokenStore {
    /// Opens (creating `dir`, mode 0700, if needed) and reads the store.
    pub fn open(dir: &Path) -> Result<TokenStore, StoreError> {
        create_private_dir(dir)?;
        let store = TokenStore { dir: dir.to_path_buf(), cache: Mutex::new(Cache::default()) };
        store.refresh()?;
        Ok(store)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// A new random token named `name` with `role`; the only time its
    /// secret is available.
    pub fn create(&self, name: &str, role: Role) -> Result<(Token, TokenRecord), StoreError> {
        let token = Token::generate()?;
        let record = self.add(&token, name, role)?;
        Ok((token, record))
    }

    /// Stores an existing token (its hash) under `name` with `role`: to
    /// give one holder the same token at several services, e.g. a
    /// dashboard that reads both the town and the province. Generate it
    /// with [`Token::generate`]; refused if its id is taken here.
    pub fn add(&self, token: &Token, name: &str, role: Role) -> Result<TokenRecord, StoreError> {
        let name = check_name(name)?;
        let record = TokenRecord {
            id: token.id().to_owned(),
            name,
            role,
            sha256: token::to_hex(&token.secret_hash()),
            created_at: Utc::now(),
            revoked_at: None,
        };
        self.modify(|tokens| {
            if tokens.iter().any(|t| t.id == record.id) {
                return Err(StoreError::IdTaken(record.id.clone()));
            }
            tokens.push(record.clone());
            Ok(())
        })?;
        tracing::info!(token_id = %record.id, token_name = %record.name, role = %record.role, "token created");
        Ok(record)
    }

    /// Revokes token `id` (idempotent: a revoked token keeps its first
    /// `revoked_at`). Returns its record.
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, StoreError> {
        let record = self.modify(|tokens| {
            let t = tokens.iter_mut().find(|t| t.id == id).ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            if t.revoked_at.is_none() {
                t.revoked_at = Some(Utc::now());
            }
            Ok(t.clone())
        })?;
        tracing::info!(token_id = %record.id, token_name = %record.name, "token revoked");
        Ok(record)
    }

    /// Every token, revoked ones included, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(read(&self.path())?.tokens)
    }

    /// Whether any token is usable (to warn at start when none is).
    pub fn has_active(&self) -> Result<bool, StoreError> {
        self.refresh()?;
        Ok(self.cache.lock().expect("token cache lock").by_id.values().any(|(r, _)| !r.is_revoked()))
    }

    /// Checks a presented token against the store as it is on disk now.
    /// Compares hashes in constant time, and compares against a dummy hash
    /// when the id is unknown, so the time taken does not tell whether an
    /// id exists.
    pub fn verify(&self, token: &Token) -> Result<Verified, StoreError> {
        self.refresh()?;
        let presented = token.secret_hash();
        let cache = self.cache.lock().expect("token cache lock");
        let (record, stored) = match cache.by_id.get(token.id()) {
            Some((r, h)) => (Some(r), *h),
            None => (None, [0u8; 32]),
        };
        let equal: bool = presented.ct_eq(&stored).into();
        Ok(match record {
            Some(r) if equal && r.is_revoked() => Verified::Revoked(r.clone()),
            Some(r) if equal => Verified::Active(r.clone()),
            _ => Verified::Unknown,
        })
    }

    /// Reads the file again if it changed since it was last read.
    fn refresh(&self) -> Result<(), StoreError> {
        let path = self.path();
        let stamp = stamp(&path)?;
        let mut cache = self.cache.lock().expect("token cache lock");
        if cache.loaded && cache.stamp == stamp {
            return Ok(());
        }
        let doc = read(&path)?;
        let mut by_id = HashMap::with_capacity(doc.tokens.len());
        for t in doc.tokens {
            let hash = token::from_hex_32(&t.sha256)
                .ok_or_else(|| StoreError::Corrupt { path: path.clone(), detail: format!("token {} has no valid sha256", t.id) })?;
            by_id.insert(t.id.clone(), (t, hash));
        }
        *cache = Cache { stamp, loaded: true, by_id };
        Ok(())
    }

    /// Runs `change` on the current tokens under the writers' lock and
    /// replaces the file with the result.
    fn modify<T>(&self, change: impl FnOnce(&mut Vec<TokenRecord>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let lock_path = self.dir.join(LOCK);
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&lock_path).map_err(|source| StoreError::Io {
                action: "open",
                path: lock_path.clone(),
                source,
            })?;
        fs2::FileExt::lock_exclusive(&lock).map_err(|source| StoreError::Io { action: "lock", path: lock_path.clone(), source })?;
        let path = self.path();
        let mut doc = read(&path)?;
        let out = change(&mut doc.tokens)?;
        let mut text = serde_json::to_vec_pretty(&doc).expect("token records serialise");
        text.push(b'\n');
        write_durably(&self.dir, &path, &text)?;
        // Closing the file releases the lock; explicit for the reader.
        drop(lock);
        self.refresh()?;
        Ok(out)
    }
}

fn check_name(name: &str) -> Result<String, StoreError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > NAME_MAX || trimmed.chars().any(char::is_control) {
        return Err(StoreError::BadName(name.to_owned()));
    }
    Ok(trimmed.to_owned())
}

fn stamp(path: &Path) -> Result<Option<Stamp>, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io { action: "look at", path: path.to_path_buf(), source }),
    }
}

fn read(path: &Path) -> Result<Document, StoreError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Document { version: VERSION, tokens: Vec::new() }),
        Err(source) => return Err(StoreError::Io { action: "read", path: path.to_path_buf(), source }),
    };
    let doc: Document =
        serde_json::from_slice(&text).map_err(|e| StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })?;
    if doc.version != VERSION {
        return Err(StoreError::Corrupt { path: path.to_path_buf(), detail: format!("version {} is not {VERSION}", doc.version) });
    }
    Ok(doc)
}

/// `dir` with mode 0700, its parents as the umask says; fsyncs `dir`'s parent
/// when it was created.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io { action: "create", path: parent.to_path_buf(), source })?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(source) => return Err(StoreError::Io { action: "create", path: dir.to_path_buf(), source }),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| StoreError::Io { action: "fsync", path: dir.to_path_buf(), source })
}

/// Write to a temporary file, fsync, rename over `path`, fsync the directory.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    fn io<'a>(action: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
        move |source| StoreError::Io { action, path: p.to_path_buf(), source }
    }
    let mut f = OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("replace", path))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(&dir.path().join("auth")).unwrap();
        assert!(!store.has_active().unwrap());
        let (token, record) = store.create("Lan, town office", Role::Officer).unwrap();
        assert_eq!(record.id, token.id());
        assert_eq!(store.verify(&token).unwrap(), Verified::Active(record.clone()));
        assert!(store.has_active().unwrap());

        // The file holds the hash, never the secret.
        let text = std::fs::read_to_string(store.path()).unwrap();
        let exposed = token.expose();
        assert!(!text.contains(&exposed[23..]), "{text}");
        assert!(text.contains(&token::to_hex(&token.secret_hash())));
        let mode = std::fs::metadata(store.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::metadata(dir.path().join("auth")).unwrap().mode() & 0o777, 0o700);

        // Right id, wrong secret; unknown id.
        let mut forged = exposed.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'Q' } else { 'A' });
        if let Ok(forged) = Token::parse(&forged) {
            assert_eq!(store.verify(&forged).unwrap(), Verified::Unknown);
        }
        assert_eq!(store.verify(&Token::generate().unwrap()).unwrap(), Verified::Unknown);

        let revoked = store.revoke(token.id()).unwrap();
        assert!(revoked.is_revoked());
        assert_eq!(store.verify(&token).unwrap(), Verified::Revoked(revoked.clone()));
        assert_eq!(store.revoke(token.id()).unwrap().revoked_at, revoked.revoked_at, "revoking twice keeps the first time");
        assert!(matches!(store.revoke("0000000000000000"), Err(StoreError::NotFound(_))));
        assert_eq!(store.list().unwrap(), vec![revoked]);
        assert!(!store.has_active().unwrap());
    }

    #[test]
    fn another_handle_sees_changes_at_once() {
        // Two handles on one directory stand for the service and the CLI.
        let dir = tempfile::tempdir().unwrap();
        let service = TokenStore::open(dir.path()).unwrap();
        let cli = TokenStore::open(dir.path()).unwrap();
        let (token, _) = cli.create("dashboard", Role::Viewer).unwrap();
        assert!(matches!(service.verify(&token).unwrap(), Verified::Active(_)));
        for _ in 0..20 {
            cli.create("another", Role::Viewer).unwrap();
        }
        cli.revoke(token.id()).unwrap();
        assert!(matches!(service.verify(&token).unwrap(), Verified::Revoked(_)));
        assert_eq!(service.list().unwrap().len(), 21);
    }

    #[test]
    fn the_same_token_at_two_services_and_id_clash() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (town, province) = (TokenStore::open(a.path()).unwrap(), TokenStore::open(b.path()).unwrap());
        let token = Token::generate().unwrap();
        town.add(&token, "dashboard", Role::Viewer).unwrap();
        province.add(&token, "dashboard", Role::Viewer).unwrap();
        assert!(matches!(province.verify(&token).unwrap(), Verified::Active(_)));
        assert!(matches!(province.add(&token, "again", Role::Admin), Err(StoreError::IdTaken(_))));
    }

    #[test]
    fn names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        for bad in ["", "   ", "a\nb", &"x".repeat(NAME_MAX + 1)] {
            assert!(matches!(store.create(bad, Role::Viewer), Err(StoreError::BadName(_))), "{bad:?}");
        }
        assert_eq!(store.create("  Lan  ", Role::Viewer).unwrap().1.name, "Lan");
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let err = TokenStore::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("backup"), "{err}");
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let store = TokenStore::open(&path).unwrap();
                    for j in 0..10 {
                        store.create(&format!("writer {i} token {j}"), Role::Viewer).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(TokenStore::open(dir.path()).unwrap().list().unwrap().len(), 40);
    }
}
