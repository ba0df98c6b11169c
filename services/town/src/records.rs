//! The two records the fold reads and rewrites for nearly every event, in a
//! compact binary form: a case (`case/<id>`, [`CaseState`]) for every case
//! event, and a ward's sync facts (`wi/<ward>`, [`WardInfo`]) for every
//! event of the ward. As JSON, reading and writing them (the sync facts'
//! date as RFC 3339 text above all, a case's ids as hex text) was about
//! 3 % of the town's CPU while it applied a stream, on the in-order fold;
//! in binary the fold of a 1,000-event batch is 15–23 % shorter (issue 5;
//! BENCHMARKS.md, "What was changed").
//!
//! Stores written before hold these records as JSON: a record starting
//! with `{` is read as JSON, so nothing is migrated; it is written in the
//! binary form the next time it changes. A record that is neither reads as
//! `None`, as unreadable JSON did.
//!
//! The forms (numbers big-endian; `str` is a u32 length and UTF-8 bytes):
//!
//! - case: `1`, ward `str`, `opened_by` 16 bytes, `year` u16, category,
//!   sex and age band one byte each (their order in `treem_proto::event`),
//!   groups (u32 count, each a u32 code point), closed (`0`, or `1`, the
//!   closing event's 16 bytes and its year u16), supports (u32 count, each
//!   the support event's 16 bytes and its year u16, in id order);
//! - sync facts: `1`, `last_seq` u64, `last_event_id` (`0`, or `1` and 16
//!   bytes), `last_recorded_at` (`0`, or `1`, seconds since the epoch i64
//!   and nanoseconds u32), `applied`, `parked`, `provenance_failures`,
//!   `held` u64 each.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use treem_proto::event::{AgeBand, CaseCategory, Sex};
use uuid::Uuid;

use crate::fold::{CaseState, WardInfo};

/// The first byte of a record in the binary form (JSON starts with `{`).
const BINARY_V1: u8 = 1;

const SEXES: [Sex; 2] = [Sex::Female, Sex::Male];
const AGE_BANDS: [AgeBand; 4] = [AgeBand::Under5, AgeBand::From5To10, AgeBand::From11To15, AgeBand::From16To17];

fn index_of<T: PartialEq>(all: &[T], value: &T) -> u8 {
    all.iter().position(|v| v == value).expect("every value is listed") as u8
}

impl CaseState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.ward.len() + 4 * self.groups.len() + 18 * self.supports.len());
        out.push(BINARY_V1);
        put_str(&mut out, &self.ward);
        out.extend_from_slice(self.opened_by.as_bytes());
        out.extend_from_slice(&self.year.to_be_bytes());
        out.push(index_of(&CaseCategory::ALL, &self.category));
        out.push(index_of(&SEXES, &self.sex));
        out.push(index_of(&AGE_BANDS, &self.age_band));
        out.extend_from_slice(&(self.groups.len() as u32).to_be_bytes());
        for g in &self.groups {
            out.extend_from_slice(&u32::from(*g).to_be_bytes());
        }
        put_opt(&mut out, self.closed, |out, (id, year)| {
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&year.to_be_bytes());
        });
        out.extend_from_slice(&(self.supports.len() as u32).to_be_bytes());
        for (id, year) in &self.supports {
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&year.to_be_bytes());
        }
        out
    }

    /// A stored case in either form; `None` if it reads as neither.
    pub fn decode(bytes: &[u8]) -> Option<CaseState> {
        decode_either(bytes, |r| {
            let ward = r.str()?;
            let opened_by = r.uuid()?;
            let year = r.u16()?;
            let category = *CaseCategory::ALL.get(r.u8()? as usize)?;
            let sex = *SEXES.get(r.u8()? as usize)?;
            let age_band = *AGE_BANDS.get(r.u8()? as usize)?;
            let groups = (0..r.count(4)?).map(|_| char::from_u32(r.u32()?)).collect::<Option<Vec<char>>>()?;
            let closed = r.opt(|r| Some((r.uuid()?, r.u16()?)))?;
            let mut supports = BTreeMap::new();
            for _ in 0..r.count(18)? {
                supports.insert(r.uuid()?, r.u16()?);
            }
            Some(CaseState { ward, opened_by, year, category, groups, sex, age_band, supports, closed })
        })
    }
}

impl WardInfo {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        out.push(BINARY_V1);
        out.extend_from_slice(&self.last_seq.to_be_bytes());
        put_opt(&mut out, self.last_event_id, |out, id| out.extend_from_slice(id.as_bytes()));
        put_opt(&mut out, self.last_recorded_at, |out, at| {
            out.extend_from_slice(&at.timestamp().to_be_bytes());
            out.extend_from_slice(&at.timestamp_subsec_nanos().to_be_bytes());
        });
        for n in [self.applied, self.parked, self.provenance_failures, self.held] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out
    }

    /// Stored sync facts in either form; `None` if they read as neither.
    pub fn decode(bytes: &[u8]) -> Option<WardInfo> {
        decode_either(bytes, |r| {
            Some(WardInfo {
                last_seq: r.u64()?,
                last_event_id: r.opt(Reader::uuid)?,
                last_recorded_at: r.opt(|r| DateTime::<Utc>::from_timestamp(r.u64()? as i64, r.u32()?))?,
                applied: r.u64()?,
                parked: r.u64()?,
                provenance_failures: r.u64()?,
                held: r.u64()?,
            })
        })
    }
}

