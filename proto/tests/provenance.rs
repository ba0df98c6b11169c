//! Provenance (DESIGN.md §9): a ward's events signed with ed25519 and
//! chained by hash. Given events signed by known keys, when they are
//! verified as a log or one by one, then: the genuine ones pass, and any
//! alteration, re-ordering, replay under another seq, stripped or foreign
//! signature, or key used outside its seqs is refused with its reason.
//! The signing bytes are pinned (and were checked against an independent
//! ed25519 implementation, Python's `cryptography`), so a change of the
//! canonical form (which would invalidate every signature ever made)
//! cannot pass unnoticed.

mod common;

use common::{at, envelope, observed, read, uuid};
use serde_json::{Value, json};
use treem_proto::Envelope;
use treem_proto::provenance::{
    self, EventHash, KeyRing, ProvenanceError, RegisteredKey, Seal, Sig, SigningKey, Verified, check_link, verify, verify_log,
};

fn key(n: u8) -> SigningKey {
    SigningKey::from_secret(&[n; 32])
}

fn registered(k: &SigningKey, valid_from_seq: u64) -> RegisteredKey {
    RegisteredKey { key_id: k.key_id(), public_key: k.public_key().to_hex(), valid_from_seq }
}

/// Events 1..=n of ward 25320, signed by `signer(seq)` and chained.
fn signed_log(n: u64, signer: impl Fn(u64) -> SigningKey) -> Vec<Envelope> {
    let mut prev = None;
    (1..=n)
        .map(|seq| {
            let mut env = envelope(seq, observed("4a", 2024, seq, Some(100)));
            prev = Some(signer(seq).sign(&mut env, prev));
            env
        })
        .collect()
}

fn bytes_of(envs: &[Envelope]) -> Vec<Vec<u8>> {
    envs.iter().map(Envelope::encode).collect()
}

fn verify_all(ring: &KeyRing, log: &[Vec<u8>]) -> Result<Option<EventHash>, ProvenanceError> {
    verify_log(ring, "25320", log.iter().map(Vec::as_slice))
}

fn verify_one(ring: &KeyRing, bytes: &[u8]) -> Result<Verified, ProvenanceError> {
    let env = Envelope::decode(bytes).unwrap();
    verify(ring, &env.ward, env.seq, env.sig.as_ref(), &Seal::of_bytes(bytes).unwrap())
}

/// `bytes` with a JSON edit applied, as an attacker on the wire would.
fn edited(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn the_signing_bytes_hash_and_signature_of_an_event_are_pinned() {
    let mut env = envelope(2, observed("4a", 2024, 21, Some(310)));
    env.id = uuid("018f3a52-9c1e-7d40-8b2a-3c4d5e6f7a90");
    env.recorded_at = at("2024-03-01T02:00:00Z");
    let prev = EventHash([7; 32]);
    let hash = key(1).sign(&mut env, Some(prev));
    let seal = Seal::of_envelope(&env);
    assert_eq!(
        String::from_utf8(seal.signing_bytes.clone()).unwrap(),
        concat!(
            r#"{"author":"officer-hung-chien","body":{"denominator":310,"indicator":"4a","numerator":21,"source":"health_centre","year":2024},"#,
            r#""id":"018f3a52-9c1e-7d40-8b2a-3c4d5e6f7a90","kind":"indicator.observed","#,
            r#""prev":"0707070707070707070707070707070707070707070707070707070707070707","province":"70","#,
            r#""recorded_at":"2024-03-01T02:00:00Z","schema":3,"seq":2,"town":"690","ward":"25320"}"#
        ),
        "the canonical form: keys sorted, no whitespace, no sig"
    );
    assert_eq!(hash, seal.hash);
    assert_eq!(hash.to_hex(), PINNED_HASH, "SHA-256 of the signing bytes");
    let sig = env.sig.clone().unwrap();
    assert_eq!(sig.key_id, key(1).key_id());
    assert_eq!(sig.key_id, PINNED_KEY_ID);
    assert_eq!(sig.signature, PINNED_SIGNATURE, "ed25519 is deterministic: same key, same bytes, same signature");
    // What travels decodes to the same envelope and seals to the same bytes.
    let bytes = env.encode();
    assert_eq!(Envelope::decode(&bytes).unwrap(), env);
    assert_eq!(Seal::of_bytes(&bytes).unwrap(), seal);
    // However it is laid out.
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
    assert_eq!(Seal::of_bytes(&pretty).unwrap(), seal);
}

const PINNED_KEY_ID: &str = "34750f98bd59fcfc";
const PINNED_HASH: &str = "0854b4d7e5c4bc1620a757a4a65d47c3ba6c2cc59f5c16f7aad0bcf48868f00a";
const PINNED_SIGNATURE: &str =
    "ff15b775f3dc6b299d51d2f6e7e4934447343b54f9d7e0e28aa3093e4416c8a8301ad00112db31d7630f55c9416eb99af403a8cba1a0681eeae4f8568354f907";

#[test]
fn a_signed_chain_verifies_and_each_event_names_its_predecessor() {
    let log = signed_log(5, |_| key(1));
    let ring = KeyRing::new([registered(&key(1), 1)]).unwrap();
    let bytes = bytes_of(&log);
    let tip = verify_all(&ring, &bytes).unwrap();
    assert_eq!(tip, Some(Seal::of_bytes(&bytes[4]).unwrap().hash));
    assert_eq!(log[0].prev, None, "seq 1 has no predecessor");
    for pair in bytes.windows(2) {
        let next = Envelope::decode(&pair[1]).unwrap();
        assert_eq!(next.prev, Some(Seal::of_bytes(&pair[0]).unwrap().hash.to_hex()));
    }
    for b in &bytes {
        assert_eq!(verify_one(&ring, b), Ok(Verified::Signed { key_id: key(1).key_id() }));
    }
    assert_eq!(verify_all(&ring, &[]), Ok(None));
}

#[test]
fn an_altered_event_fails_its_signature_whatever_field_changed() {
    let log = bytes_of(&signed_log(3, |_| key(1)));
    let ring = KeyRing::new([registered(&key(1), 1)]).unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("numerator", Box::new(|v| v["body"]["numerator"] = json!(99))),
        ("author", Box::new(|v| v["author"] = json!("someone-else"))),
        ("recorded_at", Box::new(|v| v["recorded_at"] = json!("2024-01-01T00:00:00Z"))),
        ("id", Box::new(|v| v["id"] = json!("018f3a52-9c1e-7d40-8b2a-3c4d5e6f7aff"))),
        ("kind and body", Box::new(|v| v["body"]["source"] = json!("school"))),
        ("prev", Box::new(|v| v["prev"] = json!("00".repeat(32)))),
        ("an added field", Box::new(|v| v["note"] = json!("hi"))),
    ];
    for (what, edit) in edits {
        let altered = edited(&log[1], edit);
        let err = verify_one(&ring, &altered).unwrap_err();
        assert!(matches!(err, ProvenanceError::BadSignature { seq: 2, .. }), "{what}: {err:?}");
        assert!(err.to_string().contains("altered or forged"), "{err}");
    }
}

