//! A TCP proxy the fault-injection harness puts on one network link, so it
//! can break that link on purpose: cut it, heal it, slow it down, or make it
//! lossy.
//!
//! treem's only transport is NATS, so every link of a treem system is a TCP
//! connection from a client (a ward, the town, the province) to a
//! `nats-server`. The harness starts one [`Proxy`] per link, in front of the
//! server, and gives the client the proxy's address instead of the server's.
//! The proxy forwards bytes both ways and, on command, misbehaves:
//!
//! | command | what the client sees |
//! | --- | --- |
//! | [`Proxy::cut`] | every open connection is reset (RST) at once, and every new one is accepted and reset immediately: "connection reset by peer" until [`Proxy::heal`] |
//! | [`Proxy::set_latency`] | each chunk of bytes is held back that long before it is written on (both directions), so every request and every ack arrives late |
//! | [`Proxy::set_lossy`] | connections are reset at random moments, and stall at random (no byte moves either way for up to `stall_max`) |
//! | [`Proxy::heal`] | back to a plain, fast, reliable pipe; connections that survived carry on |
//!
//! A cut is a *reset*, not a silent black hole: with NATS's ping interval a
//! silently dropped connection would only be noticed after minutes, so a
//! black hole would test the ping settings rather than treem. Silent loss is
//! what the lossy mode's stalls are for (seconds, not minutes).
//!
//! # Invariants
//!
//! - The proxy never alters, reorders or invents bytes: on a connection it
//!   only delays, stalls or ends. Whatever breaks is the connection, exactly
//!   as with a real network, so TCP's own guarantees still hold for the bytes
//!   that do arrive.
//! - The listening address is fixed for the proxy's lifetime (a client's
//!   configured URL stays valid); the upstream may come and go (a restarted
//!   `nats-server`): a connection whose upstream cannot be reached is reset.
//! - Randomness (which connection to reset, when to stall) comes from a
//!   [`SplitMix64`] seeded by the harness, so the decisions are reproducible
//!   given the same sequence of connections; their timing is not.
//! - Dropping the [`Proxy`] stops accepting and ends every connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::faults::SplitMix64;

/// How long the proxy waits for the upstream to accept a connection.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(5);
/// How often a lossy connection rolls its dice.
const LOSSY_TICK: Duration = Duration::from_millis(100);
/// Largest chunk read and written at once.
const CHUNK: usize = 64 * 1024;

/// How a link behaves now. The default is a healthy link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LinkState {
    /// Cut: no connection gets through.
    pub cut: bool,
    /// Added to every chunk in each direction.
    pub latency: Duration,
    /// Random resets and stalls, if any.
    pub lossy: Option<Lossy>,
}

/// The misbehaviour of a lossy link, per connection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lossy {
    /// Mean time between two resets of one connection.
    pub reset_every: Duration,
    /// Mean time between two stalls of one connection.
    pub stall_every: Duration,
    /// Longest stall; each lasts a random time up to this.
    pub stall_max: Duration,
}

/// What a proxy did so far (for the run's report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProxyStats {
    /// Connections accepted and forwarded to the upstream.
    pub connections: u64,
    /// Connections refused (reset at once) while the link was cut.
    pub refused: u64,
    /// Open connections reset by a cut.
    pub cut: u64,
    /// Open connections reset at random by the lossy mode.
    pub resets: u64,
    /// Stalls of the lossy mode.
    pub stalls: u64,
    /// Connections reset because the upstream did not accept them (server down).
    pub upstream_down: u64,
    /// Bytes forwarded, both directions.
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
    resets: AtomicU64,
    stalls: AtomicU64,
    upstream_down: AtomicU64,
    bytes: AtomicU64,
}

struct Shared {
    name: String,
    upstream: SocketAddr,
    state: watch::Sender<LinkState>,
    counters: Counters,
    seed: u64,
    next_conn: AtomicU64,
}

