//! The dashboard page (bảng theo dõi), the same for a town over its wards
//! and for a province over its towns:
//!
//! 1. filters: the year, the responsible office (plan section E), the language;
//! 2. a count of indicators per status;
//! 3. per objective (Mục tiêu 1–4), every indicator and sub-indicator: the
//!    value of the year with its numerator and denominator, the 2025 and
//!    2030 targets, the baseline, the status with its reason, a trend chart
//!    2021–2030, and (folded) the comparison between the units below;
//! 4. case summaries (officers only);
//! 5. sync health of each unit, highlighted when it has been silent too long.
//!
//! The service builds a [`Dashboard`] from its own store; [`render`] is a
//! pure function of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use treem_proto::catalogue::{Indicator, Office, Unit};
use treem_proto::event::{FIRST_YEAR, LAST_YEAR};
use treem_proto::judge::{IndicatorProgress, Status};

use crate::html::{self, Page, Reader, esc};
use crate::sparkline::{self, Trend};
use crate::{Lang, format, labels, reason};

/// What the units under the scope are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A town's dashboard: its wards (xã, phường).
    Town,
    /// A province's dashboard: its towns (huyện, thị xã, thành phố).
    Province,
}

impl Level {
    pub fn units(self, lang: Lang) -> &'static str {
        match self {
            Level::Town => lang.t("Phường, xã", "Ward"),
            Level::Province => lang.t("Huyện, thị xã", "Town"),
        }
    }
    fn compare(self, lang: Lang) -> &'static str {
        match self {
            Level::Town => lang.t("So sánh giữa các phường, xã", "Compare wards"),
            Level::Province => lang.t("So sánh giữa các huyện, thị xã", "Compare towns"),
        }
    }
}

/// A ward (of a town) or a town (of a province).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRef {
    pub code: String,
    pub name: String,
}

/// A judged figure, or the note that it was withheld.
#[derive(Debug, Clone)]
pub struct Figure {
    pub progress: IndicatorProgress,
    /// Why no number is shown: a small sensitive count withheld (never zero).
    pub suppressed: Option<String>,
}

/// One indicator: its figure for the scope, its trend, and each unit's.
#[derive(Debug, Clone)]
pub struct IndicatorRow {
    pub indicator: Indicator,
    pub scope: Figure,
    /// The scope's value of every year 2021–2030.
    pub trend: Vec<(u16, Option<f64>)>,
    /// Aligned with [`Dashboard::units`].
    pub units: Vec<Figure>,
}

/// Cases of one category.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseRow {
    pub category: String,
    /// `None`: withheld (small sensitive count).
    pub total: Option<u64>,
    pub supported: Option<u64>,
    pub by_status: BTreeMap<String, u64>,
    pub by_sex: BTreeMap<String, u64>,
    pub by_age_band: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub enum Cases {
    /// The reader may not see case summaries (needs the officer role).
    NeedsOfficer,
    /// Case summaries could not be served (say, the audit log failed).
    Unavailable(String),
    Shown {
        rows: Vec<CaseRow>,
        /// Whether status, sex and age band are known (the town: yes; the province: totals only).
        detailed: bool,
        /// Unit code → category → cases (`None`: withheld).
        per_unit: BTreeMap<String, BTreeMap<String, Option<u64>>>,
        note: Option<String>,
    },
}

