//! Verifiable provenance (DESIGN.md §9): each ward signs its events with
//! ed25519 and chains each one to the one before it by hash, so the town —
//! or anyone holding the ward's public keys, offline — can tell that an
//! event is the ward's, unaltered, and in its place in the ward's history.
//!
//! # What is signed
//!
//! The **signing bytes** of an event are its JSON object *as the ward wrote
//! it*, without the `sig` field, in canonical form ([`canonical_json`]):
//! object keys sorted by their UTF-8 bytes, no whitespace, strings and
//! numbers as `serde_json` writes them. So the bytes do not depend on how a
//! message was laid out (a pretty-printed example, another JSON library's
//! key order). They are taken from the JSON as received, before any
//! upcast: an upcast rewrites the reader's copy, never what was signed, so a
//! signature stays valid whatever later schema versions make of the event.
//! For that, an event travels byte for byte as the ward recorded it (the
//! ward's replicator publishes its stored bytes).
//!
//! Two envelope fields carry the provenance (schema version 3):
//!
//! - `prev`: the hash of the ward's previous event (seq − 1), lower-case
//!   hex; absent on seq 1;
//! - `sig`: `{"key_id", "signature"}`: the ed25519 signature of the signing
//!   bytes (64 bytes, lower-case hex) by the ward key `key_id` names.
//!
//! The **hash** of an event is SHA-256 of its signing bytes ([`Seal`]). As
//! `prev` is inside the signed bytes, each signature vouches for the whole
//! history before it: an event cannot be altered, re-ordered, dropped from
//! the middle or replayed under another seq without a signature failing or
//! a link no longer matching.
//!
//! # Keys
//!
//! A key id is the first 8 bytes of SHA-256 of the public key, in hex
//! ([`key_id_of`]). A ward's registered keys form a [`KeyRing`]: each key is
//! valid from its `valid_from_seq` to the seq before the next key's, so
//! exactly one key may sign any seq, and a retired key cannot sign a later
//! event. Events before the first key's `valid_from_seq` predate signing (a
//! ward upgraded from schema 2 recorded them unsigned) and verify as
//! [`Verified::Legacy`].
//!
//! # Invariants
//!
//! Pure: no IO, no clock, no randomness. Key generation needs the OS's
//! random generator and belongs to the ward (`services/ward/src/keys.rs`),
//! which hands [`SigningKey::from_secret`] 32 secret bytes. Verification is
//! RFC 8032's cofactored check with no non-canonical `s`, weak key or
//! small-order `R` ([`crate::signatures`], which also checks a batch at
//! once with the same answers).

use std::fmt;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::{DecodeError, Envelope};
use crate::signatures::SignatureCheck;

/// Length of a key id in hex (8 bytes).
pub const KEY_ID_HEX_LEN: usize = 16;
/// Length of an event hash in hex (SHA-256, 32 bytes).
pub const HASH_HEX_LEN: usize = 64;
/// Length of a signature in hex (ed25519, 64 bytes).
pub const SIGNATURE_HEX_LEN: usize = 128;
/// Length of a public key in hex (ed25519, 32 bytes).
pub const PUBLIC_KEY_HEX_LEN: usize = 64;

/// The signature on an envelope (`"sig"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sig {
    /// The signing key's id ([`key_id_of`] its public key).
    pub key_id: String,
    /// ed25519 over the event's signing bytes, lower-case hex.
    pub signature: String,
}

/// SHA-256 of an event's signing bytes: what its successor names as `prev`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventHash(pub [u8; 32]);

impl EventHash {
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Reads 64 hex digits.
    pub fn from_hex(s: &str) -> Option<EventHash> {
        unhex(s)?.try_into().ok().map(EventHash)
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Reads hex (either case); `None` unless every character is a hex digit
/// and there is an even number of them.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// The id of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id_of(public_key: &[u8; 32]) -> String {
    hex(&Sha256::digest(public_key)[..8])
}

/// The canonical form of a JSON value: object keys sorted by their UTF-8
/// bytes, no whitespace; strings and numbers as `serde_json` writes them
/// (the shortest escapes; integers as digits).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    write_canonical_without(value, None, out)
}

/// [`write_canonical`], leaving out the top-level key `skip` of an object
/// (what removing it first would give, without copying the object).
fn write_canonical_without(value: &Value, skip: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing JSON to a Vec cannot fail");
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing JSON to a Vec cannot fail"),
    }
}

