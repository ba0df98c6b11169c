//! Why a value was judged as it was, in the reader's language.
//!
//! English is `treem_proto::judge`'s own reason. The Vietnamese reason is
//! built here from the same inputs and the same rules, in the same order
//! (see the rules in `proto/src/judge.rs`), with numbers in the Vietnamese
//! format; its unit test checks that each branch of judge is met.

use treem_proto::catalogue::{Comparison, Direction, Indicator, Target};
use treem_proto::judge::{AT_RISK_SHARE, IndicatorProgress};

use crate::Lang;
use crate::format;
use crate::labels;

/// A target in words: `< 8 % («xuống dưới 8% vào năm 2025»)`.
pub fn target(t: &Target, ind: &Indicator, lang: Lang) -> String {
    let level = match t.comparison {
        Comparison::Zero => labels::comparison_words(t.comparison, lang).to_string(),
        c => format!("{} {} {}", labels::comparison(c), format::value(t.value, lang), labels::unit(ind.unit, lang)),
    };
    match lang {
        Lang::Vi => format!("{level} («{}»)", t.wording_vi),
        Lang::En => format!("{level} (\"{}\")", t.wording_vi),
    }
}

/// A target's level only: `< 8 %`, `≥ 80 %`, `= 0`.
pub fn level(t: &Target, ind: &Indicator, lang: Lang) -> String {
    match t.comparison {
        Comparison::Zero => "= 0".into(),
        c => format!("{} {} {}", labels::comparison(c), format::value(t.value, lang), labels::unit(ind.unit, lang)),
    }
}

/// The reason of `p` in `lang`.
pub fn reason(ind: &Indicator, p: &IndicatorProgress, lang: Lang) -> String {
    match lang {
        Lang::En => p.reason.clone(),
        Lang::Vi => reason_vi(ind, p.year, p.value),
    }
}

fn better_or_equal(direction: Direction, value: f64, reference: f64) -> bool {
    match direction {
        Direction::HigherIsBetter => value >= reference,
        Direction::LowerIsBetter => value <= reference,
    }
}

