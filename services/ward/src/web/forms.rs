//! The data-entry forms, one per event kind an officer records: which
//! fields each has, how they are drawn (with the value typed and the
//! message of a refused field beside it), and how an earlier event fills a
//! form again for its correction.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use treem_proto::catalogue::{Catalogue, Method};
use treem_proto::event::{CaseCategory, Event, PopulationGroup, Recognition};
use treem_web::html::esc;
use treem_web::{Lang, labels};

/// What was typed: field name → values (several for the art. 10 letters).
pub type Values = BTreeMap<String, Vec<String>>;
/// Field name → the message shown beside it; `""` is the whole form's.
pub type Errors = BTreeMap<String, String>;

/// The key of the whole form's message in [`Errors`].
pub const FORM: &str = "";

/// One form of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Population,
    Observation,
    Recognition,
    /// `case.opened` with the child's identity (kept in the ward).
    CaseOpen,
    /// `case.opened` as corrected: coarse attributes only, never the identity.
    CaseCoarse,
    Support,
    Close,
}

impl FormKind {
    pub const NEW: [FormKind; 6] =
        [FormKind::Population, FormKind::Observation, FormKind::Recognition, FormKind::CaseOpen, FormKind::Support, FormKind::Close];

    /// The URL segment of `POST /entry/{slug}` and the form's anchor.
    pub fn slug(self) -> &'static str {
        match self {
            FormKind::Population => "population",
            FormKind::Observation => "indicator",
            FormKind::Recognition => "recognition",
            FormKind::CaseOpen => "case",
            FormKind::CaseCoarse => "case-attributes",
            FormKind::Support => "support",
            FormKind::Close => "close",
        }
    }

    pub fn from_slug(s: &str) -> Option<FormKind> {
        [
            FormKind::Population,
            FormKind::Observation,
            FormKind::Recognition,
            FormKind::CaseOpen,
            FormKind::CaseCoarse,
            FormKind::Support,
            FormKind::Close,
        ]
        .into_iter()
        .find(|k| k.slug() == s)
    }

    /// The event kind the form records.
    pub fn event_kind(self) -> &'static str {
        match self {
            FormKind::Population => "population.reported",
            FormKind::Observation => "indicator.observed",
            FormKind::Recognition => "ward.recognised",
            FormKind::CaseOpen | FormKind::CaseCoarse => "case.opened",
            FormKind::Support => "case.support_recorded",
            FormKind::Close => "case.closed",
        }
    }

    fn intro(self, lang: Lang) -> &'static str {
        match self {
            FormKind::Population => lang.t(
                "Mẫu số của các tỷ lệ: số trẻ em theo nhóm tuổi, số trẻ đẻ sống, số cuộc kết hôn và số cộng tác viên của năm. Chỉ nhập các ô đã có số liệu; báo cáo sau của cùng năm thay thế báo cáo trước.",
                "The denominators of the rates: children by age group, live births, marriages and collaborators of the year. Fill only the figures you have; a later report for the same year replaces this one.",
            ),
            FormKind::Observation => lang.t(
                "Tử số và mẫu số của một chỉ tiêu do cơ quan chuyên môn đo (y tế, giáo dục, tư pháp…).",
                "The numerator and denominator of an indicator measured by an office (health, schools, justice…).",
            ),
            FormKind::Recognition => lang.t(
                "Phường, xã được công nhận (hoặc mất công nhận) cho chỉ tiêu 1 và 21.",
                "The ward gains (or loses) a recognition counted by indicators 1 and 21.",
            ),
            FormKind::CaseOpen => lang.t(
                "Danh tính của trẻ chỉ lưu trên máy này (mã hóa); thị xã chỉ nhận nhóm, giới tính, độ tuổi và năm.",
                "The child's identity stays on this computer (encrypted); the town receives only category, sex, age band and year.",
            ),
            FormKind::CaseCoarse => lang.t("Sửa các thông tin thị xã nhận được; danh tính không đổi ở đây.", "Correct what the town receives; the identity is not changed here."),
            FormKind::Support => lang.t("Trợ giúp trẻ đã nhận (chỉ tiêu 8b, 12).", "Support the child received (indicators 8b, 12)."),
            FormKind::Close => lang.t("Kết thúc theo dõi một hồ sơ.", "Close a case."),
        }
    }
}

