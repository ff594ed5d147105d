//! The long chaos run, a bench-style command (figures, not pass/fail; the figures go in
//! `docs/reliability.md`):
//!
//! ```text
//! TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5433/chaos CHAOS_STORE=postgres \
//!   CHAOS_SECS=600 CHAOS_NODES=3 CHAOS_PG_RESTART=1 cargo bench --bench chaos
//! CHAOS_STORE=sqlite CHAOS_SECS=3600 CHAOS_WORKERS=4 CHAOS_RATE=200 CHAOS_TMPFS=512m \
//!   cargo bench --bench chaos   # needs root (tmpfs)
//! ```
//!
//! Knobs: `CHAOS_NODES` (PostgreSQL; default 3), `CHAOS_WORKERS` (default 6),
//! `CHAOS_POOL` (numbers, default 200), `CHAOS_FAULT_EVERY_SECS` (default 4),
//! `CHAOS_SAMPLE_SECS` (RSS and sizes printed every so often, default 60), `CHAOS_TMPFS`
//! (SQLite tmpfs size, default 8m), `CHAOS_RATE` (request-interactions per second over all
//! workers, default 0 = as fast as they go; the file keeps every Idempotency-Key answer
//! 24 h, so a long run needs a rate whose rate × length fits the tmpfs), `CHAOS_FAULTS`
//! (only these kinds, comma-separated: `disk_full,kill9` on SQLite; `latency,
//! drop_connections,blackhole,db_unreachable,kill9,pg_restart` on PostgreSQL). `CHAOS_PG_RESTART=1` restarts PostgreSQL among the faults:
//! the cluster `CHAOS_PG_CLUSTER` names (`15/chaos`), else the one whose `postgresql.conf`
//! listens on the URL's port — give the run a cluster of its own, not a shared one.
//!
//! Same driver and checker as `tests/chaos.rs` (`tests/support/chaos/`); it exits 1 if the
//! checker found a violation.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::chaos::{Kind, Plan, run};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let kind = match std::env::var("CHAOS_STORE").as_deref() {
        Ok("sqlite") => Kind::Sqlite,
        _ => Kind::Postgres,
    };
    let plan = Plan {
        kind,
        nodes: if kind == Kind::Sqlite {
            1
        } else {
            env("CHAOS_NODES", 3) as usize
        },
        duration: Duration::from_secs(env("CHAOS_SECS", 600)),
        fault_every: Duration::from_secs(env("CHAOS_FAULT_EVERY_SECS", 4)),
        workers: env("CHAOS_WORKERS", 6) as usize,
        pool: env("CHAOS_POOL", 200) as usize,
        pg_restart: env("CHAOS_PG_RESTART", 0) == 1,
        sample_every: Duration::from_secs(env("CHAOS_SAMPLE_SECS", 60)),
        rate: env("CHAOS_RATE", 0),
        only_faults: std::env::var("CHAOS_FAULTS")
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    eprintln!("chaos: {plan:?}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(run(plan));
    println!("{report}");
    if report.verdict.violations() > 0 {
        std::process::exit(1);
    }
}
