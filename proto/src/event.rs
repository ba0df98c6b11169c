//! Events: the envelope and every kind a ward records (DESIGN.md §4).
//!
//! The JSON form is the contract (documented in `proto/schema/`):
//!
//! ```json
//! {"id":"0190…","schema":3,"province":"70","town":"690","ward":"25320",
//!  "seq":2,"recorded_at":"2024-03-01T02:00:00Z","author":"officer-1",
//!  "kind":"indicator.observed","body":{…},
//!  "prev":"<hex SHA-256 of seq 1>","sig":{"key_id":"…","signature":"…"}}
//! ```
//!
//! `prev` and `sig` are the event's provenance: the ward chains each event
//! to the one before and signs it (see [`crate::provenance`]).
//!
//! Kind names are stable strings; a new meaning gets a new kind or a new
//! schema version with an upcaster, never a silent change. Events are
//! immutable (invariant 7): mistakes are mended by `event.corrected` or
//! `event.retracted`, which name the event they replace.
//!
//! A child's identity is never part of any event (invariant 5): a case carries
//! a pseudonymous id and coarse attributes only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalogue::{self, Catalogue};
use crate::provenance::Sig;

/// The schema version this code writes. Older versions are upcast on read.
/// Version 3 added the provenance fields `prev` and `sig`.
pub const SCHEMA_VERSION: u32 = 3;
/// First and last year the plan covers (2021–2025, vision to 2030).
pub const FIRST_YEAR: u16 = 2021;
pub const LAST_YEAR: u16 = 2030;
/// The 14 points (điểm) of the Law on Children 2016, art. 10 — the groups of
/// children in special circumstances. Vietnamese lettering: there is a "đ"
/// and no "f" or "j".
pub const ART10_POINTS: [char; 14] = ['a', 'b', 'c', 'd', 'đ', 'e', 'g', 'h', 'i', 'k', 'l', 'm', 'n', 'o'];
/// Longest encoded event accepted anywhere (keeps sled values inline, see ward log).
pub const MAX_EVENT_BYTES: usize = 8 * 1024;

/// One recorded fact with its metadata. `seq` is contiguous per ward, from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    pub schema: u32,
    pub province: String,
    pub town: String,
    pub ward: String,
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    pub author: String,
    #[serde(flatten)]
    pub event: Event,
    /// Hex SHA-256 of the signing bytes of this ward's event `seq − 1`
    /// ([`crate::provenance`]); absent for seq 1 and on events written
    /// before the ward had a signing key (schema 1 and 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// The ward's ed25519 signature of the event; absent on events written
    /// before the ward had a signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<Sig>,
}

/// Every kind of event, tagged by its stable kind name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", deny_unknown_fields)]
pub enum Event {
    /// Denominators of one ward for one year (dân số trẻ em).
    #[serde(rename = "population.reported")]
    PopulationReported(PopulationReported),
    /// A numerator (and denominator) of one indicator for one ward and year.
    #[serde(rename = "indicator.observed")]
    IndicatorObserved(IndicatorObserved),
    /// A ward gains or loses a status counted by indicators 1 and 21.
    #[serde(rename = "ward.recognised")]
    WardRecognised(WardRecognised),
    #[serde(rename = "case.opened")]
    CaseOpened(CaseOpened),
    #[serde(rename = "case.support_recorded")]
    CaseSupportRecorded(CaseSupportRecorded),
    #[serde(rename = "case.closed")]
    CaseClosed(CaseClosed),
    /// Replaces the body of an earlier event of the same kind.
    #[serde(rename = "event.corrected")]
    EventCorrected(EventCorrected),
    /// Withdraws an earlier event: it no longer counts.
    #[serde(rename = "event.retracted")]
    EventRetracted(EventRetracted),
}

/// Population groups that serve as denominators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// serde's snake_case glues digits to the word before them (`children_under16`);
// the wire names are those of `name()`, spelled out variant by variant.
pub enum PopulationGroup {
    /// Trẻ em dưới 16 tuổi — every child under the Law on Children.
    #[serde(rename = "children_under_16")]
    ChildrenUnder16,
    #[serde(rename = "children_under_5")]
    ChildrenUnder5,
    #[serde(rename = "children_under_1")]
    ChildrenUnder1,
    /// Trẻ đẻ sống in the year.
    LiveBirths,
    #[serde(rename = "children_aged_5")]
    ChildrenAged5,
    /// 5 to 17 years (child labour, indicator 10).
    #[serde(rename = "children_aged_5_to_17")]
    ChildrenAged5To17,
    /// 7 years and older, under 16 (indicator 22).
    #[serde(rename = "children_aged_7_plus")]
    ChildrenAged7Plus,
    /// 11 years and older, under 16 (indicator 24).
    #[serde(rename = "children_aged_11_plus")]
    ChildrenAged11Plus,
    /// Up to 8 years (indicator 2).
    #[serde(rename = "children_up_to_8")]
    ChildrenUpTo8,
    /// Marriages registered in the year (denominator of indicator 13).
    MarriagesRegistered,
    /// Cộng tác viên bảo vệ trẻ em in the ward's hamlets (plan section D).
    Collaborators,
}

