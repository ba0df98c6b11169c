//! Helpers shared by the proto integration tests: one well-formed event of
//! every kind, and an envelope around it.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use treem_proto::Envelope;
use treem_proto::event::{
    AgeBand, CaseCategory, CaseClosed, CaseOpened, CaseSupportRecorded, Event, EventCorrected, EventRetracted, IndicatorObserved,
    PopulationGroup, PopulationReported, Recognition, Sex, WardRecognised,
};
use treem_proto::subject::WardPath;
use uuid::Uuid;

pub fn uuid(s: &str) -> Uuid {
    s.parse().expect("test uuid")
}

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

pub const CASE: &str = "018f3a52-9c1e-7d40-8b2a-3c4d5e6f7a80";
pub const EARLIER: &str = "018f3a52-9c1e-7d40-8b2a-3c4d5e6f7a81";

pub fn observed(indicator: &str, year: u16, numerator: u64, denominator: Option<u64>) -> Event {
    Event::IndicatorObserved(IndicatorObserved {
        indicator: indicator.into(),
        year,
        numerator,
        denominator,
        source: "health_centre".into(),
    })
}

pub fn case_opened(category: CaseCategory, groups: &[char]) -> Event {
    Event::CaseOpened(CaseOpened {
        case_id: uuid(CASE),
        year: 2024,
        category,
        groups: groups.to_vec(),
        sex: Sex::Female,
        age_band: AgeBand::From5To10,
    })
}

/// One valid event of every kind, in [`Event::KINDS`] order.
pub fn one_of_each_kind() -> Vec<Event> {
    let figures: BTreeMap<PopulationGroup, u64> = PopulationGroup::ALL.iter().enumerate().map(|(k, &g)| (g, 100 + k as u64)).collect();
    vec![
        Event::PopulationReported(PopulationReported { year: 2024, figures }),
        observed("4a", 2024, 21, Some(310)),
        Event::WardRecognised(WardRecognised { recognition: Recognition::ChildFriendly, year: 2024, granted: true }),
        case_opened(CaseCategory::SpecialCircumstances, &['a', 'k']),
        Event::CaseSupportRecorded(CaseSupportRecorded { case_id: uuid(CASE), year: 2024, support: "nurture".into() }),
        Event::CaseClosed(CaseClosed { case_id: uuid(CASE), year: 2025, reason: "turned 16".into() }),
        Event::EventCorrected(EventCorrected {
            replaces: uuid(EARLIER),
            corrected: Box::new(observed("4a", 2024, 19, Some(310))),
            reason: "typo in the numerator".into(),
        }),
        Event::EventRetracted(EventRetracted { replaces: uuid(EARLIER), reason: "recorded twice".into() }),
    ]
}

pub fn envelope(seq: u64, event: Event) -> Envelope {
    Envelope::new(&WardPath::new("70", "690", "25320"), seq, "officer-hung-chien", event)
}

/// Reads a JSON fixture relative to `proto/`.
pub fn read(path: &str) -> Vec<u8> {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}
