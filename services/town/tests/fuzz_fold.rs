//! Fuzzing the town fold (proptest), over the in-memory `MemKv` model:
//!
//! - **arbitrary messages** (any subject, any bytes) never panic, advance no
//!   ward's position and leave no figure: each is parked with a reason;
//! - **valid ward histories delivered badly** — shuffled, duplicated,
//!   interleaved with garbage (random bytes, truncated events, an event
//!   claiming another ward, another town, seq 0, a subject that names no
//!   ward) — end in exactly the projection that in-order delivery of the
//!   valid events alone gives (invariants 2 and 3), with every garbage
//!   message parked and nothing left held; and after *every* step no ward
//!   holds an event it should already have applied.
//!
//! The histories are random too: observations, population figures, cases
//! opened, supported and closed, recognitions, corrections and retractions
//! naming earlier events (or events that do not exist). A failing input is
//! shrunk and recorded in `proptest-regressions/`, which is committed.

use std::collections::BTreeMap;

use proptest::prelude::*;
use treem_proto::Envelope;
use treem_proto::catalogue::Catalogue;
use treem_proto::event::*;
use treem_proto::hierarchy::Hierarchy;
use treem_proto::subject::{self, WardPath};
use treem_town::fold::{self, Ctx, Dirty};
use treem_town::keys;
use treem_town::kv::{KvScan, MemKv};
use treem_town::projection::{cases, indicators};
use treem_town::provenance::WardKeys;
use uuid::Uuid;

const WARDS: [&str; 3] = ["25320", "25324", "25336"];
const YEARS: [u16; 2] = [2024, 2025];
const CODES: [&str; 4] = ["4a", "6", "16", "3a"];

/// Unsigned events are accepted from wards with no registered key: the
/// provenance checks have their own tests; here the fold's order and
/// refusals are fuzzed.
fn ctx() -> Ctx {
    Ctx {
        province: "70".into(),
        town: "690".into(),
        hierarchy: Hierarchy::shipped(),
        catalogue: Catalogue::shipped(),
        provenance: WardKeys::not_required(),
    }
}

fn all_wards() -> Vec<String> {
    ["25320", "25324", "25325", "25326", "25333", "25336"].map(String::from).to_vec()
}

/// One step of a ward's history, before ids are known.
#[derive(Debug, Clone)]
enum Op {
    Observe { code: usize, year: usize, numerator: u64, denominator: u64 },
    Population { year: usize, children: u64, marriages: u64 },
    Open { category: usize, year: usize, female: bool, band: usize },
    Support { case: prop::sample::Index, year: usize },
    Close { case: prop::sample::Index, year: usize },
    Recognise { year: usize, granted: bool },
    CorrectObservation { target: prop::sample::Index, numerator: u64 },
    Retract { target: prop::sample::Index },
    RetractUnknown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..CODES.len(), 0..YEARS.len(), 0u64..50, 50u64..200).prop_map(|(code, year, numerator, denominator)| Op::Observe { code, year, numerator, denominator }),
        // The largest figures a ward's validation lets through.
        1 => (0..CODES.len(), 0..YEARS.len(), u64::MAX - 3..=u64::MAX).prop_map(|(code, year, n)| Op::Observe { code, year, numerator: n - 1, denominator: n }),
        1 => (0..YEARS.len(), 0u64..5000, 0u64..80).prop_map(|(year, children, marriages)| Op::Population { year, children, marriages }),
        1 => (0..YEARS.len(), u64::MAX - 3..=u64::MAX).prop_map(|(year, n)| Op::Population { year, children: n, marriages: n }),
        3 => (0..CaseCategory::ALL.len(), 0..YEARS.len(), any::<bool>(), 0..4usize).prop_map(|(category, year, female, band)| Op::Open { category, year, female, band }),
        2 => (any::<prop::sample::Index>(), 0..YEARS.len()).prop_map(|(case, year)| Op::Support { case, year }),
        1 => (any::<prop::sample::Index>(), 0..YEARS.len()).prop_map(|(case, year)| Op::Close { case, year }),
        1 => (0..YEARS.len(), any::<bool>()).prop_map(|(year, granted)| Op::Recognise { year, granted }),
        1 => (any::<prop::sample::Index>(), 0u64..50).prop_map(|(target, numerator)| Op::CorrectObservation { target, numerator }),
        1 => any::<prop::sample::Index>().prop_map(|target| Op::Retract { target }),
        1 => Just(Op::RetractUnknown),
    ]
}

