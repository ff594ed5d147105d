//! The short chaos run (CI): real nodes under load while faults are injected, then the
//! history checker (`support/chaos/history.rs`) must find no violation. PostgreSQL: three
//! nodes behind fault proxies (latency, dropped connections, a blackholed node, the database
//! unreachable for one node, `kill -9`; a PostgreSQL restart too when outage tests are on).
//! SQLite: one node on a tmpfs that fills up, and `kill -9`. The long run is
//! `benches/chaos.rs`; its figures are in `docs/reliability.md`.

mod support;

use std::time::Duration;

use support::chaos::{Kind, Plan, run};

fn secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn postgres_cluster_under_faults_keeps_every_promise() {
    let plan = Plan {
        kind: Kind::Postgres,
        nodes: 3,
        duration: secs("CHAOS_SECS", 25),
        fault_every: Duration::from_secs(3),
        workers: 6,
        pool: 100,
        pg_restart: cfg!(outage_tests),
        sample_every: secs("CHAOS_SAMPLE_SECS", 60),
        rate: 0,
        only_faults: vec![],
    };
    let report = support::limit::within_for(Duration::from_secs(300), run(plan)).await;
    eprintln!("{report}");
    assert_eq!(report.verdict.violations(), 0, "{report}");
    assert!(
        report.answers.get(&200).copied().unwrap_or(0) > 50,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(disk_tests),
    ignore = "needs root to mount a tmpfs: set ACCESS_BROKER_DISK_TESTS=1"
)]
async fn sqlite_node_under_a_filling_disk_keeps_every_promise() {
    let plan = Plan {
        kind: Kind::Sqlite,
        nodes: 1,
        duration: secs("CHAOS_SECS", 20),
        fault_every: Duration::from_secs(3),
        workers: 4,
        pool: 100,
        pg_restart: false,
        sample_every: secs("CHAOS_SAMPLE_SECS", 60),
        rate: 0,
        only_faults: vec![],
    };
    let report = support::limit::within_for(Duration::from_secs(300), run(plan)).await;
    eprintln!("{report}");
    assert_eq!(report.verdict.violations(), 0, "{report}");
    assert_eq!(
        report.verdict.released_by_a_503, 0,
        "SQLite knows every outcome: {report}"
    );
    assert!(
        report.answers.get(&200).copied().unwrap_or(0) > 50,
        "{report}"
    );
}
