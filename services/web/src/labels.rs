//! The plan's words in Vietnamese and English: objectives, the offices of
//! section E, statuses, case categories and their breakdowns, units,
//! comparisons, population groups, recognitions and event kinds.
//!
//! Vietnamese labels follow the plan's own wording (Tờ trình 87/TTr-UBND
//! and its Kế hoạch), with its diacritics.

use treem_proto::catalogue::{Comparison, Office, Unit};
use treem_proto::event::{CaseCategory, PopulationGroup, Recognition};
use treem_proto::judge::Status;

use crate::Lang;

/// A place with its kind, capitalised: `("phường", "An Lộc")` → `Phường An Lộc`.
pub fn place(kind: &str, name: &str) -> String {
    let mut chars = kind.trim().chars();
    match chars.next() {
        Some(first) => format!("{}{} {name}", first.to_uppercase(), chars.as_str()),
        None => name.to_string(),
    }
}

/// Capitalises the first letter: `phường An Lộc` → `Phường An Lộc`.
pub fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => format!("{}{}", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// Every office of plan section E, in the plan's order.
pub const OFFICES: [Office; 8] = [
    Office::LabourInvalidsSocialAffairs,
    Office::HealthCentre,
    Office::Education,
    Office::Culture,
    Office::Justice,
    Office::Police,
    Office::Finance,
    Office::UrbanManagement,
];

/// The office's stable key, as in the catalogue and `?office=`.
pub fn office_key(o: Office) -> &'static str {
    match o {
        Office::LabourInvalidsSocialAffairs => "labour_invalids_social_affairs",
        Office::HealthCentre => "health_centre",
        Office::Education => "education",
        Office::Culture => "culture",
        Office::Justice => "justice",
        Office::Police => "police",
        Office::Finance => "finance",
        Office::UrbanManagement => "urban_management",
    }
}

/// `?office=` back to an office; `None` for anything unknown.
pub fn office_parse(s: &str) -> Option<Office> {
    OFFICES.into_iter().find(|o| office_key(*o) == s.trim())
}

pub fn office(o: Office, lang: Lang) -> &'static str {
    match (o, lang) {
        (Office::LabourInvalidsSocialAffairs, Lang::Vi) => "Phòng Lao động – Thương binh và Xã hội",
        (Office::LabourInvalidsSocialAffairs, Lang::En) => "Labour, Invalids and Social Affairs",
        (Office::HealthCentre, Lang::Vi) => "Trung tâm Y tế",
        (Office::HealthCentre, Lang::En) => "Health centre",
        (Office::Education, Lang::Vi) => "Phòng Giáo dục và Đào tạo",
        (Office::Education, Lang::En) => "Education and Training",
        (Office::Culture, Lang::Vi) => "Phòng Văn hóa và Thông tin",
        (Office::Culture, Lang::En) => "Culture and Information",
        (Office::Justice, Lang::Vi) => "Phòng Tư pháp",
        (Office::Justice, Lang::En) => "Justice",
        (Office::Police, Lang::Vi) => "Công an",
        (Office::Police, Lang::En) => "Police",
        (Office::Finance, Lang::Vi) => "Phòng Tài chính – Kế hoạch",
        (Office::Finance, Lang::En) => "Finance and Planning",
        (Office::UrbanManagement, Lang::Vi) => "Phòng Quản lý Đô thị",
        (Office::UrbanManagement, Lang::En) => "Urban management",
    }
}

/// "Mục tiêu 1: …" — the heading of an objective of the plan (section II.2).
pub fn objective(n: u8, lang: Lang) -> String {
    let (vi, en) = match n {
        1 => (
            "Về phát triển toàn diện trẻ em, chăm sóc sức khỏe, dinh dưỡng cho trẻ em",
            "Comprehensive development, health care and nutrition",
        ),
        2 => ("Về bảo vệ trẻ em", "Child protection"),
        3 => ("Về giáo dục, văn hóa, vui chơi, giải trí cho trẻ em", "Education, culture, play and recreation"),
        4 => ("Về sự tham gia của trẻ em vào các vấn đề về trẻ em", "Children's participation in matters that concern them"),
        _ => ("", ""),
    };
    match lang {
        Lang::Vi => format!("Mục tiêu {n}: {vi}"),
        Lang::En => format!("Objective {n}: {en}"),
    }
}

pub fn status(s: Status, lang: Lang) -> &'static str {
    match (s, lang) {
        (Status::Achieved, Lang::Vi) => "Đạt",
        (Status::Achieved, Lang::En) => "Achieved",
        (Status::OnTrack, Lang::Vi) => "Đúng tiến độ",
        (Status::OnTrack, Lang::En) => "On track",
        (Status::AtRisk, Lang::Vi) => "Có nguy cơ",
        (Status::AtRisk, Lang::En) => "At risk",
        (Status::OffTrack, Lang::Vi) => "Chậm tiến độ",
        (Status::OffTrack, Lang::En) => "Off track",
        (Status::NoData, Lang::Vi) => "Chưa có số liệu",
        (Status::NoData, Lang::En) => "No data",
    }
}

