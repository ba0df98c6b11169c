//! The envelope on the wire: encode/decode round trips of every kind, the
//! names serde gives each enum, and the refusals of `Event::validate` and
//! `Envelope::decode`, each naming what was wrong.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{CASE, EARLIER, case_opened, envelope, observed, one_of_each_kind, uuid};
use serde_json::{Value, json};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{
    AgeBand, CaseCategory, CaseClosed, CaseSupportRecorded, DecodeError, EventCorrected, EventRetracted, MAX_EVENT_BYTES, PopulationGroup,
    PopulationReported, Recognition, SCHEMA_VERSION, Sex, WardRecognised,
};
use treem_proto::{Envelope, Event, EventError};

#[test]
fn every_kind_round_trips_through_encode_and_decode() {
    let events = one_of_each_kind();
    let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
    assert_eq!(kinds, Event::KINDS, "the samples cover every kind, in KINDS order");
    for (k, event) in events.into_iter().enumerate() {
        let env = envelope(k as u64 + 1, event);
        let bytes = env.encode();
        let decoded = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", env.event.kind()));
        assert_eq!(decoded, env);
        assert_eq!(decoded.encode(), bytes, "{}: re-encoding is byte-identical", env.event.kind());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["kind"], env.event.kind());
        assert_eq!(v["schema"], SCHEMA_VERSION);
        assert_eq!(v["seq"], k as u64 + 1);
        assert!(v["body"].is_object(), "{}: the body is an object", env.event.kind());
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let envelope_fields = ["id", "schema", "province", "town", "ward", "seq", "recorded_at", "author", "kind", "body"];
        assert_eq!(keys, BTreeSet::from(envelope_fields));
        assert_eq!(env.msg_id(), env.id.to_string(), "Nats-Msg-Id is the envelope id");
    }
}

#[test]
fn sample_events_are_valid() {
    let c = Catalogue::shipped();
    for e in one_of_each_kind() {
        e.validate(&c).unwrap_or_else(|err| panic!("{}: {err}", e.kind()));
    }
}

/// The JSON name of a value serialised on its own.
fn wire<T: serde::Serialize>(t: T) -> String {
    serde_json::to_value(t).unwrap().as_str().unwrap().to_owned()
}

#[test]
fn enum_names_on_the_wire_are_the_names_the_code_prints() {
    for g in PopulationGroup::ALL {
        assert_eq!(wire(g), g.name(), "population group {g:?}");
        assert_eq!(PopulationGroup::parse(g.name()), Some(g));
    }
    for c in CaseCategory::ALL {
        assert_eq!(wire(c), c.name(), "case category {c:?}");
        assert_eq!(CaseCategory::parse(c.name()), Some(c));
    }
    for b in [AgeBand::Under5, AgeBand::From5To10, AgeBand::From11To15, AgeBand::From16To17] {
        assert_eq!(wire(b), b.name());
    }
    assert_eq!(wire(Recognition::ChildFriendly), "child_friendly");
    assert_eq!(wire(Recognition::PlaySpace), "play_space");
    assert_eq!(wire(Sex::Female), "female");
    assert_eq!(wire(Sex::Male), "male");
    let figures: BTreeMap<PopulationGroup, u64> = [(PopulationGroup::ChildrenAged5To17, 3)].into();
    let body = serde_json::to_value(PopulationReported { year: 2024, figures }).unwrap();
    assert_eq!(body, json!({"year": 2024, "figures": {"children_aged_5_to_17": 3}}));
}

