//! The ward's data-entry page (trang nhập số liệu), served by the ward node
//! itself on the officer's computer: a form for every kind of event, with
//! each refusal in Vietnamese beside its field, what has not synced yet,
//! and the latest events with their correction and retraction — all of it
//! local, so it works with the network down.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /?lang=vi\|en` | the page ([`page`]) |
//! | `POST /entry/{form}` | records one event (forms: [`forms`]; checks: [`parse`]) → 303 back to the page |
//! | `GET`/`POST /events/{id}/correct` | `event.corrected` of an earlier event, its form filled with the current values |
//! | `GET`/`POST /events/{id}/retract` | `event.retracted`, with its reason |
//! | `GET /assets/treem.css` | the stylesheet (nothing is fetched from elsewhere) |
//!
//! Who may use it: the ward API is unauthenticated by design, for this
//! machine. The pages — which take a child's identity when a case is
//! opened — answer only a loopback peer whose `Host` is a loopback name
//! (no DNS rebinding), and a form is refused when the browser says it was
//! sent from another site (`treem_auth::session::same_origin`), so a web
//! page elsewhere cannot record events through the officer's browser.
//!
//! Everything recorded goes through the same path as the API: the form is
//! read into an event, checked with `Event::validate`, and appended to the
//! ward log (a new case through the case register, `crate::identity`); the
//! page says "recorded" only after the log made it durable.

pub mod forms;
pub mod page;
pub mod parse;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use treem_proto::Envelope;
use treem_proto::event::{Event, EventCorrected, EventRetracted};
use treem_proto::hierarchy::Hierarchy;
use treem_web::html::esc;
use treem_web::{Lang, labels};
use uuid::Uuid;

use crate::http::AppState;
use crate::identity;
use forms::{Errors, FORM, Field, FormKind, Input, KnownCase, Values};
use parse::Parsed;

/// How many of the latest events the page lists.
pub const RECENT: u64 = 50;
/// How far back the page looks for open cases to offer.
const CASE_SCAN: u64 = 5000;

pub fn router<S: Clone + Send + Sync + 'static>(state: AppState) -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/entry/{form}", axum::routing::post(entry))
        .route("/events/{id}/correct", get(correct_form).post(correct_submit))
        .route("/events/{id}/retract", get(retract_form).post(retract_submit))
        .route(treem_web::CSS_PATH, get(css))
        .route_layer(from_fn(this_machine_only))
        .with_state(state)
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], treem_web::CSS).into_response()
}

fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Pages for this machine only; forms from this site only.
async fn this_machine_only(req: Request, next: Next) -> Response {
    let peer_ok = req.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|ConnectInfo(p)| p.ip().is_loopback());
    let host_ok = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).is_none_or(loopback_host);
    if !peer_ok || !host_ok {
        return html(
            StatusCode::FORBIDDEN,
            treem_web::html::notice(
                "error",
                "403",
                "Trang nhập số liệu chỉ mở được trên chính máy của phường, xã (http://127.0.0.1). — The data-entry page opens only on the ward's own computer.",
            ),
        );
    }
    if req.method() == Method::POST && !treem_auth::session::same_origin(req.headers()) {
        return html(
            StatusCode::FORBIDDEN,
            treem_web::html::notice("error", "403", "Biểu mẫu phải được gửi từ chính trang này. — The form must be sent from this page."),
        );
    }
    next.run(req).await
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")))]).into_response()
}

fn place(state: &AppState) -> String {
    let w = state.log.ward();
    Hierarchy::shipped()
        .ward(&w.province, &w.town, &w.ward)
        .map(|x| labels::place(&x.kind, &x.name))
        .unwrap_or_else(|_| format!("Phường, xã {}", w.ward))
}

fn values_of(pairs: Vec<(String, String)>) -> Values {
    let mut v = Values::new();
    for (k, x) in pairs {
        v.entry(k).or_default().push(x);
    }
    v
}

fn lang_of(values: &Values) -> Lang {
    Lang::parse(values.get("lang").and_then(|v| v.first()).map(String::as_str))
}

/// The latest events, newest first.
fn recent(state: &AppState) -> Vec<Envelope> {
    let last = state.log.last_seq();
    let mut v = state.log.read_from(last.saturating_sub(RECENT), RECENT as usize).unwrap_or_default();
    v.reverse();
    v
}

