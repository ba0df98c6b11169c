//! The ward crate's tests against real sled files, real HTTP and a real
//! nats-server: one test binary, one module per concern.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod csv;
mod fuzz;
mod http;
mod identity;
mod log_model;
mod provenance;
mod replication;