#[test]
fn replays_under_another_seq_reorderings_and_foreign_signatures_are_refused() {
    let log = bytes_of(&signed_log(4, |_| key(1)));
    let ring = KeyRing::new([registered(&key(1), 1)]).unwrap();
    // An old event re-sent as a newer seq.
    let replayed = edited(&log[0], |v| v["seq"] = json!(5));
    assert!(matches!(verify_one(&ring, &replayed), Err(ProvenanceError::BadSignature { seq: 5, .. })));
    // Re-ordered in a log: the seqs no longer follow each other.
    let swapped = vec![log[0].clone(), log[2].clone(), log[1].clone(), log[3].clone()];
    assert!(matches!(verify_all(&ring, &swapped), Err(ProvenanceError::OutOfOrder { previous: 1, seq: 3, .. })));
    // Forged: an attacker's own key, claiming the ward's key id.
    let mut forged = envelope(5, observed("4a", 2024, 1, Some(100)));
    key(66).sign(&mut forged, Some(Seal::of_bytes(&log[3]).unwrap().hash));
    forged.sig.as_mut().unwrap().key_id = key(1).key_id();
    assert!(matches!(verify_one(&ring, &forged.encode()), Err(ProvenanceError::BadSignature { .. })));
    // … or under its own id: not a key of this ward.
    let mut foreign = envelope(5, observed("4a", 2024, 1, Some(100)));
    key(66).sign(&mut foreign, None);
    let err = verify_one(&ring, &foreign.encode()).unwrap_err();
    assert!(matches!(err, ProvenanceError::UnknownKey { .. }), "{err:?}");
    assert!(err.to_string().contains("treem-town keys add"), "says how to register a rotated key: {err}");
    // Stripped of its signature.
    let stripped = edited(&log[2], |v| drop(v.as_object_mut().unwrap().remove("sig")));
    assert!(matches!(verify_one(&ring, &stripped), Err(ProvenanceError::Unsigned { seq: 3, from: 1, .. })));
    // A signature that is not 64 bytes of hex.
    let junk = edited(&log[2], |v| v["sig"]["signature"] = json!("xyz"));
    assert!(matches!(verify_one(&ring, &junk), Err(ProvenanceError::MalformedSignature { .. })));
    // No keys at all for the ward.
    assert!(matches!(verify_one(&KeyRing::default(), &log[0]), Err(ProvenanceError::NoKeys { .. })));
}

