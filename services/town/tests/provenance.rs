//! The fold's provenance checks as given-events → expected state, without
//! NATS or sled (`MemKv` is the model). Given a ward whose key the town
//! registered, when forged, altered, replayed, unsigned, re-ordered or
//! wrongly-keyed events arrive among its real ones, then each is parked
//! with its reason **without using up its seq**, counted in the ward's sync
//! status, and the real event at that seq applies when it comes; a key
//! rotation is followed; a ward without a key is refused until its key is
//! registered, and a replay then applies what was parked.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::*;
use treem_proto::hierarchy::Hierarchy;
use treem_proto::judge::Fraction;
use treem_proto::provenance::{KeyRing, RegisteredKey, Seal, SigningKey};
use treem_proto::subject::{self, WardPath};
use treem_town::fold::{self, Ctx, Dirty, Outcome, Parked};
use treem_town::kv::{KvScan, MemKv};
use treem_town::projection::{indicators, sync};
use treem_town::provenance::{WardKeys, recorded};
use treem_town::replay::{self, ReplayCommand, ReplayOutcome};

const WARD: &str = "25320";

fn key(n: u8) -> SigningKey {
    SigningKey::from_secret(&[n; 32])
}

fn reg(k: &SigningKey, from: u64) -> RegisteredKey {
    RegisteredKey { key_id: k.key_id(), public_key: k.public_key().to_hex(), valid_from_seq: from }
}

/// The town, with `keys` registered per ward.
fn ctx(keys: &[(&str, Vec<RegisteredKey>)], require_signatures: bool) -> Ctx {
    let rings: BTreeMap<String, KeyRing> = keys.iter().map(|(w, k)| (w.to_string(), KeyRing::new(k.clone()).unwrap())).collect();
    Ctx {
        province: "70".into(),
        town: "690".into(),
        hierarchy: Hierarchy::shipped(),
        catalogue: Catalogue::shipped(),
        provenance: WardKeys::fixed(rings, require_signatures),
    }
}

/// Ward 25320 with key 1 from seq 1; signatures required.
fn town() -> Ctx {
    ctx(&[(WARD, vec![reg(&key(1), 1)])], true)
}

fn observation(ward: &str, seq: u64, numerator: u64) -> Envelope {
    Envelope::new(
        &WardPath::new("70", "690", ward),
        seq,
        "test",
        Event::IndicatorObserved(IndicatorObserved {
            indicator: "2".into(),
            year: 2024,
            numerator,
            denominator: Some(1000),
            source: "health_centre".into(),
        }),
    )
}

/// A ward's log: seqs 1..=n, numerator = 10·seq, signed by `signer(seq)` and chained.
fn signed_log(ward: &str, n: u64, signer: impl Fn(u64) -> SigningKey) -> Vec<Vec<u8>> {
    let mut prev = None;
    (1..=n)
        .map(|seq| {
            let mut env = observation(ward, seq, 10 * seq);
            prev = Some(signer(seq).sign(&mut env, prev));
            env.encode()
        })
        .collect()
}

fn apply(kv: &mut MemKv, ctx: &Ctx, bytes: &[u8]) -> Outcome {
    let env = Envelope::decode(bytes).expect("test events decode");
    fold::apply(kv, ctx, &subject::event_subject(&env), bytes, &mut Dirty::new())
}

fn edited(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn parked_reason(outcome: Outcome) -> String {
    match outcome {
        Outcome::Parked { reason } => reason,
        other => panic!("expected the message to be parked, got {other:?}"),
    }
}

fn parked(kv: &MemKv) -> Vec<(u64, Parked)> {
    kv.scan_prefix(b"parked/")
        .into_iter()
        .map(|(k, v)| (u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap()), serde_json::from_slice(&v).unwrap()))
        .collect()
}

fn pos(kv: &MemKv, ward: &str) -> u64 {
    sync::ward_sync(kv, ward, ward, chrono::Utc::now()).last_seq_applied
}

fn failures(kv: &MemKv, ward: &str) -> u64 {
    sync::ward_sync(kv, ward, ward, chrono::Utc::now()).provenance_failures
}

fn figure(kv: &MemKv, ward: &str) -> Option<Fraction> {
    let wards = vec![ward.to_owned()];
    indicators::figures(kv, &Catalogue::shipped(), &wards, 2024).wards.get(ward).and_then(|f| f.get("2")).copied()
}

#[test]
fn signed_events_apply_once_and_their_hashes_are_kept() {
    let (ctx, mut kv) = (town(), MemKv::default());
    let log = signed_log(WARD, 3, |_| key(1));
    for (i, bytes) in log.iter().enumerate() {
        assert!(matches!(apply(&mut kv, &ctx, bytes), Outcome::Applied { seq, .. } if seq == i as u64 + 1));
        assert_eq!(recorded(&kv, WARD, i as u64 + 1), Some(Seal::of_bytes(bytes).unwrap().hash));
    }
    // A ward (or a redelivery) sending them again: duplicates, no failure.
    for bytes in &log {
        assert!(matches!(apply(&mut kv, &ctx, bytes), Outcome::Duplicate { .. }));
    }
    assert_eq!((pos(&kv, WARD), failures(&kv, WARD)), (3, 0));
    assert_eq!(figure(&kv, WARD), Some(Fraction { numerator: 30, denominator: 1000 }));
}

