//! Group commit for the ward log: many appenders, one `flush + fdatasync`.
//!
//! Writers never fsync themselves. After its write completed, a writer takes
//! a *ticket* (a counter bumped after the write) and wakes the flusher
//! thread. The flusher reads the ticket counter, makes sled durable
//! ([`SledFiles::flush_durably`]), then publishes on a `watch` channel the
//! ticket (and the highest seq) that flush covered. Every writer whose ticket
//! is covered returns together; while one flush runs, the next batch of
//! writers queues up and shares the next one.
//!
//! Why reading the counter before the flush is enough: a writer bumps the
//! counter only after its write completed, so every ticket ≤ the value read
//! belongs to a write that the flush that follows includes.
//!
//! A failed flush is published too (with the tickets it covered), so the
//! writers waiting for it get a [`FlushFailure`] rather than waiting for
//! ever. After a failure sled 0.34 refuses every later write with the same
//! error (it keeps the first I/O error as a global error), so the ward log
//! treats a failed flush as the end of this database handle and reopens the
//! directory (see `log_db.rs`). When the [`GroupCommit`] is dropped, the
//! flusher does a last flush and is joined; writers still waiting then get
//! a failure ("the flusher has stopped").

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::durable::SledFiles;

/// What the flusher has made durable so far.
#[derive(Debug, Clone, Default)]
struct FlushState {
    /// Every write whose ticket is ≤ this is durable.
    ticket: u64,
    /// Every seq ≤ this is durable.
    seq: u64,
    /// The last failed flush: the tickets it covered and why it failed.
    failed: Option<(u64, FlushFailure)>,
}

/// Why writes were not made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlushFailure {
    pub(crate) detail: String,
    /// The file system said "no space left on device" (ENOSPC).
    pub(crate) disk_full: bool,
}

/// Counters shared between the writers and the flusher thread.
#[derive(Debug, Default)]
struct Counters {
    /// Highest seq written (durable or not).
    written_seq: AtomicU64,
    /// Number of completed writes; a write's ticket is the value after its bump.
    tickets: AtomicU64,
}

/// The flusher thread and the writers' side of it.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    counters: Arc<Counters>,
    durable: watch::Receiver<FlushState>,
    wake: Option<SyncSender<()>>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher of `db`, whose content up to `durable_seq` is
    /// already durable.
    pub(crate) fn start(name: String, db: sled::Db, files: SledFiles, durable_seq: u64) -> std::io::Result<GroupCommit> {
        let counters = Arc::new(Counters { written_seq: AtomicU64::new(durable_seq), tickets: AtomicU64::new(0) });
        let (state_tx, state_rx) = watch::channel(FlushState { ticket: 0, seq: durable_seq, failed: None });
        let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel(1);
        let flusher = {
            let counters = counters.clone();
            std::thread::Builder::new().name(name).spawn(move || run_flusher(db, files, counters, wake_rx, state_tx))?
        };
        Ok(GroupCommit { counters, durable: state_rx, wake: Some(wake_tx), flusher: Some(flusher) })
    }

    /// Notes that every seq up to `seq` has been written (call under the
    /// append lock, after the write).
    pub(crate) fn written(&self, seq: u64) {
        self.counters.written_seq.store(seq, Ordering::SeqCst);
    }

    /// Takes a ticket for the writes completed so far and wakes the flusher.
    pub(crate) fn ticket(&self) -> u64 {
        let ticket = self.counters.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(wake) = &self.wake {
            // Full means a wake-up is already pending; it will see our ticket.
            let _ = wake.try_send(());
        }
        ticket
    }

    /// Waits until the writes of `ticket` are durable, or their flush failed.
    /// The future borrows nothing, so a caller can release its locks (and
    /// the database handle) before awaiting it.
    pub(crate) fn wait(&self, ticket: u64) -> impl Future<Output = Result<(), FlushFailure>> + Send + use<> {
        let mut rx = self.durable.clone();
        async move {
            let state = rx
                .wait_for(|s| s.ticket >= ticket || s.failed.as_ref().is_some_and(|(t, _)| *t >= ticket))
                .await
                .map_err(|_| FlushFailure { detail: "the flusher has stopped".into(), disk_full: false })?;
            if state.ticket >= ticket {
                return Ok(());
            }
            Err(state.failed.as_ref().map(|(_, why)| why.clone()).unwrap_or(FlushFailure { detail: String::new(), disk_full: false }))
        }
    }

    /// The last flush failure, if any flush of this handle failed.
    pub(crate) fn failure(&self) -> Option<FlushFailure> {
        self.durable.borrow().failed.as_ref().map(|(_, f)| f.clone())
    }

    /// Highest seq known durable.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable.borrow().seq
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the wake channel makes the flusher do a last flush and
        // exit; joining it releases its clone of the database, so the
        // directory can be reopened as soon as the last handle is gone.
        drop(self.wake.take());
        if let Some(thread) = self.flusher.take() {
            let _ = thread.join();
        }
    }
}

/// The flusher thread: one flush for every batch of writes that arrived
/// while the previous one ran. Exits, after a last flush, when the wake
/// channel closes.
fn run_flusher(db: sled::Db, files: SledFiles, counters: Arc<Counters>, wake: Receiver<()>, state: watch::Sender<FlushState>) {
    loop {
        let closing = wake.recv().is_err();
        // Coalesce the wake-ups that arrived meanwhile: one flush serves all.
        while wake.try_recv().is_ok() {}
        // Read both counters before flushing: every write they count
        // completed before the flush starts, so the flush covers it.
        let ticket = counters.tickets.load(Ordering::SeqCst);
        let seq = counters.written_seq.load(Ordering::SeqCst);
        if closing || ticket > state.borrow().ticket {
            match files.flush_durably(&db) {
                Ok(()) => state.send_modify(|s| {
                    tracing::trace!(writes = ticket.saturating_sub(s.ticket), seq, "group commit");
                    s.ticket = s.ticket.max(ticket);
                    s.seq = s.seq.max(seq);
                }),
                Err(e) => {
                    let failure = FlushFailure { detail: e.to_string(), disk_full: e.kind() == std::io::ErrorKind::StorageFull };
                    tracing::error!(error = %e, disk_full = failure.disk_full, ticket, seq, "ward log flush failed: recent events are not durable");
                    state.send_modify(|s| s.failed = Some((ticket, failure)));
                }
            }
        }
        if closing {
            break;
        }
    }
}
