//! Escaping and the page shell every treem page shares: the stylesheet
//! served by the service itself, a header with the place and the reader, a
//! navigation bar and a language switch. No JavaScript, nothing fetched
//! from elsewhere.

use std::fmt::Write as _;

use crate::Lang;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A query string from pairs, values encoded: `?year=2024&lang=en`.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// Who is reading, shown in the header with a sign-out button.
#[derive(Debug, Clone)]
pub struct Reader {
    pub name: String,
    /// `viewer`, `officer`, `admin`.
    pub role: String,
    /// Whether a sign-out button makes sense (signed in with the cookie).
    pub can_sign_out: bool,
}

/// One page: the shell around `body`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub lang: Lang,
    /// `<title>`.
    pub title: String,
    /// The big line of the header, e.g. "Thị xã Bình Long".
    pub place: String,
    /// The smaller line, e.g. "Bảng theo dõi kế hoạch bảo vệ, chăm sóc trẻ em 2021–2025".
    pub subtitle: String,
    /// (href, label, current).
    pub nav: Vec<(String, String, bool)>,
    pub reader: Option<Reader>,
    /// The same page in the other language.
    pub other_lang_href: Option<String>,
    pub body: String,
}

pub fn role_label(role: &str, lang: Lang) -> &'static str {
    match (role, lang) {
        ("viewer", Lang::Vi) => "người xem",
        ("officer", Lang::Vi) => "cán bộ",
        ("admin", Lang::Vi) => "quản trị",
        ("viewer", _) => "viewer",
        ("officer", _) => "officer",
        ("admin", _) => "admin",
        (_, _) => "",
    }
}

/// The whole HTML document.
pub fn page(p: &Page) -> String {
    let lang = p.lang;
    let mut h = String::with_capacity(p.body.len() + 2048);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<link rel=\"stylesheet\" href=\"{}\">\n</head>\n<body>\n<header class=\"top\">\n<div class=\"brand\"><span class=\"logo\">treem</span> <span class=\"place\">{}</span><div class=\"subtitle\">{}</div></div>\n<div class=\"who\">",
        lang.code(),
        esc(&p.title),
        crate::CSS_PATH,
        esc(&p.place),
        esc(&p.subtitle)
    );
    if let Some(href) = &p.other_lang_href {
        let label = lang.t("English", "Tiếng Việt");
        let _ = write!(h, "<a class=\"lang\" href=\"{}\" hreflang=\"{}\">{}</a> ", esc(href), lang.other().code(), label);
    }
    if let Some(r) = &p.reader {
        let _ = write!(h, "<span class=\"reader\">{} ({})</span>", esc(&r.name), role_label(&r.role, lang));
        if r.can_sign_out {
            let _ = write!(
                h,
                " <form class=\"inline\" method=\"post\" action=\"/logout\"><button type=\"submit\">{}</button></form>",
                lang.t("Đăng xuất", "Sign out")
            );
        }
    }
    h.push_str("</div>\n</header>\n");
    if !p.nav.is_empty() {
        h.push_str("<nav class=\"main\">");
        for (href, label, current) in &p.nav {
            let cur = if *current { " aria-current=\"page\"" } else { "" };
            let _ = write!(h, "<a href=\"{}\"{cur}>{}</a>", esc(href), esc(label));
        }
        h.push_str("</nav>\n");
    }
    h.push_str("<main>\n");
    h.push_str(&p.body);
    let _ = write!(
        h,
        "\n</main>\n<footer>{}</footer>\n</body>\n</html>\n",
        lang.t(
            "treem — theo dõi Kế hoạch bảo vệ, chăm sóc trẻ em thị xã Bình Long giai đoạn 2021–2025, định hướng đến năm 2030",
            "treem — monitoring the Bình Long child protection and care plan 2021–2025, vision to 2030"
        )
    );
    h
}

/// A small error or notice page body.
pub fn notice(kind: &str, heading: &str, text: &str) -> String {
    format!("<section class=\"notice {}\"><h1>{}</h1><p>{}</p></section>", esc(kind), esc(heading), esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_encodes() {
        assert_eq!(esc("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_encode("/dashboard?year=2024&lang=vi"), "%2Fdashboard%3Fyear%3D2024%26lang%3Dvi");
        assert_eq!(query(&[("year", "2024"), ("office", ""), ("lang", "en")]), "?year=2024&lang=en");
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn the_page_links_its_own_stylesheet_and_nothing_else() {
        let html = page(&Page { title: "t".into(), place: "Thị xã Bình Long".into(), body: "<p>x</p>".into(), ..Default::default() });
        assert!(html.contains("<html lang=\"vi\">") && html.contains("href=\"/assets/treem.css\""));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
    }
}