/// Sync health of one unit.
#[derive(Debug, Clone)]
pub struct SyncRow {
    pub unit: UnitRef,
    /// When its newest data was made (a ward's newest event recorded; a town's newest snapshot produced).
    pub last_at: Option<DateTime<Utc>>,
    pub lag_seconds: Option<i64>,
    /// Silent longer than the threshold (or never heard from).
    pub silent: bool,
    /// Further cells, under [`SyncTable::columns`].
    pub cells: Vec<String>,
    /// A problem to show in red (a gap, parked messages).
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncTable {
    pub silent_after_days: u32,
    pub columns: Vec<String>,
    pub rows: Vec<SyncRow>,
    /// Problems of the node itself (stream unreachable, outbox stuck).
    pub problems: Vec<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub lang: Lang,
    pub level: Level,
    /// "Thị xã Bình Long", "Tỉnh Bình Phước".
    pub place: String,
    pub year: u16,
    pub office: Option<Office>,
    pub reader: Option<Reader>,
    pub generated_at: DateTime<Utc>,
    pub units: Vec<UnitRef>,
    pub rows: Vec<IndicatorRow>,
    pub cases: Cases,
    pub sync: SyncTable,
    /// Extra navigation (e.g. the town's reports).
    pub nav: Vec<(String, String)>,
    /// The path the filters submit to.
    pub path: String,
}

/// The scope's value with its unit, or the reason none is shown.
pub fn value_cell(ind: &Indicator, f: &Figure, lang: Lang) -> String {
    if f.suppressed.is_some() {
        return format!("<span class=\"suppressed\">{}</span>", lang.t("đã ẩn", "withheld"));
    }
    match f.progress.value {
        Some(v) => {
            let frac = match (f.progress.numerator, f.progress.denominator) {
                (Some(n), Some(d)) => format!("<div class=\"frac\">{}/{}</div>", format::count(n, lang), format::count(d, lang)),
                _ => String::new(),
            };
            format!("<strong>{}</strong> {}{frac}", format::value(v, lang), esc(labels::unit(ind.unit, lang)))
        }
        None => "<span class=\"small\">—</span>".into(),
    }
}

/// The status badge and its reason.
pub fn status_cell(ind: &Indicator, f: &Figure, lang: Lang, with_reason: bool) -> String {
    let status = if f.suppressed.is_some() { Status::NoData } else { f.progress.status };
    let label = if f.suppressed.is_some() { lang.t("Đã ẩn số nhỏ", "Withheld") } else { labels::status(status, lang) };
    let mut s =
        format!("<span class=\"badge {}\" data-status=\"{}\">{}</span>", labels::status_class(status), labels::status_key(status), label);
    if with_reason {
        let why = match &f.suppressed {
            Some(r) => r.clone(),
            None => reason::reason(ind, &f.progress, lang),
        };
        let _ = write!(s, "<span class=\"reason\">{}</span>", esc(&why));
    }
    s
}

fn target_cell(ind: &Indicator, year: u16, lang: Lang) -> String {
    match ind.targets.iter().find(|t| t.year == year) {
        Some(t) => format!("<span title=\"{}\">{}</span>", esc(&t.wording_vi), esc(&reason::level(t, ind, lang))),
        None => "<span class=\"small\">—</span>".into(),
    }
}

fn baseline_cell(ind: &Indicator, lang: Lang) -> String {
    match &ind.baseline {
        Some(b) => format!(
            "<span title=\"{}\">{} {}</span><div class=\"small\">({})</div>",
            esc(&b.source_vi),
            format::value(b.value, lang),
            esc(labels::unit(ind.unit, lang)),
            b.year
        ),
        None => "<span class=\"small\">—</span>".into(),
    }
}

fn trend_svg(row: &IndicatorRow, year: u16, lang: Lang) -> String {
    let ind = &row.indicator;
    sparkline::svg(
        &Trend {
            points: row.trend.clone(),
            targets: ind.targets.iter().filter(|t| t.year == 2025 || t.year == 2030).map(|t| (t.year, t.value)).collect(),
            baseline: ind.baseline.as_ref().map(|b| (b.year, b.value)),
            highlight: year,
            unit: labels::unit(ind.unit, lang).to_string(),
        },
        lang,
    )
}

fn filters(d: &Dashboard) -> String {
    let lang = d.lang;
    let mut s = format!("<form class=\"filters noprint\" method=\"get\" action=\"{}\">", esc(&d.path));
    let _ = write!(s, "<div><label for=\"year\">{}</label><select id=\"year\" name=\"year\">", lang.t("Năm", "Year"));
    for y in FIRST_YEAR..=LAST_YEAR {
        let sel = if y == d.year { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{y}\"{sel}>{y}</option>");
    }
    let _ = write!(
        s,
        "</select></div><div><label for=\"office\">{}</label><select id=\"office\" name=\"office\"><option value=\"\">{}</option>",
        lang.t("Cơ quan chủ trì", "Lead office"),
        lang.t("Tất cả các cơ quan", "All offices")
    );
    for o in labels::OFFICES {
        let sel = if d.office == Some(o) { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{}\"{sel}>{}</option>", labels::office_key(o), esc(labels::office(o, lang)));
    }
    let _ = write!(
        s,
        "</select></div><input type=\"hidden\" name=\"lang\" value=\"{}\"><div><button type=\"submit\">{}</button></div></form>",
        lang.code(),
        lang.t("Xem", "Show")
    );
    s
}

fn units_table(d: &Dashboard, row: &IndicatorRow) -> String {
    let lang = d.lang;
    let ind = &row.indicator;
    let mut s = format!(
        "<details><summary>{} ({})</summary><table class=\"units\"><thead><tr><th>{}</th><th class=\"num\">{} {}</th><th>{}</th></tr></thead><tbody>",
        d.level.compare(lang),
        d.units.len(),
        d.level.units(lang),
        lang.t("Năm", "Year"),
        d.year,
        lang.t("Tình trạng", "Status")
    );
    for (u, f) in d.units.iter().zip(&row.units) {
        let _ = write!(
            s,
            "<tr data-unit=\"{}\"><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&u.code),
            esc(&u.name),
            value_cell(ind, f, lang),
            status_cell(ind, f, lang, false)
        );
    }
    s.push_str("</tbody></table></details>");
    s
}

fn indicators(d: &Dashboard, rows: &[&IndicatorRow]) -> String {
    let lang = d.lang;
    let mut s = String::new();
    for objective in 1..=4u8 {
        let mine: Vec<&&IndicatorRow> = rows.iter().filter(|r| r.indicator.objective == objective).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            "<h2 id=\"muc-tieu-{objective}\">{}</h2><table class=\"indicators\"><thead><tr><th>{}</th><th class=\"num\">{} {}</th><th class=\"num\">{} 2025</th><th class=\"num\">{} 2030</th><th class=\"num\">{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            esc(&labels::objective(objective, lang)),
            lang.t("Chỉ tiêu", "Indicator"),
            lang.t("Năm", "Year"),
            d.year,
            lang.t("Chỉ tiêu", "Target"),
            lang.t("Chỉ tiêu", "Target"),
            lang.t("Số liệu gốc", "Baseline"),
            lang.t("Tình trạng và lý do", "Status and reason"),
            lang.t("Xu hướng 2021–2030", "Trend 2021–2030"),
        );
        for row in mine {
            let ind = &row.indicator;
            let name = lang.t(&ind.name_vi, &ind.name_en);
            let _ = write!(
                s,
                "<tr id=\"ct-{code}\" data-code=\"{code}\"><td class=\"name\"><span class=\"code\">{code}</span> {name}<div class=\"office\">{office}</div></td><td class=\"num value\">{value}</td><td class=\"num\">{t25}</td><td class=\"num\">{t30}</td><td class=\"num\">{base}</td><td class=\"status\">{status}</td><td>{spark}</td></tr>",
                code = esc(&ind.code),
                name = esc(name),
                office = esc(labels::office(ind.office, lang)),
                value = value_cell(ind, &row.scope, lang),
                t25 = target_cell(ind, 2025, lang),
                t30 = target_cell(ind, 2030, lang),
                base = baseline_cell(ind, lang),
                status = status_cell(ind, &row.scope, lang, true),
                spark = trend_svg(row, d.year, lang),
            );
            let _ = write!(s, "<tr class=\"wards\"><td colspan=\"7\">{}</td></tr>", units_table(d, row));
        }
        s.push_str("</tbody></table>");
    }
    s
}

