//! Fuzzing every input of the ward (proptest) against a running node: the
//! JSON bodies of `POST /api/v1/events`, `POST /api/v1/cases` and
//! `POST /api/v1/cases/{id}/withdraw-consent`, the query of
//! `GET /api/v1/events`, the case id of `GET /api/v1/cases/{id}`, and CSV
//! import files.
//!
//! The property, for each: the node answers with a 2xx or a 4xx carrying
//! `{"error": "…"}` — never a 5xx, never a hang, never a crash — and a
//! refused input changes nothing: the log's last seq, the case register's
//! keys and the case's identity are as before. What is accepted is
//! recorded exactly once. Inputs are arbitrary bytes, arbitrary JSON, and
//! valid requests with fields replaced by arbitrary JSON or removed.
//! A failing input is shrunk and recorded in `proptest-regressions/`.

use std::future::Future;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{CaseCategory, Sex};
use treem_ward::csv_import;
use treem_ward::identity::{Identity, OpenCase, identity_of, open_case};
use treem_ward::vault::Vault;

use crate::common::{config, dead_nats_url};

/// Arbitrary JSON, with the names and values the ward's bodies use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(vec![
            "indicator.observed",
            "case.opened",
            "event.retracted",
            "4a",
            "9",
            "2025",
            "abuse",
            "female",
            "2015-09-02",
            "2099-01-01",
            "01938510-ebf8-7e29-8ddd-f28dfab2d081",
        ])
        .prop_map(|s| Value::String(s.into())),
        "\\PC{0,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "kind",
            "body",
            "author",
            "indicator",
            "year",
            "numerator",
            "denominator",
            "source",
            "identity",
            "name",
            "date_of_birth",
            "address",
            "guardian",
            "category",
            "groups",
            "sex",
            "reason",
            "replaces",
            "case_id",
            "figures",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
    ]
}

/// A valid request with some fields (top level or one level down)
/// replaced by arbitrary JSON or removed.
fn mutated(valid: Value) -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), prop::option::of(json_value()), any::<bool>()), 1..4).prop_map(move |edits| {
        let mut v = valid.clone();
        for (k, new, nested) in edits {
            let target = if nested {
                v.as_object_mut().and_then(|o| o.values_mut().find(|x| x.is_object())).and_then(Value::as_object_mut)
            } else {
                v.as_object_mut()
            };
            if let Some(obj) = target {
                match new {
                    Some(new) => obj.insert(k, new),
                    None => obj.remove(&k),
                };
            }
        }
        v
    })
}

