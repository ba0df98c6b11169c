//! The ward log (sổ sự kiện của phường/xã): the durable, append-only list of
//! every event this ward recorded, numbered 1, 2, 3… without gaps.
//!
//! It owns the sled database of the ward. Nothing else opens it; the
//! replicator, the HTTP API, the CLI and the case register ([`crate::identity`])
//! all go through a [`WardLog`] handle (cheap to clone).
//!
//! # Key layout (sled 0.34, directory `<data_dir>/wardlog`)
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `log` | seq, `u64` big-endian (so keys sort by seq) | the envelope JSON ([`Envelope::encode`]) |
//! | `ids` | event id, 16 bytes of the UUID | seq, `u64` big-endian |
//! | `meta` | `ward` | `"<province>.<town>.<ward>"`, written at first open |
//! | `meta` | `acked_seq` | `u64` BE: every seq ≤ it was acknowledged by the town's JetStream (and, as far as the last reconciliation could tell, is still held by its stream) |
//! | `meta` | `ack_marks` | JSON `[{"seq","stream_seq","event_seq"}, …]`: where acknowledged prefixes lie in the town's stream, the newest being `acked_seq`'s (`sync_state.rs`) |
//! | `meta` | `last_sync_at` | RFC 3339: end of the last replication round that reached the log's end |
//! | `meta` | `last_error` / `last_error_at` | text / RFC 3339 of the last replication failure, removed on success |
//! | `meta` | `last_rewind` | JSON [`Rewind`]: the last time `acked_seq` was moved back, and why |
//! | `identity` | case id, 16 bytes | a child's identity, sealed under the case's own key (kept in `<data_dir>/vault/`, not here), or a tombstone once consent was withdrawn; see [`crate::identity`]; never replicated |
//! | `consent` | time ‖ case id | an append-only record of each consent withdrawal ([`crate::identity`]); never replicated |
//!
//! # Invariants
//!
//! - Seqs are contiguous from 1: seqs are taken in order under the handle's
//!   `Sequence` lock, inserted in seq order, and recovered at open as the
//!   last `log` key + 1. A seq whose insert failed is taken again by the
//!   next event, and so are the seqs taken after it while it was inserted
//!   (their writers get an error and write nothing; `log_db.rs`).
//! - The events of one call ([`WardLog::append_all`]) with their `ids`
//!   entries, and a `case.opened` with its `identity` entry, are written in
//!   one sled transaction: all or nothing. A single event
//!   ([`WardLog::append`]) is two plain inserts, `log` then `ids` (a sled
//!   0.34 transaction rolls sled's I/O buffer and writes a batch marker, one
//!   more write to the disk per event, and it excludes every flush running
//!   meanwhile); the crash between the two is repaired at open (see
//!   "Crash behaviour").
//! - "Recorded" (đã ghi) means [`WardLog::append`] returned `Ok`, which it
//!   does only once the event is on stable storage: sled's flush *and* an
//!   `fdatasync` of its files (group commit below). That is the only moment
//!   the ward may tell an officer "recorded"; the HTTP API answers 201 and
//!   the CLI prints "recorded" only then. A JetStream acknowledgement is a
//!   different, weaker promise, see [`crate::replicator`].
//! - Readers ([`WardLog::read_from`], hence the replicator and the HTTP API)
//!   only see durable events, so no event leaves the ward that a crash could
//!   still take back.
//! - Bad input changes nothing: every check runs before the write.
//! - The log never forgets an event: `acked_seq` only says what need not be
//!   sent again, and it moves back ([`WardLog::rewind_acked`]) when the
//!   town's stream turns out to have lost events.
//!
//! # Provenance
//!
//! Every event is signed by the ward's key ([`crate::keys`]) and names the
//! hash of the event before it (`prev`, `treem_proto::provenance`). An
//! event's hash is SHA-256 of its signing bytes, which leave the signature
//! out: so `prev` and the hash are set as the seq is taken, under the
//! handle's `Sequence` lock, and the chain follows the seqs exactly, while
//! the ed25519 signature — the costly part — is made after the lock is
//! released, concurrent writers signing in parallel; the events are then
//! inserted in seq order ([`WardLog::append`] → `write`). The hash of the
//! last event taken (the chain's tip) is kept in memory with its seq and,
//! when it does not match the seq before the next (at open, after a reopen
//! or a failed write), is read back from the last stored event. The log stores — and
//! [`WardLog::read_stored_from`] hands the replicator — each event's bytes
//! exactly as signed. The key is loaded (or made, valid from the next seq)
//! at [`WardLog::open`], which holds the log exclusively; so a rotation
//! (`treem-ward keys rotate`, with the node stopped) always falls between
//! two events.
//!
//! # Group commit
//!
//! After its insert, each appender waits to be covered by a `db.flush()`
//! followed by `fdatasync` of sled's files (`durable.rs`). The first one to
//! find no flush running does it itself, for every write made so far
//! (`group_commit.rs`); those arriving while it runs share the next one. A
//! lone appender so flushes on its own thread, without a hand-off.
//!
//! # Full disk and I/O errors
//!
//! - Before every write the log checks the free space of its file system
//!   (`statvfs`): with less than `min_free_bytes` (config, default
//!   [`DEFAULT_MIN_FREE_BYTES`]) plus the size of the events left, it
//!   refuses with [`LogError::DiskFull`] and writes nothing: no seq is used,
//!   the log is untouched. `min_free_bytes = 0` turns this check off.
//! - If the disk fills anyway (another program, or the check turned off),
//!   sled meets ENOSPC itself. The write or flush that meets it fails
//!   ([`LogError::DiskFull`] when nothing was written,
//!   [`LogError::NotDurableDiskFull`] when the event was written but could
//!   not be made durable, so it was never "recorded"), and sled then fails
//!   every later write (see `log_db.rs`). The log keeps serving reads from
//!   that handle and refuses writes with [`LogError::DiskFull`] until the
//!   file system has room again (at least [`REOPEN_MIN_FREE_BYTES`] beyond
//!   the reserve); the next write then drops the broken handle and reopens
//!   the directory, without a restart. Every event recorded before is still
//!   there; an event that failed with `NotDurableDiskFull` may or may not
//!   be, which its error says.
//! - Any other I/O error is handled the same way, except that a reopen is
//!   tried at the next write whatever the free space.
//!
//! # Crash behaviour
//!
//! - Before the insert (or transaction) completes: nothing of the event
//!   exists; its seq will be used by the next event.
//! - After the insert, before the flush: the appender never heard
//!   "recorded". sled recovers a prefix of its writes, so the event is
//!   either present (and made durable by the flush at open) or absent with
//!   its seq reused. Neither case is visible outside: the event had not been
//!   read yet. A single event may come back without its `ids` entry (the
//!   crash fell between its two inserts; being a prefix, only the last
//!   events can lack theirs): [`WardLog::open`] puts it back, walking back
//!   from the end of the log to the first event that has its entry
//!   (`log_db.rs`), before the flush at open.
//! - After the flush: the event survives, with its `ids` entry.
//! - `acked_seq` is written after JetStream acknowledged; if a crash loses
//!   the latest value, the replicator publishes a few events again, which
//!   JetStream de-duplication and the town's per-ward seq check absorb.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::Notify;
use treem_proto::Envelope;
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{Event, EventError, MAX_EVENT_BYTES};
use treem_proto::provenance::{EventHash, Seal, Sig, SigningKey};
use treem_proto::subject::WardPath;
use uuid::Uuid;

