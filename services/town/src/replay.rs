//! Replaying a parked message once the town understands it (after an
//! upgrade that reads a newer schema, a catalogue that knows the indicator,
//! a hierarchy that gained the ward). Pure over [`Kv`], like the fold.
//!
//! # A replay is a command on the stream
//!
//! An operator's replay is not applied to the store by the HTTP handler. The
//! handler publishes a [`ReplayCommand`] on the town's own command subject
//! (`treem.v1.events.<p>.<t>.town.replay`, in the ward event stream), and the
//! consumer applies it in its place in the stream, in the same atomic batch
//! machinery as ward events ([`crate::store::TownStore::apply_batch`]). So a
//! rebuild from the stream meets the same commands at the same points and
//! ends where the live store is (invariant 3), and a command accepted by
//! JetStream survives a crash of the town before it was applied.
//!
//! A command names the record by number *and* by what it holds (subject,
//! ward, seq, whether its seq was consumed, a digest of the exact bytes). A
//! rebuild under a hierarchy or catalogue that now accepts a message never
//! parks it, so it numbers later records differently: the command then
//! replays the record that holds the same message, whatever its number, and
//! if none does (the message was applied when it came) it changes nothing.
//!
//! # What a replay does
//!
//! - A message that could not be read or placed (`seq_consumed == false`:
//!   malformed, unknown schema, unknown ward, a ward publishing for another)
//!   goes through the normal fold as if it arrived now: it is applied (and
//!   any successors held behind it), held behind a gap, or a duplicate by its
//!   ward's sequence. If it now reads and takes its turn but the rules
//!   refuse it, the fold does what it does live: its `seq` is consumed and
//!   it is parked again under a new number (outcome `parked_again`), so the
//!   ward's later events are never stuck behind it.
//! - An event the rules refused in its turn (`seq_consumed == true`) already
//!   consumed its `seq`: the ward's position is left alone and only the
//!   event's effect is applied, under its original `seq` (so a later fact of
//!   the same ward still wins). Its id goes to `rid/<id>`; an event whose id
//!   is there, or whose record the ward's events hold ([`crate::evlog`]), is a duplicate.
//!
//! A replay that still fails changes nothing and says why. A record replayed
//! once is marked (`replayed`: when, by whom, outcome) and kept for audit; a
//! second replay is refused.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use treem_proto::event::Envelope;
use treem_proto::subject;

use crate::fold::{self, Ctx, Dirty, Outcome, Scratch, get_json, get_u64, put_json};
use crate::keys;
use crate::kv::Kv;
use crate::parked::{Parked, Unplaced, park};

/// The version of [`ReplayCommand`] this code writes and reads.
pub const COMMAND_VERSION: u32 = 1;

/// "Replay parked message `parked`", as published on the town's command
/// subject. Private to the town (only the town writes and reads it), but
/// kept in the stream for ever, so it is versioned and only ever extended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayCommand {
    pub v: u32,
    /// The record to replay.
    pub parked: u64,
    /// What the record must hold (see the module doc).
    pub subject: String,
    pub ward: Option<String>,
    pub seq: Option<u64>,
    pub seq_consumed: bool,
    /// FNV-1a 64 of the exact message, in hex.
    pub digest: String,
    /// When the operator asked: recorded as the replay's time, so the fold
    /// stays free of clocks and a rebuild records the same time.
    pub requested_at: DateTime<Utc>,
    /// Who asked (`http` until the API has authenticated users).
    pub requested_by: String,
}

/// FNV-1a 64 in hex: tells two messages apart, no more (not a security measure).
pub fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl ReplayCommand {
    /// Whether `rec` holds the message this command names.
    pub fn names(&self, rec: &Parked) -> bool {
        rec.subject == self.subject
            && rec.ward == self.ward
            && rec.seq == self.seq
            && rec.seq_consumed == self.seq_consumed
            && digest(&rec.payload()) == self.digest
    }

    pub fn for_record(n: u64, rec: &Parked, requested_at: DateTime<Utc>, requested_by: &str) -> ReplayCommand {
        ReplayCommand {
            v: COMMAND_VERSION,
            parked: n,
            subject: rec.subject.clone(),
            ward: rec.ward.clone(),
            seq: rec.seq,
            seq_consumed: rec.seq_consumed,
            digest: digest(&rec.payload()),
            requested_at,
            requested_by: requested_by.into(),
        }
    }
}

