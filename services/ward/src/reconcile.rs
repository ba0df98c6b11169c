//! Reconciliation (đối soát với thị xã): on every (re)connect, before it
//! sends anything, the replicator asks the town's stream what it really
//! holds for this ward, and sends again whatever the stream lost.
//!
//! # Why
//!
//! Two promises, of different strength:
//!
//! - The ward says "recorded" once the event is in its log *and* the log is
//!   `fdatasync`ed ([`crate::log`]). That survives kill -9 and power loss.
//! - JetStream acknowledges a publish once the server has stored it in the
//!   stream's files, i.e. in the town machine's page cache; with the default
//!   `sync_interval` (2 min, deploy/nats/treem.conf) it fsyncs them only
//!   every two minutes. A kill -9 of nats-server loses nothing (the kernel
//!   still writes the pages), but a power cut or a kernel crash at the town,
//!   or a restore of an older copy of its store, takes back messages it had
//!   acknowledged.
//!
//! The ward never drops an event from its log, so it can send them again;
//! the town applies each seq of a ward once (DESIGN.md §3 invariant 2), so
//! sending again is harmless. That is cheaper than `sync_interval: always`
//! (an fsync per publish on the town's server; figures in RELIABILITY.md).
//!
//! # How
//!
//! When the replicator stores `acked_seq` it also stores an *ack mark*
//! (`sync_state.rs`): the highest stream sequence the acks of `1..=acked_seq`
//! named and which event is there; a few older marks are kept too. On
//! reconnect:
//!
//! 1. Read the stream at the mark of `acked_seq` (`$JS.API.STREAM.MSG.GET`
//!    by sequence). If the mark's event is still there, every event up to
//!    `acked_seq`, stored at or below that position, survived: done. This
//!    also ignores copies of old events published again later (a
//!    redelivery).
//! 2. Otherwise the stream lost it. The newest message on this ward's
//!    subjects (`last_by_subj` = `treem.v1.events.<p>.<t>.<ward>.>`, a
//!    wildcard nats-server ≥ 2.10 accepts; checked on 2.15.1) gives S:
//!    - no message: S = 0;
//!    - its envelope's seq below `acked_seq`: S is exactly where the
//!      survivors end;
//!    - at or above `acked_seq`: those are copies that arrived after the loss
//!      — above all, publishes the client had queued while the server was
//!      down and flushed on reconnect, before this check ran — so they say
//!      nothing about what survived. S is then the `seq` of the newest older
//!      ack mark whose event is still where it was acknowledged, or 0.
//! 3. WARN with the figures, move `acked_seq` back to S durably
//!    ([`WardLog::rewind_acked`], recorded as `last_rewind` in the status),
//!    and the round that follows sends S+1… again.
//!
//! Without a mark for `acked_seq` (a log written before marks existed, or
//! right after a rewind), step 1 is skipped and step 2 rewinds only when the
//! newest message is below `acked_seq`.
//!
//! Why this is enough: a crash or a restored copy loses a *tail* of the
//! stream, so a message found where it was acknowledged vouches for every
//! position before it — and a mark names the highest position of its prefix
//! (a copy flushed on reconnect, acked as a duplicate, points back to its
//! original and so never lowers that position). A hole in the middle
//! (an operator deleting single messages) is not looked for; the town's
//! "held behind a gap" shows it.
//!
//! Skipped while `acked_seq` is 0: the stream cannot have lost anything of
//! this ward. Cost: one or two requests per connection, none per event; up
//! to [`crate::sync_state::MAX_ACK_MARKS`] more only after a loss.

use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use serde::Deserialize;
use treem_proto::subject;

use crate::log::{AckMark, WardLog};
use crate::replicator::SyncError;

/// What reconciliation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reconciled {
    /// The ward seq of the newest message the stream holds for this ward
    /// (0: none); `None` when it was not asked (nothing acknowledged yet).
    pub(crate) stream_seq: Option<u64>,
    /// `acked_seq` before it was moved back to `stream_seq`, if it was.
    pub(crate) rewound_from: Option<u64>,
}

/// Only what is needed of an envelope, so that any schema version reads.
#[derive(Deserialize)]
struct SeqOf {
    ward: String,
    seq: u64,
}

/// The ward seq of a stream message if it is an envelope of this ward.
fn ward_seq_of(payload: &[u8], ward: &str) -> Option<u64> {
    serde_json::from_slice::<SeqOf>(payload).ok().filter(|e| e.ward == ward).map(|e| e.seq)
}

