//! The key vault (kho khoá) of the ward: one random 256-bit key per child,
//! kept **outside** the sled database, so that destroying a key is real.
//!
//! A child's identity is stored in the ward log's `identity` tree only as
//! ciphertext sealed under the key of that case ([`ChildKey::seal`],
//! ChaCha20-Poly1305). The keys live here, one small file per case:
//!
//! ```text
//! <data_dir>/vault/                      0700
//! <data_dir>/vault/<case id, 32 hex>.key 0600, exactly 32 random bytes
//! ```
//!
//! # Why not in sled
//!
//! sled is log-structured: an overwritten or removed value stays in the old
//! segments of `<data_dir>/wardlog/db` until sled happens to reuse that
//! space, which may be never. A key removed from sled would therefore still
//! be on disk, in a file the ward holds. The ciphertext lingering there is
//! harmless once its key is gone; the key lingering is not. So keys are
//! plain files that [`Vault::destroy`] overwrites **in place** with zeros,
//! `fdatasync`s, then unlinks (and fsyncs the directory): on the file
//! systems an officer's laptop runs (ext4, xfs, NTFS, APFS in overwrite
//! mode) the key bytes are gone from every file and from the blocks those
//! files used.
//!
//! What this cannot promise (SECURITY.md, "A child's identity"): an SSD's
//! flash translation layer may keep the old page until it is erased; a
//! copy-on-write file system (btrfs, ZFS) or a snapshot keeps the old
//! block; a backup taken before the withdrawal still holds the key. Keep
//! the ward's data on an encrypted disk (LUKS, BitLocker, FileVault) and
//! its backups encrypted and rotated; the vault makes the *live* data
//! unrecoverable, not the past copies of it.
//!
//! # Invariants and crash behaviour
//!
//! - A key file is written to `<case>.key.tmp` (0600), fsynced, renamed to
//!   `<case>.key`, and the directory fsynced: a crash leaves either no key,
//!   a whole key, or a `.tmp` that [`Vault::sweep_temporaries`] destroys.
//! - A key is created **before** the identity sealed under it is written to
//!   sled, and destroyed **after** the identity's tombstone is durable
//!   (`identity.rs`): a crash in between leaves a key with nothing (or only
//!   a tombstone) to open, which the register's start-up recovery destroys.
//! - Key bytes never enter sled, a log line, an event or an error message.
//!   In memory they are wiped when the [`ChildKey`] is dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::durable::sync_dir;

/// The vault directory inside the data directory.
pub const VAULT_DIR: &str = "vault";

/// Bytes of a per-child key (256 bits).
pub const KEY_LEN: usize = 32;

/// First byte of a sealed identity: format version 1 = ChaCha20-Poly1305,
/// a 96-bit random nonce, then the ciphertext and its 128-bit tag.
pub const SEALED_V1: u8 = 1;

/// Bound into every seal (with the case id) so a ciphertext cannot be moved
/// to another case or mistaken for another kind of data.
const AAD_LABEL: &[u8] = b"treem ward identity v1 ";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot {action} {path}: {source}; check the permissions and free space of the ward's data directory")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the key file {path} is damaged ({detail}); the identity sealed under it cannot be read")]
    Corrupt { path: PathBuf, detail: String },
    #[error("a key for case {case_id} already exists; case ids are random, so this is a bug — nothing was written")]
    Exists { case_id: Uuid },
    #[error("the operating system's random generator failed; nothing was written")]
    Random,
    #[error("the sealed identity of case {case_id} does not open with its key ({detail}): it was altered, or belongs to another case")]
    Unseal { case_id: Uuid, detail: &'static str },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VaultError + 'a {
    move |source| VaultError::Io { action, path: path.to_path_buf(), source }
}

/// The ward's key vault: a directory of one key file per case.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
}

