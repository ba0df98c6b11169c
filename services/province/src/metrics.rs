//! Counters of the province node, rendered in the Prometheus text format at
//! `GET /metrics`. Counters start at zero with each process; the gauges of
//! what is stored are read from the store when rendered.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Snapshots stored (new town-year or newer version).
    pub applied: AtomicU64,
    /// Deliveries of a version already held.
    pub duplicates: AtomicU64,
    /// Snapshots older than the one held, ignored.
    pub stale: AtomicU64,
    /// Messages parked as dead letters.
    pub parked: AtomicU64,
    /// Batches made durable (one fsync each).
    pub batches: AtomicU64,
    /// Store or NATS failures the consumer retried after.
    pub consumer_errors: AtomicU64,
    /// Whether the consumer is attached to the stream right now.
    pub nats_connected: AtomicBool,
    /// The consumer's last failure, cleared once it is attached again.
    pub last_error: Mutex<Option<String>>,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    pub fn error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn render(&self, snapshots_held: usize, parked_held: usize) -> String {
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        line("treem_province_snapshots_applied_total", "counter", "Town snapshots stored.", get(&self.applied));
        line(
            "treem_province_snapshots_duplicate_total",
            "counter",
            "Deliveries of a snapshot version already held.",
            get(&self.duplicates),
        );
        line("treem_province_snapshots_stale_total", "counter", "Snapshots older than the one held, ignored.", get(&self.stale));
        line("treem_province_messages_parked_total", "counter", "Messages parked as dead letters.", get(&self.parked));
        line("treem_province_batches_synced_total", "counter", "Batches made durable with one fsync.", get(&self.batches));
        line(
            "treem_province_consumer_errors_total",
            "counter",
            "NATS or store errors the consumer retried after.",
            get(&self.consumer_errors),
        );
        line(
            "treem_province_nats_connected",
            "gauge",
            "1 when the consumer is attached to the projections stream.",
            u64::from(self.nats_connected.load(Ordering::Relaxed)),
        );
        line("treem_province_snapshots_held", "gauge", "Town-year snapshots in the store.", snapshots_held as u64);
        line("treem_province_parked_held", "gauge", "Dead letters in the store.", parked_held as u64);
        out
    }
}
