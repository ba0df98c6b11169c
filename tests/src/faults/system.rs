//! The system under test, as real processes: one `nats-server`
//! ([`NatsServer`]), the town, the province and N wards as their release
//! binaries (`treem-town serve`, …), each client behind its own [`Proxy`].
//!
//! ```text
//!  ward i ──▶ proxy ward-i ──┐
//!  town   ──▶ proxy town   ──┼──▶ nats-server (JetStream, own store, fixed port)
//!  province ▶ proxy province ┘          ▲
//!  harness (streams, redelivery) ───────┘ (direct)
//! ```
//!
//! The town has one NATS connection for both directions (ward events in,
//! snapshots out), and in a one-server office the province's stream lives
//! on the same server. So "the link between the town and the province" is
//! broken either at the town's proxy (the town can neither consume nor
//! forward; its outbox keeps the snapshots) or at the province's (the
//! snapshots wait in the province's stream). The schedule does both.
//!
//! Every service binds its HTTP API on port 0 of an address of its own
//! (ward i on `127.0.1.<i+1>`, the town on `127.0.2.1`, the province on
//! `127.0.2.2`) and writes the bound address to `<data_dir>/http.addr`.
//! Own addresses matter under kill -9: a restarted ward gets a new port, and
//! a writer still holding the old address can then only reach that same
//! ward, never another service that happened to get the freed port.
//!
//! Layout of the run directory:
//!
//! ```text
//! <run>/ward-25320/        data_dir of the ward (sled log, http.addr)
//! <run>/town/, <run>/province/
//! <run>/logs/<service>.log  stdout+stderr of every start of the service, appended
//! <run>/rebuild-<n>/        the store `treem-town rebuild` builds at the end
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio::time::Instant;
use treem_proto::subject;

use crate::NatsServer;
use crate::proxy::Proxy;

use super::WARDS;
use super::schedule::{Link, Service, SplitMix64};

/// How long a service may take to serve HTTP after a (re)start.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// Timeout of one harness request to NATS.
const NATS_STEP: Duration = Duration::from_secs(5);

/// The province and town every run uses (Bình Phước, Bình Long).
pub const PROVINCE: &str = "70";
pub const TOWN: &str = "690";

/// One service process: how to start it, and the running child.
pub struct Proc {
    pub service: Service,
    program: PathBuf,
    env: Vec<(String, String)>,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Starts so far (the first included).
    pub starts: u32,
    /// Exits nobody asked for, with their status: each one is a finding.
    pub unexpected_exits: Vec<String>,
}

impl Proc {
    fn new(service: Service, program: PathBuf, env: Vec<(String, String)>, data_dir: PathBuf, logs: &Path) -> Proc {
        let log_path = logs.join(format!("{}.log", service.name()));
        Proc { service, program, env, data_dir, log_path, child: None, starts: 0, unexpected_exits: Vec::new() }
    }

