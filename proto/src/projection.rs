//! What a town forwards to its province: per year, the numerator and
//! denominator of every indicator for the town and each ward, and case counts
//! by category. Never a bare percentage (invariant 4), never anything
//! case-level (invariant 5).
//!
//! # Small sensitive counts are withheld (DESIGN.md §9)
//!
//! A figure such as "2 abused children in Phú Thịnh in 2025" can single a
//! child out in a small ward. So the town withholds, from what it forwards,
//! every **sensitive** count from 1 to `suppress_below − 1` (town config,
//! default [`DEFAULT_SUPPRESS_BELOW`] = 5), with [`suppress_small_counts`].
//! A withheld figure is *removed* from `indicators` / `wards` /
//! `cases_counted` and *named* in [`TownSnapshot::suppressed`], so a reader
//! shows it as "suppressed", never as zero — and a province of an older
//! version, which does not know the field, sees the figure missing ("no
//! data"), not zero. Zero itself is shown: it singles no child out.
//!
//! What is sensitive is listed here and only here:
//!
//! - case categories [`SENSITIVE_CATEGORIES`]: abuse (trẻ em bị xâm hại,
//!   which in this model includes sexual abuse, exploitation and
//!   trafficking — the law's categories have no separate "trafficking"
//!   one) and child marriage (tảo hôn);
//! - every indicator computed from those categories (from the catalogue's
//!   method: 9 abused children, 13 child marriages) — their numerators;
//! - observed indicators in [`SENSITIVE_OBSERVED`]: 6, mother-to-child HIV
//!   transmission — numerator (infected infants) **and** denominator
//!   (infants born to mothers living with HIV), both small health counts.
//!
//! Secondary suppression, so a withheld count cannot be worked out from the
//! figures that are shown:
//!
//! - ward figures of one indicator are all withheld as soon as one is (with
//!   the town total shown, one hidden ward = total − the others);
//! - a category's town case count is withheld when the indicator counting
//!   the same cases is shown and the two differ by a withheld-size amount
//!   (the difference is the cases of the wards with no population figure).
//!
//! The province never gets the withheld numbers, so its roll-up cannot add
//! them: a province total to which any town contributed a withheld figure
//! is itself shown as suppressed (see the province's `rollup.rs`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalogue::{Catalogue, Indicator, Method};
use crate::event::CaseCategory;
use crate::judge::Fraction;

/// Counts from 1 to this − 1 of a sensitive figure are withheld unless a
/// town configures otherwise (`suppress_below`).
pub const DEFAULT_SUPPRESS_BELOW: u64 = 5;

/// Case categories whose small counts are withheld above the town.
pub const SENSITIVE_CATEGORIES: [CaseCategory; 2] = [CaseCategory::Abuse, CaseCategory::ChildMarriage];

/// Observed indicators that are small sensitive counts, numerator and
/// denominator alike: 6 (mother-to-child transmission of HIV).
pub const SENSITIVE_OBSERVED: [&str; 1] = ["6"];

/// Which parts of an indicator's figure are sensitive counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// The numerator counts children of a sensitive category; the
    /// denominator (a population, marriages registered) is not sensitive.
    Numerator,
    /// Both are sensitive counts (indicator 6, or cases supported over cases).
    Both,
}

/// Whether (and how) `indicator` is sensitive; `None` for the others.
pub fn sensitivity(indicator: &Indicator) -> Option<Sensitivity> {
    let sensitive = |c: CaseCategory| SENSITIVE_CATEGORIES.contains(&c);
    match indicator.method {
        Method::CasesOverPopulation { category, .. } if sensitive(category) => Some(Sensitivity::Numerator),
        Method::SupportedCases { category } if sensitive(category) => Some(Sensitivity::Both),
        Method::Observed if SENSITIVE_OBSERVED.contains(&indicator.code.as_str()) => Some(Sensitivity::Both),
        _ => None,
    }
}

/// Whether the case count of category `name` is sensitive.
pub fn is_sensitive_category(name: &str) -> bool {
    SENSITIVE_CATEGORIES.iter().any(|c| c.name() == name)
}

