//! The province roll-up (tổng hợp toàn tỉnh): pure functions from stored town
//! snapshots to figures and judgements. No IO.
//!
//! Invariant 4 (aggregates compose) is kept here: the province figure of an
//! indicator is the sum of the towns' numerators over the sum of their
//! denominators ([`Fraction::add`]), never an average of percentages. For
//! ward-count indicators (unit `wards`, indicators 1 and 21) the same sum
//! adds the wards holding the status (numerator) and the wards counted
//! (denominator); the value shown is the number of wards.
//!
//! An indicator no town reported for the year has no figure (`None`), and is
//! judged "no data" — not zero.
//!
//! # Suppressed figures
//!
//! A town withholds its small sensitive counts (abuse, child marriage, HIV;
//! `treem_proto::projection`) and names them in its snapshot's
//! `suppressed`. The province never has those numbers, so it cannot add
//! them, and it does not pretend to: a province figure to which any town
//! contributed a withheld figure is itself [`Figure::Suppressed`] — shown
//! with `"suppressed": true`, a null numerator and value, never zero, and
//! the towns that withheld it. Summing only the other towns would show a
//! number that is wrong (too low) with nothing but a flag to say so; the
//! roll-up stays exact by showing no number rather than an inexact one.
//! The denominator is still shown when every town's is known (a population
//! is not sensitive; indicator 6's is, and towns withhold it).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use treem_proto::catalogue::{Catalogue, Indicator};
use treem_proto::event::CaseCategory;
use treem_proto::judge::{self, Fraction, IndicatorProgress, Status};
use treem_proto::projection::TownSnapshot;

/// One indicator's figure for a scope, as the province may show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figure {
    /// The exact sum over the towns that reported it.
    Shown(Fraction),
    /// At least one town withheld its figure (a small sensitive count).
    Suppressed {
        /// The sum of the denominators, when every town's is known.
        denominator: Option<u64>,
        /// Towns that withheld their figure.
        towns: BTreeSet<String>,
        /// The largest threshold those towns applied.
        below: u64,
    },
}

/// What the API shows of one indicator: the judged progress, and whether
/// the figure was withheld.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    #[serde(flatten)]
    pub progress: IndicatorProgress,
    /// The figure is a small sensitive count some town withheld: numerator
    /// and value are `null` (not zero), and the status is `no_data`.
    #[serde(default)]
    pub suppressed: bool,
    /// The towns that withheld it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub suppressed_by: BTreeSet<String>,
}

impl Deref for Shown {
    type Target = IndicatorProgress;
    fn deref(&self) -> &IndicatorProgress {
        &self.progress
    }
}

/// Sum over towns of every indicator any of `snaps` reports for `year`;
/// suppressed where any town withheld it.
pub fn sum_indicators<'a>(year: u16, snaps: impl IntoIterator<Item = &'a TownSnapshot>) -> BTreeMap<String, Figure> {
    let mut total: BTreeMap<String, Figure> = BTreeMap::new();
    for s in snaps.into_iter().filter(|s| s.year == year) {
        for (code, f) in &s.indicators {
            let entry = total.entry(code.clone()).or_insert(Figure::Shown(Fraction::default()));
            match entry {
                Figure::Shown(sum) => *sum = sum.add(*f),
                Figure::Suppressed { denominator, .. } => *denominator = denominator.map(|d| d.saturating_add(f.denominator)),
            }
        }
        for (code, withheld) in &s.suppressed.indicators {
            let entry = total.entry(code.clone()).or_insert(Figure::Shown(Fraction::default()));
            let (denominator, mut towns, below) = match std::mem::replace(entry, Figure::Shown(Fraction::default())) {
                Figure::Shown(sum) => (Some(sum.denominator), BTreeSet::new(), 0),
                Figure::Suppressed { denominator, towns, below } => (denominator, towns, below),
            };
            towns.insert(s.town.clone());
            *entry = Figure::Suppressed {
                denominator: denominator.zip(*withheld).map(|(a, b)| a.saturating_add(b)),
                towns,
                below: below.max(s.suppressed.below),
            };
        }
    }
    total
}

/// Cases opened in `year` per category, summed over towns; `None` where a
/// town withheld the category's count. Every category of the law appears (0
/// when no town reported one); a category a town sent that this version
/// does not know is kept as sent.
pub fn sum_cases<'a>(year: u16, snaps: impl IntoIterator<Item = &'a TownSnapshot>) -> BTreeMap<String, Option<u64>> {
    let mut total: BTreeMap<String, Option<u64>> = CaseCategory::ALL.iter().map(|c| (c.name().to_string(), Some(0))).collect();
    for s in snaps.into_iter().filter(|s| s.year == year) {
        for (category, n) in &s.cases_counted {
            let entry = total.entry(category.clone()).or_insert(Some(0));
            *entry = entry.map(|t| t.saturating_add(*n));
        }
        for category in &s.suppressed.cases {
            total.insert(category.clone(), None);
        }
    }
    total
}

