//! Numbers, money, times and durations as a reader of each language writes
//! them. Vietnamese groups thousands with `.` and writes the decimal comma:
//! `1.234,5`; English writes `1,234.5`.
//!
//! Values are shown with at most two decimals, trailing zeros dropped
//! (`6,89`, `80`, `0,12`), the precision the plan's own targets use.

use chrono::{DateTime, FixedOffset, Utc};

use crate::Lang;

fn group(int: &str, sep: char) -> String {
    let digits: Vec<char> = int.chars().collect();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(*c);
    }
    out
}

fn seps(lang: Lang) -> (char, char) {
    match lang {
        Lang::Vi => ('.', ','),
        Lang::En => (',', '.'),
    }
}

/// `v` with exactly `decimals` decimals, grouped: `number(1234.5, 1, Vi)` → `1.234,5`.
pub fn number(v: f64, decimals: usize, lang: Lang) -> String {
    let (thousands, decimal) = seps(lang);
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let sign = if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') { "-" } else { "" };
    let mut out = format!("{sign}{}", group(int, thousands));
    if !frac.is_empty() {
        out.push(decimal);
        out.push_str(frac);
    }
    out
}

/// A value of an indicator: at most two decimals, trailing zeros dropped:
/// `value(6.892, Vi)` → `6,89`; `value(80.0, Vi)` → `80`.
pub fn value(v: f64, lang: Lang) -> String {
    let s = number(v, 2, lang);
    let (_, decimal) = seps(lang);
    if s.contains(decimal) { s.trim_end_matches('0').trim_end_matches(decimal).to_string() } else { s }
}

/// A whole count, grouped: `count(15988, Vi)` → `15.988`.
pub fn count(n: u64, lang: Lang) -> String {
    let (thousands, _) = seps(lang);
    group(&n.to_string(), thousands)
}

/// An amount of Vietnamese đồng: `money(2_340_000, Vi)` → `2.340.000 ₫`,
/// `money(2_340_000, En)` → `VND 2,340,000`.
pub fn money(vnd: u64, lang: Lang) -> String {
    match lang {
        Lang::Vi => format!("{} ₫", count(vnd, lang)),
        Lang::En => format!("VND {}", count(vnd, lang)),
    }
}

/// Vietnam's time zone (UTC+7, no daylight saving).
pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset")
}

/// A moment in Vietnam time: `30/11/2026 08:15` (vi), `2026-11-30 08:15` (en).
pub fn time(t: DateTime<Utc>, lang: Lang) -> String {
    let local = t.with_timezone(&vietnam());
    match lang {
        Lang::Vi => local.format("%d/%m/%Y %H:%M").to_string(),
        Lang::En => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// A span of time in words, to the two largest units:
/// `duration(93_784, Vi)` → `1 ngày 2 giờ`; `duration(300, En)` → `5 min`.
pub fn duration(seconds: i64, lang: Lang) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    let (day, hour, min, sec) = match lang {
        Lang::Vi => ("ngày", "giờ", "phút", "giây"),
        Lang::En => ("d", "h", "min", "s"),
    };
    if d > 0 {
        if h > 0 { format!("{d} {day} {h} {hour}") } else { format!("{d} {day}") }
    } else if h > 0 {
        if m > 0 { format!("{h} {hour} {m} {min}") } else { format!("{h} {hour}") }
    } else if m > 0 {
        format!("{m} {min}")
    } else {
        format!("{s} {sec}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_numbers_group_with_dots_and_use_the_decimal_comma() {
        assert_eq!(number(1234.5, 1, Lang::Vi), "1.234,5");
        assert_eq!(number(1234.5, 1, Lang::En), "1,234.5");
        assert_eq!(number(1_234_567.0, 0, Lang::Vi), "1.234.567");
        assert_eq!(number(-0.004, 2, Lang::Vi), "0,00");
        assert_eq!(number(-12.5, 1, Lang::Vi), "-12,5");
        assert_eq!(value(6.892895, Lang::Vi), "6,89");
        assert_eq!(value(80.0, Lang::Vi), "80");
        assert_eq!(value(0.12, Lang::Vi), "0,12");
        assert_eq!(value(99.5, Lang::En), "99.5");
        assert_eq!(value(550.0, Lang::Vi), "550");
        assert_eq!(count(15_988, Lang::Vi), "15.988");
        assert_eq!(count(999, Lang::Vi), "999");
        assert_eq!(money(2_340_000, Lang::Vi), "2.340.000 ₫");
        assert_eq!(money(292_500, Lang::En), "VND 292,500");
    }

    #[test]
    fn times_are_in_vietnam_time_and_durations_in_words() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T01:15:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(time(t, Lang::Vi), "30/11/2026 08:15");
        assert_eq!(time(t, Lang::En), "2026-11-30 08:15");
        assert_eq!(duration(93_784, Lang::Vi), "1 ngày 2 giờ");
        assert_eq!(duration(8 * 86_400, Lang::Vi), "8 ngày");
        assert_eq!(duration(300, Lang::En), "5 min");
        assert_eq!(duration(3_660, Lang::Vi), "1 giờ 1 phút");
        assert_eq!(duration(-5, Lang::Vi), "0 giây");
    }
}
