//! # treem-proto — the wire contract
//!
//! Owns everything two treem processes must agree on, and nothing else:
//!
//! - the event envelope and every event kind ([`event`]), with their stable
//!   names and schema versions, and the upcasters that read older versions
//!   ([`upcast`]);
//! - NATS subject, stream and consumer names, built and parsed only here
//!   ([`subject`]);
//! - the indicator catalogue of the Bình Long plan, shipped as data
//!   (`data/catalogue.json`, [`catalogue`]) and the judgement of a value
//!   against its target ([`judge`]);
//! - the administrative hierarchy, shipped as data (`data/hierarchy.json`,
//!   [`hierarchy`]);
//! - the projection messages the town forwards to the province
//!   ([`projection`]);
//! - provenance: the canonical signing bytes of an event, its hash chain
//!   and the verification of a ward's ed25519 signatures ([`provenance`]).
//!
//! Invariants: this crate does no IO, starts no runtime and depends on no
//! NATS, sled or HTTP crate. Services depend on it, never on each other.

pub mod catalogue;
pub mod event;
pub mod hierarchy;
pub mod judge;
pub mod projection;
pub mod provenance;
pub mod signatures;
pub mod subject;
pub mod upcast;

pub use event::{Envelope, Event, EventError};
