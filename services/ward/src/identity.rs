//! The ward's case register (sổ theo dõi trẻ em): who a case is about, kept
//! sealed under a key of the child's own, and erased for good when consent
//! is withdrawn.
//!
//! A child's identity — name, date of birth, address, guardian — is kept
//! only here. It is never part of an event, so it is never in the `log`
//! tree, never published, never seen by the town or the province (DESIGN.md
//! invariant 5). At the ward itself it is stored encrypted:
//!
//! | where | key | value |
//! | --- | --- | --- |
//! | sled tree `identity` | case id, 16 bytes | [`SEALED_V1`] ‖ nonce ‖ ChaCha20-Poly1305 ciphertext ‖ tag of the [`Identity`] JSON (padded to a multiple of 64 bytes, so the length says little about the name); or [`ERASED`] (one byte) once consent was withdrawn |
//! | sled tree `consent` | withdrawal time (ns since 1970, u64 BE) ‖ case id | [`ConsentWithdrawal`] JSON: an append-only, local audit of withdrawals; no identity in it |
//! | `<data_dir>/vault/<case id>.key` | — | the case's random 256-bit key ([`crate::vault`]), never in sled |
//!
//! Neither tree nor the vault is replicated. Reading an identity (the
//! officer's `treem-ward case show`, `GET /api/v1/cases/{id}` on the local
//! API) opens the sealed value with the case's key.
//!
//! [`open_case`] turns a request into:
//! - a **random** pseudonymous case id (UUID v4): nothing about the child can
//!   be derived from it, and two cases of the same child get two ids;
//! - a coarse age band, the age on 1 July of the case year;
//! - a `case.opened` event carrying only sex, age band, category, art. 10
//!   groups and year.
//!
//! # Consent withdrawal (rút lại sự đồng ý; Decree 13/2023/NĐ-CP, Law 91/2025/QH15)
//!
//! [`withdraw_consent`] replaces the sealed identity by the [`ERASED`]
//! tombstone and appends a [`ConsentWithdrawal`] to `consent`, in one sled
//! transaction made durable by the group commit, then destroys the case's
//! key in the vault. From then on the identity cannot be read back from
//! anything the ward holds: old copies of the ciphertext may linger in
//! sled's segments, but the only key that opens them is gone (the vault
//! overwrites it in place before unlinking it; see `vault.rs` for what no
//! software can promise about SSDs, snapshots and backups). The case itself
//! stays: its `case.opened` and later events are untouched, still counted
//! by the town and province, and support or closure can still be recorded.
//! Nothing is published: the replicated log never carried the identity.
//!
//! # Crash behaviour
//!
//! - Opening a case: the key is written durably to the vault first, then
//!   the sealed identity and `case.opened` in one transaction. A refused or
//!   failed append destroys the key at once (except one that was written but
//!   could not be made durable: the case may still be there after a
//!   restart); a crash in between leaves a key with no identity, which
//!   [`recover`] destroys at the next start.
//! - Withdrawing: tombstone and withdrawal record are durable before the
//!   key is destroyed. A crash in between leaves a key whose identity is a
//!   tombstone; [`recover`] destroys it at the next start, before the node
//!   serves anything. A crash before the transaction is durable withdraws
//!   nothing (the officer got no confirmation and asks again).
//! - A register written by an older treem (plaintext identity JSON) is
//!   sealed entry by entry at start by [`recover`]. The old plaintext may
//!   remain in sled's old segments until sled reuses them (SECURITY.md,
//!   "What cannot be guaranteed").

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use treem_proto::Envelope;
use treem_proto::event::{AgeBand, CaseCategory, CaseOpened, Event, Sex};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::log::{LogError, WardLog, storage};
use crate::vault::{SEALED_V1, Vault, VaultError};

/// Longest accepted identity field, in characters.
const MAX_FIELD: usize = 200;

/// Longest accepted reason for a withdrawal, in characters.
const MAX_REASON: usize = 500;

/// The `identity` value of a case whose identity was erased.
pub const ERASED: u8 = 0;

/// Sealed identities are padded to a multiple of this many bytes.
const PAD_TO: usize = 64;

/// The law a withdrawal is recorded under.
pub const LEGAL_BASIS: &str = "Decree 13/2023/NĐ-CP; Law 91/2025/QH15 (personal data protection)";

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
    /// Art. 10 points (a, b, c, d, đ, e, g, h, i, k, l, m, n, o), for special circumstances only.
    #[serde(default)]
    pub groups: Vec<char>,
    pub sex: Sex,
}