/// One town's figures for one year. A newer `version` from the same town and
/// year replaces an older one whole, so re-delivery and re-ordering are
/// harmless.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TownSnapshot {
    pub province: String,
    pub town: String,
    pub year: u16,
    /// Monotonic per town (the town outbox sequence).
    pub version: u64,
    pub produced_at: DateTime<Utc>,
    /// Wards of the town in the hierarchy.
    pub wards_total: u32,
    /// Indicator code → town figure (sum over its wards).
    pub indicators: BTreeMap<String, Fraction>,
    /// Ward code → indicator code → figure.
    pub wards: BTreeMap<String, BTreeMap<String, Fraction>>,
    /// Case category → cases counted in the year: incidents (abuse, injury,
    /// marriage, disaster) in the year they happened, states (special
    /// circumstances, child labour) in every year the case is open.
    pub cases_counted: BTreeMap<String, u64>,
    /// The figures the town withheld (small sensitive counts). Absent in
    /// snapshots of towns older than this field: `below` is then 0.
    #[serde(default)]
    pub suppressed: Suppressed,
}

/// The figures a town withheld from a snapshot, and the rule it applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// Sensitive counts from 1 to `below − 1` were withheld; 0 or 1: none
    /// (0 also means "a town that did not apply the rule").
    pub below: u64,
    /// Indicator code → the denominator of the withheld town figure, when
    /// the denominator is not itself sensitive (`null` when it is).
    #[serde(default)]
    pub indicators: BTreeMap<String, Option<u64>>,
    /// Ward code → indicator code → denominator, as for `indicators`.
    #[serde(default)]
    pub wards: BTreeMap<String, BTreeMap<String, Option<u64>>>,
    /// Case categories whose town count was withheld.
    #[serde(default)]
    pub cases: BTreeSet<String>,
}

impl Suppressed {
    /// Nothing was withheld.
    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty() && self.wards.is_empty() && self.cases.is_empty()
    }
}

impl TownSnapshot {
    pub fn msg_id(&self) -> String {
        format!("{}-{}-{}-{}", self.province, self.town, self.year, self.version)
    }
}

/// A count that must be withheld: 1 ≤ n < below.
fn small(n: u64, below: u64) -> bool {
    n >= 1 && n < below
}

fn is_small(f: &Fraction, s: Sensitivity, below: u64) -> bool {
    small(f.numerator, below) || (s == Sensitivity::Both && small(f.denominator, below))
}

/// The denominator a withheld figure may still show.
fn shown_denominator(f: &Fraction, s: Sensitivity) -> Option<u64> {
    (s == Sensitivity::Numerator).then_some(f.denominator)
}

