//! The fold with its store-free part done up front ([`fold::prepare_on`],
//! several threads) gives exactly what the plain fold gives, message by
//! message: the same outcomes, the same dirty years and the same store
//! contents — parked records with their reasons, held events, hashes,
//! positions, sync facts — for a mixed batch: two signing wards (one with
//! legacy unsigned events before its key), a ward with no key, duplicates,
//! gaps, forged, altered, replayed and unsigned events, garbage, events
//! refused by the rules, corrections and retractions; in many orders. The
//! store's own batches ([`TownStore::apply_batch`], which prepares in
//! parallel) end in the same contents as well.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::*;
use treem_proto::hierarchy::Hierarchy;
use treem_proto::provenance::{EventHash, KeyRing, RegisteredKey, Seal, SigningKey};
use treem_proto::subject::{self, WardPath};
use treem_town::fold::{self, Ctx, Dirty, Outcome};
use treem_town::kv::MemKv;
use treem_town::provenance::WardKeys;
use treem_town::store::{InOrderTimes, TownStore};
use uuid::Uuid;

const A: &str = "25320";
const B: &str = "25324";
const C: &str = "25325";

fn key(n: u8) -> SigningKey {
    SigningKey::from_secret(&[n; 32])
}

fn reg(k: &SigningKey, from: u64) -> RegisteredKey {
    RegisteredKey { key_id: k.key_id(), public_key: k.public_key().to_hex(), valid_from_seq: from }
}

/// Ward A signs from seq 1 with key 1, ward B from seq 3 with key 2; ward C has no key; signatures required.
fn ctx() -> Ctx {
    let rings = BTreeMap::from([
        (A.to_owned(), KeyRing::new([reg(&key(1), 1)]).unwrap()),
        (B.to_owned(), KeyRing::new([reg(&key(2), 3)]).unwrap()),
    ]);
    Ctx {
        province: "70".into(),
        town: "690".into(),
        hierarchy: Hierarchy::shipped(),
        catalogue: Catalogue::shipped(),
        provenance: WardKeys::fixed(rings, true),
    }
}

fn envelope(ward: &str, seq: u64, id: u128, event: Event) -> Envelope {
    // A fixed id and time: the same batch in every order folds to the same bytes.
    Envelope {
        id: Uuid::from_u128(id),
        recorded_at: "2025-03-01T00:00:00Z".parse().unwrap(),
        ..Envelope::new(&WardPath::new("70", "690", ward), seq, "test", event)
    }
}

fn observe(code: &str, year: u16, numerator: u64) -> Event {
    Event::IndicatorObserved(IndicatorObserved {
        indicator: code.into(),
        year,
        numerator,
        denominator: Some(1000),
        source: "health_centre".into(),
    })
}

/// A ward's events for seqs 1.. (ids `base + seq`): observations, a case
/// opened, supported and closed, a correction, a retraction, and events the
/// rules refuse (an unknown indicator, a correction naming no event).
fn events(ward: &str, base: u128) -> Vec<Envelope> {
    let case = Uuid::from_u128(base + 1000);
    let list = vec![
        observe("4a", 2024, 10),
        observe("6", 2025, 3),
        Event::CaseOpened(CaseOpened {
            case_id: case,
            year: 2024,
            category: CaseCategory::ALL[0],
            groups: if CaseCategory::ALL[0] == CaseCategory::SpecialCircumstances { vec!['a'] } else { vec![] },
            sex: Sex::Female,
            age_band: AgeBand::from_age(7).unwrap(),
        }),
        Event::CaseSupportRecorded(CaseSupportRecorded { case_id: case, year: 2025, support: "legal".into() }),
        observe("no-such-indicator", 2025, 1),
        Event::EventCorrected(EventCorrected {
            replaces: Uuid::from_u128(base + 1),
            corrected: Box::new(observe("4a", 2024, 12)),
            reason: "typo".into(),
        }),
        Event::EventRetracted(EventRetracted { replaces: Uuid::from_u128(base + 2), reason: "entered twice".into() }),
        Event::EventRetracted(EventRetracted { replaces: Uuid::from_u128(base + 999), reason: "no such event".into() }),
        Event::CaseClosed(CaseClosed { case_id: case, year: 2025, reason: "returned to family".into() }),
        observe("16", 2025, 40),
    ];
    list.into_iter().enumerate().map(|(i, e)| envelope(ward, i as u64 + 1, base + i as u128 + 1, e)).collect()
}

