//! NATS identities: who each ward, town and province is on NATS, and what
//! each may do there (SECURITY.md, "NATS identities and TLS").
//!
//! - [`plan`]: the accounts, users and subject permissions, derived from the
//!   hierarchy and `treem_proto::subject` — pure, no IO;
//! - [`keys`]: the nkey seed files of the identities (mode 0600), made,
//!   rotated and revoked by the operator;
//! - [`cli`]: `treem-nats-auth`, which writes `accounts.conf` for
//!   nats-server from the two;
//! - [`client`]: the services' side — their seed file and TLS settings,
//!   checked at start and applied to `async_nats::ConnectOptions`.
//!
//! Invariants: a seed is read from its file and handed to the NATS client,
//! and nowhere else (not logged, printed, or written to the server config,
//! which holds public keys only); the permissions are generated, never
//! written by hand, so they follow the subject names of `treem_proto`.

pub mod cli;
pub mod client;
pub mod keys;
pub mod plan;

pub use client::{ClientAuth, ClientAuthError, optional_path};
