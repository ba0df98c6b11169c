//! treem's end-to-end tests: one test binary, one module per scenario.
//!
//! Every scenario runs against real parts: a real `nats-server` with the
//! configuration `deploy/` ships (via [`treem_tests::NatsServer`]), real sled
//! files in temporary directories, real HTTP on `127.0.0.1:0`. One binary
//! rather than one per file keeps link time down and lets nextest run the
//! scenarios in parallel as separate processes.
//!
//! Rules for scenarios (see `/work/shared/STYLE.md` habit 8): call
//! `treem_tests::init_tracing()` first; wait on conditions with
//! `treem_tests::wait_for` and deadlines of seconds (CI is a loaded 2-core
//! machine), never fixed sleeps; each test owns its servers and directories.
//!
//! Run: `scripts/test.sh` (everything) or `cargo nextest run -p treem-tests`.

/// Self-test of the shared harness: the server starts with the deploy
/// config, de-duplicates, and keeps its stream across stop and kill -9.
mod harness;

/// Starting the parts of a system for a scenario.
mod system;

/// Bad input at the ward's HTTP, CLI and CSV, and at the town and province APIs.
mod bad_input;
/// The benchmark suite at its smallest size: every stage runs and gives a figure.
mod bench_smoke;
/// Headless Chromium: a ward form filled and submitted, the figure on the town dashboard, reports downloaded, screenshots.
mod browser;
/// The town and province on a 3-node JetStream cluster (R3): a follower, then the stream leader, killed while wards replicate.
mod cluster;
/// kill -9 of a ward binary mid-recording and mid-replication, and of the town mid-stream.
mod crash;
/// Duplicates, reordering, a town restart, a poison message, rebuild = live.
mod delivery;
/// The stream loses acknowledged events (restored store), a full disk at the ward, an offline ward beyond the dedup window.
mod durability;
/// A short seeded fault-injection run of the whole system: every invariant holds after it.
mod faults;
/// Recorded at a ward → town API → province, values computed by hand.
mod flow;
/// HTTP: who may read what — tokens, roles, revocation, the audit log, refusals that leak nothing.
mod http_auth;
/// NATS: every service on its own identity over TLS; a ward cannot publish as, or read, another ward; the province reads no event; rotation and revocation at a reload.
mod nats_security;
/// A ward records while NATS is down; everything arrives once.
mod offline;
/// Poison on the ward stream: parked with the reason, dead-lettered, never
/// blocking; `treem-town parked` lists, shows and replays once fixed.
mod poison;
/// Canary identities never leave the ward (NATS tap on `>`, every file and
/// API answer of town and province); consent withdrawal; small-count suppression.
mod privacy;
/// Provenance: forged, altered, replayed, unsigned events parked and visible in sync status, the
/// real ones applied; a key rotated mid-stream; an unregistered ward parked until `keys add`.
mod provenance;
/// The web pages over HTTP: the ward's form reaches the town dashboard; sign-in, languages, office filter, case summaries by role; evaluation reports as HTML, CSV, XLSX and PDF; the stipend; the province dashboard.
mod web;
