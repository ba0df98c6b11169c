//! What the town keeps of every applied event: its body in force (the
//! original, or its latest correction), its ward `seq` and whether it was
//! retracted, found by event id when a correction, a retraction or a replay
//! names it.
//!
//! A ward's events are kept in blocks, `evb/<ward>/<id of the block's first
//! event>`, each holding up to [`BLOCK_EVENTS`] of the ward's events in the
//! order they were applied (a block is closed early once it passes
//! [`BLOCK_BYTES`]), and `evo/<ward>` names the ward's last block, the one
//! that takes the next event (with its last id and size, so that adding to
//! it reads nothing else). Within a ward the ids in blocks rise strictly
//! from block to block and inside each, so the block that would hold an id
//! is the last block keyed at or below it ([`Kv::floor`]). An event whose
//! id does not rise above the last one the ward's blocks hold (ids are
//! time-ordered v7 from the ward's clock, which may go back) is kept under
//! `ev/<id>` on its own, as every event was in stores written before the
//! blocks; finding an id looks in the ward's block first, then there.
//!
//! Why blocks: sled 0.34 copies a leaf node on every insert and splits
//! leaves at 16 entries, so a new key per event was the dearest write of
//! the fold (an apply rate 24,804 → 40,356/s without it, 6 × 50,000
//! events; BENCHMARKS.md). A block is inserted once per batch it changes.
//!
//! An entry: event id (16 bytes), seq (u64 BE), retracted (1 byte), length
//! of the body (u32 BE), the body (the event's JSON, as in `EvRecord`).
//! `evo/<ward>`: first id, last id (16 bytes each), events and bytes of the
//! block (u32 BE each).

use std::ops::{Bound, Range};

use treem_proto::event::Event;
use uuid::Uuid;

use crate::fold::{EvRecord, get_json, put_json};
use crate::keys;
use crate::kv::Kv;

/// Events a block holds at most.
pub const BLOCK_EVENTS: usize = 16;
/// A block takes no further event once it is this large (a leaf of 17
/// blocks stays far below sled's 128 KiB, past which a page becomes a
/// separate blob file).
pub const BLOCK_BYTES: usize = 4096;

const HEAD: usize = 16 + 8 + 1 + 4;

/// Where an event's record was found, to write it back there.
#[derive(Debug, Clone, PartialEq)]
pub enum At {
    /// In a block, at these bytes of its value.
    Block { key: Vec<u8>, range: Range<usize> },
    /// On its own under `ev/<id>`.
    Single,
}

struct Entry<'a> {
    id: Uuid,
    seq: u64,
    retracted: bool,
    body: &'a [u8],
}

/// The entries of a block with the bytes each takes; stops at a truncated
/// entry (none is ever written).
fn entries(block: &[u8]) -> impl Iterator<Item = (Range<usize>, Entry<'_>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = block.get(at..at + HEAD)?;
        let len = u32::from_be_bytes(head[25..29].try_into().expect("4 bytes")) as usize;
        let body = block.get(at + HEAD..at + HEAD + len)?;
        let entry = Entry {
            id: Uuid::from_slice(&head[..16]).expect("16 bytes"),
            seq: u64::from_be_bytes(head[16..24].try_into().expect("8 bytes")),
            retracted: head[24] != 0,
            body,
        };
        let range = at..at + HEAD + len;
        at = range.end;
        Some((range, entry))
    })
}

fn push(block: &mut Vec<u8>, id: Uuid, seq: u64, retracted: bool, body: &[u8]) {
    block.reserve(HEAD + body.len());
    block.extend_from_slice(id.as_bytes());
    block.extend_from_slice(&seq.to_be_bytes());
    block.push(u8::from(retracted));
    block.extend_from_slice(&(body.len() as u32).to_be_bytes());
    block.extend_from_slice(body);
}

fn body_of(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).expect("an event serialises")
}

/// The ward's open block as `evo/<ward>` sums it up: its key's id, the id
/// of its last event, how many events and bytes it holds.
struct Open {
    first: Uuid,
    last: Uuid,
    events: u32,
    bytes: u32,
}

