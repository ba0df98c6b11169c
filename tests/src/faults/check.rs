//! The end of a run: has the system converged, and do the invariants of
//! DESIGN.md §3 hold?
//!
//! [`converged`] is one cheap poll (each ward has its whole log
//! acknowledged by the stream, the town has applied every ward up to its
//! last seq and read the whole stream, its outbox is empty, and the
//! province shows the town's figures for the load's years).
//!
//! [`verify`] reads everything and checks every invariant, independently of
//! the services' own code: the expected figures come from a [`Model`] that
//! this module folds from the ward logs, following the rules of DESIGN.md
//! §4–5 and `proto` (latest observation of a ward, year and indicator in
//! force; cases counted in their year, or every year a state lasts;
//! supported cases; rates as numerator and denominator summed over wards).
//!
//! - every acknowledged event is in its ward's log, at the seq the ward
//!   answered, with the content sent; acknowledged seqs increase;
//! - every ward log is intact: seqs 1..=last, ids unique (across wards too),
//!   envelopes of the right ward;
//! - the town applied each ward's events exactly once, in order:
//!   `last_seq_applied` = the ward's last seq, `applied` + `parked` =
//!   `last_seq_applied`, nothing parked, nothing held behind a gap;
//! - the town's figures (per ward and for the town, every indicator, every
//!   year 2021–2030) and case counts equal the model's;
//! - the province's roll-up equals the town's, every indicator and every
//!   year, and its case counts too.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use treem_proto::Envelope;
use treem_proto::catalogue::{Catalogue, Method};
use treem_proto::event::{AgeBand, CaseCategory, Event, FIRST_YEAR, LAST_YEAR, PopulationGroup, Sex};
use treem_proto::subject;
use uuid::Uuid;

use super::WARDS;
use super::load::{Expect, Ledger, YEARS};
use super::schedule::Service;
use super::system::{PROVINCE, Rig, TOWN};

/// Most violations listed one by one (the count is always complete).
const MAX_LISTED: usize = 40;

async fn get(http: &reqwest::Client, url: String) -> Result<Value, String> {
    let response = http.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("GET {url}: not JSON: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url} → {status}: {body}"));
    }
    Ok(body)
}

async fn addr(rig: &Rig, service: Service) -> Result<String, String> {
    rig.addr(service).await.ok_or_else(|| format!("{} has no HTTP address (not running?)", service.name()))
}

/// code → (numerator, denominator), for the indicators that have a value.
type Figures = BTreeMap<String, (u64, u64)>;

fn figures_of(response: &Value) -> Result<Figures, String> {
    let list = response["indicators"].as_array().ok_or_else(|| format!("no indicators in {response}"))?;
    Ok(list
        .iter()
        .filter_map(|i| Some((i["code"].as_str()?.to_string(), (i["numerator"].as_u64()?, i["denominator"].as_u64()?))))
        .collect())
}

fn first_difference(what: &str, want: &Figures, have: &Figures) -> Option<String> {
    let codes: BTreeSet<&String> = want.keys().chain(have.keys()).collect();
    codes.into_iter().find(|c| want.get(*c) != have.get(*c)).map(|c| {
        let show = |f: Option<&(u64, u64)>| f.map_or("no value".to_string(), |(n, d)| format!("{n}/{d}"));
        format!("{what} indicator {c}: expected {}, found {}", show(want.get(c)), show(have.get(c)))
    })
}

/// One poll of convergence: `Ok` once everything has arrived everywhere,
/// else what is still missing.
pub async fn converged(rig: &Rig) -> Result<(), String> {
    let town = addr(rig, Service::Town).await?;
    let sync = get(&rig.http, format!("http://{town}/api/v1/sync")).await?;
    for (i, code) in WARDS.iter().enumerate().take(rig.wards) {
        let ward = addr(rig, Service::Ward(i)).await?;
        let status = get(&rig.http, format!("http://{ward}/api/v1/status")).await?;
        let (last, acked) = (status["last_seq"].as_u64().unwrap_or(0), status["acked_seq"].as_u64().unwrap_or(0));
        if acked != last {
            return Err(format!("ward {code}: the stream acknowledged {acked} of {last}"));
        }
        let applied = sync["wards"].as_array().and_then(|ws| ws.iter().find(|w| w["ward"] == *code)).map(|w| w["last_seq_applied"].clone());
        if applied.as_ref().and_then(Value::as_u64) != Some(last) {
            return Err(format!("town applied ward {code} up to {applied:?} of {last}"));
        }
    }
    let stream = subject::town_events_stream(PROVINCE, TOWN);
    let last = rig.stream_last_seq(&stream).await.ok_or_else(|| format!("cannot read stream {stream}"))?;
    if sync["stream_seq"].as_u64() != Some(last) {
        return Err(format!("town read the stream up to {} of {last}", sync["stream_seq"]));
    }
    if sync["outbox_pending"].as_u64() != Some(0) {
        return Err(format!("town outbox holds {} years not yet forwarded", sync["outbox_pending"]));
    }
    let province = addr(rig, Service::Province).await?;
    for year in YEARS {
        let t = figures_of(&get(&rig.http, format!("http://{town}/api/v1/indicators?year={year}")).await?)?;
        let p = figures_of(&get(&rig.http, format!("http://{province}/api/v1/indicators?year={year}")).await?)?;
        if let Some(diff) = first_difference(&format!("province vs town, {year}:"), &t, &p) {
            return Err(diff);
        }
    }
    Ok(())
}