/// How a field is typed.
#[derive(Debug, Clone)]
pub enum Input {
    Number,
    Text,
    Date,
    Select(Vec<(String, String)>),
    /// Check boxes for the points of art. 10 (a, b, c, d, đ, e, g, h, i, k, l, m, n, o).
    Letters,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub input: Input,
    pub required: bool,
    pub hint: Option<String>,
}

fn field(name: &str, label: &str, input: Input, required: bool) -> Field {
    Field { name: name.into(), label: label.into(), input, required, hint: None }
}

fn hint(mut f: Field, h: impl Into<String>) -> Field {
    f.hint = Some(h.into());
    f
}

fn year(lang: Lang) -> Field {
    hint(field("year", lang.t("Năm", "Year"), Input::Number, true), "2021–2030")
}

/// An open case the officer can pick, by its short id.
#[derive(Debug, Clone)]
pub struct KnownCase {
    pub case_id: String,
    pub label: String,
}

pub const SUPPORTS: [(&str, &str, &str); 6] = [
    ("care", "Chăm sóc", "Care"),
    ("nurture", "Nuôi dưỡng", "Nurture"),
    ("relief", "Cứu trợ", "Relief"),
    ("medical", "Y tế", "Medical"),
    ("legal", "Pháp lý", "Legal"),
    ("education", "Giáo dục", "Education"),
];

pub const SOURCES: [(&str, &str, &str); 5] = [
    ("health_centre", "Trạm y tế, Trung tâm Y tế", "Health centre"),
    ("school", "Trường học", "School"),
    ("ward_survey", "Khảo sát của phường, xã", "Ward survey"),
    ("justice", "Tư pháp – hộ tịch", "Justice (civil registry)"),
    ("police", "Công an", "Police"),
];

/// The fields of a form, in order.
pub fn fields(kind: FormKind, lang: Lang, catalogue: &Catalogue, cases: &[KnownCase]) -> Vec<Field> {
    let case_field = || {
        let mut options = vec![(String::new(), lang.t("— chọn hồ sơ —", "— choose a case —").to_string())];
        options.extend(cases.iter().map(|c| (c.case_id.clone(), c.label.clone())));
        field("case_id", lang.t("Hồ sơ", "Case"), Input::Select(options), true)
    };
    let categories = || CaseCategory::ALL.iter().map(|c| (c.name().to_string(), labels::category(c.name(), lang))).collect::<Vec<_>>();
    let sexes = || vec![("female".to_string(), labels::sex("female", lang)), ("male".to_string(), labels::sex("male", lang))];
    let groups = || {
        hint(
            field("groups", lang.t("Nhóm theo Điều 10 Luật Trẻ em", "Groups of art. 10, Law on Children"), Input::Letters, false),
            lang.t(
                "Chỉ với trẻ em có hoàn cảnh đặc biệt: chọn ít nhất một điểm của Điều 10.",
                "Special circumstances only: tick at least one point of art. 10.",
            ),
        )
    };
    match kind {
        FormKind::Population => {
            let mut f = vec![year(lang)];
            f.extend(
                PopulationGroup::ALL
                    .iter()
                    .map(|g| field(&format!("g_{}", g.name()), labels::population_group(*g, lang), Input::Number, false)),
            );
            f
        }
        FormKind::Observation => {
            let options = catalogue
                .indicators
                .iter()
                .filter(|i| matches!(i.method, Method::Observed))
                .map(|i| (i.code.clone(), format!("{} — {}", i.code, lang.t(&i.name_vi, &i.name_en))))
                .collect();
            vec![
                field("indicator", lang.t("Chỉ tiêu", "Indicator"), Input::Select(options), true),
                year(lang),
                field("numerator", lang.t("Tử số", "Numerator"), Input::Number, true),
                hint(
                    field("denominator", lang.t("Mẫu số", "Denominator"), Input::Number, false),
                    lang.t("Bắt buộc với chỉ tiêu là tỷ lệ.", "Required for a rate."),
                ),
                field(
                    "source",
                    lang.t("Nguồn số liệu", "Source"),
                    Input::Select(SOURCES.iter().map(|(k, vi, en)| (k.to_string(), lang.t(vi, en).to_string())).collect()),
                    true,
                ),
            ]
        }
        FormKind::Recognition => vec![
            field(
                "recognition",
                lang.t("Công nhận", "Recognition"),
                Input::Select(
                    [Recognition::ChildFriendly, Recognition::PlaySpace]
                        .iter()
                        .map(|r| (recognition_key(*r).to_string(), labels::recognition(*r, lang).to_string()))
                        .collect(),
                ),
                true,
            ),
            year(lang),
            field(
                "granted",
                lang.t("Kết quả", "Outcome"),
                Input::Select(vec![
                    ("true".into(), lang.t("Được công nhận", "Granted").into()),
                    ("false".into(), lang.t("Mất công nhận", "Lost").into()),
                ]),
                true,
            ),
        ],
        FormKind::CaseOpen => vec![
            field("name", lang.t("Họ và tên trẻ", "Child's full name"), Input::Text, true),
            hint(
                field("date_of_birth", lang.t("Ngày sinh", "Date of birth"), Input::Date, true),
                lang.t("Năm-tháng-ngày, ví dụ 2015-09-02", "Year-month-day, e.g. 2015-09-02"),
            ),
            field("address", lang.t("Địa chỉ (ấp, khu phố)", "Address (hamlet)"), Input::Text, true),
            field("guardian", lang.t("Cha mẹ hoặc người giám hộ", "Parent or guardian"), Input::Text, true),
            year(lang),
            field("category", lang.t("Nhóm hồ sơ", "Category"), Input::Select(categories()), true),
            groups(),
            field("sex", lang.t("Giới tính", "Sex"), Input::Select(sexes()), true),
        ],
        FormKind::CaseCoarse => vec![
            year(lang),
            field("category", lang.t("Nhóm hồ sơ", "Category"), Input::Select(categories()), true),
            groups(),
            field("sex", lang.t("Giới tính", "Sex"), Input::Select(sexes()), true),
            field(
                "age_band",
                lang.t("Độ tuổi", "Age band"),
                Input::Select(["0-4", "5-10", "11-15", "16-17"].iter().map(|b| (b.to_string(), labels::age_band(b, lang))).collect()),
                true,
            ),
        ],
        FormKind::Support => vec![
            case_field(),
            year(lang),
            field(
                "support",
                lang.t("Hình thức trợ giúp", "Support"),
                Input::Select(SUPPORTS.iter().map(|(k, vi, en)| (k.to_string(), lang.t(vi, en).to_string())).collect()),
                true,
            ),
        ],
        FormKind::Close => vec![case_field(), year(lang), field("reason", lang.t("Lý do kết thúc", "Reason"), Input::Text, true)],
    }
}

