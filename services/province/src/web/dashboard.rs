//! `GET /` and `GET /dashboard?year=2024&office=health_centre&lang=vi`:
//! the province dashboard over its towns, from the stored town snapshots
//! rolled up by [`crate::rollup`], drawn by `treem_web::dashboard`.
//!
//! - A figure any town withheld (a small sensitive count) is "withheld"
//!   for the province and for that town, never zero; the trend leaves the
//!   year out.
//! - Case counts (by category only: the province never receives status,
//!   sex or age) are shown to the officer role and above, after an audit
//!   record, as `/api/v1/cases` is.
//! - Sync health per town: its newest snapshot, when the town made it,
//!   the years it covers, parked messages; silent beyond
//!   `silent_after_days` is red.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::Datelike;
use serde::Deserialize;
use treem_auth::{Caller, Role};
use treem_proto::event::{FIRST_YEAR, LAST_YEAR};
use treem_proto::judge;
use treem_proto::projection::TownSnapshot;
use treem_web::dashboard::{self, CaseRow, Cases, Dashboard, Figure, IndicatorRow, Level, SyncRow, SyncTable, UnitRef};
use treem_web::html::Reader;
use treem_web::{Lang, labels};

use super::{WebState, error_page, html_response};
use crate::rollup::{self, Shown};

#[derive(Debug, Deserialize)]
pub struct Params {
    year: Option<String>,
    office: Option<String>,
    lang: Option<String>,
}

fn this_year() -> u16 {
    let y = chrono::Utc::now().with_timezone(&treem_web::format::vietnam()).year();
    u16::try_from(y).unwrap_or(LAST_YEAR).clamp(FIRST_YEAR, LAST_YEAR)
}

fn withheld(s: &Shown, lang: Lang) -> Option<String> {
    s.suppressed.then(|| {
        let towns = s.suppressed_by.iter().cloned().collect::<Vec<_>>().join(", ");
        match lang {
            Lang::Vi => format!(
                "Đã ẩn: số nhỏ nhạy cảm của đơn vị {towns} không được chuyển lên tỉnh để không thể nhận ra trẻ em; thị xã giữ số liệu này."
            ),
            Lang::En => s.reason.clone(),
        }
    })
}

fn figure(s: Shown, lang: Lang) -> Figure {
    let suppressed = withheld(&s, lang);
    Figure { progress: s.progress, suppressed }
}

