//! The nkey seeds of the NATS identities, one file per key, kept by the
//! operator's `treem-nats-auth` and never committed.
//!
//! # On disk
//!
//! ```text
//! <out>/seeds/                      mode 0700
//!   <identity>.nk                   mode 0600: the seed (`SU…`), one line
//!   <identity>.next.nk              mode 0600: during a rotation, the new key
//! ```
//!
//! The seed is the secret: whoever holds it logs in as the identity. A seed
//! file is written to `<name>.tmp` (created 0600, never wider), fsync'd,
//! renamed into place, and the directory fsync'd, so a crash leaves either
//! the old file or the new one. Nothing here prints or logs a seed; the
//! public key (`U…`) may be shown anywhere.
//!
//! # Rotation and revocation
//!
//! - [`KeyDir::begin_rotation`] adds `<identity>.next.nk`; the server
//!   configuration then accepts both keys, so the service can switch to the
//!   new seed file whenever it restarts.
//! - [`KeyDir::finish_rotation`] makes the next key the only one (rename
//!   over the old file): the old key stops working at the next reload.
//! - [`KeyDir::revoke`] throws every key of the identity away and makes a
//!   new one: a stolen seed stops working at the next reload, and the
//!   identity's service needs the new seed file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nkeys::{KeyPair, KeyPairType};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot use key directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot read seed file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write seed file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a NATS user seed (a line starting with SU): {detail}; delete it and run `treem-nats-auth generate` again")]
    Invalid { path: PathBuf, detail: String },
    #[error("{0:?} is not an identity name (letters, digits and '-' only)")]
    BadName(String),
    #[error("{identity} has no rotation under way (no {path}); start one with `treem-nats-auth rotate {identity}`")]
    NoRotation { identity: String, path: PathBuf },
}

/// The seeds directory of a generator output directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

/// The keys of one identity: the current one and, during a rotation, the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub current: Option<String>,
    pub next: Option<String>,
}

impl Keys {
    /// Every public key that may log in, current first.
    pub fn public_keys(&self) -> Vec<String> {
        self.current.iter().chain(self.next.iter()).cloned().collect()
    }
}

impl KeyDir {
    /// `<out>/seeds`, created with mode 0700 if missing (and narrowed to 0700
    /// if it exists wider).
    pub fn open(out: &Path) -> Result<KeyDir, KeyError> {
        let dir = out.join("seeds");
        let err = |source| KeyError::Dir { path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(err)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        Ok(KeyDir { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the current seed of `identity` lives.
    pub fn seed_file(&self, identity: &str) -> PathBuf {
        self.dir.join(format!("{identity}.nk"))
    }

    /// Where the next seed of `identity` lives during a rotation.
    pub fn next_seed_file(&self, identity: &str) -> PathBuf {
        self.dir.join(format!("{identity}.next.nk"))
    }

    /// The public keys of `identity` (none if it has no seed file yet).
    pub fn keys(&self, identity: &str) -> Result<Keys, KeyError> {
        check_name(identity)?;
        Ok(Keys { current: public_key_of(&self.seed_file(identity))?, next: public_key_of(&self.next_seed_file(identity))? })
    }

    /// Makes a key for `identity` unless it has one. Returns whether it made one.
    pub fn ensure(&self, identity: &str) -> Result<bool, KeyError> {
        check_name(identity)?;
        if self.keys(identity)?.current.is_some() {
            return Ok(false);
        }
        self.write_new(&self.seed_file(identity))?;
        Ok(true)
    }

    /// Adds a next key (keeps it if a rotation is already under way).
    /// Returns its seed file.
    pub fn begin_rotation(&self, identity: &str) -> Result<PathBuf, KeyError> {
        check_name(identity)?;
        let next = self.next_seed_file(identity);
        if public_key_of(&next)?.is_none() {
            self.write_new(&next)?;
        }
        Ok(next)
    }

    /// The next key becomes the only key.
    pub fn finish_rotation(&self, identity: &str) -> Result<PathBuf, KeyError> {
        check_name(identity)?;
        let next = self.next_seed_file(identity);
        if public_key_of(&next)?.is_none() {
            return Err(KeyError::NoRotation { identity: identity.into(), path: next });
        }
        let current = self.seed_file(identity);
        std::fs::rename(&next, &current).map_err(|source| KeyError::Write { path: current.clone(), source })?;
        self.sync_dir()?;
        Ok(current)
    }

    /// Every key of `identity` replaced by a new one.
    pub fn revoke(&self, identity: &str) -> Result<PathBuf, KeyError> {
        check_name(identity)?;
        let next = self.next_seed_file(identity);
        match std::fs::remove_file(&next) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KeyError::Write { path: next, source }),
        }
        let current = self.seed_file(identity);
        self.write_new(&current)?;
        Ok(current)
    }

    /// Names of the identities that have a seed file here.
    pub fn identities(&self) -> Result<Vec<String>, KeyError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|source| KeyError::Dir { path: self.dir.clone(), source })?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter_map(|n| n.strip_suffix(".nk").map(|n| n.trim_end_matches(".next").to_owned()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Writes a fresh user seed to `path` (0600, tmp + rename + fsync).
    fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let seed = KeyPair::new_user().seed().map_err(|e| KeyError::Invalid { path: path.into(), detail: e.to_string() })?;
        let tmp = path.with_extension("tmp");
        let werr = |source| KeyError::Write { path: path.into(), source };
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(werr)?;
        f.write_all(format!("{seed}\n").as_bytes()).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(werr)?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), KeyError> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|source| KeyError::Dir { path: self.dir.clone(), source })
    }
}

