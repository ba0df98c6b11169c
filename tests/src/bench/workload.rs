//! What the benchmarks record: a deterministic mix of events shaped like a
//! ward's work, and filling a ward's log with it while the ward is offline.
//!
//! The mix (per 100 events): 5 case openings, 25 support records, 2
//! closures, 58 indicator observations, 6 population reports, 4
//! recognitions, over the years 2021–2025. Cases are opened through the
//! ward's case register ([`treem_ward::identity::open_case`]), with invented
//! identities that stay in the ward, exactly as an officer would; every
//! other event goes through [`WardLog::append_all`], in batches, so filling
//! a log of 200,000 events takes seconds, not the hours an officer would.
//!
//! Some observed indicators are kept out of the mix, so a stage can tell
//! its own events apart at the town and the province by the figure they
//! produce: [`LATENCY_CODES`] (one per ward in the latency stage),
//! [`MARKER_CODE`] and [`PROBE_CODE`] (the scale simulation).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use treem_proto::Envelope;
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{
    CaseCategory, CaseClosed, CaseOpened, CaseSupportRecorded, Event, IndicatorObserved, PopulationGroup, PopulationReported, Recognition,
    Sex, WardRecognised,
};
use treem_proto::subject::WardPath;
use treem_ward::WardLog;
use treem_ward::identity::{Identity, OpenCase};
use uuid::Uuid;

use crate::faults::SplitMix64;

/// Observed indicators the mix records.
pub const WORKLOAD_CODES: [&str; 16] = ["2", "3a", "3b", "3c", "4a", "4b", "4c", "5a", "5b", "6", "7", "14", "15", "16", "17a", "17b"];
/// Observed indicators the mix never records: the latency stage gives one to each ward.
pub const LATENCY_CODES: [&str; 6] = ["19", "20a", "20b", "22", "23", "24"];
/// Observed indicator the mix never records: the last event of each simulated ward's backlog.
pub const MARKER_CODE: &str = "18a";
/// Observed indicator the mix never records: the roll-up probes of the scale simulation.
pub const PROBE_CODE: &str = "18b";
/// The year the latency and API stages look at: the plan's last target year, full of backlog.
pub const CURRENT_YEAR: u16 = 2025;
const FIRST_YEAR: u16 = 2021;

/// Share of case openings in the mix.
const OPEN_SHARE: u64 = 5;
/// Events per `append_all` while filling a log.
const FILL_BATCH: usize = 1000;
/// Case openings in flight while filling a log (they share group commits).
const OPEN_IN_FLIGHT: usize = 32;
/// The officer id on every recorded event.
pub const AUTHOR: &str = "bench-officer";

#[derive(Debug, Clone, Copy)]
struct CaseRef {
    id: Uuid,
    year: u16,
    closed: bool,
}

/// The deterministic event mix of one ward.
#[derive(Debug, Clone)]
pub struct Mix {
    rng: SplitMix64,
    cases: Vec<CaseRef>,
}

impl Mix {
    pub fn new(seed: u64) -> Mix {
        Mix { rng: SplitMix64::new(seed), cases: Vec::new() }
    }

    fn year(&mut self, from: u16) -> u16 {
        from + self.rng.below(u64::from(CURRENT_YEAR - from) + 1) as u16
    }

    fn category(&mut self) -> (CaseCategory, Vec<char>) {
        let category = *self.rng.pick(&[
            CaseCategory::SpecialCircumstances,
            CaseCategory::SpecialCircumstances,
            CaseCategory::Injury,
            CaseCategory::Injury,
            CaseCategory::Abuse,
            CaseCategory::ChildLabour,
            CaseCategory::DisasterAffected,
        ]);
        let groups = if category == CaseCategory::SpecialCircumstances {
            let points = treem_proto::event::ART10_POINTS;
            let first = points[self.rng.below(points.len() as u64) as usize];
            let second = points[self.rng.below(points.len() as u64) as usize];
            if first == second { vec![first] } else { vec![first.min(second), first.max(second)] }
        } else {
            Vec::new()
        };
        (category, groups)
    }