pub async fn page(State(w): State<WebState>, caller: Caller, headers: HeaderMap, uri: Uri, Query(p): Query<Params>) -> Response {
    let lang = Lang::parse(p.lang.as_deref());
    let year = match p.year.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => this_year(),
        Some(raw) => match raw.parse::<u16>() {
            Ok(y) if (FIRST_YEAR..=LAST_YEAR).contains(&y) => y,
            _ => {
                let text = match lang {
                    Lang::Vi => format!("Năm «{raw}» không hợp lệ: hãy chọn một năm từ {FIRST_YEAR} đến {LAST_YEAR}."),
                    Lang::En => format!("Year {raw:?} is not valid: choose a year from {FIRST_YEAR} to {LAST_YEAR}."),
                };
                return error_page(&w, lang, StatusCode::BAD_REQUEST, &text);
            }
        },
    };
    let office = match p.office.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(o) => match labels::office_parse(o) {
            Some(o) => Some(o),
            None => {
                let known: Vec<&str> = labels::OFFICES.iter().map(|o| labels::office_key(*o)).collect();
                return error_page(&w, lang, StatusCode::BAD_REQUEST, &format!("{o:?}: {}", known.join(", ")));
            }
        },
    };
    let mut by_year: Vec<Vec<TownSnapshot>> = Vec::new();
    for y in FIRST_YEAR..=LAST_YEAR {
        match w.app.store.snapshots_for_year(y) {
            Ok(s) => by_year.push(s),
            Err(e) => {
                tracing::error!(error = %e, "province store unreadable for the dashboard");
                return error_page(&w, lang, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
            }
        }
    }
    let now = &by_year[usize::from(year - FIRST_YEAR)];
    let towns = w.towns();
    let units: Vec<UnitRef> = towns.iter().map(|(code, name)| UnitRef { code: code.clone(), name: name.clone() }).collect();

    let catalogue = &w.app.catalogue;
    let scope = rollup::province_progress(catalogue, year, now, None);
    let per_town: Vec<Vec<Shown>> =
        towns.iter().map(|(code, _)| rollup::town_progress(catalogue, year, now.iter().find(|s| &s.town == code), None)).collect();
    let sums: Vec<BTreeMap<String, rollup::Figure>> =
        by_year.iter().enumerate().map(|(i, snaps)| rollup::sum_indicators(FIRST_YEAR + i as u16, snaps)).collect();
    let rows = catalogue
        .indicators
        .iter()
        .enumerate()
        .map(|(i, ind)| IndicatorRow {
            indicator: ind.clone(),
            scope: figure(scope[i].clone(), lang),
            trend: sums
                .iter()
                .enumerate()
                .map(|(y, m)| {
                    let v = match m.get(&ind.code) {
                        Some(rollup::Figure::Shown(f)) => judge::value(ind.unit, *f),
                        _ => None,
                    };
                    (FIRST_YEAR + y as u16, v)
                })
                .collect(),
            units: per_town.iter().map(|t| figure(t[i].clone(), lang)).collect(),
        })
        .collect();

    let cases = if caller.role.allows(Role::Officer) {
        match w.auth.record_read(&caller, uri.path(), uri.query()).await {
            Ok(()) => {
                let total = rollup::sum_cases(year, now);
                let rows = total.iter().map(|(c, n)| CaseRow { category: c.clone(), total: *n, ..Default::default() }).collect();
                let per_unit = now.iter().map(|s| (s.town.clone(), rollup::sum_cases(year, [s]))).collect();
                Cases::Shown {
                    rows,
                    detailed: false,
                    per_unit,
                    note: Some(
                        lang.t(
                            "Tỉnh chỉ nhận số đếm theo nhóm từ các thị xã (không có tình trạng, giới tính, độ tuổi hay danh tính); số nhỏ nhạy cảm bị ẩn ở thị xã.",
                            "The province receives counts by category only (no status, sex, age or identity); small sensitive counts are withheld by the towns.",
                        )
                        .into(),
                    ),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log write failed: case counts withheld from the dashboard");
                Cases::Unavailable(
                    lang.t(
                        "Không ghi được nhật ký kiểm tra nên số hồ sơ không được hiển thị.",
                        "The audit log cannot be written, so case counts are not shown.",
                    )
                    .into(),
                )
            }
        }
    } else {
        Cases::NeedsOfficer
    };

    let d = Dashboard {
        lang,
        level: Level::Province,
        place: w.place(),
        year,
        office,
        reader: Some(Reader {
            name: caller.name.clone(),
            role: caller.role.as_str().into(),
            can_sign_out: treem_auth::session::token_text(&headers).is_some(),
        }),
        generated_at: chrono::Utc::now(),
        units,
        rows,
        cases,
        sync: sync_table(&w, &towns, lang),
        nav: vec![],
        path: "/dashboard".into(),
    };
    html_response(StatusCode::OK, dashboard::render(&d))
}

fn sync_table(w: &WebState, towns: &[(String, String)], lang: Lang) -> SyncTable {
    let now = chrono::Utc::now();
    let limit = i64::from(w.app.silent_after_days) * 86_400;
    let snaps = w.app.store.all_snapshots().unwrap_or_default();
    let mut parked = w.app.store.parked_counts().unwrap_or_default();
    let rows = towns
        .iter()
        .map(|(code, name)| {
            let mine: Vec<&TownSnapshot> = snaps.iter().filter(|s| &s.town == code).collect();
            let latest = mine.iter().max_by_key(|s| s.version);
            let years: BTreeSet<u16> = mine.iter().map(|s| s.year).collect();
            let lag = latest.map(|s| (now - s.produced_at).num_seconds().max(0));
            let parked_n = parked.remove(&Some(code.clone())).unwrap_or(0);
            SyncRow {
                unit: UnitRef { code: code.clone(), name: name.clone() },
                last_at: latest.map(|s| s.produced_at),
                lag_seconds: lag,
                silent: lag.is_none_or(|l| l > limit),
                cells: vec![
                    latest.map(|s| s.version.to_string()).unwrap_or_else(|| "—".into()),
                    years.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
                    parked_n.to_string(),
                ],
                problem: (parked_n > 0).then(|| match lang {
                    Lang::Vi => format!("{parked_n} tin bị giữ lại (xem /api/v1/parked)"),
                    Lang::En => format!("{parked_n} parked (see /api/v1/parked)"),
                }),
            }
        })
        .collect();
    let mut problems = Vec::new();
    if !w.app.metrics.nats_connected.load(std::sync::atomic::Ordering::Relaxed) {
        let why = w.app.metrics.error().unwrap_or_default();
        problems.push(format!(
            "{} {why}",
            lang.t("Tỉnh chưa kết nối được luồng số liệu của các thị xã.", "The province is not attached to the towns' stream.")
        ));
    }
    SyncTable {
        silent_after_days: w.app.silent_after_days,
        columns: vec![
            lang.t("Phiên bản số liệu", "Snapshot version").into(),
            lang.t("Các năm", "Years").into(),
            lang.t("Bị giữ lại", "Parked").into(),
        ],
        rows,
        problems,
    }
}