fn check_name(identity: &str) -> Result<(), KeyError> {
    if identity.is_empty() || !identity.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(KeyError::BadName(identity.into()));
    }
    Ok(())
}

/// Reads a seed file and returns the user key pair it holds.
pub fn read_user_seed(path: &Path) -> Result<(String, KeyPair), KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
    let seed = text.trim().to_owned();
    let kp = KeyPair::from_seed(&seed).map_err(|e| KeyError::Invalid { path: path.into(), detail: e.to_string() })?;
    if kp.key_pair_type() != KeyPairType::User {
        return Err(KeyError::Invalid { path: path.into(), detail: "it is not a user key".into() });
    }
    Ok((seed, kp))
}

/// The public key of the seed in `path`, or `None` if there is no such file.
fn public_key_of(path: &Path) -> Result<Option<String>, KeyError> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(read_user_seed(path)?.1.public_key()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn ensure_rotate_finish_revoke() {
        let out = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(out.path()).unwrap();
        assert_eq!(mode(keys.path()), 0o700);
        let id = "ward-70-690-25320";
        assert!(keys.ensure(id).unwrap());
        assert!(!keys.ensure(id).unwrap(), "an existing key is kept");
        assert_eq!(mode(&keys.seed_file(id)), 0o600);
        let first = keys.keys(id).unwrap();
        let k1 = first.current.clone().unwrap();
        assert!(k1.starts_with('U') && first.next.is_none());
        let text = std::fs::read_to_string(keys.seed_file(id)).unwrap();
        assert!(text.starts_with("SU") && !text.contains(&k1));

        keys.begin_rotation(id).unwrap();
        let both = keys.keys(id).unwrap();
        assert_eq!(both.current.as_deref(), Some(k1.as_str()));
        let k2 = both.next.clone().unwrap();
        assert_eq!(both.public_keys(), [k1.clone(), k2.clone()]);
        keys.begin_rotation(id).unwrap();
        assert_eq!(keys.keys(id).unwrap(), both, "a second `rotate` keeps the next key");
        keys.finish_rotation(id).unwrap();
        assert_eq!(keys.keys(id).unwrap(), Keys { current: Some(k2.clone()), next: None });
        assert!(matches!(keys.finish_rotation(id), Err(KeyError::NoRotation { .. })));

        keys.begin_rotation(id).unwrap();
        keys.revoke(id).unwrap();
        let after = keys.keys(id).unwrap();
        assert!(after.next.is_none() && after.current.is_some() && after.current != Some(k2));
        assert_eq!(mode(&keys.seed_file(id)), 0o600);
        assert_eq!(keys.identities().unwrap(), [id]);
    }

    #[test]
    fn bad_names_and_bad_seeds_are_refused() {
        let out = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(out.path()).unwrap();
        assert!(matches!(keys.ensure("../etc/passwd"), Err(KeyError::BadName(_))));
        std::fs::write(keys.seed_file("town-70-690"), "not a seed\n").unwrap();
        assert!(matches!(keys.keys("town-70-690"), Err(KeyError::Invalid { .. })));
        let account = KeyPair::new_account().seed().unwrap();
        std::fs::write(keys.seed_file("town-70-690"), account).unwrap();
        let e = keys.keys("town-70-690").unwrap_err();
        assert!(e.to_string().contains("not a user key"), "{e}");
    }
}
