//! From a submitted form to an event, and from every refusal to a message
//! beside the field it is about, in the officer's language.
//!
//! The checks are the ward's own: a form is first read into the event it
//! describes (a number where a number is due, a known choice in each
//! list), then `Event::validate` — the very check the log and the town
//! run — and finally the log's append (or the case register's, for a new
//! case). Each refusal names its field; English messages are the errors'
//! own text, Vietnamese ones are written here.

use std::collections::BTreeMap;

use treem_proto::catalogue::Catalogue;
use treem_proto::event::{
    AgeBand, CaseCategory, CaseClosed, CaseOpened, CaseSupportRecorded, Event, EventError, IndicatorObserved, PopulationGroup,
    PopulationReported, Recognition, Sex, WardRecognised,
};
use treem_web::Lang;
use uuid::Uuid;

use super::forms::{Errors, FORM, FormKind, Values};
use crate::identity::{Identity, IdentityError, OpenCase};
use crate::log::LogError;

/// What a form describes.
#[derive(Debug, Clone)]
pub enum Parsed {
    Event(Event),
    /// A new case: recorded through the case register with the identity.
    Case(OpenCase),
}

fn first<'a>(v: &'a Values, name: &str) -> &'a str {
    v.get(name).and_then(|x| x.first()).map(|s| s.trim()).unwrap_or("")
}

struct Reader<'a> {
    values: &'a Values,
    lang: Lang,
    errors: Errors,
}

