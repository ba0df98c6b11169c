//! Giving the heap's free memory back to the operating system.
//!
//! Applying a stream allocates and frees a batch's worth of small buffers
//! on several threads (the preparation threads decode, the fold frees);
//! glibc keeps what was freed in its per-thread arenas, so the town's
//! resident memory grew with the stream it had applied (BENCHMARKS.md:
//! "Town memory"). [`release_free`] asks glibc to return free pages
//! (`malloc_trim(0)`: the top of each heap, and whole free pages inside
//! them through `madvise`). The consumer calls it after a committed batch,
//! at most every [`EVERY`], on the blocking thread that committed: it walks
//! the free lists while holding each arena's lock. Measured over a 1.23 M
//! event stream (BENCHMARKS.md, second runs): peak 269 MB without it, 224 MB
//! at most every second (apply 15,696/s against 16,160/s), 207 MB at most
//! every 100 ms (13,801/s) — so once a second.
//!
//! glibc's arenas (8 per core by default) are left as they are. Capping
//! them with `MALLOC_ARENA_MAX=2` in the town's environment lowers the
//! peak further — 142 MB against 163 MB after 1.21 M events — for 11 % of
//! the apply rate (20,878/s against 23,413/s; BENCHMARKS.md): an operator
//! short of memory may set it; glibc reads it at start.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shortest time between two trims (see the module doc for why a second).
pub const EVERY: Duration = Duration::from_millis(1000);

static LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// Returns the heap's free memory to the system, unless that was done less
/// than [`EVERY`] ago.
pub fn release_free() {
    {
        let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only inspects and releases glibc's own free
    // memory; it is thread-safe and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