use crate::durable::available_bytes;
use crate::group_commit::FlushFailure;
use crate::log_db::{LogDb, Sequence, Slot, seq_of};
pub use crate::sync_state::{AckMark, CatchUp, LogStatus, Rewind};

/// The sled directory inside the data directory.
pub const LOG_DIR: &str = "wardlog";

/// Free space the log keeps on its file system unless configured otherwise
/// (`min_free_bytes`): room for sled to finish a segment and for the OS, so
/// a full disk is met by a clear refusal rather than an I/O error.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 16 * 1024 * 1024;

/// Free space (beyond the reserve) needed before a log broken by a full disk
/// is reopened: sled writes up to a 512 KiB segment at open.
pub const REOPEN_MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Longest author name accepted.
const MAX_AUTHOR: usize = 100;

/// Why the ward log refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    Invalid(#[from] EventError),
    #[error("the event is {size} bytes once encoded; at most {MAX_EVENT_BYTES} are accepted — shorten its text fields")]
    TooLarge { size: usize },
    #[error("author {0:?} is not usable: give the officer's id, 1–{MAX_AUTHOR} printable characters")]
    BadAuthor(String),
    #[error("event {id} is not in this ward's log; a correction or retraction must name an event recorded here (see `treem-ward log`)")]
    UnknownEvent { id: Uuid },
    #[error("event {id} is itself a {kind}; correct or retract the original event instead")]
    NestedCorrection { id: Uuid, kind: &'static str },
    #[error("a correction must keep the kind of the event it replaces: event {id} is {original}, the correction is {corrected}")]
    KindMismatch { id: Uuid, original: &'static str, corrected: &'static str },
    #[error("a correction must keep the case id: event {id} is about case {original}, the correction names case {corrected}")]
    CaseIdChanged { id: Uuid, original: Uuid, corrected: Uuid },
    #[error(
        "case {case_id} was not opened in this ward; open it first (`treem-ward case open` or POST /api/v1/cases) and use the case id it returns"
    )]
    UnknownCase { case_id: Uuid },
    #[error(
        "case.opened is recorded together with the child's identity, which stays in this ward: use `treem-ward case open` or POST /api/v1/cases"
    )]
    CaseNeedsIdentity,
    #[error("cannot mark seq {seq} as acknowledged: the log ends at seq {last}")]
    AckBeyondEnd { seq: u64, last: u64 },
    #[error("the ward log in {dir} is in use by another process (is `treem-ward serve` running?); stop it, or use its HTTP API")]
    Locked { dir: PathBuf },
    #[error("the data directory {dir} holds the log of ward {found}, not {expected}; point data_dir at this ward's own directory")]
    WrongWard { dir: PathBuf, found: String, expected: String },
    #[error(
        "disk full: no space left on the disk holding the ward log {dir} ({available} bytes free, {reserve} kept in reserve); nothing was recorded and every event recorded before is intact — free disk space (delete or move files), then record again"
    )]
    DiskFull { dir: PathBuf, available: u64, reserve: u64 },
    #[error("could not {action} the ward log: {detail}; check the disk (free space, permissions)")]
    Storage { action: &'static str, detail: String },
    #[error(
        "the event was written but could not be made durable ({0}); it may be lost on a crash — check the disk, then `treem-ward log` before recording it again"
    )]
    NotDurable(String),
    #[error(
        "disk full: no space left on the disk holding the ward log, so the event was written but could not be made durable ({0}); it was NOT recorded — free disk space, then check `treem-ward log` (it may or may not be there) before recording it again"
    )]
    NotDurableDiskFull(String),
    #[error("the stored event at seq {seq} cannot be read: {detail}")]
    Corrupt { seq: u64, detail: String },
    #[error("{0}")]
    Keys(#[from] crate::keys::KeyError),
}

