//! The fold: how one message from the ward event stream changes the town's
//! state. Pure over [`Kv`]: no IO, no clock, so rebuilding from the stream
//! gives exactly what incremental application gave (invariant 3).
//!
//! Per ward, events take effect exactly once and in `seq` order
//! (invariant 2): `seq <= pos` is a duplicate and is skipped; `seq > pos + 1`
//! is held under `held/` until the gap fills; `seq == pos + 1` applies, then
//! any held successors apply in turn.
//!
//! A message that cannot be read, or claims a ward it was not published for,
//! or a ward outside the hierarchy, is parked with the reason and changes
//! nothing else. So is an event whose provenance fails — a signature that
//! does not verify, an unsigned event from a ward that signs, a different
//! event at a seq already taken, a broken link to the previous event
//! ([`crate::provenance`]): parked without using up its seq, so a forger
//! cannot block the real event, which applies when it comes. An event that reads but is refused by the rules (say an
//! unknown indicator from a newer ward catalogue, or a correction naming an
//! event that does not exist) is parked with the reason **and** consumes its
//! `seq`, so the ward's later events are never blocked behind it.
//!
//! Every effect is keyed by the id and `seq` of the event that caused it, so
//! a correction undoes exactly the effect of the event it replaces and does
//! the corrected one in its place, and a retraction only undoes.
//!
//! Applying a message has a store-free part — reading its subject and JSON
//! (once, for the envelope and its signing bytes), the checks of ward, town
//! and hierarchy, its hash and its signature against the ward keys — done
//! by [`prepare`] (for a batch on every core: [`prepare_batch`]), and a
//! key-value part done in order by [`apply_prepared`]. [`apply`] is the two
//! in a row; the outcome and the writes are the same either way.
//!
//! A parked record keeps the exact message, so an operator can replay it
//! once the town understands it ([`crate::replay`]); the dead-letter task
//! ([`crate::deadletter`]) copies every parked record to the town's
//! dead-letter stream. Neither is part of this fold: parking only writes
//! `parked/<n>` and `meta/parked_next`, in the same atomic batch as the rest.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{AgeBand, CaseCategory, Envelope, Event, LAST_YEAR, Sex};
use treem_proto::hierarchy::Hierarchy;
use treem_proto::provenance::Seal;
use treem_proto::subject;
use uuid::Uuid;

use crate::evlog;
use crate::keys;
use crate::kv::Kv;
pub use crate::parked::Parked;
use crate::parked::{Unplaced, park};
use crate::provenance::{self, Check, WardKeys};

/// What the fold needs to know of the world.
pub struct Ctx {
    pub province: String,
    pub town: String,
    pub hierarchy: Hierarchy,
    pub catalogue: Catalogue,
    /// The wards' public keys; every event's provenance is checked against them.
    pub provenance: WardKeys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, with how many held successors applied after it.
    Applied {
        ward: String,
        seq: u64,
        then_applied: u64,
    },
    Duplicate {
        ward: String,
        seq: u64,
    },
    Held {
        ward: String,
        seq: u64,
        expected: u64,
    },
    Parked {
        reason: String,
    },
}

/// Sync facts of one ward, kept by the fold (no wall clock: pure).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WardInfo {
    pub last_seq: u64,
    pub last_event_id: Option<Uuid>,
    pub last_recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    pub applied: u64,
    pub parked: u64,
    /// Messages for this ward refused for their provenance (forged, altered,
    /// replayed, unsigned, broken chain); parked without using up a seq.
    #[serde(default)]
    pub provenance_failures: u64,
    /// Events of the ward held behind a gap (`held/<ward>/<seq>`); a store
    /// written before this count was kept is recounted when opened
    /// ([`crate::store::TownStore::open`]).
    #[serde(default)]
    pub held: u64,
}

/// What the town keeps of an applied event ([`crate::evlog`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvRecord {
    pub ward: String,
    pub seq: u64,
    /// The event in force: the original, or its latest correction.
    pub event: Event,
    pub retracted: bool,
}

/// One pseudonymous case at the town: coarse attributes only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseState {
    pub ward: String,
    pub opened_by: Uuid,
    pub year: u16,
    pub category: CaseCategory,
    pub groups: Vec<char>,
    pub sex: Sex,
    pub age_band: AgeBand,
    /// Support events in force → the year of the support.
    pub supports: BTreeMap<Uuid, u16>,
    pub closed: Option<(Uuid, u16)>,
}

