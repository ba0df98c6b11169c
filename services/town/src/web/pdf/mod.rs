//! The evaluation report as a PDF: the printable page's three parts — the
//! town's results per objective, every ward's results side by side, and
//! the collaborator stipend — on A4 landscape pages with Vietnamese text.
//!
//! The font is read at each request from `report_font` (town config;
//! default DejaVu Sans of Debian's `fonts-dejavu-core`, which
//! `scripts/install-browser.sh` installs) and embedded, subset to the
//! glyphs used. Without it the answer is 503 naming the file and the
//! package: a PDF with the wrong glyphs is never sent.

mod layout;

use std::path::{Path, PathBuf};

use treem_proto::judge::Status;
use treem_web::{format, labels, reason};

use super::report::{Line, Report};
use layout::{BLACK, CellText, Doc, MARGIN, MUTED, PAGE_W, Rgb};

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error(
        "the PDF report needs the font {path} ({source}); install Debian's fonts-dejavu-core (scripts/install-browser.sh does) or set report_font in the town config to a TrueType font with Vietnamese glyphs"
    )]
    Font { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Layout(#[from] layout::LayoutError),
}

fn status_color(s: Status) -> Rgb {
    match s {
        Status::Achieved => (0.11, 0.48, 0.23),
        Status::OnTrack => (0.17, 0.42, 0.69),
        Status::AtRisk => (0.6, 0.38, 0.0),
        Status::OffTrack => (0.71, 0.14, 0.09),
        Status::NoData => MUTED,
    }
}

fn value(v: Option<f64>, line: &Line, lang: treem_web::Lang) -> String {
    v.map(|v| format!("{} {}", format::value(v, lang), labels::unit(line.indicator.unit, lang))).unwrap_or_else(|| "—".into())
}

/// The PDF file of `r`, with the font at `font_path`.
pub fn render(r: &Report, font_path: &Path) -> Result<Vec<u8>, PdfError> {
    let font = std::fs::read(font_path).map_err(|source| PdfError::Font { path: font_path.to_path_buf(), source })?;
    let lang = r.lang;
    let footer = format!("{} — {} — {}", r.place, r.title(), format::time(r.generated_at, lang));
    let mut doc = Doc::new(&font, footer)?;
    let width = PAGE_W - 2.0 * MARGIN;

    doc.paragraph(lang.t("ỦY BAN NHÂN DÂN", "PEOPLE'S COMMITTEE"), 9.0, MUTED);
    doc.paragraph(&r.place.to_uppercase(), 9.0, MUTED);
    doc.y -= 6.0;
    doc.paragraph(&r.kind.title(lang).to_uppercase(), 15.0, BLACK);
    doc.paragraph(
        &match lang {
            treem_web::Lang::Vi => format!(
                "Kế hoạch bảo vệ, chăm sóc trẻ em giai đoạn 2021–2025, định hướng đến năm 2030 — giai đoạn đánh giá {}–{}, lập lúc {}",
                r.from,
                r.to,
                format::time(r.generated_at, lang)
            ),
            treem_web::Lang::En => format!(
                "Child protection and care plan 2021–2025, vision to 2030 — evaluated period {}–{}, made {}",
                r.from,
                r.to,
                format::time(r.generated_at, lang)
            ),
        },
        9.0,
        MUTED,
    );

    // I. The town.
    let town = &r.scopes[0];
    doc.heading(&format!("I. {} {}", lang.t("Kết quả thực hiện toàn", "Results for"), town.unit.name), 12.0, 40.0);
    let widths = [30.0, 205.0, 92.0, 55.0, 82.0, 62.0, 64.0];
    let rest = width - widths.iter().sum::<f32>();
    let widths: Vec<f32> = widths.into_iter().chain([rest]).collect();
    let header: Vec<CellText> = [
        lang.t("Mã", "Code").to_string(),
        lang.t("Chỉ tiêu", "Indicator").into(),
        lang.t("Cơ quan chủ trì", "Lead office").into(),
        lang.t("Số liệu gốc", "Baseline").into(),
        lang.t("Chỉ tiêu", "Target").into(),
        format!("{} {}", lang.t("Kết quả", "Result"), r.to),
        lang.t("Tình trạng", "Status").into(),
        lang.t("Lý do", "Reason").into(),
    ]
    .into_iter()
    .map(CellText::plain)
    .collect();
    for objective in 1..=4u8 {
        doc.heading(&labels::objective(objective, lang), 10.0, 30.0);
        let rows: Vec<Vec<CellText>> = town
            .lines
            .iter()
            .filter(|l| l.indicator.objective == objective)
            .map(|l| {
                let ind = &l.indicator;
                vec![
                    CellText::plain(&ind.code),
                    CellText::plain(lang.t(&ind.name_vi, &ind.name_en)),
                    CellText::plain(labels::office(ind.office, lang)),
                    CellText::num(value(ind.baseline.as_ref().map(|b| b.value), l, lang)),
                    CellText::plain(
                        l.target().map(|t| format!("{}: {}", t.year, reason::level(t, ind, lang))).unwrap_or_else(|| "—".into()),
                    ),
                    CellText::num(value(l.progress.value, l, lang)),
                    CellText::colored(labels::status(l.progress.status, lang), status_color(l.progress.status)),
                    CellText::plain(reason::reason(ind, &l.progress, lang)),
                ]
            })
            .collect();
        doc.table(&widths, &header, &rows, 7.0);
    }

    // II. Wards side by side.
    doc.new_page();
    doc.heading(&format!("II. {} {}", lang.t("Kết quả theo phường, xã, năm", "Results by ward,"), r.to), 12.0, 40.0);
    let wards = &r.scopes[1..];
    let first = 205.0;
    let each = (width - 30.0 - first) / wards.len().max(1) as f32;
    let widths: Vec<f32> = [30.0, first].into_iter().chain(wards.iter().map(|_| each)).collect();
    let header: Vec<CellText> = [CellText::plain(lang.t("Mã", "Code")), CellText::plain(lang.t("Chỉ tiêu", "Indicator"))]
        .into_iter()
        .chain(wards.iter().map(|w| CellText::plain(&w.unit.name)))
        .collect();
    for objective in 1..=4u8 {
        doc.heading(&labels::objective(objective, lang), 10.0, 30.0);
        let rows: Vec<Vec<CellText>> = town
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.indicator.objective == objective)
            .map(|(i, l)| {
                let ind = &l.indicator;
                [CellText::plain(&ind.code), CellText::plain(lang.t(&ind.name_vi, &ind.name_en))]
                    .into_iter()
                    .chain(wards.iter().map(|w| {
                        let p = &w.lines[i].progress;
                        CellText::colored(
                            format!("{}\n{}", value(p.value, l, lang), labels::status(p.status, lang)),
                            status_color(p.status),
                        )
                    }))
                    .collect()
            })
            .collect();
        doc.table(&widths, &header, &rows, 7.0);
    }

    // III. The stipend.
    doc.heading(
        &format!("III. {}", lang.t("Kinh phí hỗ trợ cộng tác viên bảo vệ, chăm sóc trẻ em (mục D)", "Collaborator stipend (section D)")),
        12.0,
        60.0,
    );
    doc.paragraph(
        lang.t(
            "0,125 mức lương cơ sở/người/tháng; mỗi tháng theo mức lương cơ sở có hiệu lực ngày 1 của tháng (1.490.000 đ từ 1/7/2019, 1.800.000 đ từ 1/7/2023, 2.340.000 đ từ 1/7/2024). Số cộng tác viên do phường, xã báo cáo.",
            "0.125 × base salary per collaborator per month, each month at the base salary in force on its 1st (VND 1,490,000 from 1/7/2019, 1,800,000 from 1/7/2023, 2,340,000 from 1/7/2024). Collaborator counts as the wards report them.",
        ),
        8.0,
        MUTED,
    );
    doc.y -= 4.0;
    let widths = [60.0, 250.0, 120.0, 150.0, width - 580.0];
    let header: Vec<CellText> = [
        lang.t("Năm", "Year"),
        lang.t("Đơn vị", "Unit"),
        lang.t("Số cộng tác viên", "Collaborators"),
        lang.t("Mỗi người/năm", "Per collaborator/year"),
        lang.t("Kinh phí", "Amount"),
    ]
    .into_iter()
    .map(CellText::plain)
    .collect();
    let mut rows = Vec::new();
    for s in &r.stipend {
        for w in &s.wards {
            rows.push(vec![
                CellText::plain(s.year.to_string()),
                CellText::plain(&w.name),
                CellText::num(
                    w.collaborators.map(|n| format::count(n, lang)).unwrap_or_else(|| lang.t("chưa báo cáo", "not reported").into()),
                ),
                CellText::num(format::money(s.per_collaborator_year, lang)),
                CellText::num(w.amount.map(|n| format::money(n, lang)).unwrap_or_else(|| "—".into())),
            ]);
        }
        rows.push(vec![
            CellText::plain(s.year.to_string()),
            CellText::plain(lang.t("Cộng", "Total")),
            CellText::num(format::count(s.collaborators, lang)),
            CellText::num(format::money(s.per_collaborator_year, lang)),
            CellText::num(format::money(s.amount, lang)),
        ]);
    }
    doc.table(&widths, &header, &rows, 7.5);
    Ok(doc.finish(&font, &r.title())?)
}
