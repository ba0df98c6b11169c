//! What the ward log remembers about replication (trạng thái đồng bộ): how
//! far the town's JetStream acknowledged, when the last round ended, the last
//! error, the last time the acknowledged position was moved back, and the
//! replicator's catch-up progress.
//!
//! Keys (tree `meta`, see [`crate::log`] for the whole layout): `acked_seq`
//! (`u64` BE), `ack_marks` (JSON `[{"seq", "stream_seq", "event_seq"}, …]`), `last_sync_at` /
//! `last_error_at` (RFC 3339), `last_error` (text), `last_rewind` (JSON
//! [`Rewind`]). The catch-up progress ([`CatchUp`]) lives in memory only:
//! it describes the running process.
//!
//! `acked_seq` moves forward with [`WardLog::set_acked_at`] (after JetStream
//! acks) and back only with [`WardLog::rewind_acked`], which records why in
//! `last_rewind` in the same atomic sled batch. Both return once durable.
//!
//! Ack marks ([`AckMark`]): for an acknowledged prefix `1..=seq`, the
//! highest stream sequence any of its acks named (for a duplicate, JetStream
//! names the original's) and which event that was. Every event of the
//! prefix is stored at or below that position, so finding that event still
//! there proves the whole prefix survived a tail loss. The newest mark is
//! the one of `acked_seq` (when the replicator set it); older ones are kept
//! at least [`MARK_SPACING`] seqs apart, at most [`MAX_ACK_MARKS`] of them,
//! reaching back ~8,000 events. Written in the same sled transaction as
//! `acked_seq`. Reconciliation reads the stream at those positions to tell
//! what survived (`reconcile.rs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::log::{LogError, WardLog, not_durable, storage};
use crate::log_db::seq_of;

const ACKED_SEQ: &str = "acked_seq";
const LAST_SYNC_AT: &str = "last_sync_at";
const LAST_ERROR: &str = "last_error";
const LAST_ERROR_AT: &str = "last_error_at";
const LAST_REWIND: &str = "last_rewind";
const ACK_MARKS: &str = "ack_marks";

/// Most ack marks kept.
pub const MAX_ACK_MARKS: usize = 32;
/// Least distance in seqs between two kept marks (but the newest).
pub const MARK_SPACING: u64 = 256;

/// Where the acknowledged prefix `1..=seq` of this ward's events lies in
/// the town's stream: at or below `stream_seq`, where event `event_seq` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMark {
    /// Every ward seq up to this one was acknowledged…
    pub seq: u64,
    /// …at a stream sequence ≤ this one (the highest any of their acks named)…
    pub stream_seq: u64,
    /// …which is where the ack of this ward seq put it.
    pub event_seq: u64,
}

fn marks_of(bytes: Option<&[u8]>) -> Vec<AckMark> {
    bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default()
}

/// Adds `mark` as the newest, keeping older marks spaced and bounded.
fn push_mark(marks: &mut Vec<AckMark>, mark: AckMark) {
    marks.retain(|m| m.seq < mark.seq);
    if let [.., before, last] = marks.as_slice()
        && last.seq - before.seq < MARK_SPACING
    {
        marks.pop();
    }
    marks.push(mark);
    let excess = marks.len().saturating_sub(MAX_ACK_MARKS);
    marks.drain(..excess);
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
    /// The last time `acked_seq` was moved back (the town's stream had lost
    /// events), if ever.
    #[serde(default)]
    pub last_rewind: Option<Rewind>,
    /// The current catch-up of a backlog, or the last one since the node
    /// started (then `finished_at` is set).
    #[serde(default)]
    pub catch_up: Option<CatchUp>,
}

/// `acked_seq` moved back from `from_acked_seq` to `to_seq`: the events
/// after `to_seq` are sent again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rewind {
    pub at: DateTime<Utc>,
    pub from_acked_seq: u64,
    pub to_seq: u64,
    pub reason: String,
}

/// Progress of one replication round that had a backlog to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatchUp {
    /// First and last seq of the round.
    pub from_seq: u64,
    pub to_seq: u64,
    /// Highest seq acknowledged so far in this round.
    pub acked_seq: u64,
    pub started_at: DateTime<Utc>,
    /// Set when the round reached `to_seq`.
    pub finished_at: Option<DateTime<Utc>>,
    /// Events acknowledged per second since `started_at`.
    pub per_sec: f64,
}

