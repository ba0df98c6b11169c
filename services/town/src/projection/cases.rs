//! Case summaries: cases counted in a year by category, status, sex and age
//! band, per ward or for the town. Counts only; the town never holds a
//! child's identity (invariant 5).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::keys;
use crate::kv::KvScan;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CategorySummary {
    pub total: u64,
    pub supported: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_sex: BTreeMap<String, u64>,
    pub by_age_band: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaseSummary {
    pub year: u16,
    pub ward: Option<String>,
    pub total: u64,
    pub categories: BTreeMap<String, CategorySummary>,
}

pub fn summary(kv: &impl KvScan, year: u16, ward: Option<&str>) -> CaseSummary {
    let mut out = CaseSummary { year, ward: ward.map(Into::into), ..Default::default() };
    for (k, v) in kv.scan_prefix(&keys::count_prefix(year)) {
        let key = String::from_utf8_lossy(&k).into_owned();
        let p: Vec<&str> = key.split('/').collect();
        if p.len() != 7 || ward.is_some_and(|w| w != p[2]) {
            continue;
        }
        let n = keys::u64_of(&v);
        let c = out.categories.entry(p[3].into()).or_default();
        c.total += n;
        *c.by_sex.entry(p[4].into()).or_default() += n;
        *c.by_age_band.entry(p[5].into()).or_default() += n;
        *c.by_status.entry(p[6].into()).or_default() += n;
        out.total += n;
    }
    for (k, v) in kv.scan_prefix(&keys::supported_prefix(year)) {
        let key = String::from_utf8_lossy(&k).into_owned();
        let p: Vec<&str> = key.split('/').collect();
        if p.len() != 4 || ward.is_some_and(|w| w != p[2]) {
            continue;
        }
        out.categories.entry(p[3].into()).or_default().supported += keys::u64_of(&v);
    }
    out
}
