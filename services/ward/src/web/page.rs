//! The data-entry page itself: what has not synced yet, the forms, and the
//! latest events with their "sửa" (correct) and "rút lại" (retract)
//! actions. Pure rendering from what [`super`] read from the log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use treem_proto::Envelope;
use treem_proto::event::Event;
use treem_web::html::{self, Page, esc};
use treem_web::{Lang, format, labels};
use uuid::Uuid;

use super::forms::{self, Errors, FormKind, KnownCase, Values};
use crate::log::LogStatus;

/// What the page shows besides the forms.
pub struct View<'a> {
    pub lang: Lang,
    pub place: String,
    pub status: Option<&'a LogStatus>,
    pub status_error: Option<String>,
    /// Newest first.
    pub recent: &'a [Envelope],
    pub cases: &'a [KnownCase],
    pub notice: Option<(&'static str, String)>,
}

pub fn short(id: &Uuid) -> String {
    id.to_string()[..8].to_string()
}

fn summary(e: &Event, lang: Lang, seq_of: &BTreeMap<Uuid, u64>) -> String {
    let year = |y: u16| format!("{} {y}", lang.t("năm", "year"));
    match e {
        Event::PopulationReported(p) => {
            let parts: Vec<String> =
                p.figures.iter().map(|(g, n)| format!("{} {}", labels::population_group(*g, lang), format::count(*n, lang))).collect();
            format!("{}: {}", year(p.year), parts.join("; "))
        }
        Event::IndicatorObserved(o) => {
            let frac = match o.denominator {
                Some(d) => format!("{}/{}", format::count(o.numerator, lang), format::count(d, lang)),
                None => format::count(o.numerator, lang),
            };
            format!("{} {}, {}: {frac} ({})", lang.t("Chỉ tiêu", "Indicator"), o.indicator, year(o.year), o.source)
        }
        Event::WardRecognised(r) => format!(
            "{}, {}: {}",
            labels::recognition(r.recognition, lang),
            year(r.year),
            if r.granted { lang.t("được công nhận", "granted") } else { lang.t("mất công nhận", "lost") }
        ),
        Event::CaseOpened(c) => format!(
            "{} {}: {}, {}, {}, {}",
            lang.t("Hồ sơ", "Case"),
            short(&c.case_id),
            labels::category(c.category.name(), lang),
            labels::sex(c.sex.name(), lang),
            labels::age_band(c.age_band.name(), lang),
            year(c.year)
        ),
        Event::CaseSupportRecorded(s) => {
            let label = forms::SUPPORTS
                .iter()
                .find(|x| x.0 == s.support)
                .map(|x| lang.t(x.1, x.2).to_string())
                .unwrap_or_else(|| s.support.clone());
            format!("{} {}: {label}, {}", lang.t("Hồ sơ", "Case"), short(&s.case_id), year(s.year))
        }
        Event::CaseClosed(c) => {
            format!("{} {}: {}, {} ({})", lang.t("Hồ sơ", "Case"), short(&c.case_id), lang.t("kết thúc", "closed"), year(c.year), c.reason)
        }
        Event::EventCorrected(c) => format!(
            "{} #{}: {} — {}",
            lang.t("Sửa sự kiện", "Corrects event"),
            seq_of.get(&c.replaces).map(u64::to_string).unwrap_or_else(|| short(&c.replaces)),
            summary(&c.corrected, lang, seq_of),
            c.reason
        ),
        Event::EventRetracted(r) => format!(
            "{} #{} — {}",
            lang.t("Rút lại sự kiện", "Retracts event"),
            seq_of.get(&r.replaces).map(u64::to_string).unwrap_or_else(|| short(&r.replaces)),
            r.reason
        ),
    }
}