fn show(ind: &Indicator, year: u16, figure: Option<&Figure>) -> Shown {
    match figure {
        None => Shown { progress: judge::progress(ind, year, None), suppressed: false, suppressed_by: BTreeSet::new() },
        Some(Figure::Shown(f)) => {
            Shown { progress: judge::progress(ind, year, Some(*f)), suppressed: false, suppressed_by: BTreeSet::new() }
        }
        Some(Figure::Suppressed { denominator, towns, below }) => {
            let mut progress = judge::progress(ind, year, None);
            progress.numerator = None;
            progress.value = None;
            progress.denominator = *denominator;
            progress.status = Status::NoData;
            progress.judged_against = None;
            let list = towns.iter().cloned().collect::<Vec<_>>().join(", ");
            progress.reason = format!(
                "suppressed: a small sensitive count (1–{}) in town {list}, withheld above the town so that no child can be singled out; the town office holds the figure",
                below.saturating_sub(1).max(1)
            );
            Shown { progress, suppressed: true, suppressed_by: towns.clone() }
        }
    }
}

/// Judges every catalogue indicator (or only `code`) against its target of
/// `year`, given the figures of one scope.
pub fn judge_all(catalogue: &Catalogue, year: u16, figures: &BTreeMap<String, Figure>, code: Option<&str>) -> Vec<Shown> {
    catalogue.indicators.iter().filter(|i| code.is_none_or(|c| i.code == c)).map(|i| show(i, year, figures.get(&i.code))).collect()
}

/// The province view: every town's snapshot of `year` summed, then judged.
pub fn province_progress(catalogue: &Catalogue, year: u16, snaps: &[TownSnapshot], code: Option<&str>) -> Vec<Shown> {
    judge_all(catalogue, year, &sum_indicators(year, snaps), code)
}

/// One town's view: its own snapshot of `year` (if any), judged.
pub fn town_progress(catalogue: &Catalogue, year: u16, snap: Option<&TownSnapshot>, code: Option<&str>) -> Vec<Shown> {
    judge_all(catalogue, year, &sum_indicators(year, snap), code)
}