impl PopulationGroup {
    pub const ALL: [PopulationGroup; 11] = [
        Self::ChildrenUnder16,
        Self::ChildrenUnder5,
        Self::ChildrenUnder1,
        Self::LiveBirths,
        Self::ChildrenAged5,
        Self::ChildrenAged5To17,
        Self::ChildrenAged7Plus,
        Self::ChildrenAged11Plus,
        Self::ChildrenUpTo8,
        Self::MarriagesRegistered,
        Self::Collaborators,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::ChildrenUnder16 => "children_under_16",
            Self::ChildrenUnder5 => "children_under_5",
            Self::ChildrenUnder1 => "children_under_1",
            Self::LiveBirths => "live_births",
            Self::ChildrenAged5 => "children_aged_5",
            Self::ChildrenAged5To17 => "children_aged_5_to_17",
            Self::ChildrenAged7Plus => "children_aged_7_plus",
            Self::ChildrenAged11Plus => "children_aged_11_plus",
            Self::ChildrenUpTo8 => "children_up_to_8",
            Self::MarriagesRegistered => "marriages_registered",
            Self::Collaborators => "collaborators",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationReported {
    pub year: u16,
    /// Only the groups reported; a later report for the same ward and year replaces this one whole.
    pub figures: BTreeMap<PopulationGroup, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorObserved {
    /// Catalogue code, e.g. `"4a"` or `"17b"`.
    pub indicator: String,
    pub year: u16,
    pub numerator: u64,
    /// Required for rates; absent for counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<u64>,
    /// Who measured it: "health_centre", "school", "ward_survey"…
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recognition {
    /// Xã, phường phù hợp với trẻ em (indicator 1).
    ChildFriendly,
    /// Điểm văn hóa, vui chơi dành cho trẻ em (indicator 21).
    PlaySpace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WardRecognised {
    pub recognition: Recognition,
    pub year: u16,
    /// `false` records that the ward lost the status that year.
    pub granted: bool,
}

/// What a case is about. A child in special circumstances names the groups of
/// the Law on Children 2016, art. 10 (points a, b, c, d, đ, e, g, h, i, k, l,
/// m, n, o — see [`ART10_POINTS`]; several may apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseCategory {
    /// Trẻ em có hoàn cảnh đặc biệt.
    SpecialCircumstances,
    /// Trẻ em bị xâm hại (violence, sexual abuse, exploitation, neglect…).
    Abuse,
    /// Tai nạn thương tích, not fatal.
    Injury,
    /// Tử vong do tai nạn thương tích.
    FatalInjury,
    /// Tảo hôn.
    ChildMarriage,
    /// Lao động trẻ em (5–17).
    ChildLabour,
    /// Trẻ em gặp thiên tai, thảm họa.
    DisasterAffected,
}

impl CaseCategory {
    pub const ALL: [CaseCategory; 7] = [
        Self::SpecialCircumstances,
        Self::Abuse,
        Self::Injury,
        Self::FatalInjury,
        Self::ChildMarriage,
        Self::ChildLabour,
        Self::DisasterAffected,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::SpecialCircumstances => "special_circumstances",
            Self::Abuse => "abuse",
            Self::Injury => "injury",
            Self::FatalInjury => "fatal_injury",
            Self::ChildMarriage => "child_marriage",
            Self::ChildLabour => "child_labour",
            Self::DisasterAffected => "disaster_affected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
    /// A state (special circumstances, child labour) counts in every year the
    /// case is open, from the year it opened to the year it closed; an
    /// incident (abuse, injury, marriage, disaster) counts in the year it
    /// happened, the case's `year`.
    pub fn counts_while_open(self) -> bool {
        matches!(self, Self::SpecialCircumstances | Self::ChildLabour)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
}

impl Sex {
    pub fn name(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
        }
    }
}

/// Coarse age at the time the case was opened. Never a birth date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgeBand {
    #[serde(rename = "0-4")]
    Under5,
    #[serde(rename = "5-10")]
    From5To10,
    #[serde(rename = "11-15")]
    From11To15,
    #[serde(rename = "16-17")]
    From16To17,
}

impl AgeBand {
    pub fn from_age(years: u32) -> Option<Self> {
        match years {
            0..=4 => Some(Self::Under5),
            5..=10 => Some(Self::From5To10),
            11..=15 => Some(Self::From11To15),
            16..=17 => Some(Self::From16To17),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Under5 => "0-4",
            Self::From5To10 => "5-10",
            Self::From11To15 => "11-15",
            Self::From16To17 => "16-17",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseOpened {
    /// Pseudonymous: random, not derived from the child's identity.
    pub case_id: Uuid,
    pub year: u16,
    pub category: CaseCategory,
    /// Points of art. 10 for special circumstances ([`ART10_POINTS`]); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<char>,
    pub sex: Sex,
    pub age_band: AgeBand,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSupportRecorded {
    pub case_id: Uuid,
    pub year: u16,
    /// "care", "nurture", "relief", "medical", "legal", "education"…
    pub support: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseClosed {
    pub case_id: Uuid,
    pub year: u16,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCorrected {
    /// The id of the event this one replaces (same ward).
    pub replaces: Uuid,
    /// The corrected event; must be of the replaced event's kind.
    pub corrected: Box<Event>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRetracted {
    pub replaces: Uuid,
    pub reason: String,
}

/// Why an event was refused. Each variant says what was wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("year {year} is outside the plan period {FIRST_YEAR}–{LAST_YEAR}; use a year in that range")]
    YearOutOfRange { year: u16 },
    #[error("unknown indicator {code:?}; known codes are {known}")]
    UnknownIndicator { code: String, known: String },
    #[error("numerator {numerator} is greater than denominator {denominator} for indicator {code}; a rate cannot exceed its whole")]
    NumeratorAboveDenominator { code: String, numerator: u64, denominator: u64 },
    #[error("indicator {code} is a rate: give a denominator ({denominator_hint})")]
    MissingDenominator { code: String, denominator_hint: String },
    #[error("indicator {code} is a zero denominator rate: denominator must be at least 1")]
    ZeroDenominator { code: String },
    #[error("indicator {code} is computed by treem from {from}; it cannot be observed directly — record {from} instead")]
    NotObservable { code: String, from: String },
    #[error("population report for {year} has no figures; give at least one group ({groups})")]
    EmptyPopulation { year: u16, groups: String },
    #[error("group letter {letter:?} is not a point of art. 10 (a, b, c, d, đ, e, g, h, i, k, l, m, n, o)")]
    BadGroupLetter { letter: char },
    #[error("a special-circumstances case needs at least one art. 10 point (a, b, c, d, đ, e, g, h, i, k, l, m, n, o)")]
    MissingGroups,
    #[error("art. 10 group letters apply only to special-circumstances cases, not {category}")]
    GroupsOnWrongCategory { category: String },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is too long ({len} characters, at most {max})")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("a correction cannot correct or retract another correction or retraction; correct the original event")]
    NestedCorrection,
}

const MAX_TEXT: usize = 200;

fn text(field: &'static str, s: &str) -> Result<(), EventError> {
    if s.trim().is_empty() {
        return Err(EventError::Empty { field });
    }
    let len = s.chars().count();
    if len > MAX_TEXT {
        return Err(EventError::TooLong { field, len, max: MAX_TEXT });
    }
    Ok(())
}

fn year(y: u16) -> Result<(), EventError> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&y) { Ok(()) } else { Err(EventError::YearOutOfRange { year: y }) }
}

impl Event {
    /// Stable kind name, also the last tokens of the NATS subject.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::PopulationReported(_) => "population.reported",
            Event::IndicatorObserved(_) => "indicator.observed",
            Event::WardRecognised(_) => "ward.recognised",
            Event::CaseOpened(_) => "case.opened",
            Event::CaseSupportRecorded(_) => "case.support_recorded",
            Event::CaseClosed(_) => "case.closed",
            Event::EventCorrected(_) => "event.corrected",
            Event::EventRetracted(_) => "event.retracted",
        }
    }

    pub const KINDS: [&'static str; 8] = [
        "population.reported",
        "indicator.observed",
        "ward.recognised",
        "case.opened",
        "case.support_recorded",
        "case.closed",
        "event.corrected",
        "event.retracted",
    ];

    /// Checks the body against the plan and the catalogue. Pure; the ward calls
    /// it before recording and the town again before applying.
    pub fn validate(&self, catalogue: &Catalogue) -> Result<(), EventError> {
        match self {
            Event::PopulationReported(p) => {
                year(p.year)?;
                if p.figures.is_empty() {
                    let groups = PopulationGroup::ALL.map(|g| g.name()).join(", ");
                    return Err(EventError::EmptyPopulation { year: p.year, groups });
                }
                Ok(())
            }
            Event::IndicatorObserved(o) => {
                year(o.year)?;
                text("source", &o.source)?;
                let ind = catalogue
                    .get(&o.indicator)
                    .ok_or_else(|| EventError::UnknownIndicator { code: o.indicator.clone(), known: catalogue.codes().join(", ") })?;
                if let catalogue::Method::Observed = ind.method {
                } else {
                    return Err(EventError::NotObservable { code: ind.code.clone(), from: ind.method.describe() });
                }
                if ind.unit.is_rate() {
                    let Some(d) = o.denominator else {
                        return Err(EventError::MissingDenominator {
                            code: ind.code.clone(),
                            denominator_hint: ind.denominator_en.clone().unwrap_or_default(),
                        });
                    };
                    if d == 0 {
                        return Err(EventError::ZeroDenominator { code: ind.code.clone() });
                    }
                    if o.numerator > d {
                        return Err(EventError::NumeratorAboveDenominator {
                            code: ind.code.clone(),
                            numerator: o.numerator,
                            denominator: d,
                        });
                    }
                }
                Ok(())
            }
            Event::WardRecognised(r) => year(r.year),
            Event::CaseOpened(c) => {
                year(c.year)?;
                for &l in &c.groups {
                    if !ART10_POINTS.contains(&l) {
                        return Err(EventError::BadGroupLetter { letter: l });
                    }
                }
                match (c.category, c.groups.is_empty()) {
                    (CaseCategory::SpecialCircumstances, true) => Err(EventError::MissingGroups),
                    (CaseCategory::SpecialCircumstances, false) | (_, true) => Ok(()),
                    (other, false) => Err(EventError::GroupsOnWrongCategory { category: other.name().into() }),
                }
            }
            Event::CaseSupportRecorded(s) => {
                year(s.year)?;
                text("support", &s.support)
            }
            Event::CaseClosed(c) => {
                year(c.year)?;
                text("reason", &c.reason)
            }
            Event::EventCorrected(c) => {
                text("reason", &c.reason)?;
                if matches!(*c.corrected, Event::EventCorrected(_) | Event::EventRetracted(_)) {
                    return Err(EventError::NestedCorrection);
                }
                c.corrected.validate(catalogue)
            }
            Event::EventRetracted(r) => text("reason", &r.reason),
        }
    }
}

/// Why bytes could not be read as an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event is {0} bytes; at most {MAX_EVENT_BYTES} are accepted")]
    TooLarge(usize),
    #[error("event is not valid JSON: {0}")]
    Json(String),
    #[error("event has no numeric \"schema\" field; every event carries its schema version")]
    MissingSchema,
    #[error("event schema version {found} is newer than this node understands (up to {SCHEMA_VERSION}); upgrade treem")]
    FutureSchema { found: u64 },
    #[error("event does not match schema version {version}: {detail}")]
    Shape { version: u32, detail: String },
}

impl Envelope {
    /// A new envelope of `event`, recorded now by `author` as `ward`'s event
    /// at `seq`: a fresh UUID v7 id, the current schema, no link to the
    /// previous event and no signature (the ward log adds both when it
    /// chains and signs).
    pub fn new(ward: &crate::subject::WardPath, seq: u64, author: &str, event: Event) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            schema: SCHEMA_VERSION,
            province: ward.province.clone(),
            town: ward.town.clone(),
            ward: ward.ward.clone(),
            seq,
            recorded_at: Utc::now(),
            author: author.to_owned(),
            event,
            prev: None,
            sig: None,
        }
    }

    /// Decodes any supported schema version, upcasting older ones first.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        // The common case, an event of the current schema, reads straight
        // into the envelope; anything else (an older schema to upcast, or
        // bytes that fail to read) takes the general path, which gives the
        // same result and the same errors as before this shortcut.
        #[derive(Deserialize)]
        struct Probe {
            schema: Option<u64>,
        }
        if let Ok(Probe { schema: Some(v) }) = serde_json::from_slice::<Probe>(bytes)
            && v == u64::from(SCHEMA_VERSION)
            && let Ok(env) = serde_json::from_slice::<Envelope>(bytes)
        {
            return Ok(env);
        }
        Envelope::decode_general(bytes)
    }

    /// The general path of [`Envelope::decode`]: JSON value, upcast,
    /// envelope. Public so the fuzz tests can hold the shortcut to it.
    #[doc(hidden)]
    pub fn decode_general(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        Envelope::from_json(Envelope::read_json(bytes)?)
    }

    /// The bytes of an event as JSON, size checked: the first step of the
    /// general path (the provenance seal is taken from this value).
    pub(crate) fn read_json(bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))
    }

    /// The envelope of a value from [`Envelope::read_json`], upcast to the current schema.
    pub(crate) fn from_json(value: serde_json::Value) -> Result<Envelope, DecodeError> {
        let value = crate::upcast::upcast(value)?;
        serde_json::from_value(value).map_err(|e| DecodeError::Shape { version: SCHEMA_VERSION, detail: e.to_string() })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    /// The id used for JetStream de-duplication (`Nats-Msg-Id`).
    pub fn msg_id(&self) -> String {
        self.id.to_string()
    }
}