/// Years whose figures an application changed (to forward to the province).
pub type Dirty = BTreeSet<u16>;

pub(crate) fn get_json<T: for<'de> Deserialize<'de>>(kv: &impl Kv, key: &[u8]) -> Option<T> {
    kv.get(key).and_then(|v| serde_json::from_slice(&v).ok())
}

pub(crate) fn put_json<T: Serialize>(kv: &mut impl Kv, key: Vec<u8>, value: &T) {
    // Sized for a typical record up front: growing from empty reallocated
    // several times per value (a tenth of the fold's time in a profile).
    let mut bytes = Vec::with_capacity(512);
    serde_json::to_writer(&mut bytes, value).expect("state serialises");
    kv.put(key, bytes);
}

/// The ward's sync facts (default if none yet; [`crate::records`]).
pub(crate) fn ward_info(kv: &impl Kv, ward: &str) -> WardInfo {
    kv.get(&keys::ward_info(ward)).and_then(|v| WardInfo::decode(&v)).unwrap_or_default()
}

pub(crate) fn put_ward_info(kv: &mut impl Kv, ward: &str, info: &WardInfo) {
    kv.put(keys::ward_info(ward), info.encode());
}

/// A case the town holds ([`crate::records`]).
fn get_case(kv: &impl Kv, case_id: Uuid) -> Option<CaseState> {
    kv.get(&keys::case(case_id)).and_then(|v| CaseState::decode(&v))
}

fn put_case(kv: &mut impl Kv, case_id: Uuid, case: &CaseState) {
    kv.put(keys::case(case_id), case.encode());
}

pub(crate) fn get_u64(kv: &impl Kv, key: &[u8]) -> u64 {
    kv.get(key).map(|v| keys::u64_of(&v)).unwrap_or(0)
}

fn add_u64(kv: &mut impl Kv, key: Vec<u8>, delta: i64) {
    let now = get_u64(kv, &key) as i64 + delta;
    if now <= 0 {
        kv.del(&key);
    } else {
        kv.put(key, (now as u64).to_be_bytes().to_vec());
    }
}

/// The part of applying one message that reads nothing from the store:
/// its subject, its decoding (the JSON read once, [`treem_proto::provenance::decode_sealed`]),
/// the checks of ward, town and hierarchy, its hash and the verification of
/// its signature against the ward keys in force. Pure, so the messages of a
/// batch are prepared up front in parallel ([`prepare_batch`]) and the
/// sequential fold ([`apply_prepared`]) does only the key-value work; the
/// outcome is exactly that of [`apply`].
pub struct Prepared(Early);

enum Early {
    /// Parked whatever the store holds: where it goes and why.
    Park { ward: Option<String>, seq: Option<u64>, event_id: Option<Uuid>, reason: String },
    /// Read and placed: the store decides the rest.
    Ready { env: Box<Envelope>, sealed: Result<provenance::Sealed, String> },
}

/// Fewer messages than this per thread are prepared on the calling thread only.
const PREPARE_MIN_PER_THREAD: usize = 32;

/// Prepares one message (see [`Prepared`]) with the keys of `ctx` as they are now.
pub fn prepare(ctx: &Ctx, subject_str: &str, bytes: &[u8]) -> Prepared {
    prepare_chunk(ctx, &[(subject_str, bytes)]).pop().expect("one per message")
}

/// [`prepare`] of each message, the signatures checked together
/// ([`provenance::Sealed::many`]: the same answers as one by one).
fn prepare_chunk(ctx: &Ctx, messages: &[(&str, &[u8])]) -> Vec<Prepared> {
    let read: Vec<Result<(Envelope, Seal), Box<Prepared>>> = messages.iter().map(|(s, b)| read_placed(ctx, s, b)).collect();
    let events: Vec<(&Envelope, &Seal)> = read.iter().filter_map(|r| r.as_ref().ok().map(|(env, seal)| (env, seal))).collect();
    let mut sealed = provenance::Sealed::many(&ctx.provenance, &events).into_iter();
    read.into_iter()
        .map(|r| match r {
            Ok((env, _)) => Prepared(Early::Ready { env: Box::new(env), sealed: Ok(sealed.next().expect("one per event")) }),
            Err(parked) => *parked,
        })
        .collect()
}