/// Towns that sent a snapshot for `year`.
pub fn towns_reporting<'a>(year: u16, snaps: impl IntoIterator<Item = &'a TownSnapshot>) -> BTreeSet<String> {
    snaps.into_iter().filter(|s| s.year == year).map(|s| s.town.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use treem_proto::judge::Status;

    const CATALOGUE: &str = include_str!("../testdata/catalogue.json");

    fn f(numerator: u64, denominator: u64) -> Fraction {
        Fraction { numerator, denominator }
    }

    fn snap(town: &str, year: u16, indicators: &[(&str, Fraction)], cases: &[(&str, u64)]) -> TownSnapshot {
        TownSnapshot {
            province: "70".into(),
            town: town.into(),
            year,
            version: 1,
            produced_at: Utc::now(),
            wards_total: 6,
            indicators: indicators.iter().map(|(c, f)| (c.to_string(), *f)).collect(),
            wards: BTreeMap::new(),
            cases_counted: cases.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            suppressed: Default::default(),
        }
    }

    #[test]
    fn rates_add_numerators_and_denominators_not_percentages() {
        // Given 690 with 7 of 100 children underweight and 691 with 3 of 50,
        let snaps = [snap("690", 2025, &[("4a", f(7, 100))], &[]), snap("691", 2025, &[("4a", f(3, 50))], &[])];
        // when the province rolls up,
        let c = Catalogue::parse(CATALOGUE).unwrap();
        let got = province_progress(&c, 2025, &snaps, Some("4a"));
        // then the figure is 10/150 = 6.67 %, not the mean of 7 % and 6 % (6.5 %).
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].numerator, got[0].denominator), (Some(10), Some(150)));
        assert!((got[0].value.unwrap() - 1000.0 / 150.0).abs() < 1e-9);
        assert_eq!(got[0].status, Status::Achieved, "{}", got[0].reason);
    }

    #[test]
    fn ward_counts_add_wards_recognised_and_wards_counted() {
        // 690: 2 of its 6 wards child-friendly; 691: 1 of its 2.
        let snaps = [snap("690", 2025, &[("1", f(2, 6))], &[]), snap("691", 2025, &[("1", f(1, 2))], &[])];
        let c = Catalogue::parse(CATALOGUE).unwrap();
        let got = province_progress(&c, 2025, &snaps, Some("1"));
        assert_eq!((got[0].numerator, got[0].denominator, got[0].value), (Some(3), Some(8), Some(3.0)));
        assert_eq!(got[0].status, Status::Achieved);
    }

    #[test]
    fn other_years_and_missing_indicators_do_not_count() {
        let snaps = [snap("690", 2024, &[("4a", f(50, 100))], &[]), snap("691", 2025, &[("1", f(1, 2))], &[])];
        let c = Catalogue::parse(CATALOGUE).unwrap();
        let got = province_progress(&c, 2025, &snaps, None);
        let four_a = got.iter().find(|p| p.code == "4a").unwrap();
        assert_eq!((four_a.numerator, four_a.value, four_a.status), (None, None, Status::NoData));
        assert_eq!(got.len(), 2);
        assert_eq!(towns_reporting(2025, &snaps).into_iter().collect::<Vec<_>>(), ["691"]);
    }

    #[test]
    fn a_town_view_is_its_own_snapshot() {
        let s = snap("691", 2025, &[("4a", f(3, 50))], &[]);
        let c = Catalogue::parse(CATALOGUE).unwrap();
        let got = town_progress(&c, 2025, Some(&s), Some("4a"));
        assert_eq!((got[0].numerator, got[0].denominator), (Some(3), Some(50)));
        assert!((got[0].value.unwrap() - 6.0).abs() < 1e-9);
        let none = town_progress(&c, 2025, None, Some("4a"));
        assert_eq!(none[0].status, Status::NoData);
    }

    #[test]
    fn cases_are_summed_by_category() {
        let snaps = [
            snap("690", 2025, &[], &[("abuse", 2), ("injury", 1)]),
            snap("691", 2025, &[], &[("abuse", 1), ("child_marriage", 4)]),
            snap("691", 2024, &[], &[("abuse", 100)]),
        ];
        let got = sum_cases(2025, &snaps);
        assert_eq!(got["abuse"], Some(3));
        assert_eq!(got["injury"], Some(1));
        assert_eq!(got["child_marriage"], Some(4));
        assert_eq!(got["child_labour"], Some(0));
        assert_eq!(got.len(), CaseCategory::ALL.len());
    }

    #[test]
    fn a_town_that_withheld_a_figure_makes_the_province_figure_suppressed_not_smaller() {
        // Given 690 that withheld its abuse figure (population 3000) and 691 with 7 of 2000,
        let mut withheld = snap("690", 2025, &[("4a", f(7, 100))], &[("injury", 2)]);
        withheld.suppressed.below = 5;
        withheld.suppressed.indicators.insert("9".into(), Some(3000));
        withheld.suppressed.cases.insert("abuse".into());
        let shown = snap("691", 2025, &[("9", f(7, 2000)), ("4a", f(3, 50))], &[("abuse", 7), ("injury", 1)]);
        let snaps = [withheld.clone(), shown];
        let c = Catalogue::shipped();
        // when the province rolls up,
        let got = province_progress(&c, 2025, &snaps, Some("9"));
        // then 9 is suppressed — no numerator, no value, never 7 — with the full denominator,
        assert!(got[0].suppressed, "{got:?}");
        assert_eq!((got[0].numerator, got[0].value, got[0].denominator), (None, None, Some(5000)));
        assert_eq!(got[0].status, Status::NoData);
        assert_eq!(got[0].suppressed_by.iter().collect::<Vec<_>>(), ["690"]);
        assert!(got[0].reason.contains("suppressed"), "{}", got[0].reason);
        let json = serde_json::to_value(&got[0]).unwrap();
        assert_eq!(
            (json["suppressed"].as_bool(), json["numerator"].is_null(), json["value"].is_null()),
            (Some(true), true, true),
            "{json}"
        );
        // and the rest still adds up exactly.
        let four_a = province_progress(&c, 2025, &snaps, Some("4a"));
        assert_eq!((four_a[0].numerator, four_a[0].denominator, four_a[0].suppressed), (Some(10), Some(150), false));
        // The cases: abuse is withheld for the province, injuries add up.
        let cases = sum_cases(2025, &snaps);
        assert_eq!((cases["abuse"], cases["injury"]), (None, Some(3)));
        // One town's own view shows its own withheld figure as suppressed.
        let town = town_progress(&c, 2025, Some(&withheld), Some("9"));
        assert!(town[0].suppressed && town[0].numerator.is_none());
    }

    #[test]
    fn a_withheld_denominator_leaves_the_province_denominator_unknown() {
        let mut a = snap("690", 2025, &[], &[]);
        a.suppressed.indicators.insert("6".into(), None);
        let b = snap("691", 2025, &[("6", f(0, 40))], &[]);
        let got = sum_indicators(2025, &[a, b]);
        assert!(matches!(&got["6"], Figure::Suppressed { denominator: None, .. }), "{got:?}");
    }
}
