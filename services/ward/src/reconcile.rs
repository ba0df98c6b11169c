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
//! this ward. Cost: two to three requests per connection, none per event; a
//! few per [`crate::sync_state::MAX_ACK_MARKS`] more only after a loss.
//!
//! # Reading the stream with a ward's rights only
//!
//! A ward's NATS identity (SECURITY.md, deploy/nats/secure/) may read
//! nothing of other wards, so it cannot use `$JS.API.STREAM.MSG.GET`: that
//! request names the sequence in its body, which permissions cannot check,
//! and returns whatever message is there. The two reads above go instead
//! through what the server can confine to the ward's own subjects:
//!
//! - "the message at stream position N" (step 1, and the older marks): the
//!   ward's *probe consumer* `ward-<ward>-probe`, a durable pull consumer
//!   the town creates on its stream with this ward's subjects as its filter
//!   (`services/town/src/stream.rs`). The ward resets it to N
//!   (`$JS.API.CONSUMER.RESET`, nats-server ≥ 2.14) and pulls one message:
//!   the first of its own messages at or after N. It is "the event at N"
//!   only if its stream sequence is N.
//! - "the newest message on this ward's subjects" (step 2): direct get by
//!   subject, `$JS.API.DIRECT.GET.<stream>.<ward filter>`, whose filter is in
//!   the subject (the stream allows direct gets; the town sets that too).
//!
//! A stream without the probe consumer or without direct gets (a town from
//! before them, a stream made by hand in a test) is read with
//! `$JS.API.STREAM.MSG.GET` as before; a ward identity of the secure
//! configuration is refused that, so there reconciliation waits for the
//! town to have set its stream up.

use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageError, LastRawMessageErrorKind, Stream};
use async_nats::{StatusCode, jetstream};
use futures::StreamExt as _;
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
    let reader = Reader {
        js,
        handle: js.get_stream_no_info(stream).await.map_err(|e| SyncError::Reconcile { stream: stream.into(), detail: e.to_string() })?,
        stream,
        ward: &w.ward,
        filter: subject::ward_events_filter(&w.province, &w.town, &w.ward),
        probe: subject::ward_probe_consumer(&w.ward),
        legacy: AtomicBool::new(false),
        probe_found: AtomicBool::new(false),
    };
    // Whether the stream still holds the event of `mark` where it was acked,
    // which proves the prefix `1..=mark.seq` survived (a tail loss).
    let holds = async |mark: AckMark| -> Result<bool, SyncError> {
        if mark.stream_seq == 0 {
            return Ok(false);
        }
        Ok(reader.own_at(mark.stream_seq).await? == Some(mark.event_seq))
    };

    let marks = log.ack_marks()?;
    let acked_mark = marks.last().copied().filter(|m| m.seq == acked);
    if let Some(mark) = acked_mark
        && holds(mark).await?
    {
        tracing::debug!(ward = %w.ward, acked_seq = acked, stream_sequence = mark.stream_seq, "the town's stream holds everything it acknowledged");
        return Ok(Reconciled { stream_seq: Some(acked), rewound_from: None });
    }

    let newest = match reader.newest().await? {
        Some((_, Some(seq))) => Some(seq),
        Some((stream_sequence, None)) => {
            tracing::warn!(ward = %w.ward, stream_sequence, "the newest message on this ward's subjects is not an envelope of this ward; cannot check what the stream holds");
            return Ok(Reconciled { stream_seq: None, rewound_from: None });
        }
        None => None,
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

/// What one pull from the probe consumer gave.
enum Pulled {
    /// No such consumer (or stream): nobody answered.
    NoConsumer,
    /// Nothing of this ward from the consumer's position on.
    Nothing,
    Message(Box<jetstream::Message>),
}

/// How long a pull from the probe consumer may take.
const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads what the town's stream holds of this ward (see "Reading the stream
/// with a ward's rights only").
struct Reader<'a> {
    js: &'a Context,
    handle: Stream<()>,
    stream: &'a str,
    ward: &'a str,
    /// This ward's subjects, `treem.v1.events.<p>.<t>.<ward>.>`.
    filter: String,
    /// This ward's probe consumer on the stream.
    probe: String,
    /// The stream has no probe consumer or no direct get: use MSG.GET.
    legacy: AtomicBool,
    /// The probe consumer was found (looked for once per reconciliation).
    probe_found: AtomicBool,
}

