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
//! | `meta` | `acked_seq` | `u64` BE: every seq ≤ it was acknowledged by the town's JetStream |
//! | `meta` | `last_sync_at` | RFC 3339: end of the last replication round that reached the log's end |
//! | `meta` | `last_error` / `last_error_at` | text / RFC 3339 of the last replication failure, removed on success |
//! | `identity` | case id, 16 bytes | a child's identity, see [`crate::identity`]; never replicated |
//!
//! # Invariants
//!
//! - Seqs are contiguous from 1: the next seq is assigned and its keys
//!   inserted under one mutex, and recovered at open as the last `log` key + 1.
//! - An event, its `ids` entry and (for `case.opened`) its `identity` entry
//!   are written in one sled transaction: all or nothing.
//! - "Recorded" means [`WardLog::append`] returned `Ok`, which it does only
//!   once the event is on stable storage (group commit below).
//! - Readers ([`WardLog::read_from`], hence the replicator and the HTTP API)
//!   only see durable events, so no event leaves the ward that a crash could
//!   still take back.
//! - Bad input changes nothing: every check runs before the write.
//!
//! # Group commit
//!
//! Appenders do not fsync themselves: after its write, each waits for the
//! one flusher thread (`group_commit.rs`) to cover it with a
//! `db.flush()` followed by `fdatasync` of sled's files (`durable.rs`).
//! While one flush runs, the next batch of appenders queues up and shares
//! the next one.
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
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;
use tokio::sync::Notify;
use treem_proto::Envelope;
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{Event, EventError, MAX_EVENT_BYTES, SCHEMA_VERSION};
use treem_proto::subject::WardPath;
use uuid::Uuid;

use crate::durable::SledFiles;
use crate::group_commit::GroupCommit;

/// The sled directory inside the data directory.
pub const LOG_DIR: &str = "wardlog";

const ACKED_SEQ: &str = "acked_seq";
const LAST_SYNC_AT: &str = "last_sync_at";
const LAST_ERROR: &str = "last_error";
const LAST_ERROR_AT: &str = "last_error_at";
const WARD: &str = "ward";
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
    #[error("could not {action} the ward log: {detail}; check the disk (free space, permissions)")]
    Storage { action: &'static str, detail: String },
    #[error(
        "the event was written but could not be made durable ({0}); it may be lost on a crash — check the disk, then `treem-ward log` before recording it again"
    )]
    NotDurable(String),
    #[error("the stored event at seq {seq} cannot be read: {detail}")]
    Corrupt { seq: u64, detail: String },
}

fn storage(action: &'static str) -> impl Fn(sled::Error) -> LogError {
    move |e| LogError::Storage { action, detail: e.to_string() }
}

/// What the officer (and the town) want to know about syncing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogStatus {
    pub ward: String,
    /// Highest recorded (durable) seq; 0 when the log is empty.
    pub last_seq: u64,
    /// Every seq up to this one was acknowledged by the town's JetStream.
    pub acked_seq: u64,
    /// Recorded events the town has not acknowledged yet.
    pub pending: u64,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Handle on the ward log. Clones share one database and one flusher.
#[derive(Clone)]
pub struct WardLog {
    inner: Arc<Inner>,
}

struct Inner {
    ward: WardPath,
    catalogue: Catalogue,
    log: sled::Tree,
    ids: sled::Tree,
    meta: sled::Tree,
    identity: sled::Tree,
    /// The next seq to assign; held while assigning and inserting.
    next_seq: Mutex<u64>,
    commit: GroupCommit,
    /// Woken after every append, so the replicator never polls an idle log.
    appended: Arc<Notify>,
}

impl std::fmt::Debug for WardLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WardLog").field("ward", &self.inner.ward).finish_non_exhaustive()
    }
}

fn ward_key(w: &WardPath) -> String {
    format!("{}.{}.{}", w.province, w.town, w.ward)
}

fn seq_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

