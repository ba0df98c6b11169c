//! Indicator figures (numerator, denominator) per ward and for the town, for
//! one year, from the folded state; judged by `treem_proto::judge`.
//!
//! - observed indicators: the ward's latest `indicator.observed` for the year;
//! - cases over population: cases counted in the year (see
//!   `fold::years_counted`) over the ward's reported population group; a ward
//!   with no population figure for the year has no value;
//! - supported cases: cases with support over cases counted in the year;
//! - wards recognised: whether the ward held the status in the year (its
//!   latest `ward.recognised` of that year or before). The town counts wards
//!   holding it over the wards of the town.
//!
//! The town figure of a rate sums the numerators and denominators of the
//! wards that have a value, so towns and provinces add up exactly
//! (invariant 4).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use treem_proto::catalogue::{Catalogue, Method};
use treem_proto::event::{FIRST_YEAR, PopulationGroup};
use treem_proto::judge::{self, Fraction, IndicatorProgress};

use crate::fold::{self, Observation};
use crate::keys;
use crate::kv::KvScan;
use crate::store::TownStore;

/// Figures of one year: ward → code → fraction, and the town's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct YearFigures {
    pub year: u16,
    pub wards: BTreeMap<String, BTreeMap<String, Fraction>>,
    pub town: BTreeMap<String, Fraction>,
}

fn last_value(kv: &impl KvScan, prefix: &[u8]) -> Option<Vec<u8>> {
    kv.last_with_prefix(prefix)
}

/// Case counts of one year: (ward, category) → (counted, supported).
pub fn case_counts(kv: &impl KvScan, year: u16) -> BTreeMap<(String, String), (u64, u64)> {
    let mut out: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (k, v) in kv.scan_prefix(&keys::count_prefix(year)) {
        let key = String::from_utf8_lossy(&k).into_owned();
        // cnt/<year>/<ward>/<category>/<sex>/<band>/<status>
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() == 7 {
            out.entry((parts[2].into(), parts[3].into())).or_default().0 += keys::u64_of(&v);
        }
    }
    for (k, v) in kv.scan_prefix(&keys::supported_prefix(year)) {
        let key = String::from_utf8_lossy(&k).into_owned();
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() == 4 {
            out.entry((parts[2].into(), parts[3].into())).or_default().1 += keys::u64_of(&v);
        }
    }
    out
}

/// Whether `ward` held `recognition` in `year`; `None` if it never reported it by then.
/// The newest report of the latest year up to `year` decides: its key is the
/// last under that year's prefix (seq big-endian), so each year is one
/// lookup from the end, never a scan of every report the ward made.
fn recognised(kv: &impl KvScan, ward: &str, recognition: &str, year: u16) -> Option<bool> {
    let prefix = format!("fact/{}", fold::rec_fact_prefix(ward, recognition));
    // Events outside the plan's years are refused, so no report is older.
    (FIRST_YEAR..=year)
        .rev()
        .find_map(|y| kv.last_with_prefix(format!("{prefix}{y}/").as_bytes()))
        .map(|v| serde_json::from_slice(&v).unwrap_or(false))
}

/// Every indicator's figures for `year` over `wards` (the town's wards).
pub fn figures(kv: &impl KvScan, catalogue: &Catalogue, wards: &[String], year: u16) -> YearFigures {
    let counts = case_counts(kv, year);
    let mut out = YearFigures { year, ..Default::default() };
    for ward in wards {
        let population: BTreeMap<PopulationGroup, u64> = last_value(kv, &keys::fact_prefix(&fold::pop_fact(ward, year)))
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        let mut per = BTreeMap::new();
        for ind in &catalogue.indicators {
            let f = match ind.method {
                Method::Observed => last_value(kv, &keys::fact_prefix(&fold::obs_fact(ward, year, &ind.code)))
                    .and_then(|v| serde_json::from_slice::<Observation>(&v).ok())
                    .map(|o| Fraction { numerator: o.numerator, denominator: o.denominator.unwrap_or(0) }),
                Method::CasesOverPopulation { category, population: group } => population.get(&group).filter(|&&d| d > 0).map(|&d| {
                    Fraction { numerator: counts.get(&(ward.clone(), category.name().into())).map(|c| c.0).unwrap_or(0), denominator: d }
                }),
                Method::SupportedCases { category } => counts
                    .get(&(ward.clone(), category.name().into()))
                    .filter(|c| c.0 > 0)
                    .map(|&(n, s)| Fraction { numerator: s, denominator: n }),
                Method::WardsRecognised { recognition } => recognised(kv, ward, fold::recognition_key(recognition), year)
                    .map(|g| Fraction { numerator: u64::from(g), denominator: 1 }),
            };
            if let Some(f) = f {
                per.insert(ind.code.clone(), f);
            }
        }
        out.wards.insert(ward.clone(), per);
    }
    for ind in &catalogue.indicators {
        let present: Vec<Fraction> = out.wards.values().filter_map(|m| m.get(&ind.code).copied()).collect();
        if present.is_empty() {
            continue;
        }
        let mut total = present.into_iter().fold(Fraction::default(), Fraction::add);
        if matches!(ind.method, Method::WardsRecognised { .. }) {
            // Wards that never reported the status do not hold it.
            total.denominator = wards.len() as u64;
        }
        out.town.insert(ind.code.clone(), total);
    }
    out
}

