//! NATS names: subjects, streams and consumers. Built and parsed only here,
//! so that permissions (one ward, its own subjects) follow from one place.
//!
//! - ward events: `treem.v1.events.<province>.<town>.<ward>.<kind>` where
//!   `<kind>` is the event kind, e.g. `case.opened` (so two tokens);
//! - town projections: `treem.v1.projections.<province>.<town>.<view>`;
//! - stream of a town's ward events: `TREEM_EVENTS_<province>_<town>`;
//! - stream of a province's projections: `TREEM_PROJECTIONS_<province>`;
//! - a town's replay commands, in its own ward event stream so that a
//!   rebuild from the stream sees them in order:
//!   `treem.v1.events.<province>.<town>.town.replay` (the ward token is the
//!   word `town`, never a ward code, so a ward confined to its own subjects
//!   cannot publish one);
//! - a town's dead letters (messages it parked, with the reason in headers):
//!   `treem.v1.deadletter.<province>.<town>` in stream
//!   `TREEM_DEADLETTER_<province>_<town>`;
//! - consumers: the town's `town-<town>`, the province's
//!   `province-<province>`, and one probe per ward, `ward-<ward>-probe`,
//!   on its town's event stream (see [`ward_probe_consumer`]).
//!
//! The NATS permissions of every ward, town and province identity are
//! generated from these builders (`services/auth/src/nats/plan.rs`).

use crate::event::{Envelope, Event};

pub const PREFIX: &str = "treem.v1";

/// A ward's place in the hierarchy, as used in subjects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WardPath {
    pub province: String,
    pub town: String,
    pub ward: String,
}

impl WardPath {
    /// The ward `ward` of town `town` in province `province` (codes).
    pub fn new(province: &str, town: &str, ward: &str) -> WardPath {
        WardPath { province: province.into(), town: town.into(), ward: ward.into() }
    }
}

pub fn event_subject(env: &Envelope) -> String {
    format!("{PREFIX}.events.{}.{}.{}.{}", env.province, env.town, env.ward, env.event.kind())
}

/// Every event of every ward of one town.
pub fn town_events_filter(province: &str, town: &str) -> String {
    format!("{PREFIX}.events.{province}.{town}.>")
}

/// Every event of one ward.
pub fn ward_events_filter(province: &str, town: &str, ward: &str) -> String {
    format!("{PREFIX}.events.{province}.{town}.{ward}.>")
}

pub fn town_events_stream(province: &str, town: &str) -> String {
    format!("TREEM_EVENTS_{province}_{town}")
}

pub fn town_consumer(town: &str) -> String {
    format!("town-{town}")
}

/// The view a town forwards: indicator numerators and denominators.
pub const VIEW_INDICATORS: &str = "indicators";

pub fn projection_subject(province: &str, town: &str, view: &str) -> String {
    format!("{PREFIX}.projections.{province}.{town}.{view}")
}

pub fn province_projections_filter(province: &str) -> String {
    format!("{PREFIX}.projections.{province}.>")
}

pub fn province_projections_stream(province: &str) -> String {
    format!("TREEM_PROJECTIONS_{province}")
}

pub fn province_consumer(province: &str) -> String {
    format!("province-{province}")
}

/// Every projection one town publishes (what its NATS identity may send).
pub fn town_projections_filter(province: &str, town: &str) -> String {
    format!("{PREFIX}.projections.{province}.{town}.>")
}

/// A ward's probe consumer on its town's event stream: a durable pull
/// consumer the TOWN creates, filtered on that ward's own subjects, which
/// the ward moves (consumer reset) and reads one message from to check what
/// the stream still holds of it (ward reconcile). The ward never creates
/// consumers itself, so its NATS identity needs no consumer-create right,
/// whose request body (deliver subject, filters) permissions cannot check.
pub fn ward_probe_consumer(ward: &str) -> String {
    format!("ward-{ward}-probe")
}

/// The token in the ward position of a town's own command subjects.
pub const TOWN_COMMAND_TOKEN: &str = "town";

/// Where a town records an operator's "replay parked message N" command.
pub fn town_replay_subject(province: &str, town: &str) -> String {
    format!("{PREFIX}.events.{province}.{town}.{TOWN_COMMAND_TOKEN}.replay")
}

/// Parses a town replay command subject into (province, town).
pub fn parse_town_replay_subject(subject: &str) -> Result<(&str, &str), SubjectError> {
    let not = || SubjectError::NotTownCommand(subject.into());
    let rest = subject.strip_prefix(PREFIX).and_then(|r| r.strip_prefix(".events.")).ok_or_else(not)?;
    let mut parts = rest.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(t), Some(TOWN_COMMAND_TOKEN), Some("replay"), None) if !p.is_empty() && !t.is_empty() => Ok((p, t)),
        _ => Err(not()),
    }
}

