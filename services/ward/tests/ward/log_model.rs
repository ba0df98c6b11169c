//! The ward log against a simple in-memory model, with crash-and-reopen
//! steps; concurrent appends; bad input changes nothing.

use std::collections::BTreeMap;

use treem_proto::catalogue::Catalogue;
use treem_proto::event::{EventCorrected, EventRetracted, IndicatorObserved, PopulationGroup, PopulationReported};
use treem_proto::{Envelope, Event};
use treem_ward::{LogError, WardLog};
use uuid::Uuid;

use crate::common::{observation, ward_path};

fn open(dir: &std::path::Path) -> WardLog {
    WardLog::open(dir, ward_path(), Catalogue::shipped()).expect("open the ward log")
}

/// xorshift64*: a deterministic source of "random" steps, so a failing
/// seed can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The model: what the log must hold.
#[derive(Default)]
struct Model {
    events: Vec<Envelope>,
    acked: u64,
}

impl Model {
    fn originals(&self) -> Vec<&Envelope> {
        self.events.iter().filter(|e| !matches!(e.event, Event::EventCorrected(_) | Event::EventRetracted(_))).collect()
    }
}

fn bad_event(rng: &mut Rng) -> Event {
    match rng.below(4) {
        0 => Event::IndicatorObserved(IndicatorObserved {
            indicator: "4z".into(),
            year: 2024,
            numerator: 1,
            denominator: Some(2),
            source: "school".into(),
        }),
        1 => Event::IndicatorObserved(IndicatorObserved {
            indicator: "4a".into(),
            year: 2024,
            numerator: 101,
            denominator: Some(100),
            source: "school".into(),
        }),
        2 => Event::IndicatorObserved(IndicatorObserved {
            indicator: "4a".into(),
            year: 2031,
            numerator: 1,
            denominator: Some(100),
            source: "school".into(),
        }),
        _ => Event::EventRetracted(EventRetracted { replaces: Uuid::now_v7(), reason: "typo".into() }),
    }
}

fn check(log: &WardLog, model: &Model, step: usize, seed: u64) {
    let stored = log.read_from(0, usize::MAX).unwrap();
    assert_eq!(stored, model.events, "seed {seed} step {step}: log differs from model");
    assert_eq!(log.last_seq(), model.events.len() as u64, "seed {seed} step {step}");
    assert_eq!(log.acked_seq().unwrap(), model.acked, "seed {seed} step {step}");
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seqs are contiguous from 1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_matches_model_across_crash_and_reopen() {
    for seed in [0x9e37_79b9_7f4a_7c15u64, 42, 7_777_777] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed);
        let mut model = Model::default();
        let mut log = open(dir.path());
        for step in 0..300 {
            match rng.below(100) {
                0..=39 => {
                    let env = log.append("officer-1", observation(rng.next())).await.unwrap();
                    assert_eq!(env.seq, model.events.len() as u64 + 1);
                    model.events.push(env);
                }
                40..=49 => {
                    let n = 1 + rng.below(5) as usize;
                    let events = (0..n).map(|_| observation(rng.next())).collect();
                    let envs = log.append_all("officer-2", events).await.unwrap();
                    model.events.extend(envs);
                }
                50..=59 => {
                    let before = log.last_seq();
                    let err = log.append("officer-1", bad_event(&mut rng)).await.unwrap_err();
                    assert!(!err.to_string().is_empty());
                    let mut batch: Vec<Event> = (0..3).map(|_| observation(rng.next())).collect();
                    batch.insert(rng.below(4) as usize, bad_event(&mut rng));
                    assert!(log.append_all("officer-1", batch).await.is_err(), "a batch with a bad event is refused whole");
                    assert_eq!(log.last_seq(), before, "bad input changes nothing");
                }
                60..=69 => {
                    let originals = model.originals();
                    if originals.is_empty() {
                        continue;
                    }
                    let target = originals[rng.below(originals.len() as u64) as usize].id;
                    let event = if rng.below(2) == 0 {
                        Event::EventCorrected(EventCorrected {
                            replaces: target,
                            corrected: Box::new(observation(rng.next())),
                            reason: "wrong figure".into(),
                        })
                    } else {
                        Event::EventRetracted(EventRetracted { replaces: target, reason: "recorded twice".into() })
                    };
                    let env = log.append("officer-1", event).await.unwrap();
                    model.events.push(env);
                }
                70..=74 => {
                    // A correction of a correction, or of another kind, is refused.
                    let Some(correction) = model.events.iter().find(|e| matches!(e.event, Event::EventCorrected(_))) else {
                        continue;
                    };
                    let before = log.last_seq();
                    let nested = Event::EventRetracted(EventRetracted { replaces: correction.id, reason: "x".into() });
                    assert!(matches!(log.append("o", nested).await, Err(LogError::NestedCorrection { .. })));
                    let original = model.originals()[0].id;
                    let other_kind = Event::EventCorrected(EventCorrected {
                        replaces: original,
                        corrected: Box::new(Event::PopulationReported(PopulationReported {
                            year: 2024,
                            figures: BTreeMap::from([(PopulationGroup::ChildrenUnder16, 10)]),
                        })),
                        reason: "x".into(),
                    });
                    assert!(matches!(log.append("o", other_kind).await, Err(LogError::KindMismatch { .. })));
                    assert_eq!(log.last_seq(), before);
                }
                75..=84 => {
                    let last = model.events.len() as u64;
                    if last > 0 {
                        let seq = 1 + rng.below(last);
                        log.set_acked(seq).await.unwrap();
                        model.acked = model.acked.max(seq);
                    }
                    assert!(log.set_acked(last + 1).await.is_err(), "cannot ack beyond the end");
                }
                _ => {
                    // Crash and reopen: drop every handle, open the directory again.
                    drop(log);
                    log = open(dir.path());
                }
            }
            check(&log, &model, step, seed);
        }
        drop(log);
        let log = open(dir.path());
        check(&log, &model, usize::MAX, seed);
        // The next append continues the sequence after a reopen.
        let env = log.append("officer-1", observation(1)).await.unwrap();
        assert_eq!(env.seq, model.events.len() as u64 + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_contiguous_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25u64 {
                    let env = log.append(&format!("officer-{t}"), observation(t * 100 + i)).await.unwrap();
                    // Returned means durable, hence readable.
                    assert!(log.last_seq() >= env.seq);
                    seqs.push(env.seq);
                }
                seqs
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "one task's appends are ordered");
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>(), "no gaps, no duplicates");
    let stored = log.read_from(0, 1000).unwrap();
    assert_eq!(stored.len(), 400);
    let ids: std::collections::HashSet<_> = stored.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 400);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.last_seq(), 400);
    assert_eq!(log.read_from(398, 10).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [399, 400]);
}

