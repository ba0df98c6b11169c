//! A trend chart per indicator, drawn on the server as inline SVG: the
//! value of each year 2021–2030 (a line, broken where a year has no value),
//! the plan's targets as dashes at their years, the 2021 baseline as a
//! hollow dot, and the year being looked at emphasised. Its `<title>` lists
//! every value, so the chart is readable without seeing it.

use std::fmt::Write as _;

use crate::Lang;
use crate::format;
use crate::html::esc;

const W: f64 = 180.0;
const H: f64 = 46.0;
const PAD_X: f64 = 8.0;
const PAD_TOP: f64 = 5.0;
const PAD_BOTTOM: f64 = 11.0;

/// What one chart shows.
#[derive(Debug, Clone)]
pub struct Trend {
    /// (year, value) for every year of the range, in order.
    pub points: Vec<(u16, Option<f64>)>,
    /// (year, target value) of the plan.
    pub targets: Vec<(u16, f64)>,
    /// The plan's baseline (year, value).
    pub baseline: Option<(u16, f64)>,
    /// The year the page is about.
    pub highlight: u16,
    /// Unit after values in the title, e.g. "%".
    pub unit: String,
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

/// The chart as an `<svg>` element.
pub fn svg(t: &Trend, lang: Lang) -> String {
    let (first, last) = match (t.points.first(), t.points.last()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => return String::new(),
    };
    let span = f64::from((last - first).max(1));
    let x = |year: u16| PAD_X + f64::from(year.saturating_sub(first)) * (W - 2.0 * PAD_X) / span;
    let mut all: Vec<f64> = t.points.iter().filter_map(|p| p.1).collect();
    all.extend(t.targets.iter().map(|p| p.1));
    all.extend(t.baseline.iter().map(|p| p.1));
    let (mut lo, mut hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if (hi - lo).abs() < f64::EPSILON {
        let pad = if hi.abs() > 0.0 { hi.abs() * 0.1 } else { 1.0 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let y = |v: f64| PAD_TOP + (hi - v) * (H - PAD_TOP - PAD_BOTTOM) / (hi - lo);

    let mut title: Vec<String> = t
        .points
        .iter()
        .map(|(yr, v)| match v {
            Some(v) => format!("{yr}: {} {}", format::value(*v, lang), t.unit),
            None => format!("{yr}: {}", lang.t("chưa có", "none")),
        })
        .collect();
    for (yr, v) in &t.targets {
        title.push(format!("{} {yr}: {} {}", lang.t("chỉ tiêu", "target"), format::value(*v, lang), t.unit));
    }
    let label = lang.t("Xu hướng", "Trend");
    let mut s = String::with_capacity(1200);
    let _ = write!(
        s,
        "<svg class=\"spark\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{label} {first}–{last}\"><title>{}</title>",
        esc(&title.join("; "))
    );
    let base_y = H - PAD_BOTTOM + 1.5;
    let _ =
        write!(s, "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", fmt(PAD_X), fmt(base_y), fmt(W - PAD_X), fmt(base_y));
    let _ = write!(
        s,
        "<text class=\"yr\" x=\"{}\" y=\"{}\">{first}</text><text class=\"yr end\" x=\"{}\" y=\"{}\">{last}</text>",
        fmt(PAD_X - 2.0),
        fmt(H - 1.0),
        fmt(W - PAD_X + 2.0),
        fmt(H - 1.0)
    );
    let hx = x(t.highlight);
    let _ = write!(s, "<line class=\"now\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", fmt(hx), fmt(PAD_TOP - 3.0), fmt(hx), fmt(base_y));
    for (yr, v) in &t.targets {
        let (cx, cy) = (x(*yr), y(*v));
        let _ = write!(s, "<line class=\"tgt\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", fmt(cx - 6.0), fmt(cy), fmt(cx + 6.0), fmt(cy));
    }
    if let Some((yr, v)) = t.baseline {
        let _ = write!(s, "<circle class=\"base\" cx=\"{}\" cy=\"{}\" r=\"3\"/>", fmt(x(yr)), fmt(y(v)));
    }
    // The line, broken where a year has no value.
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, s: &mut String| {
        if run.len() > 1 {
            let _ = write!(s, "<polyline class=\"line\" points=\"{}\"/>", run.join(" "));
        }
        run.clear();
    };
    for (yr, v) in &t.points {
        match v {
            Some(v) => run.push(format!("{},{}", fmt(x(*yr)), fmt(y(*v)))),
            None => flush(&mut run, &mut s),
        }
    }
    flush(&mut run, &mut s);
    for (yr, v) in &t.points {
        if let Some(v) = v {
            let class = if *yr == t.highlight { "dot cur" } else { "dot" };
            let r = if *yr == t.highlight { 3.2 } else { 2.0 };
            let _ = write!(s, "<circle class=\"{class}\" cx=\"{}\" cy=\"{}\" r=\"{r}\"/>", fmt(x(*yr)), fmt(y(*v)));
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_values_gaps_targets_and_a_readable_title() {
        let t = Trend {
            points: (2021..=2030).map(|y| (y, if y == 2023 || y > 2025 { None } else { Some(f64::from(y - 2020)) })).collect(),
            targets: vec![(2025, 8.0), (2030, 6.0)],
            baseline: Some((2021, 7.24)),
            highlight: 2024,
            unit: "%".into(),
        };
        let s = svg(&t, Lang::Vi);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2, "the gap in 2023 breaks the line: {s}");
        assert_eq!(s.matches("class=\"tgt\"").count(), 2);
        assert_eq!(s.matches("dot cur").count(), 1);
        assert!(s.contains("2024: 4 %; 2025: 5 %") && s.contains("2023: chưa có") && s.contains("chỉ tiêu 2025: 8 %"), "{s}");
        // A flat series still draws inside the box.
        let flat = Trend {
            points: vec![(2021, Some(0.0)), (2022, Some(0.0))],
            targets: vec![],
            baseline: None,
            highlight: 2022,
            unit: "‰".into(),
        };
        assert!(!svg(&flat, Lang::En).contains("NaN"));
    }
}
