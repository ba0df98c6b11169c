//! `GET /reports/evaluation?kind=yearly|midterm|final&from=2021&to=2025&format=html|csv|xlsx|pdf&lang=vi|en`:
//! the evaluation the plan asks for "hằng năm, giữa kỳ và cuối kỳ"
//! (section C.I.5), in the plan's structure — objectives, each indicator
//! with its target, result, status and responsible office — for the town
//! and for each ward, and the collaborator stipend of section D.
//!
//! - `kind=yearly` (default): the year `to` (default this year; `from`
//!   defaults to `to`); `midterm`: 2021–2025, judged against the 2025
//!   targets; `final`: 2021–2030, against 2030. `from`/`to` override.
//! - The result is the value of the period's last year, judged as the
//!   dashboard judges it (`treem_proto::judge`); each year of the period
//!   is a column, so the trend is in the table.
//! - `format=html` is a printable page; `csv` and `xlsx` export the same
//!   table, one row per (town or ward, indicator) — [`table`] builds it
//!   once for both; `pdf` is the printable page as a PDF ([`super::pdf`]).

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use treem_auth::Caller;
use treem_proto::catalogue::{Indicator, Target};
use treem_proto::event::{FIRST_YEAR, LAST_YEAR};
use treem_proto::judge::{self, IndicatorProgress};
use treem_web::dashboard::{Figure, UnitRef, status_cell, value_cell};
use treem_web::html::{self, Page, esc};
use treem_web::{Lang, format, labels, reason};

use super::{WebState, error_page, html_response, reader};
use crate::projection::indicators::YearFigures;
use crate::stipend::{self, YearStipend};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Yearly,
    Midterm,
    Final,
}