/// A message decoded and placed (its subject, town, ward and seq checked),
/// or why it is parked whatever the store holds.
fn read_placed(ctx: &Ctx, subject_str: &str, bytes: &[u8]) -> Result<(Envelope, Seal), Box<Prepared>> {
    let park = |ward: Option<&str>, env: Option<&Envelope>, reason: String| {
        Err(Box::new(Prepared(Early::Park { ward: ward.map(Into::into), seq: env.map(|e| e.seq), event_id: env.map(|e| e.id), reason })))
    };
    let (path, kind) = match subject::parse_event_subject(subject_str) {
        Ok(x) => x,
        Err(e) => return park(None, None, e.to_string()),
    };
    let (env, seal) = match treem_proto::provenance::decode_sealed(bytes) {
        Ok(x) => x,
        Err(e) => return park(Some(&path.ward), None, e.to_string()),
    };
    if env.province != path.province || env.town != path.town || env.ward != path.ward || env.event.kind() != kind {
        let reason = format!(
            "event claims ward {}/{}/{} kind {} but was published on {subject_str}; a ward may publish only its own events",
            env.province,
            env.town,
            env.ward,
            env.event.kind()
        );
        return park(Some(&path.ward), Some(&env), reason);
    }
    if env.province != ctx.province || env.town != ctx.town {
        let reason = format!("event is for town {}/{}, this is town {}/{}", env.province, env.town, ctx.province, ctx.town);
        return park(Some(&env.ward), Some(&env), reason);
    }
    if let Err(e) = ctx.hierarchy.ward(&env.province, &env.town, &env.ward) {
        return park(Some(&env.ward), Some(&env), e.to_string());
    }
    if env.seq == 0 {
        return park(Some(&env.ward), Some(&env), "seq 0 is not valid; ward sequences start at 1".into());
    }
    Ok((env, seal))
}

/// Prepares messages `(subject, payload)` in order, split over the
/// machine's cores (scoped threads; one thread for a small batch). The keys
/// in force when this is called are the batch's (`WardKeys::refresh` runs
/// between batches, never during one).
pub fn prepare_batch(ctx: &Ctx, messages: &[(&str, &[u8])]) -> Vec<Prepared> {
    // Asked once: the answer reads cgroup files, which showed in profiles
    // when asked for every small batch of a live town.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map(usize::from).unwrap_or(1));
    prepare_on(ctx, messages, cores.min(messages.len() / PREPARE_MIN_PER_THREAD))
}

/// [`prepare_batch`] on `threads` threads (at least one), whatever the batch's size.
/// One thread is the caller's; with more, each share goes to a thread of its
/// own at a lower priority ([`crate::priority`]: the fold of the batch
/// before gets a core first) while the caller waits.
pub fn prepare_on(ctx: &Ctx, messages: &[(&str, &[u8])], threads: usize) -> Vec<Prepared> {
    let threads = threads.clamp(1, messages.len().max(1));
    let prepare_all = |chunk: &[(&str, &[u8])]| prepare_chunk(ctx, chunk);
    if threads == 1 {
        return prepare_all(messages);
    }
    let chunk = messages.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let shares: Vec<_> = messages
            .chunks(chunk)
            .map(|c| {
                scope.spawn(move || {
                    crate::priority::lower_this_thread();
                    prepare_all(c)
                })
            })
            .collect();
        let mut prepared = Vec::with_capacity(messages.len());
        for handle in shares {
            match handle.join() {
                Ok(more) => prepared.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        prepared
    })
}

/// Applies one message from the stream.
pub fn apply(kv: &mut impl Kv, ctx: &Ctx, subject_str: &str, bytes: &[u8], dirty: &mut Dirty) -> Outcome {
    apply_prepared(kv, ctx, subject_str, bytes, prepare(ctx, subject_str, bytes), dirty)
}

