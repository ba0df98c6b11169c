//! Fuzzing the event decoder (proptest): whatever bytes arrive on a ward's
//! subject, [`Envelope::decode`] answers `Ok` or `Err` — it never panics,
//! never loops, never overflows the stack — and what it accepts is a
//! faithful envelope: encoding it and decoding again gives it back, and
//! validating it against the catalogue answers too. The decoder's shortcut
//! for the current schema gives exactly what its general path gives.
//!
//! Inputs: arbitrary bytes; arbitrary JSON documents; and mutations of a
//! seed corpus of valid envelopes (`tests/corpus/envelope/`, the schema
//! examples, the schema 1 and 2 fixtures): byte flips, insertions,
//! deletions, truncations, spliced JSON fragments, and fields (top level or
//! in the body) replaced by arbitrary JSON or removed. A failing input is
//! shrunk and recorded in `proptest-regressions/`, which is committed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use treem_proto::Envelope;
use treem_proto::catalogue::Catalogue;

fn seeds_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The seed corpus, read once.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut all = Vec::new();
        for dir in ["tests/corpus/envelope", "schema/examples", "tests/fixtures/v1", "tests/fixtures/v2"] {
            all.extend(seeds_in(&root.join(dir)));
        }
        assert!(all.len() >= 20, "the seed corpus is missing ({} files)", all.len());
        assert!(all.iter().filter(|s| Envelope::decode(s).is_ok()).count() >= 16, "most seeds must be valid envelopes");
        all
    })
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::shipped)
}

/// The property every input must satisfy.
fn decode_is_total_and_faithful(bytes: &[u8]) -> Result<(), TestCaseError> {
    // The shortcut for the current schema decides exactly as the general path.
    let (fast, general) = (Envelope::decode(bytes), Envelope::decode_general(bytes));
    match (&fast, &general) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
        _ => prop_assert!(false, "the shortcut decided {:?}, the general path {:?}", fast, general),
    }
    if let Ok(env) = Envelope::decode(bytes) {
        let again = Envelope::decode(&env.encode());
        prop_assert!(again.as_ref().is_ok_and(|a| *a == env), "re-decoding changed the envelope: {:?} vs {:?}", again, env);
        let _ = env.event.validate(catalogue());
        let _ = env.event.kind();
    }
    Ok(())
}

/// Arbitrary JSON, a few levels deep, with the strings and numbers events use.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            Just("case.opened".to_string()),
            Just("indicator.observed".to_string()),
            Just("event.corrected".to_string()),
            Just("2025-01-01T00:00:00Z".to_string()),
            Just("01938510-ebf8-7e29-8ddd-f28dfab2d081".to_string()),
            Just("25320".to_string()),
            "\\PC{0,24}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of the envelope and of event bodies, and some others.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "schema",
            "province",
            "town",
            "ward",
            "seq",
            "recorded_at",
            "author",
            "kind",
            "body",
            "prev",
            "sig",
            "key_id",
            "signature",
            "case_id",
            "year",
            "category",
            "groups",
            "sex",
            "age_band",
            "age_years",
            "indicator",
            "numerator",
            "denominator",
            "source",
            "figures",
            "replaces",
            "corrected",
            "reason",
            "recognition",
            "granted",
            "support",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,10}",
    ]
}

#[derive(Debug, Clone)]
enum ByteMutation {
    Flip { at: usize, bits: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Splice { at: usize, fragment: Vec<u8> },
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| ByteMutation::Flip { at, bits }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| ByteMutation::Insert { at, byte }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| ByteMutation::Delete { at, len }),
        any::<usize>().prop_map(|at| ByteMutation::Truncate { at }),
        (any::<usize>(), json()).prop_map(|(at, v)| ByteMutation::Splice { at, fragment: serde_json::to_vec(&v).unwrap() }),
    ]
}