impl LogError {
    /// The disk under the log is full: the caller should free space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, LogError::DiskFull { .. } | LogError::NotDurableDiskFull(_))
    }
}

pub(crate) fn storage(action: &'static str) -> impl Fn(sled::Error) -> LogError {
    move |e| LogError::Storage { action, detail: e.to_string() }
}

/// Handle on the ward log. Clones share one database and its group commit.
#[derive(Clone)]
pub struct WardLog {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) ward: WardPath,
    pub(crate) catalogue: Catalogue,
    pub(crate) data_dir: PathBuf,
    /// `<data_dir>/wardlog`.
    pub(crate) dir: PathBuf,
    /// The open database. `None` only after a reopen failed; replaced when
    /// broken (see "Full disk and I/O errors"). A writer holds a read guard
    /// from the moment it takes its seqs until its insert is done, so a
    /// reopen waits for the writers in flight. Lock order: `reopening`
    /// first, then `db`, then the handle's `Sequence`; no guard is held
    /// across an `.await`.
    pub(crate) db: RwLock<Option<LogDb>>,
    /// Held while a broken (or missing) handle is checked and replaced.
    pub(crate) reopening: Mutex<()>,
    /// The durable seq of the last handle, for when `db` is `None`.
    pub(crate) last_durable: AtomicU64,
    /// Free space to keep on the file system (0: no check).
    pub(crate) min_free_bytes: AtomicU64,
    /// Woken after every append, so the replicator never polls an idle log.
    pub(crate) appended: Arc<Notify>,
    /// The replicator's current or last catch-up (in memory only).
    pub(crate) catch_up: Mutex<Option<CatchUp>>,
    /// The ward's signing key (see "Provenance").
    pub(crate) signer: SigningKey,
    /// Its key id, for the size check before signing.
    pub(crate) key_id: String,
}

