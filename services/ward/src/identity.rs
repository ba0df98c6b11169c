//! The ward's case register (sổ theo dõi trẻ em): who a case is about.
//!
//! A child's identity — name, date of birth, address, guardian — is kept
//! only here, in the sled tree `identity` of the ward log, keyed by case id
//! (16 bytes) with the [`Identity`] JSON as value. It is never part of an
//! event, so it is never in the `log` tree, never published, never seen by
//! the town or the province (DESIGN.md invariant 5).
//!
//! [`open_case`] turns a request into:
//! - a **random** pseudonymous case id (UUID v4): nothing about the child can
//!   be derived from it, and two cases of the same child get two ids;
//! - a coarse age band, the age on 1 July of the case year;
//! - a `case.opened` event carrying only sex, age band, category, art. 10
//!   groups and year.
//!
//! Atomicity: the identity entry and the `case.opened` event are written in
//! the *same* sled transaction ([`WardLog`]'s append path), so either both
//! exist or neither: a refused or failed append leaves no identity behind,
//! and a recorded case always has its identity. Both become durable with
//! the same group commit.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use treem_proto::Envelope;
use treem_proto::event::{AgeBand, CaseCategory, CaseOpened, Event, Sex};
use uuid::Uuid;

use crate::log::{LogError, WardLog};

/// Longest accepted identity field, in characters.
const MAX_FIELD: usize = 200;

/// Who the case is about. Stays in the ward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Họ và tên.
    pub name: String,
    /// Ngày sinh, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Địa chỉ (thôn/khu phố…).
    pub address: String,
    /// Người giám hộ / cha mẹ.
    pub guardian: String,
}

/// Everything needed to open a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCase {
    pub identity: Identity,
    /// The year the case is opened in (2021–2030).
    pub year: u16,
    pub category: CaseCategory,
    /// Art. 10 letters a–o, for special circumstances only.
    #[serde(default)]
    pub groups: Vec<char>,
    pub sex: Sex,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity.{field} must not be empty")]
    Empty { field: &'static str },
    #[error("identity.{field} is too long ({len} characters, at most {MAX_FIELD})")]
    TooLong { field: &'static str, len: usize },
    #[error("date of birth {value:?} is not a date; write it as YYYY-MM-DD, e.g. 2015-09-02")]
    BadDate { value: String },
    #[error("date of birth {dob} is in the future (today is {today}); check the date")]
    FutureBirth { dob: NaiveDate, today: NaiveDate },
    #[error("date of birth {dob} is after the case year {year}; check the date or the year")]
    BornAfterCaseYear { dob: NaiveDate, year: u16 },
    #[error("a child born on {dob} is {age} on 1 July {year}; cases are for children under 18")]
    NotAChild { dob: NaiveDate, age: u32, year: u16 },
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("the stored identity of case {case_id} cannot be read: {detail}")]
    Corrupt { case_id: Uuid, detail: String },
}

/// Age in whole years on 1 July of `year` (0 for a child born later that year).
pub fn age_on_first_of_july(dob: NaiveDate, year: u16) -> Result<u32, IdentityError> {
    let year_i = i32::from(year);
    if dob.year() > year_i {
        return Err(IdentityError::BornAfterCaseYear { dob, year });
    }
    let mut age = year_i - dob.year();
    if (dob.month(), dob.day()) > (7, 1) {
        age -= 1;
    }
    Ok(u32::try_from(age.max(0)).unwrap_or(0))
}

/// Checks the identity fields and returns the parsed date of birth.
pub fn check_identity(identity: &Identity, today: NaiveDate) -> Result<NaiveDate, IdentityError> {
    for (field, value) in [
        ("name", &identity.name),
        ("date_of_birth", &identity.date_of_birth),
        ("address", &identity.address),
        ("guardian", &identity.guardian),
    ] {
        if value.trim().is_empty() {
            return Err(IdentityError::Empty { field });
        }
        let len = value.chars().count();
        if len > MAX_FIELD {
            return Err(IdentityError::TooLong { field, len });
        }
    }
    let dob = NaiveDate::parse_from_str(identity.date_of_birth.trim(), "%Y-%m-%d")
        .map_err(|_| IdentityError::BadDate { value: identity.date_of_birth.clone() })?;
    if dob > today {
        return Err(IdentityError::FutureBirth { dob, today });
    }
    Ok(dob)
}

/// Opens a case: keeps the identity in the ward and records `case.opened`
/// with only coarse attributes. Returns the new case id and the event.
pub async fn open_case(log: &WardLog, author: &str, req: OpenCase) -> Result<(Uuid, Envelope), IdentityError> {
    let today = chrono::Local::now().date_naive();
    let dob = check_identity(&req.identity, today)?;
    let age = age_on_first_of_july(dob, req.year)?;
    let age_band = AgeBand::from_age(age).ok_or(IdentityError::NotAChild { dob, age, year: req.year })?;
    let case_id = Uuid::new_v4();
    let event =
        Event::CaseOpened(CaseOpened { case_id, year: req.year, category: req.category, groups: req.groups, sex: req.sex, age_band });
    let identity = Identity {
        name: req.identity.name.trim().to_owned(),
        date_of_birth: dob.format("%Y-%m-%d").to_string(),
        address: req.identity.address.trim().to_owned(),
        guardian: req.identity.guardian.trim().to_owned(),
    };
    let bytes = serde_json::to_vec(&identity).expect("an identity always serialises");
    let env = log.append_case_opened(author, event, case_id, bytes).await?;
    tracing::info!(ward = %env.ward, seq = env.seq, %case_id, "case opened");
    Ok((case_id, env))
}

/// The identity of a case opened in this ward (for the officer only).
pub fn identity_of(log: &WardLog, case_id: Uuid) -> Result<Option<Identity>, IdentityError> {
    match log.identity_bytes(case_id)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| IdentityError::Corrupt { case_id, detail: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn age_is_taken_on_first_of_july() {
        assert_eq!(age_on_first_of_july(d("2010-07-01"), 2024).unwrap(), 14);
        assert_eq!(age_on_first_of_july(d("2010-07-02"), 2024).unwrap(), 13);
        assert_eq!(age_on_first_of_july(d("2024-09-01"), 2024).unwrap(), 0);
        assert!(matches!(age_on_first_of_july(d("2025-01-01"), 2024), Err(IdentityError::BornAfterCaseYear { .. })));
    }

    #[test]
    fn identity_checks_say_what_is_wrong() {
        let today = d("2025-01-01");
        let ok = Identity { name: "A".into(), date_of_birth: "2015-02-03".into(), address: "Khu phố 1".into(), guardian: "B".into() };
        assert_eq!(check_identity(&ok, today).unwrap(), d("2015-02-03"));
        let e = check_identity(&Identity { name: " ".into(), ..ok.clone() }, today).unwrap_err();
        assert!(e.to_string().contains("identity.name"), "{e}");
        let e = check_identity(&Identity { date_of_birth: "03/02/2015".into(), ..ok.clone() }, today).unwrap_err();
        assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
        let e = check_identity(&Identity { date_of_birth: "2026-01-01".into(), ..ok }, today).unwrap_err();
        assert!(e.to_string().contains("future"), "{e}");
    }
}
