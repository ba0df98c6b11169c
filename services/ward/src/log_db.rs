//! One open handle on the sled database under the ward log, and the rule
//! for when it must be replaced.
//!
//! [`LogDb::open`] opens `<data_dir>/wardlog`, checks that it belongs to
//! this ward, makes whatever sled recovered durable (the previous process
//! may have died between an insert and its fsync) and starts the group
//! commit flusher. [`crate::log::WardLog`] holds one `LogDb` at a time.
//!
//! # Storage errors: a handle that met an I/O error is *broken*
//!
//! sled 0.34 keeps the first I/O error it meets (a full disk, EIO) as a
//! global error of the database (`Config::set_global_error`) and fails every
//! later write with it, even once the disk has room again; only opening the
//! directory anew clears it (`PageCache::start` resets it). Checked for real
//! on a full tmpfs: the first flush fails with ENOSPC, every following
//! transaction fails with the same error, reads keep working, and after the
//! space comes back a reopened database holds every event that was durable
//! and accepts writes again.
//!
//! So the first failed write or flush marks the handle broken
//! ([`LogDb::broken`]). The log keeps serving reads from it, refuses writes,
//! and replaces it (drop, which releases sled's file lock, then open) as
//! soon as the disk has room again; see `WardLog`'s "Full disk" section.
//! Reopening loses nothing durable: sled recovers what reached the disk, and
//! an event that was written but never made durable was never called
//! "recorded" (its appender got an error).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, RwLockReadGuard};

use treem_proto::subject::WardPath;

use crate::durable::{SledFiles, available_bytes};
use crate::group_commit::GroupCommit;
use crate::log::{LogError, REOPEN_MIN_FREE_BYTES, WardLog};

/// The `meta` key holding the ward the log belongs to.
pub(crate) const WARD: &str = "ward";

/// Why a handle may no longer be written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    pub(crate) detail: String,
    /// The cause was ENOSPC: reopen once there is room again.
    pub(crate) disk_full: bool,
}

/// An open ward log database: its trees and its flusher.
pub(crate) struct LogDb {
    /// Dropped first: joining the flusher releases its clone of the database.
    pub(crate) commit: GroupCommit,
    pub(crate) log: sled::Tree,
    pub(crate) ids: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) identity: sled::Tree,
    /// Consent withdrawals, append-only, never replicated (`identity.rs`).
    pub(crate) consent: sled::Tree,
    /// The last seq in the log when it was opened (all durable).
    pub(crate) last_seq: u64,
    /// Set by the first failed write; a failed flush counts too (`commit`).
    broken: Mutex<Option<Broken>>,
}

pub(crate) fn ward_key(w: &WardPath) -> String {
    format!("{}.{}.{}", w.province, w.town, w.ward)
}

/// A big-endian `u64` key or value (shorter input is zero-padded).
pub(crate) fn seq_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

impl LogDb {
    /// Opens (or creates) the database in `dir` (`<data_dir>/wardlog`).
    pub(crate) fn open(data_dir: &Path, dir: &Path, ward: &WardPath) -> Result<LogDb, LogError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LogError::Storage { action: "create the directory of", detail: format!("{}: {e}", dir.display()) })?;
        let db = sled::Config::new().path(dir).open().map_err(|e| match e {
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => LogError::Locked { dir: dir.to_path_buf() },
            other => LogError::Storage { action: "open", detail: format!("{}: {other}", dir.display()) },
        })?;
        let storage = |action: &'static str| move |e: sled::Error| LogError::Storage { action, detail: e.to_string() };
        let tree = |name: &str| db.open_tree(name).map_err(storage("open"));
        let (log, ids, meta, identity, consent) = (tree("log")?, tree("ids")?, tree("meta")?, tree("identity")?, tree("consent")?);

        let expected = ward_key(ward);
        match meta.get(WARD).map_err(storage("read"))? {
            Some(found) if found.as_ref() != expected.as_bytes() => {
                return Err(LogError::WrongWard {
                    dir: data_dir.to_path_buf(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                    expected,
                });
            }
            Some(_) => {}
            None => {
                meta.insert(WARD, expected.as_bytes()).map_err(storage("write"))?;
            }
        }

        let last_seq = log.last().map_err(storage("read"))?.map(|(k, _)| seq_of(&k)).unwrap_or(0);
        // Whatever sled recovered may still sit only in the page cache (the
        // previous process died between insert and fsync): make it durable
        // before anyone reads it.
        let files = SledFiles::open(dir)
            .map_err(|e| LogError::Storage { action: "open the files of", detail: format!("{}: {e}", dir.display()) })?;
        files.flush_durably(&db).map_err(|e| {
            if e.kind() == std::io::ErrorKind::StorageFull {
                LogError::NotDurableDiskFull(e.to_string())
            } else {
                LogError::NotDurable(e.to_string())
            }
        })?;
        let commit = GroupCommit::start(format!("ward-log-flusher-{}", ward.ward), db.clone(), files, last_seq)
            .map_err(|e| LogError::Storage { action: "start the flusher of", detail: e.to_string() })?;
        Ok(LogDb { commit, log, ids, meta, identity, consent, last_seq, broken: Mutex::new(None) })
    }

    /// Why this handle may no longer be written to, if it may not.
    pub(crate) fn broken(&self) -> Option<Broken> {
        if let Some(b) = self.broken.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(b);
        }
        self.commit.failure().map(|f| Broken { detail: f.detail, disk_full: f.disk_full })
    }

    /// Notes a failed write. Returns whether the cause was a full disk.
    pub(crate) fn fail(&self, e: &sled::Error) -> bool {
        let disk_full = matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull);
        if matches!(e, sled::Error::Io(_)) {
            let mut broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
            if broken.is_none() {
                tracing::error!(error = %e, disk_full, "ward log write failed; writes are refused until the log is reopened");
                *broken = Some(Broken { detail: e.to_string(), disk_full });
            }
        }
        disk_full
    }
}