impl WardLog {
    /// Opens (or creates) the log in `<data_dir>/wardlog` for `ward`.
    /// Refuses a directory that belongs to another ward, and reports a
    /// directory held by another process as [`LogError::Locked`].
    pub fn open(data_dir: &Path, ward: WardPath, catalogue: Catalogue) -> Result<WardLog, LogError> {
        let dir = data_dir.join(LOG_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| LogError::Storage { action: "create the directory of", detail: format!("{}: {e}", dir.display()) })?;
        let db = sled::Config::new().path(&dir).open().map_err(|e| match e {
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => LogError::Locked { dir: dir.clone() },
            other => LogError::Storage { action: "open", detail: format!("{}: {other}", dir.display()) },
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(storage("open"));
        let (log, ids, meta, identity) = (tree("log")?, tree("ids")?, tree("meta")?, tree("identity")?);

        let expected = ward_key(&ward);
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

        let last = log.last().map_err(storage("read"))?.map(|(k, _)| seq_of(&k)).unwrap_or(0);
        // Whatever sled recovered may still sit only in the page cache (the
        // previous process died between insert and fsync): make it durable
        // before anyone reads it.
        let files = SledFiles::open(&dir)
            .map_err(|e| LogError::Storage { action: "open the files of", detail: format!("{}: {e}", dir.display()) })?;
        files.flush_durably(&db).map_err(|e| LogError::NotDurable(e.to_string()))?;

        let commit = GroupCommit::start(format!("ward-log-flusher-{}", ward.ward), db.clone(), files, last)
            .map_err(|e| LogError::Storage { action: "start the flusher of", detail: e.to_string() })?;
        tracing::info!(ward = %ward.ward, dir = %dir.display(), last_seq = last, "ward log opened");
        Ok(WardLog {
            inner: Arc::new(Inner {
                ward,
                catalogue,
                log,
                ids,
                meta,
                identity,
                next_seq: Mutex::new(last + 1),
                commit,
                appended: Arc::new(Notify::new()),
            }),
        })
    }

    pub fn ward(&self) -> &WardPath {
        &self.inner.ward
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    /// Records one event and returns its envelope once it is durable.
    ///
    /// Refuses, changing nothing: an invalid event (catalogue, years, text),
    /// an event over [`MAX_EVENT_BYTES`], a correction or retraction that does
    /// not name an original event of this ward (or changes its kind or case),
    /// a case event for a case not opened here, and `case.opened` itself
    /// (which goes through [`crate::identity::open_case`]).
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
        let (envs, ticket) = self.write(author, events, identity)?;
        self.wait_durable(ticket).await?;
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
        if self.inner.identity.contains_key(case_id.as_bytes()).map_err(storage("read"))? {
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
    /// Returns the envelopes and the ticket to wait for.
    fn write(&self, author: &str, events: Vec<Event>, identity: Option<(Uuid, Vec<u8>)>) -> Result<(Vec<Envelope>, u64), LogError> {
        let inner = &self.inner;
        let mut next = inner.next_seq.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut envs = Vec::with_capacity(events.len());
        let mut rows = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let env = Envelope {
                id: Uuid::now_v7(),
                schema: SCHEMA_VERSION,
                province: inner.ward.province.clone(),
                town: inner.ward.town.clone(),
                ward: inner.ward.ward.clone(),
                seq: *next + i as u64,
                recorded_at: Utc::now(),
                author: author.to_owned(),
                event,
            };
            let bytes = env.encode();
            if bytes.len() > MAX_EVENT_BYTES {
                return Err(LogError::TooLarge { size: bytes.len() });
            }
            rows.push((env.seq.to_be_bytes(), env.id, bytes));
            envs.push(env);
        }
        (&inner.log, &inner.ids, &inner.identity)
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
            .map_err(|e| LogError::Storage { action: "write", detail: format!("{e:?}") })?;
        *next += envs.len() as u64;
        inner.commit.written(*next - 1);
        drop(next);
        Ok((envs, inner.commit.ticket()))
    }

    async fn wait_durable(&self, ticket: u64) -> Result<(), LogError> {
        self.inner.commit.wait(ticket).await.map_err(LogError::NotDurable)
    }

    /// Waits until every write made so far is on stable storage.
    pub async fn flush(&self) -> Result<(), LogError> {
        let ticket = self.inner.commit.ticket();
        self.wait_durable(ticket).await
    }

    /// The event with this id, if this ward recorded it.
    pub fn get(&self, id: Uuid) -> Result<Option<Envelope>, LogError> {
        let Some(key) = self.inner.ids.get(id.as_bytes()).map_err(storage("read"))? else { return Ok(None) };
        let seq = seq_of(&key);
        match self.inner.log.get(key).map_err(storage("read"))? {
            Some(bytes) => decode(seq, &bytes).map(Some),
            None => Ok(None),
        }
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
        self.inner
            .log
            .range(from..=to)
            .take(limit)
            .map(|item| {
                let (k, v) = item.map_err(storage("read"))?;
                decode(seq_of(&k), &v)
            })
            .collect()
    }

    /// Highest recorded seq: every event up to it is durable. 0 when empty.
    pub fn last_seq(&self) -> u64 {
        self.inner.commit.durable_seq()
    }

    /// Highest seq such that the town acknowledged it and every seq before it.
    pub fn acked_seq(&self) -> Result<u64, LogError> {
        Ok(self.inner.meta.get(ACKED_SEQ).map_err(storage("read"))?.map(|v| seq_of(&v)).unwrap_or(0))
    }

    /// Records durably that the town acknowledged every seq up to `seq`.
    /// Never moves backwards.
    pub async fn set_acked(&self, seq: u64) -> Result<(), LogError> {
        let last = self.last_seq();
        if seq > last {
            return Err(LogError::AckBeyondEnd { seq, last });
        }
        self.inner
            .meta
            .fetch_and_update(ACKED_SEQ, |old| {
                let old = old.map(seq_of).unwrap_or(0);
                Some(old.max(seq).to_be_bytes().to_vec())
            })
            .map_err(storage("write"))?;
        let ticket = self.inner.commit.ticket();
        self.wait_durable(ticket).await
    }

    /// Notes a replication round that reached the end of the log.
    pub fn set_sync_ok(&self, at: DateTime<Utc>) -> Result<(), LogError> {
        let meta = &self.inner.meta;
        meta.insert(LAST_SYNC_AT, at.to_rfc3339().as_bytes()).map_err(storage("write"))?;
        meta.remove(LAST_ERROR).map_err(storage("write"))?;
        meta.remove(LAST_ERROR_AT).map_err(storage("write"))?;
        Ok(())
    }

    /// Notes why the last replication attempt failed.
    pub fn set_sync_error(&self, error: &str, at: DateTime<Utc>) -> Result<(), LogError> {
        let meta = &self.inner.meta;
        meta.insert(LAST_ERROR, error.as_bytes()).map_err(storage("write"))?;
        meta.insert(LAST_ERROR_AT, at.to_rfc3339().as_bytes()).map_err(storage("write"))?;
        Ok(())
    }

    pub fn status(&self) -> Result<LogStatus, LogError> {
        let meta = &self.inner.meta;
        let text = |key: &str| -> Result<Option<String>, LogError> {
            Ok(meta.get(key).map_err(storage("read"))?.map(|v| String::from_utf8_lossy(&v).into_owned()))
        };
        let time = |key: &str| -> Result<Option<DateTime<Utc>>, LogError> {
            Ok(text(key)?.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)))
        };
        let last_seq = self.last_seq();
        let acked_seq = self.acked_seq()?;
        Ok(LogStatus {
            ward: self.inner.ward.ward.clone(),
            last_seq,
            acked_seq,
            pending: last_seq.saturating_sub(acked_seq),
            last_sync_at: time(LAST_SYNC_AT)?,
            last_error: text(LAST_ERROR)?,
            last_error_at: time(LAST_ERROR_AT)?,
        })
    }

    /// Woken after every append (used by the replicator).
    pub(crate) fn appended(&self) -> Arc<Notify> {
        self.inner.appended.clone()
    }

    /// The stored identity bytes of a case (see [`crate::identity`]).
    pub(crate) fn identity_bytes(&self, case_id: Uuid) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.inner.identity.get(case_id.as_bytes()).map_err(storage("read"))?.map(|v| v.to_vec()))
    }
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
