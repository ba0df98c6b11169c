//! A three-node JetStream cluster for the integration tests.
//!
//! [`NatsCluster`] runs three real `nats-server` processes on loopback with
//! the configurations that `deploy/nats/cluster/` ships (`n1.conf`,
//! `n2.conf`, `n3.conf`, which include `common.conf`; STYLE.md habit 9:
//! deployment files are tested), each with its own JetStream store in a
//! temporary directory. Tests kill single nodes with SIGKILL, ask which node
//! leads a stream, and restart nodes on the same ports with the same stores.
//!
//! # Ports
//!
//! - **Client ports**: the first start passes `-p -1`, so each server binds a
//!   port the OS picks and the harness reads it back from the log line
//!   `Listening for client connections on 127.0.0.1:<port>` (as
//!   [`NatsServer`](crate::NatsServer) does): no window in which the port is
//!   free. A restart asks for the same port again, so clients configured
//!   with the three URLs find the node where it was.
//! - **Cluster (route) ports** must be known before any node starts: every
//!   node is given the routes of all three. The harness binds three
//!   listeners on `127.0.0.1:0` at once (so the three ports differ), notes
//!   the ports, closes the listeners and passes the ports with
//!   `--cluster nats://127.0.0.1:<port>` and `--routes ...`. Between the
//!   close and the server's bind another process may take a port; the
//!   server then exits with "address already in use", and the harness kills
//!   the other nodes, wipes their (fresh) stores and starts over with new
//!   ports, up to [`START_ATTEMPTS`] times. A restart re-binds the node's
//!   own ports and retries while they are briefly busy.
//! - Flags override the file (`-p`, `--cluster`, `--routes`,
//!   `--cluster_name`); everything else — server names, limits, JetStream,
//!   `sync_interval` — comes from the shipped files.
//!
//! Each harness gives its cluster a unique name (`--cluster_name
//! treem_test_<pid>_<n>`). A killed node's route port is free until it
//! restarts, and the surviving nodes keep dialling it; if another test's
//! cluster picked that port, the names differ and nats-server refuses the
//! route instead of merging two clusters.
//!
//! # Readiness
//!
//! [`NatsCluster::start`] returns once JetStream has a meta leader that
//! knows all three peers: an R3 probe stream (memory storage) can be
//! created, and is deleted again. [`NatsCluster::restart`] returns once the
//! restarted node answers a JetStream API request, i.e. it is routed to the
//! meta leader again.
//!
//! # Layout of the temporary directory
//!
//! ```text
//! treem-nats-cluster-XXXXXX/
//!   n1/store/               -sd of node 1 (store/jetstream/...)
//!   n1/nats-server.<k>.log  stdout+stderr of its k-th start
//!   n2/..., n3/...
//! ```
//!
//! Dropping the harness kills the three processes and removes the
//! directory, except when the test is panicking: then the directory is kept
//! and the tail of each node's log is printed.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tempfile::TempDir;

use crate::nats::{log_tail, nats_server_binary, read_log, reap_killed, send_sigterm};
use crate::repo_root;

/// Nodes in the cluster (R3).
pub const NODES: usize = 3;

/// Fresh starts of the whole cluster tried before giving up on finding
/// three free route ports.
pub const START_ATTEMPTS: u32 = 5;

/// How long starting the cluster (all attempts) may take. Generous: CI is a
/// loaded 2-core machine and three servers elect a meta leader.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// How long a restart of one node may take.
const RESTART_DEADLINE: Duration = Duration::from_secs(30);

/// How long [`NatsCluster::stream_leader`] waits for a stream to have a
/// leader among the running nodes.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);

/// Interval between two looks at a log file or the cluster.
const POLL: Duration = Duration::from_millis(20);

/// Timeout of one JetStream API request made by the harness: short, so a
/// request to a stream that has no leader yet is retried soon.
const API_TIMEOUT: Duration = Duration::from_secs(2);

const LISTENING_CLIENTS: &str = "Listening for client connections on ";
const LISTENING_ROUTES: &str = "Listening for route connections on ";

