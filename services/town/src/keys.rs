//! Key layout of the town store (one sled tree, `town`), shared by the fold,
//! the views and the store. Every key is a readable ASCII prefix, then binary
//! big-endian numbers where order matters.
//!
//! | key | value | meaning |
//! | --- | --- | --- |
//! | `pos/<ward>` | u64 BE | last ward `seq` applied (contiguous) |
//! | `wi/<ward>` | JSON [`WardInfo`](crate::fold::WardInfo) | sync facts of the ward |
//! | `held/<ward>/<seq BE>` | event bytes | arrived ahead of a gap, waits its turn |
//! | `evb/<ward>/<event id 16 bytes>` | up to 16 event entries | applied events of the ward from this id on, each with its body in force ([`crate::evlog`]) |
//! | `evo/<ward>` | 40 bytes | the ward's last `evb/` block, which takes its next event: its first and last ids, events and bytes |
//! | `ev/<event id 16 bytes>` | JSON `EvRecord` | an applied event's body in force, kept alone: ids that did not rise, and every event of stores written before `evb/` |
//! | `fact/<fact key>/<seq BE>` | JSON | observation, population or recognition from event at `seq`; the highest seq wins |
//! | `case/<case id 16 bytes>` | JSON `CaseState` | one pseudonymous case |
//! | `cnt/<year>/<ward>/<category>/<sex>/<band>/<status>` | u64 BE | cases counted in the year |
//! | `sup/<year>/<ward>/<category>` | u64 BE | of those, cases with support |
//! | `parked/<n BE>` | JSON [`Parked`](crate::parked::Parked) | refused messages with the reason, the exact bytes and, once replayed, when and what came of it |
//! | `chain64/<ward>/<seq / 64 BE>` | up to 64 × 32 bytes | hashes of the ward's events taken (applied or consumed), slot `seq % 64`, each its successor's `prev` ([`crate::provenance`]) |
//! | `chain/<ward>/<seq BE>` | 32 bytes | the same, one per seq, in stores written before `chain64/` (read, never written) |
//! | `rid/<event id 16 bytes>` | u64 BE `n` | an event applied by replaying `parked/<n>`: a second copy is a duplicate |
//! | `out/<n BE>` | u16 BE year | outbox: years whose figures changed, to forward |
//! | `meta/<name>` | varies | counters (`outbox_next`, `parked_next`, `stream_seq`, `deadletter_published`) |
//!
//! `meta/deadletter_published` is the dead-letter outbox: the highest `n`
//! whose `parked/<n>` the dead-letter stream acknowledged. Every `n` above it
//! up to `meta/parked_next` is still to publish (see [`crate::deadletter`]).

use uuid::Uuid;

pub fn pos(ward: &str) -> Vec<u8> {
    format!("pos/{ward}").into_bytes()
}
pub fn ward_info(ward: &str) -> Vec<u8> {
    format!("wi/{ward}").into_bytes()
}
pub const WARD_INFO_PREFIX: &[u8] = b"wi/";
pub fn held_prefix(ward: &str) -> Vec<u8> {
    format!("held/{ward}/").into_bytes()
}
pub fn held(ward: &str, seq: u64) -> Vec<u8> {
    let mut k = held_prefix(ward);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}
pub fn ev(id: Uuid) -> Vec<u8> {
    let mut k = b"ev/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}
pub fn ev_block_prefix(ward: &str) -> Vec<u8> {
    format!("evb/{ward}/").into_bytes()
}
pub fn ev_block(ward: &str, first: Uuid) -> Vec<u8> {
    let mut k = ev_block_prefix(ward);
    k.extend_from_slice(first.as_bytes());
    k
}
pub fn ev_open(ward: &str) -> Vec<u8> {
    format!("evo/{ward}").into_bytes()
}
pub fn fact_prefix(fact: &str) -> Vec<u8> {
    format!("fact/{fact}/").into_bytes()
}
pub fn fact(fact: &str, seq: u64) -> Vec<u8> {
    let mut k = fact_prefix(fact);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}
pub fn case(id: Uuid) -> Vec<u8> {
    let mut k = b"case/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}
pub fn count_prefix(year: u16) -> Vec<u8> {
    format!("cnt/{year}/").into_bytes()
}
pub fn count(year: u16, ward: &str, category: &str, sex: &str, band: &str, status: &str) -> Vec<u8> {
    format!("cnt/{year}/{ward}/{category}/{sex}/{band}/{status}").into_bytes()
}
pub fn supported_prefix(year: u16) -> Vec<u8> {
    format!("sup/{year}/").into_bytes()
}
pub fn supported(year: u16, ward: &str, category: &str) -> Vec<u8> {
    format!("sup/{year}/{ward}/{category}").into_bytes()
}
pub const PARKED_PREFIX: &[u8] = b"parked/";
pub fn parked(n: u64) -> Vec<u8> {
    let mut k = PARKED_PREFIX.to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}
pub fn replayed_event(id: Uuid) -> Vec<u8> {
    let mut k = b"rid/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}
pub const OUTBOX_PREFIX: &[u8] = b"out/";
pub fn outbox(n: u64) -> Vec<u8> {
    let mut k = OUTBOX_PREFIX.to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}
pub const META_OUTBOX_NEXT: &[u8] = b"meta/outbox_next";
pub const META_PARKED_NEXT: &[u8] = b"meta/parked_next";
pub const META_STREAM_SEQ: &[u8] = b"meta/stream_seq";
pub const META_DEADLETTER_PUBLISHED: &[u8] = b"meta/deadletter_published";

pub fn u64_of(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// The last 8 bytes of a key, as the big-endian number they hold.
pub fn trailing_u64(key: &[u8]) -> u64 {
    key.len().checked_sub(8).map(|s| u64_of(&key[s..])).unwrap_or(0)
}