/// One withdrawal of consent, as kept in the local `consent` audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentWithdrawal {
    pub case_id: Uuid,
    pub withdrawn_at: DateTime<Utc>,
    /// The officer who recorded it.
    pub author: String,
    /// Why (who asked, on what document) — never the child's identity.
    pub reason: String,
    pub legal_basis: String,
}

/// What [`recover`] did at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Plaintext identities of an older treem, now sealed.
    pub sealed_legacy: usize,
    /// Keys destroyed: of withdrawals a crash interrupted, and of cases a
    /// crash prevented from being recorded.
    pub keys_destroyed: usize,
    /// Half-written key files destroyed.
    pub temporaries: usize,
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
    #[error("{0}")]
    Vault(#[from] VaultError),
    #[error("the stored identity of case {case_id} cannot be read: {detail}")]
    Corrupt { case_id: Uuid, detail: String },
    #[error("case {case_id} was not opened in this ward; check the case id (`treem-ward log` lists case.opened events)")]
    UnknownCase { case_id: Uuid },
    #[error(
        "the identity of case {case_id} was erased at the child's request on {} (consent withdrawn; {LEGAL_BASIS}); it cannot be recovered. The case's anonymous counts remain",
        .at.format("%Y-%m-%d %H:%M UTC")
    )]
    Erased { case_id: Uuid, at: DateTime<Utc> },
    #[error("consent for case {case_id} was already withdrawn on {}; its identity is erased, nothing more to do", .at.format("%Y-%m-%d %H:%M UTC"))]
    AlreadyErased { case_id: Uuid, at: DateTime<Utc> },
    #[error(
        "the key of case {case_id} is missing from the vault ({path}); its identity cannot be read. Restore the vault from the ward's backup, or withdraw the case's identity"
    )]
    KeyMissing { case_id: Uuid, path: String },
    #[error("the reason is not usable: {0}")]
    BadReason(String),
    #[error(
        "the reason repeats the child's {field}; the withdrawal record is kept, so it must not identify the child — say who asked and on which document instead"
    )]
    ReasonNamesTheChild { field: &'static str },
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

/// The identity as JSON, padded with spaces (valid JSON whitespace) to a
/// multiple of [`PAD_TO`] bytes.
fn padded_json(identity: &Identity) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(serde_json::to_vec(identity).expect("an identity always serialises"));
    let len = bytes.len().div_ceil(PAD_TO) * PAD_TO;
    bytes.resize(len, b' ');
    bytes
}

/// Opens a case: seals the identity under a new key of its own, keeps it in
/// the ward and records `case.opened` with only coarse attributes. Returns
/// the new case id and the event.
pub async fn open_case(log: &WardLog, author: &str, req: OpenCase) -> Result<(Uuid, Envelope), IdentityError> {
    let today = chrono::Local::now().date_naive();
    let dob = check_identity(&req.identity, today)?;
    let age = age_on_first_of_july(dob, req.year)?;
    let age_band = AgeBand::from_age(age).ok_or(IdentityError::NotAChild { dob, age, year: req.year })?;
    // The event is checked here too, so a refused case never makes a key.
    let case_id = Uuid::new_v4();
    let event =
        Event::CaseOpened(CaseOpened { case_id, year: req.year, category: req.category, groups: req.groups, sex: req.sex, age_band });
    event.validate(log.catalogue()).map_err(LogError::from)?;
    let identity = Identity {
        name: req.identity.name.trim().to_owned(),
        date_of_birth: dob.format("%Y-%m-%d").to_string(),
        address: req.identity.address.trim().to_owned(),
        guardian: req.identity.guardian.trim().to_owned(),
    };
    let vault = Vault::open(log.data_dir())?;
    let key = vault.create_key(case_id)?;
    let sealed = key.seal(&padded_json(&identity));
    drop(key);
    let appended = match sealed {
        Ok(sealed) => log.append_case_opened(author, event, case_id, sealed).await.map_err(IdentityError::from),
        Err(e) => Err(e.into()),
    };
    match appended {
        Ok(env) => {
            tracing::info!(ward = %env.ward, seq = env.seq, %case_id, "case opened");
            Ok((case_id, env))
        }
        // Written but not made durable: the case may survive a restart, and
        // then needs its key; if it does not, the next start destroys the key.
        Err(e @ IdentityError::Log(LogError::NotDurable(_) | LogError::NotDurableDiskFull(_))) => Err(e),
        Err(e) => {
            // Nothing was recorded: the key must not outlive it.
            if let Err(destroy) = vault.destroy(case_id) {
                tracing::error!(%case_id, error = %destroy, "could not destroy the key of a case that was not recorded; it is destroyed at the next start");
            }
            Err(e)
        }
    }
}