/// The audit mark on a replayed record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    pub at: DateTime<Utc>,
    pub by: String,
    pub outcome: ReplayOutcome,
}

/// What came of a replay that took effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// Its effect is in the projections now, and `then_applied` successors
    /// held behind it applied after it.
    Applied { ward: String, seq: u64, then_applied: u64 },
    /// Read and placed now; waits behind a gap in its ward's sequence.
    Held { ward: String, seq: u64, expected: u64 },
    /// Its ward's sequence or its id shows it was already applied.
    Duplicate { ward: String, seq: u64 },
    /// Read and in its turn now, but refused by the rules: its `seq` is
    /// consumed and it is parked again as `parked`.
    ParkedAgain { ward: String, seq: u64, parked: u64, reason: String },
}

impl std::fmt::Display for ReplayOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayOutcome::Applied { ward, seq, then_applied: 0 } => write!(f, "applied: ward {ward} seq {seq}"),
            ReplayOutcome::Applied { ward, seq, then_applied } => {
                write!(f, "applied: ward {ward} seq {seq}, then {then_applied} held after it")
            }
            ReplayOutcome::Held { ward, seq, expected } => {
                write!(f, "held: ward {ward} seq {seq} waits for seq {expected} to arrive")
            }
            ReplayOutcome::Duplicate { ward, seq } => write!(f, "duplicate: ward {ward} seq {seq} was already applied"),
            ReplayOutcome::ParkedAgain { ward, seq, parked, reason } => {
                write!(f, "parked again as #{parked}: ward {ward} seq {seq} is read now but refused by the rules: {reason}")
            }
        }
    }
}

/// Why a replay changed nothing. Each says what to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplayRefusal {
    #[error("there is no parked message #{n}; list them with `treem-town parked list`")]
    NotFound { n: u64 },
    #[error("parked message #{n} was already replayed at {at} ({outcome}); a replay takes effect once")]
    AlreadyReplayed { n: u64, at: DateTime<Utc>, outcome: String },
    #[error("parked message #{n} is not the one the replay command names ({detail}); nothing replayed")]
    Mismatch { n: u64, detail: String },
    #[error("parked message #{n} is still refused: {reason}")]
    StillRefused { n: u64, reason: String },
    #[error("replay command cannot be read: {detail}")]
    BadCommand { detail: String },
}

/// Applies a replay command met on the stream at `subject`. An unreadable
/// command is parked like any poison message.
pub fn apply_command(
    kv: &mut impl Kv,
    ctx: &Ctx,
    subject_str: &str,
    bytes: &[u8],
    dirty: &mut Dirty,
) -> Result<ReplayOutcome, ReplayRefusal> {
    let cmd = match read_command(ctx, subject_str, bytes) {
        Ok(cmd) => cmd,
        Err(detail) => {
            park(kv, subject_str, bytes, Unplaced::unread(), format!("replay command cannot be read: {detail}"));
            return Err(ReplayRefusal::BadCommand { detail });
        }
    };
    let result = replay(kv, ctx, &cmd, dirty);
    match &result {
        Ok(outcome) => tracing::info!(parked = cmd.parked, by = %cmd.requested_by, %outcome, "replayed a parked message"),
        Err(e) => tracing::info!(parked = cmd.parked, by = %cmd.requested_by, refusal = %e, "replay changed nothing"),
    }
    result
}

fn read_command(ctx: &Ctx, subject_str: &str, bytes: &[u8]) -> Result<ReplayCommand, String> {
    let (p, t) = subject::parse_town_replay_subject(subject_str).map_err(|e| e.to_string())?;
    if p != ctx.province || t != ctx.town {
        return Err(format!("command is for town {p}/{t}, this is town {}/{}", ctx.province, ctx.town));
    }
    let cmd: ReplayCommand = serde_json::from_slice(bytes).map_err(|e| format!("not a replay command: {e}"))?;
    if cmd.v > COMMAND_VERSION {
        return Err(format!(
            "replay command version {} is newer than this town understands (up to {COMMAND_VERSION}); upgrade treem",
            cmd.v
        ));
    }
    Ok(cmd)
}

