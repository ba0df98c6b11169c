//! Schema evolution (invariant 8): events written by schema 1 — kept as
//! fixtures in `tests/fixtures/v1/` exactly as a v1 ward wrote them — still
//! decode into today's types; a schema from the future, or none, is refused.

mod common;

use common::{at, read, uuid};
use serde_json::{Value, json};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{AgeBand, CaseCategory, DecodeError, PopulationGroup, SCHEMA_VERSION, Sex};
use treem_proto::{Envelope, Event};

fn fixture(name: &str) -> Envelope {
    let bytes = read(&format!("tests/fixtures/v1/{name}.json"));
    let raw: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(raw["schema"], 1, "{name} is a schema-1 fixture");
    let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("v1 fixture {name} no longer decodes: {e}"));
    env.event.validate(&Catalogue::shipped()).unwrap_or_else(|e| panic!("v1 fixture {name} is no longer valid: {e}"));
    // Once read, it is a current event: it re-encodes as the current schema
    // and decodes to the same value.
    assert_eq!(env.schema, SCHEMA_VERSION);
    assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
    env
}

#[test]
fn v1_indicator_observed_period_string_becomes_year() {
    let env = fixture("indicator_observed");
    assert_eq!(env.id, uuid("018c2a10-4b00-7a01-8e5f-1a2b3c4d5e01"));
    assert_eq!((env.province.as_str(), env.town.as_str(), env.ward.as_str(), env.seq), ("70", "690", "25324", 1));
    assert_eq!(env.recorded_at, at("2023-11-20T03:15:00Z"));
    assert_eq!(env.author, "officer-an-loc");
    let Event::IndicatorObserved(o) = env.event else { panic!("kind changed: {:?}", env.event) };
    assert_eq!(o.indicator, "4a");
    assert_eq!(o.year, 2023);
    assert_eq!((o.numerator, o.denominator), (23, Some(412)));
    assert_eq!(o.source, "health_centre");
    let out: Value =
        serde_json::from_slice(&Envelope::decode(&read("tests/fixtures/v1/indicator_observed.json")).unwrap().encode()).unwrap();
    assert_eq!(out["body"]["year"], 2023);
    assert!(out["body"].get("period").is_none(), "the v1 field does not survive");
}

#[test]
fn v1_case_opened_age_in_years_becomes_an_age_band() {
    let env = fixture("case_opened");
    assert_eq!(env.seq, 2);
    assert_eq!(env.recorded_at, at("2023-11-21T08:40:12.250Z"));
    let Event::CaseOpened(c) = env.event else { panic!("kind changed") };
    assert_eq!(c.case_id, uuid("018c2a10-4b00-7a01-8e5f-1a2b3c4d5eaa"));
    assert_eq!(c.year, 2023);
    assert_eq!(c.category, CaseCategory::SpecialCircumstances);
    assert_eq!(c.groups, ['a', 'e']);
    assert_eq!(c.sex, Sex::Male);
    assert_eq!(c.age_band, AgeBand::From5To10, "7 years old falls in 5-10");
}

#[test]
fn v1_correction_upcasts_the_event_it_carries() {
    let env = fixture("event_corrected");
    let Event::EventCorrected(c) = env.event else { panic!("kind changed") };
    assert_eq!(c.replaces, uuid("018c2a10-4b00-7a01-8e5f-1a2b3c4d5e01"));
    assert_eq!(c.reason, "hai trẻ cân lại tại trạm y tế");
    let Event::IndicatorObserved(o) = *c.corrected else { panic!("corrected kind changed") };
    assert_eq!((o.indicator.as_str(), o.year, o.numerator, o.denominator), ("4a", 2023, 25, Some(412)));
}

#[test]
fn v1_kinds_that_did_not_change_decode_as_they_are() {
    let env = fixture("population_reported");
    let Event::PopulationReported(p) = env.event else { panic!("kind changed") };
    assert_eq!(p.year, 2023);
    assert_eq!(p.figures.get(&PopulationGroup::ChildrenUnder16), Some(&3104));
    assert_eq!(p.figures.get(&PopulationGroup::ChildrenUnder5), Some(&930));
    assert_eq!(p.figures.get(&PopulationGroup::LiveBirths), Some(&171));
    assert_eq!(p.figures.len(), 3);
}