/// Turns ops into a ward's envelopes, seq 1… (ids deterministic per run).
fn history(ward: &str, ops: &[Op], ids: &mut u128) -> Vec<Envelope> {
    let mut next_id = || {
        *ids += 1;
        Uuid::from_u128(*ids)
    };
    let mut cases: Vec<Uuid> = Vec::new();
    let mut events: Vec<(Uuid, Event)> = Vec::new();
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let observation = |code: &str, year: u16, numerator: u64, denominator: u64| {
            Event::IndicatorObserved(IndicatorObserved {
                indicator: code.into(),
                year,
                numerator,
                denominator: Some(denominator),
                source: "health_centre".into(),
            })
        };
        let event = match op {
            Op::Observe { code, year, numerator, denominator } => observation(CODES[*code], YEARS[*year], *numerator, *denominator),
            Op::Population { year, children, marriages } => Event::PopulationReported(PopulationReported {
                year: YEARS[*year],
                figures: BTreeMap::from([
                    (PopulationGroup::ChildrenUnder16, *children),
                    (PopulationGroup::MarriagesRegistered, *marriages),
                ]),
            }),
            Op::Open { category, year, female, band } => {
                let case_id = next_id();
                cases.push(case_id);
                let category = CaseCategory::ALL[*category];
                let groups = if category == CaseCategory::SpecialCircumstances { vec!['a'] } else { vec![] };
                let age_band = [AgeBand::from_age(2), AgeBand::from_age(7), AgeBand::from_age(12), AgeBand::from_age(16)][*band].unwrap();
                Event::CaseOpened(CaseOpened {
                    case_id,
                    year: YEARS[*year],
                    category,
                    groups,
                    sex: if *female { Sex::Female } else { Sex::Male },
                    age_band,
                })
            }
            Op::Support { case, year } => {
                let case_id = if cases.is_empty() { next_id() } else { cases[case.index(cases.len())] };
                Event::CaseSupportRecorded(CaseSupportRecorded { case_id, year: YEARS[*year], support: "legal".into() })
            }
            Op::Close { case, year } => {
                let case_id = if cases.is_empty() { next_id() } else { cases[case.index(cases.len())] };
                Event::CaseClosed(CaseClosed { case_id, year: YEARS[*year], reason: "returned to family".into() })
            }
            Op::Recognise { year, granted } => {
                Event::WardRecognised(WardRecognised { recognition: Recognition::ChildFriendly, year: YEARS[*year], granted: *granted })
            }
            Op::CorrectObservation { target, numerator } => {
                let replaces = if events.is_empty() { next_id() } else { events[target.index(events.len())].0 };
                Event::EventCorrected(EventCorrected {
                    replaces,
                    corrected: Box::new(observation("4a", 2025, *numerator, 100)),
                    reason: "typo".into(),
                })
            }
            Op::Retract { target } => {
                let replaces = if events.is_empty() { next_id() } else { events[target.index(events.len())].0 };
                Event::EventRetracted(EventRetracted { replaces, reason: "entered twice".into() })
            }
            Op::RetractUnknown => Event::EventRetracted(EventRetracted { replaces: next_id(), reason: "no such event".into() }),
        };
        let id = next_id();
        events.push((id, event.clone()));
        out.push(Envelope {
            id,
            recorded_at: "2025-03-01T00:00:00Z".parse().unwrap(),
            ..Envelope::new(&WardPath::new("70", "690", ward), i as u64 + 1, "fuzz", event)
        });
    }
    out
}

/// A message that must be refused (parked) and change no projection.
#[derive(Debug, Clone)]
enum Garbage {
    RandomBytes(Vec<u8>),
    Truncated(prop::sample::Index, prop::sample::Index),
    ClaimsAnotherWard(prop::sample::Index),
    AnotherTown(prop::sample::Index),
    SeqZero(prop::sample::Index),
    NoSuchWardSubject(prop::sample::Index),
}

fn garbage() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Garbage::RandomBytes),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(e, at)| Garbage::Truncated(e, at)),
        any::<prop::sample::Index>().prop_map(Garbage::ClaimsAnotherWard),
        any::<prop::sample::Index>().prop_map(Garbage::AnotherTown),
        any::<prop::sample::Index>().prop_map(Garbage::SeqZero),
        any::<prop::sample::Index>().prop_map(Garbage::NoSuchWardSubject),
    ]
}

