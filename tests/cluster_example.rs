//! `docs/cluster-example.sh` (the README's cluster example) runs as pasted, here with the debug
//! binary: two nodes on the test PostgreSQL, a reservation through node 1 matched through
//! node 2, both nodes stopped, its schema dropped and its directory removed.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::limit::Watchdog;
use support::process::BIN;

#[test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
fn cluster_example_runs_as_pasted() {
    let _watchdog = Watchdog::start(support::limit::time_limit().max(Duration::from_secs(180)));
    let pg = support::pg::require_url();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cluster-example.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("PG", &pg)
        .env("ACCESS_BROKER_BIN", BIN)
        .env_remove("RUST_LOG")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for needle in [
        "node 1: listening on 127.0.0.1:",
        "node 2: listening on 127.0.0.1:",
        "\"_access_code\":\"",
        "HTTP 200 {\"who\":\"Ann\",\"reason\":\"billing\",\"_id\":\"1-",
        "OK: reserved 650466000",
        " through node 1, matched session 1-",
        "stopping the nodes (SIGTERM) ...",
        "dropping schema access_broker_example_",
        "removed /",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from\n{stdout}");
    }

    // Nothing left behind: the temp directory and the schema are gone.
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("working in "))
        .expect("the script names its directory");
    assert!(!Path::new(dir).exists(), "{dir} still exists");
    let schema = stdout
        .lines()
        .find_map(|l| l.strip_prefix("dropping schema "))
        .and_then(|l| l.split_whitespace().next())
        .expect("schema name");
    let left = Command::new("psql")
        .args([&pg, "-Atc"])
        .arg(format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"
        ))
        .output()
        .expect("psql runs");
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
}
