//! Query parameters shared by the read endpoints, checked with messages that
//! say what to send instead.

use treem_proto::event::{FIRST_YEAR, LAST_YEAR};

use super::{ApiError, AppState};

/// `?year=` — required, within the plan period.
pub fn year(raw: Option<&str>) -> Result<u16, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::BadRequest(format!("give the year as ?year=YYYY, between {FIRST_YEAR} and {LAST_YEAR}")))?;
    let year: u16 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("year {raw:?} is not a number; give a year between {FIRST_YEAR} and {LAST_YEAR}")))?;
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Err(ApiError::BadRequest(format!("year {year} is outside the plan period {FIRST_YEAR}–{LAST_YEAR}")));
    }
    Ok(year)
}

/// `?town=` — optional; must be a town of this province in the hierarchy.
pub fn town(state: &AppState, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if state.hierarchy.town(&state.province, raw).is_err() {
        let known: Vec<&str> = state.town_codes();
        return Err(ApiError::BadRequest(format!(
            "town {raw:?} is not a town of province {}; known towns are {}",
            state.province,
            known.join(", ")
        )));
    }
    Ok(Some(raw.to_string()))
}

/// `?code=` — optional; must be an indicator of the catalogue.
pub fn code(state: &AppState, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if state.catalogue.get(raw).is_none() {
        return Err(ApiError::BadRequest(format!("unknown indicator {raw:?}; known codes are {}", state.catalogue.codes().join(", "))));
    }
    Ok(Some(raw.to_string()))
}