fn breakdown(map: &BTreeMap<String, u64>, label: impl Fn(&str) -> String, lang: Lang) -> String {
    if map.is_empty() {
        return "—".into();
    }
    map.iter().map(|(k, n)| format!("{}: {}", esc(&label(k)), format::count(*n, lang))).collect::<Vec<_>>().join("<br>")
}

fn cases(d: &Dashboard) -> String {
    let lang = d.lang;
    let mut s = format!("<h2 id=\"ho-so\">{} {}</h2>", lang.t("Tóm tắt hồ sơ trẻ em năm", "Case summaries,"), d.year);
    match &d.cases {
        Cases::NeedsOfficer => {
            let _ = write!(
                s,
                "<p class=\"notice info\">{}</p>",
                lang.t(
                    "Tóm tắt hồ sơ chỉ dành cho cán bộ (vai trò officer); mỗi lần xem đều được ghi vào nhật ký kiểm tra.",
                    "Case summaries are for officers (the officer role); every view is written to the audit log."
                )
            );
        }
        Cases::Unavailable(why) => {
            let _ = write!(s, "<p class=\"notice error\">{}</p>", esc(why));
        }
        Cases::Shown { rows, detailed, per_unit, note } => {
            if let Some(n) = note {
                let _ = write!(s, "<p class=\"small\">{}</p>", esc(n));
            }
            let _ = write!(
                s,
                "<table class=\"cases\"><thead><tr><th>{}</th><th class=\"num\">{}</th>",
                lang.t("Nhóm", "Category"),
                lang.t("Số trường hợp", "Cases")
            );
            if *detailed {
                let _ = write!(
                    s,
                    "<th class=\"num\">{}</th><th>{}</th><th>{}</th><th>{}</th>",
                    lang.t("Được trợ giúp", "Supported"),
                    lang.t("Tình trạng", "Status"),
                    lang.t("Giới tính", "Sex"),
                    lang.t("Độ tuổi", "Age band")
                );
            }
            s.push_str("</tr></thead><tbody>");
            for r in rows {
                let total = match r.total {
                    Some(n) => format::count(n, lang),
                    None => format!("<span class=\"suppressed\">{}</span>", lang.t("đã ẩn", "withheld")),
                };
                let _ = write!(
                    s,
                    "<tr data-category=\"{}\"><td>{}</td><td class=\"num\">{total}</td>",
                    esc(&r.category),
                    esc(&labels::category(&r.category, lang))
                );
                if *detailed {
                    let _ = write!(
                        s,
                        "<td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
                        r.supported.map(|n| format::count(n, lang)).unwrap_or_else(|| "—".into()),
                        breakdown(&r.by_status, |k| labels::case_status(k, lang), lang),
                        breakdown(&r.by_sex, |k| labels::sex(k, lang), lang),
                        breakdown(&r.by_age_band, |k| labels::age_band(k, lang), lang)
                    );
                }
                s.push_str("</tr>");
            }
            if rows.is_empty() {
                let _ = write!(s, "<tr><td colspan=\"6\">{}</td></tr>", lang.t("Không có hồ sơ nào trong năm.", "No cases in the year."));
            }
            s.push_str("</tbody></table>");
            if !per_unit.is_empty() {
                let categories: Vec<&String> = rows.iter().map(|r| &r.category).collect();
                let _ = write!(
                    s,
                    "<h3>{}</h3><table class=\"cases-units\"><thead><tr><th>{}</th>",
                    lang.t("Theo đơn vị", "By unit"),
                    d.level.units(lang)
                );
                for c in &categories {
                    let _ = write!(s, "<th class=\"num\">{}</th>", esc(&labels::category(c, lang)));
                }
                s.push_str("</tr></thead><tbody>");
                for u in &d.units {
                    let Some(m) = per_unit.get(&u.code) else { continue };
                    let _ = write!(s, "<tr><td>{}</td>", esc(&u.name));
                    for c in &categories {
                        let cell = match m.get(*c) {
                            Some(Some(n)) => format::count(*n, lang),
                            Some(None) => format!("<span class=\"suppressed\">{}</span>", lang.t("đã ẩn", "withheld")),
                            None => "0".into(),
                        };
                        let _ = write!(s, "<td class=\"num\">{cell}</td>");
                    }
                    s.push_str("</tr>");
                }
                s.push_str("</tbody></table>");
            }
        }
    }
    s
}

