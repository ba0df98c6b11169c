//! Judging a value against the plan: achieved / on track / at risk /
//! off track / no data, always with the reason (DESIGN.md §5).
//!
//! Rules, in order:
//! 1. No value for the year → **no data**.
//! 2. The plan sets a target for that very year → **achieved** if the value
//!    meets it under the target's comparison, otherwise **off track**.
//! 3. A later target exists → the value is compared with the *path*: a
//!    straight line from the baseline (the plan's 2021 figure) to that next
//!    target. If the value already meets the next target, or is at least as
//!    good as the path's point for the year → **on track**; if it falls short
//!    of the path by at most [`AT_RISK_SHARE`] of the distance from baseline
//!    to target (or by any amount when the plan gives no baseline) →
//!    **at risk**; otherwise **off track**.
//! 4. No target this year nor later (a target given only for one year exists
//!    only for that year) → compared, for information, with the last target:
//!    **on track** if it still meets that level, otherwise **at risk**.

use serde::{Deserialize, Serialize};

use crate::catalogue::{Comparison, Direction, Indicator, Office, Target, Unit};

/// Share of the baseline-to-target distance a value may trail the path by and
/// still be "at risk" rather than "off track".
pub const AT_RISK_SHARE: f64 = 0.25;

/// A value that composes: the province adds numerators and denominators,
/// never percentages (invariant 4). For ward counts (indicators 1 and 21) the
/// numerator is the wards holding the status and the denominator the wards
/// counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction {
    pub numerator: u64,
    pub denominator: u64,
}