fn apply(mut bytes: Vec<u8>, m: &ByteMutation) -> Vec<u8> {
    let n = bytes.len().max(1);
    match m {
        ByteMutation::Flip { at, bits } => {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= bits;
            }
        }
        ByteMutation::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), *byte),
        ByteMutation::Delete { at, len } => {
            let start = at % n;
            let end = (start + len).min(bytes.len());
            if start < end {
                bytes.drain(start..end);
            }
        }
        ByteMutation::Truncate { at } => bytes.truncate(at % n),
        ByteMutation::Splice { at, fragment } => {
            let i = at % (bytes.len() + 1);
            bytes.splice(i..i, fragment.iter().copied());
        }
    }
    bytes
}

#[derive(Debug, Clone)]
enum FieldMutation {
    /// Replace (or add) a top-level field.
    Top(String, Value),
    /// Replace (or add) a field of the body.
    Body(String, Value),
    /// Remove a top-level field.
    RemoveTop(String),
    /// Remove a field of the body.
    RemoveBody(String),
}

fn field_mutation() -> impl Strategy<Value = FieldMutation> {
    prop_oneof![
        (field_name(), json()).prop_map(|(k, v)| FieldMutation::Top(k, v)),
        (field_name(), json()).prop_map(|(k, v)| FieldMutation::Body(k, v)),
        field_name().prop_map(FieldMutation::RemoveTop),
        field_name().prop_map(FieldMutation::RemoveBody),
    ]
}

fn mutate_fields(seed: &[u8], mutations: &[FieldMutation]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(seed) else { return seed.to_vec() };
    for m in mutations {
        let Some(top) = value.as_object_mut() else { break };
        match m {
            FieldMutation::Top(k, v) => {
                top.insert(k.clone(), v.clone());
            }
            FieldMutation::RemoveTop(k) => {
                top.remove(k);
            }
            FieldMutation::Body(k, v) => {
                if let Some(body) = top.get_mut("body").and_then(Value::as_object_mut) {
                    body.insert(k.clone(), v.clone());
                }
            }
            FieldMutation::RemoveBody(k) => {
                if let Some(body) = top.get_mut("body").and_then(Value::as_object_mut) {
                    body.remove(k);
                }
            }
        }
    }
    serde_json::to_vec(&value).unwrap()
}

/// Cases per property: `default`, or `PROPTEST_CASES` for a longer run
/// (e.g. `PROPTEST_CASES=20000`).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..10_000)) {
        decode_is_total_and_faithful(&bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in json()) {
        decode_is_total_and_faithful(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn mutated_valid_events_decode_or_are_refused(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(byte_mutation(), 1..6),
    ) {
        let corpus = corpus();
        let mut bytes = corpus[seed.index(corpus.len())].clone();
        for m in &mutations {
            bytes = apply(bytes, m);
        }
        decode_is_total_and_faithful(&bytes)?;
    }

    #[test]
    fn valid_events_with_fields_replaced_decode_or_are_refused(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(field_mutation(), 1..5),
    ) {
        let corpus = corpus();
        let bytes = mutate_fields(&corpus[seed.index(corpus.len())], &mutations);
        decode_is_total_and_faithful(&bytes)?;
    }
}

#[test]
fn the_corpus_itself_decodes_as_labelled() {
    // Valid seeds decode and round-trip; the ones named invalid are refused.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/envelope");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let decoded = Envelope::decode(&bytes);
        let invalid = path.file_name().unwrap().to_string_lossy().starts_with("invalid_");
        assert_eq!(decoded.is_err(), invalid, "{}: {decoded:?}", path.display());
        decode_is_total_and_faithful(&bytes).unwrap();
    }
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    // Within the 8 KiB limit, far beyond serde_json's depth limit of 128.
    let deep = format!("{}{}", "[".repeat(4_000), "]".repeat(4_000));
    assert!(Envelope::decode(deep.as_bytes()).is_err());
    let deep_body = format!(
        r#"{{"id":"01938510-ebf8-7e29-8ddd-f28dfab2d081","schema":3,"kind":"event.corrected","body":{}{}}}"#,
        "{\"corrected\":".repeat(500),
        "}".repeat(500)
    );
    assert!(Envelope::decode(deep_body.as_bytes()).is_err());
}