/// Applies one message from the stream, `prepared` from it with the same
/// `ctx` ([`prepare`]): exactly what [`apply`] does.
pub fn apply_prepared(kv: &mut impl Kv, ctx: &Ctx, subject_str: &str, bytes: &[u8], prepared: Prepared, dirty: &mut Dirty) -> Outcome {
    let (env, sealed) = match prepared.0 {
        Early::Park { ward, seq, event_id, reason } => {
            let place = Unplaced { ward: ward.as_deref(), seq, event_id, consumed: false };
            return park(kv, subject_str, bytes, place, reason);
        }
        Early::Ready { env, sealed } => (*env, sealed),
    };
    let pos = get_u64(kv, &keys::pos(&env.ward));
    let (hash, signed) = match provenance::check_sealed(kv, &env, sealed, pos) {
        Check::Duplicate => return Outcome::Duplicate { ward: env.ward, seq: env.seq },
        Check::Refused(reason) => return provenance::refuse(kv, subject_str, bytes, &env, reason),
        Check::Passed { hash, signed } => (hash, signed),
    };
    if env.seq > pos + 1 {
        let key = keys::held(&env.ward, env.seq);
        match kv.get(&key) {
            None => {
                kv.put(key, bytes.to_vec());
                add_held(kv, &env.ward, 1);
            }
            Some(held) => {
                if let Err(reason) = provenance::check_held(&env, &held, hash) {
                    return provenance::refuse(kv, subject_str, bytes, &env, reason);
                }
            }
        }
        return Outcome::Held { ward: env.ward, seq: env.seq, expected: pos + 1 };
    }
    if let Some(reason) = signed.then(|| provenance::link(kv, &env).err()).flatten() {
        return provenance::refuse(kv, subject_str, bytes, &env, reason);
    }
    let ward = env.ward.clone();
    let seq = env.seq;
    let (refused, mut held_left) = in_order(kv, ctx, subject_str, bytes, env, dirty);
    provenance::record(kv, &ward, seq, hash);
    let mut then_applied = 0;
    // The ward's count of held events spares a read for a successor that
    // is not there (the common case: no gap).
    while held_left > 0 {
        let next = get_u64(kv, &keys::pos(&ward)) + 1;
        let key = keys::held(&ward, next);
        let Some(held) = kv.get(&key) else { break };
        kv.del(&key);
        held_left = add_held(kv, &ward, -1);
        // Held bytes were checked against their subject when they arrived,
        // so the subject they came on is the one built from them.
        match Envelope::decode(&held) {
            Ok(env) => {
                let held_subject = subject::event_subject(&env);
                // Checked when it arrived; checked again in its turn (the
                // keys may have changed since), and its link only now.
                let checked = match provenance::check(kv, &ctx.provenance, &env, &held, next - 1) {
                    Check::Passed { hash, signed } => match signed.then(|| provenance::link(kv, &env).err()).flatten() {
                        None => Ok(hash),
                        Some(reason) => Err(reason),
                    },
                    Check::Refused(reason) => Err(reason),
                    Check::Duplicate => Err("a duplicate in its turn (cannot happen)".into()),
                };
                match checked {
                    Ok(hash) => {
                        held_left = in_order(kv, ctx, &held_subject, &held, env, dirty).1;
                        provenance::record(kv, &ward, next, hash);
                    }
                    Err(reason) => {
                        // Parked without moving the position: the real event
                        // at this seq still applies when it comes.
                        provenance::refuse(kv, &held_subject, &held, &env, reason);
                        break;
                    }
                }
            }
            Err(e) => {
                // Cannot happen for bytes that decoded before; keep the ward moving.
                let place = Unplaced { ward: Some(&ward), seq: Some(next), event_id: None, consumed: true };
                park(kv, subject_str, &held, place, e.to_string());
                kv.put(keys::pos(&ward), next.to_be_bytes().to_vec());
            }
        }
        then_applied += 1;
    }
    match refused {
        Some(reason) => Outcome::Parked { reason },
        None => Outcome::Applied { ward, seq, then_applied },
    }
}

/// Moves the ward's count of held events by `delta`; returns the new count.
fn add_held(kv: &mut impl Kv, ward: &str, delta: i64) -> u64 {
    let mut info = ward_info(kv, ward);
    info.held = info.held.saturating_add_signed(delta);
    put_ward_info(kv, ward, &info);
    info.held
}