impl Fraction {
    // Named `add` before clippy's should_implement_trait; callers use the
    // method, so it stays (an `Add` impl would be an addition, not a fix).
    #[allow(clippy::should_implement_trait)]
    //
    // Saturating: the ward's validation puts no ceiling on a figure, and the
    // town fold fuzz (services/town/tests/fuzz_fold.rs) found that two wards
    // reporting numbers near u64::MAX overflowed here — a panic in the
    // town's projection in debug builds, a silently wrapped figure in
    // release. A saturated sum is still absurd, but visibly so, and nothing
    // crashes.
    pub fn add(self, other: Fraction) -> Fraction {
        Fraction {
            numerator: self.numerator.saturating_add(other.numerator),
            denominator: self.denominator.saturating_add(other.denominator),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Achieved,
    OnTrack,
    AtRisk,
    OffTrack,
    NoData,
}

/// The value of an indicator in its unit, or `None` when it cannot be computed.
///
/// Scales the numerator before dividing: `numerator × scale` is exact, so the
/// one rounding left is the division's, and a fraction exactly at a target
/// (7/100 against "xuống 7%", 14/10 000 against "dưới 0,14%") compares equal
/// to it. Dividing first gave 7.000000000000001 and 0.13999999999999999,
/// judging a value on the target as missing or beating it.
pub fn value(unit: Unit, f: Fraction) -> Option<f64> {
    match unit.scale() {
        Some(scale) if f.denominator > 0 => Some(f.numerator as f64 * scale / f.denominator as f64),
        Some(_) => None,
        None => Some(f.numerator as f64),
    }
}

/// What a reader sees of one indicator for one scope (ward, town, province) and year.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorProgress {
    pub code: String,
    pub number: u8,
    pub objective: u8,
    pub name_vi: String,
    pub name_en: String,
    pub unit: Unit,
    pub office: Office,
    pub year: u16,
    pub numerator: Option<u64>,
    pub denominator: Option<u64>,
    pub value: Option<f64>,
    /// The target of this year, if the plan sets one.
    pub target: Option<Target>,
    /// The target the value was judged against (this year's or the next one).
    pub judged_against: Option<Target>,
    pub baseline: Option<f64>,
    pub status: Status,
    pub reason: String,
}

fn fmt(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn describe(t: &Target, unit: Unit) -> String {
    match t.comparison {
        Comparison::Zero => format!("the {} target of exactly 0 (\"{}\")", t.year, t.wording_vi),
        c => format!("the {} target {} {} {} (\"{}\")", t.year, c.symbol(), fmt(t.value), unit.symbol(), t.wording_vi),
    }
}

fn better_or_equal(direction: Direction, value: f64, reference: f64) -> bool {
    match direction {
        Direction::HigherIsBetter => value >= reference,
        Direction::LowerIsBetter => value <= reference,
    }
}

/// Judges `fraction` (None when nothing was recorded) for `year`.
pub fn progress(ind: &Indicator, year: u16, fraction: Option<Fraction>) -> IndicatorProgress {
    let value = fraction.and_then(|f| value(ind.unit, f));
    let this_year = ind.targets.iter().find(|t| t.year == year).cloned();
    let (status, reason, judged_against) = judge(ind, year, value);
    IndicatorProgress {
        code: ind.code.clone(),
        number: ind.number,
        objective: ind.objective,
        name_vi: ind.name_vi.clone(),
        name_en: ind.name_en.clone(),
        unit: ind.unit,
        office: ind.office,
        year,
        numerator: fraction.map(|f| f.numerator),
        denominator: fraction.map(|f| f.denominator),
        value,
        target: this_year,
        judged_against,
        baseline: ind.baseline.as_ref().map(|b| b.value),
        status,
        reason,
    }
}

/// The status of `value` for `year`, the reason, and the target used.
pub fn judge(ind: &Indicator, year: u16, value: Option<f64>) -> (Status, String, Option<Target>) {
    let unit = ind.unit;
    let Some(v) = value else {
        return (Status::NoData, format!("no data recorded for {year}"), None);
    };
    let shown = format!("{} {}", fmt(v), unit.symbol());
    if let Some(t) = ind.targets.iter().find(|t| t.year == year) {
        return if t.comparison.holds(v, t.value) {
            (Status::Achieved, format!("{shown} meets {}", describe(t, unit)), Some(t.clone()))
        } else {
            (Status::OffTrack, format!("{shown} misses {}", describe(t, unit)), Some(t.clone()))
        };
    }
    if let Some(next) = ind.targets.iter().find(|t| t.year > year) {
        if next.comparison.holds(v, next.value) {
            return (Status::OnTrack, format!("{shown} already meets {}", describe(next, unit)), Some(next.clone()));
        }
        let Some(base) = ind.baseline.as_ref().filter(|b| b.year <= year) else {
            return (
                Status::AtRisk,
                format!("{shown} does not yet meet {}; the plan gives no baseline to draw a path from", describe(next, unit)),
                Some(next.clone()),
            );
        };
        let span = f64::from(next.year - base.year);
        let expected = base.value + (next.value - base.value) * f64::from(year - base.year) / span;
        if better_or_equal(ind.direction, v, expected) {
            return (
                Status::OnTrack,
                format!(
                    "{shown} is at or better than {} expected in {year} on the path from the {} baseline {} to {}",
                    fmt(expected),
                    base.year,
                    fmt(base.value),
                    describe(next, unit)
                ),
                Some(next.clone()),
            );
        }
        let tolerance = (next.value - base.value).abs() * AT_RISK_SHARE;
        let behind = (v - expected).abs();
        let status = if behind <= tolerance && tolerance > 0.0 { Status::AtRisk } else { Status::OffTrack };
        return (
            status,
            format!(
                "{shown} trails the {} expected in {year} on the path from the {} baseline {} to {} by {}",
                fmt(expected),
                base.year,
                fmt(base.value),
                describe(next, unit),
                fmt(behind)
            ),
            Some(next.clone()),
        );
    }
    let last = ind.targets.last().expect("every indicator has a target");
    if last.comparison.holds(v, last.value) {
        (Status::OnTrack, format!("the plan sets no target for {year}; {shown} still meets {}", describe(last, unit)), Some(last.clone()))
    } else {
        (
            Status::AtRisk,
            format!("the plan sets no target for {year}; {shown} no longer meets {}", describe(last, unit)),
            Some(last.clone()),
        )
    }
}
