//! Small measuring tools shared by the stages: rates, latency percentiles,
//! the peak resident memory of a process, and how figures are printed.
//!
//! Percentiles are nearest-rank over every sample (no histogram buckets, no
//! sampling): a run keeps at most a few hundred thousand latencies, which
//! sorts in milliseconds.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Events (or requests) per second: `count` over `elapsed`.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Latency samples, in the order they were taken.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<Duration>,
}

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.samples.push(d);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The nearest-rank percentile `p` (0–100), in milliseconds; 0 with no samples.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
    }

    /// `(p50, p99)` in milliseconds.
    pub fn p50_p99(&self) -> (f64, f64) {
        (self.percentile_ms(50.0), self.percentile_ms(99.0))
    }
}

/// Peak resident set size of a process (`VmHWM` of `/proc/<pid>/status`), in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// Current resident set size (`VmRSS`), in bytes.
pub fn current_rss(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path} (is process {pid} still running?)"))?;
    let Some(line) = text.lines().find(|l| l.starts_with(field)) else { bail!("{path} has no {field} line") };
    let kib = line[field.len()..].trim().trim_end_matches("kB").trim();
    kib.parse().with_context(|| format!("{field} in {path} is not a number: {line:?}"))
}

/// CPU time (user + system) so far of this process, and of its live
/// `nats-server` children (`/proc/<pid>/stat`; zero where `/proc` is missing).
pub fn cpu_times() -> (Duration, Duration) {
    let me = std::process::id();
    let mut nats = Duration::ZERO;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((comm, ppid, cpu)) = proc_stat(pid)
                && ppid == me
                && comm == "nats-server"
            {
                nats += cpu;
            }
        }
    }
    (cpu_of(me), nats)
}

/// `(comm, ppid, utime + stime)` of a process.
fn proc_stat(pid: u32) -> Option<(String, u32, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, tail) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = tail.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((comm, f.get(1)?.parse().ok()?, Duration::from_secs_f64(ticks as f64 / clock_ticks())))
}

/// Clock ticks a second, the unit of `/proc/<pid>/stat` times.
#[allow(unsafe_code)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// CPU time (user + system) so far of process `pid` (zero once it is gone).
pub fn cpu_of(pid: u32) -> Duration {
    proc_stat(pid).map_or(Duration::ZERO, |(_, _, cpu)| cpu)
}

/// The machine's cores as this process sees them.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// CPU time (user + system) over one stage: of the process doing the work
/// (this one for the raw consumes and the rebuild, the town binary for the
/// apply) and of the nats-server, and the stage's wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu {
    pub process: Duration,
    pub nats: Duration,
    pub wall: Duration,
}

impl Cpu {
    /// Measures `work` done in this process.
    pub async fn of<T>(work: impl std::future::Future<Output = T>) -> (T, Cpu) {
        let (started, before) = (Instant::now(), cpu_times());
        let out = work.await;
        let after = cpu_times();
        let cpu = Cpu { process: after.0.saturating_sub(before.0), nats: after.1.saturating_sub(before.1), wall: started.elapsed() };
        (out, cpu)
    }

    /// Cores busy on average: `(process, nats-server)`.
    pub fn cores(&self) -> (f64, f64) {
        let wall = self.wall.as_secs_f64().max(1e-9);
        (self.process.as_secs_f64() / wall, self.nats.as_secs_f64() / wall)
    }

    /// CPU per event in µs over `events`: `(process, nats-server)`.
    pub fn per_event_us(&self, events: u64) -> (f64, f64) {
        let n = events.max(1) as f64;
        (self.process.as_secs_f64() * 1e6 / n, self.nats.as_secs_f64() * 1e6 / n)
    }
}

/// A human figure: `12,345`, `1.23`, `0.0456`.
pub fn num(v: f64) -> String {
    if v >= 1000.0 {
        count(v.round() as u64)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A count with thousands separators: `1,200,000`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as MiB, e.g. `23.4 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{} MiB", num(bytes as f64 / (1024.0 * 1024.0)))
}

/// A short description of the machine: cores, CPU model, memory, and the
/// file system holding `dir` (device and type, from `/proc/mounts`).
pub fn machine(dir: &Path) -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!("{cores} cores, {model}, {} GiB RAM, data on {}", mem_kib / (1024 * 1024), mount_of(dir))
}

/// `device (fstype) at mountpoint` of the longest mount point containing `dir`.
fn mount_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, at, _)| dir.starts_with(at))
        .max_by_key(|(_, at, _)| at.len())
        .map(|(dev, at, fs)| format!("{dev} ({fs}) at {at}"))
        .unwrap_or_else(|| "an unknown file system".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.p50_p99(), (50.0, 99.0));
        assert_eq!(Latencies::default().percentile_ms(99.0), 0.0);
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(num(1234567.8), "1,234,568");
        assert_eq!(num(123.4), "123");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(count(44), "44");
        assert_eq!(count(1_200_000), "1,200,000");
    }

    #[test]
    fn reads_own_peak_rss() {
        assert!(peak_rss(std::process::id()).unwrap() > 0);
    }
}
