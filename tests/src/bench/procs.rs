//! treem's services as their release binaries, for the stages that measure
//! a whole process: its peak memory (`VmHWM`), and the system-level stages
//! where each service runs in its own process as it does in an office.
//!
//! A [`Service`] is spawned with `serve` and its configuration in
//! `TREEM_<SERVICE>_*` variables (HTTP on `127.0.0.1:0`, the bound address
//! read back from `<data_dir>/http.addr`), its output appended to
//! `<run>/logs/<name>.log`. [`Service::stop`] sends SIGTERM and waits for
//! the graceful exit; dropping a running one kills it.
//!
//! [`Viewer`] is the one API token of a run (role `viewer`, what a town or
//! province dashboard holds), given to every town and province data dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};
use treem_auth::{Role, Token, TokenStore};

use super::{stats, wait_until};

/// How long a service may take to serve HTTP after it was spawned.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a graceful stop may take before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// One service process.
pub struct Service {
    pub name: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// `127.0.0.1:<port>` once it serves HTTP.
    pub addr: String,
    child: Child,
}

impl Service {
    /// Spawns `<bin_dir>/<binary> serve` with `env` and waits until it serves `/health`.
    pub async fn start(
        bin_dir: &Path,
        binary: &str,
        name: &str,
        data_dir: &Path,
        logs: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let mut service = Service::spawn(bin_dir, binary, name, data_dir, logs, env)?;
        service.wait_http().await?;
        Ok(service)
    }

    /// Spawns the process without waiting for it (see [`Service::wait_http`]).
    pub fn spawn(
        bin_dir: &Path,
        binary: &str,
        name: &str,
        data_dir: &Path,
        logs: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let program = bin_dir.join(binary);
        if !program.is_file() {
            bail!("{} is missing: build the release binaries first (cargo build --release --bins), or pass --bin-dir", program.display());
        }
        std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
        let _ = std::fs::remove_file(data_dir.join("http.addr"));
        std::fs::create_dir_all(logs)?;
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = Command::new(&program);
        for var in ["TREEM_WARD_CONFIG", "TREEM_TOWN_CONFIG", "TREEM_PROVINCE_CONFIG"] {
            cmd.env_remove(var);
        }
        cmd.arg("serve")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", std::env::var("TREEM_BENCH_SERVICE_LOG").unwrap_or_else(|_| "info,async_nats=warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("spawn {}", program.display()))?;
        Ok(Service { name: name.into(), data_dir: data_dir.into(), log_path, addr: String::new(), child })
    }

    /// Waits until the process serves `/health` at the address in its `http.addr`.
    pub async fn wait_http(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let file = self.data_dir.join("http.addr");
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited at start ({status}); see {}", self.name, self.log_path.display());
        }
        let addr = wait_until(
            &format!("{} serves HTTP (log: {})", self.name, self.log_path.display()),
            START_DEADLINE,
            Duration::from_millis(20),
            || {
                let (http, file) = (http.clone(), file.clone());
                async move {
                    let addr = std::fs::read_to_string(&file).ok()?;
                    let ok = http.get(format!("http://{addr}/health")).send().await.ok()?.status().is_success();
                    ok.then_some(addr)
                }
            },
        )
        .await?;
        self.addr = addr;
        Ok(())
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().with_context(|| format!("{} is no longer running; see {}", self.name, self.log_path.display()))
    }

    /// Peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        stats::peak_rss(self.pid()?)
    }

    /// SIGTERM, then waits for the exit (SIGKILL after a minute).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        if !sent.success() {
            bail!("kill -TERM {pid} ({}) failed", self.name);
        }
        match tokio::time::timeout(STOP_DEADLINE, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    tracing::warn!(service = %self.name, %status, "service exited with an error after SIGTERM");
                }
            }
            Err(_) => {
                tracing::warn!(service = %self.name, "no exit a minute after SIGTERM; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// The API token of a run: role `viewer`.
pub struct Viewer {
    token: Token,
}

impl Viewer {
    pub fn new() -> anyhow::Result<Viewer> {
        Ok(Viewer { token: Token::generate().map_err(|e| anyhow::anyhow!("generate a token: {e}"))? })
    }

    /// Gives the token to the town or province whose data dir is `data_dir`.
    pub fn provision(&self, data_dir: &Path) -> anyhow::Result<()> {
        let store =
            TokenStore::open(&treem_auth::auth_dir(data_dir)).map_err(|e| anyhow::anyhow!("token store of {}: {e}", data_dir.display()))?;
        store.add(&self.token, "treem bench", Role::Viewer).map_err(|e| anyhow::anyhow!("add the bench token: {e}"))?;
        Ok(())
    }

    /// A new HTTP client (its own connection pool) sending the token.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))?;
        value.set_sensitive(true);
        let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
        Ok(reqwest::Client::builder().default_headers(headers).timeout(Duration::from_secs(60)).build()?)
    }
}