#[test]
fn the_wire_form_of_each_body_is_as_documented() {
    let bodies: Vec<Value> =
        one_of_each_kind().into_iter().map(|e| serde_json::to_value(envelope(1, e)).unwrap()["body"].clone()).collect();
    assert_eq!(bodies[1], json!({"indicator": "4a", "year": 2024, "numerator": 21, "denominator": 310, "source": "health_centre"}));
    assert_eq!(bodies[2], json!({"recognition": "child_friendly", "year": 2024, "granted": true}));
    assert_eq!(
        bodies[3],
        json!({"case_id": CASE, "year": 2024, "category": "special_circumstances", "groups": ["a", "k"], "sex": "female", "age_band": "5-10"})
    );
    assert_eq!(bodies[4], json!({"case_id": CASE, "year": 2024, "support": "nurture"}));
    assert_eq!(bodies[5], json!({"case_id": CASE, "year": 2025, "reason": "turned 16"}));
    assert_eq!(
        bodies[6],
        json!({"replaces": EARLIER, "reason": "typo in the numerator", "corrected": {"kind": "indicator.observed",
            "body": {"indicator": "4a", "year": 2024, "numerator": 19, "denominator": 310, "source": "health_centre"}}})
    );
    assert_eq!(bodies[7], json!({"replaces": EARLIER, "reason": "recorded twice"}));
    // Absent denominator and empty groups are left out, not written as null / [].
    let count = serde_json::to_value(observed("1", 2024, 3, None)).unwrap();
    assert!(count["body"].get("denominator").is_none());
    let abuse = serde_json::to_value(case_opened(CaseCategory::Abuse, &[])).unwrap();
    assert!(abuse["body"].get("groups").is_none());
}

// ------------------------------------------------------------------ validate

fn refused(e: &Event) -> (EventError, String) {
    let err = e.validate(&Catalogue::shipped()).expect_err("must be refused");
    let text = err.to_string();
    (err, text)
}

fn assert_refused(e: Event, words: &[&str]) -> EventError {
    let (err, text) = refused(&e);
    for w in words {
        assert!(text.contains(w), "{text:?} should mention {w:?}");
    }
    err
}

#[test]
fn an_unknown_indicator_is_refused_with_the_known_codes() {
    let err = assert_refused(observed("25", 2024, 1, Some(2)), &["unknown indicator \"25\"", "known codes are 1, 2, 3a, 3b, 3c, 4a"]);
    assert!(matches!(err, EventError::UnknownIndicator { ref code, .. } if code == "25"));
    // Parts are codes of their own: "4" alone is not an indicator.
    assert_refused(observed("4", 2024, 1, Some(2)), &["unknown indicator \"4\""]);
    assert_refused(observed("4A", 2024, 1, Some(2)), &["unknown indicator \"4A\""]);
}

#[test]
fn a_numerator_above_its_denominator_is_refused() {
    let err =
        assert_refused(observed("2", 2024, 90, Some(80)), &["numerator 90 is greater than denominator 80", "indicator 2", "cannot exceed"]);
    assert_eq!(err, EventError::NumeratorAboveDenominator { code: "2".into(), numerator: 90, denominator: 80 });
    assert!(observed("2", 2024, 80, Some(80)).validate(&Catalogue::shipped()).is_ok(), "equal is a full 100 %");
    assert_refused(observed("2", 2024, 0, Some(0)), &["denominator must be at least 1"]);
}

#[test]
fn years_outside_2021_to_2030_are_refused() {
    for y in [2020, 2031, 0, 1999] {
        let err = assert_refused(observed("2", y, 1, Some(2)), &[&format!("year {y} is outside the plan period 2021–2030")]);
        assert_eq!(err, EventError::YearOutOfRange { year: y });
    }
    for y in [2021, 2030] {
        assert!(observed("2", y, 1, Some(2)).validate(&Catalogue::shipped()).is_ok());
    }
    let figures = [(PopulationGroup::ChildrenUnder16, 10)].into();
    assert_refused(Event::PopulationReported(PopulationReported { year: 2020, figures }), &["year 2020"]);
    assert_refused(
        Event::WardRecognised(WardRecognised { recognition: Recognition::PlaySpace, year: 2031, granted: true }),
        &["year 2031"],
    );
    let mut late = case_opened(CaseCategory::Injury, &[]);
    if let Event::CaseOpened(c) = &mut late {
        c.year = 2031;
    }
    assert_refused(late, &["year 2031"]);
    assert_refused(
        Event::CaseSupportRecorded(CaseSupportRecorded { case_id: uuid(CASE), year: 2020, support: "relief".into() }),
        &["year 2020"],
    );
    assert_refused(Event::CaseClosed(CaseClosed { case_id: uuid(CASE), year: 2031, reason: "moved".into() }), &["year 2031"]);
}

