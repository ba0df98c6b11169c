//! The indicator catalogue (bộ chỉ tiêu) of the Bình Long plan, section II:
//! every indicator 1–24 and each of its parts, shipped as data in
//! `data/catalogue.json` and checked on load.
//!
//! Each indicator says how its value is computed ([`Method`]): observed by an
//! office (`indicator.observed`), computed from cases over a population
//! figure, computed from supported cases over cases, or a count of wards
//! holding a recognition. Targets carry the exact comparison of the
//! Vietnamese wording ([`Comparison`], DESIGN.md §5).

use serde::{Deserialize, Serialize};

use crate::event::{CaseCategory, PopulationGroup, Recognition};

/// The catalogue shipped with treem.
pub const SHIPPED: &str = include_str!("../data/catalogue.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalogue {
    pub indicators: Vec<Indicator>,
}

/// One indicator or sub-indicator (chỉ tiêu), e.g. `4b`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// `"1"`…`"24"`, with a letter for parts: `"3a"`, `"3b"`, `"3c"`.
    pub code: String,
    /// The plan's indicator number, 1–24.
    pub number: u8,
    /// Mục tiêu 1–4 of the plan.
    pub objective: u8,
    pub name_vi: String,
    pub name_en: String,
    pub unit: Unit,
    /// Whether a higher value is better (coverage) or worse (mortality, abuse).
    pub direction: Direction,
    #[serde(default)]
    pub baseline: Option<Baseline>,
    /// The office that leads it (plan section E).
    pub office: Office,
    pub targets: Vec<Target>,
    pub method: Method,
    /// For observed rates: what the denominator counts, in English.
    #[serde(default)]
    pub denominator_en: Option<String>,
    /// The plan's sentence this indicator comes from, verbatim.
    pub wording_vi: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Per 100.
    Percent,
    /// Per 1,000 live births (‰).
    PerThousandLiveBirths,
    /// Per 100,000 children.
    PerHundredThousandChildren,
    /// A number of wards (xã, phường).
    Wards,
}

impl Unit {
    /// Multiplier from numerator/denominator to the unit; `None` for counts.
    pub fn scale(self) -> Option<f64> {
        match self {
            Unit::Percent => Some(100.0),
            Unit::PerThousandLiveBirths => Some(1_000.0),
            Unit::PerHundredThousandChildren => Some(100_000.0),
            Unit::Wards => None,
        }
    }
    pub fn is_rate(self) -> bool {
        self.scale().is_some()
    }
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Percent => "%",
            Unit::PerThousandLiveBirths => "‰ live births",
            Unit::PerHundredThousandChildren => "per 100,000 children",
            Unit::Wards => "wards",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub year: u16,
    pub value: f64,
    /// Where the plan states it, verbatim.
    pub source_vi: String,
}

/// How a target's wording compares (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// "dưới X": strictly below X.
    Below,
    /// "xuống X", "xuống còn X", "là X" of a harm: at most X.
    AtMost,
    /// "đạt X", "phấn đấu X": at least X.
    AtLeast,
    /// "trên X": strictly above X.
    Above,
    /// "duy trì 0": exactly zero.
    Zero,
}

impl Comparison {
    /// Whether `value` meets a target `target` under this comparison.
    pub fn holds(self, value: f64, target: f64) -> bool {
        match self {
            Comparison::Below => value < target,
            Comparison::AtMost => value <= target,
            Comparison::AtLeast => value >= target,
            Comparison::Above => value > target,
            Comparison::Zero => value == 0.0,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Below => "<",
            Comparison::AtMost => "≤",
            Comparison::AtLeast => "≥",
            Comparison::Above => ">",
            Comparison::Zero => "=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub year: u16,
    pub comparison: Comparison,
    pub value: f64,
    /// The words of the plan that set this target, e.g. "xuống dưới 8% vào năm 2025".
    pub wording_vi: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Office {
    /// Phòng Lao động – Thương binh và Xã hội (standing agency).
    LabourInvalidsSocialAffairs,
    /// Trung tâm Y tế thị xã.
    HealthCentre,
    /// Phòng Giáo dục và Đào tạo.
    Education,
    /// Phòng Văn hóa và Thông tin.
    Culture,
    /// Phòng Tư pháp.
    Justice,
    /// Công an thị xã.
    Police,
    /// Phòng Tài chính – Kế hoạch.
    Finance,
    /// Phòng Quản lý Đô thị.
    UrbanManagement,
}

/// How the value of an indicator is obtained from events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Method {
    /// Numerator (and denominator) reported by an office in `indicator.observed`.
    Observed,
    /// Cases opened in the year of `category` over a population figure.
    CasesOverPopulation { category: CaseCategory, population: PopulationGroup },
    /// Cases of `category` opened in the year that received support, over those cases.
    SupportedCases { category: CaseCategory },
    /// Wards holding `recognition` in the year (`ward.recognised`).
    WardsRecognised { recognition: Recognition },
}

impl Method {
    pub fn describe(&self) -> String {
        match self {
            Method::Observed => "indicator.observed".into(),
            Method::CasesOverPopulation { category, population } => {
                format!("case.opened ({}) and population.reported ({})", category.name(), population.name())
            }
            Method::SupportedCases { category } => {
                format!("case.opened and case.support_recorded ({})", category.name())
            }
            Method::WardsRecognised { .. } => "ward.recognised".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue is not valid JSON of the expected shape: {0}")]
    Parse(String),
    #[error("indicator {code}: {problem}")]
    Invalid { code: String, problem: String },
}

impl Catalogue {
    pub fn shipped() -> Catalogue {
        Catalogue::parse(SHIPPED).expect("the shipped catalogue is valid")
    }

    pub fn parse(json: &str) -> Result<Catalogue, CatalogueError> {
        let c: Catalogue = serde_json::from_str(json).map_err(|e| CatalogueError::Parse(e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), CatalogueError> {
        let mut seen = std::collections::HashSet::new();
        for i in &self.indicators {
            let bad = |problem: &str| CatalogueError::Invalid { code: i.code.clone(), problem: problem.into() };
            if !seen.insert(i.code.as_str()) {
                return Err(bad("code appears twice"));
            }
            if !(1..=24).contains(&i.number) || !(1..=4).contains(&i.objective) {
                return Err(bad("number must be 1–24 and objective 1–4"));
            }
            if i.targets.is_empty() {
                return Err(bad("has no target"));
            }
            for t in &i.targets {
                if !(crate::event::FIRST_YEAR..=crate::event::LAST_YEAR).contains(&t.year) {
                    return Err(bad("target year outside 2021–2030"));
                }
            }
            if i.targets.windows(2).any(|w| w[0].year >= w[1].year) {
                return Err(bad("targets must be in increasing year order, one per year"));
            }
            // The path of judge.rs runs from the baseline to a later target;
            // a baseline in or after a target's year would divide by zero.
            if i.baseline.as_ref().is_some_and(|b| b.year >= i.targets[0].year) {
                return Err(bad("baseline year must come before the first target's year"));
            }
            let counts_wards = matches!(i.method, Method::WardsRecognised { .. });
            if counts_wards != (i.unit == Unit::Wards) {
                return Err(bad("unit 'wards' goes with method 'wards_recognised' and only with it"));
            }
        }
        Ok(())
    }

    pub fn get(&self, code: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.code == code)
    }

    pub fn codes(&self) -> Vec<&str> {
        self.indicators.iter().map(|i| i.code.as_str()).collect()
    }
}