pub fn recognition_key(r: Recognition) -> &'static str {
    match r {
        Recognition::ChildFriendly => "child_friendly",
        Recognition::PlaySpace => "play_space",
    }
}

fn first<'a>(values: &'a Values, name: &str) -> &'a str {
    values.get(name).and_then(|v| v.first()).map(String::as_str).unwrap_or("")
}

fn control(f: &Field, values: &Values, id: &str) -> String {
    let v = first(values, &f.name);
    let req = if f.required { " required" } else { "" };
    match &f.input {
        Input::Number => format!("<input id=\"{id}\" name=\"{}\" inputmode=\"numeric\" value=\"{}\"{req}>", esc(&f.name), esc(v)),
        Input::Text => format!("<input id=\"{id}\" name=\"{}\" value=\"{}\" maxlength=\"200\"{req}>", esc(&f.name), esc(v)),
        Input::Date => format!("<input id=\"{id}\" name=\"{}\" type=\"date\" value=\"{}\"{req}>", esc(&f.name), esc(v)),
        Input::Select(options) => {
            let mut s = format!("<select id=\"{id}\" name=\"{}\"{req}>", esc(&f.name));
            for (value, label) in options {
                let sel = if value == v { " selected" } else { "" };
                let _ = write!(s, "<option value=\"{}\"{sel}>{}</option>", esc(value), esc(label));
            }
            s.push_str("</select>");
            s
        }
        Input::Letters => {
            let chosen: Vec<&str> = values.get(&f.name).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default();
            let mut s = String::from("<span class=\"letters\">");
            for l in treem_proto::event::ART10_POINTS {
                let l = l.to_string();
                let checked = if chosen.contains(&l.as_str()) { " checked" } else { "" };
                let _ = write!(s, "<label><input type=\"checkbox\" name=\"{}\" value=\"{l}\"{checked}> {l}</label>", esc(&f.name));
            }
            s.push_str("</span>");
            s
        }
    }
}

