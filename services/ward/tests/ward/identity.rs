//! A child's identity stays in the ward, sealed under a key of its own, and
//! is erased for good when consent is withdrawn:
//!
//! - planted canary values never appear in the `log` tree nor in what the
//!   HTTP API lists, and are not in plaintext in *any* file of the data dir;
//! - the officer reads them back (library, HTTP, CLI);
//! - after a withdrawal, no file of the data dir holds the canaries or the
//!   key's bytes, the identity reads as "erased at the child's request", and
//!   the case's events stay;
//! - start-up finishes what a crash interrupted (a tombstone whose key is
//!   still there, a key whose case was never recorded) and seals identities
//!   an older treem stored in plaintext.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use treem_proto::event::{CaseCategory, Sex};
use treem_ward::identity::{Identity, IdentityError, OpenCase, identity_of, open_case, withdraw_consent, withdrawals};
use treem_ward::vault::{KEY_LEN, VAULT_DIR, Vault};
use uuid::Uuid;

use crate::common::{config, dead_nats_url};

const CANARIES: [&str; 4] = ["CANARY-NAME-Trần Thị Ẩn", "2016-02-29", "CANARY-ADDR-Ấp 7 Thanh Lương", "CANARY-GUARDIAN-Lê Văn Giấu"];

fn canary_identity(tag: &str) -> Identity {
    Identity {
        name: format!("{} {tag}", CANARIES[0]),
        date_of_birth: CANARIES[1].into(),
        address: format!("{} {tag}", CANARIES[2]),
        guardian: format!("{} {tag}", CANARIES[3]),
    }
}

fn case(identity: Identity) -> OpenCase {
    OpenCase { identity, year: 2025, category: CaseCategory::Abuse, groups: vec![], sex: Sex::Female }
}

/// Every regular file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Panics naming the file if any file under `dir` holds any of `needles`.
fn assert_no_file_holds(dir: &Path, needles: &[(&str, Vec<u8>)]) {
    let all = files(dir);
    assert!(all.iter().any(|p| p.ends_with("db")), "the scan must include sled's data file: {all:?}");
    for path in all {
        let bytes = std::fs::read(&path).unwrap();
        for (what, needle) in needles {
            assert!(!contains(&bytes, needle), "{what} found in {}", path.display());
        }
    }
}

