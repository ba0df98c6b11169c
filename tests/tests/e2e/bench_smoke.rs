//! The benchmark suite (`treem-bench`, `scripts/bench.sh`) at its smallest
//! size, so it never rots: every stage must run and give a positive figure.
//! Nothing more — a benchmark never fails the suite over how fast it was.
//! Needs the service binaries (built by `cargo nextest run --workspace`)
//! and PostgreSQL (`apt-get install -y postgresql`; `scripts/bench.sh`
//! installs it).

use treem_tests::bench::{Options, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmark_stage_runs_and_gives_a_figure() {
    treem_tests::init_tracing();
    let bin_dir = crate::crash::bin("treem-ward").parent().expect("the binaries' directory").to_path_buf();
    let report = run(&Options::smoke(bin_dir)).await.expect("the benchmark suite runs");
    let table = report.table();
    assert!(report.failures.is_empty(), "stages failed:\n{table}");
    for stage in [
        "ward: durable records/s, 1 writer",
        "ward: durable records/s, 16 writers",
        "ward: CPU per record, 16 writers; signing alone",
        "ward → town replication",
        "town: events applied/s from a full stream",
        "catch-up:",
        "projection rebuild",
        "CPU per event over the full stream",
        "rebuild: in-order time per event",
        "town: the stream's signatures checked alone",
        "latency: record → visible at the town",
        "latency: record → visible at the province",
        "town API: indicator overview",
        "memory: ward idle",
        "memory: town after applying",
        "memory: province",
        "vs PostgreSQL: insert 1 event/txn, 1 client",
        "vs PostgreSQL: overview as SQL",
        "scale: Bình Phước 2021",
        "scale: Vietnam 2025",
    ] {
        assert!(report.rows.iter().any(|r| r.stage.starts_with(stage)), "no row for {stage:?}:\n{table}");
    }
    for row in &report.rows {
        assert!(row.figure > 0.0 && row.figure.is_finite(), "{:?} gave no figure:\n{table}", row.stage);
    }
}