/// Replays record `cmd.parked`: all of its effect and the audit mark, or
/// nothing and the reason.
pub fn replay(kv: &mut impl Kv, ctx: &Ctx, cmd: &ReplayCommand, dirty: &mut Dirty) -> Result<ReplayOutcome, ReplayRefusal> {
    let (n, mut rec) = find(kv, cmd)?;
    if let Some(done) = &rec.replayed {
        return Err(ReplayRefusal::AlreadyReplayed { n, at: done.at, outcome: done.outcome.to_string() });
    }
    let bytes = rec.payload();
    let mut scratch = Scratch::new(kv);
    let mut local = Dirty::new();
    let outcome = if rec.seq_consumed {
        replay_refused(&mut scratch, ctx, n, &bytes, &mut local)?
    } else {
        replay_unplaced(&mut scratch, ctx, n, &rec.subject, &bytes, &mut local)?
    };
    rec.replayed = Some(Replayed { at: cmd.requested_at, by: cmd.requested_by.clone(), outcome: outcome.clone() });
    put_json(&mut scratch, keys::parked(n), &rec);
    let writes = scratch.into_writes();
    fold::merge(kv, writes);
    dirty.extend(local);
    Ok(outcome)
}

/// The record the command names: number `cmd.parked` if it holds the
/// message, else the first record not yet replayed that does (a store
/// numbered differently, see the module doc), else the first replayed one.
fn find(kv: &impl Kv, cmd: &ReplayCommand) -> Result<(u64, Parked), ReplayRefusal> {
    let numbered: Option<Parked> = get_json(kv, &keys::parked(cmd.parked));
    if let Some(rec) = &numbered
        && cmd.names(rec)
    {
        return Ok((cmd.parked, rec.clone()));
    }
    let mut replayed = None;
    for n in 1..=get_u64(kv, keys::META_PARKED_NEXT) {
        let Some(rec) = get_json::<Parked>(kv, &keys::parked(n)) else { continue };
        if !cmd.names(&rec) {
            continue;
        }
        if rec.replayed.is_none() {
            return Ok((n, rec));
        }
        replayed.get_or_insert((n, rec));
    }
    if let Some(found) = replayed {
        return Ok(found);
    }
    match numbered {
        None => Err(ReplayRefusal::NotFound { n: cmd.parked }),
        Some(rec) => Err(ReplayRefusal::Mismatch {
            n: cmd.parked,
            detail: format!(
                "it holds {} ward {:?} seq {:?}, the command names {} ward {:?} seq {:?}, and no other parked message matches",
                rec.subject, rec.ward, rec.seq, cmd.subject, cmd.ward, cmd.seq
            ),
        }),
    }
}

/// Replays without committing anything: what a replay would do now.
pub fn dry_run(kv: &impl Kv, ctx: &Ctx, cmd: &ReplayCommand) -> Result<ReplayOutcome, ReplayRefusal> {
    let mut scratch = Scratch::new(kv);
    replay(&mut scratch, ctx, cmd, &mut Dirty::new())
}

fn already_applied(kv: &impl Kv, env: &Envelope) -> bool {
    kv.get(&keys::replayed_event(env.id)).is_some() || crate::evlog::applied(kv, &env.ward, env.id)
}

/// An event the rules refused in its turn: its effect only, position untouched.
fn replay_refused(kv: &mut impl Kv, ctx: &Ctx, n: u64, bytes: &[u8], dirty: &mut Dirty) -> Result<ReplayOutcome, ReplayRefusal> {
    let still = |reason: String| ReplayRefusal::StillRefused { n, reason };
    let env = Envelope::decode(bytes).map_err(|e| still(e.to_string()))?;
    if already_applied(kv, &env) {
        return Ok(ReplayOutcome::Duplicate { ward: env.ward, seq: env.seq });
    }
    fold::apply_effect(kv, ctx, &env, dirty).map_err(still)?;
    kv.put(keys::replayed_event(env.id), n.to_be_bytes().to_vec());
    let mut info = fold::ward_info(kv, &env.ward);
    info.applied += 1;
    info.parked = info.parked.saturating_sub(1);
    fold::put_ward_info(kv, &env.ward, &info);
    Ok(ReplayOutcome::Applied { ward: env.ward, seq: env.seq, then_applied: 0 })
}