#[test]
fn a_rewritten_history_breaks_the_chain_even_when_signed_with_the_real_key() {
    // Someone with the ward's key rewrites event 2 after the fact and signs it again.
    let mut log = signed_log(3, |_| key(1));
    let mut rewritten = envelope(2, observed("4a", 2024, 77, Some(100)));
    key(1).sign(&mut rewritten, Some(Seal::of_envelope(&log[0]).hash));
    log[1] = rewritten;
    let ring = KeyRing::new([registered(&key(1), 1)]).unwrap();
    let err = verify_all(&ring, &bytes_of(&log)).unwrap_err();
    assert!(matches!(err, ProvenanceError::ChainBroken { seq: 3, previous: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("re-ordered or rewritten"), "{err}");
    // The link check on its own.
    let h = EventHash([1; 32]);
    assert_eq!(check_link("25320", 1, None, None), Ok(()));
    assert_eq!(check_link("25320", 2, Some(&h.to_hex()), Some(h)), Ok(()));
    assert!(check_link("25320", 2, None, Some(h)).is_err());
    assert!(check_link("25320", 1, Some(&h.to_hex()), None).is_err());
}

#[test]
fn after_a_rotation_each_key_signs_only_its_own_seqs() {
    let (old, new) = (key(1), key(2));
    let log = bytes_of(&signed_log(6, |seq| if seq < 4 { key(1) } else { key(2) }));
    let ring = KeyRing::new([registered(&old, 1), registered(&new, 4)]).unwrap();
    verify_all(&ring, &log).expect("a log across a rotation verifies");
    assert_eq!(verify_one(&ring, &log[4]), Ok(Verified::Signed { key_id: new.key_id() }));
    // The old key (stolen after it was retired) cannot sign seq 7.
    let mut late = envelope(7, observed("4a", 2024, 1, Some(100)));
    old.sign(&mut late, Some(Seal::of_bytes(&log[5]).unwrap().hash));
    let err = verify_one(&ring, &late.encode()).unwrap_err();
    assert!(matches!(err, ProvenanceError::KeyOutOfRange { seq: 7, from: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("seqs 1–3"), "{err}");
    // Nor the new key an event before its time.
    let mut early = envelope(2, observed("4a", 2024, 1, Some(100)));
    new.sign(&mut early, None);
    assert!(matches!(verify_one(&ring, &early.encode()), Err(ProvenanceError::KeyOutOfRange { seq: 2, from: 4, .. })));
}

#[test]
fn events_older_than_the_first_key_are_legacy_and_the_first_signed_one_links_to_them() {
    // Seqs 1–2 recorded before the ward had a key (schema 2, unsigned); its key signs from seq 3.
    let legacy: Vec<Vec<u8>> = (1..=2)
        .map(|seq| {
            let mut v = serde_json::to_value(envelope(seq, observed("4a", 2024, seq, Some(100)))).unwrap();
            v["schema"] = json!(2);
            serde_json::to_vec(&v).unwrap()
        })
        .collect();
    let mut third = envelope(3, observed("4a", 2024, 3, Some(100)));
    key(1).sign(&mut third, Some(Seal::of_bytes(&legacy[1]).unwrap().hash));
    let log = vec![legacy[0].clone(), legacy[1].clone(), third.encode()];
    let ring = KeyRing::new([registered(&key(1), 3)]).unwrap();
    verify_all(&ring, &log).expect("legacy events then signed ones");
    assert_eq!(verify_one(&ring, &legacy[0]), Ok(Verified::Legacy));
    // From seq 3 on, unsigned is refused.
    let unsigned = envelope(3, observed("4a", 2024, 3, Some(100)));
    assert!(matches!(verify_one(&ring, &unsigned.encode()), Err(ProvenanceError::Unsigned { seq: 3, from: 3, .. })));
}

/// The example key of `schema/README.md` §2.1 (published: never use it for real data).
const EXAMPLE_SECRET: &str = "84b0dca2cfb85d8c151c0e063cc55d71ea8e939c9302b43f520a727d1a96f7d9";
const EXAMPLE_PUBLIC: &str = "7c82f4f5ed7bc9691bc99f9b71e4ca1a7a2123e4907ae418224017ae6253d281";

#[test]
fn the_schema_examples_are_a_signed_chained_log_of_the_example_key() {
    let secret: [u8; 32] = provenance::unhex(EXAMPLE_SECRET).unwrap().try_into().unwrap();
    let k = SigningKey::from_secret(&secret);
    assert_eq!(k.public_key().to_hex(), EXAMPLE_PUBLIC);
    let readme = String::from_utf8(read("schema/README.md")).unwrap();
    for documented in [EXAMPLE_SECRET, EXAMPLE_PUBLIC, &k.key_id()] {
        assert!(readme.contains(documented), "README documents the example key: {documented}");
    }
    let mut examples: Vec<(u64, Vec<u8>)> = std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/examples"))
        .unwrap()
        .map(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            (Envelope::decode(&bytes).unwrap().seq, bytes)
        })
        .collect();
    examples.sort();
    let ring = KeyRing::new([registered(&k, 1)]).unwrap();
    verify_log(&ring, "25320", examples.iter().map(|(_, b)| b.as_slice())).expect("the examples verify as one ward's log");
}

#[test]
fn a_sig_is_exactly_two_fields() {
    let v = json!({"key_id": "e20e04e7943a2233", "signature": "00", "alg": "rsa"});
    assert!(serde_json::from_value::<Sig>(v).is_err(), "an unknown field in sig is refused");
}