impl Kind {
    pub fn parse(s: Option<&str>) -> Option<Kind> {
        match s.map(str::trim).unwrap_or("yearly") {
            "" | "yearly" => Some(Kind::Yearly),
            "midterm" => Some(Kind::Midterm),
            "final" => Some(Kind::Final),
            _ => None,
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Kind::Yearly => "yearly",
            Kind::Midterm => "midterm",
            Kind::Final => "final",
        }
    }
    pub fn title(self, lang: Lang) -> &'static str {
        match self {
            Kind::Yearly => lang.t("Báo cáo đánh giá hằng năm", "Yearly evaluation report"),
            Kind::Midterm => lang.t("Báo cáo đánh giá giữa kỳ", "Mid-term evaluation report"),
            Kind::Final => lang.t("Báo cáo đánh giá cuối kỳ", "End-of-term evaluation report"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Csv,
    Xlsx,
    Pdf,
}

impl Format {
    fn parse(s: Option<&str>) -> Option<Format> {
        match s.map(str::trim).unwrap_or("html") {
            "" | "html" => Some(Format::Html),
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Params {
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    lang: Option<String>,
}

/// One indicator in one scope (the town or a ward) over the period.
#[derive(Debug, Clone)]
pub struct Line {
    pub indicator: Indicator,
    /// Judged for the period's last year.
    pub progress: IndicatorProgress,
    /// The value of every year of the period.
    pub values: Vec<(u16, Option<f64>)>,
}

impl Line {
    /// The target the result is measured against: that year's, else the
    /// one it was judged against, else (no value) the plan's next one, else its last.
    pub fn target(&self) -> Option<&Target> {
        let year = self.progress.year;
        self.progress
            .target
            .as_ref()
            .or(self.progress.judged_against.as_ref())
            .or_else(|| self.indicator.targets.iter().find(|t| t.year >= year))
            .or(self.indicator.targets.last())
    }
}

/// A scope's lines.
#[derive(Debug, Clone)]
pub struct Scope {
    pub unit: UnitRef,
    pub is_town: bool,
    pub lines: Vec<Line>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    pub lang: Lang,
    pub kind: Kind,
    pub from: u16,
    pub to: u16,
    pub place: String,
    pub generated_at: DateTime<Utc>,
    /// The town first, then each ward.
    pub scopes: Vec<Scope>,
    pub stipend: Vec<YearStipend>,
}

impl Report {
    pub fn years(&self) -> impl Iterator<Item = u16> {
        self.from..=self.to
    }

    pub fn title(&self) -> String {
        format!("{} — {} {}–{}", self.kind.title(self.lang), self.lang.t("giai đoạn", "period"), self.from, self.to)
    }

    pub fn file_stem(&self) -> String {
        format!("danh-gia-{}-{}-{}", self.kind.key(), self.from, self.to)
    }
}

/// Builds the report of `from..=to` from the town store.
pub fn build(w: &WebState, kind: Kind, from: u16, to: u16, lang: Lang) -> Report {
    let shared = &w.shared;
    let catalogue = &shared.ctx.catalogue;
    let figures: Vec<YearFigures> = (from..=to).map(|y| YearFigures::clone(&shared.figures(y))).collect();
    let lines = |pick: &dyn Fn(&YearFigures) -> Option<&std::collections::BTreeMap<String, judge::Fraction>>| -> Vec<Line> {
        catalogue
            .indicators
            .iter()
            .map(|ind| {
                let at = |f: &YearFigures| pick(f).and_then(|m| m.get(&ind.code)).copied();
                let last = figures.last().and_then(at);
                Line {
                    indicator: ind.clone(),
                    progress: judge::progress(ind, to, last),
                    values: figures.iter().map(|f| (f.year, at(f).and_then(|x| judge::value(ind.unit, x)))).collect(),
                }
            })
            .collect()
    };
    let mut scopes = vec![Scope {
        unit: UnitRef { code: shared.config.town.clone(), name: w.place() },
        is_town: true,
        lines: lines(&|f: &YearFigures| Some(&f.town)),
    }];
    for (ward, name) in shared.wards.iter().zip(w.ward_names()) {
        scopes.push(Scope {
            unit: UnitRef { code: ward.clone(), name },
            is_town: false,
            lines: lines(&|f: &YearFigures| f.wards.get(ward)),
        });
    }
    let stipend = (from..=to).map(|y| stipend::for_town(&shared.store.tree, &shared.wards, &w.ward_names(), y)).collect();
    Report { lang, kind, from, to, place: w.place(), generated_at: Utc::now(), scopes, stipend }
}

/// A cell of the exported table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

impl Cell {
    fn opt(v: Option<f64>) -> Cell {
        v.map(Cell::Number).unwrap_or(Cell::Empty)
    }
    /// The cell as CSV text: numbers with a decimal point, as spreadsheets read them.
    pub fn csv(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Number(n) => {
                let s = format!("{n:.6}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            Cell::Empty => String::new(),
        }
    }
}

/// The evaluation table — header and one row per (scope, indicator) — that
/// the CSV and the XLSX both export.
pub fn table(r: &Report) -> (Vec<String>, Vec<Vec<Cell>>) {
    let lang = r.lang;
    let mut header: Vec<String> = [
        lang.t("Mã đơn vị", "Unit code"),
        lang.t("Đơn vị", "Unit"),
        lang.t("Mục tiêu", "Objective"),
        lang.t("Mã chỉ tiêu", "Indicator code"),
        lang.t("Chỉ tiêu", "Indicator"),
        lang.t("Đơn vị tính", "Unit of measure"),
        lang.t("Cơ quan chủ trì", "Lead office"),
        lang.t("Số liệu gốc", "Baseline"),
        lang.t("Năm số liệu gốc", "Baseline year"),
        lang.t("Năm chỉ tiêu", "Target year"),
        lang.t("So sánh", "Comparison"),
        lang.t("Giá trị chỉ tiêu", "Target value"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(r.years().map(|y| format!("{} {y}", lang.t("Giá trị", "Value"))));
    header.extend([
        format!("{} {}", lang.t("Kết quả", "Result"), r.to),
        lang.t("Tử số", "Numerator").into(),
        lang.t("Mẫu số", "Denominator").into(),
        lang.t("Tình trạng", "Status").into(),
        lang.t("Lý do", "Reason").into(),
    ]);
    let mut rows = Vec::new();
    for scope in &r.scopes {
        for line in &scope.lines {
            let ind = &line.indicator;
            let t = line.target();
            let mut row = vec![
                Cell::Text(scope.unit.code.clone()),
                Cell::Text(scope.unit.name.clone()),
                Cell::Number(f64::from(ind.objective)),
                Cell::Text(ind.code.clone()),
                Cell::Text(lang.t(&ind.name_vi, &ind.name_en).to_string()),
                Cell::Text(labels::unit(ind.unit, lang).to_string()),
                Cell::Text(labels::office(ind.office, lang).to_string()),
                Cell::opt(ind.baseline.as_ref().map(|b| b.value)),
                Cell::opt(ind.baseline.as_ref().map(|b| f64::from(b.year))),
                Cell::opt(t.map(|t| f64::from(t.year))),
                t.map(|t| Cell::Text(labels::comparison_words(t.comparison, lang).to_string())).unwrap_or(Cell::Empty),
                Cell::opt(t.map(|t| t.value)),
            ];
            row.extend(line.values.iter().map(|(_, v)| Cell::opt(*v)));
            row.extend([
                Cell::opt(line.progress.value),
                Cell::opt(line.progress.numerator.map(|n| n as f64)),
                Cell::opt(line.progress.denominator.map(|n| n as f64)),
                Cell::Text(labels::status(line.progress.status, lang).to_string()),
                Cell::Text(reason::reason(ind, &line.progress, lang)),
            ]);
            rows.push(row);
        }
    }
    (header, rows)
}

/// The stipend table: header and one row per (year, ward), then the town totals.
pub fn stipend_table(r: &Report) -> (Vec<String>, Vec<Vec<Cell>>) {
    let lang = r.lang;
    let header = [
        lang.t("Năm", "Year"),
        lang.t("Mã đơn vị", "Unit code"),
        lang.t("Đơn vị", "Unit"),
        lang.t("Số cộng tác viên", "Collaborators"),
        lang.t("Mức hỗ trợ/người/năm (đồng)", "Per collaborator per year (VND)"),
        lang.t("Kinh phí (đồng)", "Amount (VND)"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rows = Vec::new();
    for s in &r.stipend {
        for w in &s.wards {
            rows.push(vec![
                Cell::Number(f64::from(s.year)),
                Cell::Text(w.ward.clone()),
                Cell::Text(w.name.clone()),
                Cell::opt(w.collaborators.map(|n| n as f64)),
                Cell::Number(s.per_collaborator_year as f64),
                Cell::opt(w.amount.map(|n| n as f64)),
            ]);
        }
        rows.push(vec![
            Cell::Number(f64::from(s.year)),
            Cell::Text(r.scopes[0].unit.code.clone()),
            Cell::Text(format!("{} {}", lang.t("Tổng", "Total"), r.place)),
            Cell::Number(s.collaborators as f64),
            Cell::Number(s.per_collaborator_year as f64),
            Cell::Number(s.amount as f64),
        ]);
    }
    (header, rows)
}

fn target_text(line: &Line, lang: Lang) -> String {
    match line.target() {
        Some(t) => format!("{}: {}", t.year, reason::level(t, &line.indicator, lang)),
        None => "—".into(),
    }
}

fn value_text(v: Option<f64>, ind: &Indicator, lang: Lang) -> String {
    v.map(|v| format!("{} {}", format::value(v, lang), labels::unit(ind.unit, lang))).unwrap_or_else(|| "—".into())
}

/// The printable HTML page.
pub fn render_html(r: &Report, reader: Option<html::Reader>) -> String {
    let lang = r.lang;
    let mut b = String::new();
    let _ = write!(
        b,
        "<article class=\"report\"><h1>{}</h1><p class=\"meta\">{} · {} {}</p>",
        esc(&r.title()),
        esc(&r.place),
        lang.t("lập lúc", "made"),
        format::time(r.generated_at, lang)
    );
    // Choosing another report, and the downloads.
    let _ = write!(
        b,
        "<form class=\"filters noprint\" method=\"get\" action=\"/reports/evaluation\"><div><label for=\"kind\">{}</label><select id=\"kind\" name=\"kind\">",
        lang.t("Loại báo cáo", "Report")
    );
    for k in [Kind::Yearly, Kind::Midterm, Kind::Final] {
        let sel = if k == r.kind { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{}\"{sel}>{}</option>", k.key(), k.title(lang));
    }
    b.push_str("</select></div>");
    for (name, label, value) in [("from", lang.t("Từ năm", "From"), r.from), ("to", lang.t("Đến năm", "To"), r.to)] {
        let _ = write!(b, "<div><label for=\"{name}\">{label}</label><select id=\"{name}\" name=\"{name}\">");
        for y in FIRST_YEAR..=LAST_YEAR {
            let sel = if y == value { " selected" } else { "" };
            let _ = write!(b, "<option value=\"{y}\"{sel}>{y}</option>");
        }
        b.push_str("</select></div>");
    }
    let _ = write!(
        b,
        "<input type=\"hidden\" name=\"lang\" value=\"{}\"><div><button type=\"submit\">{}</button></div></form>",
        lang.code(),
        lang.t("Xem", "Show")
    );
    let q = |format: &str| {
        format!(
            "/reports/evaluation{}",
            html::query(&[
                ("kind", r.kind.key()),
                ("from", &r.from.to_string()),
                ("to", &r.to.to_string()),
                ("format", format),
                ("lang", lang.code())
            ])
        )
    };
    let _ = write!(
        b,
        "<p class=\"noprint downloads\">{}: <a class=\"button secondary\" id=\"dl-pdf\" href=\"{}\">PDF</a> <a class=\"button secondary\" id=\"dl-xlsx\" href=\"{}\">Excel (XLSX)</a> <a class=\"button secondary\" id=\"dl-csv\" href=\"{}\">CSV</a> <span class=\"small\">{}</span></p>",
        lang.t("Tải về", "Download"),
        esc(&q("pdf")),
        esc(&q("xlsx")),
        esc(&q("csv")),
        lang.t("In trang này: Ctrl+P.", "Print this page: Ctrl+P.")
    );

    // I. The town.
    let town = &r.scopes[0];
    let _ = write!(b, "<h2>I. {} {}</h2>", lang.t("Kết quả thực hiện toàn", "Results for"), esc(&town.unit.name));
    for objective in 1..=4u8 {
        let _ = write!(
            b,
            "<h3>{}</h3><table class=\"indicators\"><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th>",
            esc(&labels::objective(objective, lang)),
            lang.t("Chỉ tiêu", "Indicator"),
            lang.t("Cơ quan chủ trì", "Lead office"),
            lang.t("Số liệu gốc", "Baseline"),
            lang.t("Chỉ tiêu", "Target")
        );
        for y in r.years() {
            let _ = write!(b, "<th class=\"num\">{y}</th>");
        }
        let _ = write!(b, "<th>{} {}</th></tr></thead><tbody>", lang.t("Tình trạng", "Status"), r.to);
        for line in town.lines.iter().filter(|l| l.indicator.objective == objective) {
            let ind = &line.indicator;
            let _ = write!(
                b,
                "<tr data-code=\"{code}\"><td class=\"name\"><span class=\"code\">{code}</span> {name}</td><td class=\"office\">{office}</td><td class=\"num\">{base}</td><td class=\"num\">{target}</td>",
                code = esc(&ind.code),
                name = esc(lang.t(&ind.name_vi, &ind.name_en)),
                office = esc(labels::office(ind.office, lang)),
                base = esc(&value_text(ind.baseline.as_ref().map(|x| x.value), ind, lang)),
                target = esc(&target_text(line, lang)),
            );
            for (_, v) in &line.values {
                let _ = write!(b, "<td class=\"num\">{}</td>", v.map(|v| format::value(v, lang)).unwrap_or_else(|| "—".into()));
            }
            let fig = Figure { progress: line.progress.clone(), suppressed: None };
            let _ = write!(b, "<td>{}</td></tr>", status_cell(ind, &fig, lang, true));
        }
        b.push_str("</tbody></table>");
    }

    // II. Each ward, side by side.
    let _ = write!(b, "<h2>II. {} {}</h2>", lang.t("Kết quả theo phường, xã, năm", "Results by ward,"), r.to);
    for objective in 1..=4u8 {
        let _ = write!(
            b,
            "<h3>{}</h3><table class=\"wards-matrix\"><thead><tr><th>{}</th>",
            esc(&labels::objective(objective, lang)),
            lang.t("Chỉ tiêu", "Indicator")
        );
        for s in &r.scopes[1..] {
            let _ = write!(b, "<th class=\"num\">{}</th>", esc(&s.unit.name));
        }
        b.push_str("</tr></thead><tbody>");
        for (i, line) in town.lines.iter().enumerate().filter(|(_, l)| l.indicator.objective == objective) {
            let ind = &line.indicator;
            let _ = write!(b, "<tr><td><span class=\"code\">{}</span> {}</td>", esc(&ind.code), esc(lang.t(&ind.name_vi, &ind.name_en)));
            for s in &r.scopes[1..] {
                let fig = Figure { progress: s.lines[i].progress.clone(), suppressed: None };
                let _ = write!(b, "<td class=\"num\">{}<br>{}</td>", value_cell(ind, &fig, lang), status_cell(ind, &fig, lang, false));
            }
            b.push_str("</tr>");
        }
        b.push_str("</tbody></table>");
    }

    // III. The stipend.
    let _ = write!(
        b,
        "<h2>III. {}</h2><p>{}</p>",
        lang.t("Kinh phí hỗ trợ cộng tác viên bảo vệ, chăm sóc trẻ em (mục D)", "Collaborator stipend (section D)"),
        lang.t(
            "Mỗi cộng tác viên ở ấp, khu phố được hỗ trợ 0,125 mức lương cơ sở mỗi tháng; mỗi tháng tính theo mức lương cơ sở có hiệu lực vào ngày 1 của tháng (1.490.000 đ từ 1/7/2019, 1.800.000 đ từ 1/7/2023, 2.340.000 đ từ 1/7/2024). Số cộng tác viên do phường, xã báo cáo.",
            "Each hamlet collaborator receives 0.125 × the base salary per month, each month at the base salary in force on its 1st (VND 1,490,000 from 1/7/2019, 1,800,000 from 1/7/2023, 2,340,000 from 1/7/2024). Collaborator counts are those the wards report."
        )
    );
    let _ = write!(
        b,
        "<table class=\"stipend\"><thead><tr><th>{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th></tr></thead><tbody>",
        lang.t("Năm / đơn vị", "Year / unit"),
        lang.t("Số cộng tác viên", "Collaborators"),
        lang.t("Kinh phí", "Amount")
    );
    for s in &r.stipend {
        let _ = write!(
            b,
            "<tr><th colspan=\"3\">{} {} — {} {}</th></tr>",
            lang.t("Năm", "Year"),
            s.year,
            lang.t("mỗi cộng tác viên", "per collaborator"),
            format::money(s.per_collaborator_year, lang)
        );
        for w in &s.wards {
            let _ = write!(
                b,
                "<tr data-ward=\"{}\" data-year=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&w.ward),
                s.year,
                esc(&w.name),
                w.collaborators.map(|n| format::count(n, lang)).unwrap_or_else(|| lang.t("chưa báo cáo", "not reported").into()),
                w.amount.map(|n| format::money(n, lang)).unwrap_or_else(|| "—".into())
            );
        }
        let _ = write!(
            b,
            "<tr class=\"total\"><td><strong>{}</strong></td><td class=\"num\"><strong>{}</strong></td><td class=\"num\"><strong>{}</strong></td></tr>",
            lang.t("Cộng", "Total"),
            format::count(s.collaborators, lang),
            format::money(s.amount, lang)
        );
    }
    b.push_str("</tbody></table></article>");

    let other = format!(
        "/reports/evaluation{}",
        html::query(&[("kind", r.kind.key()), ("from", &r.from.to_string()), ("to", &r.to.to_string()), ("lang", lang.other().code())])
    );
    html::page(&Page {
        lang,
        title: format!("{} — {}", r.place, r.title()),
        place: r.place.clone(),
        subtitle: lang.t("Báo cáo đánh giá kết quả thực hiện kế hoạch", "Evaluation of the plan").into(),
        nav: vec![
            (format!("/dashboard?year={}&lang={}", r.to, lang.code()), lang.t("Bảng theo dõi", "Dashboard").into(), false),
            (
                format!("/reports/evaluation?kind=yearly&to={}&lang={}", r.to, lang.code()),
                Kind::Yearly.title(lang).into(),
                r.kind == Kind::Yearly,
            ),
            (format!("/reports/evaluation?kind=midterm&lang={}", lang.code()), Kind::Midterm.title(lang).into(), r.kind == Kind::Midterm),
            (format!("/reports/evaluation?kind=final&lang={}", lang.code()), Kind::Final.title(lang).into(), r.kind == Kind::Final),
        ],
        reader,
        other_lang_href: Some(other),
        body: b,
    })
}

fn attachment(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

pub async fn get(State(w): State<WebState>, caller: Caller, headers: axum::http::HeaderMap, Query(p): Query<Params>) -> Response {
    let lang = Lang::parse(p.lang.as_deref());
    let bad = |vi: String, en: String| error_page(&w, lang, StatusCode::BAD_REQUEST, lang.t(&vi, &en));
    let Some(kind) = Kind::parse(p.kind.as_deref()) else {
        return bad(
            "Loại báo cáo phải là yearly (hằng năm), midterm (giữa kỳ) hoặc final (cuối kỳ).".into(),
            "kind must be yearly, midterm or final.".into(),
        );
    };
    let Some(fmt) = Format::parse(p.format.as_deref()) else {
        return bad("Định dạng phải là html, csv, xlsx hoặc pdf.".into(), "format must be html, csv, xlsx or pdf.".into());
    };
    let year = |raw: Option<&str>, default: u16| -> Result<u16, String> {
        match raw.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(_) => super::year_param(raw, lang),
        }
    };
    let (default_from, default_to) = match kind {
        Kind::Yearly => (None, super::this_year()),
        Kind::Midterm => (Some(FIRST_YEAR), 2025),
        Kind::Final => (Some(FIRST_YEAR), LAST_YEAR),
    };
    let to = match year(p.to.as_deref(), default_to) {
        Ok(y) => y,
        Err(e) => return error_page(&w, lang, StatusCode::BAD_REQUEST, &e),
    };
    let from = match year(p.from.as_deref(), default_from.unwrap_or(to)) {
        Ok(y) => y,
        Err(e) => return error_page(&w, lang, StatusCode::BAD_REQUEST, &e),
    };
    if from > to {
        return bad(format!("Năm bắt đầu {from} sau năm kết thúc {to}; hãy đổi lại."), format!("from {from} is after to {to}; swap them."));
    }
    let report = build(&w, kind, from, to, lang);
    match fmt {
        Format::Html => html_response(StatusCode::OK, render_html(&report, Some(reader(&caller, &headers)))),
        Format::Csv => attachment("text/csv; charset=utf-8", &format!("{}.csv", report.file_stem()), super::export::csv(&report)),
        Format::Xlsx => match super::export::xlsx(&report) {
            Ok(bytes) => attachment(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &format!("{}.xlsx", report.file_stem()),
                bytes,
            ),
            Err(e) => {
                tracing::error!(error = %e, "XLSX report failed");
                error_page(&w, lang, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
            }
        },
        Format::Pdf => match super::pdf::render(&report, &w.shared.config.report_font) {
            Ok(bytes) => attachment("application/pdf", &format!("{}.pdf", report.file_stem()), bytes),
            Err(e) => {
                tracing::error!(error = %e, "PDF report failed");
                let status = if matches!(e, super::pdf::PdfError::Font { .. }) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                error_page(&w, lang, status, &e.to_string())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use treem_proto::catalogue::Catalogue;
    use treem_proto::judge::Fraction;

    fn report(lang: Lang) -> Report {
        let c = Catalogue::shipped();
        let line = |code: &str, f: Option<Fraction>| {
            let ind = c.get(code).unwrap().clone();
            Line {
                progress: judge::progress(&ind, 2024, f),
                values: vec![(2024, f.and_then(|f| judge::value(ind.unit, f)))],
                indicator: ind,
            }
        };
        let lines = |f| c.indicators.iter().map(|i| line(&i.code, if i.code == "4a" { f } else { None })).collect();
        Report {
            lang,
            kind: Kind::Yearly,
            from: 2024,
            to: 2024,
            place: "Thị xã Bình Long".into(),
            generated_at: Utc::now(),
            scopes: vec![
                Scope {
                    unit: UnitRef { code: "690".into(), name: "Thị xã Bình Long".into() },
                    is_town: true,
                    lines: lines(Some(Fraction { numerator: 355, denominator: 5215 })),
                },
                Scope {
                    unit: UnitRef { code: "25320".into(), name: "Phường Hưng Chiến".into() }, is_town: false, lines: lines(None)
                },
            ],
            stipend: vec![stipend::year_of(2024, &[("25320".into(), "Phường Hưng Chiến".into(), Some(12))])],
        }
    }

    #[test]
    fn the_table_has_a_row_per_unit_and_indicator_and_the_targets_of_the_plan() {
        let r = report(Lang::Vi);
        let (header, rows) = table(&r);
        assert_eq!(rows.len(), 2 * Catalogue::shipped().indicators.len());
        assert!(rows.iter().all(|row| row.len() == header.len()));
        let town_4a = rows.iter().find(|row| row[3] == Cell::Text("4a".into())).unwrap();
        assert_eq!(town_4a[9], Cell::Number(2025.0), "judged against the 2025 target");
        assert_eq!(town_4a[11], Cell::Number(8.0));
        assert_eq!(town_4a[header.len() - 2], Cell::Text("Đúng tiến độ".into()));
        // 5b has only a 2030 target: a row without a value still names it.
        let b5 = rows.iter().find(|row| row[3] == Cell::Text("5b".into())).unwrap();
        assert_eq!(b5[9], Cell::Number(2030.0));
        let (_, stipend) = stipend_table(&r);
        assert_eq!(stipend[0][5], Cell::Number(37_260_000.0));
        let csv = String::from_utf8(super::super::export::csv(&r)).unwrap();
        assert!(csv.starts_with("\u{feff}Mã đơn vị,Đơn vị,"), "{}", &csv[..80]);
        assert_eq!(csv.lines().count(), 1 + rows.len());
        assert!(super::super::export::xlsx(&r).unwrap().starts_with(b"PK"), "an XLSX is a zip");
    }

    #[test]
    fn the_pdf_names_a_missing_font_instead_of_drawing_wrong_glyphs() {
        let err = super::super::pdf::render(&report(Lang::Vi), std::path::Path::new("/nonexistent/DejaVuSans.ttf")).unwrap_err();
        assert!(matches!(err, super::super::pdf::PdfError::Font { .. }));
        assert!(err.to_string().contains("fonts-dejavu-core"), "{err}");
    }

    #[test]
    fn the_html_report_is_printable_and_in_vietnamese() {
        let html = render_html(&report(Lang::Vi), None);
        assert!(html.contains("Báo cáo đánh giá hằng năm — giai đoạn 2024–2024"));
        assert!(html.contains("6,81") && html.contains("37.260.000 ₫"));
        assert!(html.contains("id=\"dl-pdf\"") && !html.contains("<script"));
    }
}
