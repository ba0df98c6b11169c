//! The fold as given-events → expected state, without NATS or sled: the
//! in-memory `MemKv` is the model.

use std::collections::BTreeMap;

use treem_proto::catalogue::Catalogue;
use treem_proto::event::*;
use treem_proto::hierarchy::Hierarchy;
use treem_proto::judge::Fraction;
use treem_proto::subject::{self, WardPath};
use treem_town::fold::{self, Ctx, Dirty, Outcome, WardInfo};
use treem_town::kv::MemKv;
use treem_town::projection::{cases, indicators};
use uuid::Uuid;

/// Unsigned events from wards without keys, accepted (`require_signatures =
/// false`): these tests are about the other rules; provenance has its own
/// (`tests/provenance.rs`).
fn ctx() -> Ctx {
    Ctx {
        province: "70".into(),
        town: "690".into(),
        hierarchy: Hierarchy::shipped(),
        catalogue: Catalogue::shipped(),
        provenance: treem_town::provenance::WardKeys::not_required(),
    }
}

fn wards() -> Vec<String> {
    ["25320", "25324", "25325", "25326", "25333", "25336"].map(String::from).to_vec()
}

fn env(ward: &str, seq: u64, event: Event) -> Envelope {
    Envelope::new(&WardPath::new("70", "690", ward), seq, "test", event)
}

fn apply(kv: &mut MemKv, e: &Envelope) -> Outcome {
    let mut dirty = Dirty::new();
    fold::apply(kv, &ctx(), &subject::event_subject(e), &e.encode(), &mut dirty)
}

fn observed(code: &str, year: u16, n: u64, d: u64) -> Event {
    Event::IndicatorObserved(IndicatorObserved {
        indicator: code.into(),
        year,
        numerator: n,
        denominator: Some(d),
        source: "health_centre".into(),
    })
}

fn population(year: u16, under16: u64) -> Event {
    Event::PopulationReported(PopulationReported { year, figures: BTreeMap::from([(PopulationGroup::ChildrenUnder16, under16)]) })
}

fn open(case_id: Uuid, category: CaseCategory, year: u16) -> Event {
    Event::CaseOpened(CaseOpened {
        case_id,
        year,
        category,
        groups: if category == CaseCategory::SpecialCircumstances { vec!['a'] } else { vec![] },
        sex: Sex::Female,
        age_band: AgeBand::From5To10,
    })
}

fn town_figure(kv: &MemKv, year: u16, code: &str) -> Option<Fraction> {
    indicators::figures(kv, &Catalogue::shipped(), &wards(), year).town.get(code).copied()
}

#[test]
fn duplicates_are_skipped_and_gaps_held_until_filled() {
    let mut kv = MemKv::default();
    let e1 = env("25320", 1, observed("4a", 2024, 7, 100));
    let e2 = env("25320", 2, observed("4a", 2024, 8, 100));
    let e3 = env("25320", 3, observed("4a", 2024, 9, 100));
    assert!(matches!(apply(&mut kv, &e1), Outcome::Applied { seq: 1, then_applied: 0, .. }));
    assert!(matches!(apply(&mut kv, &e1), Outcome::Duplicate { seq: 1, .. }));
    assert!(matches!(apply(&mut kv, &e3), Outcome::Held { seq: 3, expected: 2, .. }));
    // Held, not applied: the figure is still event 1's.
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 7, denominator: 100 }));
    assert!(matches!(apply(&mut kv, &e2), Outcome::Applied { seq: 2, then_applied: 1, .. }));
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 9, denominator: 100 }));
    assert!(matches!(apply(&mut kv, &e3), Outcome::Duplicate { seq: 3, .. }));
}