#[tokio::test]
async fn refused_events_say_why_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let first = log.append("officer-1", observation(5)).await.unwrap();
    let cases = [
        (
            Event::IndicatorObserved(IndicatorObserved {
                indicator: "4z".into(),
                year: 2024,
                numerator: 1,
                denominator: Some(2),
                source: "s".into(),
            }),
            "unknown indicator \"4z\"",
        ),
        (
            Event::IndicatorObserved(IndicatorObserved {
                indicator: "4a".into(),
                year: 2024,
                numerator: 7,
                denominator: Some(5),
                source: "s".into(),
            }),
            "greater than denominator",
        ),
        (
            Event::IndicatorObserved(IndicatorObserved {
                indicator: "4a".into(),
                year: 2031,
                numerator: 1,
                denominator: Some(5),
                source: "s".into(),
            }),
            "outside the plan period",
        ),
        (
            Event::IndicatorObserved(IndicatorObserved {
                indicator: "4a".into(),
                year: 2024,
                numerator: 1,
                denominator: Some(5),
                source: "x".repeat(9000),
            }),
            "too long",
        ),
        (Event::EventRetracted(EventRetracted { replaces: Uuid::now_v7(), reason: "r".into() }), "not in this ward's log"),
        (
            Event::CaseClosed(treem_proto::event::CaseClosed { case_id: Uuid::new_v4(), year: 2024, reason: "moved".into() }),
            "was not opened in this ward",
        ),
    ];
    for (event, why) in cases {
        let err = log.append("officer-1", event).await.unwrap_err();
        assert!(err.to_string().contains(why), "expected {why:?} in {err}");
        assert_eq!(log.last_seq(), 1);
    }
    let err = log.append("  ", observation(1)).await.unwrap_err();
    assert!(matches!(err, LogError::BadAuthor(_)), "{err}");
    assert_eq!(log.read_from(0, 10).unwrap(), vec![first]);
}

#[tokio::test]
async fn a_directory_belongs_to_one_ward_and_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let again = WardLog::open(dir.path(), ward_path(), Catalogue::shipped()).unwrap_err();
    assert!(matches!(again, LogError::Locked { .. }), "{again}");
    drop(log);
    let mut other = ward_path();
    other.ward = "25324".into();
    let err = WardLog::open(dir.path(), other, Catalogue::shipped()).unwrap_err();
    assert!(err.to_string().contains("holds the log of ward 70.690.25320"), "{err}");
}

#[tokio::test]
async fn acked_seq_moves_back_only_by_a_recorded_rewind() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for n in 0..10 {
        log.append("officer-1", observation(n)).await.unwrap();
    }
    log.set_acked(10).await.unwrap();
    log.set_acked(6).await.unwrap();
    assert_eq!(log.acked_seq().unwrap(), 10, "set_acked never moves back");
    assert_eq!(log.rewind_acked(10, "nothing lost").await.unwrap(), None, "no rewind to the same seq");
    assert_eq!(log.rewind_acked(4, "the stream holds up to 4").await.unwrap(), Some(10));
    assert_eq!(log.rewind_acked(7, "forward is not a rewind").await.unwrap(), None);
    let status = log.status().unwrap();
    assert_eq!((status.acked_seq, status.pending), (4, 6));
    let rewind = status.last_rewind.expect("the rewind is recorded");
    assert_eq!((rewind.from_acked_seq, rewind.to_seq, rewind.reason.as_str()), (10, 4, "the stream holds up to 4"));
    // Durable: a reopened log has it too, and every event is still there.
    drop(log);
    let log = open(dir.path());
    let status = log.status().unwrap();
    assert_eq!((status.acked_seq, status.last_seq), (4, 10));
    assert_eq!(status.last_rewind.map(|r| r.to_seq), Some(4));
    assert_eq!(log.read_from(0, 100).unwrap().len(), 10);
}