/// One child's key. Its bytes are wiped from memory when it is dropped and
/// never printed (`Debug` shows nothing of them).
pub struct ChildKey {
    case_id: Uuid,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for ChildKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildKey").field("case_id", &self.case_id).finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault of the ward whose data directory is `data_dir`, created
    /// (mode 0700, directory entry fsynced) if it does not exist yet.
    pub fn open(data_dir: &Path) -> Result<Vault, VaultError> {
        let dir = data_dir.join(VAULT_DIR);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io("restrict", &dir))?;
            sync_dir(data_dir).map_err(io("sync", data_dir))?;
        }
        Ok(Vault { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the key of `case_id` lives.
    pub fn key_path(&self, case_id: Uuid) -> PathBuf {
        self.dir.join(format!("{}.key", case_id.simple()))
    }

    /// Makes a new random key for `case_id` and stores it durably.
    pub fn create_key(&self, case_id: Uuid) -> Result<ChildKey, VaultError> {
        let path = self.key_path(case_id);
        if path.exists() {
            return Err(VaultError::Exists { case_id });
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new().fill(&mut bytes[..]).map_err(|_| VaultError::Random)?;
        let tmp = self.dir.join(format!("{}.key.tmp", case_id.simple()));
        {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io("create", &tmp))?;
            f.write_all(&bytes[..]).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("sync", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
        sync_dir(&self.dir).map_err(io("sync", &self.dir))?;
        Ok(ChildKey { case_id, bytes })
    }

    /// The key of `case_id`, or `None` if there is none (never created, or
    /// destroyed).
    pub fn key(&self, case_id: Uuid) -> Result<Option<ChildKey>, VaultError> {
        let path = self.key_path(case_id);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(VaultError::Io { action: "open", path, source: e }),
        };
        let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
        Read::by_ref(&mut f).take(KEY_LEN as u64 + 1).read_to_end(&mut buf).map_err(io("read", &path))?;
        if buf.len() != KEY_LEN {
            return Err(VaultError::Corrupt { path, detail: format!("{} bytes instead of {KEY_LEN}", buf.len()) });
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&buf);
        Ok(Some(ChildKey { case_id, bytes }))
    }

    /// Destroys the key of `case_id`: overwrites the file's bytes in place
    /// with zeros, `fdatasync`s them, unlinks the file and fsyncs the
    /// directory. Returns whether there was a key. Idempotent.
    pub fn destroy(&self, case_id: Uuid) -> Result<bool, VaultError> {
        shred(&self.key_path(case_id), &self.dir)
    }

    /// Case ids of every key held.
    pub fn case_ids(&self) -> Result<Vec<Uuid>, VaultError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))? {
            let entry = entry.map_err(io("list", &self.dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".key")) else { continue };
            if let Ok(id) = Uuid::parse_str(stem) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Destroys `.tmp` files a crash left in the middle of [`Vault::create_key`].
    /// Returns how many.
    pub fn sweep_temporaries(&self) -> Result<usize, VaultError> {
        let mut n = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))? {
            let entry = entry.map_err(io("list", &self.dir))?;
            if entry.file_name().to_str().is_some_and(|name| name.ends_with(".tmp")) && shred(&entry.path(), &self.dir)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Overwrite in place with zeros, fdatasync, unlink, fsync the directory.
fn shred(path: &Path, dir: &Path) -> Result<bool, VaultError> {
    let mut f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(VaultError::Io { action: "open", path: path.to_path_buf(), source: e }),
    };
    let len = f.metadata().map_err(io("read", path))?.len().max(KEY_LEN as u64);
    f.write_all(&vec![0u8; len as usize]).map_err(io("overwrite", path))?;
    f.sync_data().map_err(io("sync", path))?;
    drop(f);
    std::fs::remove_file(path).map_err(io("remove", path))?;
    sync_dir(dir).map_err(io("sync", dir))?;
    Ok(true)
}

fn aad(case_id: Uuid) -> Vec<u8> {
    let mut aad = AAD_LABEL.to_vec();
    aad.extend_from_slice(case_id.as_bytes());
    aad
}

impl ChildKey {
    pub fn case_id(&self) -> Uuid {
        self.case_id
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.bytes[..]).expect("a 32-byte key fits ChaCha20-Poly1305"))
    }

    /// Seals `plaintext`: `[SEALED_V1] ‖ nonce (12) ‖ ciphertext ‖ tag (16)`,
    /// bound to this case id. A key seals once per identity write, so a
    /// random 96-bit nonce never repeats under one key.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(self.case_id)), &mut in_out)
            .map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens what [`ChildKey::seal`] sealed for this case.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let case_id = self.case_id;
        let tag_len = CHACHA20_POLY1305.tag_len();
        if sealed.first() != Some(&SEALED_V1) {
            return Err(VaultError::Unseal { case_id, detail: "unknown format" });
        }
        if sealed.len() < 1 + NONCE_LEN + tag_len {
            return Err(VaultError::Unseal { case_id, detail: "too short" });
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN]).map_err(|_| VaultError::Unseal { case_id, detail: "bad nonce" })?;
        let mut in_out = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let n = self
            .aead()
            .open_in_place(nonce, Aad::from(aad(case_id)), &mut in_out[..])
            .map_err(|_| VaultError::Unseal { case_id, detail: "authentication failed" })?
            .len();
        in_out.truncate(n);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_destroy() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path()).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let key = vault.create_key(a).unwrap();
        assert!(matches!(vault.create_key(a), Err(VaultError::Exists { .. })));
        let sealed = key.seal(b"Nguyen Thi A").unwrap();
        assert_eq!(sealed[0], SEALED_V1);
        assert!(!sealed.windows(12).any(|w| w == b"Nguyen Thi A"));
        let again = vault.key(a).unwrap().unwrap();
        assert_eq!(&again.open(&sealed).unwrap()[..], b"Nguyen Thi A");

        // Bound to the case: another case's key, or a flipped bit, fails.
        let other = vault.create_key(b).unwrap();
        assert!(matches!(other.open(&sealed), Err(VaultError::Unseal { .. })));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(again.open(&flipped), Err(VaultError::Unseal { .. })));

        let mode = std::fs::metadata(vault.key_path(a)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(vault.case_ids().unwrap().len(), 2);
        assert!(vault.destroy(a).unwrap());
        assert!(!vault.destroy(a).unwrap(), "idempotent");
        assert!(vault.key(a).unwrap().is_none());
        assert_eq!(vault.case_ids().unwrap(), vec![b]);
    }

    #[test]
    fn a_damaged_key_file_is_an_error_and_temporaries_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path()).unwrap();
        let id = Uuid::new_v4();
        std::fs::write(vault.key_path(id), b"short").unwrap();
        assert!(matches!(vault.key(id), Err(VaultError::Corrupt { .. })));
        std::fs::write(vault.dir().join("x.key.tmp"), [7u8; 32]).unwrap();
        assert_eq!(vault.sweep_temporaries().unwrap(), 1);
        assert!(!vault.dir().join("x.key.tmp").exists());
    }
}
