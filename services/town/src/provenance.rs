//! Provenance at the town: the registry of each ward's public keys, and
//! the checks the fold runs on a ward's event before applying it — its
//! signature, and its link to the ward's previous event (the signing bytes,
//! hashes and ed25519 are `treem_proto::provenance`).
//!
//! # The keys file
//!
//! `ward_keys_file` (config; default `<data_dir>/ward_keys.json`), ward code
//! → that ward's public keys:
//!
//! ```json
//! {"25320": [{"key_id": "e20e04e7943a2233", "public_key": "7c82…d281", "valid_from_seq": 1}]}
//! ```
//!
//! An operator fills it with `treem-town keys add`, which reads the lines
//! `treem-ward keys show --public` prints (see `provenance_cli.rs`,
//! SECURITY.md). The town reads it at start (a file that does not parse
//! stops the start; a missing file is an empty registry) and reads it again
//! whenever it changes, before the next batch ([`WardKeys::refresh`]): a key
//! added while the town runs counts from the next message on. A change that
//! does not parse is logged at ERROR and the keys in force stay.
//!
//! Whoever can write this file decides which events the town believes:
//! keep it, like the store, writable by the town's user only.
//!
//! # What the fold checks ([`check`], [`link`])
//!
//! After the checks of subject, ward and hierarchy, and before the ward's
//! sequence is consulted:
//!
//! 1. **A seq the town already applied** (`seq ≤ pos`): the same event again
//!    (its hash is the one recorded for that seq) is a duplicate, as before.
//!    A *different* event at that seq is refused: forged or altered when its
//!    signature fails, a replay or a re-recorded history when it verifies.
//!    (Seqs applied before the town kept hashes count as duplicates.)
//! 2. **Signature**: the event must verify with the key registered for its
//!    ward and seq (`KeyRing`). An unsigned event is accepted only before the
//!    ward's first key (written before the ward signed), or from a ward with
//!    no registered key when `require_signatures = false`.
//! 3. **Held events** (ahead of a gap) are held only once they verify, so a
//!    forgery can never take the slot of the real event; a different,
//!    verifying event for an occupied slot is refused.
//! 4. **Link** (when the event takes its turn): a signed event's `prev` must
//!    be the hash of the event the town applied at `seq − 1`. Seq 1 has no
//!    `prev`. If the town applied `seq − 1` before it kept hashes, the link
//!    is taken as it is (the signature still holds).
//!
//! A refusal **parks the message without moving the ward's position**, like
//! an unreadable message: a forger must not be able to use up a seq and so
//! block the real event, which still applies when it arrives. Each refusal
//! counts in the ward's `provenance_failures` (sync status). The parked
//! record keeps the exact bytes: once the cause is fixed (say the ward's
//! new key registered), a replay runs these checks again.
//!
//! # Store keys
//!
//! The 32-byte hash of the event the town took at each seq (applied, or
//! consumed and parked by the rules), written in the same atomic batch as
//! the ward's position, 64 seqs to a record: `chain64/<ward>/<seq / 64 BE>`
//! holds slot `seq % 64` at bytes `32 × slot`, the record as long as its
//! highest slot filled, a slot of zeros empty. One record per ward and 64
//! seqs instead of one per event: each insert costs sled a copy of the
//! whole leaf it lands in, and the chain was a third of the town's inserts
//! (BENCHMARKS.md). Stores written before keep `chain/<ward>/<seq BE>` → one
//! hash; [`recorded`] reads those where the new record has no slot, so
//! nothing needs migrating.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use treem_proto::event::Envelope;
use treem_proto::provenance::{self, EventHash, KeyError, KeyRing, ProvenanceError, RegisteredKey, Seal, Verified};

use crate::fold::{Outcome, put_ward_info, ward_info};
use crate::kv::Kv;
use crate::parked::{Unplaced, park};

/// The default name of the keys file in the town's data directory.
pub const KEYS_FILE: &str = "ward_keys.json";

/// The keys file as written: ward code → its keys.
pub type KeysFile = BTreeMap<String, Vec<RegisteredKey>>;

/// Why the keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot {action} the ward keys file {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error(
        "the ward keys file {path} is not valid JSON of ward code → [{{key_id, public_key, valid_from_seq}}]: {detail}; fix it, or rebuild it with `treem-town keys add`"
    )]
    Parse { path: PathBuf, detail: String },
    #[error("the ward keys file {path}, ward {ward}: {source}")]
    Key { path: PathBuf, ward: String, source: KeyError },
}

/// A snapshot of the file's identity, to notice a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() })
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    rings: BTreeMap<String, KeyRing>,
}