/// The CSS class of a status badge.
pub fn status_class(s: Status) -> &'static str {
    match s {
        Status::Achieved => "st-achieved",
        Status::OnTrack => "st-on-track",
        Status::AtRisk => "st-at-risk",
        Status::OffTrack => "st-off-track",
        Status::NoData => "st-no-data",
    }
}

/// The stable key of a status (as in the JSON API).
pub fn status_key(s: Status) -> &'static str {
    match s {
        Status::Achieved => "achieved",
        Status::OnTrack => "on_track",
        Status::AtRisk => "at_risk",
        Status::OffTrack => "off_track",
        Status::NoData => "no_data",
    }
}

pub const STATUSES: [Status; 5] = [Status::Achieved, Status::OnTrack, Status::AtRisk, Status::OffTrack, Status::NoData];

/// A unit after a value: `6,89 %`, `0 ‰`, `520 /100.000 trẻ em`, `3 xã, phường`.
pub fn unit(u: Unit, lang: Lang) -> &'static str {
    match (u, lang) {
        (Unit::Percent, _) => "%",
        (Unit::PerThousandLiveBirths, Lang::Vi) => "‰ trẻ đẻ sống",
        (Unit::PerThousandLiveBirths, Lang::En) => "‰ live births",
        (Unit::PerHundredThousandChildren, Lang::Vi) => "/100.000 trẻ em",
        (Unit::PerHundredThousandChildren, Lang::En) => "per 100,000 children",
        (Unit::Wards, Lang::Vi) => "xã, phường",
        (Unit::Wards, Lang::En) => "wards",
    }
}

/// A comparison before a target value: `< 8 %`, `≥ 80 %`, `= 0`.
pub fn comparison(c: Comparison) -> &'static str {
    c.symbol()
}

/// The words of a comparison: "dưới", "tối đa", "ít nhất", "trên", "bằng 0".
pub fn comparison_words(c: Comparison, lang: Lang) -> &'static str {
    match (c, lang) {
        (Comparison::Below, Lang::Vi) => "dưới",
        (Comparison::Below, Lang::En) => "below",
        (Comparison::AtMost, Lang::Vi) => "tối đa",
        (Comparison::AtMost, Lang::En) => "at most",
        (Comparison::AtLeast, Lang::Vi) => "ít nhất",
        (Comparison::AtLeast, Lang::En) => "at least",
        (Comparison::Above, Lang::Vi) => "trên",
        (Comparison::Above, Lang::En) => "above",
        (Comparison::Zero, Lang::Vi) => "duy trì 0",
        (Comparison::Zero, Lang::En) => "exactly 0",
    }
}

pub fn category(c: &str, lang: Lang) -> String {
    let (vi, en) = match CaseCategory::parse(c) {
        Some(CaseCategory::SpecialCircumstances) => ("Trẻ em có hoàn cảnh đặc biệt", "Special circumstances"),
        Some(CaseCategory::Abuse) => ("Trẻ em bị xâm hại", "Abuse"),
        Some(CaseCategory::Injury) => ("Tai nạn thương tích", "Injury"),
        Some(CaseCategory::FatalInjury) => ("Tử vong do tai nạn thương tích", "Fatal injury"),
        Some(CaseCategory::ChildMarriage) => ("Tảo hôn", "Child marriage"),
        Some(CaseCategory::ChildLabour) => ("Lao động trẻ em", "Child labour"),
        Some(CaseCategory::DisasterAffected) => ("Trẻ em gặp thiên tai, thảm họa", "Affected by disaster"),
        None => return c.to_string(),
    };
    lang.t(vi, en).to_string()
}

pub fn case_status(s: &str, lang: Lang) -> String {
    match s {
        "open" => lang.t("Đang theo dõi", "Open").into(),
        "closed" => lang.t("Đã kết thúc", "Closed").into(),
        other => other.into(),
    }
}

pub fn sex(s: &str, lang: Lang) -> String {
    match s {
        "female" => lang.t("Nữ", "Female").into(),
        "male" => lang.t("Nam", "Male").into(),
        other => other.into(),
    }
}

/// `0-4` → `0–4 tuổi` / `0–4 years`.
pub fn age_band(b: &str, lang: Lang) -> String {
    let b = b.replace('-', "–");
    match lang {
        Lang::Vi => format!("{b} tuổi"),
        Lang::En => format!("{b} years"),
    }
}