fn sync(d: &Dashboard) -> String {
    let lang = d.lang;
    let t = &d.sync;
    let mut s = format!(
        "<h2 id=\"dong-bo\">{}</h2><p class=\"legend\">{}</p>",
        lang.t("Tình trạng đồng bộ", "Sync health"),
        esc(&match lang {
            Lang::Vi =>
                format!("Đánh dấu đỏ: đơn vị im lặng quá {} ngày (không có dữ liệu mới) hoặc chưa từng đồng bộ.", t.silent_after_days),
            Lang::En => format!("Red: silent for more than {} days (nothing new) or never synced.", t.silent_after_days),
        })
    );
    for p in &t.problems {
        let _ = write!(s, "<p class=\"notice error\">{}</p>", esc(p));
    }
    let _ = write!(
        s,
        "<table class=\"sync\"><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th>",
        d.level.units(lang),
        lang.t("Dữ liệu mới nhất lúc", "Newest data at"),
        lang.t("Độ trễ", "Lag")
    );
    for c in &t.columns {
        let _ = write!(s, "<th class=\"num\">{}</th>", esc(c));
    }
    let _ = write!(s, "<th>{}</th></tr></thead><tbody>", lang.t("Ghi chú", "Notes"));
    for r in &t.rows {
        let class = if r.silent { " class=\"silent\"" } else { "" };
        let last = r.last_at.map(|t| format::time(t, lang)).unwrap_or_else(|| lang.t("chưa từng đồng bộ", "never synced").into());
        let lag = r.lag_seconds.map(|l| format::duration(l, lang)).unwrap_or_else(|| "—".into());
        let _ = write!(
            s,
            "<tr{class} data-unit=\"{}\" data-silent=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td>",
            esc(&r.unit.code),
            r.silent,
            esc(&r.unit.name),
            esc(&last),
            esc(&lag)
        );
        for c in &r.cells {
            let _ = write!(s, "<td class=\"num\">{}</td>", esc(c));
        }
        let mut notes = Vec::new();
        if r.silent {
            notes.push(format!("<span class=\"warn\">{}</span>", lang.t("im lặng quá lâu", "silent too long")));
        }
        if let Some(p) = &r.problem {
            notes.push(format!("<span class=\"warn\">{}</span>", esc(p)));
        }
        let _ = write!(s, "<td>{}</td></tr>", notes.join("; "));
    }
    s.push_str("</tbody></table>");
    s
}

