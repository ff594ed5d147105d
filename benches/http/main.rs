//! The HTTP benchmark suite: `cargo bench --bench http`.
//!
//! Builds in release mode (cargo bench does), starts the floor (this binary with `--floor`,
//! see `floor.rs`) and the real
//! `access-broker` binary on each store, drives them over loopback with the same closed-loop
//! load generator, measures PostgreSQL's own floor with pgbench, prints a table and writes
//! `docs/performance.md` with PNG plots. Figures are ratios to floors measured in the same
//! run. Env: `BENCH_SECS` (measured window per scenario, default 5), `BENCH_WARMUP` (default
//! 1), `BENCH_STORES` (default `sqlite,memory,postgres`), `BENCH_POOLS` (default
//! `100,10000,1000000`), `BENCH_SQLITE_SYNC` (`full` or `normal`, default full), `BENCH_PG`
//! (default `postgres://postgres@127.0.0.1:5432/test`).

mod floor;
mod load;
mod pgfloor;
mod plot;
mod report;
mod server;

use std::time::Duration;

use report::Row;

pub struct Settings {
    pub window: Duration,
    pub warmup: Duration,
    pub stores: Vec<String>,
    pub pg: String,
    pub pools: Vec<usize>,
}

fn settings() -> Settings {
    let secs = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    Settings {
        window: Duration::from_secs(secs("BENCH_SECS", 5)),
        warmup: Duration::from_secs(secs("BENCH_WARMUP", 1)),
        stores: std::env::var("BENCH_STORES")
            .unwrap_or_else(|_| "sqlite,memory,postgres".into())
            .split(',')
            .map(str::to_owned)
            .collect(),
        pools: std::env::var("BENCH_POOLS")
            .unwrap_or_else(|_| "100,10000,1000000".into())
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect(),
        pg: std::env::var("BENCH_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
    }
}

/// The product's allocator, for the load generator and the floor alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == floor::ARG) {
        if let Err(err) = floor::serve().await {
            eprintln!("bench-floor: {err}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes harness=false benches; nothing to list.
    }
    let s = settings();
    let mut rows: Vec<Row> = Vec::new();
    for store in &s.stores {
        // A floor right before each store's scenarios: the machine's speed drifts within a
        // run, and each store's ratios are taken against the floor measured next to them.
        for conns in [8, 64] {
            let mut floor = server::floor(&s, conns).await;
            floor.store = format!("(before {store})");
            rows.push(floor);
        }
        for &pool in &s.pools {
            let Some(mut node) = server::Node::start(store, pool, &s).await else {
                continue;
            };
            for conns in [8, 64] {
                for scenario in [load::Scenario::Access, load::Scenario::Pairs] {
                    rows.push(node.run(scenario, conns, &s).await);
                }
            }
            if pool == 1_000_000 {
                rows.extend(node.scale_checks(&s).await);
            }
            node.stop(&s).await;
        }
        if store == "postgres" {
            for conns in [8, 64] {
                if let Some(r) = pgfloor::run(&s, conns).await {
                    rows.push(r);
                }
            }
        }
    }
    report::print(&rows);
    report::write(&rows, &s);
    plot::draw(&rows);
}
