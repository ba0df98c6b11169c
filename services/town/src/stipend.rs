//! The collaborator stipend of plan section D (phụ cấp cộng tác viên):
//! "Ngân sách nhà nước bảo đảm chi hỗ trợ hàng tháng cho cộng tác viên bảo
//! vệ, chăm sóc trẻ em ở ấp, khu phố … bằng 0,125 mức lương cơ sở/người/tháng".
//!
//! - The base salary (mức lương cơ sở) is an effective-dated table
//!   ([`BASE_SALARY`]); each month is paid at the rate in force on its first
//!   day, so a year that straddles a change (2023, 2024) is summed month
//!   by month.
//! - 0.125 × base = base / 8, exact in whole đồng for every rate so far;
//!   amounts are integers (u64 đồng), never floats.
//! - The number of collaborators of a ward and year is the `collaborators`
//!   figure of its latest `population.reported` for that year. A ward that
//!   reported none has no amount (shown as missing), not zero.
//!
//! Pure: [`monthly`], [`per_collaborator`] and [`year_of`] compute; only
//! [`collaborators`] reads the town store.

use serde::Serialize;
use treem_proto::event::PopulationGroup;

use crate::fold;
use crate::keys;
use crate::kv::KvScan;

/// Mức lương cơ sở from a date on: (year, month it takes effect on the 1st, đồng).
/// Decree 38/2019/NĐ-CP (1/7/2019), 24/2023/NĐ-CP (1/7/2023), 73/2024/NĐ-CP (1/7/2024).
pub const BASE_SALARY: [(u16, u8, u64); 3] = [(2019, 7, 1_490_000), (2023, 7, 1_800_000), (2024, 7, 2_340_000)];

/// The share of the base salary per collaborator per month: 0.125 = 1/8.
pub const SHARE_NUMERATOR: u64 = 1;
pub const SHARE_DENOMINATOR: u64 = 8;

/// The base salary in force on the 1st of `month` of `year`; `None` before the table starts.
pub fn base_salary(year: u16, month: u8) -> Option<u64> {
    BASE_SALARY.iter().rev().find(|(y, m, _)| (year, month) >= (*y, *m)).map(|(_, _, v)| *v)
}

/// One month of the stipend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Month {
    pub month: u8,
    pub base_salary: u64,
    /// 0.125 × base salary, per collaborator.
    pub per_collaborator: u64,
}

/// The twelve months of `year`.
pub fn monthly(year: u16) -> Vec<Month> {
    (1..=12u8)
        .filter_map(|month| {
            base_salary(year, month).map(|base| Month {
                month,
                base_salary: base,
                per_collaborator: base * SHARE_NUMERATOR / SHARE_DENOMINATOR,
            })
        })
        .collect()
}

/// What one collaborator receives over `year`.
pub fn per_collaborator(year: u16) -> u64 {
    monthly(year).iter().map(|m| m.per_collaborator).sum()
}

/// The stipend of one ward for one year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WardStipend {
    pub ward: String,
    pub name: String,
    /// `None`: the ward reported no collaborators figure for the year.
    pub collaborators: Option<u64>,
    /// collaborators × [`per_collaborator`]; `None` with it.
    pub amount: Option<u64>,
}

/// The stipend of every ward of the town for one year, and the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YearStipend {
    pub year: u16,
    /// 0.125
    pub share_of_base_salary: f64,
    pub months: Vec<Month>,
    pub per_collaborator_year: u64,
    pub wards: Vec<WardStipend>,
    /// Sums over the wards that reported.
    pub collaborators: u64,
    pub amount: u64,
    /// Wards with no collaborators figure for the year.
    pub wards_missing: Vec<String>,
}

/// The `collaborators` figure `ward` reported for `year`, if any.
pub fn collaborators(kv: &impl KvScan, ward: &str, year: u16) -> Option<u64> {
    let latest = kv.scan_prefix(&keys::fact_prefix(&fold::pop_fact(ward, year))).pop()?;
    let figures: std::collections::BTreeMap<PopulationGroup, u64> = serde_json::from_slice(&latest.1).ok()?;
    figures.get(&PopulationGroup::Collaborators).copied()
}