/// The whole page.
pub fn render(d: &Dashboard) -> String {
    let lang = d.lang;
    let rows: Vec<&IndicatorRow> = d.rows.iter().filter(|r| d.office.is_none_or(|o| r.indicator.office == o)).collect();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{} {}</h1>{}",
        lang.t("Tiến độ thực hiện các chỉ tiêu năm", "Progress of the plan's indicators in"),
        d.year,
        filters(d)
    );
    if let Some(o) = d.office {
        let _ = write!(
            body,
            "<p class=\"small\">{} <strong>{}</strong> ({} {}).</p>",
            lang.t("Chỉ các chỉ tiêu do", "Only the indicators led by"),
            esc(labels::office(o, lang)),
            rows.len(),
            lang.t("chỉ tiêu chủ trì", "indicators")
        );
    }
    let mut counts: BTreeMap<u8, usize> = BTreeMap::new();
    for r in &rows {
        let st = if r.scope.suppressed.is_some() { Status::NoData } else { r.scope.progress.status };
        *counts.entry(labels::STATUSES.iter().position(|s| *s == st).unwrap_or(4) as u8).or_default() += 1;
    }
    body.push_str("<div class=\"summary\">");
    for (i, st) in labels::STATUSES.iter().enumerate() {
        let n = counts.get(&(i as u8)).copied().unwrap_or(0);
        let _ = write!(
            body,
            "<span class=\"chip {}\" data-status=\"{}\">{}: {n}</span>",
            labels::status_class(*st),
            labels::status_key(*st),
            labels::status(*st, lang)
        );
    }
    body.push_str("</div>");
    if rows.is_empty() {
        let _ = write!(
            body,
            "<p class=\"notice info\">{}</p>",
            esc(&match (lang, d.office) {
                (Lang::Vi, Some(o)) => format!(
                    "{} không chủ trì chỉ tiêu nào của kế hoạch (mục E: phối hợp, bố trí kinh phí, tuyên truyền).",
                    labels::office(o, lang)
                ),
                (Lang::En, Some(o)) => format!(
                    "{} leads none of the plan's indicators (section E: it coordinates, budgets or informs).",
                    labels::office(o, lang)
                ),
                _ => lang.t("Không có chỉ tiêu nào.", "No indicators.").into(),
            })
        );
    }
    body.push_str(&indicators(d, &rows));
    body.push_str(&cases(d));
    body.push_str(&sync(d));
    let _ = write!(body, "<p class=\"small\">{} {}.</p>", lang.t("Số liệu lúc", "Figures as of"), format::time(d.generated_at, lang));

    let q = |lang: Lang| {
        let year = d.year.to_string();
        let office = d.office.map(labels::office_key).unwrap_or("");
        html::query(&[("year", &year), ("office", office), ("lang", lang.code())])
    };
    let mut nav = vec![(format!("{}{}", d.path, q(lang)), lang.t("Bảng theo dõi", "Dashboard").to_string(), true)];
    for n in 1..=4u8 {
        nav.push((format!("#muc-tieu-{n}"), lang.t(&format!("Mục tiêu {n}"), &format!("Objective {n}")).to_string(), false));
    }
    nav.push(("#ho-so".into(), lang.t("Hồ sơ", "Cases").into(), false));
    nav.push(("#dong-bo".into(), lang.t("Đồng bộ", "Sync").into(), false));
    nav.extend(d.nav.iter().map(|(h, l)| (h.clone(), l.clone(), false)));
    html::page(&Page {
        lang,
        title: format!("{} — {} {}", d.place, lang.t("Bảng theo dõi", "Dashboard"), d.year),
        place: d.place.clone(),
        subtitle: lang
            .t(
                "Kế hoạch bảo vệ, chăm sóc trẻ em giai đoạn 2021–2025, định hướng đến năm 2030",
                "Child protection and care plan 2021–2025, vision to 2030",
            )
            .into(),
        nav,
        reader: d.reader.clone(),
        other_lang_href: Some(format!("{}{}", d.path, q(lang.other()))),
        body,
    })
}

