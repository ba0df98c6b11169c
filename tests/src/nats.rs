//! The one `nats-server` harness of the treem integration tests.
//!
//! [`NatsServer`] runs the real `nats-server` binary, never a mock, with the
//! configuration that `deploy/nats/treem.conf` ships (STYLE.md habit 9:
//! deployment files are tested), on a port the OS picks, with a JetStream
//! store of its own in a temporary directory. Tests can stop it gracefully,
//! kill it with SIGKILL, and restart it on the *same* port with the *same*
//! store, which is how outages and crashes of the town's server are staged.
//!
//! # Finding the binary
//!
//! In order: the path in `TREEM_NATS_SERVER` (must exist when set),
//! `<repo>/.tools/venv/bin/nats-server` (what `scripts/install-nats.sh`
//! installs), then `nats-server` on `PATH`. Without any of them every test
//! that needs NATS panics with a message saying to run
//! `scripts/install-nats.sh`; it never skips silently. Versions below 2.10
//! are refused the same way.
//!
//! # Finding the port
//!
//! The server is started with `-p -1`, so nats-server itself binds a free
//! port, and the harness reads the port back from the server's log line
//! `Listening for client connections on 127.0.0.1:<port>`. The alternative,
//! binding port 0 in the test, reading the port and releasing it before the
//! server binds it, leaves a window in which another of the many tests
//! running at once can take the same port; with `-p -1` the port is never
//! free between being chosen and being served. Only [`NatsServer::restart`]
//! asks for a fixed port (the one from the first start), and it retries while
//! that port is briefly busy.
//!
//! The server's stdout and stderr go to a log file in its temporary directory
//! rather than to a pipe: a pipe nobody drains stalls the server once it
//! fills, and a draining task would die with the test's tokio runtime. The
//! file also survives a failing test: when a test panics, the directory is
//! kept and the tail of the log is printed.
//!
//! # Layout of the temporary directory
//!
//! ```text
//! treem-nats-XXXXXX/
//!   store/                  -sd: JetStream's store (store/jetstream/...)
//!   nats-server.<n>.log     stdout+stderr of the n-th start (1, 2, ...)
//! ```
//!
//! # Invariants
//!
//! - A `NatsServer` returned by [`NatsServer::start`] or after
//!   [`NatsServer::restart`] answers JetStream API requests: readiness is a
//!   successful `$JS.API.INFO` round trip, not just an open port.
//! - Dropping it kills the process (SIGKILL), reaps it, then removes the
//!   directory; no server outlives its test.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::repo_root;

/// Environment variable naming the nats-server binary to use.
pub const NATS_SERVER_ENV: &str = "TREEM_NATS_SERVER";

/// How long a start or restart may take before the test fails. Generous on
/// purpose: CI is a loaded 2-core machine running many tests at once.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// How long a graceful stop may take before the harness falls back to
/// SIGKILL (and says so).
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Interval between two looks at the log file or the process.
const POLL: Duration = Duration::from_millis(20);

/// The log line nats-server prints once its client listener is bound.
const LISTENING: &str = "Listening for client connections on ";

/// Oldest nats-server treem supports (JetStream `sync_interval`, the syntax of
/// deploy/nats/treem.conf).
const MIN_VERSION: (u32, u32) = (2, 10);

/// A running `nats-server` with JetStream, owned by one test.
///
/// ```no_run
/// # async fn demo() {
/// let mut server = treem_tests::NatsServer::start().await;
/// let client = server.connect().await;
/// // ... publish, consume ...
/// server.kill().await; // crash it
/// server.restart().await; // same port, same store
/// # drop(client);
/// # }
/// ```
pub struct NatsServer {
    binary: PathBuf,
    config: PathBuf,
    /// Removed on drop, after the process is dead. `None` only during drop.
    dir: Option<TempDir>,
    store_dir: PathBuf,
    port: u16,
    /// The current process; `None` after `stop()` / `kill()`.
    child: Option<Child>,
    /// How many times a process was started (names the log files).
    starts: u32,
}