/// Signs and chains `log` from seq `from` on with `k` (earlier seqs stay unsigned, schema 2).
fn sign(log: Vec<Envelope>, k: &SigningKey, from: u64) -> Vec<Vec<u8>> {
    let mut prev: Option<EventHash> = None;
    log.into_iter()
        .map(|mut env| {
            if env.seq < from {
                let mut v: Value = serde_json::to_value(&env).unwrap();
                v["schema"] = json!(2);
                let bytes = serde_json::to_vec(&v).unwrap();
                prev = Some(Seal::of_bytes(&bytes).unwrap().hash);
                bytes
            } else {
                prev = Some(k.sign(&mut env, prev));
                env.encode()
            }
        })
        .collect()
}

fn edited(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

type Message = (String, Vec<u8>);

fn message(bytes: Vec<u8>) -> Message {
    let env = Envelope::decode(&bytes).expect("test events decode");
    (subject::event_subject(&env), bytes)
}

/// Every message of the mixed batch, in the order the wards wrote them.
fn mixed() -> Vec<Message> {
    let a = sign(events(A, 0), &key(1), 1);
    let b = sign(events(B, 10_000), &key(2), 3);
    let c = sign(events(C, 20_000), &key(3), 1);
    let mut out: Vec<Message> = Vec::new();
    out.extend(a.iter().cloned().map(message));
    out.extend(b.iter().cloned().map(message));
    out.extend(c.iter().take(3).cloned().map(message));
    // Duplicates.
    out.extend([&a[1], &a[2], &b[0], &b[4]].map(|m| message(m.clone())));
    // Forged: another key claiming A's key id, at seq 5.
    let mut forged = envelope(A, 5, 90_001, observe("4a", 2024, 999));
    key(66).sign(&mut forged, Some(Seal::of_bytes(&a[3]).unwrap().hash));
    forged.sig.as_mut().unwrap().key_id = key(1).key_id();
    out.push(message(forged.encode()));
    // Altered, unsigned, replayed under another seq, a second verifying event at a seq.
    out.push(message(edited(&a[6], |v| v["body"]["reason"] = json!("altered"))));
    out.push(message(envelope(A, 8, 90_002, observe("4a", 2024, 1)).encode()));
    out.push(message(edited(&a[0], |v| v["seq"] = json!(9))));
    let mut second = envelope(B, 4, 90_003, observe("6", 2025, 77));
    key(2).sign(&mut second, Some(Seal::of_bytes(&b[2]).unwrap().hash));
    out.push(message(second.encode()));
    // B unsigned at a signed seq; a legacy-looking event after the key's start.
    out.push(message(envelope(B, 6, 90_004, observe("6", 2025, 5)).encode()));
    // Garbage: not JSON, truncated, claims another ward, another town, seq 0, a subject naming no ward.
    let subject_a = subject::event_subject(&Envelope::decode(&a[0]).unwrap());
    out.push((subject_a.clone(), b"{not json".to_vec()));
    out.push((subject_a.clone(), a[3][..a[3].len() / 2].to_vec()));
    out.push((subject_a, b[5].clone()));
    let mut other_town = Envelope::decode(&a[4]).unwrap();
    other_town.town = "691".into();
    out.push((subject::event_subject(&other_town), other_town.encode()));
    out.push(message(edited(&a[4], |v| v["seq"] = json!(0))));
    out.push(("treem.v1.events.70.690".into(), a[4].clone()));
    out
}

/// A fixed pseudo-random permutation (no dependency on a random generator).
fn shuffled(mut messages: Vec<Message>, seed: u64) -> Vec<Message> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for i in (1..messages.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let j = ((state >> 33) % (i as u64 + 1)) as usize;
        messages.swap(i, j);
    }
    messages
}

fn sequential(ctx: &Ctx, messages: &[Message]) -> (MemKv, Vec<Outcome>, Vec<Dirty>) {
    let mut kv = MemKv::default();
    let mut outcomes = Vec::new();
    let mut dirty = Vec::new();
    for (s, b) in messages {
        let mut d = Dirty::new();
        outcomes.push(fold::apply(&mut kv, ctx, s, b, &mut d));
        dirty.push(d);
    }
    (kv, outcomes, dirty)
}

