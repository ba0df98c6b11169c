//! `GET /` and `GET /dashboard?year=2024&office=health_centre&lang=vi`:
//! the town dashboard over its wards, built from the town store and drawn
//! by `treem_web::dashboard`.
//!
//! Case summaries appear for the officer role and above only; showing them
//! is recorded in the audit log first, like a read of `/api/v1/cases`, and
//! when that record cannot be written they are not shown.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use treem_auth::{Caller, Role};
use treem_proto::event::{FIRST_YEAR, LAST_YEAR};
use treem_proto::judge;
use treem_web::dashboard::{self, CaseRow, Cases, Dashboard, Figure, IndicatorRow, Level, SyncRow, SyncTable, UnitRef};
use treem_web::{Lang, labels};

use super::{WebState, error_page, html_response, reader, year_param};
use crate::projection::{cases, indicators, sync};

#[derive(Debug, Deserialize)]
pub struct Params {
    year: Option<String>,
    office: Option<String>,
    lang: Option<String>,
}

pub async fn page(State(w): State<WebState>, caller: Caller, headers: HeaderMap, uri: Uri, Query(p): Query<Params>) -> Response {
    let lang = Lang::parse(p.lang.as_deref());
    let year = match year_param(p.year.as_deref(), lang) {
        Ok(y) => y,
        Err(e) => return error_page(&w, lang, StatusCode::BAD_REQUEST, &e),
    };
    let office = match p.office.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(o) => match labels::office_parse(o) {
            Some(o) => Some(o),
            None => {
                let known: Vec<&str> = labels::OFFICES.iter().map(|o| labels::office_key(*o)).collect();
                let text = match lang {
                    Lang::Vi => format!("Không có cơ quan «{o}»; các cơ quan là {}.", known.join(", ")),
                    Lang::En => format!("There is no office {o:?}; offices are {}.", known.join(", ")),
                };
                return error_page(&w, lang, StatusCode::BAD_REQUEST, &text);
            }
        },
    };
    let cases = if caller.role.allows(Role::Officer) {
        match w.auth.record_read(&caller, uri.path(), uri.query()).await {
            Ok(()) => case_tables(&w, year, lang),
            Err(e) => {
                tracing::error!(error = %e, "audit log write failed: case summaries withheld from the dashboard");
                Cases::Unavailable(
                    lang.t(
                        "Không ghi được nhật ký kiểm tra nên tóm tắt hồ sơ không được hiển thị; hãy báo quản trị viên.",
                        "The audit log cannot be written, so case summaries are not shown; tell your administrator.",
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
        level: Level::Town,
        place: w.place(),
        year,
        office,
        reader: Some(reader(&caller, &headers)),
        generated_at: chrono::Utc::now(),
        units: units(&w),
        rows: rows(&w, year),
        cases,
        sync: sync_table(&w, lang),
        nav: vec![(
            format!("/reports/evaluation?kind=yearly&to={year}&lang={}", lang.code()),
            lang.t("Báo cáo đánh giá", "Evaluation reports").into(),
        )],
        path: "/dashboard".into(),
    };
    html_response(StatusCode::OK, dashboard::render(&d))
}

pub fn units(w: &WebState) -> Vec<UnitRef> {
    w.shared.wards.iter().zip(w.ward_names()).map(|(code, name)| UnitRef { code: code.clone(), name }).collect()
}

/// Every indicator: the town's figure of `year`, its trend 2021–2030, each ward's.
pub fn rows(w: &WebState, year: u16) -> Vec<IndicatorRow> {
    let catalogue = &w.shared.ctx.catalogue;
    let years: Vec<Arc<indicators::YearFigures>> = (FIRST_YEAR..=LAST_YEAR).map(|y| w.shared.figures(y)).collect();
    let now = &years[usize::from(year - FIRST_YEAR)];
    catalogue
        .indicators
        .iter()
        .map(|ind| {
            let scope = Figure { progress: judge::progress(ind, year, now.town.get(&ind.code).copied()), suppressed: None };
            let trend = years.iter().map(|f| (f.year, f.town.get(&ind.code).and_then(|x| judge::value(ind.unit, *x)))).collect();
            let units = w
                .shared
                .wards
                .iter()
                .map(|ward| Figure {
                    progress: judge::progress(ind, year, now.wards.get(ward).and_then(|m| m.get(&ind.code)).copied()),
                    suppressed: None,
                })
                .collect();
            IndicatorRow { indicator: ind.clone(), scope, trend, units }
        })
        .collect()
}

fn case_tables(w: &WebState, year: u16, lang: Lang) -> Cases {
    let tree = &w.shared.store.tree;
    let town = cases::summary(tree, year, None);
    let rows: Vec<CaseRow> = town
        .categories
        .iter()
        .map(|(category, c)| CaseRow {
            category: category.clone(),
            total: Some(c.total),
            supported: Some(c.supported),
            by_status: c.by_status.clone(),
            by_sex: c.by_sex.clone(),
            by_age_band: c.by_age_band.clone(),
        })
        .collect();
    let per_unit: BTreeMap<String, BTreeMap<String, Option<u64>>> = w
        .shared
        .wards
        .iter()
        .map(|ward| {
            let s = cases::summary(tree, year, Some(ward));
            (ward.clone(), s.categories.into_iter().map(|(c, x)| (c, Some(x.total))).collect())
        })
        .collect();
    Cases::Shown {
        rows,
        detailed: true,
        per_unit,
        note: Some(
            lang.t(
                "Chỉ số đếm, không có danh tính trẻ em. Trẻ em có hoàn cảnh đặc biệt và lao động trẻ em được tính mỗi năm hồ sơ còn mở; các vụ việc (xâm hại, tai nạn, tảo hôn, thiên tai) tính vào năm xảy ra.",
                "Counts only, never a child's identity. Special circumstances and child labour count in every year the case is open; incidents (abuse, injury, marriage, disaster) in the year they happened.",
            )
            .into(),
        ),
    }
}

fn sync_table(w: &WebState, lang: Lang) -> SyncTable {
    let shared = &w.shared;
    let now = chrono::Utc::now();
    let limit = i64::from(shared.config.silent_after_days) * 86_400;
    let rows = shared
        .wards
        .iter()
        .zip(&shared.ward_names)
        .zip(w.ward_names())
        .map(|((code, raw_name), name)| {
            let s = sync::ward_sync(&shared.store.tree, code, raw_name, now);
            let mut problems = Vec::new();
            if let Some((from, to)) = s.gap {
                problems.push(match lang {
                    Lang::Vi => format!("thiếu sự kiện số {from}–{to} ({} sự kiện đang chờ)", s.held),
                    Lang::En => format!("missing events {from}–{to} ({} waiting)", s.held),
                });
            }
            if s.parked > 0 {
                problems.push(match lang {
                    Lang::Vi => format!("{} tin bị giữ lại (xem /api/v1/parked)", s.parked),
                    Lang::En => format!("{} parked (see /api/v1/parked)", s.parked),
                });
            }
            SyncRow {
                unit: UnitRef { code: code.clone(), name },
                last_at: s.last_event_recorded_at,
                silent: s.lag_seconds.is_none_or(|l| l > limit),
                lag_seconds: s.lag_seconds,
                cells: vec![s.last_seq_applied.to_string(), s.applied.to_string(), s.held.to_string(), s.parked.to_string()],
                problem: (!problems.is_empty()).then(|| problems.join("; ")),
            }
        })
        .collect();
    let mut problems = Vec::new();
    if let Some(e) = shared.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        problems
            .push(format!("{}: {e}", lang.t("Không đọc được luồng sự kiện của các phường, xã", "The ward event stream cannot be read")));
    }
    if let Some(e) = shared.forward_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        problems.push(format!("{}: {e}", lang.t("Chưa gửi được số liệu lên tỉnh", "Figures cannot be forwarded to the province")));
    }
    SyncTable {
        silent_after_days: shared.config.silent_after_days,
        columns: vec![
            lang.t("Sự kiện cuối", "Last seq").into(),
            lang.t("Đã nhận", "Applied").into(),
            lang.t("Đang chờ", "Held").into(),
            lang.t("Bị giữ lại", "Parked").into(),
        ],
        rows,
        problems,
    }
}