/// The wards the town is behind on, with the first seq it waits for.
pub async fn lagging_wards(rig: &Rig) -> Vec<(String, u64)> {
    let Ok(town) = addr(rig, Service::Town).await else { return Vec::new() };
    let Ok(sync) = get(&rig.http, format!("http://{town}/api/v1/sync")).await else { return Vec::new() };
    let mut out = Vec::new();
    for (i, code) in WARDS.iter().enumerate().take(rig.wards) {
        let Ok(ward) = addr(rig, Service::Ward(i)).await else { continue };
        let Ok(status) = get(&rig.http, format!("http://{ward}/api/v1/status")).await else { continue };
        let last = status["last_seq"].as_u64().unwrap_or(0);
        let applied = sync["wards"]
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["ward"] == *code))
            .and_then(|w| w["last_seq_applied"].as_u64())
            .unwrap_or(0);
        if applied < last {
            out.push((code.to_string(), applied + 1));
        }
    }
    out
}

/// Case counts of one category in one year.
#[derive(Debug, Clone, Default, PartialEq)]
struct CategoryCounts {
    total: u64,
    supported: u64,
    by_status: BTreeMap<String, u64>,
    by_sex: BTreeMap<String, u64>,
    by_age_band: BTreeMap<String, u64>,
}

fn counts_of(response: &Value) -> BTreeMap<String, CategoryCounts> {
    let map = |v: &Value| -> BTreeMap<String, u64> {
        v.as_object()
            .map(|o| o.iter().filter_map(|(k, n)| Some((k.clone(), n.as_u64()?))).filter(|(_, n)| *n > 0).collect())
            .unwrap_or_default()
    };
    response["categories"]
        .as_object()
        .map(|cats| {
            cats.iter()
                .map(|(cat, c)| {
                    let counts = CategoryCounts {
                        total: c["total"].as_u64().unwrap_or(0),
                        supported: c["supported"].as_u64().unwrap_or(0),
                        by_status: map(&c["by_status"]),
                        by_sex: map(&c["by_sex"]),
                        by_age_band: map(&c["by_age_band"]),
                    };
                    (cat.clone(), counts)
                })
                .filter(|(_, c)| c.total > 0 || c.supported > 0)
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct ModelCase {
    year: u16,
    category: CaseCategory,
    sex: Sex,
    band: AgeBand,
    supports: Vec<u16>,
    closed: Option<u16>,
}

impl ModelCase {
    fn counted_in(&self, year: u16) -> bool {
        if self.category.counts_while_open() { self.year <= year && year <= self.closed.unwrap_or(LAST_YEAR) } else { self.year == year }
    }

    fn supported_in(&self, year: u16) -> bool {
        if self.category.counts_while_open() { self.supports.iter().any(|&s| s <= year) } else { !self.supports.is_empty() }
    }
}

/// What one ward's log implies, folded here from the envelopes.
#[derive(Debug, Default)]
pub struct Model {
    observations: BTreeMap<(u16, String), (u64, Option<u64>)>,
    population: BTreeMap<u16, BTreeMap<PopulationGroup, u64>>,
    cases: BTreeMap<Uuid, ModelCase>,
    /// Events the town must refuse by the rules (the load makes none).
    pub refusals: Vec<String>,
}

impl Model {
    /// Applies the ward's next event.
    pub fn apply(&mut self, env: &Envelope) {
        let refuse = |why: String| format!("ward {} seq {}: {why}", env.ward, env.seq);
        match &env.event {
            Event::PopulationReported(p) => {
                self.population.insert(p.year, p.figures.clone());
            }
            Event::IndicatorObserved(o) => {
                self.observations.insert((o.year, o.indicator.clone()), (o.numerator, o.denominator));
            }
            Event::CaseOpened(c) => match self.cases.entry(c.case_id) {
                std::collections::btree_map::Entry::Occupied(_) => self.refusals.push(refuse(format!("case {} opened twice", c.case_id))),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(ModelCase {
                        year: c.year,
                        category: c.category,
                        sex: c.sex,
                        band: c.age_band,
                        supports: Vec::new(),
                        closed: None,
                    });
                }
            },
            Event::CaseSupportRecorded(s) => match self.cases.get_mut(&s.case_id) {
                Some(case) if s.year >= case.year => case.supports.push(s.year),
                _ => self.refusals.push(refuse(format!("support for case {} which is not open or is older", s.case_id))),
            },
            Event::CaseClosed(c) => match self.cases.get_mut(&c.case_id) {
                Some(case) if case.closed.is_none() && c.year >= case.year => case.closed = Some(c.year),
                _ => self.refusals.push(refuse(format!("closure of case {} which is not open", c.case_id))),
            },
            other => self.refusals.push(refuse(format!("the load never records {}", other.kind()))),
        }
    }

    /// The ward's figure of every indicator that has one in `year`.
    fn figures(&self, catalogue: &Catalogue, year: u16) -> Figures {
        let mut out = Figures::new();
        for ind in &catalogue.indicators {
            let cases = |category: CaseCategory| self.cases.values().filter(move |c| c.category == category && c.counted_in(year));
            let figure = match ind.method {
                Method::Observed => self.observations.get(&(year, ind.code.clone())).map(|&(n, d)| (n, d.unwrap_or(0))),
                Method::CasesOverPopulation { category, population } => self
                    .population
                    .get(&year)
                    .and_then(|p| p.get(&population))
                    .filter(|&&d| d > 0)
                    .map(|&d| (cases(category).count() as u64, d)),
                Method::SupportedCases { category } => {
                    let n = cases(category).count() as u64;
                    (n > 0).then(|| (cases(category).filter(|c| c.supported_in(year)).count() as u64, n))
                }
                // The load records no recognitions.
                Method::WardsRecognised { .. } => None,
            };
            if let Some(f) = figure {
                out.insert(ind.code.clone(), f);
            }
        }
        out
    }

    fn case_counts(&self, year: u16) -> BTreeMap<String, CategoryCounts> {
        let mut out: BTreeMap<String, CategoryCounts> = BTreeMap::new();
        for case in self.cases.values().filter(|c| c.counted_in(year)) {
            let c = out.entry(case.category.name().into()).or_default();
            c.total += 1;
            if case.supported_in(year) {
                c.supported += 1;
            }
            let status = if case.closed.is_some_and(|y| y <= year) { "closed" } else { "open" };
            *c.by_status.entry(status.into()).or_default() += 1;
            *c.by_sex.entry(case.sex.name().into()).or_default() += 1;
            *c.by_age_band.entry(case.band.name().into()).or_default() += 1;
        }
        out
    }
}

/// The figures and findings of [`verify`].
#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: Vec<String>,
    /// Violations beyond [`MAX_LISTED`], counted only.
    pub unlisted: usize,
    pub events_in_logs: u64,
    pub events_acknowledged: u64,
    /// Acknowledged events missing from their ward's log, or not applied at the town.
    pub events_lost: u64,
    /// Events that took effect more than once (by the town's counters and case counts).
    pub applied_twice: u64,
    /// Messages in the town's event stream (ward events plus redelivered copies).
    pub stream_messages: u64,
}

impl Verdict {
    fn violation(&mut self, v: String) {
        if self.violations.len() < MAX_LISTED {
            self.violations.push(v);
        } else {
            self.unlisted += 1;
        }
    }
}

/// Reads a ward's whole log, 1000 events a page.
async fn read_log(rig: &Rig, ward: &str) -> Result<Vec<Envelope>, String> {
    let mut log = Vec::new();
    let mut after = 0;
    loop {
        let page = get(&rig.http, format!("http://{ward}/api/v1/events?after={after}&limit=1000")).await?;
        let page: Vec<Envelope> = serde_json::from_value(page).map_err(|e| format!("ward log page after {after}: {e}"))?;
        let Some(last) = page.last() else { return Ok(log) };
        if last.seq <= after {
            return Err(format!("ward log page after {after} went backwards (last seq {})", last.seq));
        }
        after = last.seq;
        log.extend(page);
    }
}

/// Checks every invariant (see the module doc) on a converged (or given-up)
/// system. Every service must be running.
pub async fn verify(rig: &Rig, ledgers: &[Ledger]) -> Verdict {
    let mut v = Verdict::default();
    if let Err(e) = verify_into(rig, ledgers, &mut v).await {
        v.violation(format!("could not finish the checks: {e}"));
    }
    v
}

async fn verify_into(rig: &Rig, ledgers: &[Ledger], v: &mut Verdict) -> Result<(), String> {
    let catalogue = Catalogue::shipped();
    let town = addr(rig, Service::Town).await?;
    let sync = get(&rig.http, format!("http://{town}/api/v1/sync")).await?;
    let parked: Vec<Value> = serde_json::from_value(get(&rig.http, format!("http://{town}/api/v1/parked")).await?).unwrap_or_default();
    if !parked.is_empty() {
        v.violation(format!("the town parked {} messages; the first: {}", parked.len(), parked[0]));
    }
    v.stream_messages = sync["stream_seq"].as_u64().unwrap_or(0);
    let mut models: BTreeMap<String, Model> = BTreeMap::new();
    let mut all_ids: BTreeSet<Uuid> = BTreeSet::new();

    for (i, code) in WARDS.iter().enumerate().take(rig.wards) {
        let ward = addr(rig, Service::Ward(i)).await?;
        let status = get(&rig.http, format!("http://{ward}/api/v1/status")).await?;
        let last_seq = status["last_seq"].as_u64().unwrap_or(0);
        let log = read_log(rig, &ward).await?;
        v.events_in_logs += log.len() as u64;

        // The log is intact.
        if log.len() as u64 != last_seq {
            v.violation(format!("ward {code}: the log holds {} events but last_seq is {last_seq}", log.len()));
        }
        for (k, env) in log.iter().enumerate() {
            if env.seq != k as u64 + 1 {
                v.violation(format!("ward {code}: log position {} holds seq {} (seqs must be 1..=last)", k + 1, env.seq));
                break;
            }
        }
        for env in &log {
            if !all_ids.insert(env.id) {
                v.violation(format!("ward {code}: event id {} appears twice in the logs", env.id));
            }
            if (env.province.as_str(), env.town.as_str(), env.ward.as_str()) != (PROVINCE, TOWN, *code) {
                v.violation(format!("ward {code}: seq {} claims {}/{}/{}", env.seq, env.province, env.town, env.ward));
            }
        }

        // Every acknowledged event is there, as sent, in the order acknowledged.
        let ledger = ledgers.iter().find(|l| l.ward == *code);
        let acked = ledger.map(|l| l.acked.as_slice()).unwrap_or_default();
        v.events_acknowledged += acked.len() as u64;
        if let Some(pair) = acked.windows(2).find(|w| w[0].seq >= w[1].seq) {
            v.violation(format!("ward {code}: acknowledged seq {} after seq {}: seqs must increase", pair[1].seq, pair[0].seq));
        }
        let town_ward = sync["wards"].as_array().and_then(|ws| ws.iter().find(|w| w["ward"] == *code)).cloned().unwrap_or(Value::Null);
        let applied_to = town_ward["last_seq_applied"].as_u64().unwrap_or(0);
        let parked_seqs: BTreeSet<u64> = parked.iter().filter(|p| p["ward"] == *code).filter_map(|p| p["seq"].as_u64()).collect();
        for a in acked {
            let found = a.seq.checked_sub(1).and_then(|k| log.get(k as usize));
            let problem = match found {
                None => Some(format!("acknowledged seq {} (id {}) is missing from the log", a.seq, a.id)),
                Some(env) if env.id != a.id => {
                    Some(format!("log seq {} holds id {}, but the ward acknowledged id {} there", a.seq, env.id, a.id))
                }
                Some(env) if !matches_expect(env, &a.expect) => {
                    Some(format!("log seq {} differs from what was acknowledged: {:?} vs {:?}", a.seq, env.event, a.expect))
                }
                Some(_) if a.seq > applied_to => {
                    Some(format!("acknowledged seq {} never applied at the town (applied up to {applied_to})", a.seq))
                }
                Some(_) if parked_seqs.contains(&a.seq) => Some(format!("acknowledged seq {} was parked at the town", a.seq)),
                Some(_) => None,
            };
            if let Some(p) = problem {
                v.events_lost += 1;
                v.violation(format!("ward {code}: {p}"));
            }
        }

        // The town applied each event once, in order.
        let applied = town_ward["applied"].as_u64().unwrap_or(0);
        let ward_parked = town_ward["parked"].as_u64().unwrap_or(0);
        if applied_to != last_seq {
            v.violation(format!("ward {code}: the town applied up to seq {applied_to}, the ward's last is {last_seq}"));
        }
        if applied + ward_parked != applied_to {
            v.violation(format!("ward {code}: the town counts {applied} applied + {ward_parked} parked for {applied_to} seqs"));
            v.applied_twice += (applied + ward_parked).saturating_sub(applied_to);
        }
        if ward_parked > 0 || town_ward["held"].as_u64().unwrap_or(0) > 0 || !town_ward["gap"].is_null() {
            v.violation(format!("ward {code}: at the town {ward_parked} parked, {} held, gap {}", town_ward["held"], town_ward["gap"]));
        }

        let mut model = Model::default();
        for env in &log {
            model.apply(env);
        }
        for r in std::mem::take(&mut model.refusals) {
            v.violation(format!("the load made an event the town must refuse: {r}"));
        }
        models.insert(code.to_string(), model);
    }

    // Figures: per ward and for the town, every year; then the province.
    let province = addr(rig, Service::Province).await?;
    for year in FIRST_YEAR..=LAST_YEAR {
        let mut town_want = Figures::new();
        let mut town_cases_want: BTreeMap<String, CategoryCounts> = BTreeMap::new();
        for (code, model) in &models {
            let want = model.figures(&catalogue, year);
            for (c, (n, d)) in &want {
                let t = town_want.entry(c.clone()).or_default();
                *t = (t.0 + n, t.1 + d);
            }
            let have = figures_of(&get(&rig.http, format!("http://{town}/api/v1/indicators?year={year}&ward={code}")).await?)?;
            if let Some(diff) = first_difference(&format!("town, ward {code}, {year}:"), &want, &have) {
                v.violation(diff);
            }
            let cases_want = model.case_counts(year);
            let cases_have = counts_of(&get(&rig.http, format!("http://{town}/api/v1/cases?year={year}&ward={code}")).await?);
            for (cat, want) in &cases_want {
                let have = cases_have.get(cat).cloned().unwrap_or_default();
                v.applied_twice += have.total.saturating_sub(want.total);
                let t = town_cases_want.entry(cat.clone()).or_default();
                t.total += want.total;
                t.supported += want.supported;
                for (m, w) in [(&mut t.by_status, &want.by_status), (&mut t.by_sex, &want.by_sex), (&mut t.by_age_band, &want.by_age_band)]
                {
                    for (k, n) in w {
                        *m.entry(k.clone()).or_default() += n;
                    }
                }
            }
            if cases_want != cases_have {
                v.violation(format!("town, ward {code}, {year}: case counts {cases_have:?}, expected {cases_want:?}"));
            }
        }
        let town_have = figures_of(&get(&rig.http, format!("http://{town}/api/v1/indicators?year={year}")).await?)?;
        if let Some(diff) = first_difference(&format!("town, {year}:"), &town_want, &town_have) {
            v.violation(diff);
        }
        let town_cases = counts_of(&get(&rig.http, format!("http://{town}/api/v1/cases?year={year}")).await?);
        if town_cases != town_cases_want {
            v.violation(format!("town, {year}: case counts {town_cases:?}, expected {town_cases_want:?}"));
        }
        // The province's roll-up equals the town's projection.
        let province_have = figures_of(&get(&rig.http, format!("http://{province}/api/v1/indicators?year={year}")).await?)?;
        if let Some(diff) = first_difference(&format!("province vs town, {year}:"), &town_have, &province_have) {
            v.violation(diff);
        }
        let province_cases = get(&rig.http, format!("http://{province}/api/v1/cases?year={year}")).await?;
        for category in CaseCategory::ALL {
            let p = province_cases["cases_counted"][category.name()].as_u64().unwrap_or(0);
            let t = town_cases.get(category.name()).map_or(0, |c| c.total);
            if p != t {
                v.violation(format!("province vs town, {year}: {} cases counted {p} at the province, {t} at the town", category.name()));
            }
        }
    }
    Ok(())
}

fn matches_expect(env: &Envelope, expect: &Expect) -> bool {
    match (expect, &env.event) {
        (Expect::Event(sent), logged) => sent == logged,
        (Expect::CaseOpened { case_id, year, category, sex }, Event::CaseOpened(c)) => {
            c.case_id == *case_id && c.year == *year && c.category.name() == category && c.sex.name() == sex
        }
        _ => false,
    }
}
