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
//! - Seqs are contiguous from 1: the next seq is assigned and its keys
//!   inserted under one mutex, and recovered at open as the last `log` key + 1.
//! - An event, its `ids` entry and (for `case.opened`) its `identity` entry
//!   are written in one sled transaction: all or nothing.
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
//! hash of the event before it (`prev`, `treem_proto::provenance`). Both are
//! set while `next_seq` is held, as the seq is assigned, so the chain follows
//! the seqs exactly. The hash of the last event (the chain's tip) is kept in
//! memory with its seq and, when it does not match the seq before the next
//! (at open, after a reopen that lost an event that was never durable), is
//! read back from the last stored event. The log stores — and
//! [`WardLog::read_stored_from`] hands the replicator — each event's bytes
//! exactly as signed. The key is loaded (or made, valid from the next seq)
//! at [`WardLog::open`], which holds the log exclusively; so a rotation
//! (`treem-ward keys rotate`, with the node stopped) always falls between
//! two events.
//!
//! # Group commit
//!
//! Appenders do not fsync themselves: after its write, each waits for the
//! one flusher thread (`group_commit.rs`) to cover it with a
//! `db.flush()` followed by `fdatasync` of sled's files (`durable.rs`).
//! While one flush runs, the next batch of appenders queues up and shares
//! the next one.
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
//! - Before the transaction commits: nothing of the event exists; its seq
//!   will be used by the next event.
//! - After the commit, before the flush: the appender never heard "recorded".
//!   sled recovers a prefix of its writes, so the event is either present
//!   (and made durable by the flush at open) or absent with its seq reused.
//!   Neither case is visible outside: the event had not been read yet.
//! - After the flush: the event survives.
//! - `acked_seq` is written after JetStream acknowledged; if a crash loses
//!   the latest value, the replicator publishes a few events again, which
//!   JetStream de-duplication and the town's per-ward seq check absorb.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::Notify;
use treem_proto::Envelope;
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{Event, EventError, MAX_EVENT_BYTES, SCHEMA_VERSION};
use treem_proto::provenance::{EventHash, Seal, SigningKey};
use treem_proto::subject::WardPath;
use uuid::Uuid;

use crate::group_commit::FlushFailure;
use crate::log_db::{LogDb, seq_of};
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

/// Handle on the ward log. Clones share one database and one flusher.
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
    /// broken (see "Full disk and I/O errors"). Lock order: `next_seq`
    /// first, then `db`; no guard is held across an `.await`.
    pub(crate) db: RwLock<Option<LogDb>>,
    /// The next seq to assign; held while assigning and inserting.
    pub(crate) next_seq: Mutex<u64>,
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
    /// The seq and hash of the last event written: the next event's `prev`.
    /// Locked inside `next_seq`.
    pub(crate) tip: Mutex<Option<(u64, EventHash)>>,
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
                next_seq: Mutex::new(last + 1),
                last_durable: AtomicU64::new(last),
                min_free_bytes: AtomicU64::new(DEFAULT_MIN_FREE_BYTES),
                appended: Arc::new(Notify::new()),
                catch_up: Mutex::new(None),
                signer: keys.signing_key().clone(),
                tip: Mutex::new(None),
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

    /// Assigns seqs and writes the events (and identity) in one transaction.
    /// Returns the envelopes and the wait for their group commit.
    fn write(
        &self,
        author: &str,
        events: Vec<Event>,
        identity: Option<(Uuid, Vec<u8>)>,
    ) -> Result<(Vec<Envelope>, impl std::future::Future<Output = Result<(), FlushFailure>> + use<>), LogError> {
        let inner = &self.inner;
        let mut next = self.lock_next();
        let db = self.writable(&mut next)?;
        let db = db.as_ref().ok_or_else(|| self.closed())?;
        let mut envs = Vec::with_capacity(events.len());
        let mut rows = Vec::with_capacity(events.len());
        let mut prev = self.tip_at(db, *next - 1)?;
        for (i, event) in events.into_iter().enumerate() {
            let mut env = Envelope {
                id: Uuid::now_v7(),
                schema: SCHEMA_VERSION,
                province: inner.ward.province.clone(),
                town: inner.ward.town.clone(),
                ward: inner.ward.ward.clone(),
                seq: *next + i as u64,
                recorded_at: Utc::now(),
                author: author.to_owned(),
                event,
                prev: None,
                sig: None,
            };
            prev = Some(inner.signer.sign(&mut env, prev));
            let bytes = env.encode();
            if bytes.len() > MAX_EVENT_BYTES {
                return Err(LogError::TooLarge { size: bytes.len() });
            }
            rows.push((env.seq.to_be_bytes(), env.id, bytes));
            envs.push(env);
        }
        let size: usize = rows.iter().map(|(_, _, b)| b.len() + 64).sum::<usize>() + identity.as_ref().map_or(0, |(_, p)| p.len() + 32);
        self.check_space(size as u64)?;
        (&db.log, &db.ids, &db.identity)
            .transaction(|(log, ids, ident)| {
                for (key, id, bytes) in &rows {
                    log.insert(&key[..], bytes.as_slice())?;
                    ids.insert(&id.as_bytes()[..], &key[..])?;
                }
                if let Some((case_id, person)) = &identity {
                    ident.insert(&case_id.as_bytes()[..], person.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => self.write_failed(db, "write", e),
                TransactionError::Abort(()) => LogError::Storage { action: "write", detail: "transaction aborted".into() },
            })?;
        *next += envs.len() as u64;
        *self.inner.tip.lock().unwrap_or_else(|p| p.into_inner()) = prev.map(|h| (*next - 1, h));
        db.commit.written(*next - 1);
        let durable = db.commit.wait(db.commit.ticket());
        Ok((envs, durable))
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
    /// memory when it is that seq's, else read from the stored event.
    /// Called with `next_seq` held.
    fn tip_at(&self, db: &LogDb, seq: u64) -> Result<Option<EventHash>, LogError> {
        if seq == 0 {
            return Ok(None);
        }
        if let Some((s, h)) = *self.inner.tip.lock().unwrap_or_else(|p| p.into_inner())
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