/// The identity of a case opened in this ward (for the officer only):
/// `Ok(None)` if no such case, [`IdentityError::Erased`] after a withdrawal.
pub fn identity_of(log: &WardLog, case_id: Uuid) -> Result<Option<Identity>, IdentityError> {
    let Some(stored) = log.identity_bytes(case_id)? else { return Ok(None) };
    let corrupt = |detail: String| IdentityError::Corrupt { case_id, detail };
    let json: Zeroizing<Vec<u8>> = match stored.first() {
        Some(&SEALED_V1) => {
            let vault = Vault::open(log.data_dir())?;
            let Some(key) = vault.key(case_id)? else {
                return Err(IdentityError::KeyMissing { case_id, path: vault.key_path(case_id).display().to_string() });
            };
            key.open(&stored)?
        }
        Some(&ERASED) => {
            let at = withdrawal_of(log, case_id)?.map(|w| w.withdrawn_at).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            return Err(IdentityError::Erased { case_id, at });
        }
        // Written by an older treem, before identities were sealed; sealed at the next start.
        Some(b'{') => Zeroizing::new(stored),
        _ => return Err(corrupt("unknown storage format".into())),
    };
    serde_json::from_slice(&json).map(Some).map_err(|e| corrupt(e.to_string()))
}

/// Every withdrawal recorded in this ward, oldest first.
pub fn withdrawals(log: &WardLog) -> Result<Vec<ConsentWithdrawal>, IdentityError> {
    log.with_db(|db| {
        db.consent
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(storage("read"))?;
                serde_json::from_slice(&v).map_err(|e| LogError::Storage { action: "read", detail: format!("a consent record: {e}") })
            })
            .collect()
    })
    .map_err(IdentityError::from)
}

/// The withdrawal of `case_id`, if consent was withdrawn.
pub fn withdrawal_of(log: &WardLog, case_id: Uuid) -> Result<Option<ConsentWithdrawal>, IdentityError> {
    Ok(withdrawals(log)?.into_iter().find(|w| w.case_id == case_id))
}

fn check_reason(reason: &str) -> Result<&str, IdentityError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(IdentityError::BadReason("give a reason, e.g. \"written request of the guardian, 2025-06-01\"".into()));
    }
    let len = reason.chars().count();
    if len > MAX_REASON {
        return Err(IdentityError::BadReason(format!("{len} characters; at most {MAX_REASON}")));
    }
    if reason.chars().any(char::is_control) {
        return Err(IdentityError::BadReason("it contains control characters; write it on one line".into()));
    }
    Ok(reason)
}

/// Refuses a reason that repeats a field of the identity it erases.
fn reason_repeats(reason: &str, identity: &Identity) -> Option<&'static str> {
    let reason = reason.to_lowercase();
    [("name", &identity.name), ("date of birth", &identity.date_of_birth), ("address", &identity.address), ("guardian", &identity.guardian)]
        .into_iter()
        .find(|(_, value)| {
            let value = value.trim().to_lowercase();
            value.chars().count() >= 4 && reason.contains(&value)
        })
        .map(|(field, _)| field)
}