#[test]
fn a_rate_without_its_denominator_is_refused_with_what_it_counts() {
    let err = assert_refused(observed("2", 2024, 10, None), &["indicator 2 is a rate", "give a denominator", "children up to 8 years old"]);
    assert!(matches!(err, EventError::MissingDenominator { .. }));
    assert_refused(observed("3b", 2024, 0, None), &["indicator 3b is a rate", "live births in the year"]);
}

#[test]
fn a_computed_indicator_cannot_be_observed_directly() {
    for (code, from) in [
        ("1", "ward.recognised"),
        ("21", "ward.recognised"),
        ("8a", "case.opened (special_circumstances) and population.reported (children_under_16)"),
        ("8b", "case.opened and case.support_recorded (special_circumstances)"),
        ("9", "case.opened (abuse) and population.reported (children_under_16)"),
        ("10", "case.opened (child_labour) and population.reported (children_aged_5_to_17)"),
        ("11a", "case.opened (injury)"),
        ("11b", "case.opened (fatal_injury)"),
        ("12", "case.support_recorded (disaster_affected)"),
        ("13", "case.opened (child_marriage) and population.reported (marriages_registered)"),
    ] {
        let err = assert_refused(
            observed(code, 2024, 1, Some(100)),
            &[&format!("indicator {code} is computed by treem from"), from, "cannot be observed directly", "record"],
        );
        assert!(matches!(err, EventError::NotObservable { .. }), "{code}");
    }
}

#[test]
fn other_bad_bodies_are_refused_with_the_reason() {
    assert_refused(
        Event::PopulationReported(PopulationReported { year: 2024, figures: BTreeMap::new() }),
        &["no figures", "children_under_16"],
    );
    assert_refused(case_opened(CaseCategory::SpecialCircumstances, &[]), &["at least one art. 10 point"]);
    assert_refused(case_opened(CaseCategory::SpecialCircumstances, &['a', 'p']), &["'p'", "art. 10"]);
    // Vietnamese lettering: "đ" is a point, "f" and "j" are not.
    assert_refused(case_opened(CaseCategory::SpecialCircumstances, &['f']), &["'f'", "đ"]);
    assert_refused(case_opened(CaseCategory::SpecialCircumstances, &['j']), &["'j'"]);
    assert!(case_opened(CaseCategory::SpecialCircumstances, &['đ', 'o']).validate(&Catalogue::shipped()).is_ok());
    assert_refused(case_opened(CaseCategory::Abuse, &['b']), &["only to special-circumstances cases, not abuse"]);
    let mut blank = observed("2", 2024, 1, Some(2));
    if let Event::IndicatorObserved(o) = &mut blank {
        o.source = "  ".into();
    }
    assert_refused(blank, &["source must not be empty"]);
    assert_refused(
        Event::CaseSupportRecorded(CaseSupportRecorded { case_id: uuid(CASE), year: 2024, support: "x".repeat(201) }),
        &["support is too long (201 characters, at most 200)"],
    );
    assert_refused(Event::EventRetracted(EventRetracted { replaces: uuid(EARLIER), reason: String::new() }), &["reason must not be empty"]);
    // A correction is checked like the event it carries, and never nests.
    let fix = |corrected: Event| {
        Event::EventCorrected(EventCorrected { replaces: uuid(EARLIER), corrected: Box::new(corrected), reason: "typo".into() })
    };
    assert_refused(fix(observed("2", 2024, 9, Some(8))), &["numerator 9 is greater than denominator 8"]);
    assert_refused(fix(observed("9", 2024, 1, Some(8))), &["cannot be observed directly"]);
    let retraction = Event::EventRetracted(EventRetracted { replaces: uuid(EARLIER), reason: "dup".into() });
    assert_eq!(refused(&fix(retraction)).0, EventError::NestedCorrection);
    assert_eq!(refused(&fix(fix(observed("2", 2024, 1, Some(2))))).0, EventError::NestedCorrection);
}

