//! Deciding whether a message on the projections stream is a snapshot the
//! province can use (pure: no IO).
//!
//! A message is refused — and then parked by the consumer — when its subject
//! is not a projection subject of this province's `indicators` view, its
//! body is not a [`TownSnapshot`], the body names a different province or
//! town than the subject (a town publishing for another), the town is not a
//! town of the province in the hierarchy, or the year is outside the plan
//! period (DESIGN.md invariant 6).
//!
//! Deliberately *not* refused, because a whole town-year must not be held
//! back for them: indicator codes the catalogue does not know (a town on a
//! newer catalogue; the roll-up shows the indicators this province knows),
//! ward codes the province's hierarchy lacks (ward figures are kept as sent
//! and not used by the roll-up), and a numerator above its denominator (a
//! count of incidents over a population figure may legitimately exceed it,
//! e.g. marriages of children over marriages registered; the ward validated
//! each observed rate already).

use treem_proto::event::{FIRST_YEAR, LAST_YEAR};
use treem_proto::hierarchy::Hierarchy;
use treem_proto::projection::TownSnapshot;
use treem_proto::subject::{self, SubjectError, VIEW_INDICATORS};

/// Why a message was refused. The text is stored with the dead letter.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Subject(#[from] SubjectError),
    #[error("subject names province {found:?} but this node rolls up province {ours:?}")]
    OtherProvince { found: String, ours: String },
    #[error("subject names view {0:?}; the province reads only the {VIEW_INDICATORS:?} view")]
    UnknownView(String),
    #[error("body is not a town snapshot (proto::projection::TownSnapshot JSON): {0}")]
    Json(String),
    #[error(
        "body is for province {body_province:?} town {body_town:?} but was published on the subject of province {subject_province:?} town {subject_town:?}; a town may publish only its own snapshot"
    )]
    Mismatch { subject_province: String, subject_town: String, body_province: String, body_town: String },
    #[error("town {town:?} is not a town of province {province:?} in the hierarchy; add it to the hierarchy file or fix the town's config")]
    UnknownTown { province: String, town: String },
    #[error("year {0} is outside the plan period {FIRST_YEAR}–{LAST_YEAR}")]
    Year(u16),
}

impl Refusal {
    /// Whether a change of configuration (the hierarchy) may make the message
    /// acceptable: such dead letters are re-examined at the next start.
    pub fn depends_on_config(&self) -> bool {
        matches!(self, Refusal::UnknownTown { .. })
    }
}

/// The town a projection subject names, if it parses (to attribute a dead letter).
pub fn subject_town(subject: &str) -> Option<String> {
    subject::parse_projection_subject(subject).ok().map(|(_, t, _)| t.to_string())
}

/// Checks one message and returns the snapshot it carries.
pub fn examine(province: &str, hierarchy: &Hierarchy, subject: &str, payload: &[u8]) -> Result<TownSnapshot, Refusal> {
    let (p, t, view) = subject::parse_projection_subject(subject)?;
    if p != province {
        return Err(Refusal::OtherProvince { found: p.into(), ours: province.into() });
    }
    if view != VIEW_INDICATORS {
        return Err(Refusal::UnknownView(view.into()));
    }
    let snap: TownSnapshot = serde_json::from_slice(payload).map_err(|e| Refusal::Json(e.to_string()))?;
    if snap.province != p || snap.town != t {
        return Err(Refusal::Mismatch {
            subject_province: p.into(),
            subject_town: t.into(),
            body_province: snap.province,
            body_town: snap.town,
        });
    }
    if hierarchy.town(province, t).is_err() {
        return Err(Refusal::UnknownTown { province: province.into(), town: t.into() });
    }
    if !(FIRST_YEAR..=LAST_YEAR).contains(&snap.year) {
        return Err(Refusal::Year(snap.year));
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use treem_proto::judge::Fraction;

    const SUBJECT: &str = "treem.v1.projections.70.690.indicators";

    fn body(town: &str, year: u16, n: u64, d: u64) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "province": "70", "town": town, "year": year, "version": 1,
            "produced_at": "2025-03-01T00:00:00Z", "wards_total": 6,
            "indicators": {"4a": {"numerator": n, "denominator": d}},
            "wards": {"25320": {"4a": {"numerator": n, "denominator": d}}},
            "cases_counted": {"abuse": 1}
        }))
        .unwrap()
    }

    #[test]
    fn a_good_snapshot_passes() {
        let h = Hierarchy::shipped();
        let s = examine("70", &h, SUBJECT, &body("690", 2025, 7, 100)).unwrap();
        assert_eq!(s.indicators["4a"], Fraction { numerator: 7, denominator: 100 });
    }

    #[test]
    fn bad_messages_are_refused_with_the_reason() {
        let h = Hierarchy::shipped();
        assert!(matches!(examine("70", &h, "treem.v1.other", &body("690", 2025, 1, 2)), Err(Refusal::Subject(_))));
        assert!(matches!(
            examine("70", &h, "treem.v1.projections.71.690.indicators", &body("690", 2025, 1, 2)),
            Err(Refusal::OtherProvince { .. })
        ));
        assert!(matches!(examine("70", &h, "treem.v1.projections.70.690.cases", &body("690", 2025, 1, 2)), Err(Refusal::UnknownView(_))));
        assert!(matches!(examine("70", &h, SUBJECT, b"{not json"), Err(Refusal::Json(_))));
        assert!(matches!(examine("70", &h, SUBJECT, &body("691", 2025, 1, 2)), Err(Refusal::Mismatch { .. })));
        assert!(matches!(
            examine("70", &h, "treem.v1.projections.70.691.indicators", &body("691", 2025, 1, 2)),
            Err(Refusal::UnknownTown { .. })
        ));
        assert_eq!(examine("70", &h, SUBJECT, &body("690", 2031, 1, 2)), Err(Refusal::Year(2031)));
        // Incidents over a population may exceed it: kept, not refused.
        assert!(examine("70", &h, SUBJECT, &body("690", 2025, 3, 2)).is_ok());
        assert_eq!(subject_town(SUBJECT).as_deref(), Some("690"));
    }
}