/// One link's proxy: listens on `127.0.0.1:<port chosen by the OS>` and
/// forwards to `upstream`.
///
/// ```no_run
/// # async fn demo(nats_port: u16) {
/// use std::time::Duration;
/// let proxy = treem_tests::proxy::Proxy::start("ward-25320", ([127, 0, 0, 1], nats_port).into(), 7).await.unwrap();
/// let url = proxy.url(); // give this to the ward instead of the server's URL
/// proxy.cut(); // the ward is offline
/// proxy.heal(); // and back
/// proxy.set_latency(Duration::from_millis(300)); // a slow rural link
/// # drop(url);
/// # }
/// ```
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Binds a port and starts forwarding to `upstream`. `seed` drives the
    /// lossy mode's dice.
    pub async fn start(name: &str, upstream: SocketAddr, seed: u64) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState::default());
        let shared =
            Arc::new(Shared { name: name.to_string(), upstream, state, counters: Counters::default(), seed, next_conn: AtomicU64::new(0) });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        tracing::debug!(link = name, %addr, %upstream, "proxy started");
        Ok(Proxy { addr, shared, accept })
    }

    /// The name given at start (the link it stands for).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://<addr>`: the URL to give a NATS client instead of the server's.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Cuts the link: resets every open connection, refuses new ones.
    pub fn cut(&self) {
        self.shared.state.send_modify(|s| s.cut = true);
        tracing::info!(link = %self.shared.name, "link cut");
    }

    /// Back to a healthy link: not cut, no latency, not lossy.
    pub fn heal(&self) {
        self.shared.state.send_replace(LinkState::default());
        tracing::info!(link = %self.shared.name, "link healed");
    }

    /// Delays every chunk by `latency` (zero: no delay).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.state.send_modify(|s| s.latency = latency);
        tracing::info!(link = %self.shared.name, latency_ms = latency.as_millis() as u64, "link latency set");
    }

    /// Makes the link lossy (`None`: reliable again).
    pub fn set_lossy(&self, lossy: Option<Lossy>) {
        self.shared.state.send_modify(|s| s.lossy = lossy);
        tracing::info!(link = %self.shared.name, lossy = ?lossy, "link loss set");
    }

    /// How the link behaves now.
    pub fn state(&self) -> LinkState {
        *self.shared.state.borrow()
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            connections: get(&c.connections),
            refused: get(&c.refused),
            cut: get(&c.cut),
            resets: get(&c.resets),
            stalls: get(&c.stalls),
            upstream_down: get(&c.upstream_down),
            bytes: get(&c.bytes),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections watch the state; closing the channel ends them.
        self.shared.state.send_modify(|s| s.cut = true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                let n = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(shared.clone(), client, n));
            }
            Err(e) => {
                // Out of file descriptors or similar: keep accepting.
                tracing::warn!(link = %shared.name, error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// How a forwarded connection ended.
enum End {
    /// Both sides closed normally (or an IO error ended them).
    Closed,
    /// The link was cut, or the proxy dropped.
    Cut,
    /// The lossy mode reset it.
    Reset,
}

async fn serve(shared: Arc<Shared>, client: TcpStream, n: u64) {
    let state = shared.state.subscribe();
    let c = &shared.counters;
    if state.borrow().cut {
        c.refused.fetch_add(1, Ordering::Relaxed);
        reset(&client);
        return;
    }
    let upstream = match tokio::time::timeout(UPSTREAM_CONNECT, TcpStream::connect(shared.upstream)).await {
        Ok(Ok(upstream)) => upstream,
        _ => {
            c.upstream_down.fetch_add(1, Ordering::Relaxed);
            reset(&client);
            return;
        }
    };
    c.connections.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let pumps_state = state.clone();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let gate = StallGate::default();
    let mut rng = SplitMix64::new(shared.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let end = {
        let forward = async {
            tokio::join!(
                pump(&mut client_read, &mut upstream_write, &pumps_state, &gate, &c.bytes),
                pump(&mut upstream_read, &mut client_write, &pumps_state, &gate, &c.bytes),
            )
        };
        let mut cut_watch = state.clone();
        tokio::select! {
            _ = forward => End::Closed,
            // Err: the proxy was dropped, which ends every connection too.
            _ = cut_watch.wait_for(|s| s.cut) => End::Cut,
            () = chaos(&state, &mut rng, &gate, c) => End::Reset,
        }
    };
    match end {
        End::Closed => {}
        End::Cut => {
            c.cut.fetch_add(1, Ordering::Relaxed);
            reset(client_write.as_ref());
            reset(upstream_write.as_ref());
        }
        End::Reset => {
            c.resets.fetch_add(1, Ordering::Relaxed);
            reset(client_write.as_ref());
            reset(upstream_write.as_ref());
        }
    }
}

/// Makes the coming close of `stream` a reset (RST) instead of an orderly
/// FIN, as a broken network path or a crashed peer looks to a client.
fn reset(stream: &TcpStream) {
    // Zero linger never blocks: the kernel drops the buffers and sends RST.
    let _ = stream.set_zero_linger();
}

/// Copies `from` to `to` until EOF or an error, delaying and stalling as
/// the link state says. On EOF it half-closes `to`, so a client's orderly
/// close reaches the server.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    state: &watch::Receiver<LinkState>,
    gate: &StallGate,
    bytes: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        // Bytes read during the delay wait in the kernel, so a chunk is
        // delayed by `latency` to 2×`latency`, and the throughput stays at
        // up to one chunk per `latency`: a slow link, not a dead one.
        let latency = state.borrow().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        gate.pass().await;
        to.write_all(&buf[..n]).await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Rolls the lossy mode's dice every [`LOSSY_TICK`]: may stall the
/// connection (through `gate`), and returns when it decides to reset it.
/// Never returns while the link is not lossy.
async fn chaos(state: &watch::Receiver<LinkState>, rng: &mut SplitMix64, gate: &StallGate, c: &Counters) {
    let mut tick = tokio::time::interval(LOSSY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(lossy) = state.borrow().lossy else { continue };
        if rng.chance(ratio(LOSSY_TICK, lossy.reset_every)) {
            return;
        }
        if rng.chance(ratio(LOSSY_TICK, lossy.stall_every)) {
            let stall = rng.duration_up_to(lossy.stall_max);
            gate.stall_until(Instant::now() + stall);
            c.stalls.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn ratio(tick: Duration, every: Duration) -> f64 {
    if every.is_zero() { 1.0 } else { tick.as_secs_f64() / every.as_secs_f64() }
}

/// Holds both directions of a connection until a stall is over.
#[derive(Default)]
struct StallGate {
    until: Mutex<Option<Instant>>,
}

impl StallGate {
    fn stall_until(&self, when: Instant) {
        let mut until = self.until.lock().expect("stall gate lock");
        if until.is_none_or(|u| u < when) {
            *until = Some(when);
        }
    }

    async fn pass(&self) {
        loop {
            let until = *self.until.lock().expect("stall gate lock");
            match until {
                Some(when) if when > Instant::now() => tokio::time::sleep_until(when).await,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server standing in for the upstream.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn forwards_cuts_and_heals() {
        let proxy = Proxy::start("test", echo().await, 1).await.unwrap();
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");

        // An open connection is reset by a cut.
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        open.write_all(b"ab").await.unwrap();
        let mut two = [0u8; 2];
        open.read_exact(&mut two).await.unwrap();
        proxy.cut();
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(10), open.read_to_end(&mut rest)).await.expect("the cut ends the connection");
        assert!(ended.is_err() || rest.is_empty(), "no bytes after a cut: {ended:?} {rest:?}");
        // New connections are refused while cut.
        assert!(round_trip(proxy.addr()).await.is_err());
        proxy.heal();
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");
        let stats = proxy.stats();
        assert!(stats.cut >= 1 && stats.refused >= 1 && stats.connections >= 3, "{stats:?}");
    }

    #[tokio::test]
    async fn latency_delays_each_way() {
        let proxy = Proxy::start("test", echo().await, 1).await.unwrap();
        proxy.set_latency(Duration::from_millis(150));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");
        assert!(started.elapsed() >= Duration::from_millis(300), "two delayed hops: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_lossy_link_resets_connections() {
        let proxy = Proxy::start("test", echo().await, 1).await.unwrap();
        proxy.set_lossy(Some(Lossy {
            reset_every: Duration::from_millis(200),
            stall_every: Duration::from_millis(200),
            stall_max: Duration::from_millis(50),
        }));
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "a lossy link resets a connection within seconds");
        assert!(proxy.stats().resets >= 1, "{:?}", proxy.stats());
    }

    #[tokio::test]
    async fn an_unreachable_upstream_resets_the_client() {
        // Bind and drop: nothing listens there any more.
        let gone = TcpListener::bind(("127.0.0.1", 0)).await.unwrap().local_addr().unwrap();
        let proxy = Proxy::start("test", gone, 1).await.unwrap();
        assert!(round_trip(proxy.addr()).await.is_err());
        assert_eq!(proxy.stats().upstream_down, 1);
    }
}
