//! The administrative hierarchy (province → town → ward) as data.
//!
//! Places are configuration, not code (DESIGN.md §1): the shipped file
//! `data/hierarchy.json` holds Bình Phước (70) → Bình Long (690) → its six
//! 2022 wards, each with the dates it was in force, because codes are reused
//! after the 2025 reorganisation. A deployment may load another file.

use serde::{Deserialize, Serialize};

/// The file shipped with treem.
pub const SHIPPED: &str = include_str!("../data/hierarchy.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hierarchy {
    #[serde(default)]
    pub note: String,
    pub provinces: Vec<Province>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Province {
    pub code: String,
    pub name: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub towns: Vec<Town>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Town {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub wards: Vec<Ward>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ward {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HierarchyError {
    #[error("hierarchy file is not valid: {0}")]
    Parse(String),
    #[error("code {0:?} appears twice in the hierarchy; codes must be unique among units in force together")]
    Duplicate(String),
    #[error("province {0:?} is not in the hierarchy")]
    UnknownProvince(String),
    #[error("town {town:?} is not in province {province:?} in the hierarchy")]
    UnknownTown { province: String, town: String },
    #[error("ward {ward:?} is not in town {town:?} of province {province:?} in the hierarchy")]
    UnknownWard { province: String, town: String, ward: String },
}

impl Hierarchy {
    pub fn shipped() -> Hierarchy {
        Hierarchy::parse(SHIPPED).expect("the shipped hierarchy parses")
    }

    pub fn parse(json: &str) -> Result<Hierarchy, HierarchyError> {
        let h: Hierarchy = serde_json::from_str(json).map_err(|e| HierarchyError::Parse(e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for p in &h.provinces {
            for t in &p.towns {
                for w in &t.wards {
                    if !seen.insert((p.code.clone(), t.code.clone(), w.code.clone())) {
                        return Err(HierarchyError::Duplicate(w.code.clone()));
                    }
                }
            }
        }
        Ok(h)
    }

    pub fn province(&self, code: &str) -> Result<&Province, HierarchyError> {
        self.provinces.iter().find(|p| p.code == code).ok_or_else(|| HierarchyError::UnknownProvince(code.into()))
    }

    pub fn town(&self, province: &str, town: &str) -> Result<&Town, HierarchyError> {
        self.province(province)?
            .towns
            .iter()
            .find(|t| t.code == town)
            .ok_or_else(|| HierarchyError::UnknownTown { province: province.into(), town: town.into() })
    }

    pub fn ward(&self, province: &str, town: &str, ward: &str) -> Result<&Ward, HierarchyError> {
        self.town(province, town)?.wards.iter().find(|w| w.code == ward).ok_or_else(|| HierarchyError::UnknownWard {
            province: province.into(),
            town: town.into(),
            ward: ward.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_hierarchy_has_binh_long_and_its_six_wards() {
        let h = Hierarchy::shipped();
        let p = h.province("70").unwrap();
        assert_eq!(p.name, "Bình Phước");
        let t = h.town("70", "690").unwrap();
        assert_eq!(t.name, "Bình Long");
        let codes: Vec<_> = t.wards.iter().map(|w| (w.code.as_str(), w.name.as_str())).collect();
        assert_eq!(
            codes,
            [
                ("25320", "Hưng Chiến"),
                ("25324", "An Lộc"),
                ("25325", "Phú Thịnh"),
                ("25326", "Phú Đức"),
                ("25333", "Thanh Lương"),
                ("25336", "Thanh Phú")
            ]
        );
        assert!(h.ward("70", "690", "99999").is_err());
    }
}