impl std::fmt::Debug for WardLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WardLog").field("ward", &self.inner.ward).finish_non_exhaustive()
    }
}

impl WardLog {
    /// Opens (or creates) the log in `<data_dir>/wardlog` for `ward`.
    /// Refuses a directory that belongs to another ward, and reports a
    /// directory held by another process as [`LogError::Locked`].
    pub fn open(data_dir: &Path, ward: WardPath, catalogue: Catalogue) -> Result<WardLog, LogError> {
        let dir = data_dir.join(LOG_DIR);
        let db = LogDb::open(data_dir, &dir, &ward)?;
        let last = db.last_seq;
        // Held exclusively now (sled's lock): make or load the signing key.
        let keys = crate::keys::WardKeys::load_or_create(data_dir, &ward, last + 1)?;
        keys.check_against_log(last)?;
        tracing::info!(ward = %ward.ward, dir = %dir.display(), last_seq = last, key_id = %keys.key_id(), "ward log opened");
        Ok(WardLog {
            inner: Arc::new(Inner {
                ward,
                catalogue,
                data_dir: data_dir.to_path_buf(),
                dir,
                db: RwLock::new(Some(db)),
                reopening: Mutex::new(()),
                last_durable: AtomicU64::new(last),
                min_free_bytes: AtomicU64::new(DEFAULT_MIN_FREE_BYTES),
                appended: Arc::new(Notify::new()),
                catch_up: Mutex::new(None),
                signer: keys.signing_key().clone(),
                key_id: keys.signing_key().key_id(),
            }),
        })
    }