/// Name of the R3 stream [`NatsCluster::start`] creates and deletes to
/// prove the cluster can place three replicas.
const PROBE_STREAM: &str = "TREEM_CLUSTER_PROBE";

/// Three `nats-server`s forming one JetStream cluster, owned by one test.
///
/// ```no_run
/// # async fn demo() {
/// let mut cluster = treem_tests::NatsCluster::start().await;
/// let urls = cluster.urls(); // "nats://127.0.0.1:a,nats://127.0.0.1:b,nats://127.0.0.1:c"
/// // ... start services with nats_url = urls and 3 stream replicas ...
/// let leader = cluster.stream_leader("TREEM_EVENTS_70_690").await;
/// cluster.kill(leader).await; // the other two elect a new leader
/// cluster.restart(leader).await; // same ports, same store; it catches up
/// # drop(urls);
/// # }
/// ```
pub struct NatsCluster {
    binary: PathBuf,
    /// `--cluster_name`, unique per harness (see the module doc).
    name: String,
    /// Removed on drop, after the processes are dead. `None` only in drop.
    dir: Option<TempDir>,
    nodes: Vec<ClusterNode>,
}

/// One node: its shipped config, its ports and its current process.
struct ClusterNode {
    /// `deploy/nats/cluster/n<i>.conf`.
    config: PathBuf,
    /// `server_name` from that file: how JetStream names it as a peer.
    server_name: String,
    /// `<tempdir>/n<i>`: the store and the logs.
    dir: PathBuf,
    /// 0 until the first start has read it from the log.
    client_port: u16,
    cluster_port: u16,
    /// `None` when the node was killed or stopped.
    child: Option<Child>,
    /// Number of starts (names the log files).
    starts: u32,
}

impl ClusterNode {
    fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("nats-server.{}.log", self.starts))
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }
}

/// Why one node did not come up.
#[derive(Debug)]
enum Exit {
    /// A port it was told to bind was in use.
    PortBusy,
    /// The process exited for another reason.
    Exited(ExitStatus),
    /// Neither listener line showed up in time.
    Timeout,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::PortBusy => write!(f, "a port it was given was in use"),
            Exit::Exited(status) => write!(f, "it exited ({status})"),
            Exit::Timeout => write!(f, "no '{LISTENING_CLIENTS}' and '{LISTENING_ROUTES}' lines before the deadline"),
        }
    }
}