/// Applies the ward's next event: its effect, or parks it with its seq
/// consumed and returns the reason; and how many events the ward holds.
fn in_order(kv: &mut impl Kv, ctx: &Ctx, subject_str: &str, bytes: &[u8], env: Envelope, dirty: &mut Dirty) -> (Option<String>, u64) {
    let mut info = ward_info(kv, &env.ward);
    let refused = match apply_effect(kv, ctx, &env, dirty) {
        Ok(()) => {
            info.applied += 1;
            None
        }
        Err(reason) => {
            let place = Unplaced { ward: Some(&env.ward), seq: Some(env.seq), event_id: Some(env.id), consumed: true };
            park(kv, subject_str, bytes, place, reason.clone());
            info.parked += 1;
            Some(reason)
        }
    };
    info.last_seq = env.seq;
    info.last_event_id = Some(env.id);
    info.last_recorded_at = Some(env.recorded_at);
    put_ward_info(kv, &env.ward, &info);
    kv.put(keys::pos(&env.ward), env.seq.to_be_bytes().to_vec());
    (refused, info.held)
}

/// Checks `env` against the catalogue and does its effect, all or nothing:
/// on a refusal nothing is written and the reason is returned. Does not
/// touch the ward's position or sync facts.
pub(crate) fn apply_effect(kv: &mut impl Kv, ctx: &Ctx, env: &Envelope, dirty: &mut Dirty) -> Result<(), String> {
    let mut scratch = Scratch::new(kv);
    let mut local_dirty = Dirty::new();
    env.event.validate(&ctx.catalogue).map_err(|e| e.to_string())?;
    effect(&mut scratch, env, &mut local_dirty)?;
    let writes = scratch.into_writes();
    merge(kv, writes);
    if !matches!(env.event, Event::EventCorrected(_) | Event::EventRetracted(_)) {
        // Outside the scratch: the ward's open block is appended to in place.
        evlog::record(kv, &env.ward, env.id, env.seq, &env.event);
    }
    dirty.extend(local_dirty);
    Ok(())
}

/// Writes made while applying one event, dropped whole if the event is refused.
pub(crate) struct Scratch<'p, K: Kv> {
    parent: &'p K,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'p, K: Kv> Scratch<'p, K> {
    pub(crate) fn new(parent: &'p K) -> Self {
        Scratch { parent, writes: BTreeMap::new() }
    }

    /// The writes, to apply to the parent when the whole succeeded.
    pub(crate) fn into_writes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.writes
    }
}

/// Applies writes collected in a [`Scratch`].
pub(crate) fn merge(kv: &mut impl Kv, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
    for (k, v) in writes {
        match v {
            Some(v) => kv.put(k, v),
            None => kv.del(&k),
        }
    }
}

impl<K: Kv> Kv for Scratch<'_, K> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.parent.get(key),
        }
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }
    fn del(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }
    fn floor(&self, prefix: &[u8], upper: std::ops::Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
        crate::kv::floor_over(&self.writes, |upper| self.parent.floor(prefix, upper), prefix, upper)
    }
    fn get_at(&self, key: &[u8], at: usize, len: usize) -> Option<Vec<u8>> {
        crate::kv::get_at_over(&self.writes, || self.parent.get_at(key, at, len), key, at, len)
    }
    fn update(&mut self, key: Vec<u8>, change: impl FnOnce(&mut Vec<u8>)) {
        let parent = self.parent;
        crate::kv::update_over(&mut self.writes, |k| parent.get(k), key, change);
    }
}

fn effect(kv: &mut impl Kv, env: &Envelope, dirty: &mut Dirty) -> Result<(), String> {
    match &env.event {
        Event::EventCorrected(c) => {
            let (mut rec, at) = replaced(kv, env, c.replaces)?;
            if rec.event.kind() != c.corrected.kind() {
                return Err(format!(
                    "correction of event {} is a {} but the event is a {}; a correction must keep the kind",
                    c.replaces,
                    c.corrected.kind(),
                    rec.event.kind()
                ));
            }
            undo(kv, &rec, c.replaces, dirty);
            apply_base(kv, &env.ward, rec.seq, c.replaces, &c.corrected, dirty)?;
            rec.event = (*c.corrected).clone();
            evlog::update(kv, c.replaces, &at, &rec);
        }
        Event::EventRetracted(r) => {
            let (mut rec, at) = replaced(kv, env, r.replaces)?;
            undo(kv, &rec, r.replaces, dirty);
            rec.retracted = true;
            evlog::update(kv, r.replaces, &at, &rec);
        }
        base => apply_base(kv, &env.ward, env.seq, env.id, base, dirty)?,
    }
    Ok(())
}