pub fn population_group(g: PopulationGroup, lang: Lang) -> &'static str {
    match (g, lang) {
        (PopulationGroup::ChildrenUnder16, Lang::Vi) => "Trẻ em dưới 16 tuổi",
        (PopulationGroup::ChildrenUnder16, Lang::En) => "Children under 16",
        (PopulationGroup::ChildrenUnder5, Lang::Vi) => "Trẻ em dưới 5 tuổi",
        (PopulationGroup::ChildrenUnder5, Lang::En) => "Children under 5",
        (PopulationGroup::ChildrenUnder1, Lang::Vi) => "Trẻ em dưới 1 tuổi",
        (PopulationGroup::ChildrenUnder1, Lang::En) => "Children under 1",
        (PopulationGroup::LiveBirths, Lang::Vi) => "Trẻ đẻ sống trong năm",
        (PopulationGroup::LiveBirths, Lang::En) => "Live births in the year",
        (PopulationGroup::ChildrenAged5, Lang::Vi) => "Trẻ em 5 tuổi",
        (PopulationGroup::ChildrenAged5, Lang::En) => "Children aged 5",
        (PopulationGroup::ChildrenAged5To17, Lang::Vi) => "Trẻ em và người chưa thành niên 5–17 tuổi",
        (PopulationGroup::ChildrenAged5To17, Lang::En) => "Children and minors aged 5–17",
        (PopulationGroup::ChildrenAged7Plus, Lang::Vi) => "Trẻ em từ 7 tuổi trở lên",
        (PopulationGroup::ChildrenAged7Plus, Lang::En) => "Children aged 7 and over",
        (PopulationGroup::ChildrenAged11Plus, Lang::Vi) => "Trẻ em từ 11 tuổi trở lên",
        (PopulationGroup::ChildrenAged11Plus, Lang::En) => "Children aged 11 and over",
        (PopulationGroup::ChildrenUpTo8, Lang::Vi) => "Trẻ em đến 8 tuổi",
        (PopulationGroup::ChildrenUpTo8, Lang::En) => "Children up to 8",
        (PopulationGroup::MarriagesRegistered, Lang::Vi) => "Số cuộc kết hôn đăng ký trong năm",
        (PopulationGroup::MarriagesRegistered, Lang::En) => "Marriages registered in the year",
        (PopulationGroup::Collaborators, Lang::Vi) => "Cộng tác viên bảo vệ trẻ em",
        (PopulationGroup::Collaborators, Lang::En) => "Child-protection collaborators",
    }
}

pub fn recognition(r: Recognition, lang: Lang) -> &'static str {
    match (r, lang) {
        (Recognition::ChildFriendly, Lang::Vi) => "Xã, phường phù hợp với trẻ em (chỉ tiêu 1)",
        (Recognition::ChildFriendly, Lang::En) => "Child-friendly ward (indicator 1)",
        (Recognition::PlaySpace, Lang::Vi) => "Điểm văn hóa, vui chơi dành cho trẻ em (chỉ tiêu 21)",
        (Recognition::PlaySpace, Lang::En) => "Cultural and play space for children (indicator 21)",
    }
}

pub fn event_kind(kind: &str, lang: Lang) -> &'static str {
    match (kind, lang) {
        ("population.reported", Lang::Vi) => "Báo cáo dân số trẻ em",
        ("population.reported", _) => "Population figures",
        ("indicator.observed", Lang::Vi) => "Số liệu chỉ tiêu",
        ("indicator.observed", _) => "Indicator figure",
        ("ward.recognised", Lang::Vi) => "Công nhận xã, phường",
        ("ward.recognised", _) => "Ward recognition",
        ("case.opened", Lang::Vi) => "Mở hồ sơ trẻ em",
        ("case.opened", _) => "Case opened",
        ("case.support_recorded", Lang::Vi) => "Ghi nhận trợ giúp",
        ("case.support_recorded", _) => "Support recorded",
        ("case.closed", Lang::Vi) => "Kết thúc hồ sơ",
        ("case.closed", _) => "Case closed",
        ("event.corrected", Lang::Vi) => "Sửa",
        ("event.corrected", _) => "Correction",
        ("event.retracted", Lang::Vi) => "Rút lại",
        ("event.retracted", _) => "Retraction",
        (_, Lang::Vi) => "Loại khác",
        (_, Lang::En) => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_office_round_trips_through_its_key_and_matches_the_catalogue() {
        for o in OFFICES {
            assert_eq!(office_parse(office_key(o)), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), office_key(o), "key is the catalogue's spelling");
            assert!(!office(o, Lang::Vi).is_empty() && !office(o, Lang::En).is_empty());
        }
        assert_eq!(office_parse("nobody"), None);
        assert_eq!(objective(2, Lang::Vi), "Mục tiêu 2: Về bảo vệ trẻ em");
        assert_eq!(category("child_marriage", Lang::Vi), "Tảo hôn");
        assert_eq!(age_band("11-15", Lang::Vi), "11–15 tuổi");
    }
}