/// A message that never took its place: the normal fold, as if it came now.
fn replay_unplaced(
    kv: &mut impl Kv,
    ctx: &Ctx,
    n: u64,
    subject_str: &str,
    bytes: &[u8],
    dirty: &mut Dirty,
) -> Result<ReplayOutcome, ReplayRefusal> {
    if let Ok(env) = Envelope::decode(bytes)
        && kv.get(&keys::replayed_event(env.id)).is_some()
    {
        return Ok(ReplayOutcome::Duplicate { ward: env.ward, seq: env.seq });
    }
    let first_new = get_u64(kv, keys::META_PARKED_NEXT) + 1;
    match fold::apply(kv, ctx, subject_str, bytes, dirty) {
        Outcome::Applied { ward, seq, then_applied } => {
            if let Ok(env) = Envelope::decode(bytes) {
                kv.put(keys::replayed_event(env.id), n.to_be_bytes().to_vec());
            }
            Ok(ReplayOutcome::Applied { ward, seq, then_applied })
        }
        Outcome::Held { ward, seq, expected } => Ok(ReplayOutcome::Held { ward, seq, expected }),
        Outcome::Duplicate { ward, seq } => Ok(ReplayOutcome::Duplicate { ward, seq }),
        Outcome::Parked { reason } => match get_json::<Parked>(kv, &keys::parked(first_new)) {
            // In its turn now, refused by the rules: the fold consumed its seq.
            Some(again) if again.seq_consumed => Ok(ReplayOutcome::ParkedAgain {
                ward: again.ward.unwrap_or_default(),
                seq: again.seq.unwrap_or_default(),
                parked: first_new,
                reason,
            }),
            _ => Err(ReplayRefusal::StillRefused { n, reason }),
        },
    }
}

#[cfg(test)]
mod tests {
    //! Given parked messages, when replayed under a fixed catalogue or
    //! hierarchy, then: applied once, the ward's position untouched, a
    //! second replay refused, and a replay that still fails changes nothing.

    use treem_proto::catalogue::Catalogue;
    use treem_proto::event::{Event, IndicatorObserved};
    use treem_proto::hierarchy::Hierarchy;
    use treem_proto::subject::WardPath;

    use super::*;
    use crate::kv::{KvScan, MemKv};

    fn ctx() -> Ctx {
        Ctx {
            province: "70".into(),
            town: "690".into(),
            hierarchy: Hierarchy::shipped(),
            catalogue: Catalogue::shipped(),
            provenance: crate::provenance::WardKeys::not_required(),
        }
    }

    fn without_indicator(code: &str) -> Ctx {
        let mut c = ctx();
        c.catalogue.indicators.retain(|i| i.code != code);
        c
    }

    fn without_ward(ward: &str) -> Ctx {
        let mut c = ctx();
        for p in &mut c.hierarchy.provinces {
            for t in &mut p.towns {
                t.wards.retain(|w| w.code != ward);
            }
        }
        c
    }

    fn env(ward: &str, seq: u64, code: &str, numerator: u64) -> Envelope {
        Envelope::new(
            &WardPath::new("70", "690", ward),
            seq,
            "test",
            Event::IndicatorObserved(IndicatorObserved {
                indicator: code.into(),
                year: 2024,
                numerator,
                denominator: Some(1000),
                source: "health_centre".into(),
            }),
        )
    }

    fn feed(kv: &mut MemKv, ctx: &Ctx, e: &Envelope) -> Outcome {
        fold::apply(kv, ctx, &subject::event_subject(e), &e.encode(), &mut Dirty::new())
    }

    fn command(kv: &MemKv, n: u64) -> ReplayCommand {
        let rec: Parked = get_json(kv, &keys::parked(n)).expect("parked record");
        ReplayCommand::for_record(n, &rec, chrono::Utc::now(), "test")
    }

    fn run(kv: &mut MemKv, ctx: &Ctx, n: u64, dirty: &mut Dirty) -> Result<ReplayOutcome, ReplayRefusal> {
        let cmd = command(kv, n);
        replay(kv, ctx, &cmd, dirty)
    }