/// Whether `unit` of an indicator shows a count of wards.
pub fn is_ward_count(unit: Unit) -> bool {
    unit == Unit::Wards
}

#[cfg(test)]
mod tests {
    use super::*;
    use treem_proto::catalogue::Catalogue;
    use treem_proto::judge::{self, Fraction};

    fn dashboard(lang: Lang, office: Option<Office>) -> Dashboard {
        let c = Catalogue::shipped();
        let units = vec![UnitRef { code: "25320".into(), name: "Phường Hưng Chiến".into() }];
        let rows = c
            .indicators
            .iter()
            .map(|i| {
                let f = (i.code == "4a").then_some(Fraction { numerator: 1234, denominator: 17_900 });
                let fig = Figure { progress: judge::progress(i, 2024, f), suppressed: None };
                IndicatorRow {
                    indicator: i.clone(),
                    scope: fig.clone(),
                    trend: (2021..=2030).map(|y| (y, fig.progress.value.filter(|_| y == 2024))).collect(),
                    units: vec![fig],
                }
            })
            .collect();
        Dashboard {
            lang,
            level: Level::Town,
            place: "Thị xã Bình Long".into(),
            year: 2024,
            office,
            reader: None,
            generated_at: Utc::now(),
            units: units.clone(),
            rows,
            cases: Cases::NeedsOfficer,
            sync: SyncTable {
                silent_after_days: 7,
                columns: vec![],
                rows: vec![SyncRow {
                    unit: units[0].clone(),
                    last_at: None,
                    lag_seconds: None,
                    silent: true,
                    cells: vec![],
                    problem: None,
                }],
                problems: vec![],
            },
            nav: vec![],
            path: "/dashboard".into(),
        }
    }

    #[test]
    fn vietnamese_page_groups_by_objective_with_vietnamese_numbers() {
        let html = render(&dashboard(Lang::Vi, None));
        for n in 1..=4 {
            assert!(html.contains(&format!("id=\"muc-tieu-{n}\"")), "objective {n}");
        }
        assert!(html.contains("Mục tiêu 2: Về bảo vệ trẻ em"));
        assert!(html.contains("<strong>6,89</strong> %"), "1234/17900 = 6,89 %");
        assert!(html.contains("1.234/17.900"));
        assert!(html.contains("chưa từng đồng bộ") && html.contains("data-silent=\"true\""));
        assert_eq!(html.matches("<svg class=\"spark\"").count(), Catalogue::shipped().indicators.len());
        assert!(!html.contains("<script"));
    }

    #[test]
    fn the_office_filter_keeps_only_its_indicators() {
        let html = render(&dashboard(Lang::En, Some(Office::Police)));
        assert!(html.contains("data-code=\"9\"") && !html.contains("data-code=\"4a\""));
        let none = render(&dashboard(Lang::Vi, Some(Office::Finance)));
        assert!(none.contains("không chủ trì chỉ tiêu nào"));
    }
}