impl Open {
    fn decode(v: &[u8]) -> Option<Open> {
        let v: &[u8; 40] = v.try_into().ok()?;
        Some(Open {
            first: Uuid::from_slice(&v[..16]).ok()?,
            last: Uuid::from_slice(&v[16..32]).ok()?,
            events: u32::from_be_bytes(v[32..36].try_into().ok()?),
            bytes: u32::from_be_bytes(v[36..40].try_into().ok()?),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(self.first.as_bytes());
        v.extend_from_slice(self.last.as_bytes());
        v.extend_from_slice(&self.events.to_be_bytes());
        v.extend_from_slice(&self.bytes.to_be_bytes());
        v
    }
}

/// Keeps the record of `event`, just applied as the ward's `seq` with id `id`.
pub fn record(kv: &mut impl Kv, ward: &str, id: Uuid, seq: u64, event: &Event) {
    let open = kv.get(&keys::ev_open(ward)).and_then(|v| Open::decode(&v));
    if open.as_ref().is_some_and(|o| id <= o.last) {
        let rec = EvRecord { ward: ward.into(), seq, event: event.clone(), retracted: false };
        put_json(kv, keys::ev(id), &rec);
        return;
    }
    let mut entry = Vec::with_capacity(HEAD + 256);
    push(&mut entry, id, seq, false, &body_of(event));
    let open = match open {
        Some(o) if (o.events as usize) < BLOCK_EVENTS && (o.bytes as usize) < BLOCK_BYTES => {
            kv.append(keys::ev_block(ward, o.first), &entry);
            Open { first: o.first, last: id, events: o.events + 1, bytes: o.bytes.saturating_add(entry.len() as u32) }
        }
        _ => {
            let bytes = entry.len() as u32;
            kv.put(keys::ev_block(ward, id), entry);
            Open { first: id, last: id, events: 1, bytes }
        }
    };
    kv.put(keys::ev_open(ward), open.encode());
}

/// The record of event `id` if `ward` applied it, with where it is kept;
/// `None` also for another ward's event in a block. An `ev/<id>` record is
/// returned whatever its ward (the caller compares).
pub fn find(kv: &impl Kv, ward: &str, id: Uuid) -> Option<(EvRecord, At)> {
    let block = kv.floor(&keys::ev_block_prefix(ward), Bound::Included(&keys::ev_block(ward, id)));
    if let Some((key, block)) = block
        && let Some((range, e)) = entries(&block).find(|(_, e)| e.id == id)
    {
        let event = serde_json::from_slice(e.body).ok()?;
        let rec = EvRecord { ward: ward.into(), seq: e.seq, event, retracted: e.retracted };
        return Some((rec, At::Block { key, range }));
    }
    get_json(kv, &keys::ev(id)).map(|rec| (rec, At::Single))
}

/// Whether event `id` of `ward` was applied (an `ev/<id>` record of any ward counts).
pub fn applied(kv: &impl Kv, ward: &str, id: Uuid) -> bool {
    find(kv, ward, id).is_some()
}

/// Writes back the record of event `id`, found at `at` by [`find`].
pub fn update(kv: &mut impl Kv, id: Uuid, at: &At, rec: &EvRecord) {
    match at {
        At::Single => put_json(kv, keys::ev(id), rec),
        At::Block { key, range } => {
            let Some(mut block) = kv.get(key) else { return };
            let mut entry = Vec::new();
            push(&mut entry, id, rec.seq, rec.retracted, &body_of(&rec.event));
            block.splice(range.clone(), entry);
            kv.put(key.clone(), block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;
    use treem_proto::event::IndicatorObserved;

    fn observed(n: u64) -> Event {
        Event::IndicatorObserved(IndicatorObserved {
            indicator: "3".into(),
            year: 2024,
            numerator: n,
            denominator: Some(1000),
            source: "health_centre".into(),
        })
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn blocks_fill_then_close_and_every_id_is_found_in_its_ward() {
        let mut kv = MemKv::default();
        for seq in 1..=40u64 {
            record(&mut kv, "a", id(100 + u128::from(seq)), seq, &observed(seq));
            record(&mut kv, "b", id(1000 + u128::from(seq)), seq, &observed(seq));
        }
        let blocks = kv.0.keys().filter(|k| k.starts_with(b"evb/a/")).count();
        assert_eq!(blocks, 40usize.div_ceil(BLOCK_EVENTS), "16 to a block");
        assert!(!kv.0.keys().any(|k| k.starts_with(b"ev/")), "rising ids are never kept alone");
        for seq in 1..=40u64 {
            let (rec, at) = find(&kv, "a", id(100 + u128::from(seq))).expect("found");
            assert_eq!((rec.ward.as_str(), rec.seq, rec.event, rec.retracted), ("a", seq, observed(seq), false));
            assert!(matches!(at, At::Block { .. }));
            assert!(applied(&kv, "a", id(100 + u128::from(seq))));
            assert!(find(&kv, "b", id(100 + u128::from(seq))).is_none(), "another ward's event is not found");
        }
        assert!(find(&kv, "a", id(99)).is_none());
        assert!(find(&kv, "a", id(141)).is_none());
        assert!(!applied(&kv, "a", id(500)));
    }

    #[test]
    fn an_id_that_does_not_rise_is_kept_alone_and_still_found() {
        let mut kv = MemKv::default();
        record(&mut kv, "a", id(50), 1, &observed(1));
        record(&mut kv, "a", id(40), 2, &observed(2)); // the ward's clock went back
        record(&mut kv, "a", id(60), 3, &observed(3));
        assert!(kv.0.contains_key(&keys::ev(id(40))));
        let (rec, at) = find(&kv, "a", id(40)).expect("found");
        assert_eq!((rec.seq, at), (2, At::Single));
        assert_eq!(find(&kv, "a", id(60)).expect("found").0.seq, 3);
    }

    #[test]
    fn an_update_rewrites_only_its_entry() {
        let mut kv = MemKv::default();
        for seq in 1..=5u64 {
            record(&mut kv, "a", id(u128::from(seq)), seq, &observed(seq));
        }
        let (mut rec, at) = find(&kv, "a", id(3)).expect("found");
        rec.event = observed(333_333);
        rec.retracted = true;
        update(&mut kv, id(3), &at, &rec);
        let (again, _) = find(&kv, "a", id(3)).expect("found");
        assert_eq!(again, rec);
        for seq in [1u64, 2, 4, 5] {
            let (other, _) = find(&kv, "a", id(u128::from(seq))).expect("found");
            assert_eq!((other.seq, other.event, other.retracted), (seq, observed(seq), false));
        }
    }

    #[test]
    fn a_store_written_before_the_blocks_is_still_read() {
        let mut kv = MemKv::default();
        let old = EvRecord { ward: "a".into(), seq: 1, event: observed(1), retracted: false };
        put_json(&mut kv, keys::ev(id(7)), &old);
        record(&mut kv, "a", id(9), 2, &observed(2));
        assert_eq!(find(&kv, "a", id(7)).expect("old record").0, old);
        assert!(applied(&kv, "a", id(7)));
        assert_eq!(find(&kv, "a", id(9)).expect("new record").0.seq, 2);
    }
}