/// Cases opened here (within the last [`CASE_SCAN`] events) and not closed.
fn open_cases(state: &AppState, lang: Lang) -> Vec<KnownCase> {
    let last = state.log.last_seq();
    let mut after = last.saturating_sub(CASE_SCAN);
    let mut open: Vec<(Uuid, String)> = Vec::new();
    while after < last {
        let Ok(batch) = state.log.read_from(after, 1000) else { break };
        let Some(end) = batch.last().map(|e| e.seq) else { break };
        for e in &batch {
            match &e.event {
                Event::CaseOpened(c) => open
                    .push((c.case_id, format!("{} — {}, {}", page::short(&c.case_id), labels::category(c.category.name(), lang), c.year))),
                Event::CaseClosed(c) => open.retain(|(id, _)| *id != c.case_id),
                _ => {}
            }
        }
        after = end;
    }
    open.into_iter().rev().map(|(id, label)| KnownCase { case_id: id.to_string(), label }).collect()
}

fn render_main(
    state: &AppState,
    lang: Lang,
    notice: Option<(&'static str, String)>,
    failed: Option<(FormKind, &Values, &Errors)>,
) -> String {
    let (status, status_error) = match state.log.status() {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let recent = recent(state);
    let cases = open_cases(state, lang);
    let view = page::View { lang, place: place(state), status: status.as_ref(), status_error, recent: &recent, cases: &cases, notice };
    page::render(&view, state.log.catalogue(), failed)
}

#[derive(Debug, Deserialize)]
pub struct IndexQuery {
    lang: Option<String>,
    recorded: Option<u64>,
}

async fn index(State(state): State<AppState>, Query(q): Query<IndexQuery>) -> Response {
    let lang = Lang::parse(q.lang.as_deref());
    let notice = q.recorded.map(|seq| {
        (
            "ok",
            match lang {
                Lang::Vi => format!("Đã ghi sự kiện số {seq} vào sổ (đã lưu an toàn trên máy này)."),
                Lang::En => format!("Event {seq} recorded (safe on this computer's disk)."),
            },
        )
    });
    html(StatusCode::OK, render_main(&state, lang, notice, None))
}

/// Records `parsed` (with `author`); the seq, or the messages of the form.
async fn record(state: &AppState, parsed: Parsed, lang: Lang) -> Result<u64, Errors> {
    let catalogue = state.log.catalogue();
    match parsed {
        Parsed::Event(event) => {
            event.validate(catalogue).map_err(|e| parse::event_error(&e, catalogue, lang))?;
            let env = state.log.append(&state.default_author, event).await.map_err(|e| parse::log_error(&e, catalogue, lang))?;
            Ok(env.seq)
        }
        Parsed::Case(case) => {
            let (_, env) = identity::open_case(&state.log, &state.default_author, case)
                .await
                .map_err(|e| parse::identity_error(&e, catalogue, lang))?;
            Ok(env.seq)
        }
    }
}

async fn entry(State(state): State<AppState>, Path(slug): Path<String>, axum::Form(pairs): axum::Form<Vec<(String, String)>>) -> Response {
    let values = values_of(pairs);
    let lang = lang_of(&values);
    let Some(kind) = FormKind::from_slug(&slug).filter(|k| *k != FormKind::CaseCoarse) else {
        return html(StatusCode::NOT_FOUND, treem_web::html::notice("error", "404", &format!("no form {slug:?}")));
    };
    let result = match parse::parse(kind, &values, lang) {
        Ok(parsed) => record(&state, parsed, lang).await,
        Err(errors) => Err(errors),
    };
    match result {
        Ok(seq) => {
            tracing::info!(ward = %state.log.ward().ward, seq, kind = kind.event_kind(), "recorded from the data-entry page");
            see_other(&format!("/?recorded={seq}&lang={}#recent", lang.code()))
        }
        Err(errors) => html(StatusCode::UNPROCESSABLE_ENTITY, render_main(&state, lang, None, Some((kind, &values, &errors)))),
    }
}

/// The event `id` and, if it was corrected since, the latest correction's body.
fn current(state: &AppState, id: Uuid) -> Result<(Envelope, Event), String> {
    let original = match state.log.get(id) {
        Ok(Some(e)) => e,
        Ok(None) => return Err(format!("event {id} is not in this ward's log")),
        Err(e) => return Err(e.to_string()),
    };
    let mut latest = original.event.clone();
    let mut after = original.seq;
    loop {
        let batch = state.log.read_from(after, 1000).map_err(|e| e.to_string())?;
        let Some(end) = batch.last().map(|e| e.seq) else { break };
        for e in batch {
            match e.event {
                Event::EventCorrected(c) if c.replaces == id => latest = *c.corrected,
                Event::EventRetracted(r) if r.replaces == id => return Err(format!("event {id} was retracted (event {})", e.seq)),
                _ => {}
            }
        }
        after = end;
    }
    Ok((original, latest))
}

fn reason_field(lang: Lang) -> Field {
    Field {
        name: "reason".into(),
        label: lang.t("Lý do", "Reason").into(),
        input: Input::Text,
        required: true,
        hint: Some(
            lang.t(
                "Ví dụ: nhập nhầm mẫu số; báo cáo lại theo số liệu của trạm y tế.",
                "E.g. wrong denominator typed; re-reported from the health centre's figures.",
            )
            .into(),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

fn not_found(state: &AppState, lang: Lang, text: &str) -> Response {
    let body = format!(
        "{}<p><a href=\"/?lang={}\">{}</a></p>",
        treem_web::html::notice("error", lang.t("Không sửa được", "Cannot change this"), text),
        lang.code(),
        lang.t("Về trang nhập số liệu", "Back")
    );
    html(StatusCode::NOT_FOUND, page::shell(lang, &place(state), format!("/?lang={}", lang.other().code()), body))
}

fn correction_page(state: &AppState, lang: Lang, original: &Envelope, kind: FormKind, values: &Values, errors: &Errors) -> String {
    let f = forms::fields(kind, lang, state.log.catalogue(), &open_cases(state, lang));
    let head = format!(
        "<h1>{} #{}</h1><p>{}: {}</p>",
        lang.t("Sửa sự kiện", "Correct event"),
        original.seq,
        lang.t("Ghi lúc", "Recorded"),
        treem_web::format::time(original.recorded_at, lang)
    );
    let form = forms::render(
        kind,
        lang,
        &format!("/events/{}/correct", original.id),
        &f,
        values,
        errors,
        &[reason_field(lang)],
        lang.t("Ghi bản sửa", "Record the correction"),
    );
    page::shell(lang, &place(state), format!("/events/{}/correct?lang={}", original.id, lang.other().code()), format!("{head}{form}"))
}

async fn correct_form(State(state): State<AppState>, Path(id): Path<Uuid>, Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::parse(q.lang.as_deref());
    let (original, latest) = match current(&state, id) {
        Ok(x) => x,
        Err(e) => return not_found(&state, lang, &e),
    };
    let Some((kind, values)) = forms::values_of(&latest) else {
        return not_found(
            &state,
            lang,
            lang.t(
                "Đây là một lần sửa hoặc rút lại; hãy sửa sự kiện gốc.",
                "This is a correction or retraction; correct the original event.",
            ),
        );
    };
    html(StatusCode::OK, correction_page(&state, lang, &original, kind, &values, &Errors::new()))
}

async fn correct_submit(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let values = values_of(pairs);
    let lang = lang_of(&values);
    let (original, latest) = match current(&state, id) {
        Ok(x) => x,
        Err(e) => return not_found(&state, lang, &e),
    };
    let Some((kind, _)) = forms::values_of(&latest) else {
        return not_found(&state, lang, "a correction cannot be corrected");
    };
    let reason = values.get("reason").and_then(|v| v.first()).map(|s| s.trim().to_string()).unwrap_or_default();
    let parsed = parse::parse(kind, &values, lang).and_then(|p| match p {
        Parsed::Event(Event::CaseOpened(mut c)) => {
            // The case id never changes; it is the original's.
            if let Event::CaseOpened(o) = &original.event {
                c.case_id = o.case_id;
            }
            Ok(Event::CaseOpened(c))
        }
        Parsed::Event(e) => Ok(e),
        Parsed::Case(_) => Err(Errors::from([(FORM.to_string(), "unexpected form".to_string())])),
    });
    let result = match parsed {
        Ok(event) => {
            record(&state, Parsed::Event(Event::EventCorrected(EventCorrected { replaces: id, corrected: Box::new(event), reason })), lang)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(seq) => see_other(&format!("/?recorded={seq}&lang={}#recent", lang.code())),
        Err(errors) => html(StatusCode::UNPROCESSABLE_ENTITY, correction_page(&state, lang, &original, kind, &values, &errors)),
    }
}

fn retraction_page(state: &AppState, lang: Lang, original: &Envelope, values: &Values, errors: &Errors) -> String {
    let mut b = format!(
        "<h1>{} #{}</h1><p>{}</p>",
        lang.t("Rút lại sự kiện", "Retract event"),
        original.seq,
        lang.t(
            "Sự kiện rút lại không còn được tính, nhưng vẫn nằm trong sổ (sổ không bao giờ xóa). Hãy ghi lý do.",
            "A retracted event no longer counts, but stays in the log (the log never forgets). Give the reason."
        )
    );
    let reason = reason_field(lang);
    let v = values.get("reason").and_then(|v| v.first()).cloned().unwrap_or_default();
    let err = errors.get("reason").or_else(|| errors.get(FORM));
    b.push_str(&format!(
        "<form class=\"card entry{}\" method=\"post\" action=\"/events/{}/retract\"><p><strong>{}</strong></p><div class=\"field{}\"><label for=\"retract-reason\">{}</label><input id=\"retract-reason\" name=\"reason\" value=\"{}\" maxlength=\"200\" required><span class=\"hint\">{}</span>{}</div><input type=\"hidden\" name=\"lang\" value=\"{}\"><button type=\"submit\">{}</button> <a class=\"button secondary\" href=\"/?lang={}\">{}</a></form>",
        if err.is_some() { " invalid" } else { "" },
        original.id,
        esc(labels::event_kind(original.event.kind(), lang)),
        if err.is_some() { " invalid" } else { "" },
        esc(&reason.label),
        esc(&v),
        esc(reason.hint.as_deref().unwrap_or("")),
        err.map(|e| format!("<span class=\"error\" role=\"alert\">{}</span>", esc(e))).unwrap_or_default(),
        lang.code(),
        lang.t("Rút lại", "Retract"),
        lang.code(),
        lang.t("Thôi", "Cancel"),
    ));
    page::shell(lang, &place(state), format!("/events/{}/retract?lang={}", original.id, lang.other().code()), b)
}

async fn retract_form(State(state): State<AppState>, Path(id): Path<Uuid>, Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::parse(q.lang.as_deref());
    match current(&state, id) {
        Ok((original, _)) if !matches!(original.event, Event::EventCorrected(_) | Event::EventRetracted(_)) => {
            html(StatusCode::OK, retraction_page(&state, lang, &original, &Values::new(), &Errors::new()))
        }
        Ok(_) => not_found(
            &state,
            lang,
            lang.t(
                "Đây là một lần sửa hoặc rút lại; hãy rút lại sự kiện gốc.",
                "This is a correction or retraction; retract the original event.",
            ),
        ),
        Err(e) => not_found(&state, lang, &e),
    }
}

async fn retract_submit(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let values = values_of(pairs);
    let lang = lang_of(&values);
    let original = match current(&state, id) {
        Ok((o, _)) => o,
        Err(e) => return not_found(&state, lang, &e),
    };
    let reason = values.get("reason").and_then(|v| v.first()).map(|s| s.trim().to_string()).unwrap_or_default();
    match record(&state, Parsed::Event(Event::EventRetracted(EventRetracted { replaces: id, reason })), lang).await {
        Ok(seq) => see_other(&format!("/?recorded={seq}&lang={}#recent", lang.code())),
        Err(errors) => html(StatusCode::UNPROCESSABLE_ENTITY, retraction_page(&state, lang, &original, &values, &errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_host_names_pass() {
        for ok in ["127.0.0.1:7410", "localhost:7410", "[::1]:7410", "127.0.0.1", "LOCALHOST"] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:7410", "192.168.1.5:7410", "example.com", "127.0.0.1.evil.example"] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }
}