#[test]
fn any_order_of_delivery_gives_the_same_state() {
    let events: Vec<Envelope> = (1..=6).map(|s| env("25324", s, observed("2", 2023, 10 * s, 100))).collect();
    let mut in_order = MemKv::default();
    for e in &events {
        apply(&mut in_order, e);
    }
    let mut shuffled = MemKv::default();
    for i in [5, 2, 0, 0, 4, 1, 3, 5, 2] {
        apply(&mut shuffled, &events[i]);
    }
    assert_eq!(in_order, shuffled);
    assert_eq!(town_figure(&in_order, 2023, "2"), Some(Fraction { numerator: 60, denominator: 100 }));
}

#[test]
fn town_rate_sums_numerators_and_denominators() {
    let mut kv = MemKv::default();
    apply(&mut kv, &env("25320", 1, observed("4a", 2024, 7, 100)));
    apply(&mut kv, &env("25324", 1, observed("4a", 2024, 3, 50)));
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 10, denominator: 150 }));
    assert_eq!(town_figure(&kv, 2023, "4a"), None);
}

#[test]
fn cases_over_population_and_supported_share() {
    let mut kv = MemKv::default();
    apply(&mut kv, &env("25320", 1, population(2024, 2000)));
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    apply(&mut kv, &env("25320", 2, open(a, CaseCategory::SpecialCircumstances, 2024)));
    apply(&mut kv, &env("25320", 3, open(b, CaseCategory::SpecialCircumstances, 2024)));
    apply(&mut kv, &env("25320", 4, Event::CaseSupportRecorded(CaseSupportRecorded { case_id: a, year: 2024, support: "care".into() })));
    // 8a: 2 children in special circumstances of 2000 → 0.1 %.
    assert_eq!(town_figure(&kv, 2024, "8a"), Some(Fraction { numerator: 2, denominator: 2000 }));
    // 8b: 1 of the 2 supported.
    assert_eq!(town_figure(&kv, 2024, "8b"), Some(Fraction { numerator: 1, denominator: 2 }));
    // A state lasts: still counted in 2025 (no population for 2025 → no 8a value, 8b still computed).
    assert_eq!(town_figure(&kv, 2025, "8b"), Some(Fraction { numerator: 1, denominator: 2 }));
    apply(&mut kv, &env("25320", 5, Event::CaseClosed(CaseClosed { case_id: b, year: 2024, reason: "reunited".into() })));
    assert_eq!(town_figure(&kv, 2025, "8b"), Some(Fraction { numerator: 1, denominator: 1 }));
    let s = cases::summary(&kv, 2024, None);
    let sc = &s.categories["special_circumstances"];
    assert_eq!((sc.total, sc.supported), (2, 1));
    assert_eq!(sc.by_status.get("closed"), Some(&1));
    assert_eq!(sc.by_sex.get("female"), Some(&2));
}

#[test]
fn corrections_and_retractions_replace_exactly_the_named_event() {
    let mut kv = MemKv::default();
    let first = env("25320", 1, observed("5a", 2024, 90, 100));
    apply(&mut kv, &first);
    let fix = env(
        "25320",
        2,
        Event::EventCorrected(EventCorrected {
            replaces: first.id,
            corrected: Box::new(observed("5a", 2024, 95, 100)),
            reason: "typo".into(),
        }),
    );
    apply(&mut kv, &fix);
    assert_eq!(town_figure(&kv, 2024, "5a"), Some(Fraction { numerator: 95, denominator: 100 }));
    let retract = env("25320", 3, Event::EventRetracted(EventRetracted { replaces: first.id, reason: "wrong ward".into() }));
    apply(&mut kv, &retract);
    assert_eq!(town_figure(&kv, 2024, "5a"), None);
    // Retracting again is refused, parked, and the ward moves on.
    let again = env("25320", 4, Event::EventRetracted(EventRetracted { replaces: first.id, reason: "again".into() }));
    assert!(matches!(apply(&mut kv, &again), Outcome::Parked { .. }));
    let next = env("25320", 5, observed("5a", 2024, 50, 100));
    assert!(matches!(apply(&mut kv, &next), Outcome::Applied { seq: 5, .. }));
}