type Message = (String, Vec<u8>);

fn garbage_message(g: &Garbage, valid: &[Envelope]) -> Message {
    let pick = |i: &prop::sample::Index| valid[i.index(valid.len())].clone();
    match g {
        Garbage::RandomBytes(bytes) => (subject::event_subject(&valid[0]), bytes.clone()),
        Garbage::Truncated(e, at) => {
            let env = pick(e);
            let bytes = env.encode();
            // Cut inside the JSON: never the whole document.
            (subject::event_subject(&env), bytes[..at.index(bytes.len() - 1)].to_vec())
        }
        Garbage::ClaimsAnotherWard(e) => {
            let env = pick(e);
            let subject = subject::event_subject(&env);
            let other = if env.ward == "25320" { "25324" } else { "25320" };
            (subject, Envelope { ward: other.into(), ..env }.encode())
        }
        Garbage::AnotherTown(e) => {
            let env = Envelope { town: "691".into(), ..pick(e) };
            (subject::event_subject(&env), env.encode())
        }
        Garbage::SeqZero(e) => {
            let env = Envelope { seq: 0, ..pick(e) };
            (subject::event_subject(&env), env.encode())
        }
        Garbage::NoSuchWardSubject(e) => {
            let env = Envelope { ward: "99999".into(), ..pick(e) };
            (subject::event_subject(&env), env.encode())
        }
    }
}

/// What a reader can see of the town: every figure and case summary.
fn projection(kv: &MemKv) -> Vec<String> {
    let catalogue = Catalogue::shipped();
    let mut out = Vec::new();
    for year in YEARS {
        out.push(format!("{:?}", indicators::figures(kv, &catalogue, &all_wards(), year)));
        out.push(format!("{:?}", cases::summary(kv, year, None)));
    }
    for ward in WARDS {
        out.push(format!("pos {ward} = {}", kv.0.get(&keys::pos(ward)).map(|v| keys::u64_of(v)).unwrap_or(0)));
    }
    out
}

/// The case counts the fold keeps (`cnt/` and `sup/`).
fn stored_counts(kv: &MemKv) -> BTreeMap<Vec<u8>, u64> {
    let mut counts = BTreeMap::new();
    for prefix in [&b"cnt/"[..], b"sup/"] {
        for (k, v) in kv.scan_prefix(prefix) {
            counts.insert(k, keys::u64_of(&v));
        }
    }
    counts
}

/// The case counts recomputed from scratch from the cases held (`case/`):
/// each case counts once in every year it counts in, as open or as closed
/// by then, and as supported when a support in force dates from that year
/// or before (a state), or at all (an incident). No count is kept at zero.
fn counts_of_cases(kv: &MemKv) -> BTreeMap<Vec<u8>, u64> {
    let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (_, v) in kv.scan_prefix(b"case/") {
        let case = fold::CaseState::decode(&v).expect("a stored case reads");
        for y in fold::years_counted(&case) {
            let status = if case.closed.is_some_and(|(_, closed)| closed <= y) { "closed" } else { "open" };
            *counts.entry(keys::count(y, &case.ward, case.category.name(), case.sex.name(), case.age_band.name(), status)).or_default() +=
                1;
            let supported =
                if case.category.counts_while_open() { case.supports.values().any(|&s| s <= y) } else { !case.supports.is_empty() };
            if supported {
                *counts.entry(keys::supported(y, &case.ward, case.category.name())).or_default() += 1;
            }
        }
    }
    counts
}

fn parked(kv: &MemKv) -> usize {
    kv.scan_prefix(keys::PARKED_PREFIX).len()
}

/// After any step: no ward holds an event at or right after its position.
fn nothing_stuck(kv: &MemKv) -> Result<(), TestCaseError> {
    for ward in WARDS {
        let pos = kv.0.get(&keys::pos(ward)).map(|v| keys::u64_of(v)).unwrap_or(0);
        for (k, _) in kv.scan_prefix(&keys::held_prefix(ward)) {
            let seq = keys::trailing_u64(&k);
            prop_assert!(seq > pos + 1, "ward {} holds seq {} with position {}", ward, seq, pos);
        }
    }
    Ok(())
}