/// The signing bytes of one event and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// Canonical JSON of the event without `sig`: what the signature covers.
    pub signing_bytes: Vec<u8>,
    /// SHA-256 of `signing_bytes`.
    pub hash: EventHash,
}

impl Seal {
    /// The seal of an event's JSON object as written (not upcast).
    pub fn of_value(value: &Value) -> Seal {
        let mut signing_bytes = Vec::new();
        write_canonical_without(value, Some("sig"), &mut signing_bytes);
        let hash = EventHash(Sha256::digest(&signing_bytes).into());
        Seal { signing_bytes, hash }
    }

    /// The seal of an event exactly as received.
    pub fn of_bytes(bytes: &[u8]) -> Result<Seal, ProvenanceError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ProvenanceError::Unreadable(e.to_string()))?;
        Ok(Seal::of_value(&value))
    }

    /// The seal of an envelope as this code writes it ([`Envelope::encode`]).
    pub fn of_envelope(env: &Envelope) -> Seal {
        Seal::of_value(&serde_json::to_value(env).expect("an envelope always serialises"))
    }
}

/// [`Envelope::decode`] and [`Seal::of_bytes`] of the same message, reading
/// its JSON once: the seal of the JSON as received (before any upcast), and
/// the envelope exactly as `Envelope::decode` gives it, or its error.
pub fn decode_sealed(bytes: &[u8]) -> Result<(Envelope, Seal), DecodeError> {
    let value = Envelope::read_json(bytes)?;
    let seal = Seal::of_value(&value);
    Ok((Envelope::from_json(value)?, seal))
}

/// A ward's secret signing key. Its `Debug` shows the key id only.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key whose 32-byte secret (seed) is `secret`.
    pub fn from_secret(secret: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    /// The 32-byte secret, for the ward's key file only.
    pub fn secret(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::new(self.0.verifying_key())
    }

    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }

    /// Chains `env` to `prev` (the hash of the ward's event at seq − 1, `None`
    /// for seq 1) and signs it: sets `env.prev` and `env.sig`. Returns the
    /// event's hash, the next event's `prev`.
    pub fn sign(&self, env: &mut Envelope, prev: Option<EventHash>) -> EventHash {
        env.prev = prev.map(|h| h.to_hex());
        env.sig = None;
        let seal = Seal::of_envelope(env);
        self.sign_sealed(env, &seal);
        seal.hash
    }

    /// Signs `env`, already chained (`prev` set, no `sig`) and sealed as it
    /// is in `seal` ([`Seal::of_envelope`]): sets `env.sig`. For a writer that
    /// sealed the event earlier to chain the next one (the ward log), so the
    /// signing bytes are not computed twice.
    pub fn sign_sealed(&self, env: &mut Envelope, seal: &Seal) {
        debug_assert!(env.sig.is_none(), "an event is sealed and signed without its signature");
        let signature = self.0.sign(&seal.signing_bytes);
        env.sig = Some(Sig { key_id: self.key_id(), signature: hex(&signature.to_bytes()) });
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

/// A ward's public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    /// Of small order (the signature rule refuses such a key,
    /// [`crate::signatures`]): found once here, not for every signature
    /// (it was a twentieth of a town's signature checks).
    weak: bool,
}

impl PublicKey {
    fn new(key: ed25519_dalek::VerifyingKey) -> PublicKey {
        PublicKey { weak: key.is_weak(), key }
    }

    /// Reads 64 hex digits; refuses bytes that are not a point of the curve.
    pub fn from_hex(s: &str) -> Result<PublicKey, KeyError> {
        let bytes: [u8; 32] = unhex(s)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError::BadPublicKey { detail: format!("{s:?} is not {PUBLIC_KEY_HEX_LEN} hex digits") })?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey::new)
            .map_err(|e| KeyError::BadPublicKey { detail: format!("{s:?} is not an ed25519 public key: {e}") })
    }

    pub fn to_hex(&self) -> String {
        hex(self.key.as_bytes())
    }

    pub fn key_id(&self) -> String {
        key_id_of(self.key.as_bytes())
    }

    /// Whether `signature` (64 bytes) is this key's signature of `message`
    /// (the rule: [`crate::signatures`]).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        crate::signatures::verify_one(&crate::signatures::SignatureCheck { key: self, message, signature })
    }

    pub(crate) fn verifying_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }

    /// Whether the key is of small order (`VerifyingKey::is_weak`).
    pub(crate) fn is_weak(&self) -> bool {
        self.weak
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// One public key of a ward as a town registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredKey {
    pub key_id: String,
    /// ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// The first seq this key signs; it signs every seq up to the next key's `valid_from_seq` − 1.
    pub valid_from_seq: u64,
}

