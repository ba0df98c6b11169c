//! Small-count suppression (che số nhỏ) of what the town forwards: the
//! last step before a [`TownSnapshot`] leaves for the province.
//!
//! Privacy narrows level by level (DESIGN.md §9): the town office sees its
//! wards' pseudonymous cases and every figure; the province sees counts, and
//! not the small sensitive ones. Every sensitive count (abuse, child
//! marriage, HIV — the list and the rule live in
//! [`treem_proto::projection`], so the province reads them the same way)
//! from 1 to `suppress_below − 1` (config, default 5) is withheld from the
//! snapshot and named in its `suppressed` part, with the secondary
//! suppression that keeps it from being worked out by subtraction.
//!
//! The town's own API and store are not affected: only what crosses to the
//! province is. The rule runs on every snapshot, so it also holds for a
//! snapshot re-published after a restart or a rebuild.

use treem_proto::catalogue::Catalogue;
use treem_proto::projection::{TownSnapshot, suppress_small_counts};

/// Withholds the small sensitive counts of `snap` under the town's threshold.
pub fn apply(snap: &mut TownSnapshot, catalogue: &Catalogue, suppress_below: u64) {
    suppress_small_counts(snap, catalogue, suppress_below);
    let s = &snap.suppressed;
    if !s.is_empty() {
        // Codes and categories only: never the withheld numbers.
        tracing::debug!(
            year = snap.year,
            version = snap.version,
            below = s.below,
            indicators = ?s.indicators.keys().collect::<Vec<_>>(),
            ward_figures = s.wards.values().map(|m| m.len()).sum::<usize>(),
            cases = ?s.cases,
            "small sensitive counts withheld from the province"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use treem_proto::judge::Fraction;
    use treem_proto::projection::Suppressed;

    use super::*;

    #[test]
    fn what_leaves_the_town_has_no_small_sensitive_count() {
        // Given a town year with 2 abuse cases at one ward and 7 injuries,
        let mut snap = TownSnapshot {
            province: "70".into(),
            town: "690".into(),
            year: 2025,
            version: 3,
            produced_at: chrono::Utc::now(),
            wards_total: 6,
            indicators: BTreeMap::from([
                ("9".into(), Fraction { numerator: 2, denominator: 3000 }),
                ("11a".into(), Fraction { numerator: 7, denominator: 3000 }),
            ]),
            wards: BTreeMap::from([("25320".into(), BTreeMap::from([("9".into(), Fraction { numerator: 2, denominator: 3000 })]))]),
            cases_counted: BTreeMap::from([("abuse".into(), 2), ("injury".into(), 7)]),
            suppressed: Suppressed::default(),
        };
        // when it is prepared for the province with the default threshold,
        apply(&mut snap, &Catalogue::shipped(), 5);
        // then the abuse figures are named as withheld and absent, the rest stays.
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["indicators"].as_object().unwrap().keys().collect::<Vec<_>>(), ["11a"]);
        assert!(json["wards"].as_object().unwrap().is_empty());
        assert_eq!(json["cases_counted"], serde_json::json!({"injury": 7}));
        assert_eq!(json["suppressed"]["below"], 5);
        assert_eq!(json["suppressed"]["indicators"], serde_json::json!({"9": 3000}));
        assert_eq!(json["suppressed"]["cases"], serde_json::json!(["abuse"]));
    }
}
