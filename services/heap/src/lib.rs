//! The memory allocator every treem binary runs on, and its settings.
//!
//! Each binary declares it and calls [`configure`] first thing in `main`:
//!
//! ```text
//! #[global_allocator]
//! static ALLOCATOR: treem_heap::Allocator = treem_heap::Allocator;
//! ```
//!
//! **Why not glibc's malloc.** The town decodes a batch of events on the
//! preparation threads and frees them on the thread that folds the batch
//! in order. With glibc that free takes the lock of the arena the other
//! thread allocated from, while that thread allocates the next batch: in a
//! profile of the town applying a stream (BENCHMARKS.md) the fold thread
//! blocked on arena locks 15–20 times per 1,000-event batch, and a fold
//! of 1,000 events took 8.8 ms of CPU. mimalloc frees a block allocated
//! by another thread without a lock (into the page's thread-free list):
//! 6.5–7.3 ms of CPU, 2 blocks per batch, and the town applied a stream
//! 10–25 % faster in alternating runs (BENCHMARKS.md, "What was changed").
//!
//! **Memory.** mimalloc keeps freed pages a while before it returns them to
//! the system (its "purge delay"), and by default asks for transparent
//! huge pages (2 MiB) for its arenas, where one live block keeps a whole
//! 2 MiB resident. Both cost the town's peak memory (goal: under 200 MB
//! after a million events): huge pages and the default 1 s delay gave
//! 228 MB after 310,000 events against glibc's 99 MB; without huge pages
//! 153 MB; and with a 10 ms delay 115 MB. So huge pages are off — not
//! asked for (the crate's `no_thp` build) and refused for the process
//! where the system hands them out unasked (`PR_SET_THP_DISABLE`) — and
//! the delay is [`PURGE_DELAY_MS`].

use std::os::raw::{c_int, c_long};

pub use mimalloc::MiMalloc as Allocator;

/// How long mimalloc keeps freed pages before returning them to the
/// system (see the module doc for the figures that chose it).
pub const PURGE_DELAY_MS: c_long = 10;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (mimalloc.h, the
/// same position in its v2 and v3); the Rust bindings name only some of
/// the options.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Applies the settings above. Call it first in `main`, before the process
/// allocates much: huge pages refused later would still back what was
/// mapped before.
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: both calls only set a flag or an option value; neither
    // touches memory the program holds. A kernel without the prctl
    // returns an error, which changes nothing.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The purge delay mimalloc is running with.
    #[allow(unsafe_code)]
    fn purge_delay_ms() -> c_long {
        // SAFETY: reads an option value.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    /// Whether transparent huge pages are refused for this process.
    #[allow(unsafe_code)]
    fn huge_pages_refused() -> bool {
        // SAFETY: reads a flag of the process.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    #[test]
    fn configure_sets_the_purge_delay_and_refuses_huge_pages() {
        // The option at that position is the purge delay: mimalloc's own
        // default for it (v3: 1,000 ms) until set.
        assert_eq!(purge_delay_ms(), 1000, "mi_option_t position {MI_OPTION_PURGE_DELAY} is not the purge delay");
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        assert!(huge_pages_refused());
    }
}
