//! Ward signing keys for the scenarios, as an operator provisions them
//! (SECURITY.md, "Ward signing keys"): each ward's key made in its data
//! directory (`treem_ward::keys`), its public half registered in the town's
//! keys file (`<town data dir>/ward_keys.json`, the default
//! `ward_keys_file`), so the town — which requires signatures by default —
//! applies the ward's events.
//!
//! - [`provision`]: for wards whose data directories a scenario chooses;
//!   `System::new` (tests/tests/e2e/system.rs) provisions all six wards of
//!   Bình Long in its `ward-<code>` directories, so a scenario that does not
//!   care about provenance needs nothing more.
//! - [`WardSigner`]: signs and chains envelopes a scenario publishes straight
//!   onto the stream, with the key of the ward they claim to come from, as
//!   that ward would.

use std::collections::BTreeMap;
use std::path::Path;

use treem_proto::Envelope;
use treem_proto::provenance::{EventHash, KeyRegistration, SigningKey};
use treem_proto::subject::WardPath;
use treem_ward::keys::WardKeys;

/// The province and town of every scenario (Bình Phước, Bình Long).
const PROVINCE: &str = "70";
const TOWN: &str = "690";

fn ward_path(ward: &str) -> WardPath {
    WardPath { province: PROVINCE.into(), town: TOWN.into(), ward: ward.into() }
}

/// Makes each ward's key in its data directory if it has none (valid from
/// seq 1: call it before the ward records anything) and registers every
/// key of each ward in the keys file of the town in `town_data_dir`,
/// replacing what was registered for that ward.
pub fn provision(town_data_dir: &Path, wards: &[(&Path, &str)]) {
    let path = town_data_dir.join(treem_town::provenance::KEYS_FILE);
    let mut file = treem_town::provenance::read_keys_file(&path).expect("the town's keys file reads");
    for (dir, ward) in wards {
        let keys = WardKeys::load_or_create(dir, &ward_path(ward), 1).expect("the ward's signing key");
        file.insert((*ward).into(), keys.registrations().iter().map(KeyRegistration::key).collect());
    }
    treem_town::provenance::write_keys_file(&path, &file).expect("the town's keys file is written");
}

/// Registers the keys the ward in `ward_data_dir` has now (after a
/// rotation, say) at the town, as `treem-town keys add` would.
pub fn register(town_data_dir: &Path, ward_data_dir: &Path, ward: &str) {
    provision(town_data_dir, &[(ward_data_dir, ward)]);
}

/// Signs envelopes with a ward's key, chaining each to the one signed
/// before it at `seq − 1` — what the ward's log does when it records.
pub struct WardSigner {
    key: SigningKey,
    hashes: BTreeMap<u64, EventHash>,
}

impl WardSigner {
    /// The signer of the ward whose data directory is `ward_data_dir`.
    pub fn of(ward_data_dir: &Path, ward: &str) -> WardSigner {
        let keys = WardKeys::load(ward_data_dir, &ward_path(ward)).expect("the ward's key file reads").expect("the ward has a key");
        WardSigner { key: keys.signing_key().clone(), hashes: BTreeMap::new() }
    }

    /// A signer with a key of its own: an attacker's.
    pub fn with_key(key: SigningKey) -> WardSigner {
        WardSigner { key, hashes: BTreeMap::new() }
    }

    /// Signs `env` in place; its `prev` is the hash of the envelope this
    /// signer signed last at `env.seq − 1` (none for seq 1; a gap panics:
    /// sign a ward's events in seq order).
    pub fn sign(&mut self, env: &mut Envelope) {
        let prev = match env.seq {
            0 | 1 => None,
            seq => Some(*self.hashes.get(&(seq - 1)).unwrap_or_else(|| panic!("sign seq {} before seq {seq}", seq - 1))),
        };
        let hash = self.key.sign(env, prev);
        self.hashes.insert(env.seq, hash);
    }

    /// [`WardSigner::sign`], returning the envelope.
    pub fn signed(&mut self, mut env: Envelope) -> Envelope {
        self.sign(&mut env);
        env
    }

    /// The hash of the envelope signed at `seq`, if any.
    pub fn hash(&self, seq: u64) -> Option<EventHash> {
        self.hashes.get(&seq).copied()
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }
}