impl CatchUp {
    /// Share of the round acknowledged, 0–100.
    pub fn percent(&self) -> f64 {
        let total = self.to_seq.saturating_sub(self.from_seq) + 1;
        let done = self.acked_seq.saturating_sub(self.from_seq.saturating_sub(1));
        100.0 * done as f64 / total as f64
    }
}

impl WardLog {
    /// Highest seq such that the town acknowledged it and every seq before it.
    pub fn acked_seq(&self) -> Result<u64, LogError> {
        self.with_db(|db| Ok(db.meta.get(ACKED_SEQ).map_err(storage("read"))?.map(|v| seq_of(&v)).unwrap_or(0)))
    }

    /// Records durably that the town acknowledged every seq up to
    /// `mark.seq`, and `mark` as the newest ack mark. Never moves
    /// `acked_seq` backwards.
    pub async fn set_acked_at(&self, mark: AckMark) -> Result<(), LogError> {
        self.note_acked_at(mark)?.await.map_err(not_durable)
    }

    /// Records that the town acknowledged every seq up to `mark.seq`, like
    /// [`WardLog::set_acked_at`], without waiting for it to be durable: the
    /// next group commit covers it. What the replicator does while a catch-up
    /// runs, so its publishes never wait on the disk; losing such a note to a
    /// crash only publishes those events again (de-duplicated by the stream).
    pub(crate) fn note_acked_at(
        &self,
        mark: AckMark,
    ) -> Result<impl std::future::Future<Output = Result<(), crate::group_commit::FlushFailure>> + use<>, LogError> {
        let seq = mark.seq;
        let last = self.last_seq();
        if seq > last {
            return Err(LogError::AckBeyondEnd { seq, last });
        }
        let durable = self.with_writable_db(|db| {
            db.meta
                .transaction(|tx| {
                    let old = tx.get(ACKED_SEQ)?.map(|v| seq_of(&v)).unwrap_or(0);
                    if seq >= old {
                        tx.insert(ACKED_SEQ, &seq.to_be_bytes())?;
                        let mut marks = marks_of(tx.get(ACK_MARKS)?.as_deref());
                        push_mark(&mut marks, mark);
                        tx.insert(ACK_MARKS, serde_json::to_vec(&marks).expect("marks always serialise"))?;
                    }
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Storage(e) => self.write_failed(db, "write", e),
                    sled::transaction::TransactionError::Abort(()) => LogError::Storage { action: "write", detail: "aborted".into() },
                })?;
            Ok(db.commit.wait(db.commit.ticket()))
        })?;
        Ok(durable)
    }

    /// The ack marks, oldest first (see the module doc).
    pub fn ack_marks(&self) -> Result<Vec<AckMark>, LogError> {
        self.with_db(|db| Ok(marks_of(db.meta.get(ACK_MARKS).map_err(storage("read"))?.as_deref())))
    }

    /// Records durably that the town acknowledged every seq up to `seq`,
    /// without a mark. Never moves backwards.
    pub async fn set_acked(&self, seq: u64) -> Result<(), LogError> {
        let last = self.last_seq();
        if seq > last {
            return Err(LogError::AckBeyondEnd { seq, last });
        }
        let durable = self.with_writable_db(|db| {
            db.meta
                .fetch_and_update(ACKED_SEQ, |old| {
                    let old = old.map(seq_of).unwrap_or(0);
                    Some(old.max(seq).to_be_bytes().to_vec())
                })
                .map_err(|e| self.write_failed(db, "write", e))?;
            Ok(db.commit.wait(db.commit.ticket()))
        })?;
        durable.await.map_err(not_durable)
    }

    /// Moves `acked_seq` back to `to_seq` (never forward), durably, and
    /// records why as `last_rewind`: the events after `to_seq` will be sent
    /// again. Used by the replicator when the town's stream no longer holds
    /// what it acknowledged (see [`crate::replicator`]); harmless otherwise,
    /// because the town applies each seq once. Returns the previous
    /// `acked_seq`, or `None` if it was not above `to_seq` (nothing changed).
    pub async fn rewind_acked(&self, to_seq: u64, reason: &str) -> Result<Option<u64>, LogError> {
        let durable = self.with_writable_db(|db| {
            let from = db.meta.get(ACKED_SEQ).map_err(storage("read"))?.map(|v| seq_of(&v)).unwrap_or(0);
            if from <= to_seq {
                return Ok(None);
            }
            let rewind = Rewind { at: Utc::now(), from_acked_seq: from, to_seq, reason: reason.into() };
            let mut marks = marks_of(db.meta.get(ACK_MARKS).map_err(storage("read"))?.as_deref());
            marks.retain(|m| m.seq <= to_seq);
            let mut batch = sled::Batch::default();
            batch.insert(ACKED_SEQ, &to_seq.to_be_bytes());
            batch.insert(ACK_MARKS, serde_json::to_vec(&marks).expect("marks always serialise"));
            batch.insert(LAST_REWIND, serde_json::to_vec(&rewind).expect("a rewind always serialises"));
            db.meta.apply_batch(batch).map_err(|e| self.write_failed(db, "write", e))?;
            Ok(Some((from, db.commit.wait(db.commit.ticket()))))
        })?;
        match durable {
            None => Ok(None),
            Some((from, durable)) => {
                durable.await.map_err(not_durable)?;
                Ok(Some(from))
            }
        }
    }