impl Reader<'_> {
    fn fail(&mut self, name: &str, vi: String, en: String) {
        self.errors.entry(name.into()).or_insert(match self.lang {
            Lang::Vi => vi,
            Lang::En => en,
        });
    }

    /// A whole number; thousands may be grouped with dots or spaces ("3.000").
    fn number(&mut self, name: &str, required: bool) -> Option<u64> {
        let raw = first(self.values, name);
        if raw.is_empty() {
            if required {
                self.fail(name, "Hãy nhập ô này.".into(), "This field is required.".into());
            }
            return None;
        }
        let digits: String = raw.chars().filter(|c| !matches!(c, '.' | ' ' | '\u{a0}')).collect();
        match digits.parse::<u64>() {
            Ok(n) if !digits.is_empty() => Some(n),
            _ => {
                self.fail(
                    name,
                    format!("«{raw}» không phải là một số nguyên không âm."),
                    format!("{raw:?} is not a whole number of 0 or more."),
                );
                None
            }
        }
    }

    fn year(&mut self) -> u16 {
        match self.number("year", true) {
            Some(y) => u16::try_from(y).unwrap_or(u16::MAX),
            None => 0,
        }
    }

    fn text(&mut self, name: &str) -> String {
        let raw = first(self.values, name);
        if raw.is_empty() {
            self.fail(name, "Không được để trống.".into(), "This field is required.".into());
        }
        raw.to_string()
    }

    fn choice<T>(&mut self, name: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let raw = first(self.values, name);
        let v = parse(raw);
        if v.is_none() {
            self.fail(name, "Hãy chọn một mục trong danh sách.".into(), "Choose one of the list.".into());
        }
        v
    }

    fn case_id(&mut self) -> Uuid {
        let raw = first(self.values, "case_id");
        match raw.parse::<Uuid>() {
            Ok(id) => id,
            Err(_) => {
                self.fail("case_id", "Hãy chọn một hồ sơ đã mở ở phường, xã này.".into(), "Choose a case opened in this ward.".into());
                Uuid::nil()
            }
        }
    }

    fn letters(&mut self) -> Vec<char> {
        let mut out = Vec::new();
        for l in self.values.get("groups").into_iter().flatten() {
            let mut chars = l.trim().chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => out.push(c),
                _ => self.fail("groups", format!("«{l}» không phải là một điểm của Điều 10."), format!("{l:?} is not a point of art. 10.")),
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn category(s: &str) -> Option<CaseCategory> {
    CaseCategory::parse(s)
}

fn sex(s: &str) -> Option<Sex> {
    match s {
        "female" => Some(Sex::Female),
        "male" => Some(Sex::Male),
        _ => None,
    }
}

/// Reads a form into what it describes, or the messages of its fields.
pub fn parse(kind: FormKind, values: &Values, lang: Lang) -> Result<Parsed, Errors> {
    let mut r = Reader { values, lang, errors: Errors::new() };
    let parsed = match kind {
        FormKind::Population => {
            let year = r.year();
            let mut figures = BTreeMap::new();
            for g in PopulationGroup::ALL {
                if let Some(n) = r.number(&format!("g_{}", g.name()), false) {
                    figures.insert(g, n);
                }
            }
            Parsed::Event(Event::PopulationReported(PopulationReported { year, figures }))
        }
        FormKind::Observation => {
            let indicator = r.text("indicator");
            let year = r.year();
            let numerator = r.number("numerator", true).unwrap_or(0);
            let denominator = r.number("denominator", false);
            let source = r.text("source");
            Parsed::Event(Event::IndicatorObserved(IndicatorObserved { indicator, year, numerator, denominator, source }))
        }
        FormKind::Recognition => {
            let recognition = r.choice("recognition", |s| match s {
                "child_friendly" => Some(Recognition::ChildFriendly),
                "play_space" => Some(Recognition::PlaySpace),
                _ => None,
            });
            let year = r.year();
            let granted = r.choice("granted", |s| s.parse::<bool>().ok());
            Parsed::Event(Event::WardRecognised(WardRecognised {
                recognition: recognition.unwrap_or(Recognition::ChildFriendly),
                year,
                granted: granted.unwrap_or(true),
            }))
        }
        FormKind::CaseOpen => {
            let identity = Identity {
                name: r.text("name"),
                date_of_birth: r.text("date_of_birth"),
                address: r.text("address"),
                guardian: r.text("guardian"),
            };
            let year = r.year();
            let category = r.choice("category", category);
            let groups = r.letters();
            let sex = r.choice("sex", sex);
            Parsed::Case(OpenCase {
                identity,
                year,
                category: category.unwrap_or(CaseCategory::Abuse),
                groups,
                sex: sex.unwrap_or(Sex::Female),
            })
        }
        FormKind::CaseCoarse => {
            let year = r.year();
            let category = r.choice("category", category);
            let groups = r.letters();
            let sex = r.choice("sex", sex);
            let age_band = r.choice("age_band", |s| match s {
                "0-4" => Some(AgeBand::Under5),
                "5-10" => Some(AgeBand::From5To10),
                "11-15" => Some(AgeBand::From11To15),
                "16-17" => Some(AgeBand::From16To17),
                _ => None,
            });
            // The case id is the corrected event's; the caller puts it back.
            Parsed::Event(Event::CaseOpened(CaseOpened {
                case_id: Uuid::nil(),
                year,
                category: category.unwrap_or(CaseCategory::Abuse),
                groups,
                sex: sex.unwrap_or(Sex::Female),
                age_band: age_band.unwrap_or(AgeBand::Under5),
            }))
        }
        FormKind::Support => {
            let case_id = r.case_id();
            let year = r.year();
            let support = r.text("support");
            Parsed::Event(Event::CaseSupportRecorded(CaseSupportRecorded { case_id, year, support }))
        }
        FormKind::Close => {
            let case_id = r.case_id();
            let year = r.year();
            let reason = r.text("reason");
            Parsed::Event(Event::CaseClosed(CaseClosed { case_id, year, reason }))
        }
    };
    if r.errors.is_empty() { Ok(parsed) } else { Err(r.errors) }
}

fn one(field: &str, message: String) -> Errors {
    Errors::from([(field.to_string(), message)])
}

/// `Event::validate`'s refusal, beside its field.
pub fn event_error(e: &EventError, catalogue: &Catalogue, lang: Lang) -> Errors {
    let (field, vi) = match e {
        EventError::YearOutOfRange { year } => {
            ("year", format!("Năm {year} nằm ngoài giai đoạn của kế hoạch (2021–2030); hãy nhập một năm trong khoảng đó."))
        }
        EventError::UnknownIndicator { code, .. } => ("indicator", format!("Không có chỉ tiêu «{code}» trong bộ chỉ tiêu của kế hoạch.")),
        EventError::NumeratorAboveDenominator { numerator, denominator, .. } => (
            "numerator",
            format!("Tử số {numerator} lớn hơn mẫu số {denominator}: một tỷ lệ không thể vượt quá tổng của nó; hãy kiểm tra lại hai số."),
        ),
        EventError::MissingDenominator { code, .. } => {
            let what = catalogue.get(code).and_then(|i| i.denominator_en.clone()).unwrap_or_default();
            (
                "denominator",
                format!(
                    "Chỉ tiêu {code} là một tỷ lệ: hãy nhập mẫu số{}.",
                    if what.is_empty() { String::new() } else { format!(" ({what})") }
                ),
            )
        }
        EventError::ZeroDenominator { .. } => ("denominator", "Mẫu số phải từ 1 trở lên.".to_string()),
        EventError::NotObservable { code, .. } => (
            "indicator",
            format!("Chỉ tiêu {code} do hệ thống tự tính từ hồ sơ và số liệu dân số; không nhập trực tiếp — hãy ghi các hồ sơ và dân số."),
        ),
        EventError::EmptyPopulation { .. } => (FORM, "Hãy nhập ít nhất một số liệu dân số.".to_string()),
        EventError::BadGroupLetter { letter } => {
            ("groups", format!("«{letter}» không phải là một điểm của Điều 10 (a, b, c, d, đ, e, g, h, i, k, l, m, n, o)."))
        }
        EventError::MissingGroups => {
            ("groups", "Trẻ em có hoàn cảnh đặc biệt cần ít nhất một nhóm (một điểm của Điều 10 Luật Trẻ em).".to_string())
        }
        EventError::GroupsOnWrongCategory { .. } => {
            ("groups", "Nhóm theo Điều 10 chỉ dùng cho trẻ em có hoàn cảnh đặc biệt; hãy bỏ chọn các điểm.".to_string())
        }
        EventError::Empty { field } => (*field, "Không được để trống.".to_string()),
        EventError::TooLong { field, len, max } => (*field, format!("Quá dài: {len} ký tự, tối đa {max}.")),
        EventError::NestedCorrection => (FORM, "Không thể sửa hoặc rút lại một lần sửa hay rút lại; hãy sửa sự kiện gốc.".to_string()),
    };
    one(
        field,
        match lang {
            Lang::Vi => vi,
            Lang::En => e.to_string(),
        },
    )
}

/// The log's refusal (or failure), beside its field or over the form.
pub fn log_error(e: &LogError, catalogue: &Catalogue, lang: Lang) -> Errors {
    if let LogError::Invalid(inner) = e {
        return event_error(inner, catalogue, lang);
    }
    let (field, vi) = match e {
        LogError::UnknownCase { case_id } => {
            ("case_id", format!("Hồ sơ {case_id} không được mở ở phường, xã này; hãy chọn một hồ sơ trong danh sách."))
        }
        LogError::TooLarge { .. } => (FORM, "Sự kiện quá lớn; hãy rút ngắn các ô chữ.".to_string()),
        LogError::BadAuthor(_) => (FORM, "Tên người ghi không dùng được; hãy báo quản trị viên sửa cấu hình «author».".to_string()),
        LogError::UnknownEvent { .. } => (FORM, "Sự kiện cần sửa không có trong sổ của phường, xã này.".to_string()),
        LogError::NestedCorrection { .. } => (FORM, "Không thể sửa một lần sửa hay rút lại; hãy sửa sự kiện gốc.".to_string()),
        LogError::KindMismatch { .. } => (FORM, "Bản sửa phải cùng loại với sự kiện được sửa.".to_string()),
        LogError::CaseIdChanged { .. } => (FORM, "Bản sửa phải giữ nguyên mã hồ sơ.".to_string()),
        LogError::DiskFull { .. } | LogError::NotDurableDiskFull(_) => (
            FORM,
            "Ổ đĩa đã đầy nên chưa ghi được; mọi sự kiện ghi trước vẫn còn nguyên. Hãy xóa bớt hoặc chuyển tệp đi nơi khác rồi ghi lại."
                .to_string(),
        ),
        other => (FORM, format!("Không ghi được vào sổ: {other}")),
    };
    one(
        field,
        match lang {
            Lang::Vi => vi,
            Lang::En => e.to_string(),
        },
    )
}

/// The case register's refusal, beside its field.
pub fn identity_error(e: &IdentityError, catalogue: &Catalogue, lang: Lang) -> Errors {
    if let IdentityError::Log(inner) = e {
        return log_error(inner, catalogue, lang);
    }
    let dmy = |d: &chrono::NaiveDate| d.format("%d/%m/%Y").to_string();
    let (field, vi) = match e {
        IdentityError::Empty { field } => (*field, "Không được để trống.".to_string()),
        IdentityError::TooLong { field, len } => (*field, format!("Quá dài: {len} ký tự.")),
        IdentityError::BadDate { value } => {
            ("date_of_birth", format!("«{value}» không phải là một ngày; hãy nhập theo dạng năm-tháng-ngày, ví dụ 2015-09-02."))
        }
        IdentityError::FutureBirth { dob, today } => {
            ("date_of_birth", format!("Ngày sinh {} ở tương lai (hôm nay là {}); hãy kiểm tra lại.", dmy(dob), dmy(today)))
        }
        IdentityError::BornAfterCaseYear { dob, year } => {
            ("date_of_birth", format!("Ngày sinh {} sau năm mở hồ sơ {year}; hãy kiểm tra ngày sinh hoặc năm.", dmy(dob)))
        }
        IdentityError::NotAChild { dob, age, year } => {
            ("date_of_birth", format!("Trẻ sinh ngày {} đã {age} tuổi vào 1/7/{year}; hồ sơ chỉ dành cho trẻ dưới 18 tuổi.", dmy(dob)))
        }
        other => (FORM, format!("Không ghi được hồ sơ: {other}")),
    };
    one(
        field,
        match lang {
            Lang::Vi => vi,
            Lang::En => e.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        let mut v = Values::new();
        for (k, x) in pairs {
            v.entry(k.to_string()).or_default().push(x.to_string());
        }
        v
    }

    #[test]
    fn fields_are_read_and_refusals_land_beside_them_in_vietnamese() {
        let c = Catalogue::shipped();
        let Parsed::Event(e) = parse(
            FormKind::Population,
            &values(&[("year", "2024"), ("g_children_under_16", "3.000"), ("g_collaborators", "12")]),
            Lang::Vi,
        )
        .unwrap() else {
            panic!()
        };
        let Event::PopulationReported(p) = &e else { panic!() };
        assert_eq!(p.figures[&PopulationGroup::ChildrenUnder16], 3000, "3.000 is three thousand");
        assert_eq!(p.figures[&PopulationGroup::Collaborators], 12);

        let errs = parse(
            FormKind::Observation,
            &values(&[("indicator", "4a"), ("year", "hai"), ("numerator", ""), ("source", "school")]),
            Lang::Vi,
        )
        .unwrap_err();
        assert_eq!(errs["year"], "«hai» không phải là một số nguyên không âm.");
        assert_eq!(errs["numerator"], "Hãy nhập ô này.");

        let Parsed::Event(e) = parse(
            FormKind::Observation,
            &values(&[("indicator", "4a"), ("year", "2035"), ("numerator", "7"), ("denominator", "5"), ("source", "school")]),
            Lang::Vi,
        )
        .unwrap() else {
            panic!()
        };
        let errs = event_error(&e.validate(&c).unwrap_err(), &c, Lang::Vi);
        assert!(errs["year"].starts_with("Năm 2035 nằm ngoài giai đoạn"), "{errs:?}");
        let Parsed::Event(e) = parse(
            FormKind::Observation,
            &values(&[("indicator", "4a"), ("year", "2024"), ("numerator", "7"), ("denominator", "5"), ("source", "school")]),
            Lang::Vi,
        )
        .unwrap() else {
            panic!()
        };
        let errs = event_error(&e.validate(&c).unwrap_err(), &c, Lang::Vi);
        assert_eq!(errs["numerator"], "Tử số 7 lớn hơn mẫu số 5: một tỷ lệ không thể vượt quá tổng của nó; hãy kiểm tra lại hai số.");
        let errs = event_error(&e.validate(&c).unwrap_err(), &c, Lang::En);
        assert!(errs["numerator"].contains("greater than denominator"), "English is the error's own text");

        let Parsed::Event(e) = parse(FormKind::Population, &values(&[("year", "2024")]), Lang::Vi).unwrap() else { panic!() };
        assert_eq!(event_error(&e.validate(&c).unwrap_err(), &c, Lang::Vi)[FORM], "Hãy nhập ít nhất một số liệu dân số.");
    }
}