// -------------------------------------------------------------------- decode

fn sample_json() -> Value {
    serde_json::to_value(envelope(7, observed("4a", 2024, 21, Some(310)))).unwrap()
}

fn decode(v: &Value) -> Result<Envelope, DecodeError> {
    Envelope::decode(&serde_json::to_vec(v).unwrap())
}

fn shape_error(v: &Value) -> String {
    match decode(v) {
        Err(DecodeError::Shape { version, detail }) => {
            assert_eq!(version, SCHEMA_VERSION);
            detail
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn malformed_bytes_are_refused_and_say_why() {
    let err = Envelope::decode(b"{\"id\": ").unwrap_err();
    assert!(matches!(err, DecodeError::Json(_)), "{err:?}");
    assert!(err.to_string().starts_with("event is not valid JSON"));
    let err = Envelope::decode(b"[1,2]").unwrap_err();
    assert!(matches!(err, DecodeError::MissingSchema), "{err:?}");
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    let err = Envelope::decode(&big).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge(n) if n == MAX_EVENT_BYTES + 1));
    assert!(err.to_string().contains("at most 8192"));
}

#[test]
fn shape_errors_name_the_field() {
    let mut v = sample_json();
    v["kind"] = json!("case.eaten");
    assert!(shape_error(&v).contains("unknown variant `case.eaten`"));
    let mut v = sample_json();
    v["body"]["colour"] = json!("red");
    assert!(shape_error(&v).contains("unknown field `colour`"));
    let mut v = sample_json();
    v.as_object_mut().unwrap().remove("seq");
    assert!(shape_error(&v).contains("missing field `seq`"));
    let mut v = sample_json();
    v["id"] = json!("not-a-uuid");
    assert!(!shape_error(&v).is_empty());
    let mut v = sample_json();
    v["body"]["numerator"] = json!(-1);
    assert!(shape_error(&v).contains("-1"));
    let mut v = sample_json();
    v["body"]["year"] = json!("2024");
    assert!(shape_error(&v).contains("invalid type: string \"2024\""), "a v2 year is a number");
    let mut v = serde_json::to_value(envelope(1, case_opened(CaseCategory::SpecialCircumstances, &['a']))).unwrap();
    v["body"]["groups"] = json!(["ab"]);
    assert!(shape_error(&v).contains("expected a character"));
    v["body"]["groups"] = json!(["a"]);
    v["body"]["age_band"] = json!("6-10");
    assert!(shape_error(&v).contains("unknown variant `6-10`"));
    let mut v = serde_json::to_value(envelope(1, one_of_each_kind().remove(0))).unwrap();
    v["body"]["figures"]["children_under16"] = json!(3);
    assert!(shape_error(&v).contains("unknown variant `children_under16`"));
}

#[test]
fn recorded_at_is_read_with_any_offset_and_written_in_utc() {
    let mut v = sample_json();
    v["recorded_at"] = json!("2024-03-01T09:00:00+07:00");
    let env = decode(&v).unwrap();
    assert_eq!(env.recorded_at, common::at("2024-03-01T02:00:00Z"));
    let out: Value = serde_json::from_slice(&env.encode()).unwrap();
    assert_eq!(out["recorded_at"], "2024-03-01T02:00:00Z");
}