/// How [`WardLog`] uses, checks and replaces its handle. Lock order:
/// `next_seq`, then `db`; no guard is held across an `.await`.
impl WardLog {
    pub(crate) fn lock_next(&self) -> MutexGuard<'_, u64> {
        self.inner.next_seq.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn read_guard(&self) -> RwLockReadGuard<'_, Option<LogDb>> {
        self.inner.db.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn closed(&self) -> LogError {
        LogError::Storage { action: "reopen", detail: format!("{} is closed after a storage error", self.inner.dir.display()) }
    }

    /// Runs `f` on the open database (a broken one serves reads), reopening
    /// it first if a previous reopen failed.
    pub(crate) fn with_db<R>(&self, f: impl FnOnce(&LogDb) -> Result<R, LogError>) -> Result<R, LogError> {
        {
            let guard = self.read_guard();
            if let Some(db) = guard.as_ref() {
                return f(db);
            }
        }
        let mut next = self.lock_next();
        drop(self.writable(&mut next)?);
        drop(next);
        let guard = self.read_guard();
        f(guard.as_ref().ok_or_else(|| self.closed())?)
    }

    /// Runs `f` on a database that may be written to (reopening a broken
    /// one when it can), for writes outside [`WardLog::append`].
    pub(crate) fn with_writable_db<R>(&self, f: impl FnOnce(&LogDb) -> Result<R, LogError>) -> Result<R, LogError> {
        let mut next = self.lock_next();
        let guard = self.writable(&mut next)?;
        drop(next);
        f(guard.as_ref().ok_or_else(|| self.closed())?)
    }

    /// A read guard on a database that is not broken, reopening the
    /// directory first if the handle is broken (or missing) and the disk
    /// has room. Called with `next_seq` locked, which a reopen resets.
    pub(crate) fn writable(&self, next: &mut u64) -> Result<RwLockReadGuard<'_, Option<LogDb>>, LogError> {
        {
            let guard = self.read_guard();
            if guard.as_ref().is_some_and(|db| db.broken().is_none()) {
                return Ok(guard);
            }
        }
        self.reopen(next)?;
        Ok(self.read_guard())
    }

    /// Replaces a broken (or missing) handle by a freshly opened one, if the
    /// disk has room; otherwise refuses with [`LogError::DiskFull`].
    fn reopen(&self, next: &mut u64) -> Result<(), LogError> {
        let inner = &self.inner;
        let mut guard = inner.db.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let broken = match guard.as_ref() {
            Some(db) => match db.broken() {
                None => return Ok(()), // another writer reopened it meanwhile
                Some(b) => Some(b),
            },
            None => None,
        };
        let reserve = inner.min_free_bytes.load(Ordering::Relaxed);
        let available = available_bytes(&inner.dir)
            .map_err(|e| LogError::Storage { action: "check the free space of", detail: format!("{}: {e}", inner.dir.display()) })?;
        let disk_full = broken.as_ref().is_none_or(|b| b.disk_full);
        if disk_full && available < reserve.saturating_add(REOPEN_MIN_FREE_BYTES) {
            return Err(LogError::DiskFull { dir: inner.dir.clone(), available, reserve });
        }
        if let Some(old) = guard.take() {
            inner.last_durable.store(old.commit.durable_seq(), Ordering::SeqCst);
            // Joins the flusher and releases sled's lock on the directory.
            drop(old);
        }
        let db = LogDb::open(&inner.data_dir, &inner.dir, &inner.ward).inspect_err(|e| {
            tracing::error!(ward = %inner.ward.ward, error = %e, "cannot reopen the ward log; will try again at the next write");
        })?;
        tracing::warn!(
            ward = %inner.ward.ward,
            last_seq = db.last_seq,
            available_bytes = available,
            after = %broken.map(|b| b.detail).unwrap_or_else(|| "a failed reopen".into()),
            "ward log reopened after a storage error; recording again"
        );
        *next = db.last_seq + 1;
        inner.last_durable.store(db.last_seq, Ordering::SeqCst);
        *guard = Some(db);
        Ok(())
    }

    /// Refuses a write of `bytes` that would leave less than the reserve.
    pub(crate) fn check_space(&self, bytes: u64) -> Result<(), LogError> {
        let reserve = self.inner.min_free_bytes.load(Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        let dir = &self.inner.dir;
        let available = available_bytes(dir)
            .map_err(|e| LogError::Storage { action: "check the free space of", detail: format!("{}: {e}", dir.display()) })?;
        if available < reserve.saturating_add(bytes) {
            tracing::warn!(ward = %self.inner.ward.ward, available_bytes = available, reserve_bytes = reserve, "disk full: refusing to record");
            return Err(LogError::DiskFull { dir: dir.clone(), available, reserve });
        }
        Ok(())
    }

    /// Maps a failed sled write, marking the handle broken on an I/O error.
    pub(crate) fn write_failed(&self, db: &LogDb, action: &'static str, e: sled::Error) -> LogError {
        if db.fail(&e) {
            let dir = self.inner.dir.clone();
            let available = available_bytes(&dir).unwrap_or(0);
            LogError::DiskFull { dir, available, reserve: self.inner.min_free_bytes.load(Ordering::Relaxed) }
        } else {
            LogError::Storage { action, detail: e.to_string() }
        }
    }
}