/// Compares `acked_seq` with what the stream holds and moves it back if the
/// stream lost events. See the module doc.
pub(crate) async fn reconcile(log: &WardLog, js: &Context, stream: &str) -> Result<Reconciled, SyncError> {
    let acked = log.acked_seq()?;
    if acked == 0 {
        return Ok(Reconciled { stream_seq: None, rewound_from: None });
    }
    let w = log.ward();
    let failed = |detail: String| SyncError::Reconcile { stream: stream.into(), detail };
    let not_found = |e: &async_nats::jetstream::stream::LastRawMessageError| -> Result<(), SyncError> {
        match e.kind() {
            LastRawMessageErrorKind::NoMessageFound => Ok(()),
            LastRawMessageErrorKind::JetStream(js_err) if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Err(SyncError::NoStream { stream: stream.into() })
            }
            _ => Err(failed(e.to_string())),
        }
    };
    let handle = js.get_stream_no_info(stream).await.map_err(|e| failed(e.to_string()))?;
    // Whether the stream still holds the event of `mark` where it was acked,
    // which proves the prefix `1..=mark.seq` survived (a tail loss).
    let holds = async |mark: AckMark| -> Result<bool, SyncError> {
        if mark.stream_seq == 0 {
            return Ok(false);
        }
        match handle.get_raw_message(mark.stream_seq).await {
            Ok(m) => Ok(ward_seq_of(&m.payload, &w.ward) == Some(mark.event_seq)),
            Err(e) => not_found(&e).map(|()| false),
        }
    };

    let marks = log.ack_marks()?;
    let acked_mark = marks.last().copied().filter(|m| m.seq == acked);
    if let Some(mark) = acked_mark
        && holds(mark).await?
    {
        tracing::debug!(ward = %w.ward, acked_seq = acked, stream_sequence = mark.stream_seq, "the town's stream holds everything it acknowledged");
        return Ok(Reconciled { stream_seq: Some(acked), rewound_from: None });
    }

    let filter = subject::ward_events_filter(&w.province, &w.town, &w.ward);
    let newest = match handle.get_last_raw_message_by_subject(&filter).await {
        Ok(m) => match ward_seq_of(&m.payload, &w.ward) {
            Some(seq) => Some(seq),
            None => {
                tracing::warn!(ward = %w.ward, stream_sequence = m.sequence, "the newest message on this ward's subjects is not an envelope of this ward; cannot check what the stream holds");
                return Ok(Reconciled { stream_seq: None, rewound_from: None });
            }
        },
        Err(e) => not_found(&e).map(|()| None)?,
    };
    let stream_seq = match (newest, acked_mark) {
        (None, _) => 0,
        (Some(seq), _) if seq < acked => seq,
        (Some(seq), None) => {
            // No mark to check against: trust the newest message.
            tracing::debug!(ward = %w.ward, acked_seq = acked, stream_seq = seq, "the town's stream holds this ward's events up to at least its acknowledged seq");
            return Ok(Reconciled { stream_seq: Some(seq), rewound_from: None });
        }
        (Some(seq), Some(_)) => {
            // The acked event is gone but later copies arrived: find the
            // newest older mark still in place.
            let mut survivor = 0;
            for mark in marks.iter().rev().skip(1).copied() {
                if holds(mark).await? {
                    survivor = mark.seq;
                    break;
                }
            }
            tracing::warn!(ward = %w.ward, acked_seq = acked, newest_seq = seq, survivor_seq = survivor, "the stream lost this ward's acknowledged events but holds later copies (publishes flushed on reconnect); resending from the newest event still in place");
            survivor
        }
    };
    let lost = acked - stream_seq;
    tracing::warn!(
        ward = %w.ward,
        acked_seq = acked,
        stream_seq,
        lost,
        stream,
        "the town's stream lost events it had acknowledged (power cut or restored store at the town?); sending them again from the ward log"
    );
    let reason = format!(
        "the town's stream {stream} holds this ward's events only up to seq {stream_seq}, but had acknowledged up to seq {acked}; {lost} event(s) sent again"
    );
    let rewound_from = log.rewind_acked(stream_seq, &reason).await?;
    Ok(Reconciled { stream_seq: Some(stream_seq), rewound_from })
}
