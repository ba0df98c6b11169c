//! The load: one writer per ward, recording events over the ward's HTTP API
//! the way an officer's tools do, and keeping a [`Ledger`] of every event
//! the ward answered `201` for: the *acknowledged* events, the ones DESIGN.md
//! §3.1 promises are never lost.
//!
//! What a writer records, chosen by its own [`SplitMix64`]:
//! - first, `population.reported` for each year of [`YEARS`] (the
//!   denominators of the case indicators);
//! - then, at about `rate` events per second: `indicator.observed` (≈55 %)
//!   with a numerator unique within the ward, so the town's figure names the
//!   one observation in force; `case.opened` through `POST /api/v1/cases`
//!   (≈25 %, injuries and disaster-affected children, so a case counted
//!   twice shows in the counts); `case.support_recorded` (≈15 %) and
//!   `case.closed` (≈5 %) for cases whose opening was acknowledged, so an
//!   event applied before the one it follows would be refused at the town
//!   and show as parked.
//!
//! A request without an answer (the ward was killed mid-request, the
//! connection broke) is *unanswered*: the event may or may not be in the
//! log, and the checks accept either. The writer then looks up the ward's
//! address again (a restarted ward has a new port) and carries on. A case
//! whose closure went unanswered is never closed again (a second closure
//! would rightly be refused).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use treem_proto::Event;
use uuid::Uuid;

use super::schedule::SplitMix64;
use super::system::read_addr;

/// The years the load records in.
pub const YEARS: [u16; 2] = [2024, 2025];
/// Observed indicators the load records.
pub const OBSERVED: [&str; 3] = ["2", "4a", "16"];
/// Denominator of every observation (numerators stay below it).
const OBSERVED_DENOMINATOR: u64 = 1_000_000;

/// What an acknowledged event must be, found in the ward's log at `seq`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The event exactly as sent.
    Event(Event),
    /// A `case.opened` (the ward derives its body from the identity).
    CaseOpened { case_id: Uuid, year: u16, category: String, sex: String },
}

/// One event the ward answered "recorded" for.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked {
    pub id: Uuid,
    pub seq: u64,
    pub expect: Expect,
}

/// Everything one writer did.
#[derive(Debug, Default)]
pub struct Ledger {
    pub ward: String,
    pub acked: Vec<Acked>,
    /// Requests sent.
    pub posts: u64,
    /// Requests without an answer: maybe recorded, maybe not.
    pub unanswered: u64,
    /// 5xx answers: the ward refused to record (nothing recorded).
    pub unavailable: u64,
    /// 4xx answers: the load sent something the ward refused. Each one is a
    /// harness or ward bug, reported as a violation.
    pub refused: Vec<String>,
}

struct Case {
    case_id: Uuid,
    year: u16,
    close_tried: bool,
}