fn status_box(v: &View) -> String {
    let lang = v.lang;
    let mut s = format!("<section class=\"card\" id=\"dong-bo\"><h2>{}</h2>", lang.t("Đồng bộ với thị xã", "Sync with the town"));
    match v.status {
        Some(st) => {
            let pending_class = if st.pending > 0 { "pending" } else { "synced" };
            let _ = write!(
                s,
                "<div class=\"status-box\"><div><div class=\"big {pending_class}\" id=\"pending\" data-pending=\"{}\">{}</div><div>{}</div></div><div><div><strong>{}</strong> {}</div><div><strong>{}</strong> {} / {}</div>",
                st.pending,
                format::count(st.pending, lang),
                lang.t("sự kiện chưa gửi lên thị xã", "events not yet sent to the town"),
                lang.t("Lần đồng bộ cuối:", "Last sync:"),
                st.last_sync_at.map(|t| format::time(t, lang)).unwrap_or_else(|| lang.t("chưa có", "never").into()),
                lang.t("Đã gửi / đã ghi:", "Sent / recorded:"),
                format::count(st.acked_seq, lang),
                format::count(st.last_seq, lang),
            );
            if let Some(e) = &st.last_error {
                let at = st.last_error_at.map(|t| format!(" ({})", format::time(t, lang))).unwrap_or_default();
                let _ =
                    write!(s, "<div class=\"warn\">{}{at}: {}</div>", lang.t("Chưa kết nối được thị xã", "Cannot reach the town"), esc(e));
            }
            s.push_str("</div></div>");
        }
        None => {
            let _ = write!(s, "<p class=\"warn\">{}</p>", esc(v.status_error.as_deref().unwrap_or("")));
        }
    }
    let _ = write!(
        s,
        "<p class=\"small\">{}</p></section>",
        lang.t(
            "Trang này chạy hoàn toàn trên máy này: ghi được cả khi mất mạng. Sự kiện đã ghi được lưu an toàn và tự gửi lên thị xã khi có mạng. Tải lại trang để xem tình trạng mới.",
            "This page runs entirely on this computer: you can record with the network down. What is recorded is safe on disk and is sent to the town by itself when the network is back. Reload to see the latest state."
        )
    );
    s
}

fn recent(v: &View) -> String {
    let lang = v.lang;
    let seq_of: BTreeMap<Uuid, u64> = v.recent.iter().map(|e| (e.id, e.seq)).collect();
    let mut replaced: BTreeMap<Uuid, (u64, bool)> = BTreeMap::new();
    for e in v.recent.iter().rev() {
        match &e.event {
            Event::EventCorrected(c) => {
                replaced.insert(c.replaces, (e.seq, false));
            }
            Event::EventRetracted(r) => {
                replaced.insert(r.replaces, (e.seq, true));
            }
            _ => {}
        }
    }
    let acked = v.status.map(|s| s.acked_seq).unwrap_or(0);
    let mut s = format!(
        "<section id=\"recent\"><h2>{}</h2><table class=\"recent\"><thead><tr><th class=\"num\">#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>",
        lang.t("Các sự kiện đã ghi gần đây", "Recently recorded"),
        lang.t("Loại", "Kind"),
        lang.t("Nội dung", "What"),
        lang.t("Ghi lúc", "Recorded"),
        lang.t("Gửi lên thị xã", "Sent to the town"),
    );
    if v.recent.is_empty() {
        let _ = write!(s, "<tr><td colspan=\"6\">{}</td></tr>", lang.t("Chưa ghi sự kiện nào.", "Nothing recorded yet."));
    }
    let retracted: BTreeSet<Uuid> = replaced.iter().filter(|(_, (_, r))| *r).map(|(id, _)| *id).collect();
    for e in v.recent {
        let sent = if e.seq <= acked {
            format!("<span class=\"synced\">{}</span>", lang.t("đã gửi", "sent"))
        } else {
            format!("<span class=\"pending\">{}</span>", lang.t("chưa gửi", "not yet"))
        };
        let mut what = esc(&summary(&e.event, lang, &seq_of));
        if let Some((seq, retract)) = replaced.get(&e.id) {
            let _ = write!(
                what,
                " <span class=\"badge st-no-data\">{} #{seq}</span>",
                if *retract { lang.t("đã rút lại bởi", "retracted by") } else { lang.t("đã sửa bởi", "corrected by") }
            );
        }
        let actions = match &e.event {
            Event::EventCorrected(_) | Event::EventRetracted(_) => String::new(),
            _ if retracted.contains(&e.id) => String::new(),
            _ => format!(
                "<a href=\"/events/{id}/correct?lang={l}\" class=\"act-correct\">{}</a> · <a href=\"/events/{id}/retract?lang={l}\" class=\"act-retract\">{}</a>",
                lang.t("sửa", "correct"),
                lang.t("rút lại", "retract"),
                id = e.id,
                l = lang.code()
            ),
        };
        let _ = write!(
            s,
            "<tr data-seq=\"{}\" data-id=\"{}\" data-kind=\"{}\"><td class=\"num\">{}</td><td>{}</td><td>{what}</td><td>{}</td><td>{sent}</td><td class=\"noprint\">{actions}</td></tr>",
            e.seq,
            e.id,
            e.event.kind(),
            e.seq,
            labels::event_kind(e.event.kind(), lang),
            format::time(e.recorded_at, lang),
        );
    }
    s.push_str("</tbody></table></section>");
    s
}