impl NatsServer {
    /// Starts a fresh server with an empty store on a port the OS picks, and
    /// waits until it answers JetStream requests. Panics (with the server's
    /// log) if it does not within 30 s.
    pub async fn start() -> NatsServer {
        let binary = nats_server_binary().to_path_buf();
        let config = repo_root().join("deploy/nats/treem.conf");
        assert!(config.is_file(), "the NATS config the tests load is missing: {} (it ships in deploy/nats/)", config.display());
        let dir = tempfile::Builder::new().prefix("treem-nats-").tempdir().expect("create a temporary directory for nats-server");
        let store_dir = dir.path().join("store");
        std::fs::create_dir_all(&store_dir).expect("create the JetStream store directory");
        let mut server = NatsServer { binary, config, dir: Some(dir), store_dir, port: 0, child: None, starts: 0 };
        server.launch(None).await;
        server
    }

    /// `nats://127.0.0.1:<port>`, stable across restarts.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port, stable across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (`-sd`), stable across restarts.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The log file of the current (or last) process.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(format!("nats-server.{}.log", self.starts))
    }

    /// Whether the process is alive (it may have been stopped or killed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// A client connected to this server. It reconnects forever, so it rides
    /// out a `kill()` / `restart()` of the server like a real service would.
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .name("treem-tests")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connect to nats-server at {}: {e}", self.url()))
    }

    /// Graceful stop: SIGTERM, then wait until the process has exited (so
    /// JetStream has flushed and closed its files). Falls back to SIGKILL
    /// after 30 s. Does nothing if the server is not running.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        send_sigterm(&child);
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    tracing::info!(port = self.port, %status, elapsed_ms = started.elapsed().as_millis() as u64, "nats-server stopped");
                    return;
                }
                Ok(None) if started.elapsed() < STOP_DEADLINE => tokio::time::sleep(POLL).await,
                Ok(None) => {
                    tracing::warn!(port = self.port, "nats-server ignored SIGTERM for 30 s; killing it");
                    reap_killed(&mut child);
                    return;
                }
                Err(e) => panic!("wait for nats-server (pid {}): {e}", child.id()),
            }
        }
    }

    /// Crash: SIGKILL, as `kill -9` would, and reap the process. Nothing is
    /// flushed beyond what the server had already written. Does nothing if
    /// the server is not running.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            reap_killed(&mut child);
            tracing::info!(port = self.port, "nats-server killed (SIGKILL)");
        }
    }

    /// Starts the server again on the same port with the same store, after
    /// stopping it gracefully if it is still running, and waits until it
    /// answers JetStream requests. Retries while the port is briefly taken.
    pub async fn restart(&mut self) {
        self.stop().await;
        let port = self.port;
        self.launch(Some(port)).await;
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the temporary directory lives as long as the server").path()
    }

    /// Spawns the process (on `port`, or on an OS-chosen port when `None`)
    /// and waits until it is ready, retrying while a fixed port is in use.
    async fn launch(&mut self, port: Option<u16>) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            self.starts += 1;
            let log_path = self.log_path();
            let mut child = self.spawn(port, &log_path);
            match wait_listening(&mut child, &log_path, deadline).await {
                Ok(bound) => {
                    if let Some(wanted) = port {
                        assert_eq!(bound, wanted, "nats-server bound another port than asked; see {}", log_path.display());
                    }
                    self.port = bound;
                    self.child = Some(child);
                    break;
                }
                Err(Exit::PortBusy) if Instant::now() < deadline => {
                    tracing::info!(port = ?port, "port busy, retrying nats-server start");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(failure) => {
                    reap_killed(&mut child);
                    panic!(
                        "nats-server ({}) did not start: {failure}\n--- {} ---\n{}",
                        self.binary.display(),
                        log_path.display(),
                        log_tail(&log_path)
                    );
                }
            }
        }
        self.wait_ready(deadline).await;
        tracing::info!(port = self.port, store_dir = %self.store_dir.display(), start = self.starts, "nats-server ready");
    }

    fn spawn(&self, port: Option<u16>, log_path: &Path) -> Child {
        let log = File::create(log_path).expect("create the nats-server log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
        Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .arg("-sd")
            .arg(&self.store_dir)
            .args(["-p", &port_arg])
            // Anything relative in the config resolves inside the tempdir,
            // never in the repo.
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()))
    }

    /// Polls until a client can connect and a JetStream API request succeeds.
    async fn wait_ready(&mut self, deadline: Instant) {
        let addr = format!("127.0.0.1:{}", self.port);
        let mut last_error = String::from("no attempt yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "nats-server exited ({status}) while starting up\n--- {} ---\n{}",
                    self.log_path().display(),
                    log_tail(&self.log_path())
                );
            }
            match probe(&addr).await {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "nats-server on port {} did not answer JetStream requests within {START_DEADLINE:?}; last error: {last_error}\n--- {} ---\n{}",
            self.port,
            self.log_path().display(),
            log_tail(&self.log_path())
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            reap_killed(&mut child);
        }
        if std::thread::panicking() && self.dir.is_some() {
            // Keep the evidence of a failing test.
            let log_path = self.log_path();
            eprintln!(
                "nats-server (port {}) kept for inspection at {}\n--- tail of {} ---\n{}",
                self.port,
                self.dir().display(),
                log_path.display(),
                log_tail(&log_path)
            );
            if let Some(dir) = self.dir.as_mut() {
                dir.disable_cleanup(true);
            }
        }
        self.dir.take();
    }
}

