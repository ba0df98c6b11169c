//! A short seeded fault-injection run of the whole system, as processes:
//! nats-server, the province, the town and four wards, every NATS client
//! behind its own proxy, while a seeded schedule kills services (kill -9),
//! kills and restarts nats-server, cuts, slows and breaks links and
//! re-publishes old stream messages. Afterwards every invariant of
//! DESIGN.md §3 must hold (see `treem_tests::faults`).
//!
//! The seed is fixed ([`faults::SHORT_RUN_SEED`], whose 20 s schedule holds
//! every kind of fault) so CI replays the same schedule every time; set
//! `TREEM_FAULT_SEED=<n>` to replay another (for instance one a failing
//! `treem-soak` run printed). Longer runs: `target/debug/treem-soak`
//! (RELIABILITY.md, "Fault injection").

use treem_tests::faults::{self, Params};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_fault_run_loses_nothing_and_applies_everything_once() {
    treem_tests::init_tracing();
    let seed = std::env::var("TREEM_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(faults::SHORT_RUN_SEED);
    let params = Params::short(seed, faults::system::bin_dir_near_exe());
    let report = faults::run(&params).await;
    println!("{}", report.summary());
    assert!(report.faults_total >= 8, "the schedule injected too few faults to mean anything:\n{}", report.summary());
    assert!(report.events_acknowledged >= 100, "the load recorded too little to mean anything:\n{}", report.summary());
    assert_eq!((report.events_lost, report.applied_twice), (0, 0), "{}", report.summary());
    assert!(report.passed(), "fault run with seed {seed} failed (rerun: TREEM_FAULT_SEED={seed}):\n{}", report.summary());
}
