//! One open handle on the sled database under the ward log, the order in
//! which its writers take and insert seqs, and the rule for when it must be
//! replaced.
//!
//! [`LogDb::open`] opens `<data_dir>/wardlog`, checks that it belongs to
//! this ward, puts back the `ids` entries of the last events if a crash fell
//! between an event's two inserts (`repair_ids`; see "Crash behaviour" in
//! `log.rs`), makes whatever sled recovered durable (the previous process
//! may have died between an insert and its fsync) and starts the group
//! commit. [`crate::log::WardLog`] holds one `LogDb` at a time.
//!
//! # Seqs: taken in order, signed in parallel, inserted in order
//!
//! A writer takes its seqs (and chains its events) under the handle's
//! [`Sequence`] lock, signs without any lock, then waits for its turn
//! ([`Slot::wait_turn`]: every seq before its own written) and inserts. No
//! `.await` lies between taking seqs and inserting, so the writers before
//! always get there: the wait is a plain condition variable, and lasts no
//! longer than their signing. When an insert fails (or a writer panics
//! before its insert), the `Sequence` starts a new *epoch*: the seqs taken
//! after it are void, their writers get an error without writing anything,
//! and the next writer takes the failed seq again, chained to the last event
//! written. So the log never has a gap, and the chain never names an event
//! that is not there.
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
use std::sync::{Condvar, Mutex, MutexGuard, RwLockReadGuard};

use treem_proto::Envelope;
use treem_proto::provenance::EventHash;
use treem_proto::subject::WardPath;

use crate::durable::{SledFiles, available_bytes};
use crate::group_commit::GroupCommit;
use crate::log::{LogError, REOPEN_MIN_FREE_BYTES, WardLog};

/// The `meta` key holding the ward the log belongs to.
pub(crate) const WARD: &str = "ward";

/// sled's page cache for the ward log. sled's default is 1 GiB, which a
/// ward filled with its whole log as it replicated a backlog (226 MB of
/// memory after 200,000 events, BENCHMARKS.md): on a ward laptop the
/// log's recent pages are what is read (appends, the replicator's next
/// events); older pages come back from the OS's file cache when needed.
pub(crate) const CACHE_BYTES: u64 = 16 << 20;

/// Why a handle may no longer be written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    pub(crate) detail: String,
    /// The cause was ENOSPC: reopen once there is room again.
    pub(crate) disk_full: bool,
}

/// Where the seqs of a handle stand. Writers take seqs, sign without a lock
/// and insert in seq order (see `WardLog::write`):
/// `written ≤ reserved`, and the seqs in between are being signed.
#[derive(Debug)]
pub(crate) struct Sequence {
    /// Every seq ≤ this is in the database (inserted, not always durable yet).
    pub(crate) written: u64,
    /// Every seq ≤ this was taken by a writer; the next writer takes the next.
    pub(crate) reserved: u64,
    /// The seq and hash of the last event taken: the next event's `prev`.
    /// `None` when it must be read back from the last stored event (after
    /// open, and after a failed write).
    pub(crate) tip: Option<(u64, EventHash)>,
    /// Bumped by a failed (or abandoned) write: the seqs taken after it, in
    /// an older epoch, are void and taken again.
    pub(crate) epoch: u64,
    /// The last seq and hash of the writer inserting now, if one is.
    inserting: Option<(u64, Option<EventHash>)>,
}

impl Sequence {
    /// Voids every seq taken after those written or being inserted: their
    /// writers write nothing, and the next writer takes them again.
    fn void(&mut self) {
        self.epoch += 1;
        (self.reserved, self.tip) = match self.inserting {
            Some((last, hash)) => (last, hash.map(|h| (last, h))),
            None => (self.written, None),
        };
    }
}

/// The seqs one writer took, from `first` to `last`, and the hash of its
/// last event. Dropping it before [`Slot::finish`] (a panic while signing)
/// voids it and the seqs after it, so no writer waits for ever.
pub(crate) struct Slot<'a> {
    pub(crate) db: &'a LogDb,
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) epoch: u64,
    /// The hash of the last event.
    pub(crate) hash: Option<EventHash>,
    pub(crate) done: bool,
}