/// The town's registry of ward public keys (the keys file, kept current).
#[derive(Debug)]
pub struct WardKeys {
    /// Refuse unsigned events from a ward that has no registered key.
    require_signatures: bool,
    file: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

/// Reads a keys file; a missing file is empty.
pub fn read_keys_file(path: &Path) -> Result<KeysFile, RegistryError> {
    match std::fs::read(path) {
        Ok(text) if text.iter().all(u8::is_ascii_whitespace) => Ok(KeysFile::new()),
        Ok(text) => serde_json::from_slice(&text).map_err(|e| RegistryError::Parse { path: path.into(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::new()),
        Err(source) => Err(RegistryError::Io { action: "read", path: path.into(), source }),
    }
}

/// Checks every ward's keys (see `KeyRing::new`).
pub fn rings(path: &Path, file: &KeysFile) -> Result<BTreeMap<String, KeyRing>, RegistryError> {
    file.iter()
        .map(|(ward, keys)| {
            let ring = KeyRing::new(keys.iter().cloned()).map_err(|source| RegistryError::Key {
                path: path.into(),
                ward: ward.clone(),
                source,
            })?;
            Ok((ward.clone(), ring))
        })
        .collect()
}

impl WardKeys {
    /// Loads the keys file (`None`: no file, no keys).
    pub fn load(file: Option<PathBuf>, require_signatures: bool) -> Result<WardKeys, RegistryError> {
        let keys = WardKeys { require_signatures, file, loaded: RwLock::new(Loaded::default()) };
        if let Some(path) = &keys.file {
            let before = stamp(path);
            let rings = rings(path, &read_keys_file(path)?)?;
            *keys.loaded.write().expect("keys lock") = Loaded { stamp: before, rings };
        }
        Ok(keys)
    }

    /// Fixed keys, never re-read (tests, tools).
    pub fn fixed(rings: BTreeMap<String, KeyRing>, require_signatures: bool) -> WardKeys {
        WardKeys { require_signatures, file: None, loaded: RwLock::new(Loaded { stamp: None, rings }) }
    }

    /// No keys, and unsigned events accepted: the town as it was before
    /// provenance (tests of other rules, tools reading old streams).
    pub fn not_required() -> WardKeys {
        WardKeys::fixed(BTreeMap::new(), false)
    }

    pub fn require_signatures(&self) -> bool {
        self.require_signatures
    }

    /// The wards with at least one registered key.
    pub fn wards(&self) -> Vec<String> {
        self.loaded.read().expect("keys lock").rings.iter().filter(|(_, r)| !r.is_empty()).map(|(w, _)| w.clone()).collect()
    }

    /// Re-reads the keys file if it changed since it was last read. Keeps
    /// the keys in force if the new content is not valid (logged at ERROR).
    pub fn refresh(&self) {
        let Some(path) = &self.file else { return };
        let now = stamp(path);
        if self.loaded.read().expect("keys lock").stamp == now {
            return;
        }
        match read_keys_file(path).and_then(|f| rings(path, &f)) {
            Ok(rings) => {
                let wards = rings.values().filter(|r| !r.is_empty()).count();
                *self.loaded.write().expect("keys lock") = Loaded { stamp: now, rings };
                tracing::info!(path = %path.display(), wards, "ward keys file read again");
            }
            Err(e) => {
                // Remember the stamp so the error is logged once per change.
                self.loaded.write().expect("keys lock").stamp = now;
                tracing::error!(error = %e, "the ward keys file changed but cannot be used; the keys read before stay in force");
            }
        }
    }

    /// Checks the signature of `env` (sealed in `seal`): how it passed, or why not.
    fn verify(&self, env: &Envelope, seal: &Seal) -> Result<Option<Verified>, ProvenanceError> {
        self.verify_many(&[(env, seal)]).pop().expect("one answer per event")
    }

    /// [`WardKeys::verify`] of each event, with the keys in force now for
    /// all of them and the signatures checked together
    /// ([`provenance::verify_many`]: the same answers).
    fn verify_many(&self, events: &[(&Envelope, &Seal)]) -> Vec<Result<Option<Verified>, ProvenanceError>> {
        let loaded = self.loaded.read().expect("keys lock");
        let ring = |env: &Envelope| loaded.rings.get(&env.ward).filter(|r| !r.is_empty());
        let signed: Vec<provenance::ToVerify<'_>> = events
            .iter()
            .filter_map(|(env, seal)| {
                ring(env).map(|ring| provenance::ToVerify { ring, ward: &env.ward, seq: env.seq, sig: env.sig.as_ref(), seal })
            })
            .collect();
        let mut verified = provenance::verify_many(&signed).into_iter();
        events
            .iter()
            .map(|(env, _)| match ring(env) {
                Some(_) => verified.next().expect("one answer per signed event").map(Some),
                None if self.require_signatures => Err(ProvenanceError::NoKeys { ward: env.ward.clone() }),
                // Not required and no key: taken as it is, unverified.
                None => Ok(None),
            })
            .collect()
    }
}

/// Hashes per `chain64/` record (module doc, "Store keys").
const CHAIN_SLOTS: u64 = 64;
const HASH_LEN: usize = 32;

/// The store key of the hash of `ward`'s event at `seq` in stores written
/// before hashes were kept 64 to a record (read only).
pub fn chain_key(ward: &str, seq: u64) -> Vec<u8> {
    let mut k = format!("chain/{ward}/").into_bytes();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The key of the record holding the hash of `ward`'s event at `seq`, and its slot there.
fn chain_record(ward: &str, seq: u64) -> (Vec<u8>, usize) {
    let mut k = format!("chain64/{ward}/").into_bytes();
    k.extend_from_slice(&(seq / CHAIN_SLOTS).to_be_bytes());
    (k, (seq % CHAIN_SLOTS) as usize * HASH_LEN)
}

/// The hash the town recorded for `ward`'s event at `seq`, if any.
pub fn recorded(kv: &impl Kv, ward: &str, seq: u64) -> Option<EventHash> {
    let (key, at) = chain_record(ward, seq);
    let slot = kv.get_at(&key, at, HASH_LEN).and_then(|h| <[u8; HASH_LEN]>::try_from(h).ok());
    match slot {
        Some(h) if h != [0; HASH_LEN] => Some(EventHash(h)),
        _ => kv.get(&chain_key(ward, seq)).and_then(|v| v.try_into().ok()).map(EventHash),
    }
}

/// Records the hash of the event the town took at `seq`.
pub(crate) fn record(kv: &mut impl Kv, ward: &str, seq: u64, hash: EventHash) {
    let (key, at) = chain_record(ward, seq);
    kv.write_at(key, at, &hash.0);
}

/// What [`check`] concluded about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// The event the town already took at this seq, again.
    Duplicate,
    /// Its provenance holds; `signed`: its link must be checked in its turn.
    Passed {
        hash: EventHash,
        signed: bool,
    },
    Refused(String),
}

/// What [`check`] needs of an event that does not depend on the store: its
/// hash and how its signature verified against the keys in force. Pure, so
/// a batch's are computed up front in parallel ([`crate::fold::prepare`]).
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    hash: EventHash,
    verdict: Result<Option<Verified>, ProvenanceError>,
}

impl Sealed {
    /// Verifies `env`, sealed in `seal`, with the keys of `registry` now.
    pub(crate) fn new(registry: &WardKeys, env: &Envelope, seal: &Seal) -> Sealed {
        Sealed { hash: seal.hash, verdict: registry.verify(env, seal) }
    }

    /// [`Sealed::new`] of each event, the signatures checked together: the same answers.
    pub(crate) fn many(registry: &WardKeys, events: &[(&Envelope, &Seal)]) -> Vec<Sealed> {
        let verdicts = registry.verify_many(events);
        events.iter().zip(verdicts).map(|((_, seal), verdict)| Sealed { hash: seal.hash, verdict }).collect()
    }

    /// Seals the message `bytes` (the JSON of `env` as received) and verifies it;
    /// `Err` when it is not JSON.
    pub(crate) fn of_bytes(registry: &WardKeys, env: &Envelope, bytes: &[u8]) -> Result<Sealed, String> {
        Seal::of_bytes(bytes).map(|seal| Sealed::new(registry, env, &seal)).map_err(|e| e.to_string())
    }
}

/// The provenance checks of an event at arrival (see the module doc, 1–2).
/// `pos` is the ward's position (last seq applied).
pub(crate) fn check(kv: &impl Kv, registry: &WardKeys, env: &Envelope, bytes: &[u8], pos: u64) -> Check {
    check_sealed(kv, env, Sealed::of_bytes(registry, env, bytes), pos)
}

/// [`check`] with the store-free part done already ([`Sealed`]).
pub(crate) fn check_sealed(kv: &impl Kv, env: &Envelope, sealed: Result<Sealed, String>, pos: u64) -> Check {
    let Sealed { hash, verdict } = match sealed {
        Ok(sealed) => sealed,
        Err(reason) => return Check::Refused(reason),
    };
    if env.seq <= pos {
        return match recorded(kv, &env.ward, env.seq) {
            None => Check::Duplicate,
            Some(h) if h == hash => Check::Duplicate,
            Some(h) => match verdict {
                Err(e) => Check::Refused(e.to_string()),
                Ok(_) => Check::Refused(
                    ProvenanceError::Conflict { ward: env.ward.clone(), seq: env.seq, with: format!("the one applied hashes to {h}") }
                        .to_string(),
                ),
            },
        };
    }
    match verdict {
        Ok(v) => Check::Passed { hash, signed: matches!(v, Some(Verified::Signed { .. })) },
        Err(e) => Check::Refused(e.to_string()),
    }
}

/// Whether a verified event arriving ahead of a gap may wait in `held`
/// beside what already waits there for its seq (module doc, 3).
pub(crate) fn check_held(env: &Envelope, held: &[u8], hash: EventHash) -> Result<(), String> {
    match Seal::of_bytes(held) {
        Ok(seal) if seal.hash == hash => Ok(()),
        _ => Err(ProvenanceError::Conflict {
            ward: env.ward.clone(),
            seq: env.seq,
            with: "another event with this seq is already waiting for its turn".into(),
        }
        .to_string()),
    }
}

/// The link of a signed event taking its turn (module doc, 4).
pub(crate) fn link(kv: &impl Kv, env: &Envelope) -> Result<(), String> {
    let previous = match env.seq {
        0 | 1 => None,
        seq => match recorded(kv, &env.ward, seq - 1) {
            Some(h) => Some(h),
            // Applied before the town kept hashes: nothing to compare with.
            None => return Ok(()),
        },
    };
    provenance::check_link(&env.ward, env.seq, env.prev.as_deref(), previous).map_err(|e| e.to_string())
}

/// Parks a message whose provenance was refused, without moving the ward's
/// position, and counts it in the ward's sync facts.
pub(crate) fn refuse(kv: &mut impl Kv, subject: &str, bytes: &[u8], env: &Envelope, reason: String) -> Outcome {
    let mut info = ward_info(kv, &env.ward);
    info.provenance_failures += 1;
    put_ward_info(kv, &env.ward, &info);
    park(kv, subject, bytes, Unplaced::event(&env.ward, env), reason)
}

/// Writes `file` to `path` atomically (temporary file, fsync, rename, fsync
/// of the directory).
pub fn write_keys_file(path: &Path, file: &KeysFile) -> Result<(), RegistryError> {
    use std::io::Write;
    let io = |action: &'static str| move |source| RegistryError::Io { action, path: path.into(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let mut text = serde_json::to_vec_pretty(file).expect("the keys file serialises");
    text.push(b'\n');
    {
        let mut f = std::fs::File::create(&tmp).map_err(io("create a temporary file beside"))?;
        f.write_all(&text).and_then(|()| f.sync_all()).map_err(io("write"))?;
    }
    std::fs::rename(&tmp, path).map_err(io("replace"))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync the directory of"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;

    fn hash(n: u64) -> EventHash {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&n.to_be_bytes());
        h[31] = 1;
        EventHash(h)
    }

    #[test]
    fn hashes_kept_64_to_a_record_read_back_across_record_boundaries() {
        let mut kv = MemKv::default();
        let seqs = [1u64, 2, 62, 63, 64, 65, 127, 128, 200];
        for &seq in &seqs {
            record(&mut kv, "25320", seq, hash(seq));
        }
        record(&mut kv, "25324", 2, hash(9999));
        for seq in 0..=210 {
            let want = seqs.contains(&seq).then(|| hash(seq));
            assert_eq!(recorded(&kv, "25320", seq), want, "seq {seq}");
        }
        assert_eq!(recorded(&kv, "25324", 2), Some(hash(9999)));
        assert_eq!(recorded(&kv, "25324", 1), None);
        // Seqs 0–63, 64–127, 128–191 and 192–255 of the first ward, one record each.
        assert_eq!(kv.0.keys().filter(|k| k.starts_with(b"chain64/25320/")).count(), 4);
        assert!(!kv.0.keys().any(|k| k.starts_with(b"chain/")), "the one-per-seq layout is never written");
    }

    #[test]
    fn hashes_of_a_store_written_one_per_seq_are_still_read() {
        let mut kv = MemKv::default();
        // A store from before `chain64/`: seqs 1–3 one per key.
        for seq in 1..=3 {
            kv.0.insert(chain_key("25320", seq), hash(seq).0.to_vec());
        }
        // The town, upgraded, takes seq 4 into the new record.
        record(&mut kv, "25320", 4, hash(4));
        for seq in 1..=4 {
            assert_eq!(recorded(&kv, "25320", seq), Some(hash(seq)), "seq {seq}");
        }
        assert_eq!(recorded(&kv, "25320", 5), None);
    }
}