/// Where a town publishes the messages it parked (dead letters).
pub fn deadletter_subject(province: &str, town: &str) -> String {
    format!("{PREFIX}.deadletter.{province}.{town}")
}

/// The stream of a town's dead letters.
pub fn deadletter_stream(province: &str, town: &str) -> String {
    format!("TREEM_DEADLETTER_{province}_{town}")
}

/// Parses a dead-letter subject into (province, town).
pub fn parse_deadletter_subject(subject: &str) -> Result<(&str, &str), SubjectError> {
    let not = || SubjectError::NotDeadletter(subject.into());
    let rest = subject.strip_prefix(PREFIX).and_then(|r| r.strip_prefix(".deadletter.")).ok_or_else(not)?;
    let mut parts = rest.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(t), None) if !p.is_empty() && !t.is_empty() => Ok((p, t)),
        _ => Err(not()),
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubjectError {
    #[error("subject {0:?} is not a treem event subject (treem.v1.events.<province>.<town>.<ward>.<kind>)")]
    NotEvent(String),
    #[error("subject {0:?} names unknown kind {1:?}")]
    UnknownKind(String, String),
    #[error("subject {0:?} is not a treem projection subject (treem.v1.projections.<province>.<town>.<view>)")]
    NotProjection(String),
    #[error("subject {0:?} is not a treem dead-letter subject (treem.v1.deadletter.<province>.<town>)")]
    NotDeadletter(String),
    #[error("subject {0:?} is not a town command subject (treem.v1.events.<province>.<town>.town.replay)")]
    NotTownCommand(String),
}

/// Parses an event subject into the ward it claims and the kind.
pub fn parse_event_subject(subject: &str) -> Result<(WardPath, &str), SubjectError> {
    let rest =
        subject.strip_prefix(PREFIX).and_then(|r| r.strip_prefix(".events.")).ok_or_else(|| SubjectError::NotEvent(subject.into()))?;
    let mut parts = rest.splitn(4, '.');
    let (Some(p), Some(t), Some(w), Some(kind)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SubjectError::NotEvent(subject.into()));
    };
    if !Event::KINDS.contains(&kind) {
        return Err(SubjectError::UnknownKind(subject.into(), kind.into()));
    }
    Ok((WardPath { province: p.into(), town: t.into(), ward: w.into() }, kind))
}

/// Parses a projection subject into (province, town, view).
pub fn parse_projection_subject(subject: &str) -> Result<(&str, &str, &str), SubjectError> {
    let rest = subject
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(".projections."))
        .ok_or_else(|| SubjectError::NotProjection(subject.into()))?;
    let mut parts = rest.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(t), Some(v), None) => Ok((p, t, v)),
        _ => Err(SubjectError::NotProjection(subject.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_subjects_round_trip() {
        let (path, kind) = parse_event_subject("treem.v1.events.70.690.25320.case.opened").unwrap();
        assert_eq!(path.ward, "25320");
        assert_eq!(path.town, "690");
        assert_eq!(kind, "case.opened");
        assert!(matches!(parse_event_subject("treem.v1.events.70.690.25320.case.eaten"), Err(SubjectError::UnknownKind(..))));
        assert!(parse_event_subject("other.v1.events.70").is_err());
        assert_eq!(parse_projection_subject("treem.v1.projections.70.690.indicators").unwrap(), ("70", "690", "indicators"));
    }

    #[test]
    fn deadletter_and_town_command_names_round_trip() {
        assert_eq!(deadletter_subject("70", "690"), "treem.v1.deadletter.70.690");
        assert_eq!(deadletter_stream("70", "690"), "TREEM_DEADLETTER_70_690");
        assert_eq!(parse_deadletter_subject(&deadletter_subject("70", "690")).unwrap(), ("70", "690"));
        assert!(matches!(parse_deadletter_subject("treem.v1.deadletter.70"), Err(SubjectError::NotDeadletter(_))));
        assert!(parse_deadletter_subject("treem.v1.deadletter.70.690.x").is_err());
        assert!(parse_deadletter_subject("treem.v1.events.70.690").is_err());

        let replay = town_replay_subject("70", "690");
        assert_eq!(replay, "treem.v1.events.70.690.town.replay");
        assert_eq!(parse_town_replay_subject(&replay).unwrap(), ("70", "690"));
        // Inside the town's stream filter, outside every ward's own subjects,
        // and never mistaken for a ward event.
        assert!(replay.starts_with(town_events_filter("70", "690").trim_end_matches('>')));
        assert!(!replay.starts_with(ward_events_filter("70", "690", "25320").trim_end_matches('>')));
        assert!(parse_event_subject(&replay).is_err());
        assert!(parse_town_replay_subject("treem.v1.events.70.690.25320.case.opened").is_err());
        assert!(matches!(parse_town_replay_subject("treem.v1.events.70.690.town"), Err(SubjectError::NotTownCommand(_))));
    }
}
