//! What a town forwards to its province: per year, the numerator and
//! denominator of every indicator for the town and each ward, and case counts
//! by category. Never a bare percentage (invariant 4), never anything
//! case-level (invariant 5).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::judge::Fraction;

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
}

impl TownSnapshot {
    pub fn msg_id(&self) -> String {
        format!("{}-{}-{}-{}", self.province, self.town, self.year, self.version)
    }
}