#[test]
fn retracting_a_case_opening_removes_its_counts() {
    let mut kv = MemKv::default();
    apply(&mut kv, &env("25333", 1, population(2024, 1000)));
    let id = Uuid::new_v4();
    let opened = env("25333", 2, open(id, CaseCategory::Abuse, 2024));
    apply(&mut kv, &opened);
    assert_eq!(town_figure(&kv, 2024, "9"), Some(Fraction { numerator: 1, denominator: 1000 }));
    apply(&mut kv, &env("25333", 3, Event::EventRetracted(EventRetracted { replaces: opened.id, reason: "error".into() })));
    assert_eq!(town_figure(&kv, 2024, "9"), Some(Fraction { numerator: 0, denominator: 1000 }));
    assert_eq!(cases::summary(&kv, 2024, None).total, 0);
}

#[test]
fn wards_recognised_count_over_the_town() {
    let mut kv = MemKv::default();
    for (i, w) in wards().iter().take(5).enumerate() {
        let e = env(w, 1, Event::WardRecognised(WardRecognised { recognition: Recognition::ChildFriendly, year: 2021, granted: true }));
        assert!(matches!(apply(&mut kv, &e), Outcome::Applied { .. }), "ward {i}");
    }
    // Held since 2021, so counted in 2024 too; the sixth ward never reported.
    assert_eq!(town_figure(&kv, 2024, "1"), Some(Fraction { numerator: 5, denominator: 6 }));
    let lost =
        env("25320", 2, Event::WardRecognised(WardRecognised { recognition: Recognition::ChildFriendly, year: 2023, granted: false }));
    apply(&mut kv, &lost);
    assert_eq!(town_figure(&kv, 2022, "1"), Some(Fraction { numerator: 5, denominator: 6 }));
    assert_eq!(town_figure(&kv, 2024, "1"), Some(Fraction { numerator: 4, denominator: 6 }));
}

