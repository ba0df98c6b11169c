//! Shared harness of the treem integration tests (`tests/tests/e2e`).
//!
//! This crate owns what every end-to-end scenario needs and nothing
//! scenario-specific:
//!
//! - [`NatsServer`]: the one harness that runs a real `nats-server` with the
//!   JetStream configuration `deploy/nats/treem.conf` ships, on a port the OS
//!   picks, with its own store directory; stop, kill -9 and restart on the
//!   same port (module [`nats`]).
//! - [`NatsCluster`]: three such servers as one JetStream cluster with the
//!   configurations of `deploy/nats/cluster/`; kill, restart and find the
//!   leader of a stream (module [`cluster`]).
//! - [`wait_for`]: waiting on a condition with a deadline. Tests never sleep
//!   a fixed time; they poll what they expect and fail with a message naming
//!   it.
//! - [`init_tracing`]: logs of the code under test, captured per test and
//!   filtered by `RUST_LOG`.
//! - [`repo_root`]: where `deploy/`, `scripts/` and `.tools/` are.
//! - [`bench`]: the benchmark suite (`treem-bench`, `scripts/bench.sh`)
//!   and its smoke test's entry point.
//! - [`browser`]: headless Chromium under chromedriver (WebDriver) for the
//!   browser tests, with screenshots under `target/screenshots`.
//! - [`auth`]: the admin API token of the test process, given to the town
//!   and province data dirs a scenario uses, and a client that sends it.
//! - [`provenance`]: ward signing keys made and registered at the town as
//!   an operator does, and a signer for envelopes published by hand.
//! - [`SecureNats`]: a server with the secure configuration of
//!   `deploy/nats/secure/` — TLS with a CA made for the test, and the
//!   identities and permissions `treem-nats-auth` generates (module [`secure`]).
//!
//! It does not mock NATS, sled or HTTP, and it does not start treem's
//! services: scenarios call each service's library `start(config)` in
//! process, with `127.0.0.1:0` addresses and temporary data directories.
//!
//! The tests need a `nats-server` >= 2.10: `scripts/install-nats.sh`
//! installs the pinned one; without it they fail loudly, never skip.

pub mod auth;
pub mod bench;
pub mod browser;
pub mod cluster;
pub mod faults;
pub mod nats;
pub mod provenance;
pub mod proxy;
pub mod secure;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant};

pub use cluster::NatsCluster;
pub use nats::NatsServer;
pub use secure::SecureNats;

/// How often [`wait_for`] re-checks its condition.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// The root of the treem repository (the workspace directory).
pub fn repo_root() -> PathBuf {
    // This crate lives in <repo>/tests.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate sits one level below the repository root").to_path_buf()
}

/// Polls `check` every ~50 ms until it returns `Some(value)`, and returns the
/// value. Panics with `what` if that does not happen within `deadline`
/// (measured from the call, including the time `check` itself takes: a check
/// that hangs fails the wait too).
///
/// Choose deadlines for a loaded 2-core CI machine: seconds, not
/// milliseconds. A passing test only waits as long as it needs.
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) {
/// use std::time::Duration;
/// let js = async_nats::jetstream::new(client);
/// let messages = treem_tests::wait_for("3 messages in stream S", Duration::from_secs(10), || {
///     let js = js.clone();
///     async move {
///         let mut stream = js.get_stream("S").await.ok()?;
///         let n = stream.info().await.ok()?.state.messages;
///         (n >= 3).then_some(n)
///     }
/// })
/// .await;
/// # let _ = messages;
/// # }
/// ```
pub async fn wait_for<F, Fut, T>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let left = deadline.saturating_sub(started.elapsed()).max(WAIT_POLL);
        match tokio::time::timeout(left, check()).await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(_) => panic!("timed out after {:?} waiting for {what} (a check did not return; {attempts} attempts)", started.elapsed()),
        }
        if started.elapsed() >= deadline {
            panic!("timed out after {:?} waiting for {what} ({attempts} attempts)", started.elapsed());
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Installs a `tracing` subscriber once per test process: output goes through
/// the test harness's capture (shown for failing tests), filtered by
/// `RUST_LOG` (default `info`, with async-nats's connection chatter at
/// `warn`). Plain text without colours, so captured output reads well in CI
/// logs. Call it first in every test; later calls do nothing.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
        // try_init: another subscriber may already be global (e.g. a test
        // that set its own); that one wins.
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().with_ansi(false).try_init();
    });
}