impl Reader<'_> {
    fn failed(&self, detail: String) -> SyncError {
        SyncError::Reconcile { stream: self.stream.into(), detail }
    }

    fn fall_back(&self, why: &str) {
        if !self.legacy.swap(true, Ordering::Relaxed) {
            tracing::debug!(ward = %self.ward, stream = %self.stream, why, "reading the town's stream with STREAM.MSG.GET (a ward identity of the secure NATS setup may not)");
        }
    }

    /// Maps "no such message" to `Ok(())` and "no such stream" to `NoStream`.
    fn not_found(&self, e: &LastRawMessageError) -> Result<(), SyncError> {
        match e.kind() {
            LastRawMessageErrorKind::NoMessageFound => Ok(()),
            LastRawMessageErrorKind::JetStream(js_err) if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Err(SyncError::NoStream { stream: self.stream.into() })
            }
            _ => Err(self.failed(e.to_string())),
        }
    }

    /// The seq of this ward's event at stream position `at`, if the stream
    /// holds one of this ward's envelopes exactly there.
    async fn own_at(&self, at: u64) -> Result<Option<u64>, SyncError> {
        if !self.legacy.load(Ordering::Relaxed) && !self.probe_found.load(Ordering::Relaxed) {
            // Does the probe consumer exist? A pull says: "no responders"
            // if not. (Not a reset: nats-server 2.15 does not answer a reset
            // of a missing consumer; not consumer info: in a ward's account,
            // which has no JetStream, the server answers that twice, once
            // with "JetStream not enabled".)
            match self.pull_probe().await? {
                Pulled::NoConsumer => self.fall_back("no probe consumer"),
                Pulled::Nothing | Pulled::Message(_) => self.probe_found.store(true, Ordering::Relaxed),
            }
        }
        if !self.legacy.load(Ordering::Relaxed) {
            self.handle
                .reset_consumer(&self.probe, Some(at))
                .await
                .map_err(|e| self.failed(format!("reset of the probe consumer {}: {e}", self.probe)))?;
            // The first of this ward's messages at or after `at`: the event
            // at `at` only if that is where it is.
            return match self.pull_probe().await? {
                Pulled::Message(message) => {
                    let info =
                        message.info().map_err(|e| self.failed(format!("a message from the probe consumer without metadata: {e}")))?;
                    Ok(if info.stream_sequence == at { ward_seq_of(&message.payload, self.ward) } else { None })
                }
                Pulled::Nothing => Ok(None),
                Pulled::NoConsumer => Err(self.failed(format!("the probe consumer {} went away", self.probe))),
            };
        }
        match self.handle.get_raw_message(at).await {
            Ok(m) => Ok(ward_seq_of(&m.payload, self.ward)),
            Err(e) => self.not_found(&e).map(|()| None),
        }
    }

    /// Pulls one message from the probe consumer.
    async fn pull_probe(&self) -> Result<Pulled, SyncError> {
        let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", self.stream, self.probe);
        let failed = |e: &dyn std::fmt::Display| self.failed(format!("pull from the probe consumer {}: {e}", self.probe));
        // Not `Client::request`: a pulled message arrives with its own
        // subject, not the inbox's, so only a subscription of its own sees it.
        let client = self.js.client();
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await.map_err(|e| failed(&e))?;
        client.publish_with_reply(subject, inbox, r#"{"batch":1,"no_wait":true}"#.into()).await.map_err(|e| failed(&e))?;
        let reply = match tokio::time::timeout(PULL_TIMEOUT, replies.next()).await {
            Ok(Some(reply)) => reply,
            Ok(None) => return Err(failed(&"the subscription ended")),
            Err(_) => return Err(failed(&format!("no answer within {PULL_TIMEOUT:?}"))),
        };
        Ok(match reply.status {
            Some(StatusCode::NO_RESPONDERS) => Pulled::NoConsumer,
            // 404 "no messages" (or 408): nothing of this ward from here on.
            Some(status) if status != StatusCode::OK => Pulled::Nothing,
            _ => Pulled::Message(Box::new(jetstream::Message { message: reply, context: self.js.clone() })),
        })
    }

    /// The newest message on this ward's subjects: its stream sequence and,
    /// if it is an envelope of this ward, its seq.
    async fn newest(&self) -> Result<Option<(u64, Option<u64>)>, SyncError> {
        if !self.legacy.load(Ordering::Relaxed) {
            match self.handle.direct_get_last_for_subject(&self.filter).await {
                Ok(m) => return Ok(Some((m.sequence, ward_seq_of(&m.payload, self.ward)))),
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok(None),
                Err(e) if matches!(e.kind(), DirectGetErrorKind::ErrorResponse(s, _) if s == StatusCode::NO_RESPONDERS) => {
                    self.fall_back("no direct get on the stream")
                }
                Err(e) => return Err(self.failed(format!("direct get of the newest message on {}: {e}", self.filter))),
            }
        }
        match self.handle.get_last_raw_message_by_subject(&self.filter).await {
            Ok(m) => Ok(Some((m.sequence, ward_seq_of(&m.payload, self.ward)))),
            Err(e) => self.not_found(&e).map(|()| None),
        }
    }
}
