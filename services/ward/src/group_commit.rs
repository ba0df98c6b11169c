//! Group commit for the ward log: many appenders, one `flush + fdatasync`,
//! done by one of the appenders themselves (leader/follower), no thread of
//! its own.
//!
//! Writers never fsync on their own account. After its write completed, a
//! writer takes a *ticket* (a counter bumped after the write) and waits
//! ([`GroupCommit::wait`]) until its ticket is covered:
//!
//! - if no flush is running, the writer becomes the *leader*: it reads the
//!   ticket counter, makes sled durable ([`SledFiles::flush_durably`]) on its
//!   own thread (inside `tokio::task::block_in_place` on a multi-threaded
//!   runtime, so the runtime moves its other tasks elsewhere meanwhile), then
//!   publishes on a `watch` channel the ticket (and the highest seq) that
//!   flush covered;
//! - if a flush is running, the writer is a *follower*: it waits for that
//!   flush to be published. If it covered the follower's ticket, the
//!   follower returns; if not (its write completed after the leader read the
//!   counter), the followers left elect the next leader among themselves,
//!   whose flush covers all of them.
//!
//! So a lone writer flushes on its own thread, with no hand-off to another
//! thread and back, and while one flush runs the next batch of writers
//! queues up and shares the next one.
//!
//! Why reading the counter before the flush is enough: a writer bumps the
//! counter only after its write completed, so every ticket ≤ the value read
//! belongs to a write that the flush that follows includes.
//!
//! The leader is elected, flushes and publishes within one poll of its
//! future (no `.await` in between), so a caller that drops the future can
//! never leave the log without a leader; a panic in the flush gives the
//! leadership back too. A ticket taken and never waited for (the
//! replicator's ack notes) is covered by the next flush anyone waits for.
//!
//! A failed flush is published too, with the tickets it covered, so exactly
//! the writers waiting for it get a [`FlushFailure`] (a later writer is
//! covered by a later flush, which fails the same way: sled 0.34 keeps the
//! first I/O error as a global error and refuses every later write and flush
//! with it). So the ward log treats a failed flush as the end of this
//! database handle and reopens the directory (see `log_db.rs`). When the
//! [`GroupCommit`] is dropped, it waits for a running flush, does a last
//! flush and releases its clone of the database (so the directory can be
//! reopened); writers still waiting for a ticket that last flush did not
//! cover then get a failure ("the log was closed").

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::durable::SledFiles;

/// What has been made durable so far, and who is flushing.
#[derive(Debug, Clone, Default)]
struct FlushState {
    /// Every write whose ticket is ≤ this is durable.
    ticket: u64,
    /// Every seq ≤ this is durable.
    seq: u64,
    /// The last failed flush: the tickets it covered and why it failed.
    failed: Option<(u64, FlushFailure)>,
    /// A writer is flushing (the leader).
    leading: bool,
    /// The handle is gone: no flush will come.
    closed: bool,
}

/// Why writes were not made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlushFailure {
    pub(crate) detail: String,
    /// The file system said "no space left on device" (ENOSPC).
    pub(crate) disk_full: bool,
}

impl FlushFailure {
    fn of(e: &std::io::Error) -> FlushFailure {
        FlushFailure { detail: e.to_string(), disk_full: e.kind() == std::io::ErrorKind::StorageFull }
    }
}

/// What a flush needs; taken out (and so released) when the handle closes.
struct Io {
    db: sled::Db,
    files: SledFiles,
}

/// Shared by the handle and every waiting writer.
struct Shared {
    /// Highest seq written (durable or not).
    written_seq: AtomicU64,
    /// Number of completed writes; a write's ticket is the value after its bump.
    tickets: AtomicU64,
    state: watch::Sender<FlushState>,
    /// Held by the leader for the length of its flush.
    io: Mutex<Option<Io>>,
}

/// The writers' side of the group commit of one database handle.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("state", &*self.shared.state.borrow()).finish_non_exhaustive()
    }
}

/// What a waiting writer does next.
enum Claim {
    Done(Result<(), FlushFailure>),
    Lead,
    Follow,
}

impl GroupCommit {
    /// The group commit of `db`, whose content up to `durable_seq` is
    /// already durable.
    pub(crate) fn start(db: sled::Db, files: SledFiles, durable_seq: u64) -> GroupCommit {
        let (state, _) = watch::channel(FlushState { seq: durable_seq, ..FlushState::default() });
        GroupCommit {
            shared: Arc::new(Shared {
                written_seq: AtomicU64::new(durable_seq),
                tickets: AtomicU64::new(0),
                state,
                io: Mutex::new(Some(Io { db, files })),
            }),
        }
    }

    /// Notes that every seq up to `seq` has been written (called in seq
    /// order, after the insert: `Slot::finish` in `log_db.rs`).
    pub(crate) fn written(&self, seq: u64) {
        self.shared.written_seq.store(seq, Ordering::SeqCst);
    }

