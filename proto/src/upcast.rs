//! Upcasters: rewrite the JSON of an older schema version into the current
//! one before it is decoded (invariant 8). Each step takes version N to N+1
//! and never fails on a well-formed N event.
//!
//! History:
//! - **v1** (first field release): `indicator.observed` named the year
//!   `period` (a string such as `"2023"`); `case.opened` carried the age in
//!   whole years as `age_years`.
//! - **v2**: `year` is a number everywhere; a case carries only the coarse
//!   `age_band`, so an exact age never travels.
//! - **v3**: the envelope may carry the ward's provenance, `prev` and `sig`
//!   ([`crate::provenance`]). A v2 event has neither: upcast, it reads as
//!   an unsigned v3 event. Its signing bytes and hash are still those of
//!   the v2 JSON as written (provenance works on the received bytes, never
//!   on an upcast copy).

use serde_json::{Value, json};

use crate::event::{AgeBand, DecodeError, SCHEMA_VERSION};

/// Brings `value` to [`SCHEMA_VERSION`].
pub fn upcast(mut value: Value) -> Result<Value, DecodeError> {
    let version = value.get("schema").and_then(Value::as_u64).ok_or(DecodeError::MissingSchema)?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(DecodeError::FutureSchema { found: version });
    }
    if version == 0 {
        return Err(DecodeError::Shape { version: 0, detail: "schema version 0 never existed".into() });
    }
    if version < 2 {
        value = v1_to_v2(value)?;
    }
    if version < 3 {
        // Nothing to rewrite: v3 only added optional envelope fields.
        value["schema"] = json!(3);
    }
    Ok(value)
}

fn shape(detail: &str) -> DecodeError {
    DecodeError::Shape { version: 1, detail: detail.into() }
}

fn v1_to_v2(mut value: Value) -> Result<Value, DecodeError> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    rewrite_body(&kind, value.get_mut("body"))?;
    value["schema"] = json!(2);
    Ok(value)
}

fn rewrite_body(kind: &str, body: Option<&mut Value>) -> Result<(), DecodeError> {
    let Some(body) = body.and_then(Value::as_object_mut) else { return Ok(()) };
    match kind {
        "indicator.observed" => {
            if let Some(period) = body.remove("period") {
                let year: u16 = match &period {
                    Value::String(s) => s.trim().parse().map_err(|_| shape("period is not a year"))?,
                    Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(|| shape("period is not a year"))?,
                    _ => return Err(shape("period is not a year")),
                };
                body.insert("year".into(), json!(year));
            }
        }
        "case.opened" => {
            if let Some(age) = body.remove("age_years") {
                let age = age.as_u64().ok_or_else(|| shape("age_years is not a whole number"))?;
                let band = u32::try_from(age).ok().and_then(AgeBand::from_age).ok_or_else(|| shape("age_years is not 0–17"))?;
                body.insert("age_band".into(), json!(band.name()));
            }
        }
        "event.corrected" => {
            // The corrected event nests a kind and body of its own.
            if let Some(inner) = body.get_mut("corrected") {
                let inner_kind = inner.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
                rewrite_body(&inner_kind, inner.get_mut("body"))?;
            }
        }
        _ => {}
    }
    Ok(())
}