    pub fn addr_file(&self) -> PathBuf {
        self.data_dir.join("http.addr")
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The service's environment (its `TREEM_*` configuration).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The address in `http.addr`, if the file is there.
    pub fn addr(&self) -> Option<String> {
        read_addr(&self.addr_file())
    }

    /// A command for the service's binary with its environment, output
    /// appended to its log.
    pub fn command(&self) -> anyhow::Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let mut cmd = Command::new(&self.program);
        // A configuration file named in the harness's own environment must
        // not leak into the system under test.
        for var in ["TREEM_WARD_CONFIG", "TREEM_TOWN_CONFIG", "TREEM_PROVINCE_CONFIG"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", std::env::var("TREEM_FAULTS_SERVICE_LOG").unwrap_or_else(|_| "info,async_nats=warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Starts the process and waits until it serves `/health`; returns its
    /// address. Notes an exit nobody asked for first.
    pub async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<String> {
        self.note_exit();
        if self.child.is_some() {
            bail!("{} is already running", self.service.name());
        }
        let _ = std::fs::remove_file(self.addr_file());
        std::fs::create_dir_all(&self.data_dir)?;
        let child = self.command()?.arg("serve").spawn().with_context(|| format!("spawn {}", self.program.display()))?;
        self.child = Some(child);
        self.starts += 1;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(addr) = self.addr()
                && let Ok(Ok(r)) = tokio::time::timeout(NATS_STEP, http.get(format!("http://{addr}/health")).send()).await
                && r.status().is_success()
            {
                return Ok(addr);
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!("{} exited while starting ({status}); see {}", self.service.name(), self.log_path.display());
            }
            if Instant::now() > deadline {
                bail!("{} did not serve HTTP within {START_DEADLINE:?}; see {}", self.service.name(), self.log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9, and reap. Does nothing if it is not running.
    pub async fn kill(&mut self) {
        self.note_exit();
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let _ = std::fs::remove_file(self.addr_file());
            tracing::info!(service = %self.service.name(), "killed (SIGKILL)");
        }
    }

    /// SIGTERM, wait for a graceful exit (SIGKILL after 30 s). Returns
    /// whether it exited successfully on its own.
    pub async fn stop(&mut self) -> bool {
        self.note_exit();
        let Some(mut child) = self.child.take() else { return false };
        if let Some(pid) = child.id() {
            sigterm(pid);
        }
        match tokio::time::timeout(STOP_DEADLINE, child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                false
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.note_exit();
        self.child.is_some()
    }

    /// If the process exited by itself, records it and forgets the child.
    fn note_exit(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            let note = format!("{} exited by itself ({status}); see {}", self.service.name(), self.log_path.display());
            tracing::error!("{note}");
            self.unexpected_exits.push(note);
            self.child = None;
        }
    }
}

/// Graceful stop request (std and tokio offer only SIGKILL).
#[allow(unsafe_code)]
fn sigterm(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The
    // pid is still ours: the child has not been reaped (we hold it).
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

pub fn read_addr(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The whole system under test.
pub struct Rig {
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    pub wards: usize,
    pub nats: Mutex<NatsServer>,
    /// Direct URL of nats-server (no proxy), stable across restarts.
    pub nats_url: String,
    /// The harness's own direct connection (reconnects forever).
    pub client: async_nats::Client,
    pub proxies: BTreeMap<Link, Proxy>,
    pub procs: BTreeMap<Service, Mutex<Proc>>,
    pub http: reqwest::Client,
}

impl Rig {
    /// Starts nats-server, the proxies, the province, the town and `wards`
    /// wards, and waits until each serves HTTP and both streams exist.
    pub async fn start(dir: &Path, bin_dir: &Path, wards: usize, seed: u64) -> anyhow::Result<Arc<Rig>> {
        let nats = NatsServer::start().await;
        let nats_url = nats.url();
        let client = nats.connect().await;
        let upstream: SocketAddr = ([127, 0, 0, 1], nats.port()).into();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut rng = SplitMix64::new(seed ^ 0x5EED_F00D);
        let mut links: Vec<Link> = (0..wards).map(Link::Ward).collect();
        links.extend([Link::Town, Link::Province]);
        let mut proxies = BTreeMap::new();
        for link in links {
            proxies.insert(link, Proxy::start(&link.name(), upstream, rng.next_u64()).await?);
        }
        let bin = |name: &str| -> anyhow::Result<PathBuf> {
            let path = bin_dir.join(name);
            if !path.is_file() {
                bail!("{} is missing: build the service binaries first (cargo build --workspace --bins)", path.display());
            }
            Ok(path)
        };
        let s = |v: &Path| v.display().to_string();
        let mut procs = BTreeMap::new();
        let province_dir = dir.join("province");
        procs.insert(
            Service::Province,
            Proc::new(
                Service::Province,
                bin("treem-province")?,
                vec![
                    ("TREEM_PROVINCE_PROVINCE".into(), PROVINCE.into()),
                    ("TREEM_PROVINCE_DATA_DIR".into(), s(&province_dir)),
                    ("TREEM_PROVINCE_HTTP_ADDR".into(), "127.0.2.2:0".into()),
                    ("TREEM_PROVINCE_NATS_URL".into(), proxies[&Link::Province].url()),
                ],
                province_dir,
                &logs,
            ),
        );
        let town_dir = dir.join("town");
        procs.insert(
            Service::Town,
            Proc::new(
                Service::Town,
                bin("treem-town")?,
                vec![
                    ("TREEM_TOWN_PROVINCE".into(), PROVINCE.into()),
                    ("TREEM_TOWN_TOWN".into(), TOWN.into()),
                    ("TREEM_TOWN_DATA_DIR".into(), s(&town_dir)),
                    ("TREEM_TOWN_HTTP_ADDR".into(), "127.0.2.1:0".into()),
                    ("TREEM_TOWN_NATS_URL".into(), proxies[&Link::Town].url()),
                    // Small batches: more commits, so a kill -9 lands between more of them.
                    ("TREEM_TOWN_BATCH_SIZE".into(), "50".into()),
                    ("TREEM_TOWN_BACKOFF_MIN_MS".into(), "20".into()),
                    ("TREEM_TOWN_BACKOFF_MAX_MS".into(), "500".into()),
                ],
                town_dir,
                &logs,
            ),
        );
        for (i, ward) in WARDS.iter().enumerate().take(wards) {
            let data = dir.join(format!("ward-{ward}"));
            procs.insert(
                Service::Ward(i),
                Proc::new(
                    Service::Ward(i),
                    bin("treem-ward")?,
                    vec![
                        ("TREEM_WARD_PROVINCE".into(), PROVINCE.into()),
                        ("TREEM_WARD_TOWN".into(), TOWN.into()),
                        ("TREEM_WARD_WARD".into(), (*ward).into()),
                        ("TREEM_WARD_DATA_DIR".into(), s(&data)),
                        ("TREEM_WARD_HTTP_ADDR".into(), format!("127.0.1.{}:0", i + 1)),
                        ("TREEM_WARD_NATS_URL".into(), proxies[&Link::Ward(i)].url()),
                        ("TREEM_WARD_BACKOFF_MIN_MS".into(), "20".into()),
                        ("TREEM_WARD_BACKOFF_MAX_MS".into(), "500".into()),
                    ],
                    data,
                    &logs,
                ),
            );
        }
        // The town's and province's APIs need a token, as deployed
        // (SECURITY.md): they get the test process's admin token.
        crate::auth::provision(&dir.join("town"));
        crate::auth::provision(&dir.join("province"));
        // The wards' signing keys, registered at the town as an operator does.
        let ward_dirs: Vec<(PathBuf, &str)> = WARDS.iter().take(wards).map(|w| (dir.join(format!("ward-{w}")), *w)).collect();
        crate::provenance::provision(&dir.join("town"), &ward_dirs.iter().map(|(d, w)| (d.as_path(), *w)).collect::<Vec<_>>());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).default_headers(crate::auth::headers()).build()?;
        let rig = Rig {
            dir: dir.to_path_buf(),
            bin_dir: bin_dir.to_path_buf(),
            wards,
            nats: Mutex::new(nats),
            nats_url,
            client,
            proxies,
            procs: procs.into_iter().map(|(k, v)| (k, Mutex::new(v))).collect(),
            http,
        };
        // The province creates the projections stream, the town the events stream.
        for service in [Service::Province, Service::Town] {
            rig.procs[&service].lock().await.start(&rig.http).await?;
        }
        let js = jetstream::new(rig.client.clone());
        let streams = [subject::province_projections_stream(PROVINCE), subject::town_events_stream(PROVINCE, TOWN)];
        let deadline = Instant::now() + START_DEADLINE;
        for name in streams {
            while !matches!(tokio::time::timeout(NATS_STEP, js.get_stream(&name)).await, Ok(Ok(_))) {
                if Instant::now() > deadline {
                    bail!("stream {name} was not created within {START_DEADLINE:?}; see the logs in {}", logs.display());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for i in 0..wards {
            rig.procs[&Service::Ward(i)].lock().await.start(&rig.http).await?;
        }
        Ok(Arc::new(rig))
    }

    pub fn proc(&self, service: Service) -> &Mutex<Proc> {
        &self.procs[&service]
    }

    pub fn proxy(&self, link: Link) -> &Proxy {
        &self.proxies[&link]
    }

    /// The current HTTP address of a service, if it wrote one.
    pub async fn addr(&self, service: Service) -> Option<String> {
        self.proc(service).lock().await.addr()
    }

    /// Ends every fault: links healed, nats-server and every service
    /// running. Returns what could not be brought back.
    pub async fn heal_all(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for proxy in self.proxies.values() {
            proxy.heal();
        }
        {
            let mut nats = self.nats.lock().await;
            if !nats.is_running() {
                nats.restart().await;
            }
        }
        for proc in self.procs.values() {
            let mut proc = proc.lock().await;
            if !proc.is_running()
                && let Err(e) = proc.start(&self.http).await
            {
                problems.push(format!("could not restart {} after the faults: {e:#}", proc.service.name()));
            }
        }
        problems
    }

    /// Republishes raw copies of `n` random messages of `stream` (no
    /// `Nats-Msg-Id`, so JetStream stores them again and the consumers see
    /// them a second time). Returns how many were stored again; a message
    /// that cannot be read or stored (nats-server down) is skipped.
    pub async fn redeliver(&self, stream: &str, n: u32, rng: &mut SplitMix64) -> u64 {
        let js = jetstream::new(self.client.clone());
        let Ok(Ok(mut handle)) = tokio::time::timeout(NATS_STEP, js.get_stream(stream)).await else { return 0 };
        let Ok(Ok(info)) = tokio::time::timeout(NATS_STEP, handle.info()).await else { return 0 };
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if last == 0 || first > last {
            return 0;
        }
        let mut stored = 0;
        for _ in 0..n {
            let seq = first + rng.below(last - first + 1);
            let Ok(Ok(message)) = tokio::time::timeout(NATS_STEP, handle.get_raw_message(seq)).await else { continue };
            let Ok(Ok(ack)) = tokio::time::timeout(NATS_STEP, js.publish(message.subject.clone(), message.payload.clone())).await else {
                continue;
            };
            if matches!(tokio::time::timeout(NATS_STEP, ack).await, Ok(Ok(_))) {
                stored += 1;
            }
        }
        stored
    }

    /// The last sequence of `stream`, read directly (not through a proxy).
    pub async fn stream_last_seq(&self, stream: &str) -> Option<u64> {
        let js = jetstream::new(self.client.clone());
        let mut handle = tokio::time::timeout(NATS_STEP, js.get_stream(stream)).await.ok()?.ok()?;
        Some(tokio::time::timeout(NATS_STEP, handle.info()).await.ok()?.ok()?.state.last_sequence)
    }

    /// What JetStream holds for the town: the events stream's state and the
    /// town's durable consumer (for the report of a run that did not converge).
    pub async fn stream_diagnosis(&self) -> String {
        let js = jetstream::new(self.client.clone());
        let name = subject::town_events_stream(PROVINCE, TOWN);
        let Ok(Ok(mut stream)) = tokio::time::timeout(NATS_STEP, js.get_stream(&name)).await else {
            return format!("stream {name} unreadable");
        };
        let state = match tokio::time::timeout(NATS_STEP, stream.info()).await {
            Ok(Ok(info)) => format!(
                "stream {name}: first {} last {} messages {} deleted {}",
                info.state.first_sequence,
                info.state.last_sequence,
                info.state.messages,
                info.state.deleted_count.unwrap_or(0)
            ),
            _ => format!("stream {name}: no info"),
        };
        let consumer = subject::town_consumer(TOWN);
        let consumer = match tokio::time::timeout(NATS_STEP, stream.consumer_info(&consumer)).await {
            Ok(Ok(c)) => format!(
                "consumer {consumer}: delivered stream seq {} ack floor {} pending {} ack pending {} redelivered {} waiting {}",
                c.delivered.stream_sequence,
                c.ack_floor.stream_sequence,
                c.num_pending,
                c.num_ack_pending,
                c.num_redelivered,
                c.num_waiting
            ),
            Ok(Err(e)) => format!("consumer {consumer}: {e}"),
            Err(_) => format!("consumer {consumer}: timed out"),
        };
        format!("{state}; {consumer}")
    }

    /// Where ward `ward`'s event `seq` is in the town's stream, if anywhere
    /// (for the report of a run where the town waits for it): scans the
    /// ward's subject with an ephemeral consumer.
    pub async fn locate(&self, ward: &str, seq: u64) -> String {
        let js = jetstream::new(self.client.clone());
        let name = subject::town_events_stream(PROVINCE, TOWN);
        let scan = async {
            let stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::Config {
                    filter_subject: subject::ward_events_filter(PROVINCE, TOWN, ward),
                    deliver_policy: jetstream::consumer::DeliverPolicy::All,
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    inactive_threshold: Duration::from_secs(60),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let mut found = Vec::new();
            loop {
                let mut batch =
                    consumer.fetch().max_messages(1000).expires(Duration::from_secs(1)).messages().await.map_err(|e| e.to_string())?;
                let mut got = 0;
                let mut pending = 0;
                while let Some(Ok(m)) = futures::StreamExt::next(&mut batch).await {
                    got += 1;
                    let info = m.info().map_err(|e| e.to_string())?;
                    pending = info.pending;
                    if treem_proto::Envelope::decode(&m.payload).is_ok_and(|env| env.seq == seq) {
                        found.push(info.stream_sequence);
                    }
                }
                if got == 0 || pending == 0 {
                    return Ok::<_, String>(found);
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(60), scan).await {
            Ok(Ok(found)) if found.is_empty() => format!("ward {ward} seq {seq} is NOT in stream {name}"),
            Ok(Ok(found)) => format!("ward {ward} seq {seq} is in stream {name} at stream seq {found:?}"),
            Ok(Err(e)) => format!("cannot scan stream {name} for ward {ward} seq {seq}: {e}"),
            Err(_) => format!("scanning stream {name} for ward {ward} seq {seq} timed out"),
        }
    }

    /// Copies nats-server's logs and store into the run directory (kept
    /// after a failing run; the server's own directory is not).
    pub async fn keep_nats_evidence(&self) {
        let nats = self.nats.lock().await;
        let target = self.dir.join("nats");
        let _ = std::fs::create_dir_all(&target);
        if let Some(dir) = nats.log_path().parent()
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".log") {
                    let _ = std::fs::copy(entry.path(), target.join(entry.file_name()));
                }
            }
        }
        let _ = std::process::Command::new("cp").arg("-r").arg(nats.store_dir()).arg(target.join("store")).status();
    }

    /// Kills every service (the nats-server and the proxies go with the rig).
    pub async fn kill_all(&self) {
        for proc in self.procs.values() {
            proc.lock().await.kill().await;
        }
    }
}

/// Where the workspace binaries are for a program running from the target
/// directory: next to it (a binary in `target/debug/`) or one level up (a
/// test in `target/debug/deps/`).
pub fn bin_dir_near_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running program");
    let dir = exe.parent().expect("the program's directory").to_path_buf();
    if dir.join("treem-town").is_file() {
        return dir;
    }
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}
