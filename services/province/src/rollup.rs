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

use std::collections::{BTreeMap, BTreeSet};

use treem_proto::catalogue::Catalogue;
use treem_proto::event::CaseCategory;
use treem_proto::judge::{self, Fraction, IndicatorProgress};
use treem_proto::projection::TownSnapshot;

/// Sum over towns of every indicator any of `snaps` reports for `year`.
pub fn sum_indicators<'a>(year: u16, snaps: impl IntoIterator<Item = &'a TownSnapshot>) -> BTreeMap<String, Fraction> {
    let mut total: BTreeMap<String, Fraction> = BTreeMap::new();
    for s in snaps.into_iter().filter(|s| s.year == year) {
        for (code, f) in &s.indicators {
            let entry = total.entry(code.clone()).or_default();
            *entry = entry.add(*f);
        }
    }
    total
}

/// Cases opened in `year` per category, summed over towns. Every category of
/// the law appears (0 when no town reported one); a category a town sent that
/// this version does not know is kept as sent.
pub fn sum_cases<'a>(year: u16, snaps: impl IntoIterator<Item = &'a TownSnapshot>) -> BTreeMap<String, u64> {
    let mut total: BTreeMap<String, u64> = CaseCategory::ALL.iter().map(|c| (c.name().to_string(), 0)).collect();
    for s in snaps.into_iter().filter(|s| s.year == year) {
        for (category, n) in &s.cases_counted {
            *total.entry(category.clone()).or_insert(0) += n;
        }
    }
    total
}

/// Judges every catalogue indicator (or only `code`) against its target of
/// `year`, given the figures of one scope.
pub fn judge_all(catalogue: &Catalogue, year: u16, figures: &BTreeMap<String, Fraction>, code: Option<&str>) -> Vec<IndicatorProgress> {
    catalogue
        .indicators
        .iter()
        .filter(|i| code.is_none_or(|c| i.code == c))
        .map(|i| judge::progress(i, year, figures.get(&i.code).copied()))
        .collect()
}

/// The province view: every town's snapshot of `year` summed, then judged.
pub fn province_progress(catalogue: &Catalogue, year: u16, snaps: &[TownSnapshot], code: Option<&str>) -> Vec<IndicatorProgress> {
    judge_all(catalogue, year, &sum_indicators(year, snaps), code)
}

/// One town's view: its own snapshot of `year` (if any), judged.
pub fn town_progress(catalogue: &Catalogue, year: u16, snap: Option<&TownSnapshot>, code: Option<&str>) -> Vec<IndicatorProgress> {
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
        assert_eq!(got["abuse"], 3);
        assert_eq!(got["injury"], 1);
        assert_eq!(got["child_marriage"], 4);
        assert_eq!(got["child_labour"], 0);
        assert_eq!(got.len(), CaseCategory::ALL.len());
    }
}
