//! The documented contract in `proto/schema/` against the code:
//!
//! - every kind of [`Event::KINDS`] is in `events.schema.json`, with a body
//!   definition, and the schema's enums are the code's names;
//! - every example in `schema/examples/` decodes with [`Envelope::decode`],
//!   passes [`Event::validate`], and conforms to the schema;
//! - what the code encodes conforms to the schema, and a few bad events are
//!   refused by both.
//!
//! Conformance is checked by [`Validator`], a small evaluator of exactly the
//! JSON Schema keywords the file uses. It panics on any other keyword, so the
//! schema cannot grow a rule this test silently skips.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{CaseCategory, PopulationGroup, SCHEMA_VERSION};
use treem_proto::{Envelope, Event};

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    serde_json::from_slice(&common::read("schema/events.schema.json")).expect("events.schema.json is JSON")
}

/// A JSON Schema (2020-12) evaluator for the keywords `events.schema.json` uses.
struct Validator<'s> {
    root: &'s Value,
}

impl Validator<'_> {
    fn errors(&self, instance: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(self.root, instance, "", &mut out);
        out
    }

    fn resolve(&self, reference: &str) -> &Value {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("only local $ref are used, not {reference}"));
        // JSON pointer: `~1` is `/`, `~0` is `~`; our $defs keys contain dots only.
        self.root.pointer(pointer).unwrap_or_else(|| panic!("$ref {reference} points nowhere"))
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else {
            match schema {
                Value::Bool(true) => return,
                Value::Bool(false) => return out.push(format!("{at}: not allowed")),
                _ => panic!("schema at {at} is not an object or boolean"),
            }
        };
        for (keyword, arg) in schema {
            match keyword.as_str() {
                "$schema" | "$id" | "title" | "description" | "$comment" | "$defs" => {}
                "$ref" => self.check(self.resolve(arg.as_str().unwrap()), v, at, out),
                "type" => {
                    let ok = match arg.as_str().unwrap() {
                        "object" => v.is_object(),
                        "array" => v.is_array(),
                        "string" => v.is_string(),
                        "boolean" => v.is_boolean(),
                        "integer" => v.is_u64() || v.is_i64(),
                        "number" => v.is_number(),
                        other => panic!("type {other} is not used"),
                    };
                    if !ok {
                        out.push(format!("{at}: {v} is not of type {arg}"));
                    }
                }
                "const" if v != arg => out.push(format!("{at}: {v} is not {arg}")),
                "enum" if !arg.as_array().unwrap().contains(v) => out.push(format!("{at}: {v} is not one of {arg}")),
                "const" | "enum" => {}
                "minimum" | "maximum" | "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" => {
                    let bound = arg.as_f64().unwrap();
                    let measured = match keyword.as_str() {
                        "minimum" | "maximum" => v.as_f64(),
                        "minLength" | "maxLength" => v.as_str().map(|s| s.chars().count() as f64),
                        "minItems" | "maxItems" => v.as_array().map(|a| a.len() as f64),
                        _ => v.as_object().map(|o| o.len() as f64),
                    };
                    if let Some(m) = measured {
                        let ok = if keyword.starts_with("min") { m >= bound } else { m <= bound };
                        if !ok {
                            out.push(format!("{at}: {v} fails {keyword} {bound}"));
                        }
                    }
                }
                "format" => {
                    if let Some(s) = v.as_str() {
                        let ok = match arg.as_str().unwrap() {
                            "uuid" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
                            "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                            other => panic!("format {other} is not used"),
                        };
                        if !ok {
                            out.push(format!("{at}: {s:?} is not a {arg}"));
                        }
                    }
                }
                "required" => {
                    if let Some(o) = v.as_object() {
                        for name in arg.as_array().unwrap() {
                            if !o.contains_key(name.as_str().unwrap()) {
                                out.push(format!("{at}: missing required {name}"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(o) = v.as_object() {
                        for (name, sub) in arg.as_object().unwrap() {
                            if let Some(child) = o.get(name) {
                                self.check(sub, child, &format!("{at}/{name}"), out);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(o) = v.as_object() {
                        let declared = schema.get("properties").and_then(Value::as_object);
                        for (name, child) in o {
                            if !declared.is_some_and(|d| d.contains_key(name)) {
                                if arg == &Value::Bool(false) {
                                    out.push(format!("{at}: unexpected property {name:?}"));
                                } else {
                                    self.check(arg, child, &format!("{at}/{name}"), out);
                                }
                            }
                        }
                    }
                }
                "propertyNames" => {
                    if let Some(o) = v.as_object() {
                        for name in o.keys() {
                            self.check(arg, &Value::String(name.clone()), &format!("{at}/{name} (name)"), out);
                        }
                    }
                }
                "items" => {
                    if let Some(a) = v.as_array() {
                        for (k, item) in a.iter().enumerate() {
                            self.check(arg, item, &format!("{at}/{k}"), out);
                        }
                    }
                }
                "allOf" => {
                    for sub in arg.as_array().unwrap() {
                        self.check(sub, v, at, out);
                    }
                }
                "if" => {
                    let mut trial = Vec::new();
                    self.check(arg, v, at, &mut trial);
                    let branch = if trial.is_empty() { schema.get("then") } else { schema.get("else") };
                    if let Some(b) = branch {
                        self.check(b, v, at, out);
                    }
                }
                "then" | "else" => assert!(schema.contains_key("if"), "{keyword} without if at {at}"),
                other => panic!("keyword {other:?} (at {at}) is not checked by this test's validator; teach it or drop it"),
            }
        }
    }
}

fn conforms(schema: &Value, v: &Value) -> Vec<String> {
    Validator { root: schema }.errors(v)
}

fn examples() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = proto_dir().join("schema/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn file_stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_kind_is_in_the_schema() {
    let s = schema();
    let kinds: Vec<&str> = s["properties"]["kind"]["enum"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(kinds, Event::KINDS, "the envelope's kind enum lists every kind, in KINDS order");
    let tied: Vec<&str> = s["$defs"]["kind_and_body"]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["if"]["properties"]["kind"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(tied, Event::KINDS, "every kind's body is tied to its kind");
    for kind in Event::KINDS {
        let def = &s["$defs"][kind];
        assert_eq!(def["type"], "object", "$defs has a body definition for {kind}");
        assert_eq!(def["additionalProperties"], false, "{kind}: readers refuse unknown body fields");
    }
    assert_eq!(s["properties"]["schema"]["const"], SCHEMA_VERSION, "the schema documents the version the code writes");
    let corrected: Vec<&str> =
        s["$defs"]["corrected_event"]["properties"]["kind"]["enum"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(corrected, Event::KINDS[..6], "a correction carries any kind but a correction or retraction");
}

#[test]
fn schema_enums_are_the_names_of_the_code() {
    let s = schema();
    let names = |v: &Value| -> Vec<String> { v["enum"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect() };
    assert_eq!(names(&s["$defs"]["population_group"]), PopulationGroup::ALL.map(|g| g.name().to_owned()));
    assert_eq!(names(&s["$defs"]["case_category"]), CaseCategory::ALL.map(|c| c.name().to_owned()));
    let year = &s["$defs"]["year"];
    assert_eq!((year["minimum"].as_u64(), year["maximum"].as_u64()), (Some(2021), Some(2030)));
}

#[test]
fn every_example_decodes_validates_and_conforms() {
    let s = schema();
    let catalogue = Catalogue::shipped();
    let mut kinds = BTreeSet::new();
    let mut seqs = Vec::new();
    for (path, bytes) in examples() {
        let name = path.display().to_string();
        let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
        env.event.validate(&catalogue).unwrap_or_else(|e| panic!("{name} is not valid: {e}"));
        assert_eq!(env.event.kind(), file_stem(&path), "{name} is named after its kind");
        assert_eq!(env.schema, SCHEMA_VERSION);
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let errors = conforms(&s, &raw);
        assert!(errors.is_empty(), "{name} does not conform to the schema: {errors:#?}");
        // The example is exactly what the code writes.
        assert_eq!(serde_json::from_slice::<Value>(&env.encode()).unwrap(), raw, "{name} is in the code's own form");
        kinds.insert(env.event.kind());
        seqs.push(env.seq);
    }
    assert_eq!(kinds, BTreeSet::from(Event::KINDS), "one example per kind");
    seqs.sort();
    assert_eq!(seqs, (1..=Event::KINDS.len() as u64).collect::<Vec<_>>(), "the examples are one ward's contiguous log");
}

#[test]
fn what_the_code_encodes_conforms() {
    let s = schema();
    for (k, event) in common::one_of_each_kind().into_iter().enumerate() {
        let env = common::envelope(k as u64 + 1, event);
        let v: Value = serde_json::from_slice(&env.encode()).unwrap();
        let errors = conforms(&s, &v);
        assert!(errors.is_empty(), "{}: {errors:#?}", env.event.kind());
    }
    for category in CaseCategory::ALL {
        let groups: &[char] = if category == CaseCategory::SpecialCircumstances { &['b'] } else { &[] };
        let v = serde_json::to_value(common::envelope(1, common::case_opened(category, groups))).unwrap();
        assert_eq!(conforms(&s, &v), Vec::<String>::new(), "{category:?}");
    }
    let count = serde_json::to_value(common::envelope(1, common::observed("1", 2024, 2, None))).unwrap();
    assert!(conforms(&s, &count).is_empty(), "a count leaves the denominator out");
}

/// Mutations of the indicator.observed and case.opened examples that the
/// schema refuses, and the code too (when decoding or validating).
#[test]
fn bad_events_are_refused_by_schema_and_code_alike() {
    let s = schema();
    let catalogue = Catalogue::shipped();
    let load = |kind: &str| -> Value { serde_json::from_slice(&common::read(&format!("schema/examples/{kind}.json"))).unwrap() };
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        ("indicator.observed", Box::new(|v| v["body"]["colour"] = json!("red")), "unexpected property \"colour\""),
        ("indicator.observed", Box::new(|v| v["body"]["year"] = json!(2031)), "fails maximum 2030"),
        ("indicator.observed", Box::new(|v| v["body"]["year"] = json!("2024")), "is not of type \"integer\""),
        ("indicator.observed", Box::new(|v| v["body"]["source"] = json!("")), "fails minLength"),
        ("indicator.observed", Box::new(|v| v["body"]["numerator"] = json!(-3)), "fails minimum 0"),
        ("indicator.observed", Box::new(|v| v["kind"] = json!("indicator.guessed")), "is not one of"),
        ("indicator.observed", Box::new(|v| v["kind"] = json!("ward.recognised")), "missing required \"recognition\""),
        ("indicator.observed", Box::new(|v| drop(v.as_object_mut().unwrap().remove("seq"))), "missing required \"seq\""),
        ("indicator.observed", Box::new(|v| v["id"] = json!("not-a-uuid")), "is not a \"uuid\""),
        ("indicator.observed", Box::new(|v| v["recorded_at"] = json!("2024-12-02 01:30")), "is not a \"date-time\""),
        ("case.opened", Box::new(|v| v["body"]["groups"] = json!(["p"])), "is not one of"),
        ("case.opened", Box::new(|v| drop(v["body"].as_object_mut().unwrap().remove("groups"))), "missing required \"groups\""),
        ("case.opened", Box::new(|v| v["body"]["category"] = json!("abuse")), "fails maxItems 0"),
        ("case.opened", Box::new(|v| v["body"]["age_band"] = json!("6-10")), "is not one of"),
        ("case.opened", Box::new(|v| v["body"]["name"] = json!("Nguyễn Thị A")), "unexpected property \"name\""),
        ("population.reported", Box::new(|v| v["body"]["figures"] = json!({})), "fails minProperties 1"),
        ("population.reported", Box::new(|v| v["body"]["figures"] = json!({"children_under16": 1})), "(name)"),
        (
            "event.corrected",
            Box::new(|v| v["body"]["corrected"] = json!({"kind": "event.retracted", "body": {"replaces": common::EARLIER, "reason": "x"}})),
            "is not one of",
        ),
        ("event.corrected", Box::new(|v| v["body"]["corrected"]["body"]["period"] = json!("2024")), "unexpected property \"period\""),
    ];
    for (kind, mutate, expected) in cases {
        let mut v = load(kind);
        mutate(&mut v);
        let errors = conforms(&s, &v);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{kind} mutated to {v}: schema errors {errors:#?} should contain {expected:?}"
        );
        let code = Envelope::decode(&serde_json::to_vec(&v).unwrap())
            .map_err(|e| e.to_string())
            .and_then(|env| env.event.validate(&catalogue).map_err(|e| e.to_string()));
        assert!(code.is_err(), "{kind} mutated to {v} is refused by the schema but accepted by the code");
    }
}

#[test]
fn the_readme_names_every_kind_and_the_schema_file() {
    let readme = String::from_utf8(common::read("schema/README.md")).unwrap();
    for kind in Event::KINDS {
        assert!(readme.contains(&format!("`{kind}`")), "README.md does not document {kind}");
    }
    let start = readme.find("catalogue `method` is\n`observed`:").expect("README lists the observable indicators");
    let end = start + readme[start..].find("All are rates").unwrap();
    let listed = &readme[start..end];
    for i in &Catalogue::shipped().indicators {
        let observed = i.method == treem_proto::catalogue::Method::Observed;
        assert_eq!(listed.contains(&format!("`{}`", i.code)), observed, "README's list of observable indicators and {}", i.code);
    }
    for needle in ["events.schema.json", "Nats-Msg-Id", "treem.v1.events.", "TREEM_EVENTS_", "schema\": 1", "FutureSchema"] {
        assert!(readme.contains(needle), "README.md does not mention {needle}");
    }
}