/// What `treem-ward keys show --public` prints, one JSON object per line,
/// and `treem-town keys add` reads: one public key of one ward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegistration {
    pub province: String,
    pub town: String,
    pub ward: String,
    pub key_id: String,
    pub public_key: String,
    pub valid_from_seq: u64,
}

impl KeyRegistration {
    pub fn key(&self) -> RegisteredKey {
        RegisteredKey { key_id: self.key_id.clone(), public_key: self.public_key.clone(), valid_from_seq: self.valid_from_seq }
    }
}

/// Why a key or a set of keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("bad public key: {detail}; copy the `public_key` printed by `treem-ward keys show --public`")]
    BadPublicKey { detail: String },
    #[error(
        "key id {key_id} does not match its public key, whose id is {expected}; copy the line `treem-ward keys show --public` prints unchanged"
    )]
    KeyIdMismatch { key_id: String, expected: String },
    #[error("key {key_id} has valid_from_seq 0; ward seqs start at 1")]
    ZeroValidFrom { key_id: String },
    #[error(
        "keys {first} and {second} are both valid from seq {seq}; a seq is signed by one key only — remove the one the ward no longer has"
    )]
    SameValidFrom { seq: u64, first: String, second: String },
    #[error("key {key_id} is registered twice; keep one entry")]
    Duplicate { key_id: String },
}

/// A ward's registered public keys, ordered by the seq each starts at.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<(RegisteredKey, PublicKey)>,
}

impl KeyRing {
    /// Checks every key (hex, curve point, id) and that no two keys start
    /// at the same seq.
    pub fn new(keys: impl IntoIterator<Item = RegisteredKey>) -> Result<KeyRing, KeyError> {
        let mut checked = Vec::new();
        for key in keys {
            let public = PublicKey::from_hex(&key.public_key)?;
            if public.key_id() != key.key_id {
                return Err(KeyError::KeyIdMismatch { key_id: key.key_id, expected: public.key_id() });
            }
            if key.valid_from_seq == 0 {
                return Err(KeyError::ZeroValidFrom { key_id: key.key_id });
            }
            checked.push((key, public));
        }
        checked.sort_by_key(|(k, _)| k.valid_from_seq);
        for pair in checked.windows(2) {
            let (a, b) = (&pair[0].0, &pair[1].0);
            if a.valid_from_seq == b.valid_from_seq {
                return Err(KeyError::SameValidFrom { seq: a.valid_from_seq, first: a.key_id.clone(), second: b.key_id.clone() });
            }
        }
        let mut ids: Vec<&str> = checked.iter().map(|(k, _)| k.key_id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(KeyError::Duplicate { key_id: w[0].to_owned() });
        }
        Ok(KeyRing { keys: checked })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &RegisteredKey> {
        self.keys.iter().map(|(k, _)| k)
    }

    /// The first seq that must be signed; earlier ones are legacy.
    pub fn first_signed_seq(&self) -> Option<u64> {
        self.keys.first().map(|(k, _)| k.valid_from_seq)
    }

    /// The seqs key `key_id` may sign: `(from, until)`, `until` `None` for
    /// the newest key.
    pub fn range(&self, key_id: &str) -> Option<(u64, Option<u64>)> {
        let i = self.keys.iter().position(|(k, _)| k.key_id == key_id)?;
        let until = self.keys.get(i + 1).map(|(next, _)| next.valid_from_seq - 1);
        Some((self.keys[i].0.valid_from_seq, until))
    }

    fn public(&self, key_id: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|(k, _)| k.key_id == key_id).map(|(_, p)| p)
    }
}

/// How an event passed [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Signed by `key_id`, a key valid for its seq.
    Signed { key_id: String },
    /// Unsigned, and older than the ward's first key: recorded before the
    /// ward signed its events.
    Legacy,
}