impl Slot<'_> {
    /// Waits until every seq before `first` is written (the writers before
    /// are signing or inserting: no `.await` lies between their taking the
    /// seqs and their insert, so they always get there). `Err` when a write
    /// before failed: the slot is void.
    pub(crate) fn wait_turn(&mut self) -> Result<(), ()> {
        let mut sq = self.db.sequence();
        loop {
            if sq.epoch != self.epoch {
                self.done = true;
                return Err(());
            }
            if sq.written + 1 == self.first {
                sq.inserting = Some((self.last, self.hash));
                return Ok(());
            }
            sq = self.db.turn.wait(sq).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Notes the outcome of the insert and lets the next writer go.
    pub(crate) fn finish(&mut self, written: bool) {
        self.done = true;
        let mut sq = self.db.sequence();
        sq.inserting = None;
        if written {
            sq.written = self.last;
            sq.reserved = sq.reserved.max(self.last);
            self.db.commit.written(self.last);
        } else if sq.epoch == self.epoch {
            sq.void();
        }
        drop(sq);
        self.db.turn.notify_all();
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut sq = self.db.sequence();
            if sq.inserting.is_some_and(|(last, _)| last == self.last) {
                sq.inserting = None;
            }
            if sq.epoch == self.epoch {
                sq.void();
            }
            drop(sq);
            self.db.turn.notify_all();
        }
    }
}

/// An open ward log database: its trees and its group commit.
pub(crate) struct LogDb {
    /// Dropped first: its last flush runs before the trees go, and it
    /// releases its clone of the database.
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
    /// The seqs of this handle; `turn` wakes the writers waiting to insert.
    seq: Mutex<Sequence>,
    turn: Condvar,
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

/// Puts back the `ids` entries of the last events that a crash lost: a
/// single event is written as two plain inserts, `log` then `ids` (see
/// "Crash behaviour" in `log.rs`), and sled recovers a prefix of its writes,
/// so only the last events can lack theirs. Walks back from the end of the
/// log to the first event whose entry is there. The flush at open makes the
/// repair durable.
fn repair_ids(log: &sled::Tree, ids: &sled::Tree) -> Result<(), LogError> {
    let storage = |action: &'static str| move |e: sled::Error| LogError::Storage { action, detail: e.to_string() };
    for item in log.iter().rev() {
        let (key, bytes) = item.map_err(storage("read"))?;
        let seq = seq_of(&key);
        let id = match Envelope::decode(&bytes) {
            Ok(env) => env.id,
            Err(e) => {
                tracing::warn!(seq, error = %e, "cannot read the last event of the ward log to check its id entry");
                return Ok(());
            }
        };
        if ids.get(id.as_bytes()).map_err(storage("read"))?.is_some_and(|s| seq_of(&s) == seq) {
            return Ok(());
        }
        ids.insert(&id.as_bytes()[..], &key[..]).map_err(storage("write"))?;
        tracing::warn!(seq, %id, "restored the id entry of an event written just before a crash");
    }
    Ok(())
}

impl LogDb {
    /// Opens (or creates) the database in `dir` (`<data_dir>/wardlog`).
    pub(crate) fn open(data_dir: &Path, dir: &Path, ward: &WardPath) -> Result<LogDb, LogError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LogError::Storage { action: "create the directory of", detail: format!("{}: {e}", dir.display()) })?;
        let db = sled::Config::new().path(dir).cache_capacity(CACHE_BYTES).open().map_err(|e| match e {
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
        repair_ids(&log, &ids)?;
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
        let commit = GroupCommit::start(db.clone(), files, last_seq);
        Ok(LogDb {
            commit,
            log,
            ids,
            meta,
            identity,
            consent,
            last_seq,
            broken: Mutex::new(None),
            seq: Mutex::new(Sequence { written: last_seq, reserved: last_seq, tip: None, epoch: 0, inserting: None }),
            turn: Condvar::new(),
        })
    }

    /// The seqs of this handle.
    pub(crate) fn sequence(&self) -> MutexGuard<'_, Sequence> {
        self.seq.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
/// `reopening`, then `db`; no guard is held across an `.await`.
impl WardLog {
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
        drop(self.writable()?);
        let guard = self.read_guard();
        f(guard.as_ref().ok_or_else(|| self.closed())?)
    }

    /// Runs `f` on a database that may be written to (reopening a broken
    /// one when it can), for writes outside [`WardLog::append`].
    pub(crate) fn with_writable_db<R>(&self, f: impl FnOnce(&LogDb) -> Result<R, LogError>) -> Result<R, LogError> {
        let guard = self.writable()?;
        f(guard.as_ref().ok_or_else(|| self.closed())?)
    }

    /// A read guard on a database that is not broken, reopening the
    /// directory first if the handle is broken (or missing) and the disk
    /// has room. The reopen waits for the writers in flight (they hold read
    /// guards) and gives a fresh `Sequence`, starting after the last event
    /// the reopened database holds.
    pub(crate) fn writable(&self) -> Result<RwLockReadGuard<'_, Option<LogDb>>, LogError> {
        {
            let guard = self.read_guard();
            if guard.as_ref().is_some_and(|db| db.broken().is_none()) {
                return Ok(guard);
            }
        }
        let reopening = self.inner.reopening.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.reopen()?;
        let guard = self.read_guard();
        drop(reopening);
        Ok(guard)
    }

