//! What the town keeps of a message it refused from the ward stream — a
//! dead letter — and how the fold records one.
//!
//! `parked/<n BE>` (JSON [`Parked`]) with `n` from `meta/parked_next`,
//! written by the fold in the same atomic batch as everything else the
//! message changed (nothing, or the ward's position when the rules refused
//! an event in its turn). The record keeps the exact bytes of the message,
//! so that [`crate::replay`] can run it through the fold again, and
//! [`crate::deadletter`] can copy it to the dead-letter stream. Records are
//! never deleted: a replayed one is marked with when and what came of it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fold::{Outcome, get_u64, put_json};
use crate::keys;
use crate::kv::Kv;
use treem_proto::event::Envelope;

/// A message refused from the ward stream (`parked/<n>`). Fields after
/// `message` came with replay; records written before them read as
/// defaults (not consumed, no exact payload: `message` stands in for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    pub subject: String,
    pub reason: String,
    pub ward: Option<String>,
    pub seq: Option<u64>,
    /// The message as received, lossily as text and cut at 4 KiB, for the operator.
    pub message: String,
    /// True when the event took its place in the ward's sequence and was
    /// refused by the rules (its `seq` is consumed: the ward's later events
    /// went on without it). False when the message could not be read or
    /// placed at all (malformed, unknown schema, unknown ward, a ward
    /// publishing for another): the ward's position never moved for it.
    #[serde(default)]
    pub seq_consumed: bool,
    /// The event's id, when the message could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// The exact message, when it is UTF-8 (every JSON message is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The exact message, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<Vec<u8>>,
    /// Set once an operator replayed it successfully: kept for audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<crate::replay::Replayed>,
}

impl Parked {
    /// The message exactly as it was received (for records parked before
    /// exact payloads were kept: the text shown to the operator).
    pub fn payload(&self) -> Vec<u8> {
        match (&self.payload, &self.payload_bytes) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(bytes)) => bytes.clone(),
            (None, None) => self.message.as_bytes().to_vec(),
        }
    }
}

/// What is known of a parked message's place in its ward's sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unplaced<'a> {
    pub ward: Option<&'a str>,
    pub seq: Option<u64>,
    pub event_id: Option<Uuid>,
    /// The ward's position moved past it (refused by the rules).
    pub consumed: bool,
}

impl<'a> Unplaced<'a> {
    pub(crate) fn unread() -> Self {
        Unplaced { ward: None, seq: None, event_id: None, consumed: false }
    }
    pub(crate) fn event(ward: &'a str, env: &Envelope) -> Self {
        Unplaced { ward: Some(ward), seq: Some(env.seq), event_id: Some(env.id), consumed: false }
    }
}

/// Records a refused message as `parked/<n>` with the reason and the exact
/// bytes; returns [`Outcome::Parked`].
pub(crate) fn park(kv: &mut impl Kv, subject: &str, bytes: &[u8], place: Unplaced<'_>, reason: String) -> Outcome {
    let n = get_u64(kv, keys::META_PARKED_NEXT) + 1;
    kv.put(keys::META_PARKED_NEXT.to_vec(), n.to_be_bytes().to_vec());
    let (payload, payload_bytes) = match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_owned()), None),
        Err(_) => (None, Some(bytes.to_vec())),
    };
    let parked = Parked {
        subject: subject.into(),
        reason: reason.clone(),
        ward: place.ward.map(Into::into),
        seq: place.seq,
        message: String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned(),
        seq_consumed: place.consumed,
        event_id: place.event_id,
        payload,
        payload_bytes,
        replayed: None,
    };
    put_json(kv, keys::parked(n), &parked);
    // The store logs it at WARN once committed (this may be a dry run).
    tracing::debug!(parked = n, subject, ward = place.ward, seq = place.seq, reason = %reason, "parking a message");
    Outcome::Parked { reason }
}
