//! # treem-auth — who may read what over HTTP
//!
//! The token handling the town (`treem-town`) and the province
//! (`treem-province`) share: roles ([`Role`]: `viewer` < `officer` <
//! `admin`), bearer tokens ([`Token`], shown once as
//! `treem_<id>_<secret>`), the durable token store that keeps only their
//! SHA-256 hashes and their revocations ([`TokenStore`]), the axum guard
//! that turns `Authorization: Bearer …` into a [`Caller`] or a 401/403
//! ([`guard`]), the append-only audit log of every read of case-level data
//! ([`AuditLog`]) and the `token create|list|revoke` command both binaries
//! offer ([`cli`]); and the same tokens in a browser's session cookie for
//! the web pages ([`session`]), signed in and out by the pages of [`login`].
//!
//! ## Why a shared library
//!
//! Services never depend on each other (STYLE.md habit 3). Both may depend
//! on a library that does one thing for both; this is that library, and it
//! is the only place that knows a token's format, how it is hashed and
//! compared, and what an answer to a refused request may say. It knows
//! nothing of towns or provinces: each service decides which of its
//! routes need which role and which are audited, in its own `http` module.
//!
//! ## NATS identities ([`nats`])
//!
//! The other half of "who may do what": every ward, town and province has
//! its own NATS identity (an nkey) in an account of its own, with subject
//! permissions generated from the hierarchy by the `treem-nats-auth`
//! binary of this crate; and the client side all three services share (the
//! seed file and TLS settings, [`nats::ClientAuth`]). The ward depends on
//! this crate for that part only.
//!
//! ## On disk (`<data_dir>/auth/`, mode 0700)
//!
//! | file | what | written by |
//! | --- | --- | --- |
//! | `tokens.json` | every token: id, name, role, SHA-256 of the secret, created, revoked | `token create/revoke` (any process), under `tokens.lock` |
//! | `tokens.lock` | empty; the advisory lock writers hold | — |
//! | `audit.jsonl` | one JSON line per read of case-level data (or refused attempt) | the serving process, fsync'd per line |
//!
//! A running service reads `tokens.json` again whenever the file changed
//! (checked on every request), so a token created or revoked by the
//! `token` command takes effect at the next request, without a restart and
//! without an HTTP endpoint that could itself mint tokens.
//!
//! ## Invariants
//!
//! - A token's secret exists in plain text only in the output of
//!   `token create` (and in the caller's hands). It is never stored, logged,
//!   audited or echoed; `tokens.json` holds its SHA-256.
//! - A refused request gets one of exactly two bodies: the 401 body (the
//!   same whatever was wrong: missing, malformed, unknown id, wrong secret,
//!   revoked) or the 403 body naming the role the endpoint needs. Neither
//!   says whether a token id exists, nor carries any data.
//! - Hashes are compared in constant time, and an unknown id costs the same
//!   comparison as a known one.
//! - An audited route serves nothing it could not record: when the audit
//!   line cannot be written and fsync'd, the answer is 503 instead of data.

pub mod audit;
pub mod cli;
pub mod guard;
pub mod login;
pub mod nats;
pub mod role;
pub mod session;
pub mod store;
pub mod token;

pub use audit::{AuditEntry, AuditError, AuditLog, Outcome};
pub use guard::{Auth, Caller, Guard, guard};
pub use role::Role;
pub use store::{StoreError, TokenRecord, TokenStore};
pub use token::{Token, TokenError};

/// Directory of the token store and the audit log inside a service's data dir.
pub fn auth_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("auth")
}