/// A record in either form: JSON (stores written before), or the binary
/// form, which `read` must read to its very end.
fn decode_either<T: serde::de::DeserializeOwned>(bytes: &[u8], read: impl FnOnce(&mut Reader<'_>) -> Option<T>) -> Option<T> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).ok();
    }
    let (&version, rest) = bytes.split_first()?;
    if version != BINARY_V1 {
        return None;
    }
    let mut r = Reader { rest };
    let value = read(&mut r)?;
    r.rest.is_empty().then_some(value)
}

/// `0`, or `1` and what `write` writes of the value.
fn put_opt<T>(out: &mut Vec<u8>, value: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            write(out, v);
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads a record front to back; every read is `None` past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
    fn uuid(&mut self) -> Option<Uuid> {
        self.take().map(Uuid::from_bytes)
    }
    /// A count of items of at least `item_len` bytes each, refused if the
    /// rest cannot hold that many (so a damaged count allocates nothing).
    fn count(&mut self, item_len: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(item_len)? <= self.rest.len()).then_some(n)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.count(1)?;
        let (s, rest) = self.rest.split_at(n);
        self.rest = rest;
        String::from_utf8(s.to_vec()).ok()
    }
    /// What [`put_opt`] wrote: `Some(None)` for `0`, `None` for a flag
    /// that is neither `0` nor `1` or a value `read` fails on.
    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => read(self).map(Some),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn cases() -> Vec<CaseState> {
        let plain = CaseState {
            ward: "25320".into(),
            opened_by: id(1),
            year: 2023,
            category: CaseCategory::Abuse,
            groups: vec![],
            sex: Sex::Female,
            age_band: AgeBand::Under5,
            supports: BTreeMap::new(),
            closed: None,
        };
        let full = CaseState {
            ward: "Phường Hưng Chiến".into(),
            opened_by: id(2),
            year: 2025,
            category: CaseCategory::SpecialCircumstances,
            groups: vec!['a', 'đ', 'o'],
            sex: Sex::Male,
            age_band: AgeBand::From16To17,
            supports: (3..40).map(|n| (id(n), 2021 + u16::from(n % 5))).collect(),
            closed: Some((id(99), 2030)),
        };
        let mut every = vec![plain.clone(), full];
        for (i, category) in CaseCategory::ALL.into_iter().enumerate() {
            every.push(CaseState { category, age_band: AGE_BANDS[i % 4], sex: SEXES[i % 2], ..plain.clone() });
        }
        every
    }

    fn infos() -> Vec<WardInfo> {
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        vec![
            WardInfo::default(),
            WardInfo {
                last_seq: 123_456,
                last_event_id: Some(id(7)),
                last_recorded_at: at("2025-06-30T23:59:59.123456789Z"),
                applied: 120_000,
                parked: 3,
                provenance_failures: 2,
                held: 1,
            },
            WardInfo { last_seq: u64::MAX, last_recorded_at: at("1969-12-31T23:59:59.5Z"), applied: u64::MAX, ..Default::default() },
        ]
    }

    #[test]
    fn a_case_reads_back_as_written_and_from_json_as_stores_before_wrote_it() {
        for case in cases() {
            assert_eq!(CaseState::decode(&case.encode()), Some(case.clone()));
            assert_eq!(CaseState::decode(&serde_json::to_vec(&case).unwrap()), Some(case));
        }
    }

    #[test]
    fn sync_facts_read_back_as_written_and_from_json_as_stores_before_wrote_them() {
        for info in infos() {
            assert_eq!(WardInfo::decode(&info.encode()), Some(info.clone()));
            assert_eq!(WardInfo::decode(&serde_json::to_vec(&info).unwrap()), Some(info));
        }
        // A store written before `held` was kept.
        let old = br#"{"last_seq":2,"last_event_id":null,"last_recorded_at":null,"applied":2,"parked":0}"#;
        assert_eq!(WardInfo::decode(old), Some(WardInfo { last_seq: 2, applied: 2, ..Default::default() }));
    }

    #[test]
    fn a_damaged_record_reads_as_none_never_as_something_else() {
        for bytes in cases().iter().map(CaseState::encode) {
            for cut in 0..bytes.len() {
                assert_eq!(CaseState::decode(&bytes[..cut]), None, "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(CaseState::decode(&longer), None);
            let mut other_version = bytes.clone();
            other_version[0] = 2;
            assert_eq!(CaseState::decode(&other_version), None);
        }
        for bytes in infos().iter().map(WardInfo::encode) {
            for cut in 0..bytes.len() {
                assert_eq!(WardInfo::decode(&bytes[..cut]), None, "cut at {cut}");
            }
        }
        // A count far beyond the record allocates nothing and fails.
        let mut huge = cases()[0].encode();
        let supports_at = huge.len() - 4;
        huge[supports_at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(CaseState::decode(&huge), None);
        // Out-of-range enum bytes and flags.
        let bytes = cases()[0].encode();
        let category_at = 1 + 4 + 5 + 16 + 2;
        for (at, bad) in [(category_at, 7), (category_at + 1, 2), (category_at + 2, 4), (category_at + 7, 2)] {
            let mut b = bytes.clone();
            b[at] = bad;
            assert_eq!(CaseState::decode(&b), None, "byte {at} = {bad}");
        }
        assert_eq!(CaseState::decode(b"{not json"), None);
        assert_eq!(WardInfo::decode(b""), None);
    }
}