/// The shell around a ward page.
pub fn shell(lang: Lang, place: &str, other_lang_href: String, body: String) -> String {
    html::page(&Page {
        lang,
        title: format!("{place} — {}", lang.t("Nhập số liệu", "Data entry")),
        place: place.into(),
        subtitle: lang
            .t("Nhập số liệu bảo vệ, chăm sóc trẻ em — chạy trên máy này", "Child protection data entry — runs on this computer")
            .into(),
        nav: vec![
            (format!("/?lang={}", lang.code()), lang.t("Nhập số liệu", "Data entry").into(), true),
            ("#dong-bo".into(), lang.t("Đồng bộ", "Sync").into(), false),
            ("#recent".into(), lang.t("Đã ghi gần đây", "Recent").into(), false),
        ],
        other_lang_href: Some(other_lang_href),
        body,
        ..Default::default()
    })
}

/// The main page; `failed` is a form that was refused, shown first with its messages.
pub fn render(v: &View, catalogue: &treem_proto::catalogue::Catalogue, failed: Option<(FormKind, &Values, &Errors)>) -> String {
    let lang = v.lang;
    let mut b = String::new();
    let _ = write!(b, "<h1>{}</h1>", lang.t("Nhập số liệu của phường, xã", "Record the ward's data"));
    if let Some((class, text)) = &v.notice {
        let _ = write!(b, "<p class=\"notice {class}\" role=\"status\">{}</p>", esc(text));
    }
    b.push_str(&status_box(v));
    let empty = Values::new();
    let no_errors = Errors::new();
    if let Some((kind, values, errors)) = failed {
        let f = forms::fields(kind, lang, catalogue, v.cases);
        b.push_str(&forms::render(kind, lang, &format!("/entry/{}", kind.slug()), &f, values, errors, &[], lang.t("Ghi", "Record")));
    }
    let _ = write!(b, "<h2>{}</h2><div class=\"cols\">", lang.t("Ghi sự kiện mới", "Record a new event"));
    for kind in FormKind::NEW {
        if failed.is_some_and(|(k, _, _)| k == kind) {
            continue;
        }
        let f = forms::fields(kind, lang, catalogue, v.cases);
        b.push_str(&forms::render(kind, lang, &format!("/entry/{}", kind.slug()), &f, &empty, &no_errors, &[], lang.t("Ghi", "Record")));
    }
    b.push_str("</div>");
    b.push_str(&recent(v));
    shell(lang, &v.place, format!("/?lang={}", lang.other().code()), b)
}