#[test]
fn every_v1_age_maps_to_its_band() {
    let raw: Value = serde_json::from_slice(&read("tests/fixtures/v1/case_opened.json")).unwrap();
    for (age, band) in [(0, "0-4"), (4, "0-4"), (5, "5-10"), (10, "5-10"), (11, "11-15"), (15, "11-15"), (16, "16-17"), (17, "16-17")] {
        let mut v = raw.clone();
        v["body"]["age_years"] = json!(age);
        let env = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
        let Event::CaseOpened(c) = env.event else { unreachable!() };
        assert_eq!(c.age_band.name(), band, "age {age}");
    }
    let mut v = raw.clone();
    v["body"]["age_years"] = json!(18);
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, DecodeError::Shape { version: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("age_years is not 0–17"), "{err}");
}

#[test]
fn v1_period_that_is_not_a_year_is_refused() {
    let raw: Value = serde_json::from_slice(&read("tests/fixtures/v1/indicator_observed.json")).unwrap();
    let mut v = raw.clone();
    v["body"]["period"] = json!(2024);
    let env = Envelope::decode(&serde_json::to_vec(&v).unwrap()).expect("a numeric v1 period is read too");
    let Event::IndicatorObserved(o) = env.event else { unreachable!() };
    assert_eq!(o.year, 2024);
    let mut v = raw;
    v["body"]["period"] = json!("Q3-2023");
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, DecodeError::Shape { version: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("period is not a year"));
}

#[test]
fn a_schema_from_the_future_is_refused() {
    let mut v: Value = serde_json::from_slice(&read("tests/fixtures/v1/indicator_observed.json")).unwrap();
    v["schema"] = json!(SCHEMA_VERSION + 1);
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, DecodeError::FutureSchema { found: 4 }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("schema version 4 is newer") && text.contains("up to 3") && text.contains("upgrade treem"), "{text}");
}

#[test]
fn an_event_without_a_schema_is_refused() {
    let mut v: Value = serde_json::from_slice(&read("tests/fixtures/v1/indicator_observed.json")).unwrap();
    v.as_object_mut().unwrap().remove("schema");
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, DecodeError::MissingSchema), "{err:?}");
    assert!(err.to_string().contains("no numeric \"schema\" field"));
    // A schema that is not a number is as good as none.
    v["schema"] = json!("2");
    assert!(matches!(Envelope::decode(&serde_json::to_vec(&v).unwrap()), Err(DecodeError::MissingSchema)));
    v["schema"] = json!(0);
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, DecodeError::Shape { version: 0, .. }), "{err:?}");
}

/// Schema 2 (before provenance), kept in `tests/fixtures/v2/` exactly as a
/// v2 ward wrote them: they read as unsigned events of today's schema, and
/// their hash — which the ward's first signed event names as `prev` — is
/// that of the v2 JSON as written, not of the upcast copy.
#[test]
fn v2_events_read_as_unsigned_and_hash_as_written() {
    use treem_proto::provenance::Seal;
    let names = [
        "population_reported",
        "indicator_observed",
        "ward_recognised",
        "case_opened",
        "case_support_recorded",
        "case_closed",
        "event_corrected",
        "event_retracted",
    ];
    for name in names {
        let bytes = read(&format!("tests/fixtures/v2/{name}.json"));
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(raw["schema"], 2, "{name} is a schema-2 fixture");
        let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("v2 fixture {name} no longer decodes: {e}"));
        env.event.validate(&Catalogue::shipped()).unwrap_or_else(|e| panic!("v2 fixture {name} is no longer valid: {e}"));
        assert_eq!(env.schema, SCHEMA_VERSION);
        assert_eq!((env.prev.as_deref(), env.sig.as_ref()), (None, None), "{name}: a v2 event carries no provenance");
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
        assert_eq!(Seal::of_bytes(&bytes).unwrap(), Seal::of_value(&raw));
        assert_ne!(Seal::of_bytes(&bytes).unwrap().hash, Seal::of_envelope(&env).hash, "{name}: the upcast copy is not what was written");
    }
}