#[test]
fn forged_altered_replayed_and_unsigned_events_are_parked_without_using_the_seq() {
    let ctx = town();
    let mut kv = MemKv::default();
    let log = signed_log(WARD, 3, |_| key(1));
    apply(&mut kv, &ctx, &log[0]);
    apply(&mut kv, &ctx, &log[1]);

    let hash2 = Seal::of_bytes(&log[1]).unwrap().hash;
    // Forged: the attacker's key, claiming the ward's key id, at the next seq.
    let mut forged = observation(WARD, 3, 999);
    key(66).sign(&mut forged, Some(hash2));
    forged.sig.as_mut().unwrap().key_id = key(1).key_id();
    // Altered: the real seq 3 with another figure.
    let altered = edited(&log[2], |v| v["body"]["numerator"] = json!(999));
    // Unsigned, at the next seq.
    let unsigned = observation(WARD, 3, 999).encode();
    // Replayed: the real seq 1 re-sent as seq 3.
    let replayed = edited(&log[0], |v| v["seq"] = json!(3));
    // Replayed with its own seq, altered: a different event at an applied seq.
    let altered_old = edited(&log[1], |v| v["body"]["numerator"] = json!(999));
    // The ward's own key signing a second, different seq 2 (a re-recorded history).
    let mut second_two = observation(WARD, 2, 999);
    key(1).sign(&mut second_two, Some(Seal::of_bytes(&log[0]).unwrap().hash));

    let attacks: [(&str, Vec<u8>, &str); 6] = [
        ("forged", forged.encode(), "altered or forged"),
        ("altered", altered, "altered or forged"),
        ("unsigned", unsigned, "is not signed"),
        ("replayed under a new seq", replayed, "altered or forged"),
        ("altered, at an applied seq", altered_old, "altered or forged"),
        ("re-recorded seq 2", second_two.encode(), "already sent a different event with seq 2"),
    ];
    for (what, bytes, words) in &attacks {
        let reason = parked_reason(apply(&mut kv, &ctx, bytes));
        assert!(reason.contains(words), "{what}: {reason:?} should say {words:?}");
        assert_eq!(pos(&kv, WARD), 2, "{what}: the ward's position did not move");
    }
    let records = parked(&kv);
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|(_, p)| !p.seq_consumed && p.ward.as_deref() == Some(WARD)), "{records:?}");
    assert_eq!(failures(&kv, WARD), 6, "every refusal counts in the sync status");

    // The real seq 3 still applies, with its own figure.
    assert!(matches!(apply(&mut kv, &ctx, &log[2]), Outcome::Applied { seq: 3, .. }));
    assert_eq!(pos(&kv, WARD), 3);
    assert_eq!(figure(&kv, WARD), Some(Fraction { numerator: 30, denominator: 1000 }));

    // Pure: the same messages in the same order give the same state.
    let mut again = MemKv::default();
    for bytes in [&log[0], &log[1]].into_iter().chain(attacks.iter().map(|(_, b, _)| b)).chain([&log[2]]) {
        apply(&mut again, &ctx, bytes);
    }
    assert_eq!(again, kv);
}

#[test]
fn forgeries_cannot_take_a_held_slot_and_a_rewritten_link_is_refused_in_its_turn() {
    let ctx = town();
    let mut kv = MemKv::default();
    let log = signed_log(WARD, 5, |_| key(1));
    // Seq 4 arrives first (held), then a forged seq 5, then the real 5.
    assert!(matches!(apply(&mut kv, &ctx, &log[3]), Outcome::Held { seq: 4, expected: 1, .. }));
    let mut forged = observation(WARD, 5, 999);
    key(66).sign(&mut forged, Some(Seal::of_bytes(&log[3]).unwrap().hash));
    forged.sig.as_mut().unwrap().key_id = key(1).key_id();
    parked_reason(apply(&mut kv, &ctx, &forged.encode()));
    assert!(matches!(apply(&mut kv, &ctx, &log[4]), Outcome::Held { seq: 5, .. }), "the real event took its slot");
    // A seq 3 signed by the ward's key but linked to seq 1 (history re-ordered): held, then refused in its turn.
    let mut relinked = observation(WARD, 3, 999);
    key(1).sign(&mut relinked, Some(Seal::of_bytes(&log[0]).unwrap().hash));
    assert!(matches!(apply(&mut kv, &ctx, &relinked.encode()), Outcome::Held { seq: 3, .. }));
    // A different, verifying seq 3 for the occupied slot is refused at once.
    let mut other = observation(WARD, 3, 998);
    key(1).sign(&mut other, Some(Seal::of_bytes(&log[1]).unwrap().hash));
    let reason = parked_reason(apply(&mut kv, &ctx, &other.encode()));
    assert!(reason.contains("already waiting for its turn"), "{reason}");

    apply(&mut kv, &ctx, &log[0]);
    assert!(matches!(apply(&mut kv, &ctx, &log[1]), Outcome::Applied { seq: 2, then_applied: 0, .. }), "the relinked 3 is refused");
    assert_eq!(pos(&kv, WARD), 2, "and did not use up seq 3");
    let last = parked(&kv).pop().unwrap().1;
    assert!(last.reason.contains("re-ordered or rewritten"), "{}", last.reason);
    assert!(!last.seq_consumed);
    // The real seq 3 arrives: it and the held 4 and 5 apply.
    assert!(matches!(apply(&mut kv, &ctx, &log[2]), Outcome::Applied { seq: 3, then_applied: 2, .. }));
    assert_eq!(pos(&kv, WARD), 5);
    assert_eq!(figure(&kv, WARD), Some(Fraction { numerator: 50, denominator: 1000 }));
    assert_eq!(failures(&kv, WARD), 3);
    assert!(kv.scan_prefix(b"held/").is_empty());
}