#[test]
fn bad_messages_are_parked_and_change_nothing_else() {
    let mut kv = MemKv::default();
    let good = env("25320", 1, observed("4a", 2024, 7, 100));
    apply(&mut kv, &good);
    let before = kv.clone();
    let mut dirty = Dirty::new();
    let c = ctx();
    // Not JSON.
    let o = fold::apply(&mut kv, &c, "treem.v1.events.70.690.25320.indicator.observed", b"{not json", &mut dirty);
    assert!(matches!(&o, Outcome::Parked { reason } if reason.contains("not valid JSON")), "{o:?}");
    // A ward publishing for another ward.
    let other = env("25324", 1, observed("4a", 2024, 1, 100));
    let o = fold::apply(&mut kv, &c, "treem.v1.events.70.690.25320.indicator.observed", &other.encode(), &mut dirty);
    assert!(matches!(&o, Outcome::Parked { reason } if reason.contains("only its own")), "{o:?}");
    // A ward not in the hierarchy.
    let stranger = env("99999", 1, observed("4a", 2024, 1, 100));
    let o = fold::apply(&mut kv, &c, &subject::event_subject(&stranger), &stranger.encode(), &mut dirty);
    assert!(matches!(&o, Outcome::Parked { reason } if reason.contains("99999")), "{o:?}");
    // A future schema version.
    let mut v: serde_json::Value = serde_json::from_slice(&env("25320", 2, observed("4a", 2024, 1, 100)).encode()).unwrap();
    v["schema"] = serde_json::json!(99);
    let o = fold::apply(&mut kv, &c, "treem.v1.events.70.690.25320.indicator.observed", &serde_json::to_vec(&v).unwrap(), &mut dirty);
    assert!(matches!(&o, Outcome::Parked { reason } if reason.contains("newer")), "{o:?}");
    // Only parked records were added; every figure is as before.
    let strip = |kv: &MemKv| -> MemKv {
        MemKv(
            kv.0.iter()
                .filter(|(k, _)| !k.starts_with(b"parked/") && !k.starts_with(b"meta/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    assert_eq!(strip(&kv), strip(&before));
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 7, denominator: 100 }));
}

#[test]
fn events_are_found_by_id_whatever_order_their_ids_came_in() {
    // Ids are v7 from the ward's clock: one set back gives an id below the
    // ward's last (kept on its own); rising ids fill the ward's blocks.
    let mut kv = MemKv::default();
    let mut ids = BTreeMap::new();
    for (seq, id) in [(1u64, 500u128), (2, 300), (3, 600), (4, 100)] {
        let mut e = env("25320", seq, observed("5a", 2020 + seq as u16, seq * 10, 100));
        e.id = Uuid::from_u128(id);
        assert!(matches!(apply(&mut kv, &e), Outcome::Applied { .. }), "seq {seq}");
        ids.insert(seq, e.id);
    }
    for seq in 5..=44u64 {
        let mut e = env("25320", seq, observed("4a", 2024, seq, 1000));
        e.id = Uuid::from_u128(1000 + u128::from(seq));
        assert!(matches!(apply(&mut kv, &e), Outcome::Applied { .. }), "seq {seq}");
        ids.insert(seq, e.id);
    }
    let mut seq = 44;
    let mut next = |event: Event| {
        seq += 1;
        env("25320", seq, event)
    };
    let correct =
        |id: Uuid, event: Event| Event::EventCorrected(EventCorrected { replaces: id, corrected: Box::new(event), reason: "typo".into() });
    for (s, year) in [(1u64, 2021u16), (2, 2022), (3, 2023), (4, 2024)] {
        let fix = next(correct(ids[&s], observed("5a", year, 77, 100)));
        assert!(matches!(apply(&mut kv, &fix), Outcome::Applied { .. }), "correcting seq {s}");
        assert_eq!(town_figure(&kv, year, "5a"), Some(Fraction { numerator: 77, denominator: 100 }), "seq {s}");
    }
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 44, denominator: 1000 }));
    let retract = next(Event::EventRetracted(EventRetracted { replaces: ids[&44], reason: "entered twice".into() }));
    assert!(matches!(apply(&mut kv, &retract), Outcome::Applied { .. }));
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 43, denominator: 1000 }));
    let fix = next(correct(ids[&43], observed("4a", 2024, 430, 1000)));
    assert!(matches!(apply(&mut kv, &fix), Outcome::Applied { .. }));
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 430, denominator: 1000 }));
    let fix = next(correct(ids[&10], observed("4a", 2024, 1, 1000)));
    assert!(matches!(apply(&mut kv, &fix), Outcome::Applied { .. }), "an event deep in a block");
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 430, denominator: 1000 }), "an older figure");
    let again = next(Event::EventRetracted(EventRetracted { replaces: ids[&44], reason: "again".into() }));
    assert!(matches!(apply(&mut kv, &again), Outcome::Parked { reason } if reason.contains("already retracted")));
    // Another ward cannot name these events.
    let other = env("25324", 1, correct(ids[&43], observed("4a", 2024, 999, 1000)));
    assert!(matches!(apply(&mut kv, &other), Outcome::Parked { reason } if reason.contains("only its own")));
    let other = env("25324", 2, correct(ids[&2], observed("5a", 2022, 999, 1000)));
    assert!(matches!(apply(&mut kv, &other), Outcome::Parked { reason } if reason.contains("only its own")));
    assert_eq!(town_figure(&kv, 2024, "4a"), Some(Fraction { numerator: 430, denominator: 1000 }));
    assert_eq!(town_figure(&kv, 2022, "5a"), Some(Fraction { numerator: 77, denominator: 100 }));
}