    /// Takes a ticket for the writes completed so far.
    pub(crate) fn ticket(&self) -> u64 {
        self.shared.tickets.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Waits until the writes of `ticket` are durable, or their flush failed,
    /// flushing itself when no one else is. The future borrows nothing, so a
    /// caller can release its locks (and the database handle) before
    /// awaiting it.
    pub(crate) fn wait(&self, ticket: u64) -> impl Future<Output = Result<(), FlushFailure>> + Send + use<> {
        let shared = self.shared.clone();
        async move {
            let mut rx = shared.state.subscribe();
            loop {
                // Seen before the check: a flush published after it wakes us.
                rx.borrow_and_update();
                match shared.claim(ticket) {
                    Claim::Done(result) => return result,
                    Claim::Lead => shared.lead(),
                    // The sender lives in `shared`, which we hold: no error.
                    Claim::Follow => {
                        let _ = rx.changed().await;
                    }
                }
            }
        }
    }

    /// The last flush failure, if any flush of this handle failed.
    pub(crate) fn failure(&self) -> Option<FlushFailure> {
        self.shared.state.borrow().failed.as_ref().map(|(_, f)| f.clone())
    }

    /// Highest seq known durable.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.shared.state.borrow().seq
    }
}

impl Shared {
    fn io(&self) -> MutexGuard<'_, Option<Io>> {
        self.io.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `ticket` is settled, and if not, whether to lead the next flush.
    fn claim(&self, ticket: u64) -> Claim {
        let mut claim = Claim::Follow;
        self.state.send_if_modified(|s| {
            if s.ticket >= ticket {
                claim = Claim::Done(Ok(()));
            } else if let Some((covered, why)) = &s.failed
                && *covered >= ticket
            {
                claim = Claim::Done(Err(why.clone()));
            } else if s.closed {
                claim = Claim::Done(Err(FlushFailure { detail: "the log was closed".into(), disk_full: false }));
            } else if !s.leading {
                s.leading = true;
                claim = Claim::Lead;
            }
            false // followers need no wake-up for this
        });
        claim
    }

    /// One flush, as the leader: covers every write completed before it
    /// starts, then publishes the outcome (which ends the leadership).
    fn lead(&self) {
        /// Gives the leadership back even if the flush panics.
        struct Leading<'a>(&'a Shared, Option<(u64, u64, std::io::Result<()>)>);
        impl Drop for Leading<'_> {
            fn drop(&mut self) {
                let outcome = self.1.take();
                self.0.state.send_modify(|s| {
                    s.leading = false;
                    if let Some((ticket, seq, result)) = outcome {
                        s.publish(ticket, seq, result);
                    }
                });
            }
        }
        let mut leading = Leading(self, None);
        let io = self.io();
        if let Some(io) = io.as_ref() {
            let (ticket, seq) = self.counters();
            let result = blocking(|| io.files.flush_durably(&io.db));
            leading.1 = Some((ticket, seq, result));
        }
        drop(io);
    }

    /// The ticket and seq counters, read before a flush: every write they
    /// count completed before it starts, so the flush covers it.
    fn counters(&self) -> (u64, u64) {
        (self.tickets.load(Ordering::SeqCst), self.written_seq.load(Ordering::SeqCst))
    }
}

impl FlushState {
    fn publish(&mut self, ticket: u64, seq: u64, result: std::io::Result<()>) {
        match result {
            Ok(()) => {
                tracing::trace!(writes = ticket.saturating_sub(self.ticket), seq, "group commit");
                self.ticket = self.ticket.max(ticket);
                self.seq = self.seq.max(seq);
            }
            Err(e) => {
                let failure = FlushFailure::of(&e);
                tracing::error!(error = %e, disk_full = failure.disk_full, ticket, seq, "ward log flush failed: recent events are not durable");
                self.failed = Some((ticket, failure));
            }
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Waits for a running flush (its leader holds `io`), then a last
        // flush; dropping `io` releases the database clone, so the directory
        // can be reopened as soon as the last handle is gone.
        let io = self.shared.io().take();
        let outcome = io.map(|io| {
            let (ticket, seq) = self.shared.counters();
            (ticket, seq, blocking(|| io.files.flush_durably(&io.db)))
        });
        self.shared.state.send_modify(|s| {
            if let Some((ticket, seq, result)) = outcome {
                s.publish(ticket, seq, result);
            }
            s.closed = true;
        });
    }
}

/// Runs a blocking flush from async code: through `block_in_place` on a
/// multi-threaded tokio runtime (its other tasks move to another thread
/// meanwhile), directly anywhere else (a current-thread runtime, where
/// `block_in_place` is not allowed, or no runtime at all).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