    /// Replaces a broken (or missing) handle by a freshly opened one, if the
    /// disk has room; otherwise refuses with [`LogError::DiskFull`].
    fn reopen(&self) -> Result<(), LogError> {
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
            // A last flush, then sled's lock on the directory is released.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ward() -> WardPath {
        WardPath { province: "70".into(), town: "690".into(), ward: "25320".into() }
    }

    /// Takes `n` seqs the way `WardLog::write` does.
    fn take(db: &LogDb, n: u64) -> Slot<'_> {
        let mut sq = db.sequence();
        let first = sq.reserved + 1;
        sq.reserved += n;
        Slot { db, first, last: sq.reserved, epoch: sq.epoch, hash: None, done: false }
    }

    #[test]
    fn a_failed_insert_voids_the_seqs_taken_after_it_and_they_are_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = LogDb::open(dir.path(), &dir.path().join("wardlog"), &ward()).unwrap();
        let mut a = take(&db, 1);
        let mut b = take(&db, 2);
        assert_eq!((a.first, b.first, b.last), (1, 2, 3));
        // `b` signed first: it waits for `a`, on another thread.
        let waiter = std::thread::scope(|s| {
            let waiter = s.spawn(move || b.wait_turn());
            a.wait_turn().unwrap();
            a.finish(false);
            waiter.join().unwrap()
        });
        assert_eq!(waiter, Err(()), "a writer after a failed one writes nothing");
        let mut c = take(&db, 1);
        assert_eq!(c.first, 1, "the failed seq is taken again");
        c.wait_turn().unwrap();
        c.finish(true);
        let sq = db.sequence();
        assert_eq!((sq.written, sq.reserved), (1, 1));
    }

    #[test]
    fn an_abandoned_slot_lets_the_others_go_and_an_insert_in_flight_stays() {
        let dir = tempfile::tempdir().unwrap();
        let db = LogDb::open(dir.path(), &dir.path().join("wardlog"), &ward()).unwrap();
        let mut a = take(&db, 1);
        let b = take(&db, 1);
        let mut c = take(&db, 1);
        a.wait_turn().unwrap();
        // `b` is dropped (a panic while signing) while `a` inserts.
        drop(b);
        assert_eq!(c.wait_turn(), Err(()));
        a.finish(true);
        let mut d = take(&db, 1);
        assert_eq!(d.first, 2, "what `a` inserted stays; `b`'s seq is taken again");
        d.wait_turn().unwrap();
        d.finish(true);
        assert_eq!(db.sequence().written, 2);
    }
}
