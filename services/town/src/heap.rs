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
//! Before any thread starts, [`limit_arenas`] caps glibc's arenas at the
//! core count (at least 2; glibc's default is 8 per core): every blocking
//! thread that folded or prepared a batch otherwise got an arena of its
//! own, each keeping freed memory of its own. Measured over a 305,000 event
//! stream (BENCHMARKS.md): peak 139–157 MB with glibc's default, 94 MB with
//! 2 arenas, at the same apply rate. An operator's own `MALLOC_ARENA_MAX`
//! is left as it is.

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

/// Caps the heap's arenas (see the module doc). Call first thing in
/// `main`, before the runtime's threads exist.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
    set_arena_max(cores.clamp(2, 8));
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: usize) {
    // SAFETY: mallopt sets one of glibc's allocator parameters; it takes no
    // pointer and may be called at any time (arenas made already stay).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas as libc::c_int);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: usize) {}

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