#[tokio::test]
async fn identity_never_enters_the_log_and_is_stored_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    let base = format!("http://{}", node.http_addr);
    let client = reqwest::Client::new();

    // One case over HTTP, one through the library.
    let req = json!({
        "identity": {"name": CANARIES[0], "date_of_birth": CANARIES[1], "address": CANARIES[2], "guardian": CANARIES[3]},
        "year": 2024, "category": "abuse", "sex": "female"
    });
    let resp = client.post(format!("{base}/api/v1/cases")).json(&req).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let http_case: serde_json::Value = resp.json().await.unwrap();
    let http_case_id: uuid::Uuid = http_case["case_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(http_case_id.get_version_num(), 4, "case ids are random (v4), not derived from the identity");

    let identity =
        Identity { name: CANARIES[0].into(), date_of_birth: CANARIES[1].into(), address: CANARIES[2].into(), guardian: CANARIES[3].into() };
    let case = OpenCase {
        identity: identity.clone(),
        year: 2025,
        category: CaseCategory::SpecialCircumstances,
        groups: vec!['b'],
        sex: Sex::Female,
    };
    let (lib_case_id, env) = open_case(&node.log, "officer-1", case).await.unwrap();
    assert_ne!(lib_case_id, http_case_id, "the same child gets a new random id per case");
    assert_eq!(identity_of(&node.log, lib_case_id).unwrap(), Some(identity.clone()));
    assert_eq!(env.seq, 2);

    // The officer reads it back on the local API.
    let shown: Value = client.get(format!("{base}/api/v1/cases/{http_case_id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["identity"]["name"], CANARIES[0], "{shown}");

    // A refused case leaves no identity and no key behind.
    let refused = OpenCase {
        identity: Identity { name: "CANARY-REFUSED".into(), ..identity },
        year: 2025,
        category: CaseCategory::SpecialCircumstances,
        groups: vec![],
        sex: Sex::Male,
    };
    assert!(open_case(&node.log, "officer-1", refused).await.is_err());

    let listed = client.get(format!("{base}/api/v1/events?limit=1000")).send().await.unwrap().text().await.unwrap();
    for canary in CANARIES {
        assert!(!listed.contains(canary), "{canary:?} leaked into GET /api/v1/events: {listed}");
    }
    node.shutdown().await;

    // Scan the sled trees themselves.
    let db = sled::open(dir.path().join(treem_ward::log::LOG_DIR)).unwrap();
    let log = db.open_tree("log").unwrap();
    assert_eq!(log.len(), 2);
    for item in log.iter() {
        let (_, value) = item.unwrap();
        for canary in CANARIES.iter().chain(&["CANARY-REFUSED"]) {
            assert!(!contains(&value, canary.as_bytes()), "{canary:?} found in the log tree: {}", String::from_utf8_lossy(&value));
        }
    }
    let identities = db.open_tree("identity").unwrap();
    assert_eq!(identities.len(), 2, "one identity per recorded case, none for the refused one");
    for item in identities.iter() {
        let (_, value) = item.unwrap();
        assert_eq!(value[0], treem_ward::vault::SEALED_V1, "stored sealed");
        assert_eq!((value.len() - 1 - 12 - 16) % 64, 0, "padded, so the length says little about the name");
    }
    drop((log, identities, db));
    let vault = Vault::open(dir.path()).unwrap();
    let mut keys = vault.case_ids().unwrap();
    keys.sort();
    let mut cases = vec![http_case_id, lib_case_id];
    cases.sort();
    assert_eq!(keys, cases, "one key per recorded case, none for the refused one");

    // No file of the ward holds the identity in plaintext.
    let needles: Vec<(&str, Vec<u8>)> = CANARIES.iter().chain(&["CANARY-REFUSED"]).map(|c| (*c, c.as_bytes().to_vec())).collect();
    assert_no_file_holds(dir.path(), &needles);
}

#[tokio::test]
async fn withdrawing_consent_erases_the_identity_for_good_and_keeps_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    let base = format!("http://{}", node.http_addr);
    let client = reqwest::Client::new();

    let (gone, _) = open_case(&node.log, "officer-1", case(canary_identity("GONE"))).await.unwrap();
    let (kept, _) = open_case(&node.log, "officer-1", case(canary_identity("KEPT"))).await.unwrap();
    let key_path = Vault::open(dir.path()).unwrap().key_path(gone);
    let key_bytes = std::fs::read(&key_path).unwrap();
    assert_eq!(key_bytes.len(), KEY_LEN);
    let last_seq = node.log.last_seq();

    // Refusals change nothing.
    let withdraw = |id: String, body: Value| {
        let client = client.clone();
        let url = format!("{base}/api/v1/cases/{id}/withdraw-consent");
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = withdraw(gone.to_string(), json!({"reason": "mẹ em CANARY-NAME-Trần Thị Ẩn GONE yêu cầu"})).await;
    assert_eq!(status, 422, "a reason naming the child is refused: {body}");
    assert!(body["error"].as_str().unwrap().contains("repeats the child's name"), "{body}");
    let (status, body) = withdraw(gone.to_string(), json!({"reason": "  "})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = withdraw("not-a-case".into(), json!({"reason": "x"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = withdraw(Uuid::new_v4().to_string(), json!({"reason": "guardian's letter of 2025-06-01"})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = withdraw(gone.to_string(), json!({"reason": "x", "surprise": 1})).await;
    assert_eq!(status, 422, "unknown fields are refused: {body}");
    assert!(key_path.exists(), "nothing was erased by a refused request");
    assert!(withdrawals(&node.log).unwrap().is_empty());

    // The withdrawal.
    let (status, body) =
        withdraw(gone.to_string(), json!({"reason": "guardian's written request of 2025-06-01", "author": "officer-2"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["case_id"], gone.to_string());
    assert_eq!(body["author"], "officer-2");
    assert!(!key_path.exists(), "the key is destroyed");
    let (status, body) = withdraw(gone.to_string(), json!({"reason": "again"})).await;
    assert_eq!(status, 409, "{body}");

    // Reading it now says what happened, everywhere.
    let r = client.get(format!("{base}/api/v1/cases/{gone}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 410);
    let message = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("erased at the child's request on"), "{message}");
    assert!(matches!(identity_of(&node.log, gone), Err(IdentityError::Erased { .. })));
    assert_eq!(identity_of(&node.log, kept).unwrap(), Some(canary_identity("KEPT")), "other cases are untouched");

    // The case itself stays: no event was added or removed, and support can still be recorded.
    assert_eq!(node.log.last_seq(), last_seq, "a withdrawal records no event: the replicated log never carried the identity");
    let support = json!({"kind": "case.support_recorded", "body": {"case_id": gone, "year": 2025, "support": "legal"}});
    let r = client.post(format!("{base}/api/v1/events")).json(&support).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let opened = node.log.read_from(0, 100).unwrap();
    assert!(opened.iter().any(|e| e.event.kind() == "case.opened" && serde_json::to_string(&e.event).unwrap().contains(&gone.to_string())));
    let recorded = withdrawals(&node.log).unwrap();
    assert_eq!((recorded.len(), recorded[0].case_id, recorded[0].reason.as_str()), (1, gone, "guardian's written request of 2025-06-01"));
    node.shutdown().await;

    // No file the ward holds has the erased identity or its key; the kept
    // case is still readable after a restart.
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("the name", "CANARY-NAME-Trần Thị Ẩn GONE".as_bytes().to_vec()),
        ("the address", "CANARY-ADDR-Ấp 7 Thanh Lương GONE".as_bytes().to_vec()),
        ("the guardian", "CANARY-GUARDIAN-Lê Văn Giấu GONE".as_bytes().to_vec()),
        ("the date of birth", CANARIES[1].as_bytes().to_vec()),
        ("the key's bytes", key_bytes.clone()),
    ];
    assert_no_file_holds(dir.path(), &needles);
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    assert_eq!(identity_of(&node.log, kept).unwrap(), Some(canary_identity("KEPT")));
    assert!(matches!(identity_of(&node.log, gone), Err(IdentityError::Erased { .. })));
    node.shutdown().await;
}

#[tokio::test]
async fn the_cli_shows_and_forgets_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config_path = dir.path().join("ward.toml");
    std::fs::write(
        &config_path,
        format!(
            "ward = \"25320\"\nauthor = \"officer-cli\"\ndata_dir = {data:?}\nhttp_addr = \"127.0.0.1:0\"\nnats_url = {:?}\n",
            dead_nats_url()
        ),
    )
    .unwrap();
    let ward = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_treem-ward"))
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, out, err) = ward(&[
        "case",
        "open",
        "--name",
        "CANARY-CLI-Phạm Văn Bé",
        "--date-of-birth",
        "2014-04-04",
        "--address",
        "Tổ 3",
        "--guardian",
        "Phạm Văn Cha",
        "--year",
        "2025",
        "--category",
        "child_marriage",
        "--sex",
        "male",
    ]);
    assert!(ok, "{out}{err}");
    let case_id = out.split_whitespace().skip_while(|w| *w != "id").nth(1).unwrap().to_owned();
    let (ok, out, err) = ward(&["case", "show", "--case-id", &case_id]);
    assert!(ok && out.contains("CANARY-CLI-Phạm Văn Bé") && out.contains("2014-04-04"), "{out}{err}");
    let (ok, out, err) = ward(&["case", "forget", "--case-id", &case_id, "--reason", "request of the guardian, letter 12/2025"]);
    assert!(ok && out.contains("consent withdrawn"), "{out}{err}");
    let (ok, out, err) = ward(&["case", "show", "--case-id", &case_id]);
    assert!(!ok && err.contains("erased at the child's request on"), "{out}{err}");
    let (ok, _, err) = ward(&["case", "forget", "--case-id", &case_id, "--reason", "again"]);
    assert!(!ok && err.contains("already withdrawn"), "{err}");
    assert_no_file_holds(&data, &[("the name", "CANARY-CLI-Phạm Văn Bé".as_bytes().to_vec())]);
}

#[tokio::test]
async fn start_up_finishes_interrupted_withdrawals_and_seals_old_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    let (interrupted, _) = open_case(&node.log, "officer-1", case(canary_identity("A"))).await.unwrap();
    let (legacy, _) = open_case(&node.log, "officer-1", case(canary_identity("B"))).await.unwrap();
    node.shutdown().await;

    // Forge the states a crash or an older treem leaves: a durable tombstone
    // whose key was not destroyed yet; an identity in plaintext JSON with no
    // key; a key (and a half-written one) of a case never recorded.
    {
        let db = sled::open(dir.path().join(treem_ward::log::LOG_DIR)).unwrap();
        let identity = db.open_tree("identity").unwrap();
        identity.insert(interrupted.as_bytes(), &[treem_ward::identity::ERASED][..]).unwrap();
        identity.insert(legacy.as_bytes(), serde_json::to_vec(&canary_identity("B")).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let vault = Vault::open(dir.path()).unwrap();
    vault.destroy(legacy).unwrap();
    let orphan = Uuid::new_v4();
    drop(vault.create_key(orphan).unwrap());
    std::fs::write(dir.path().join(VAULT_DIR).join("x.key.tmp"), [9u8; KEY_LEN]).unwrap();
    assert!(vault.key_path(interrupted).exists());

    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    assert!(!vault.key_path(interrupted).exists(), "the interrupted withdrawal's key is destroyed before serving");
    assert!(!vault.key_path(orphan).exists(), "a key of a case never recorded is destroyed");
    assert!(!dir.path().join(VAULT_DIR).join("x.key.tmp").exists());
    assert_eq!(identity_of(&node.log, legacy).unwrap(), Some(canary_identity("B")), "old plaintext is sealed and still readable");
    assert!(vault.key_path(legacy).exists());
    let stored = node.log.read_from(0, 10).unwrap();
    assert_eq!(stored.len(), 2, "the events are untouched");
    assert!(matches!(withdraw_consent(&node.log, legacy, "officer-1", "").await, Err(IdentityError::BadReason(_))));
    node.shutdown().await;
    let db = sled::open(dir.path().join(treem_ward::log::LOG_DIR)).unwrap();
    let value = db.open_tree("identity").unwrap().get(legacy.as_bytes()).unwrap().unwrap();
    assert_eq!(value[0], treem_ward::vault::SEALED_V1, "the live value is sealed now");
}
