//! Fuzzing the province's input (proptest): whatever arrives on the
//! projections stream — any subject, any bytes, any JSON, any snapshot
//! including absurd numbers and arbitrary "suppressed" parts — the intake
//! answers "use it" or "refuse it with a reason" without panicking, and the
//! roll-up and its API types handle every snapshot it accepts.
//!
//! A failing input is shrunk and recorded in `proptest-regressions/`.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use treem_proto::catalogue::Catalogue;
use treem_proto::hierarchy::Hierarchy;
use treem_proto::judge::Fraction;
use treem_proto::projection::{Suppressed, TownSnapshot};
use treem_province::{intake, rollup};

fn code() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(vec!["1", "4a", "6", "9", "13", "11a", "21"]).prop_map(str::to_string), "[0-9a-z]{0,4}"]
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..10, 0u64..100_000, u64::MAX - 2..=u64::MAX]
}

fn fraction() -> impl Strategy<Value = Fraction> {
    (number(), number()).prop_map(|(numerator, denominator)| Fraction { numerator, denominator })
}

fn snapshot() -> impl Strategy<Value = TownSnapshot> {
    let figures = || prop::collection::btree_map(code(), fraction(), 0..6);
    let wards =
        prop::collection::btree_map(prop::sample::select(vec!["25320", "25324", "99999"]).prop_map(str::to_string), figures(), 0..3);
    let categories = prop::sample::select(vec!["abuse", "injury", "child_marriage", "new_category"]).prop_map(str::to_string);
    let suppressed = (
        number(),
        prop::collection::btree_map(code(), prop::option::of(number()), 0..3),
        prop::collection::btree_set(categories.clone(), 0..3),
    )
        .prop_map(|(below, indicators, cases)| Suppressed { below, indicators, wards: BTreeMap::new(), cases });
    (
        prop::sample::select(vec!["690", "691"]),
        2019u16..2033,
        any::<u64>(),
        figures(),
        wards,
        prop::collection::btree_map(categories, number(), 0..4),
        suppressed,
    )
        .prop_map(|(town, year, version, indicators, wards, cases_counted, suppressed)| TownSnapshot {
            province: "70".into(),
            town: town.into(),
            year,
            version,
            produced_at: chrono::Utc::now(),
            wards_total: 6,
            indicators,
            wards,
            cases_counted,
            suppressed,
        })
}

/// Cases per property: `default`, or `PROPTEST_CASES` for a longer run
/// (e.g. `PROPTEST_CASES=20000`).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_are_used_or_refused_never_a_panic(
        subject in prop_oneof![Just("treem.v1.projections.70.690.indicators".to_string()), "[a-z0-9.]{0,50}", "\\PC{0,30}"],
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..500),
            snapshot().prop_map(|s| serde_json::to_vec(&s).unwrap()),
        ],
    ) {
        let hierarchy = Hierarchy::shipped();
        match intake::examine("70", &hierarchy, &subject, &payload) {
            Ok(snap) => {
                prop_assert_eq!(&snap.province, "70");
                let tail = format!(".{}.indicators", snap.town);
                prop_assert!(subject.ends_with(&tail), "{} does not name town {}", subject, snap.town);
            }
            Err(refusal) => prop_assert!(!refusal.to_string().is_empty()),
        }
    }

    #[test]
    fn every_accepted_snapshot_rolls_up_without_a_panic(snaps in prop::collection::vec(snapshot(), 0..5)) {
        let catalogue = Catalogue::shipped();
        for year in [2021u16, 2025, 2030] {
            let shown = rollup::province_progress(&catalogue, year, &snaps, None);
            prop_assert_eq!(shown.len(), catalogue.indicators.len());
            for s in &shown {
                // Suppressed means no number, never zero.
                if s.suppressed {
                    prop_assert!(s.numerator.is_none() && s.value.is_none());
                }
                let json = serde_json::to_value(s).unwrap();
                prop_assert!(json.get("suppressed").is_some());
            }
            let cases = rollup::sum_cases(year, &snaps);
            let withheld: BTreeSet<&String> = snaps.iter().filter(|s| s.year == year).flat_map(|s| &s.suppressed.cases).collect();
            for (category, n) in &cases {
                prop_assert_eq!(n.is_none(), withheld.contains(category));
            }
            for snap in &snaps {
                rollup::town_progress(&catalogue, year, Some(snap), None);
            }
        }
    }
}