    fn sex(&mut self) -> Sex {
        if self.rng.chance(0.5) { Sex::Female } else { Sex::Male }
    }

    /// A request to open a case, with an invented identity (never a real person).
    pub fn open_case_request(&mut self) -> OpenCase {
        const FAMILY: [&str; 6] = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ"];
        const GIVEN: [&str; 8] = ["An", "Bình", "Chi", "Dũng", "Hà", "Khoa", "Lan", "Minh"];
        let year = self.year(FIRST_YEAR);
        let age = 1 + self.rng.below(16) as u16;
        let (category, groups) = self.category();
        let name = format!("{} Thị {}", self.rng.pick(&FAMILY), self.rng.pick(&GIVEN));
        let dob = format!("{}-{:02}-{:02}", year - age, 1 + self.rng.below(6), 1 + self.rng.below(28));
        let identity = Identity {
            name,
            date_of_birth: dob,
            address: format!("khu phố {}", 1 + self.rng.below(9)),
            guardian: format!("{} Văn {}", self.rng.pick(&FAMILY), self.rng.pick(&GIVEN)),
        };
        OpenCase { identity, year, category, groups, sex: self.sex() }
    }

    /// Notes a case opened at the ward, so later events can refer to it.
    pub fn opened(&mut self, id: Uuid, year: u16) {
        self.cases.push(CaseRef { id, year, closed: false });
    }

    /// A `case.opened` event for a fabricated envelope (the scale simulation,
    /// which has no ward log and so no identity to keep).
    pub fn case_opened(&mut self) -> Event {
        let year = self.year(FIRST_YEAR);
        let (category, groups) = self.category();
        let id = Uuid::new_v4();
        let age_band = *self.rng.pick(&[
            treem_proto::event::AgeBand::Under5,
            treem_proto::event::AgeBand::From5To10,
            treem_proto::event::AgeBand::From11To15,
        ]);
        self.opened(id, year);
        Event::CaseOpened(CaseOpened { case_id: id, year, category, groups, sex: self.sex(), age_band })
    }

    /// The next event of the mix, openings aside.
    pub fn next_event(&mut self) -> Event {
        let roll = self.rng.below(95);
        if roll < 27 && !self.cases.is_empty() {
            let i = self.rng.below(self.cases.len() as u64) as usize;
            let case = self.cases[i];
            let year = self.year(case.year);
            if roll < 2 && !case.closed {
                self.cases[i].closed = true;
                return Event::CaseClosed(CaseClosed { case_id: case.id, year, reason: "turned 16".into() });
            }
            let support = *self.rng.pick(&["care", "nurture", "medical", "education", "legal", "relief"]);
            return Event::CaseSupportRecorded(CaseSupportRecorded { case_id: case.id, year, support: support.into() });
        }
        if roll >= 91 {
            let recognition = if self.rng.chance(0.5) { Recognition::ChildFriendly } else { Recognition::PlaySpace };
            return Event::WardRecognised(WardRecognised { recognition, year: self.year(FIRST_YEAR), granted: self.rng.chance(0.8) });
        }
        if roll >= 85 {
            let under16 = 1500 + self.rng.below(2500);
            let figures = BTreeMap::from([
                (PopulationGroup::ChildrenUnder16, under16),
                (PopulationGroup::ChildrenUnder5, under16 * 5 / 16),
                (PopulationGroup::ChildrenUnder1, under16 / 16),
                (PopulationGroup::LiveBirths, under16 / 16),
                (PopulationGroup::ChildrenAged5To17, under16 * 13 / 16),
            ]);
            return Event::PopulationReported(PopulationReported { year: self.year(FIRST_YEAR), figures });
        }
        let denominator = 100 + self.rng.below(4900);
        Event::IndicatorObserved(IndicatorObserved {
            indicator: (*self.rng.pick(&WORKLOAD_CODES)).into(),
            year: self.year(FIRST_YEAR),
            numerator: self.rng.below(denominator / 5 + 1),
            denominator: Some(denominator),
            source: "health_centre".into(),
        })
    }