impl NatsCluster {
    /// Starts three fresh nodes with empty stores and waits until JetStream
    /// has a meta leader that can place R3 streams. Panics (with the nodes'
    /// logs) if that does not happen within 60 s.
    pub async fn start() -> NatsCluster {
        static INSTANCES: AtomicU32 = AtomicU32::new(0);
        let binary = nats_server_binary().to_path_buf();
        let dir = tempfile::Builder::new().prefix("treem-nats-cluster-").tempdir().expect("create a temporary directory for the cluster");
        let name = format!("treem_test_{}_{}", std::process::id(), INSTANCES.fetch_add(1, Ordering::Relaxed));
        let mut nodes = Vec::with_capacity(NODES);
        for i in 0..NODES {
            let config = repo_root().join(format!("deploy/nats/cluster/n{}.conf", i + 1));
            assert!(
                config.is_file(),
                "the cluster config the tests load is missing: {} (it ships in deploy/nats/cluster/)",
                config.display()
            );
            let server_name = server_name_of(&config);
            let node_dir = dir.path().join(format!("n{}", i + 1));
            std::fs::create_dir_all(&node_dir).expect("create a node directory");
            nodes.push(ClusterNode { config, server_name, dir: node_dir, client_port: 0, cluster_port: 0, child: None, starts: 0 });
        }
        let mut cluster = NatsCluster { binary, name, dir: Some(dir), nodes };
        let deadline = Instant::now() + START_DEADLINE;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match cluster.launch_fresh(deadline).await {
                Ok(()) => break,
                Err((i, Exit::PortBusy)) if attempt < START_ATTEMPTS && Instant::now() < deadline => {
                    tracing::info!(
                        node = i + 1,
                        attempt,
                        "a route port was taken before nats-server bound it; starting over with new ports"
                    );
                    cluster.kill_all();
                }
                Err((i, failure)) => {
                    cluster.kill_all();
                    panic!("node {} of the NATS cluster did not start: {failure}\n{}", i + 1, cluster.log_tails());
                }
            }
        }
        cluster.wait_r3_placement(deadline).await;
        tracing::info!(cluster = %cluster.name, urls = %cluster.urls(), "NATS cluster ready");
        cluster
    }

    /// The client URLs of the three nodes, comma-separated: what services
    /// take as `nats_url`. Stable across restarts.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(ClusterNode::url).collect::<Vec<_>>().join(",")
    }

    /// The client URL of node `i` (0-based), stable across restarts.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// The `server_name` of node `i` (from its config file, e.g. `treem_n1`).
    pub fn server_name(&self, i: usize) -> &str {
        &self.nodes[i].server_name
    }

    /// The node whose `server_name` is `name`.
    pub fn node_named(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.server_name == name)
    }

    /// The JetStream store directory of node `i`, stable across restarts.
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].store_dir()
    }

    /// The cluster name given to this harness's nodes.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether node `i`'s process is alive.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// A client connected to all three nodes; it fails over between them
    /// and reconnects forever, like the services.
    pub async fn connect(&self) -> async_nats::Client {
        let urls: Vec<String> = self.nodes.iter().map(ClusterNode::url).collect();
        async_nats::ConnectOptions::new()
            .name("treem-tests-cluster")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .connect(urls)
            .await
            .unwrap_or_else(|e| panic!("connect to the NATS cluster at {}: {e}", self.urls()))
    }

    /// Crashes node `i`: SIGKILL, as `kill -9` would, and reaps it. Does
    /// nothing if it is not running.
    pub async fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            reap_killed(&mut child);
            tracing::info!(node = i + 1, server_name = %node.server_name, client_port = node.client_port, "NATS cluster node killed (SIGKILL)");
        }
    }

    /// Stops node `i` gracefully (SIGTERM, wait for exit; SIGKILL after 30 s).
    pub async fn stop(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(mut child) = node.child.take() else {
            return;
        };
        send_sigterm(&child);
        let started = Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if started.elapsed() > RESTART_DEADLINE {
                tracing::warn!(node = i + 1, "nats-server ignored SIGTERM for 30 s; killing it");
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        reap_killed(&mut child);
        tracing::info!(node = i + 1, server_name = %node.server_name, "NATS cluster node stopped");
    }

    /// Starts node `i` again with the same ports and the same store (after a
    /// graceful stop if it still runs), and waits until it is routed to the
    /// meta leader again. Retries while one of its ports is briefly busy.
    pub async fn restart(&mut self, i: usize) {
        self.stop(i).await;
        let deadline = Instant::now() + RESTART_DEADLINE;
        loop {
            match self.launch(i, deadline).await {
                Ok(()) => break,
                Err(Exit::PortBusy) if Instant::now() < deadline => {
                    tracing::info!(node = i + 1, "port busy, retrying the restart");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(failure) => panic!("node {} of the NATS cluster did not restart: {failure}\n{}", i + 1, self.log_tails()),
            }
        }
        let url = self.url(i);
        let mut last_error = String::new();
        while Instant::now() < deadline {
            match account_info(&url).await {
                Ok(()) => {
                    tracing::info!(node = i + 1, url = %url, "NATS cluster node restarted and routed to the meta leader");
                    return;
                }
                Err(e) => last_error = e,
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "restarted node {} did not answer JetStream requests within {RESTART_DEADLINE:?}: {last_error}\n{}",
            i + 1,
            self.log_tails()
        );
    }

    /// The node (0-based) leading `stream`, waiting up to 30 s for the
    /// stream to have a leader among the running nodes (after a kill, until
    /// the others elected one). Panics if it does not.
    pub async fn stream_leader(&mut self, stream: &str) -> usize {
        let started = Instant::now();
        let client = self.connect().await;
        let js = jetstream::ContextBuilder::new().timeout(API_TIMEOUT).build(client);
        let mut last = String::from("no answer yet");
        while started.elapsed() < LEADER_DEADLINE {
            match stream_leader_name(&js, stream).await {
                Ok(Some(name)) => match self.node_named(&name) {
                    Some(i) if self.is_running(i) => return i,
                    Some(i) => last = format!("leader {name} is node {} which is not running", i + 1),
                    None => last = format!("leader {name} is not a node of this cluster"),
                },
                Ok(None) => last = "the stream has no leader".into(),
                Err(e) => last = e,
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("stream {stream} has no leader among the running nodes after {LEADER_DEADLINE:?}: {last}\n{}", self.log_tails());
    }

    /// Spawns all three nodes with new route ports and waits until each
    /// listens. On failure, returns the node that failed and why.
    async fn launch_fresh(&mut self, deadline: Instant) -> Result<(), (usize, Exit)> {
        let ports = free_ports(NODES);
        for (node, port) in self.nodes.iter_mut().zip(ports) {
            node.cluster_port = port;
            node.client_port = 0;
            // A failed attempt may have left raft state naming other ports.
            let _ = std::fs::remove_dir_all(node.store_dir());
            std::fs::create_dir_all(node.store_dir()).expect("create a node's JetStream store directory");
        }
        // Spawn all before waiting: each node's JetStream waits for routes.
        for i in 0..NODES {
            let child = self.spawn(i);
            self.nodes[i].child = Some(child);
        }
        for i in 0..NODES {
            let node = &mut self.nodes[i];
            let log = node.log_path();
            let child = node.child.as_mut().expect("just spawned");
            node.client_port = wait_listening(child, &log, deadline).await.map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// Spawns node `i` on its known ports and waits until it listens.
    async fn launch(&mut self, i: usize, deadline: Instant) -> Result<(), Exit> {
        let mut child = self.spawn(i);
        let log = self.nodes[i].log_path();
        match wait_listening(&mut child, &log, deadline).await {
            Ok(port) => {
                assert_eq!(port, self.nodes[i].client_port, "node {} bound another client port than asked; see {}", i + 1, log.display());
                self.nodes[i].child = Some(child);
                Ok(())
            }
            Err(e) => {
                reap_killed(&mut child);
                Err(e)
            }
        }
    }

    fn spawn(&mut self, i: usize) -> Child {
        let routes = self.nodes.iter().map(|n| format!("nats-route://127.0.0.1:{}", n.cluster_port)).collect::<Vec<_>>().join(",");
        let node = &mut self.nodes[i];
        node.starts += 1;
        let log = File::create(node.log_path()).expect("create a nats-server log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        let client_port = if node.client_port == 0 { "-1".to_string() } else { node.client_port.to_string() };
        Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .arg("-sd")
            .arg(node.store_dir())
            .args(["-p", &client_port])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", node.cluster_port)])
            .args(["--routes", &routes])
            .args(["--cluster_name", &self.name])
            // Anything relative resolves in the node's directory, never in the repo.
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()))
    }

    /// Creates (and deletes) an R3 memory stream until the meta leader
    /// accepts it: JetStream is up and knows all three peers.
    async fn wait_r3_placement(&mut self, deadline: Instant) {
        let mut last_error = String::from("no attempt yet");
        while Instant::now() < deadline {
            for i in 0..NODES {
                if let Some(Ok(Some(status))) = self.nodes[i].child.as_mut().map(Child::try_wait) {
                    panic!("node {} exited ({status}) while the cluster formed\n{}", i + 1, self.log_tails());
                }
            }
            match probe_r3(&self.urls()).await {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
            tokio::time::sleep(POLL * 5).await;
        }
        panic!("the NATS cluster could not place an R3 stream within {START_DEADLINE:?}: {last_error}\n{}", self.log_tails());
    }

    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                reap_killed(&mut child);
            }
        }
    }

    /// The last lines of each node's current log, for panic messages.
    fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {} ({}) {} ---\n{}", i + 1, n.server_name, n.log_path().display(), log_tail(&n.log_path())))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            let tails = self.log_tails();
            if let Some(dir) = self.dir.as_mut() {
                dir.disable_cleanup(true);
                eprintln!("NATS cluster {} kept for inspection at {}\n{tails}", self.name, dir.path().display());
            }
        }
        self.dir.take();
    }
}

/// The `server_name: <name>` of a node's config file.
fn server_name_of(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap_or_else(|e| panic!("read {}: {e}", config.display()));
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("server_name:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{} names no server_name; every cluster node needs one", config.display()))
}

