//! Which of the town's threads gets a core first when both are busy.
//!
//! Applying a stream, the town's in-order thread (fold and sled commit of
//! batch k) runs beside the threads preparing batch k + 1 (decoding, hashes,
//! signatures: [`crate::fold::prepare_batch`]), nats-server and sled's IO
//! threads, on two cores. The in-order thread sets the pace; the
//! preparation only has to be done before the next batch is due. So the
//! preparation threads run at a lower priority (nice [`PREPARE_NICE`]): when
//! they and the fold want the same core, the fold gets it. Raising a
//! thread's nice value needs no privilege; lowering it back would, so it is
//! done only on threads started for one batch's preparation.

/// The nice value of the preparation threads (0 is the default; 19 the lowest).
pub const PREPARE_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`PREPARE_NICE`] (Linux keeps a
/// nice value per thread); a thread already at that or lower keeps its own.
/// Failing changes nothing but the order threads get a core in, so an
/// error is ignored.
#[allow(unsafe_code)]
pub fn lower_this_thread() {
    if this_thread_nice() >= PREPARE_NICE {
        return;
    }
    // SAFETY: setpriority only changes the scheduling weight of the thread
    // named by its own id; it touches no memory.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, PREPARE_NICE);
    }
}

/// The calling thread's nice value.
#[allow(unsafe_code)]
fn this_thread_nice() -> i32 {
    // SAFETY: reads the scheduling weight of the calling thread.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_runs_at_the_preparation_nice_and_the_caller_does_not() {
        let before = this_thread_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            this_thread_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, PREPARE_NICE.max(before));
        assert_eq!(this_thread_nice(), before, "only the thread that asked is lowered");
    }
}