fn deliver(kv: &mut MemKv, ctx: &Ctx, messages: &[Message]) -> Result<(), TestCaseError> {
    for (subject, bytes) in messages {
        let mut dirty = Dirty::new();
        fold::apply(kv, ctx, subject, bytes, &mut dirty);
        nothing_stuck(kv)?;
    }
    Ok(())
}

/// Cases per property: `default`, or `PROPTEST_CASES` for a longer run
/// (e.g. `PROPTEST_CASES=20000`).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(128), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_are_parked_and_change_nothing(
        messages in prop::collection::vec(
            (prop_oneof![
                Just("treem.v1.events.70.690.25320.indicator.observed".to_string()),
                Just("treem.v1.events.70.690.25324.case.opened".to_string()),
                "[a-z0-9.>*]{0,60}",
                "\\PC{0,40}",
            ], prop::collection::vec(any::<u8>(), 0..400)),
            1..40,
        ),
    ) {
        let ctx = ctx();
        let mut kv = MemKv::default();
        let empty = projection(&kv);
        deliver(&mut kv, &ctx, &messages)?;
        prop_assert_eq!(projection(&kv), empty);
        prop_assert_eq!(parked(&kv), messages.len(), "every message is parked with a reason");
    }

    #[test]
    fn any_delivery_order_with_duplicates_and_garbage_gives_the_in_order_projection(
        histories in prop::collection::vec(prop::collection::vec(op(), 1..14), WARDS.len()),
        order in any::<u64>(),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        junk in prop::collection::vec((garbage(), any::<prop::sample::Index>()), 0..8),
    ) {
        let ctx = ctx();
        let mut ids = 0u128;
        let envelopes: Vec<Envelope> = WARDS.iter().zip(&histories).flat_map(|(w, ops)| history(w, ops, &mut ids)).collect();
        let in_order: Vec<Message> = envelopes.iter().map(|e| (subject::event_subject(e), e.encode())).collect();

        // Given the valid events delivered once, in order,
        let mut expected = MemKv::default();
        deliver(&mut expected, &ctx, &in_order)?;
        let parked_in_order = parked(&expected);
        // (whose case counts are exactly those of the cases it holds),
        prop_assert_eq!(stored_counts(&expected), counts_of_cases(&expected));

        // when they arrive shuffled, some twice, with garbage among them,
        let mut schedule = in_order.clone();
        shuffle(&mut schedule, order);
        for d in &duplicates {
            let m = in_order[d.index(in_order.len())].clone();
            let at = d.index(schedule.len() + 1);
            schedule.insert(at, m);
        }
        for (g, at) in &junk {
            let m = garbage_message(g, &envelopes);
            schedule.insert(at.index(schedule.len() + 1), m);
        }
        let mut got = MemKv::default();
        deliver(&mut got, &ctx, &schedule)?;

        // then the town shows exactly the same, holds nothing back,
        prop_assert_eq!(projection(&got), projection(&expected));
        for ward in WARDS {
            prop_assert!(got.scan_prefix(&keys::held_prefix(ward)).is_empty(), "ward {} still holds events", ward);
        }
        // and parked exactly the garbage (and whatever the rules refused in order too).
        prop_assert_eq!(parked(&got), parked_in_order + junk.len());
    }
}

/// A deterministic shuffle (Fisher–Yates with a SplitMix64 stream), so
/// proptest can shrink `seed` like any number.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    let mut next = || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The regression the fuzzing above found, kept as a plain test: two wards
/// reporting the largest figures their validation lets through overflowed
/// the town's sum (`Fraction::add`), a panic in the projection.
#[test]
fn the_largest_figures_two_wards_may_report_do_not_crash_the_town() {
    let ctx = ctx();
    let mut kv = MemKv::default();
    let mut ids = 0u128;
    let huge = Op::Observe { code: 0, year: 1, numerator: u64::MAX - 1, denominator: u64::MAX };
    let messages: Vec<Message> = ["25320", "25324"]
        .iter()
        .flat_map(|w| history(w, std::slice::from_ref(&huge), &mut ids))
        .map(|e| (subject::event_subject(&e), e.encode()))
        .collect();
    deliver(&mut kv, &ctx, &messages).unwrap();
    let figures = indicators::figures(&kv, &Catalogue::shipped(), &all_wards(), 2025);
    assert_eq!(figures.town["4a"].denominator, u64::MAX, "saturated, not wrapped");
}