fn prepared(ctx: &Ctx, messages: &[Message], threads: usize) -> (MemKv, Vec<Outcome>, Vec<Dirty>) {
    let refs: Vec<(&str, &[u8])> = messages.iter().map(|(s, b)| (s.as_str(), b.as_slice())).collect();
    let prepared = fold::prepare_on(ctx, &refs, threads);
    assert_eq!(prepared.len(), messages.len());
    let mut kv = MemKv::default();
    let mut outcomes = Vec::new();
    let mut dirty = Vec::new();
    for ((s, b), p) in messages.iter().zip(prepared) {
        let mut d = Dirty::new();
        outcomes.push(fold::apply_prepared(&mut kv, ctx, s, b, p, &mut d));
        dirty.push(d);
    }
    (kv, outcomes, dirty)
}

#[test]
fn a_batch_prepared_in_parallel_folds_exactly_as_the_plain_fold() {
    let ctx = ctx();
    let all = mixed();
    let mut kinds = [0usize; 4];
    for seed in 0..24 {
        let messages = if seed == 0 { all.clone() } else { shuffled(all.clone(), seed) };
        let (kv, outcomes, dirty) = sequential(&ctx, &messages);
        for o in &outcomes {
            kinds[match o {
                Outcome::Applied { .. } => 0,
                Outcome::Duplicate { .. } => 1,
                Outcome::Held { .. } => 2,
                Outcome::Parked { .. } => 3,
            }] += 1;
        }
        for threads in [1, 2, 3, 7] {
            let (kv2, outcomes2, dirty2) = prepared(&ctx, &messages, threads);
            assert_eq!(outcomes2, outcomes, "seed {seed}, {threads} threads: outcomes");
            assert_eq!(dirty2, dirty, "seed {seed}, {threads} threads: dirty years");
            assert_eq!(kv2, kv, "seed {seed}, {threads} threads: store contents");
        }
    }
    assert!(kinds.iter().all(|&n| n > 0), "the batch exercises every outcome: {kinds:?}");
}

#[test]
fn the_store_batches_end_in_the_contents_of_the_plain_fold() {
    let ctx = ctx();
    for seed in [0, 5, 11] {
        let mut messages = if seed == 0 { mixed() } else { shuffled(mixed(), seed) };
        // All of it again, as a redelivery would bring it.
        messages.extend(messages.clone());
        let (kv, outcomes, _) = sequential(&ctx, &messages);
        let dir = tempfile::tempdir().unwrap();
        let store = TownStore::open(&dir.path().join("store")).unwrap();
        // A small batch, and one large enough to be prepared on several threads.
        let mut got = Vec::new();
        let numbered: Vec<(String, Vec<u8>, u64)> =
            messages.iter().enumerate().map(|(i, (s, b))| (s.clone(), b.clone(), i as u64 + 1)).collect();
        let (first, rest) = numbered.split_at(5);
        assert_eq!(store.in_order_times(), InOrderTimes::default(), "a store just opened has folded nothing");
        got.extend(store.apply_batch(&ctx, first).unwrap());
        let once = store.in_order_times();
        assert!(once.fold > Duration::ZERO && once.commit > Duration::ZERO, "seed {seed}: {once:?}");
        got.extend(store.apply_batch(&ctx, rest).unwrap());
        let twice = store.in_order_times();
        assert!(twice.fold > once.fold && twice.commit > once.commit, "seed {seed}: {once:?} then {twice:?}");
        assert_eq!(got, outcomes, "seed {seed}: outcomes");
        // The store adds its stream position and the outbox for the province.
        let contents: BTreeMap<Vec<u8>, Vec<u8>> = store
            .tree
            .iter()
            .map(Result::unwrap)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .filter(|(k, _)| !k.starts_with(b"out/") && k.as_slice() != b"meta/stream_seq" && k.as_slice() != b"meta/outbox_next")
            .collect();
        assert_eq!(contents, kv.0, "seed {seed}: store contents");
        assert_eq!(store.stream_seq(), numbered.len() as u64);
    }
}