/// Records at one ward until `stop` is set; returns the ledger.
pub async fn write(
    ward_index: usize,
    ward: String,
    addr_file: PathBuf,
    http: reqwest::Client,
    seed: u64,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> Ledger {
    let mut rng = SplitMix64::new(seed);
    let mut ledger = Ledger { ward: ward.clone(), ..Ledger::default() };
    let mut addr: Option<String> = None;
    let mut cases: Vec<Case> = Vec::new();
    let mut populations = 0usize;
    let mut counter = 0u64;
    let mean_pause_us = (1_000_000.0 / rate.max(0.1)) as u64;
    while !stop.load(Ordering::Relaxed) {
        // Pace: a random pause averaging 1/rate.
        tokio::time::sleep(Duration::from_micros(rng.below(2 * mean_pause_us + 1))).await;
        let Some(base) = addr.clone().or_else(|| read_addr(&addr_file)) else {
            // The ward is down; its new address appears when it is back.
            tokio::time::sleep(Duration::from_millis(50 + rng.below(100))).await;
            continue;
        };
        addr = Some(base.clone());
        let request = if populations < YEARS.len() {
            population(ward_index, YEARS[populations])
        } else {
            match rng.below(100) {
                0..55 => None,
                55..80 => Some(open_case(&mut rng, &ward, counter)),
                80..95 if !cases.is_empty() => {
                    let case = rng.pick(&cases);
                    Some(event(json!({"kind": "case.support_recorded", "body": {"case_id": case.case_id, "year": case.year, "support": "medical"}})))
                }
                _ => {
                    let open: Vec<usize> = (0..cases.len()).filter(|&i| !cases[i].close_tried).collect();
                    if open.is_empty() {
                        None
                    } else {
                        let i = *rng.pick(&open);
                        cases[i].close_tried = true;
                        let case = &cases[i];
                        Some(event(json!({"kind": "case.closed", "body": {"case_id": case.case_id, "year": case.year, "reason": "resolved"}})))
                    }
                }
            }
            .unwrap_or_else(|| observation(&mut rng, counter))
        };
        counter += 1;
        ledger.posts += 1;
        let url = format!("http://{base}{}", request.path);
        let answer = async {
            let response = http.post(&url).json(&request.body).send().await?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        match answer {
            Ok((201, body)) => {
                let (Some(id), Some(seq)) = (body["id"].as_str().and_then(|s| s.parse().ok()), body["seq"].as_u64()) else {
                    ledger.refused.push(format!("{ward}: 201 without id and seq: {body}"));
                    continue;
                };
                let expect = match request.expect {
                    Expect::CaseOpened { year, category, sex, .. } => {
                        let Some(case_id) = body["case_id"].as_str().and_then(|s| s.parse().ok()) else {
                            ledger.refused.push(format!("{ward}: case opened without a case_id: {body}"));
                            continue;
                        };
                        cases.push(Case { case_id, year, close_tried: false });
                        Expect::CaseOpened { case_id, year, category, sex }
                    }
                    other => other,
                };
                if matches!(&expect, Expect::Event(Event::PopulationReported(_))) {
                    populations += 1;
                }
                ledger.acked.push(Acked { id, seq, expect });
            }
            Ok((status, body)) if status >= 500 => {
                ledger.unavailable += 1;
                tracing::debug!(%ward, status, %body, "ward could not record");
            }
            Ok((status, body)) => {
                ledger.refused.push(format!("{ward}: {status} for {}: {body}", request.body));
                // Never retry a refused population report forever.
                populations = (populations + 1).min(YEARS.len());
            }
            Err(e) => {
                ledger.unanswered += 1;
                addr = None;
                tracing::debug!(%ward, error = %e, "no answer from the ward");
            }
        }
    }
    ledger
}

struct Request {
    path: &'static str,
    body: Value,
    expect: Expect,
}

fn event(body: Value) -> Request {
    let event: Event = serde_json::from_value(body.clone()).expect("the load builds valid events");
    Request { path: "/api/v1/events", body, expect: Expect::Event(event) }
}

fn population(ward_index: usize, year: u16) -> Request {
    let children = 10_000 + 1_000 * ward_index as u64 + u64::from(year - 2020);
    event(json!({"kind": "population.reported", "body": {"year": year, "figures": {"children_under_16": children}}}))
}

fn observation(rng: &mut SplitMix64, counter: u64) -> Request {
    let indicator = *rng.pick(&OBSERVED);
    let year = *rng.pick(&YEARS);
    let numerator = counter % OBSERVED_DENOMINATOR;
    event(json!({"kind": "indicator.observed", "body": {
        "indicator": indicator, "year": year, "numerator": numerator, "denominator": OBSERVED_DENOMINATOR, "source": "health_centre"}}))
}

fn open_case(rng: &mut SplitMix64, ward: &str, counter: u64) -> Request {
    let year = *rng.pick(&YEARS);
    let category = *rng.pick(&["injury", "disaster_affected"]);
    let sex = *rng.pick(&["female", "male"]);
    // Three birth dates: age bands 0-4/5-10, 5-10 and 11-15 in 2024-2025.
    let born = *rng.pick(&["2020-01-10", "2015-05-05", "2012-03-01"]);
    let body = json!({
        "identity": {"name": format!("Trẻ {ward}-{counter}"), "date_of_birth": born, "address": "ấp 1", "guardian": "Người giám hộ"},
        "year": year, "category": category, "sex": sex});
    Request {
        path: "/api/v1/cases",
        body,
        expect: Expect::CaseOpened { case_id: Uuid::nil(), year, category: category.into(), sex: sex.into() },
    }
}