    /// Sets the free space the log keeps on its file system (0 turns the
    /// check off). See "Full disk and I/O errors".
    pub fn set_min_free_bytes(&self, bytes: u64) {
        self.inner.min_free_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn ward(&self) -> &WardPath {
        &self.inner.ward
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Records one event and returns its envelope once it is durable.
    ///
    /// Refuses, changing nothing: an invalid event (catalogue, years, text),
    /// an event over [`MAX_EVENT_BYTES`], a correction or retraction that does
    /// not name an original event of this ward (or changes its kind or case),
    /// a case event for a case not opened here, and `case.opened` itself
    /// (which goes through [`crate::identity::open_case`]); and, with
    /// [`LogError::DiskFull`], any event while the disk is full.
    pub async fn append(&self, author: &str, event: Event) -> Result<Envelope, LogError> {
        if matches!(event, Event::CaseOpened(_)) {
            return Err(LogError::CaseNeedsIdentity);
        }
        let mut envs = self.append_checked(author, vec![event], None).await?;
        Ok(envs.remove(0))
    }

    /// Records several events with one durable write: either all are
    /// recorded, with consecutive seqs in the given order, or none (every
    /// event is checked before anything is written). Events in the batch
    /// cannot refer to each other.
    pub async fn append_all(&self, author: &str, events: Vec<Event>) -> Result<Vec<Envelope>, LogError> {
        if events.iter().any(|e| matches!(e, Event::CaseOpened(_))) {
            return Err(LogError::CaseNeedsIdentity);
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.append_checked(author, events, None).await
    }

    /// Records a `case.opened` together with the child's identity (stored in
    /// the `identity` tree in the same transaction, never in the log).
    pub(crate) async fn append_case_opened(
        &self,
        author: &str,
        event: Event,
        case_id: Uuid,
        identity: Vec<u8>,
    ) -> Result<Envelope, LogError> {
        let mut envs = self.append_checked(author, vec![event], Some((case_id, identity))).await?;
        Ok(envs.remove(0))
    }

    async fn append_checked(&self, author: &str, events: Vec<Event>, identity: Option<(Uuid, Vec<u8>)>) -> Result<Vec<Envelope>, LogError> {
        let author = author.trim();
        if author.is_empty() || author.chars().count() > MAX_AUTHOR || author.chars().any(char::is_control) {
            return Err(LogError::BadAuthor(author.into()));
        }
        for event in &events {
            event.validate(&self.inner.catalogue)?;
            self.check_references(event)?;
        }
        let (envs, durable) = self.write(author, events, identity)?;
        durable.await.map_err(not_durable)?;
        self.inner.appended.notify_one();
        if let (Some(first), Some(last)) = (envs.first(), envs.last()) {
            tracing::debug!(ward = %self.inner.ward.ward, from_seq = first.seq, to_seq = last.seq, "recorded");
        }
        Ok(envs)
    }

    /// Checks what an event refers to: the event a correction or retraction
    /// replaces, the case a case event is about.
    fn check_references(&self, event: &Event) -> Result<(), LogError> {
        match event {
            Event::CaseSupportRecorded(s) => self.require_case(s.case_id),
            Event::CaseClosed(c) => self.require_case(c.case_id),
            Event::EventCorrected(c) => {
                let original = self.original(c.replaces)?;
                let (was, now) = (original.event.kind(), c.corrected.kind());
                if was != now {
                    return Err(LogError::KindMismatch { id: c.replaces, original: was, corrected: now });
                }
                match (case_id_of(&original.event), case_id_of(&c.corrected)) {
                    (Some(a), Some(b)) if a != b => Err(LogError::CaseIdChanged { id: c.replaces, original: a, corrected: b }),
                    _ => Ok(()),
                }
            }
            Event::EventRetracted(r) => self.original(r.replaces).map(drop),
            _ => Ok(()),
        }
    }

    fn require_case(&self, case_id: Uuid) -> Result<(), LogError> {
        if self.with_db(|db| db.identity.contains_key(case_id.as_bytes()).map_err(storage("read")))? {
            Ok(())
        } else {
            Err(LogError::UnknownCase { case_id })
        }
    }

    /// The event `id` names, which must be an original (not a correction).
    fn original(&self, id: Uuid) -> Result<Envelope, LogError> {
        let env = self.get(id)?.ok_or(LogError::UnknownEvent { id })?;
        match env.event {
            Event::EventCorrected(_) | Event::EventRetracted(_) => Err(LogError::NestedCorrection { id, kind: env.event.kind() }),
            _ => Ok(env),
        }
    }

    /// Takes the next seqs, chains, signs and writes the events (and the
    /// identity), in three steps (see "Provenance" for why this order):
    ///
    /// 1. under the handle's `Sequence` lock: the seqs, each event's `prev`
    ///    and hash (SHA-256 of its signing bytes, cheap);
    /// 2. without any lock: the ed25519 signatures and the encoding, so
    ///    concurrent writers sign on all cores;
    /// 3. in seq order (each writer waits for the seqs before its own to be
    ///    written, which takes no longer than their signing): the insert.
    ///
    /// Nothing between 1 and 3 can fail but the insert itself. When it
    /// fails, the seqs taken after it are void: their writers get an error
    /// without writing, and the next writer takes the failed seq again.
    /// Returns the envelopes and the wait for their group commit.
    fn write(
        &self,
        author: &str,
        events: Vec<Event>,
        identity: Option<(Uuid, Vec<u8>)>,
    ) -> Result<(Vec<Envelope>, impl std::future::Future<Output = Result<(), FlushFailure>> + use<>), LogError> {
        let inner = &self.inner;
        // Seq 0 until the seqs are taken (step 1).
        let mut envs: Vec<Envelope> = events.into_iter().map(|event| Envelope::new(&inner.ward, 0, author, event)).collect();
        // The size each event will have once signed, at the largest seq: when
        // that fits, the event fits; when not, it is checked at its own seq.
        let mut size = identity.as_ref().map_or(0, |(_, p)| p.len() + 32);
        let mut exact = Vec::with_capacity(envs.len());
        for env in &mut envs {
            let bound = self.signed_len(env, u64::MAX);
            exact.push(bound > MAX_EVENT_BYTES);
            size += bound + 64;
        }
        self.check_space(size as u64)?;

        let guard = self.writable()?;
        let db = guard.as_ref().ok_or_else(|| self.closed())?;
        // 1. Seqs, links and hashes.
        let mut seals = Vec::with_capacity(envs.len());
        let mut slot = {
            let mut sq = db.sequence();
            let first = sq.reserved + 1;
            let mut prev = self.tip_at(db, &sq, first - 1)?;
            for (i, env) in envs.iter_mut().enumerate() {
                env.seq = first + i as u64;
                if exact[i] {
                    let size = self.signed_len(env, env.seq);
                    if size > MAX_EVENT_BYTES {
                        return Err(LogError::TooLarge { size });
                    }
                }
                env.prev = prev.map(|h| h.to_hex());
                let seal = Seal::of_envelope(env);
                prev = Some(seal.hash);
                seals.push(seal);
            }
            sq.reserved += envs.len() as u64;
            sq.tip = prev.map(|h| (sq.reserved, h));
            Slot { db, first, last: sq.reserved, epoch: sq.epoch, hash: prev, done: false }
        };
        // 2. Signatures and bytes.
        let mut rows = Vec::with_capacity(envs.len());
        for (env, seal) in envs.iter_mut().zip(&seals) {
            // Sealed in step 1 exactly as it is now (seq, `prev`, no `sig`).
            inner.signer.sign_sealed(env, seal);
            let bytes = env.encode();
            debug_assert!(bytes.len() <= MAX_EVENT_BYTES, "checked before the seq was taken");
            rows.push((env.seq.to_be_bytes(), env.id, bytes));
        }
        // 3. The insert, in seq order.
        slot.wait_turn().map_err(|()| self.void(db))?;
        let written = if let ([(key, id, bytes)], None) = (rows.as_slice(), &identity) {
            // One event: two plain inserts, `log` first (see "Crash behaviour").
            db.log
                .insert(&key[..], bytes.as_slice())
                .and_then(|_| db.ids.insert(&id.as_bytes()[..], &key[..]))
                .map(drop)
                .map_err(|e| self.write_failed(db, "write", e))
        } else {
            self.write_transaction(db, &rows, identity.as_ref())
        };
        slot.finish(written.is_ok());
        written?;
        let durable = db.commit.wait(db.commit.ticket());
        Ok((envs, durable))
    }

    /// The encoded size of `env` once signed, were its seq `seq`.
    fn signed_len(&self, env: &mut Envelope, seq: u64) -> usize {
        const HASH_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";
        let saved = env.seq;
        env.seq = seq;
        env.prev = (seq > 1).then(|| HASH_HEX.to_owned());
        env.sig = Some(Sig { key_id: self.inner.key_id.clone(), signature: HASH_HEX.repeat(2) });
        let len = env.encode().len();
        (env.seq, env.prev, env.sig) = (saved, None, None);
        len
    }

    /// The error of a writer whose seqs were voided by a failed write
    /// before them: nothing of its events was written.
    fn void(&self, db: &LogDb) -> LogError {
        match db.broken() {
            Some(b) if b.disk_full => {
                let dir = self.inner.dir.clone();
                let available = available_bytes(&dir).unwrap_or(0);
                LogError::DiskFull { dir, available, reserve: self.inner.min_free_bytes.load(Ordering::Relaxed) }
            }
            broken => LogError::Storage {
                action: "write",
                detail: format!(
                    "an event recorded at the same moment could not be written{}, so this one was not written either",
                    broken.map(|b| format!(" ({})", b.detail)).unwrap_or_default()
                ),
            },
        }
    }

    /// Writes several events, or one with a child's identity, in one sled
    /// transaction: all or nothing.
    fn write_transaction(&self, db: &LogDb, rows: &[([u8; 8], Uuid, Vec<u8>)], identity: Option<&(Uuid, Vec<u8>)>) -> Result<(), LogError> {
        (&db.log, &db.ids, &db.identity)
            .transaction(|(log, ids, ident)| {
                for (key, id, bytes) in rows {
                    log.insert(&key[..], bytes.as_slice())?;
                    ids.insert(&id.as_bytes()[..], &key[..])?;
                }
                if let Some((case_id, person)) = identity {
                    ident.insert(&case_id.as_bytes()[..], person.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => self.write_failed(db, "write", e),
                TransactionError::Abort(()) => LogError::Storage { action: "write", detail: "transaction aborted".into() },
            })
    }

    /// Waits until every write made so far is on stable storage.
    pub async fn flush(&self) -> Result<(), LogError> {
        let durable = self.with_db(|db| Ok(db.commit.wait(db.commit.ticket())))?;
        durable.await.map_err(not_durable)
    }

    /// The event with this id, if this ward recorded it.
    pub fn get(&self, id: Uuid) -> Result<Option<Envelope>, LogError> {
        self.with_db(|db| {
            let Some(key) = db.ids.get(id.as_bytes()).map_err(storage("read"))? else { return Ok(None) };
            let seq = seq_of(&key);
            match db.log.get(key).map_err(storage("read"))? {
                Some(bytes) => decode(seq, &bytes).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Up to `limit` recorded events with seq > `after_seq`, in seq order.
    /// Only durable events are returned.
    pub fn read_from(&self, after_seq: u64, limit: usize) -> Result<Vec<Envelope>, LogError> {
        let end = self.last_seq();
        if after_seq >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let from = (after_seq + 1).to_be_bytes();
        let to = end.to_be_bytes();
        self.with_db(|db| {
            db.log
                .range(from..=to)
                .take(limit)
                .map(|item| {
                    let (k, v) = item.map_err(storage("read"))?;
                    decode(seq_of(&k), &v)
                })
                .collect()
        })
    }

    /// Up to `limit` recorded events with seq > `after_seq`, in seq order,
    /// each with its bytes exactly as stored — as signed, which is what the
    /// replicator publishes (a re-encoding could differ from what was signed
    /// once the schema moves on). Only durable events are returned.
    pub fn read_stored_from(&self, after_seq: u64, limit: usize) -> Result<Vec<(Envelope, Vec<u8>)>, LogError> {
        let end = self.last_seq();
        if after_seq >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let from = (after_seq + 1).to_be_bytes();
        let to = end.to_be_bytes();
        self.with_db(|db| {
            db.log
                .range(from..=to)
                .take(limit)
                .map(|item| {
                    let (k, v) = item.map_err(storage("read"))?;
                    Ok((decode(seq_of(&k), &v)?, v.to_vec()))
                })
                .collect()
        })
    }

    /// The hash of the event at `seq` (`None` for seq 0): the tip kept in
    /// memory when it is that seq's, else read from the stored event (which
    /// is then written: `seq` is the last seq taken, and no write is in
    /// flight when the tip is not known). Called with the `Sequence` locked.
    fn tip_at(&self, db: &LogDb, sq: &Sequence, seq: u64) -> Result<Option<EventHash>, LogError> {
        if seq == 0 {
            return Ok(None);
        }
        if let Some((s, h)) = sq.tip
            && s == seq
        {
            return Ok(Some(h));
        }
        let bytes = db
            .log
            .get(seq.to_be_bytes())
            .map_err(storage("read"))?
            .ok_or_else(|| LogError::Corrupt { seq, detail: "missing, although the log goes on after it".into() })?;
        let seal = Seal::of_bytes(&bytes).map_err(|e| LogError::Corrupt { seq, detail: e.to_string() })?;
        Ok(Some(seal.hash))
    }

    /// Highest recorded seq: every event up to it is durable. 0 when empty.
    pub fn last_seq(&self) -> u64 {
        match self.read_guard().as_ref() {
            Some(db) => db.commit.durable_seq(),
            None => self.inner.last_durable.load(Ordering::SeqCst),
        }
    }

    /// Woken after every append (used by the replicator).
    pub(crate) fn appended(&self) -> Arc<Notify> {
        self.inner.appended.clone()
    }

    /// The stored identity bytes of a case (see [`crate::identity`]).
    pub(crate) fn identity_bytes(&self, case_id: Uuid) -> Result<Option<Vec<u8>>, LogError> {
        self.with_db(|db| Ok(db.identity.get(case_id.as_bytes()).map_err(storage("read"))?.map(|v| v.to_vec())))
    }
}

pub(crate) fn not_durable(f: FlushFailure) -> LogError {
    if f.disk_full { LogError::NotDurableDiskFull(f.detail) } else { LogError::NotDurable(f.detail) }
}

fn decode(seq: u64, bytes: &[u8]) -> Result<Envelope, LogError> {
    Envelope::decode(bytes).map_err(|e| LogError::Corrupt { seq, detail: e.to_string() })
}

/// The case an event is about, if it is a case event.
fn case_id_of(event: &Event) -> Option<Uuid> {
    match event {
        Event::CaseOpened(c) => Some(c.case_id),
        Event::CaseSupportRecorded(s) => Some(s.case_id),
        Event::CaseClosed(c) => Some(c.case_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use treem_proto::event::IndicatorObserved;
    use treem_proto::provenance::{KeyRegistration, KeyRing, verify_log};

    use super::*;
    use crate::keys::WardKeys;

    fn ward() -> WardPath {
        WardPath { province: "70".into(), town: "690".into(), ward: "25320".into() }
    }

    fn observation(n: u64) -> Event {
        Event::IndicatorObserved(IndicatorObserved {
            indicator: "4a".into(),
            year: 2021 + (n % 5) as u16,
            numerator: n % 100,
            denominator: Some(100),
            source: "health_centre".into(),
        })
    }

    /// The stored log, checked as the town checks it: seqs, links, signatures.
    fn verify_stored(log: &WardLog) -> Vec<Envelope> {
        let stored = log.read_stored_from(0, 100_000).unwrap();
        let keys = WardKeys::load(log.data_dir(), &ward()).unwrap().expect("the ward has keys");
        let ring = KeyRing::new(keys.registrations().iter().map(KeyRegistration::key)).unwrap();
        verify_log(&ring, "25320", stored.iter().map(|(_, b)| b.as_slice())).expect("the stored log verifies");
        stored.into_iter().map(|(e, _)| e).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_sign_apart_and_the_chain_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let log = WardLog::open(dir.path(), ward(), Catalogue::shipped()).unwrap();
        let tasks: Vec<_> = (0..16u64)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    for i in 0..20u64 {
                        if (t + i) % 4 == 0 {
                            n += log
                                .append_all("officer-1", (0..3).map(|k| observation(t * 1000 + i * 10 + k)).collect())
                                .await
                                .unwrap()
                                .len();
                        } else {
                            log.append("officer-1", observation(t * 1000 + i)).await.unwrap();
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(log.last_seq(), total as u64);
        let envs = verify_stored(&log);
        assert_eq!(envs.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=total as u64).collect::<Vec<_>>());
        for env in &envs {
            assert_eq!(log.get(env.id).unwrap().as_ref(), Some(env), "seq {} is found by its id", env.seq);
        }
        drop(log);
        // Reopened: the chain goes on from the stored tip.
        let log = WardLog::open(dir.path(), ward(), Catalogue::shipped()).unwrap();
        log.append("officer-1", observation(1)).await.unwrap();
        assert_eq!(verify_stored(&log).len(), total + 1);
    }

    #[tokio::test]
    async fn an_id_entry_lost_to_a_crash_between_the_two_inserts_comes_back_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = WardLog::open(dir.path(), ward(), Catalogue::shipped()).unwrap();
        let mut envs = Vec::new();
        for n in 0..4 {
            envs.push(log.append("officer-1", observation(n)).await.unwrap());
        }
        drop(log);
        // What a crash between `log` and `ids` of the last events leaves.
        {
            let db = sled::Config::new().path(dir.path().join(LOG_DIR)).open().unwrap();
            let ids = db.open_tree("ids").unwrap();
            for env in &envs[2..] {
                ids.remove(env.id.as_bytes()).unwrap();
            }
            db.flush().unwrap();
        }
        let log = WardLog::open(dir.path(), ward(), Catalogue::shipped()).unwrap();
        for env in &envs {
            assert_eq!(log.get(env.id).unwrap().as_ref(), Some(env), "seq {} is found by its id again", env.seq);
        }
        // A correction can name it, and the log goes on.
        let corrected = Event::EventRetracted(treem_proto::event::EventRetracted { replaces: envs[3].id, reason: "typo".into() });
        assert_eq!(log.append("officer-1", corrected).await.unwrap().seq, 5);
        assert_eq!(verify_stored(&log).len(), 5);
    }
}