#[test]
fn a_store_written_before_wards_counted_their_held_events_still_releases_them() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx();
    let [e1, e2, e3] = [1, 2, 3].map(|seq| env("25320", seq, observed("4a", 2024, seq, 100)));
    let input = |e: &Envelope, n: u64| (subject::event_subject(e), e.encode(), n);
    let info_key = b"wi/25320";
    {
        let store = treem_town::store::TownStore::open(dir.path()).unwrap();
        let outcomes = store.apply_batch(&c, &[input(&e1, 1), input(&e3, 2)]).unwrap();
        assert!(matches!(outcomes[1], Outcome::Held { seq: 3, .. }), "{outcomes:?}");
        // As a store written before the count: the ward's record, as JSON
        // (as stores before kept it), without the count.
        let info = WardInfo::decode(&store.tree.get(info_key).unwrap().unwrap()).unwrap();
        assert_eq!(info.held, 1);
        let mut info = serde_json::to_value(&info).unwrap();
        info.as_object_mut().unwrap().remove("held");
        store.tree.insert(info_key, serde_json::to_vec(&info).unwrap()).unwrap();
        store.sync().unwrap();
    }
    let store = treem_town::store::TownStore::open(dir.path()).unwrap();
    let info = WardInfo::decode(&store.tree.get(info_key).unwrap().unwrap()).unwrap();
    assert_eq!(info.held, 1, "recounted when opened");
    let outcomes = store.apply_batch(&c, &[input(&e2, 3)]).unwrap();
    assert!(matches!(outcomes[0], Outcome::Applied { seq: 2, then_applied: 1, .. }), "{outcomes:?}");
    assert_eq!(store.tree.get(b"pos/25320").unwrap().as_deref(), Some(&3u64.to_be_bytes()[..]));
    assert!(store.tree.scan_prefix(b"held/").next().is_none());
    let info = WardInfo::decode(&store.tree.get(info_key).unwrap().unwrap()).unwrap();
    assert_eq!(info.held, 0);
}

/// Stores written before keep cases and the wards' sync facts as JSON
/// (`treem_town::records`): the fold reads them and carries on exactly as
/// over its own binary records, rewriting each in the binary form when it
/// changes.
#[test]
fn cases_and_sync_facts_stored_as_json_by_earlier_versions_still_apply() {
    use treem_town::kv::{Kv as _, KvScan as _};
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let first = [
        env("25320", 1, population(2024, 2000)),
        env("25320", 2, open(a, CaseCategory::SpecialCircumstances, 2023)),
        env("25320", 3, open(b, CaseCategory::Abuse, 2024)),
    ];
    let then = [
        env("25320", 4, Event::CaseSupportRecorded(CaseSupportRecorded { case_id: a, year: 2024, support: "care".into() })),
        env("25320", 5, Event::CaseClosed(CaseClosed { case_id: a, year: 2025, reason: "reunited".into() })),
        env("25320", 6, Event::CaseSupportRecorded(CaseSupportRecorded { case_id: b, year: 2024, support: "care".into() })),
        env("25320", 7, Event::EventRetracted(EventRetracted { replaces: first[2].id, reason: "entered twice".into() })),
    ];
    let mut binary = MemKv::default();
    let mut json = MemKv::default();
    for e in &first {
        apply(&mut binary, e);
        apply(&mut json, e);
    }
    // What an earlier version wrote: the same records as JSON.
    let mut rewritten = 0;
    for prefix in [&b"case/"[..], &b"wi/"[..]] {
        for (key, value) in json.scan_prefix(prefix) {
            let as_json = if prefix == b"case/" {
                serde_json::to_vec(&fold::CaseState::decode(&value).unwrap()).unwrap()
            } else {
                serde_json::to_vec(&WardInfo::decode(&value).unwrap()).unwrap()
            };
            json.put(key, as_json);
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, 3, "two cases and one ward's sync facts");
    for e in &then {
        assert!(matches!(apply(&mut binary, e), Outcome::Applied { .. }));
        assert!(matches!(apply(&mut json, e), Outcome::Applied { .. }));
    }
    assert_eq!(json.scan_prefix(b""), binary.scan_prefix(b""), "the same store, byte for byte, once every record changed");
    for year in [2023, 2024, 2025] {
        assert_eq!(cases::summary(&json, year, None), cases::summary(&binary, year, None));
    }
    assert_eq!(town_figure(&json, 2024, "8b"), Some(Fraction { numerator: 1, denominator: 1 }));
}