    /// Notes a replication round that reached the end of the log.
    pub fn set_sync_ok(&self, at: DateTime<Utc>) -> Result<(), LogError> {
        self.with_writable_db(|db| {
            let meta = &db.meta;
            let fail = |e| self.write_failed(db, "write", e);
            meta.insert(LAST_SYNC_AT, at.to_rfc3339().as_bytes()).map_err(fail)?;
            meta.remove(LAST_ERROR).map_err(fail)?;
            meta.remove(LAST_ERROR_AT).map_err(fail)?;
            Ok(())
        })
    }

    /// Notes why the last replication attempt failed.
    pub fn set_sync_error(&self, error: &str, at: DateTime<Utc>) -> Result<(), LogError> {
        self.with_writable_db(|db| {
            let meta = &db.meta;
            let fail = |e| self.write_failed(db, "write", e);
            meta.insert(LAST_ERROR, error.as_bytes()).map_err(fail)?;
            meta.insert(LAST_ERROR_AT, at.to_rfc3339().as_bytes()).map_err(fail)?;
            Ok(())
        })
    }

    /// Publishes the replicator's catch-up progress in [`LogStatus`].
    pub(crate) fn set_catch_up(&self, progress: CatchUp) {
        *self.inner.catch_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress);
    }

    pub fn status(&self) -> Result<LogStatus, LogError> {
        let last_seq = self.last_seq();
        let acked_seq = self.acked_seq()?;
        let (last_sync_at, last_error, last_error_at, last_rewind) = self.with_db(|db| {
            let text = |key: &str| -> Result<Option<String>, LogError> {
                Ok(db.meta.get(key).map_err(storage("read"))?.map(|v| String::from_utf8_lossy(&v).into_owned()))
            };
            let time = |key: &str| -> Result<Option<DateTime<Utc>>, LogError> {
                Ok(text(key)?.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)))
            };
            let rewind = db.meta.get(LAST_REWIND).map_err(storage("read"))?.and_then(|v| serde_json::from_slice::<Rewind>(&v).ok());
            Ok((time(LAST_SYNC_AT)?, text(LAST_ERROR)?, time(LAST_ERROR_AT)?, rewind))
        })?;
        Ok(LogStatus {
            ward: self.ward().ward.clone(),
            last_seq,
            acked_seq,
            pending: last_seq.saturating_sub(acked_seq),
            last_sync_at,
            last_error,
            last_error_at,
            last_rewind,
            catch_up: self.inner.catch_up.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(marks: &[AckMark]) -> Vec<u64> {
        marks.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn marks_keep_the_newest_and_spaced_older_ones() {
        let mut marks = Vec::new();
        for seq in 1..=600 {
            push_mark(&mut marks, AckMark { seq, stream_seq: seq + 1000, event_seq: seq });
        }
        assert_eq!(seqs(&marks), [1, 257, 513, 600]);
        assert_eq!(marks.last(), Some(&AckMark { seq: 600, stream_seq: 1600, event_seq: 600 }));
        for seq in (601..=100_000).step_by(7) {
            push_mark(&mut marks, AckMark { seq, stream_seq: seq, event_seq: seq });
        }
        assert_eq!(marks.len(), MAX_ACK_MARKS);
        assert!(marks.windows(2).rev().skip(1).all(|w| w[1].seq - w[0].seq >= MARK_SPACING), "{:?}", seqs(&marks));
        // A mark at or below existing ones (after a rewind) replaces them.
        push_mark(&mut marks, AckMark { seq: 99_000, stream_seq: 5, event_seq: 98_000 });
        assert_eq!(marks.last().map(|m| m.seq), Some(99_000));
        assert!(marks.iter().all(|m| m.seq <= 99_000));
    }
}