/// Why an event's provenance was refused. Each says what was wrong and
/// what an operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvenanceError {
    #[error("event is not JSON, so its signature cannot be checked: {0}")]
    Unreadable(String),
    #[error(
        "ward {ward} has no registered signing key here and unsigned events are refused (require_signatures); register it: run `treem-ward keys show --public` at the ward, `treem-town keys add` at the town, then replay this message"
    )]
    NoKeys { ward: String },
    #[error(
        "event seq {seq} of ward {ward} is not signed, but the ward signs every event from seq {from}: this copy is not the ward's (forged, or its signature stripped); refused"
    )]
    Unsigned { ward: String, seq: u64, from: u64 },
    #[error(
        "event seq {seq} of ward {ward} is signed by key {key_id}, which is not registered for this ward; if the ward rotated its key, register the new one (`treem-ward keys show --public` → `treem-town keys add`) and replay this message, otherwise it is forged"
    )]
    UnknownKey { ward: String, seq: u64, key_id: String },
    #[error(
        "event seq {seq} of ward {ward} is signed by key {key_id}, which may sign only seqs {from}–{until}: a retired key cannot sign later events (a stolen key?), nor a new key earlier ones; refused"
    )]
    KeyOutOfRange { ward: String, seq: u64, key_id: String, from: u64, until: String },
    #[error("event seq {seq} of ward {ward} has a malformed signature ({detail}); refused")]
    MalformedSignature { ward: String, seq: u64, detail: String },
    #[error(
        "the signature of event seq {seq} of ward {ward} does not verify with key {key_id}: the event was altered or forged after the ward signed it; refused"
    )]
    BadSignature { ward: String, seq: u64, key_id: String },
    #[error(
        "event seq {seq} of ward {ward} names {found} as the hash of its previous event, but the ward's seq {previous} here hashes to {expected}: the ward's history was re-ordered or rewritten; refused"
    )]
    ChainBroken { ward: String, seq: u64, previous: u64, expected: String, found: String },
    #[error(
        "ward {ward} already sent a different event with seq {seq} ({with}): a replayed or re-recorded event cannot take its place; refused"
    )]
    Conflict { ward: String, seq: u64, with: String },
    #[error("the log of ward {ward} jumps from seq {previous} to {seq}; a ward's events are numbered without gaps")]
    OutOfOrder { ward: String, previous: u64, seq: u64 },
}

/// Checks that `sig` is a valid signature of the event sealed in `seal`
/// (seq `seq` of `ward`) by the key of `ring` valid for that seq. An
/// unsigned event older than the ring's first key is [`Verified::Legacy`];
/// an empty ring refuses everything with [`ProvenanceError::NoKeys`] (the
/// caller decides whether a ward without keys may send unsigned events).
pub fn verify(ring: &KeyRing, ward: &str, seq: u64, sig: Option<&Sig>, seal: &Seal) -> Result<Verified, ProvenanceError> {
    verify_many(&[ToVerify { ring, ward, seq, sig, seal }]).pop().expect("one answer per event")
}

/// One event for [`verify_many`]: what [`verify`] takes.
#[derive(Debug, Clone, Copy)]
pub struct ToVerify<'a> {
    pub ring: &'a KeyRing,
    pub ward: &'a str,
    pub seq: u64,
    pub sig: Option<&'a Sig>,
    pub seal: &'a Seal,
}

/// [`verify`] of each event, in order, with the signatures checked
/// together ([`crate::signatures::verify_all`]): the same answers, at a
/// fraction of the cost for a batch.
pub fn verify_many(events: &[ToVerify<'_>]) -> Vec<Result<Verified, ProvenanceError>> {
    let prechecked: Vec<Result<Precheck<'_>, ProvenanceError>> = events.iter().map(precheck).collect();
    let checks: Vec<SignatureCheck<'_>> = prechecked
        .iter()
        .zip(events)
        .filter_map(|(p, e)| match p {
            Ok(Precheck::Signature { public, signature, .. }) => {
                Some(SignatureCheck { key: public, message: &e.seal.signing_bytes, signature })
            }
            _ => None,
        })
        .collect();
    let mut verdicts = crate::signatures::verify_all(&checks).into_iter();
    prechecked
        .into_iter()
        .zip(events)
        .map(|(p, e)| match p? {
            Precheck::Legacy => Ok(Verified::Legacy),
            Precheck::Signature { key_id, .. } => match verdicts.next() {
                Some(true) => Ok(Verified::Signed { key_id: key_id.to_owned() }),
                _ => Err(ProvenanceError::BadSignature { ward: e.ward.into(), seq: e.seq, key_id: key_id.to_owned() }),
            },
        })
        .collect()
}

/// What is left of [`verify`] once the key and the form of the signature are checked.
enum Precheck<'a> {
    Legacy,
    Signature { public: &'a PublicKey, key_id: &'a str, signature: Vec<u8> },
}