#[test]
fn after_a_rotation_each_key_signs_its_own_seqs_only() {
    let ctx = ctx(&[(WARD, vec![reg(&key(1), 1), reg(&key(2), 4)])], true);
    let mut kv = MemKv::default();
    let log = signed_log(WARD, 5, |seq| if seq < 4 { key(1) } else { key(2) });
    for bytes in &log {
        assert!(matches!(apply(&mut kv, &ctx, bytes), Outcome::Applied { .. }));
    }
    // The retired key (stolen?) signing seq 6; a key the town never registered.
    let tip = Seal::of_bytes(&log[4]).unwrap().hash;
    let mut stolen = observation(WARD, 6, 999);
    key(1).sign(&mut stolen, Some(tip));
    assert!(parked_reason(apply(&mut kv, &ctx, &stolen.encode())).contains("may sign only seqs 1–3"));
    let mut unknown = observation(WARD, 6, 999);
    key(3).sign(&mut unknown, Some(tip));
    assert!(parked_reason(apply(&mut kv, &ctx, &unknown.encode())).contains("not registered for this ward"));
    let mut next = observation(WARD, 6, 60);
    key(2).sign(&mut next, Some(tip));
    assert!(matches!(apply(&mut kv, &ctx, &next.encode()), Outcome::Applied { seq: 6, .. }));
}

#[test]
fn a_ward_without_a_key_is_refused_until_registered_then_a_replay_applies_it() {
    let other = "25324";
    let mut kv = MemKv::default();
    let log = signed_log(other, 2, |_| key(5));
    let before = town();
    for bytes in &log {
        let reason = parked_reason(apply(&mut kv, &before, bytes));
        assert!(reason.contains("no registered signing key") && reason.contains("treem-town keys add"), "{reason}");
    }
    assert_eq!((pos(&kv, other), failures(&kv, other)), (0, 2));
    // Registered: the parked events apply on replay, in order.
    let after = ctx(&[(WARD, vec![reg(&key(1), 1)]), (other, vec![reg(&key(5), 1)])], true);
    for (n, rec) in parked(&kv) {
        let cmd = ReplayCommand::for_record(n, &rec, chrono::Utc::now(), "test");
        let outcome = replay::replay(&mut kv, &after, &cmd, &mut Dirty::new()).expect("applies once the key is known");
        assert!(matches!(outcome, ReplayOutcome::Applied { .. }), "{outcome:?}");
    }
    assert_eq!(pos(&kv, other), 2);
    // Without require_signatures, a ward with no key is taken as it is.
    let lax = ctx(&[], false);
    let mut kv = MemKv::default();
    assert!(matches!(apply(&mut kv, &lax, &observation(other, 1, 5).encode()), Outcome::Applied { .. }));
}

#[test]
fn events_from_before_the_ward_had_a_key_are_accepted_unsigned() {
    // The ward was upgraded after recording seqs 1–2 (schema 2, unsigned); its key signs from 3.
    let ctx = ctx(&[(WARD, vec![reg(&key(1), 3)])], true);
    let mut kv = MemKv::default();
    let legacy: Vec<Vec<u8>> = (1..=2).map(|seq| edited(&observation(WARD, seq, 10 * seq).encode(), |v| v["schema"] = json!(2))).collect();
    for bytes in &legacy {
        assert!(matches!(apply(&mut kv, &ctx, bytes), Outcome::Applied { .. }));
    }
    let mut third = observation(WARD, 3, 30);
    key(1).sign(&mut third, Some(Seal::of_bytes(&legacy[1]).unwrap().hash));
    assert!(matches!(apply(&mut kv, &ctx, &third.encode()), Outcome::Applied { seq: 3, .. }));
    let reason = parked_reason(apply(&mut kv, &ctx, &observation(WARD, 4, 40).encode()));
    assert!(reason.contains("signs every event from seq 3"), "{reason}");
    assert_eq!(pos(&kv, WARD), 3);
}