/// Arbitrary bytes, arbitrary JSON, or a mutated valid request — as bytes.
fn body(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        mutated(valid).prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    // `PROPTEST_CASES` runs longer (e.g. `PROPTEST_CASES=5000`).
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let config = Config { cases, source_file: Some(file!()), ..Config::default() };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// Blocks on `f` from inside the synchronous proptest closure.
fn block<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Posts `bytes` as a JSON body; returns the status and the parsed answer.
async fn post(client: &reqwest::Client, url: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = client.post(url).header("content-type", "application/json").body(bytes).send().await.expect("the node answers");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn refusal_is_clear(status: u16, answer: &Value, allowed: &[u16]) -> Result<(), TestCaseError> {
    prop_assert!(allowed.contains(&status), "status {} is not one of {:?}: {}", status, allowed, answer);
    if status >= 400 {
        let msg = answer["error"].as_str().unwrap_or_default();
        prop_assert!(!msg.is_empty(), "a refusal must say why: {}", answer);
    }
    Ok(())
}

fn a_case() -> OpenCase {
    OpenCase {
        identity: Identity {
            name: "Fuzz Thị Thử".into(),
            date_of_birth: "2015-09-02".into(),
            address: "Tổ 1".into(),
            guardian: "Fuzz Văn Cha".into(),
        },
        year: 2025,
        category: CaseCategory::Abuse,
        groups: vec![],
        sex: Sex::Female,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_input_gets_an_answer_and_a_refusal_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    let base = format!("http://{}", node.http_addr);
    let client = reqwest::Client::new();
    let log = node.log.clone();
    let vault = Vault::open(dir.path()).unwrap();

    // POST /api/v1/events
    let valid_event = json!({"author": "officer-1", "kind": "indicator.observed",
        "body": {"indicator": "4a", "year": 2025, "numerator": 7, "denominator": 100, "source": "health_centre"}});
    run(160, body(valid_event), |bytes| {
        let before = log.last_seq();
        let (status, answer) = block(post(&client, &format!("{base}/api/v1/events"), bytes));
        refusal_is_clear(status, &answer, &[201, 400, 422])?;
        prop_assert_eq!(log.last_seq(), if status == 201 { before + 1 } else { before }, "{}", answer);
        Ok(())
    });

    // POST /api/v1/cases
    let valid_case = json!({"identity": {"name": "A", "date_of_birth": "2015-09-02", "address": "x", "guardian": "y"},
        "year": 2025, "category": "injury", "sex": "male"});
    run(160, body(valid_case), |bytes| {
        let (before, keys) = (log.last_seq(), vault.case_ids().unwrap().len());
        let (status, answer) = block(post(&client, &format!("{base}/api/v1/cases"), bytes));
        refusal_is_clear(status, &answer, &[201, 400, 422])?;
        let added = u64::from(status == 201);
        prop_assert_eq!(log.last_seq(), before + added, "{}", answer);
        prop_assert_eq!(vault.case_ids().unwrap().len(), keys + added as usize, "a key exists only for a recorded case: {}", answer);
        Ok(())
    });

    // POST /api/v1/cases/{id}/withdraw-consent, on a fresh case each time.
    let valid_withdrawal = json!({"reason": "guardian's letter 12/2025", "author": "officer-2"});
    let path = prop_oneof![
        4 => Just(None),
        1 => "\\PC{0,40}".prop_map(Some),
    ];
    run(100, (body(valid_withdrawal), path), |(bytes, path)| {
        let (case_id, _) = block(open_case(&log, "officer-1", a_case())).unwrap();
        let before = log.last_seq();
        let segment = path.clone().map(|p| p.replace(['/', '?', '#', '%'], "_")).unwrap_or_else(|| case_id.to_string());
        let (status, answer) = block(post(&client, &format!("{base}/api/v1/cases/{segment}/withdraw-consent"), bytes));
        refusal_is_clear(status, &answer, &[200, 400, 404, 405, 422])?;
        prop_assert_eq!(log.last_seq(), before, "a withdrawal never records an event");
        let erased = status == 200;
        prop_assert!(!erased || path.is_none(), "only the case named can be erased");
        prop_assert_eq!(vault.key_path(case_id).exists(), !erased, "{}", answer);
        prop_assert_eq!(identity_of(&log, case_id).is_ok(), !erased);
        Ok(())
    });

    // GET /api/v1/events?<query> and GET /api/v1/cases/{id}
    run(160, ("\\PC{0,60}", "\\PC{0,40}"), |(query, segment)| {
        let query: String = query.chars().filter(|c| !c.is_whitespace() && *c != '#').collect();
        let segment = segment.replace(['/', '?', '#', '%'], "_");
        for url in [format!("{base}/api/v1/events?{query}"), format!("{base}/api/v1/cases/{segment}")] {
            let answer = block(async { client.get(&url).send().await });
            let Ok(r) = answer else { continue }; // a URL reqwest itself refuses to send
            let status = r.status().as_u16();
            let text = block(r.text()).unwrap();
            prop_assert!(status < 500, "GET {} → {}: {}", url, status, text);
        }
        Ok(())
    });

    node.shutdown().await;
}

/// A valid import file to mutate.
const VALID_CSV: &str =
    "indicator,year,numerator,denominator,source\n4a,2024,7,100,health_centre\n16,2025,90,100,school\n3a,2023,2,1000,health_centre\n";

#[derive(Debug, Clone)]
enum Edit {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, char),
    Delete(prop::sample::Index),
}

fn csv_input() -> impl Strategy<Value = Vec<u8>> {
    let edit = prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<prop::sample::Index>(), prop::sample::select(vec![',', '\n', '"', '\r', '-', '9', '0', ' ', '\u{feff}', 'đ']))
            .prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        "(indicator,year,numerator,denominator,source\n)?([0-9a-z,\" \n-]{0,40}\n){0,6}".prop_map(String::into_bytes),
        prop::collection::vec(edit, 1..6).prop_map(|edits| {
            let mut bytes = VALID_CSV.as_bytes().to_vec();
            for e in edits {
                match e {
                    Edit::Flip(i, b) => {
                        let at = i.index(bytes.len());
                        bytes[at] ^= b;
                    }
                    Edit::Insert(i, c) => {
                        let at = i.index(bytes.len() + 1);
                        let mut buf = [0u8; 4];
                        bytes.splice(at..at, c.encode_utf8(&mut buf).bytes());
                    }
                    Edit::Delete(i) => {
                        if !bytes.is_empty() {
                            bytes.remove(i.index(bytes.len()));
                        }
                    }
                }
            }
            bytes
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_csv_file_is_imported_whole_or_refused_with_the_rows_named() {
    let dir = tempfile::tempdir().unwrap();
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    let log = node.log.clone();
    let catalogue = Catalogue::shipped();
    let file = dir.path().join("import.csv");
    run(200, csv_input(), |bytes| {
        std::fs::write(&file, &bytes).unwrap();
        let before = log.last_seq();
        match block(csv_import::import_file(&log, "officer-1", &file)) {
            Ok(rows) => {
                let parsed = csv_import::parse_observations(&bytes[..], &catalogue).expect("what imports also parses");
                prop_assert_eq!(rows, parsed.len());
                prop_assert_eq!(log.last_seq(), before + rows as u64, "every row recorded once");
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                if let csv_import::CsvError::Rows(rows) = &e {
                    prop_assert!(rows.iter().all(|r| r.row >= 2), "rows are numbered as a spreadsheet shows them: {}", e);
                }
                prop_assert_eq!(log.last_seq(), before, "a refused file records nothing: {}", e);
            }
        }
        Ok(())
    });
    node.shutdown().await;
}
