//! Build-time switches for the test suite, so a test that cannot or should not run here shows
//! up as `ignored` (with its reason) in `cargo test`'s summary instead of passing silently.
//!
//! libtest can only ignore a test when it is compiled, so the environment is read here:
//! - `no_postgres`: `TEST_POSTGRES_URL` is unset (or the `postgres` feature is off). Under
//!   `CI=true` it is never set, so a CI run without PostgreSQL fails instead of skipping.
//! - `outage_tests`: `ACCESS_BROKER_OUTAGE_TESTS=1`; the outage test restarts the machine's
//!   PostgreSQL, so it only runs when asked for (`.ci/run` asks).
//! - `browser_tests`: `ACCESS_BROKER_BROWSER_TESTS=1`; the browser test needs Chromium and
//!   chromium-driver installed (`.ci/run` installs them and asks).
//! - `disk_tests`: `ACCESS_BROKER_DISK_TESTS=1`; the disk-full test mounts a small tmpfs, so it
//!   needs root (`.ci/run` asks).
//! - `no_systemd_analyze`: no `systemd-analyze` on `PATH`, so `tests/deploy_files.rs` cannot
//!   verify `deploy/access-broker.service`. Looked up when this script runs (not re-checked
//!   when systemd is installed later: `touch build.rs` then).
//!
//! Changing one of these variables re-runs this script and rebuilds the crate and its tests
//! (the flags reach every target of the package); the library itself never reads them.

use std::env;

fn is_set(name: &str) -> bool {
    env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for name in [
        "TEST_POSTGRES_URL",
        "CI",
        "ACCESS_BROKER_OUTAGE_TESTS",
        "ACCESS_BROKER_BROWSER_TESTS",
        "ACCESS_BROKER_DISK_TESTS",
    ] {
        println!("cargo::rerun-if-env-changed={name}");
    }
    println!(
        "cargo::rustc-check-cfg=cfg(no_postgres, outage_tests, browser_tests, disk_tests, no_systemd_analyze)"
    );

    let ci = env::var("CI").is_ok_and(|v| v == "true");
    let postgres_feature = env::var_os("CARGO_FEATURE_POSTGRES").is_some();
    if !postgres_feature || !(is_set("TEST_POSTGRES_URL") || ci) {
        println!("cargo::rustc-cfg=no_postgres");
    }
    if is_set("ACCESS_BROKER_OUTAGE_TESTS") {
        println!("cargo::rustc-cfg=outage_tests");
    }
    if is_set("ACCESS_BROKER_DISK_TESTS") {
        println!("cargo::rustc-cfg=disk_tests");
    }
    if is_set("ACCESS_BROKER_BROWSER_TESTS") {
        println!("cargo::rustc-cfg=browser_tests");
    }
    if !on_path("systemd-analyze") {
        println!("cargo::rustc-cfg=no_systemd_analyze");
    }
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