/// Judged progress of every indicator (or one code) for a scope's figures.
pub fn progress(catalogue: &Catalogue, year: u16, figures: &BTreeMap<String, Fraction>, code: Option<&str>) -> Vec<IndicatorProgress> {
    catalogue
        .indicators
        .iter()
        .filter(|i| code.is_none_or(|c| c == i.code))
        .map(|i| judge::progress(i, year, figures.get(&i.code).copied()))
        .collect()
}

/// The figures of each year, computed once per committed batch and shared by
/// every reader until the next batch: the dashboard clients, the API and the
/// forwarder all ask for the same few years, and computing a year walks
/// every ward's facts (`figures`, milliseconds over a large store).
///
/// A slot is current while the store's [`TownStore::generation`] has not
/// moved past the value read before the figures were computed. Computing
/// holds the year's lock, so clients arriving meanwhile wait for that one
/// computation instead of each starting their own.
#[derive(Default)]
pub struct FiguresCache {
    years: Mutex<BTreeMap<u16, Slot>>,
}

/// One year's figures and the store generation read before computing them.
type Slot = Arc<Mutex<Option<(u64, Arc<YearFigures>)>>>;

impl FiguresCache {
    fn slot(&self, year: u16) -> Slot {
        self.years.lock().expect("figures cache lock").entry(year).or_default().clone()
    }

    /// The figures of `year` if a current copy is cached (never computes, never waits on a computation).
    pub fn cached(&self, store: &TownStore, year: u16) -> Option<Arc<YearFigures>> {
        let slot = self.slot(year);
        let guard = slot.try_lock().ok()?;
        guard.as_ref().filter(|(g, _)| *g == store.generation()).map(|(_, f)| f.clone())
    }

    /// The figures of `year`, current as of this call (blocking: computes
    /// when the cached copy is stale; call off the async workers).
    pub fn get(&self, store: &TownStore, catalogue: &Catalogue, wards: &[String], year: u16) -> Arc<YearFigures> {
        let slot = self.slot(year);
        let mut guard = slot.lock().expect("figures slot lock");
        let generation = store.generation();
        if let Some((g, f)) = guard.as_ref()
            && *g == generation
        {
            return f.clone();
        }
        let f = Arc::new(figures(&store.tree, catalogue, wards, year));
        *guard = Some((generation, f.clone()));
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Kv, MemKv};

    /// What `recognised` answered before it read one key per year: a scan
    /// of every report of the ward, the highest (year, seq) up to `year`.
    fn by_scan(kv: &MemKv, ward: &str, recognition: &str, year: u16) -> Option<bool> {
        let prefix = format!("fact/{}", fold::rec_fact_prefix(ward, recognition));
        let mut best: Option<((u16, u64), bool)> = None;
        for (k, v) in kv.scan_prefix(prefix.as_bytes()) {
            let seq = keys::trailing_u64(&k);
            let y: u16 = std::str::from_utf8(&k[prefix.len()..k.len() - 9]).unwrap().parse().unwrap();
            if y <= year && best.is_none_or(|(b, _)| (y, seq) > b) {
                best = Some(((y, seq), serde_json::from_slice(&v).unwrap()));
            }
        }
        best.map(|(_, g)| g)
    }

    #[test]
    fn a_recognition_is_the_newest_report_of_the_latest_year_up_to_the_one_asked() {
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for round in 0..40 {
            let mut kv = MemKv::default();
            for _ in 0..next(25) {
                let (ward, rec) = (["25320", "25324"][next(2) as usize], ["a", "b"][next(2) as usize]);
                let year = treem_proto::event::FIRST_YEAR + next(10) as u16;
                let fact = format!("{}{year}", fold::rec_fact_prefix(ward, rec));
                kv.put(keys::fact(&fact, 1 + next(500)), serde_json::to_vec(&(next(2) == 1)).unwrap());
            }
            for year in treem_proto::event::FIRST_YEAR..=treem_proto::event::LAST_YEAR {
                for (ward, rec) in [("25320", "a"), ("25320", "b"), ("25324", "a"), ("25336", "a")] {
                    assert_eq!(recognised(&kv, ward, rec, year), by_scan(&kv, ward, rec, year), "round {round}, {ward} {rec} {year}");
                }
            }
        }
    }
}