/// Everything [`verify`] checks but the signature's equation.
fn precheck<'a>(e: &ToVerify<'a>) -> Result<Precheck<'a>, ProvenanceError> {
    let (ring, ward, seq) = (e.ring, e.ward, e.seq);
    let Some(first) = ring.first_signed_seq() else { return Err(ProvenanceError::NoKeys { ward: ward.into() }) };
    let sig = match e.sig {
        None if seq < first => return Ok(Precheck::Legacy),
        None => return Err(ProvenanceError::Unsigned { ward: ward.into(), seq, from: first }),
        Some(sig) => sig,
    };
    let (Some(public), Some((from, until))) = (ring.public(&sig.key_id), ring.range(&sig.key_id)) else {
        return Err(ProvenanceError::UnknownKey { ward: ward.into(), seq, key_id: sig.key_id.clone() });
    };
    if seq < from || until.is_some_and(|u| seq > u) {
        let until = until.map_or_else(|| "…".to_owned(), |u| u.to_string());
        return Err(ProvenanceError::KeyOutOfRange { ward: ward.into(), seq, key_id: sig.key_id.clone(), from, until });
    }
    let signature = unhex(&sig.signature).filter(|b| b.len() * 2 == SIGNATURE_HEX_LEN).ok_or_else(|| {
        ProvenanceError::MalformedSignature { ward: ward.into(), seq, detail: format!("not {SIGNATURE_HEX_LEN} hex digits") }
    })?;
    Ok(Precheck::Signature { public, key_id: &sig.key_id, signature })
}

/// Checks the link of event `seq` to its predecessor: its `prev` must be
/// the hash of the ward's event at `seq − 1` (`previous`), or absent for
/// seq 1 (`previous` `None`).
pub fn check_link(ward: &str, seq: u64, prev: Option<&str>, previous: Option<EventHash>) -> Result<(), ProvenanceError> {
    let expected = previous.map(|h| h.to_hex());
    if prev == expected.as_deref() {
        return Ok(());
    }
    let show = |h: Option<&str>| h.map_or_else(|| "nothing".to_owned(), str::to_owned);
    Err(ProvenanceError::ChainBroken {
        ward: ward.into(),
        seq,
        previous: seq.saturating_sub(1),
        expected: show(expected.as_deref()),
        found: show(prev),
    })
}