// Each argument is one part of what a form shows; a struct of them would
// only be built to be taken apart here.
#[allow(clippy::too_many_arguments)]
/// A whole form: `action`, its fields with values and messages, extra
/// fields (`reason` of a correction) and the submit button.
pub fn render(
    kind: FormKind,
    lang: Lang,
    action: &str,
    fields: &[Field],
    values: &Values,
    errors: &Errors,
    extra: &[Field],
    submit: &str,
) -> String {
    let invalid = !errors.is_empty();
    let mut s = format!(
        "<form class=\"card entry{}\" id=\"f-{slug}\" method=\"post\" action=\"{}\" data-kind=\"{}\" novalidate><h3>{}</h3><p class=\"small\">{}</p>",
        if invalid { " invalid" } else { "" },
        esc(action),
        kind.event_kind(),
        labels::event_kind(kind.event_kind(), lang),
        kind.intro(lang),
        slug = kind.slug(),
    );
    if let Some(msg) = errors.get(FORM) {
        let _ = write!(s, "<p class=\"form-error\" role=\"alert\">{}</p>", esc(msg));
    } else if invalid {
        let _ = write!(
            s,
            "<p class=\"form-error\" role=\"alert\">{}</p>",
            lang.t("Chưa ghi: hãy sửa các ô báo đỏ.", "Not recorded: fix the fields marked in red.")
        );
    }
    let grid = kind == FormKind::Population;
    if grid {
        s.push_str("<div class=\"grid2\">");
    }
    for f in fields.iter().chain(extra) {
        let id = format!("{}-{}", kind.slug(), f.name);
        let err = errors.get(&f.name);
        let _ = write!(
            s,
            "<div class=\"field{}\" data-field=\"{}\"><label for=\"{id}\">{}</label>{}",
            if err.is_some() { " invalid" } else { "" },
            esc(&f.name),
            esc(&f.label),
            control(f, values, &id)
        );
        if let Some(h) = &f.hint {
            let _ = write!(s, "<span class=\"hint\">{}</span>", esc(h));
        }
        if let Some(e) = err {
            let _ = write!(s, "<span class=\"error\" role=\"alert\">{}</span>", esc(e));
        }
        s.push_str("</div>");
    }
    if grid {
        s.push_str("</div>");
    }
    let _ =
        write!(s, "<input type=\"hidden\" name=\"lang\" value=\"{}\"><button type=\"submit\">{}</button></form>", lang.code(), esc(submit));
    s
}

fn put(v: &mut Values, name: &str, value: impl ToString) {
    v.insert(name.into(), vec![value.to_string()]);
}

/// The form and values that show `event` again, for its correction.
pub fn values_of(event: &Event) -> Option<(FormKind, Values)> {
    let mut v = Values::new();
    let kind = match event {
        Event::PopulationReported(p) => {
            put(&mut v, "year", p.year);
            for (g, n) in &p.figures {
                put(&mut v, &format!("g_{}", g.name()), n);
            }
            FormKind::Population
        }
        Event::IndicatorObserved(o) => {
            put(&mut v, "indicator", &o.indicator);
            put(&mut v, "year", o.year);
            put(&mut v, "numerator", o.numerator);
            if let Some(d) = o.denominator {
                put(&mut v, "denominator", d);
            }
            put(&mut v, "source", &o.source);
            FormKind::Observation
        }
        Event::WardRecognised(r) => {
            put(&mut v, "recognition", recognition_key(r.recognition));
            put(&mut v, "year", r.year);
            put(&mut v, "granted", r.granted);
            FormKind::Recognition
        }
        Event::CaseOpened(c) => {
            put(&mut v, "year", c.year);
            put(&mut v, "category", c.category.name());
            v.insert("groups".into(), c.groups.iter().map(char::to_string).collect());
            put(&mut v, "sex", c.sex.name());
            put(&mut v, "age_band", c.age_band.name());
            FormKind::CaseCoarse
        }
        Event::CaseSupportRecorded(s) => {
            put(&mut v, "case_id", s.case_id);
            put(&mut v, "year", s.year);
            put(&mut v, "support", &s.support);
            FormKind::Support
        }
        Event::CaseClosed(c) => {
            put(&mut v, "case_id", c.case_id);
            put(&mut v, "year", c.year);
            put(&mut v, "reason", &c.reason);
            FormKind::Close
        }
        Event::EventCorrected(_) | Event::EventRetracted(_) => return None,
    };
    Some((kind, v))
}