/// The event a correction or retraction names, if it may be replaced.
fn replaced(kv: &impl Kv, env: &Envelope, id: Uuid) -> Result<(EvRecord, evlog::At), String> {
    let not_own = || {
        format!(
            "{} names event {id}, which this town has not applied from ward {}; a ward may replace only its own events",
            env.event.kind(),
            env.ward
        )
    };
    let (rec, at) = evlog::find(kv, &env.ward, id).ok_or_else(not_own)?;
    if rec.ward != env.ward {
        return Err(not_own());
    }
    if rec.retracted {
        return Err(format!("event {id} was already retracted; record a new event instead"));
    }
    Ok((rec, at))
}

pub fn obs_fact(ward: &str, year: u16, code: &str) -> String {
    format!("obs|{ward}|{year}|{code}")
}
pub fn pop_fact(ward: &str, year: u16) -> String {
    format!("pop|{ward}|{year}")
}
pub fn rec_fact_prefix(ward: &str, recognition: &str) -> String {
    format!("rec|{ward}|{recognition}|")
}
fn rec_fact(ward: &str, recognition: &str, year: u16) -> String {
    format!("rec|{ward}|{recognition}|{year}")
}
fn recognition_name(r: treem_proto::event::Recognition) -> &'static str {
    match r {
        treem_proto::event::Recognition::ChildFriendly => "child_friendly",
        treem_proto::event::Recognition::PlaySpace => "play_space",
    }
}
pub fn recognition_key(r: treem_proto::event::Recognition) -> &'static str {
    recognition_name(r)
}

/// A stored observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub numerator: u64,
    pub denominator: Option<u64>,
}

fn fact_of(ward: &str, event: &Event) -> Option<(String, Vec<u8>, Vec<u16>)> {
    match event {
        Event::PopulationReported(p) => {
            Some((pop_fact(ward, p.year), serde_json::to_vec(&p.figures).expect("figures serialise"), vec![p.year]))
        }
        Event::IndicatorObserved(o) => Some((
            obs_fact(ward, o.year, &o.indicator),
            serde_json::to_vec(&Observation { numerator: o.numerator, denominator: o.denominator }).expect("serialises"),
            vec![o.year],
        )),
        Event::WardRecognised(r) => Some((
            rec_fact(ward, recognition_name(r.recognition), r.year),
            serde_json::to_vec(&r.granted).expect("serialises"),
            (r.year..=LAST_YEAR).collect(),
        )),
        _ => None,
    }
}

fn apply_base(kv: &mut impl Kv, ward: &str, seq: u64, id: Uuid, event: &Event, dirty: &mut Dirty) -> Result<(), String> {
    if let Some((fact, value, years)) = fact_of(ward, event) {
        kv.put(keys::fact(&fact, seq), value);
        dirty.extend(years);
        return Ok(());
    }
    match event {
        Event::CaseOpened(c) => {
            if kv.get(&keys::case(c.case_id)).is_some() {
                return Err(format!("case {} is already open; record support or a closure, or correct the opening", c.case_id));
            }
            let case = CaseState {
                ward: ward.into(),
                opened_by: id,
                year: c.year,
                category: c.category,
                groups: c.groups.clone(),
                sex: c.sex,
                age_band: c.age_band,
                supports: BTreeMap::new(),
                closed: None,
            };
            recount(kv, None, Some(&case), dirty);
            put_case(kv, c.case_id, &case);
        }
        Event::CaseSupportRecorded(s) => {
            let mut case = own_case(kv, ward, s.case_id)?;
            if s.year < case.year {
                return Err(format!("support in {} predates case {} opened in {}", s.year, s.case_id, case.year));
            }
            let before = case.clone();
            case.supports.insert(id, s.year);
            recount(kv, Some(&before), Some(&case), dirty);
            put_case(kv, s.case_id, &case);
        }
        Event::CaseClosed(c) => {
            let mut case = own_case(kv, ward, c.case_id)?;
            if case.closed.is_some() {
                return Err(format!("case {} is already closed", c.case_id));
            }
            if c.year < case.year {
                return Err(format!("closure in {} predates case {} opened in {}", c.year, c.case_id, case.year));
            }
            let before = case.clone();
            case.closed = Some((id, c.year));
            recount(kv, Some(&before), Some(&case), dirty);
            put_case(kv, c.case_id, &case);
        }
        other => return Err(format!("{} cannot be applied as a base event", other.kind())),
    }
    Ok(())
}