/// Verifies a ward's whole log offline: `events` are its events exactly as
/// recorded, from seq 1 in order. Each must be the ward's, numbered without
/// gaps, signed by the key valid for its seq (or legacy, before the first
/// key) and, when signed, linked to its predecessor. Returns the hash of
/// the last event (`None` for an empty log).
pub fn verify_log<'a>(
    ring: &KeyRing,
    ward: &str,
    events: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<EventHash>, ProvenanceError> {
    let mut last: Option<(u64, EventHash)> = None;
    for bytes in events {
        let env = Envelope::decode(bytes).map_err(|e| ProvenanceError::Unreadable(e.to_string()))?;
        let previous = last.map_or(0, |(s, _)| s);
        if env.ward != ward || env.seq != previous + 1 {
            return Err(ProvenanceError::OutOfOrder { ward: ward.into(), previous, seq: env.seq });
        }
        let seal = Seal::of_bytes(bytes)?;
        if let Verified::Signed { .. } = verify(ring, ward, env.seq, env.sig.as_ref(), &seal)? {
            check_link(ward, env.seq, env.prev.as_deref(), last.map(|(_, h)| h))?;
        }
        last = Some((env.seq, seal.hash));
    }
    Ok(last.map(|(_, h)| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abFF"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(EventHash::from_hex(&"1f".repeat(32)).map(|h| h.0[0]), Some(0x1f));
        assert_eq!(EventHash::from_hex("1f"), None);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_drops_whitespace() {
        let v: Value = serde_json::from_str(r#"{ "b": 1, "a": {"z": [3, {"y": "é\n", "x": null}], "c": true} }"#).unwrap();
        assert_eq!(String::from_utf8(canonical_json(&v)).unwrap(), r#"{"a":{"c":true,"z":[3,{"x":null,"y":"é\n"}]},"b":1}"#);
    }

    #[test]
    fn the_seal_ignores_sig_and_layout_but_not_content() {
        let a: Value = serde_json::from_str(r#"{"seq":1,"x":"y","sig":{"key_id":"k","signature":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str("{\n  \"x\": \"y\",\n  \"seq\": 1\n}").unwrap();
        let c: Value = serde_json::from_str(r#"{"seq":2,"x":"y"}"#).unwrap();
        assert_eq!(Seal::of_value(&a), Seal::of_value(&b));
        assert_ne!(Seal::of_value(&a).hash, Seal::of_value(&c).hash);
    }

    /// The seal as it was computed before `write_canonical_without`: remove `sig`, then canonical JSON.
    fn seal_by_removing_sig(value: &Value) -> Vec<u8> {
        match value {
            Value::Object(map) => {
                let mut map = map.clone();
                map.remove("sig");
                canonical_json(&Value::Object(map))
            }
            other => canonical_json(other),
        }
    }

    #[test]
    fn decode_sealed_is_decode_and_seal_of_bytes_together() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for dir in ["tests/corpus/envelope", "schema/examples", "tests/fixtures/v1", "tests/fixtures/v2"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|x| x == "json") {
                    inputs.push(std::fs::read(path).unwrap());
                }
            }
        }
        assert!(inputs.len() > 5, "the corpus is where the fuzz test reads it");
        let key = SigningKey::from_secret(&[7; 32]);
        for bytes in inputs.clone() {
            if let Ok(mut env) = Envelope::decode(&bytes) {
                key.sign(&mut env, Some(EventHash([3; 32])));
                inputs.push(env.encode());
            }
        }
        inputs.extend([
            b"{not json".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            br#"{"schema":9}"#.to_vec(),
            vec![b' '; crate::event::MAX_EVENT_BYTES + 1],
        ]);
        for bytes in &inputs {
            let together = decode_sealed(bytes);
            match (Envelope::decode(bytes), &together) {
                (Ok(env), Ok((e, seal))) => {
                    assert_eq!(&env, e);
                    assert_eq!(Seal::of_bytes(bytes).as_ref(), Ok(seal));
                    let value: Value = serde_json::from_slice(bytes).unwrap();
                    assert_eq!(seal.signing_bytes, seal_by_removing_sig(&value));
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("decode {a:?} but decode_sealed {b:?}"),
            }
        }
    }

    #[test]
    fn a_key_ring_refuses_ambiguous_or_mislabelled_keys() {
        let k1 = SigningKey::from_secret(&[1; 32]).public_key();
        let k2 = SigningKey::from_secret(&[2; 32]).public_key();
        let reg = |p: &PublicKey, from: u64| RegisteredKey { key_id: p.key_id(), public_key: p.to_hex(), valid_from_seq: from };
        let ring = KeyRing::new([reg(&k2, 11), reg(&k1, 1)]).unwrap();
        assert_eq!(ring.range(&k1.key_id()), Some((1, Some(10))));
        assert_eq!(ring.range(&k2.key_id()), Some((11, None)));
        assert_eq!(ring.first_signed_seq(), Some(1));
        assert!(matches!(KeyRing::new([reg(&k1, 1), reg(&k2, 1)]), Err(KeyError::SameValidFrom { seq: 1, .. })));
        assert!(matches!(KeyRing::new([reg(&k1, 1), reg(&k1, 5)]), Err(KeyError::Duplicate { .. })));
        assert!(matches!(KeyRing::new([reg(&k1, 0)]), Err(KeyError::ZeroValidFrom { .. })));
        let mislabelled = RegisteredKey { key_id: k2.key_id(), ..reg(&k1, 1) };
        assert!(matches!(KeyRing::new([mislabelled]), Err(KeyError::KeyIdMismatch { .. })));
        let junk = RegisteredKey { public_key: "00".into(), ..reg(&k1, 1) };
        assert!(matches!(KeyRing::new([junk]), Err(KeyError::BadPublicKey { .. })));
    }
}