/// Why a start did not reach the listening line.
#[derive(Debug)]
enum Exit {
    /// The fixed port of a restart was in use; worth retrying.
    PortBusy,
    /// The process exited for another reason.
    Exited(ExitStatus),
    /// Nothing happened before the deadline.
    Timeout,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::PortBusy => write!(f, "its port stayed in use until the deadline"),
            Exit::Exited(status) => write!(f, "it exited ({status})"),
            Exit::Timeout => write!(f, "no '{LISTENING}' line within {START_DEADLINE:?}"),
        }
    }
}

/// Watches the log until the listening line shows up, and returns its port.
async fn wait_listening(child: &mut Child, log_path: &Path, deadline: Instant) -> Result<u16, Exit> {
    loop {
        let log = read_log(log_path);
        if let Some(port) = listening_port(&log) {
            return Ok(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Re-read: the process may have written its last lines and exited
            // between the read above and `try_wait`.
            if read_log(log_path).contains("address already in use") {
                return Err(Exit::PortBusy);
            }
            return Err(Exit::Exited(status));
        }
        if Instant::now() >= deadline {
            return Err(Exit::Timeout);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The port of the first `Listening for client connections on <host>:<port>`
/// line, if the log has one.
fn listening_port(log: &str) -> Option<u16> {
    // Only complete lines: a line still being written could end in a prefix
    // of the port.
    let line = log.split_inclusive('\n').find(|l| l.ends_with('\n') && l.contains(LISTENING))?;
    let addr = line.split(LISTENING).nth(1)?.trim();
    addr.rsplit(':').next()?.parse().ok()
}

/// One readiness probe: TCP, then a NATS connection, then `$JS.API.INFO`.
async fn probe(addr: &str) -> Result<(), String> {
    let step = Duration::from_secs(5);
    tokio::time::timeout(step, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "TCP connect timed out".to_string())?
        .map_err(|e| format!("TCP connect: {e}"))?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(step)
        .connect(format!("nats://{addr}"))
        .await
        .map_err(|e| format!("NATS connect: {e}"))?;
    let js = async_nats::jetstream::new(client);
    tokio::time::timeout(step, js.query_account())
        .await
        .map_err(|_| "JetStream account info timed out".to_string())?
        .map_err(|e| format!("JetStream account info: {e}"))?;
    Ok(())
}

/// SIGKILL and reap. Reaping right after SIGKILL takes microseconds, so the
/// blocking `wait` is fine even on an async worker (and needed in `Drop`).
pub(crate) fn reap_killed(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        // Err only if it already exited, which is what we want.
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Graceful stop request. std offers only SIGKILL (`Child::kill`).
#[allow(unsafe_code)]
pub(crate) fn send_sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The
    // pid cannot have been reused: we hold the un-reaped `Child`, so the pid
    // stays ours (a zombie at worst) until we wait on it.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc != 0 {
        tracing::warn!(pid, error = %std::io::Error::last_os_error(), "SIGTERM to nats-server failed");
    }
}

pub(crate) fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// The last 40 lines of a log, for panic messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let log = read_log(path);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The nats-server binary, found once per test process (see the module doc).
pub fn nats_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let binary = find_binary();
        check_version(&binary);
        binary
    })
}