fn own_case(kv: &impl Kv, ward: &str, case_id: Uuid) -> Result<CaseState, String> {
    let case = get_case(kv, case_id).ok_or_else(|| format!("case {case_id} is not open at this town; open it first"))?;
    if case.ward != ward {
        return Err(format!("case {case_id} belongs to ward {}", case.ward));
    }
    Ok(case)
}

/// Undoes the effect of the event in force in `rec` (id `id`).
fn undo(kv: &mut impl Kv, rec: &EvRecord, id: Uuid, dirty: &mut Dirty) {
    if let Some((fact, _, years)) = fact_of(&rec.ward, &rec.event) {
        kv.del(&keys::fact(&fact, rec.seq));
        dirty.extend(years);
        return;
    }
    let case_id = match &rec.event {
        Event::CaseOpened(c) => c.case_id,
        Event::CaseSupportRecorded(s) => s.case_id,
        Event::CaseClosed(c) => c.case_id,
        _ => return,
    };
    let Some(mut case) = get_case(kv, case_id) else { return };
    let before = case.clone();
    match &rec.event {
        Event::CaseOpened(_) => {
            recount(kv, Some(&before), None, dirty);
            kv.del(&keys::case(case_id));
            return;
        }
        Event::CaseSupportRecorded(_) => {
            case.supports.remove(&id);
        }
        Event::CaseClosed(_) if case.closed.map(|(c, _)| c) == Some(id) => {
            case.closed = None;
        }
        _ => {}
    }
    recount(kv, Some(&before), Some(&case), dirty);
    put_case(kv, case_id, &case);
}

/// The years a case counts in: the year of an incident, or every year a
/// state lasts (see `CaseCategory::counts_while_open`).
pub fn years_counted(case: &CaseState) -> std::ops::RangeInclusive<u16> {
    if case.category.counts_while_open() { case.year..=case.closed.map(|(_, y)| y).unwrap_or(LAST_YEAR) } else { case.year..=case.year }
}

/// Moves a case's counts from what `before` added to what `after` adds
/// (`None`: nothing): the two summed per count first, so only counts whose
/// total changes are read and written — a support record mostly changes
/// none. Every year either counts in is marked dirty.
fn recount(kv: &mut impl Kv, before: Option<&CaseState>, after: Option<&CaseState>, dirty: &mut Dirty) {
    // The count a case adds to, by its parts: the store's key is built only
    // for a count whose total changes (a support record mostly changes none).
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Count<'c> {
        Cases { year: u16, ward: &'c str, category: &'static str, sex: &'static str, band: &'static str, status: &'static str },
        Supported { year: u16, ward: &'c str, category: &'static str },
    }
    let mut deltas: BTreeMap<Count<'_>, i64> = BTreeMap::new();
    for (case, sign) in before.map(|c| (c, -1)).into_iter().chain(after.map(|c| (c, 1))) {
        let (ward, category) = (case.ward.as_str(), case.category.name());
        for y in years_counted(case) {
            let status = match case.closed {
                Some((_, closed)) if closed <= y => "closed",
                _ => "open",
            };
            let cases = Count::Cases { year: y, ward, category, sex: case.sex.name(), band: case.age_band.name(), status };
            *deltas.entry(cases).or_default() += sign;
            let supported =
                if case.category.counts_while_open() { case.supports.values().any(|&s| s <= y) } else { !case.supports.is_empty() };
            if supported {
                *deltas.entry(Count::Supported { year: y, ward, category }).or_default() += sign;
            }
            dirty.insert(y);
        }
    }
    for (count, delta) in deltas {
        if delta != 0 {
            let key = match count {
                Count::Cases { year, ward, category, sex, band, status } => keys::count(year, ward, category, sex, band, status),
                Count::Supported { year, ward, category } => keys::supported(year, ward, category),
            };
            add_u64(kv, key, delta);
        }
    }
}
