//! Key layout of the town store (one sled tree, `town`), shared by the fold,
//! the views and the store. Every key is a readable ASCII prefix, then binary
//! big-endian numbers where order matters.
//!
//! | key | value | meaning |
//! | --- | --- | --- |
//! | `pos/<ward>` | u64 BE | last ward `seq` applied (contiguous) |
//! | `wi/<ward>` | [`WardInfo`](crate::fold::WardInfo), binary ([`crate::records`]; JSON in stores written before) | sync facts of the ward |
//! | `held/<ward>/<seq BE>` | event bytes | arrived ahead of a gap, waits its turn |
//! | `evb/<ward>/<event id 16 bytes>` | up to 16 event entries | applied events of the ward from this id on, each with its body in force ([`crate::evlog`]) |
//! | `evo/<ward>` | 40 bytes | the ward's last `evb/` block, which takes its next event: its first and last ids, events and bytes |
//! | `ev/<event id 16 bytes>` | JSON `EvRecord` | an applied event's body in force, kept alone: ids that did not rise, and every event of stores written before `evb/` |
//! | `fact/<fact key>/<seq BE>` | JSON | observation, population or recognition from event at `seq`; the highest seq wins |
//! | `case/<case id 16 bytes>` | [`CaseState`](crate::fold::CaseState), binary ([`crate::records`]; JSON in stores written before) | one pseudonymous case |
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

/// The parts of a key one after another, allocated once: the fold builds
/// several keys per event, and `format!` showed in its profile (a fifth
/// of its time, most of it in a case's count keys).
fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

/// A number in decimal digits, as `format!` writes it, without allocating.
struct Decimal {
    digits: [u8; 5],
    start: usize,
}

impl Decimal {
    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

fn decimal(mut n: u16) -> Decimal {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return Decimal { digits, start };
        }
    }
}

pub fn pos(ward: &str) -> Vec<u8> {
    join(&[b"pos/", ward.as_bytes()])
}
pub fn ward_info(ward: &str) -> Vec<u8> {
    join(&[b"wi/", ward.as_bytes()])
}
pub const WARD_INFO_PREFIX: &[u8] = b"wi/";
pub fn held_prefix(ward: &str) -> Vec<u8> {
    join(&[b"held/", ward.as_bytes(), b"/"])
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
    join(&[b"evb/", ward.as_bytes(), b"/"])
}
pub fn ev_block(ward: &str, first: Uuid) -> Vec<u8> {
    let mut k = ev_block_prefix(ward);
    k.extend_from_slice(first.as_bytes());
    k
}
pub fn ev_open(ward: &str) -> Vec<u8> {
    join(&[b"evo/", ward.as_bytes()])
}
pub fn fact_prefix(fact: &str) -> Vec<u8> {
    join(&[b"fact/", fact.as_bytes(), b"/"])
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
    join(&[b"cnt/", decimal(year).as_bytes(), b"/"])
}
pub fn count(year: u16, ward: &str, category: &str, sex: &str, band: &str, status: &str) -> Vec<u8> {
    let year = decimal(year);
    join(&[
        b"cnt/",
        year.as_bytes(),
        b"/",
        ward.as_bytes(),
        b"/",
        category.as_bytes(),
        b"/",
        sex.as_bytes(),
        b"/",
        band.as_bytes(),
        b"/",
        status.as_bytes(),
    ])
}
pub fn supported_prefix(year: u16) -> Vec<u8> {
    join(&[b"sup/", decimal(year).as_bytes(), b"/"])
}
pub fn supported(year: u16, ward: &str, category: &str) -> Vec<u8> {
    let year = decimal(year);
    join(&[b"sup/", year.as_bytes(), b"/", ward.as_bytes(), b"/", category.as_bytes()])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_bytes_format_writes() {
        for year in [0u16, 7, 10, 2021, 2030, 9999, u16::MAX] {
            assert_eq!(decimal(year).as_bytes(), year.to_string().as_bytes());
            assert_eq!(count(year, "25320", "abuse", "f", "0-5", "open"), format!("cnt/{year}/25320/abuse/f/0-5/open").into_bytes());
            assert_eq!(supported(year, "25320", "abuse"), format!("sup/{year}/25320/abuse").into_bytes());
            assert_eq!(count_prefix(year), format!("cnt/{year}/").into_bytes());
            assert_eq!(supported_prefix(year), format!("sup/{year}/").into_bytes());
        }
        assert_eq!(pos("25320"), b"pos/25320");
        assert_eq!(ward_info("25320"), b"wi/25320");
        assert_eq!(held_prefix("25320"), b"held/25320/");
        assert_eq!(ev_block_prefix("25320"), b"evb/25320/");
        assert_eq!(ev_open("25320"), b"evo/25320");
        assert_eq!(fact_prefix("obs|25320|2024|1.1"), b"fact/obs|25320|2024|1.1/");
    }
}