/// The stipend of `year` from the collaborator counts per ward.
pub fn year_of(year: u16, wards: &[(String, String, Option<u64>)]) -> YearStipend {
    let per = per_collaborator(year);
    let wards: Vec<WardStipend> = wards
        .iter()
        .map(|(ward, name, n)| WardStipend { ward: ward.clone(), name: name.clone(), collaborators: *n, amount: n.map(|n| n * per) })
        .collect();
    YearStipend {
        year,
        share_of_base_salary: SHARE_NUMERATOR as f64 / SHARE_DENOMINATOR as f64,
        months: monthly(year),
        per_collaborator_year: per,
        collaborators: wards.iter().filter_map(|w| w.collaborators).sum(),
        amount: wards.iter().filter_map(|w| w.amount).sum(),
        wards_missing: wards.iter().filter(|w| w.collaborators.is_none()).map(|w| w.ward.clone()).collect(),
        wards,
    }
}

/// [`year_of`] with the counts read from the town store.
pub fn for_town(kv: &impl KvScan, wards: &[String], names: &[String], year: u16) -> YearStipend {
    let counts: Vec<(String, String, Option<u64>)> =
        wards.iter().zip(names).map(|(w, n)| (w.clone(), n.clone(), collaborators(kv, w, year))).collect();
    year_of(year, &counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_paid_at_the_base_salary_in_force_on_their_first_day() {
        assert_eq!(base_salary(2019, 6), None);
        assert_eq!(base_salary(2019, 7), Some(1_490_000));
        assert_eq!(base_salary(2023, 6), Some(1_490_000));
        assert_eq!(base_salary(2023, 7), Some(1_800_000));
        assert_eq!(base_salary(2024, 6), Some(1_800_000));
        assert_eq!(base_salary(2024, 7), Some(2_340_000));
        assert_eq!(base_salary(2030, 12), Some(2_340_000));

        // 2023: January–June at 1,490,000 / 8 = 186,250; July–December at 1,800,000 / 8 = 225,000.
        let m = monthly(2023);
        assert_eq!(m.len(), 12);
        assert!(m[..6].iter().all(|m| m.base_salary == 1_490_000 && m.per_collaborator == 186_250), "{m:?}");
        assert!(m[6..].iter().all(|m| m.base_salary == 1_800_000 && m.per_collaborator == 225_000), "{m:?}");
        assert_eq!(per_collaborator(2023), 6 * 186_250 + 6 * 225_000);
        assert_eq!(per_collaborator(2023), 2_467_500);

        // 2024: January–June at 225,000; July–December at 2,340,000 / 8 = 292,500.
        let m = monthly(2024);
        assert_eq!((m[5].month, m[5].per_collaborator), (6, 225_000));
        assert_eq!((m[6].month, m[6].per_collaborator), (7, 292_500));
        assert_eq!(per_collaborator(2024), 6 * 225_000 + 6 * 292_500);
        assert_eq!(per_collaborator(2024), 3_105_000);

        // Whole years at one rate.
        assert_eq!(per_collaborator(2022), 12 * 186_250);
        assert_eq!(per_collaborator(2025), 12 * 292_500);
        assert_eq!(per_collaborator(2025), 3_510_000);
    }

    #[test]
    fn a_ward_without_a_figure_has_no_amount_not_zero() {
        let s = year_of(2024, &[("25320".into(), "Hưng Chiến".into(), Some(12)), ("25324".into(), "An Lộc".into(), None)]);
        assert_eq!(s.wards[0].amount, Some(12 * 3_105_000));
        assert_eq!(s.wards[1].amount, None);
        assert_eq!((s.collaborators, s.amount), (12, 37_260_000));
        assert_eq!(s.wards_missing, ["25324"]);
        assert_eq!(s.share_of_base_salary, 0.125);
    }
}