/// Withholds the small sensitive counts of `snap` (see the module docs):
/// removes them from the figures and names them in `snap.suppressed`.
/// Idempotent; `below` ≤ 1 withholds nothing but is still recorded.
pub fn suppress_small_counts(snap: &mut TownSnapshot, catalogue: &Catalogue, below: u64) {
    snap.suppressed.below = snap.suppressed.below.max(below);
    let below = snap.suppressed.below;
    if below <= 1 {
        return;
    }
    for ind in &catalogue.indicators {
        let Some(s) = sensitivity(ind) else { continue };
        let code = &ind.code;
        // Ward figures: all or none.
        let any_small = snap.wards.values().any(|m| m.get(code).is_some_and(|f| is_small(f, s, below)))
            || snap.suppressed.wards.values().any(|m| m.contains_key(code));
        if any_small {
            for (ward, figures) in &mut snap.wards {
                if let Some(f) = figures.remove(code) {
                    snap.suppressed.wards.entry(ward.clone()).or_default().insert(code.clone(), shown_denominator(&f, s));
                }
            }
            snap.wards.retain(|_, m| !m.is_empty());
        }
        // The town figure.
        if let Some(f) = snap.indicators.get(code).copied().filter(|f| is_small(f, s, below)) {
            snap.indicators.remove(code);
            snap.suppressed.indicators.insert(code.clone(), shown_denominator(&f, s));
        }
    }
    for category in SENSITIVE_CATEGORIES {
        let name = category.name();
        let Some(&n) = snap.cases_counted.get(name) else { continue };
        // The indicators counting the same cases, as shown.
        let differs_by_a_small_count = catalogue.indicators.iter().any(|ind| {
            matches!(ind.method, Method::CasesOverPopulation { category: c, .. } if c == category)
                && snap.indicators.get(&ind.code).is_some_and(|f| small(n.saturating_sub(f.numerator), below))
        });
        if small(n, below) || differs_by_a_small_count {
            snap.cases_counted.remove(name);
            snap.suppressed.cases.insert(name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(numerator: u64, denominator: u64) -> Fraction {
        Fraction { numerator, denominator }
    }

    fn snap() -> TownSnapshot {
        TownSnapshot {
            province: "70".into(),
            town: "690".into(),
            year: 2025,
            version: 1,
            produced_at: Utc::now(),
            wards_total: 6,
            indicators: BTreeMap::new(),
            wards: BTreeMap::new(),
            cases_counted: BTreeMap::new(),
            suppressed: Suppressed::default(),
        }
    }

    #[test]
    fn the_sensitive_list_is_9_13_and_6() {
        let c = Catalogue::shipped();
        let sensitive: Vec<(&str, Sensitivity)> =
            c.indicators.iter().filter_map(|i| sensitivity(i).map(|s| (i.code.as_str(), s))).collect();
        assert_eq!(sensitive, [("6", Sensitivity::Both), ("9", Sensitivity::Numerator), ("13", Sensitivity::Numerator)]);
        assert!(is_sensitive_category("abuse") && is_sensitive_category("child_marriage") && !is_sensitive_category("injury"));
    }

    #[test]
    fn small_sensitive_counts_are_withheld_not_zeroed() {
        let c = Catalogue::shipped();
        let mut s = snap();
        // Abuse: 3 cases at 25320 (population 3000), none at 25324; town 3/5000.
        s.wards.insert("25320".into(), BTreeMap::from([("9".into(), f(3, 3000)), ("4a".into(), f(2, 100))]));
        s.wards.insert("25324".into(), BTreeMap::from([("9".into(), f(0, 2000))]));
        s.indicators.insert("9".into(), f(3, 5000));
        s.indicators.insert("4a".into(), f(2, 100)); // not sensitive: shown whatever its size
        s.indicators.insert("13".into(), f(0, 40)); // zero: shown
        s.indicators.insert("6".into(), f(0, 3)); // 3 mothers living with HIV: withheld, denominator too
        s.cases_counted = BTreeMap::from([("abuse".into(), 3), ("injury".into(), 1), ("child_marriage".into(), 0)]);
        suppress_small_counts(&mut s, &c, 5);

        assert_eq!(s.suppressed.below, 5);
        assert!(!s.indicators.contains_key("9") && !s.indicators.contains_key("6"));
        assert_eq!(s.suppressed.indicators, BTreeMap::from([("6".into(), None), ("9".into(), Some(5000))]));
        assert_eq!(s.indicators["4a"], f(2, 100));
        assert_eq!(s.indicators["13"], f(0, 40));
        // Both wards' figures of 9 go, the zero too: else 3 = 3 − 0 is read off.
        assert_eq!(s.suppressed.wards["25320"]["9"], Some(3000));
        assert_eq!(s.suppressed.wards["25324"]["9"], Some(2000));
        assert_eq!(s.wards["25320"].keys().collect::<Vec<_>>(), ["4a"]);
        assert!(!s.wards.contains_key("25324"), "a ward left with no figure is dropped");
        assert_eq!(s.suppressed.cases, BTreeSet::from(["abuse".to_string()]));
        assert_eq!(s.cases_counted, BTreeMap::from([("injury".into(), 1), ("child_marriage".into(), 0)]));

        // Idempotent.
        let again = s.clone();
        suppress_small_counts(&mut s, &c, 5);
        assert_eq!(s, again);
    }

    #[test]
    fn large_counts_stay_and_differences_do_not_give_a_small_count_away() {
        let c = Catalogue::shipped();
        let mut s = snap();
        // 12 abuse cases, 9 of them in wards with a population figure: the
        // indicator shows 9, so showing 12 would reveal 3 elsewhere.
        s.indicators.insert("9".into(), f(9, 5000));
        s.wards.insert("25320".into(), BTreeMap::from([("9".into(), f(9, 5000))]));
        s.cases_counted = BTreeMap::from([("abuse".into(), 12), ("child_marriage".into(), 7)]);
        suppress_small_counts(&mut s, &c, 5);
        assert_eq!(s.indicators["9"], f(9, 5000));
        assert_eq!(s.wards["25320"]["9"], f(9, 5000));
        assert_eq!(s.cases_counted, BTreeMap::from([("child_marriage".into(), 7)]));
        assert_eq!(s.suppressed.cases, BTreeSet::from(["abuse".to_string()]));
    }

    #[test]
    fn below_one_withholds_nothing_and_old_snapshots_still_decode() {
        let c = Catalogue::shipped();
        let mut s = snap();
        s.indicators.insert("9".into(), f(1, 100));
        suppress_small_counts(&mut s, &c, 1);
        assert_eq!(s.indicators["9"], f(1, 100));
        assert!(s.suppressed.is_empty());

        // A snapshot of a town that predates the field.
        let mut old = serde_json::to_value(snap()).unwrap();
        old.as_object_mut().unwrap().remove("suppressed");
        let decoded: TownSnapshot = serde_json::from_value(old).unwrap();
        assert_eq!(decoded.suppressed, Suppressed::default());
    }
}