    fn pos(kv: &MemKv, ward: &str) -> u64 {
        get_u64(kv, &keys::pos(ward))
    }

    fn facts(kv: &MemKv, ward: &str, code: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        kv.scan_prefix(&keys::fact_prefix(&fold::obs_fact(ward, 2024, code)))
    }

    #[test]
    fn an_event_refused_by_the_rules_applies_once_on_replay_and_leaves_the_position() {
        let mut kv = MemKv::default();
        let old = without_indicator("16");
        let refused = env("25320", 1, "16", 7);
        assert!(matches!(feed(&mut kv, &old, &refused), Outcome::Parked { .. }));
        // Its seq is consumed: the next event is not blocked behind it.
        assert!(matches!(feed(&mut kv, &old, &env("25320", 2, "2", 5)), Outcome::Applied { .. }));
        assert_eq!(pos(&kv, "25320"), 2);
        let rec: Parked = get_json(&kv, &keys::parked(1)).unwrap();
        assert!(rec.seq_consumed && rec.reason.contains("unknown indicator"), "{rec:?}");

        // Still refused under the old catalogue: nothing changes.
        let before = kv.clone();
        let err = run(&mut kv, &old, 1, &mut Dirty::new()).unwrap_err();
        assert!(matches!(&err, ReplayRefusal::StillRefused { reason, .. } if reason.contains("unknown indicator")), "{err}");
        assert_eq!(kv, before);

        // Under the catalogue that knows it: a dry run changes nothing, the replay applies once.
        let now = ctx();
        assert!(matches!(dry_run(&kv, &now, &command(&kv, 1)), Ok(ReplayOutcome::Applied { .. })));
        assert_eq!(kv, before);
        let mut dirty = Dirty::new();
        let outcome = run(&mut kv, &now, 1, &mut dirty).unwrap();
        assert_eq!(outcome, ReplayOutcome::Applied { ward: "25320".into(), seq: 1, then_applied: 0 });
        assert!(dirty.contains(&2024));
        assert_eq!(pos(&kv, "25320"), 2, "the ward's position is left alone");
        assert_eq!(facts(&kv, "25320", "16").len(), 1, "the effect, under its original seq");
        assert!(kv.get(&keys::replayed_event(refused.id)).is_some());
        let info = fold::WardInfo::decode(&kv.get(&keys::ward_info("25320")).unwrap()).unwrap();
        assert_eq!((info.applied, info.parked), (2, 0));
        let rec: Parked = get_json(&kv, &keys::parked(1)).unwrap();
        assert_eq!(rec.replayed.as_ref().map(|r| &r.outcome), Some(&outcome));

        // Twice: refused, nothing changes.
        let after = kv.clone();
        let err = run(&mut kv, &now, 1, &mut Dirty::new()).unwrap_err();
        assert!(matches!(err, ReplayRefusal::AlreadyReplayed { n: 1, .. }), "{err}");
        assert_eq!(kv, after);
    }

    #[test]
    fn messages_from_an_unknown_ward_go_through_the_fold_on_replay() {
        let mut kv = MemKv::default();
        let old = without_ward("25336");
        let (one, two) = (env("25336", 1, "2", 10), env("25336", 2, "2", 20));
        assert!(matches!(feed(&mut kv, &old, &one), Outcome::Parked { .. }));
        assert!(matches!(feed(&mut kv, &old, &two), Outcome::Parked { .. }));
        assert_eq!(pos(&kv, "25336"), 0, "never placed");
        let now = ctx();
        // Replayed out of order: the second waits behind the first, then both apply.
        let held = run(&mut kv, &now, 2, &mut Dirty::new()).unwrap();
        assert_eq!(held, ReplayOutcome::Held { ward: "25336".into(), seq: 2, expected: 1 });
        let applied = run(&mut kv, &now, 1, &mut Dirty::new()).unwrap();
        assert_eq!(applied, ReplayOutcome::Applied { ward: "25336".into(), seq: 1, then_applied: 1 });
        assert_eq!(pos(&kv, "25336"), 2);
        assert_eq!(facts(&kv, "25336", "2").len(), 2);
        // The same event arriving again is a duplicate by seq.
        assert!(matches!(feed(&mut kv, &now, &one), Outcome::Duplicate { .. }));
    }