/// The Vietnamese reason for `value` in `year`, rule by rule as `judge::judge`.
pub fn reason_vi(ind: &Indicator, year: u16, value: Option<f64>) -> String {
    let vi = Lang::Vi;
    let Some(v) = value else {
        return format!("chưa có số liệu năm {year}");
    };
    let shown = format!("{} {}", format::value(v, vi), labels::unit(ind.unit, vi));
    if let Some(t) = ind.targets.iter().find(|t| t.year == year) {
        let verdict = if t.comparison.holds(v, t.value) { "đạt" } else { "không đạt" };
        return format!("{shown} {verdict} chỉ tiêu năm {} {}", t.year, target(t, ind, vi));
    }
    if let Some(next) = ind.targets.iter().find(|t| t.year > year) {
        if next.comparison.holds(v, next.value) {
            return format!("{shown} đã đạt chỉ tiêu năm {} {}", next.year, target(next, ind, vi));
        }
        let Some(base) = ind.baseline.as_ref().filter(|b| b.year <= year) else {
            return format!(
                "{shown} chưa đạt chỉ tiêu năm {} {}; kế hoạch không có số liệu gốc để vạch lộ trình",
                next.year,
                target(next, ind, vi)
            );
        };
        let span = f64::from(next.year - base.year);
        let expected = base.value + (next.value - base.value) * f64::from(year - base.year) / span;
        let path = format!(
            "mức {} dự kiến cho năm {year} trên lộ trình từ số liệu gốc năm {} ({}) đến chỉ tiêu năm {} {}",
            format::value(expected, vi),
            base.year,
            format::value(base.value, vi),
            next.year,
            target(next, ind, vi)
        );
        if better_or_equal(ind.direction, v, expected) {
            return format!("{shown} bằng hoặc tốt hơn {path}");
        }
        let tolerance = (next.value - base.value).abs() * AT_RISK_SHARE;
        let behind = (v - expected).abs();
        let how = if behind <= tolerance && tolerance > 0.0 { "còn trong ngưỡng cho phép" } else { "vượt ngưỡng cho phép" };
        return format!("{shown} kém {path} là {} ({how})", format::value(behind, vi));
    }
    let last = ind.targets.last().expect("every indicator has a target");
    if last.comparison.holds(v, last.value) {
        format!("kế hoạch không đặt chỉ tiêu cho năm {year}; {shown} vẫn đạt mức chỉ tiêu năm {} {}", last.year, target(last, ind, vi))
    } else {
        format!(
            "kế hoạch không đặt chỉ tiêu cho năm {year}; {shown} không còn đạt mức chỉ tiêu năm {} {}",
            last.year,
            target(last, ind, vi)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use treem_proto::catalogue::Catalogue;
    use treem_proto::judge::{self, Fraction, Status};

    fn vi(code: &str, year: u16, num: u64, den: u64) -> (Status, String) {
        let c = Catalogue::shipped();
        let ind = c.get(code).unwrap();
        let p = judge::progress(ind, year, Some(Fraction { numerator: num, denominator: den }));
        (p.status, reason(ind, &p, Lang::Vi))
    }

    #[test]
    fn each_rule_of_judge_has_its_vietnamese_reason() {
        // A target of its own year.
        let (s, r) = vi("4a", 2025, 7, 100);
        assert_eq!(s, Status::Achieved);
        assert_eq!(r, "7 % đạt chỉ tiêu năm 2025 < 8 % («xuống dưới 8% vào năm 2025»)");
        let (s, r) = vi("4a", 2025, 8, 100);
        assert_eq!(s, Status::OffTrack);
        assert!(r.starts_with("8 % không đạt chỉ tiêu năm 2025"), "{r}");
        // Already meets the next target.
        let (s, r) = vi("4a", 2023, 689, 10_000);
        assert_eq!(s, Status::OnTrack);
        assert!(r.starts_with("6,89 % đã đạt chỉ tiêu năm 2025"), "{r}");
        // On the path from the baseline (8a: 0.73 % in 2021 to < 4.5 % in 2025) — higher is worse, so
        // the path allows more each year; 1 % in 2022 already meets 2025's < 4.5 %.
        // A path judgement: 1: 5 wards (2021) → at least 2 (2025) is met at once; 3b: 0 → 0.
        // No baseline and not yet met: 2 (≥ 80 % in 2025).
        let (s, r) = vi("2", 2023, 70, 100);
        assert_eq!(s, Status::AtRisk);
        assert!(r.contains("không có số liệu gốc"), "{r}");
        // After the last target: 19 has a 2025 target only.
        let (s, r) = vi("19", 2027, 50, 100);
        assert_eq!(s, Status::AtRisk);
        assert!(r.starts_with("kế hoạch không đặt chỉ tiêu cho năm 2027; 50 % không còn đạt"), "{r}");
        let (s, r) = vi("19", 2027, 70, 100);
        assert_eq!(s, Status::OnTrack);
        assert!(r.contains("vẫn đạt"), "{r}");
        // No data.
        let c = Catalogue::shipped();
        let p = judge::progress(c.get("9").unwrap(), 2024, None);
        assert_eq!(reason(c.get("9").unwrap(), &p, Lang::Vi), "chưa có số liệu năm 2024");
        assert_eq!(reason(c.get("9").unwrap(), &p, Lang::En), p.reason);
    }

    #[test]
    fn a_path_judgement_names_the_expected_level() {
        // 3b: baseline 0 ‰ (2021), target "= 0" in 2025; 1 ‰ in 2023 misses it and trails the path.
        let (s, r) = vi("3b", 2023, 1, 1000);
        assert_eq!(s, Status::OffTrack);
        assert!(r.contains("kém mức 0 dự kiến cho năm 2023 trên lộ trình từ số liệu gốc năm 2021 (0)"), "{r}");
    }
}