/// `n` distinct ports that were free a moment ago (see the module doc for
/// why that is good enough: a taken port makes the start retry).
fn free_ports(n: usize) -> Vec<u16> {
    // All listeners open at once, so the ports differ.
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("a bound listener has an address").port()).collect()
}

/// Waits until the node logs both listener lines; returns its client port.
async fn wait_listening(child: &mut Child, log_path: &Path, deadline: Instant) -> Result<u16, Exit> {
    loop {
        let log = read_log(log_path);
        if let Some(port) = listening_port(&log, LISTENING_CLIENTS)
            && listening_port(&log, LISTENING_ROUTES).is_some()
            && matches!(child.try_wait(), Ok(None))
        {
            return Ok(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Re-read: the last lines may have been written after the read above.
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

/// The port of the first complete `<prefix><host>:<port>` line of a log.
fn listening_port(log: &str, prefix: &str) -> Option<u16> {
    let line = log.split_inclusive('\n').find(|l| l.ends_with('\n') && l.contains(prefix))?;
    line.split(prefix).nth(1)?.trim().rsplit(':').next()?.parse().ok()
}

/// One `$JS.API.INFO` round trip through the node at `url`: answered only
/// when a meta leader exists and the node is routed to it.
async fn account_info(url: &str) -> Result<(), String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(API_TIMEOUT)
        .connect(url)
        .await
        .map_err(|e| format!("NATS connect to {url}: {e}"))?;
    let js = jetstream::ContextBuilder::new().timeout(API_TIMEOUT).build(client);
    js.query_account().await.map(|_| ()).map_err(|e| format!("JetStream account info via {url}: {e}"))
}

/// Creates and deletes the R3 probe stream.
async fn probe_r3(urls: &str) -> Result<(), String> {
    let urls: Vec<&str> = urls.split(',').collect();
    let client =
        async_nats::ConnectOptions::new().connection_timeout(API_TIMEOUT).connect(urls).await.map_err(|e| format!("NATS connect: {e}"))?;
    let js = jetstream::ContextBuilder::new().timeout(API_TIMEOUT).build(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: PROBE_STREAM.into(),
        subjects: vec!["treem.tests.cluster.probe".into()],
        storage: jetstream::stream::StorageType::Memory,
        num_replicas: NODES,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("create the R3 probe stream: {e}"))?;
    js.delete_stream(PROBE_STREAM).await.map_err(|e| format!("delete the R3 probe stream: {e}"))?;
    Ok(())
}

/// The server name the stream's info names as its leader.
async fn stream_leader_name(js: &jetstream::Context, stream: &str) -> Result<Option<String>, String> {
    let mut s = js.get_stream(stream).await.map_err(|e| format!("stream {stream}: {e}"))?;
    let info = s.info().await.map_err(|e| format!("stream {stream} info: {e}"))?;
    Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_listener_lines() {
        let log = "[1] [INF] Listening for client connections on 127.0.0.1:38917\n\
                   [1] [INF] Listening for route connections on 127.0.0.1:17001\n";
        assert_eq!(listening_port(log, LISTENING_CLIENTS), Some(38917));
        assert_eq!(listening_port(log, LISTENING_ROUTES), Some(17001));
        assert_eq!(listening_port("[1] [INF] Listening for route connections on 127.0.0.1:170", LISTENING_ROUTES), None);
    }

    #[test]
    fn the_shipped_node_configs_name_three_distinct_servers() {
        let names: Vec<String> = (1..=NODES).map(|i| server_name_of(&repo_root().join(format!("deploy/nats/cluster/n{i}.conf")))).collect();
        assert_eq!(names, ["treem_n1", "treem_n2", "treem_n3"]);
    }

    #[test]
    fn free_ports_differ() {
        let ports = free_ports(NODES);
        assert_eq!(ports.len(), NODES);
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2], "{ports:?}");
    }
}