    #[test]
    fn a_replay_that_still_fails_or_names_another_record_changes_nothing() {
        let mut kv = MemKv::default();
        let c = ctx();
        let mut v: serde_json::Value = serde_json::from_slice(&env("25320", 1, "2", 1).encode()).unwrap();
        v["schema"] = serde_json::json!(99);
        fold::apply(&mut kv, &c, "treem.v1.events.70.690.25320.indicator.observed", &serde_json::to_vec(&v).unwrap(), &mut Dirty::new());
        let before = kv.clone();
        let err = run(&mut kv, &c, 1, &mut Dirty::new()).unwrap_err();
        assert!(matches!(&err, ReplayRefusal::StillRefused { reason, .. } if reason.contains("newer")), "{err}");
        let mut other = command(&kv, 1);
        other.subject = "treem.v1.events.70.690.25324.indicator.observed".into();
        assert!(matches!(replay(&mut kv, &c, &other, &mut Dirty::new()), Err(ReplayRefusal::Mismatch { .. })));
        assert!(matches!(
            replay(&mut kv, &c, &ReplayCommand { parked: 9, ..other }, &mut Dirty::new()),
            Err(ReplayRefusal::NotFound { n: 9 })
        ));
        assert_eq!(kv, before);
        // An unreadable command on the stream is parked like any poison message.
        let err = apply_command(&mut kv, &c, &subject::town_replay_subject("70", "690"), b"{nope", &mut Dirty::new()).unwrap_err();
        assert!(matches!(err, ReplayRefusal::BadCommand { .. }));
        let rec: Parked = get_json(&kv, &keys::parked(2)).unwrap();
        assert!(rec.reason.contains("replay command"), "{rec:?}");
    }

    #[test]
    fn a_command_replays_the_record_holding_its_message_whatever_its_number() {
        // Live, two events were refused; a rebuild under another
        // configuration parked only the second, as #1.
        let old = without_indicator("16");
        let (first, second) = (env("25320", 1, "16", 1), env("25324", 1, "16", 2));
        let mut live = MemKv::default();
        feed(&mut live, &old, &first);
        feed(&mut live, &old, &second);
        let mut rebuilt = MemKv::default();
        feed(&mut rebuilt, &old, &second);
        let cmd = command(&live, 2);
        let outcome = replay(&mut rebuilt, &ctx(), &cmd, &mut Dirty::new()).unwrap();
        assert_eq!(outcome, ReplayOutcome::Applied { ward: "25324".into(), seq: 1, then_applied: 0 });
        let rec: Parked = get_json(&rebuilt, &keys::parked(1)).unwrap();
        assert!(rec.replayed.is_some());
        // The first one's command finds nothing to replay there.
        let cmd = command(&live, 1);
        assert!(matches!(replay(&mut rebuilt, &ctx(), &cmd, &mut Dirty::new()), Err(ReplayRefusal::Mismatch { n: 1, .. })));
    }

    #[test]
    fn a_message_read_now_but_refused_by_the_rules_is_parked_again_with_its_seq_consumed() {
        let mut kv = MemKv::default();
        let old = without_ward("25336");
        let bad = env("25336", 1, "4z", 1);
        let good = env("25336", 2, "2", 1);
        feed(&mut kv, &old, &bad);
        feed(&mut kv, &old, &good);
        let now = ctx();
        let again = run(&mut kv, &now, 1, &mut Dirty::new()).unwrap();
        assert!(matches!(&again, ReplayOutcome::ParkedAgain { parked: 3, seq: 1, reason, .. } if reason.contains("4z")), "{again:?}");
        assert_eq!(pos(&kv, "25336"), 1, "its seq is consumed, so the ward is not stuck behind it");
        let rec: Parked = get_json(&kv, &keys::parked(3)).unwrap();
        assert!(rec.seq_consumed && rec.replayed.is_none());
        assert!(matches!(run(&mut kv, &now, 2, &mut Dirty::new()), Ok(ReplayOutcome::Applied { seq: 2, .. })));
        assert_eq!(pos(&kv, "25336"), 2);
    }
}
