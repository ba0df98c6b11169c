//! Provenance at the ward: every recorded event is signed by the ward's key
//! and chained to the one before, across restarts and key rotations, so
//! the stored log verifies offline with the keys `keys show --public`
//! lists; the `keys` commands make, show and rotate the key, and never
//! print its secret.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use treem_proto::Envelope;
use treem_proto::catalogue::Catalogue;
use treem_proto::provenance::{KeyRegistration, KeyRing, Seal, verify_log};
use treem_ward::WardLog;
use treem_ward::keys::WardKeys;

use crate::common::{WARD, observation, ward_path};

fn open(dir: &Path) -> WardLog {
    WardLog::open(dir, ward_path(), Catalogue::shipped()).expect("the log opens")
}

/// The stored log verifies with the ward's registered keys; returns its events.
fn verify_stored(log: &WardLog, dir: &Path) -> Vec<Envelope> {
    let stored = log.read_stored_from(0, 10_000).unwrap();
    let keys = WardKeys::load(dir, &ward_path()).unwrap().expect("the ward has keys");
    let ring = KeyRing::new(keys.registrations().iter().map(KeyRegistration::key)).unwrap();
    let tip = verify_log(&ring, WARD, stored.iter().map(|(_, b)| b.as_slice())).expect("the stored log verifies");
    assert_eq!(tip, stored.last().map(|(_, b)| Seal::of_bytes(b).unwrap().hash));
    for (env, bytes) in &stored {
        assert_eq!(&env.encode(), bytes, "seq {}: stored bytes are the signed envelope", env.seq);
    }
    stored.into_iter().map(|(e, _)| e).collect()
}

#[tokio::test]
async fn events_are_signed_and_chained_across_restarts_and_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let first_key = WardKeys::load(dir.path(), &ward_path()).unwrap().expect("the first open made a key");
    assert_eq!(first_key.valid_from_seq(), 1, "a new ward signs from its first event");
    log.append("officer", observation(1)).await.unwrap();
    log.append_all("officer", vec![observation(2), observation(3)]).await.unwrap();
    drop(log);

    // Restart: the chain goes on from the stored tip.
    let log = open(dir.path());
    log.append("officer", observation(4)).await.unwrap();
    let envs = verify_stored(&log, dir.path());
    assert_eq!(envs.len(), 4);
    assert_eq!(envs[0].prev, None);
    assert!(envs.iter().all(|e| e.sig.as_ref().is_some_and(|s| s.key_id == first_key.key_id())));
    drop(log);

    // Rotation with the log closed: the new key signs from seq 5, the chain continues.
    let mut keys = WardKeys::load(dir.path(), &ward_path()).unwrap().unwrap();
    keys.rotate(5).unwrap();
    let log = open(dir.path());
    log.append_all("officer", vec![observation(5), observation(6)]).await.unwrap();
    let envs = verify_stored(&log, dir.path());
    assert_eq!(envs.len(), 6);
    assert_eq!(envs[4].sig.as_ref().unwrap().key_id, keys.key_id());
    assert_eq!(envs[3].sig.as_ref().unwrap().key_id, first_key.key_id());
    // What the HTTP API and the CLI list carries the provenance too.
    assert_eq!(log.read_from(0, 10).unwrap(), envs);
}

fn ward(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_treem-ward"))
        .args(args)
        .env("TREEM_WARD_WARD", WARD)
        .env("TREEM_WARD_DATA_DIR", dir)
        .env_remove("TREEM_WARD_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn registrations(text: &str) -> Vec<KeyRegistration> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not a registration: {e}"))).collect()
}

#[tokio::test]
async fn the_keys_commands_make_show_and_rotate_without_printing_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let err = String::from_utf8_lossy(&ward(&data, &["keys", "show"]).stderr).into_owned();
    assert!(err.contains("treem-ward keys init"), "no key yet says what to run: {err}");

    let out = ok(ward(&data, &["keys", "init"]));
    assert!(out.contains("made the signing key of ward 25320") && out.contains("treem-town keys add"), "{out}");
    let public = ok(ward(&data, &["keys", "show", "--public"]));
    let regs = registrations(&public);
    assert_eq!(regs.len(), 1);
    assert_eq!((regs[0].province.as_str(), regs[0].town.as_str(), regs[0].ward.as_str(), regs[0].valid_from_seq), ("70", "690", WARD, 1));
    KeyRing::new(regs.iter().map(KeyRegistration::key)).expect("what it prints is a valid key");
    let again = ok(ward(&data, &["keys", "init"]));
    assert!(again.contains("already has a signing key"), "{again}");

    // Two events, then a rotation: the new key signs from seq 3.
    let log = open(&data);
    log.append_all("officer", vec![observation(1), observation(2)]).await.unwrap();
    drop(log);
    let out = ok(ward(&data, &["keys", "rotate"]));
    assert!(out.contains("signs from seq 3"), "{out}");
    let regs = registrations(&ok(ward(&data, &["keys", "show", "--public"])));
    assert_eq!(regs.iter().map(|r| r.valid_from_seq).collect::<Vec<_>>(), [1, 3]);
    let shown = ok(ward(&data, &["keys", "show"]));
    assert!(shown.contains("retired key") && shown.contains("signed seqs 1–2"), "{shown}");

    // The secret is in the key file only (mode 0600), in no output.
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(WardKeys::path(&data)).unwrap()).unwrap();
    let secret = file["active"]["secret_key"].as_str().unwrap().to_owned();
    for text in [&out, &shown, &public] {
        assert!(!text.contains(&secret), "the secret never leaves the key file");
    }
}
