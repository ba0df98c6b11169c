//! A child's identity stays in the ward: planted canary values never appear
//! in any value of the `log` tree, nor in what the HTTP API lists, while the
//! `identity` tree does hold them.

use serde_json::json;
use treem_proto::event::{CaseCategory, Sex};
use treem_ward::identity::{Identity, OpenCase, identity_of, open_case};

use crate::common::{config, dead_nats_url};

const CANARIES: [&str; 4] = ["CANARY-NAME-Trần Thị Ẩn", "2016-02-29", "CANARY-ADDR-Ấp 7 Thanh Lương", "CANARY-GUARDIAN-Lê Văn Giấu"];

#[tokio::test]
async fn identity_never_enters_the_log() {
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

    // A refused case leaves no identity behind.
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
            assert!(
                !value.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{canary:?} found in the log tree: {}",
                String::from_utf8_lossy(&value)
            );
        }
    }
    let identities = db.open_tree("identity").unwrap();
    assert_eq!(identities.len(), 2, "one identity per recorded case, none for the refused one");
    let stored: Vec<u8> = identities.iter().flat_map(|i| i.unwrap().1.to_vec()).collect();
    let stored = String::from_utf8(stored).unwrap();
    assert!(CANARIES.iter().all(|c| stored.contains(c)), "the identity tree holds the identity");
    assert!(!stored.contains("CANARY-REFUSED"));
}