fn find_binary() -> PathBuf {
    if let Some(value) = std::env::var_os(NATS_SERVER_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        assert!(
            path.is_file(),
            "{NATS_SERVER_ENV}={} does not exist. Run scripts/install-nats.sh (it prints the path to use) or unset {NATS_SERVER_ENV}.",
            path.display()
        );
        return path;
    }
    let installed = repo_root().join(".tools/venv/bin/nats-server");
    if installed.is_file() {
        return installed;
    }
    if let Some(path) =
        std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|dir| dir.join("nats-server")).find(|p| p.is_file())
    {
        return path;
    }
    panic!(
        "\n\n*** nats-server NOT FOUND ***\n\
         The treem integration tests run a real nats-server (>= 2.10) and none was found:\n\
         - ${NATS_SERVER_ENV} is not set,\n\
         - {} does not exist,\n\
         - no nats-server on PATH.\n\
         Fix: run `scripts/install-nats.sh` from the repository root (it installs a pinned\n\
         nats-server into .tools/venv), or set {NATS_SERVER_ENV}=/path/to/nats-server.\n\n",
        installed.display()
    );
}

fn check_version(binary: &Path) {
    let output = Command::new(binary).arg("--version").output().unwrap_or_else(|e| panic!("run `{} --version`: {e}", binary.display()));
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let version = parse_version(&text).unwrap_or_else(|| panic!("`{} --version` printed no version: {text:?}", binary.display()));
    assert!(
        (version.0, version.1) >= MIN_VERSION,
        "{} is nats-server v{}.{}.{}; treem needs >= v{}.{}. Run scripts/install-nats.sh.",
        binary.display(),
        version.0,
        version.1,
        version.2,
        MIN_VERSION.0,
        MIN_VERSION.1
    );
}

/// `nats-server: v2.15.1` → (2, 15, 1).
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    // The first "v" followed by a digit ("server" has a "v" too).
    let start =
        text.char_indices().zip(text.chars().skip(1)).find(|((_, c), next)| *c == 'v' && next.is_ascii_digit()).map(|((i, _), _)| i + 1)?;
    let mut parts = text[start..].split(|c: char| !c.is_ascii_digit()).take(3).map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let log = "[1] 2026/11/30 00:46:32.300065 [INF] Took 1.3ms to start JetStream\n\
                   [1] 2026/11/30 00:46:32.301034 [INF] Listening for client connections on 127.0.0.1:37489\n\
                   [1] 2026/11/30 00:46:32.301060 [INF] Server is ready\n";
        assert_eq!(listening_port(log), Some(37489));
        assert_eq!(listening_port("[INF] Starting nats-server\n"), None);
        // A line still being written (no newline yet) is not trusted.
        assert_eq!(listening_port("[INF] Listening for client connections on 127.0.0.1:374"), None);
    }

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.25"), Some((2, 9, 25)));
        assert_eq!(parse_version("nats-server: v2.11.0-RC.1"), Some((2, 11, 0)));
        assert_eq!(parse_version("garbage"), None);
    }
}