/// Withdraws consent for `case_id`: erases its identity for good (tombstone
/// and withdrawal record, durable; then the key destroyed) and keeps the
/// case's coarse events and counts. See the module docs.
pub async fn withdraw_consent(log: &WardLog, case_id: Uuid, author: &str, reason: &str) -> Result<ConsentWithdrawal, IdentityError> {
    let author = author.trim();
    if author.is_empty() || author.chars().count() > 100 || author.chars().any(char::is_control) {
        return Err(LogError::BadAuthor(author.into()).into());
    }
    let reason = check_reason(reason)?;
    match identity_of(log, case_id) {
        Ok(None) => return Err(IdentityError::UnknownCase { case_id }),
        Ok(Some(identity)) => {
            if let Some(field) = reason_repeats(reason, &identity) {
                return Err(IdentityError::ReasonNamesTheChild { field });
            }
        }
        Err(IdentityError::Erased { at, .. }) => return Err(IdentityError::AlreadyErased { case_id, at }),
        // An identity that cannot be read can still be erased.
        Err(e) => tracing::warn!(%case_id, error = %e, "withdrawing consent for an identity that cannot be read"),
    }
    let record = ConsentWithdrawal {
        case_id,
        withdrawn_at: Utc::now(),
        author: author.to_owned(),
        reason: reason.to_owned(),
        legal_basis: LEGAL_BASIS.into(),
    };
    let mut key = (record.withdrawn_at.timestamp_nanos_opt().unwrap_or(0) as u64).to_be_bytes().to_vec();
    key.extend_from_slice(case_id.as_bytes());
    let value = serde_json::to_vec(&record).expect("a withdrawal serialises");
    log.check_space(value.len() as u64 + 64)?;
    let outcome: Result<(), bool> = log.with_writable_db(|db| {
        let written = (&db.identity, &db.consent).transaction(|(identity, consent)| {
            match identity.get(case_id.as_bytes())? {
                None => return Err(ConflictableTransactionError::Abort(false)),
                Some(v) if v.first() == Some(&ERASED) => return Err(ConflictableTransactionError::Abort(true)),
                Some(_) => {}
            }
            identity.insert(&case_id.as_bytes()[..], &[ERASED][..])?;
            consent.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        });
        match written {
            Ok(()) => Ok(Ok(())),
            // Abort(true): already erased; Abort(false): no such case.
            Err(TransactionError::Abort(erased)) => Ok(Err(erased)),
            Err(TransactionError::Storage(e)) => Err(log.write_failed(db, "write", e)),
        }
    })?;
    match outcome {
        Ok(()) => {}
        Err(false) => return Err(IdentityError::UnknownCase { case_id }),
        Err(true) => {
            let at = withdrawal_of(log, case_id)?.map(|w| w.withdrawn_at).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            return Err(IdentityError::AlreadyErased { case_id, at });
        }
    }
    // The tombstone must be durable before the key goes (crash behaviour).
    log.flush().await?;
    Vault::open(log.data_dir())?.destroy(case_id)?;
    tracing::info!(ward = %log.ward().ward, %case_id, "consent withdrawn: identity erased, key destroyed");
    Ok(record)
}

/// Makes the register consistent at start, before anything is served:
/// seals plaintext identities of an older treem, finishes withdrawals a
/// crash interrupted (destroys their keys), destroys keys of cases that
/// were never recorded, and half-written key files.
pub async fn recover(log: &WardLog) -> Result<Recovered, IdentityError> {
    let vault = Vault::open(log.data_dir())?;
    let mut done = Recovered { temporaries: vault.sweep_temporaries()?, ..Recovered::default() };
    let stored: Vec<(Uuid, Vec<u8>)> = log.with_db(|db| {
        db.identity
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(storage("read"))?;
                Ok((Uuid::from_slice(&k).unwrap_or_default(), v.to_vec()))
            })
            .collect()
    })?;
    let mut live = std::collections::BTreeSet::new();
    for (case_id, value) in stored {
        match value.first() {
            Some(&SEALED_V1) => {
                live.insert(case_id);
            }
            Some(b'{') => {
                let identity: Identity =
                    serde_json::from_slice(&value).map_err(|e| IdentityError::Corrupt { case_id, detail: e.to_string() })?;
                let _ = vault.destroy(case_id)?;
                let sealed = vault.create_key(case_id)?.seal(&padded_json(&identity))?;
                log.with_writable_db(|db| {
                    db.identity
                        .compare_and_swap(case_id.as_bytes(), Some(value.as_slice()), Some(sealed))
                        .map_err(|e| log.write_failed(db, "write", e))?
                        .map_err(|_| LogError::Storage { action: "seal", detail: format!("identity of case {case_id} changed meanwhile") })
                })?;
                live.insert(case_id);
                done.sealed_legacy += 1;
            }
            _ => {}
        }
    }
    if done.sealed_legacy > 0 {
        log.flush().await?;
        tracing::warn!(
            ward = %log.ward().ward,
            sealed = done.sealed_legacy,
            "identities stored in plaintext by an older treem are now sealed; older copies may remain in sled's files until it reuses them (SECURITY.md)"
        );
    }
    for case_id in vault.case_ids()? {
        if !live.contains(&case_id) && vault.destroy(case_id)? {
            done.keys_destroyed += 1;
        }
    }
    if done.keys_destroyed > 0 || done.temporaries > 0 {
        tracing::info!(ward = %log.ward().ward, keys_destroyed = done.keys_destroyed, temporaries = done.temporaries, "vault recovered after an interrupted write or withdrawal");
    }
    Ok(done)
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