    /// The next event of the mix, openings included (5 in 100).
    pub fn next_any(&mut self) -> Event {
        if self.rng.below(100) < OPEN_SHARE { self.case_opened() } else { self.next_event() }
    }
}

/// An `indicator.observed` of `code` in [`CURRENT_YEAR`] with `numerator`
/// over a denominator large enough for any numerator a stage uses.
pub fn observed(code: &str, numerator: u64) -> Event {
    Event::IndicatorObserved(IndicatorObserved {
        indicator: code.into(),
        year: CURRENT_YEAR,
        numerator,
        denominator: Some(numerator.max(1_000_000_000)),
        source: "bench".into(),
    })
}

/// The envelope a ward would write for `event` at `seq` (the scale
/// simulation publishes these without a ward log).
pub fn envelope(ward: &WardPath, seq: u64, recorded_at: DateTime<Utc>, event: Event) -> Envelope {
    Envelope { recorded_at, ..Envelope::new(ward, seq, AUTHOR, event) }
}

/// Records `events` events of the mix in the ward log under `data_dir`
/// (created if needed), as an offline ward would: nothing is published.
/// Calls `sink` with every recorded envelope, in seq order within each
/// phase (openings first, then the rest). Returns the last seq.
pub async fn fill_ward_log(
    data_dir: &Path,
    ward: WardPath,
    events: u64,
    seed: u64,
    sink: &mut (dyn FnMut(&Envelope) + Send),
) -> anyhow::Result<u64> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let log = WardLog::open(data_dir, ward.clone(), Catalogue::shipped())
        .with_context(|| format!("open the ward log in {}", data_dir.display()))?;
    let mut mix = Mix::new(seed);
    let opens = (events * OPEN_SHARE / 100).max(u64::from(events > 0));
    let mut in_flight = FuturesUnordered::new();
    let mut requested = 0u64;
    while requested < opens || !in_flight.is_empty() {
        while requested < opens && in_flight.len() < OPEN_IN_FLIGHT {
            let request = mix.open_case_request();
            let year = request.year;
            let log = log.clone();
            in_flight.push(async move { (year, treem_ward::identity::open_case(&log, AUTHOR, request).await) });
            requested += 1;
        }
        if let Some((year, result)) = in_flight.next().await {
            let (case_id, env) = result.context("open a case in the ward log")?;
            mix.opened(case_id, year);
            sink(&env);
        }
    }
    let mut left = events - opens;
    while left > 0 {
        let n = left.min(FILL_BATCH as u64);
        let batch: Vec<Event> = (0..n).map(|_| mix.next_event()).collect();
        for env in log.append_all(AUTHOR, batch).await.context("record a batch in the ward log")? {
            sink(&env);
        }
        left -= n;
    }
    log.flush().await.context("flush the ward log")?;
    let last = log.last_seq();
    drop(log);
    tracing::info!(ward = %ward.ward, events, last_seq = last, "ward log filled");
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_valid_and_never_uses_the_reserved_codes() {
        let catalogue = Catalogue::shipped();
        let mut mix = Mix::new(1);
        for _ in 0..20 {
            mix.case_opened();
        }
        let mut kinds = BTreeMap::<&str, u32>::new();
        for _ in 0..5000 {
            let e = mix.next_any();
            e.validate(&catalogue).unwrap_or_else(|err| panic!("{e:?}: {err}"));
            if let Event::IndicatorObserved(o) = &e {
                assert!(!LATENCY_CODES.contains(&o.indicator.as_str()) && o.indicator != MARKER_CODE && o.indicator != PROBE_CODE);
            }
            *kinds.entry(e.kind()).or_default() += 1;
        }
        assert!(kinds.len() >= 6, "{kinds:?}");
        for code in LATENCY_CODES.iter().chain([&MARKER_CODE, &PROBE_CODE]) {
            observed(code, 7).validate(&catalogue).unwrap();
        }
    }
}
