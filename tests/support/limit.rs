//! Per-test time limits, so no test can hang the run.
//!
//! Two layers, because a hang can take two shapes. [`within`] races the test body against
//! `tokio::time::timeout` and fails just that test with a clear panic; this works while the
//! runtime still turns. A [`Watchdog`] is a plain thread that aborts the whole test binary
//! (printing which test) if it is still alive a little later: this catches a test whose
//! runtime thread is itself blocked, where no timer can fire. Every `TestStore`, `TestApp` and
//! `Cluster` holds one, so a test that opens any store is covered even without `within`.
//!
//! The limit is `TEST_TIME_LIMIT_SECS` (default 120 s); nextest users also get
//! `.config/nextest.toml`'s slow-timeout.

use std::future::Future;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

pub const ENV: &str = "TEST_TIME_LIMIT_SECS";
const DEFAULT: Duration = Duration::from_secs(120);
/// How much longer than the test's limit the watchdog waits before aborting the binary,
/// so the gentler `within` timeout always gets the first word.
const GRACE: Duration = Duration::from_secs(30);

/// The time one test may take: `TEST_TIME_LIMIT_SECS`, else 120 s.
pub fn time_limit() -> Duration {
    std::env::var(ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT, Duration::from_secs)
}

/// Runs `body` under the per-test time limit; past it the test fails naming the limit.
/// Dropping the timed-out body drops its stores and schemas, so cleanup still runs.
pub async fn within<F: Future>(body: F) -> F::Output {
    within_for(time_limit(), body).await
}

/// [`within`] with an explicit limit, for tests that are slow by design (cluster, outage).
pub async fn within_for<F: Future>(limit: Duration, body: F) -> F::Output {
    let _dog = Watchdog::start(limit);
    match tokio::time::timeout(limit, body).await {
        Ok(out) => out,
        Err(_) => panic!(
            "{} did not finish within {limit:?}: treated as a hang (raise {ENV} if the machine is just slow)",
            test_name()
        ),
    }
}

/// Aborts the test binary if still alive `limit` + 30 s after it started; stops on drop.
pub struct Watchdog {
    _stop: mpsc::Sender<()>,
}

impl Watchdog {
    pub fn start(limit: Duration) -> Watchdog {
        let name = test_name();
        let (stop, stopped) = mpsc::channel::<()>();
        let deadline = limit + GRACE;
        std::thread::Builder::new()
            .name(format!("watchdog {name}"))
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(deadline) {
                    // Written to the real stderr: `eprintln!` here would be captured by the
                    // test harness, and lost with the process.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nwatchdog: {name} is still running after {deadline:?}; its runtime is \
                         blocked or it ignored its time limit ({ENV}). Aborting the test binary \
                         so the run cannot hang."
                    );
                    std::process::abort();
                }
            })
            .expect("watchdog thread starts");
        Watchdog { _stop: stop }
    }

    /// A watchdog for the usual per-test limit.
    pub fn for_test() -> Watchdog {
        Watchdog::start(time_limit())
    }
}

/// libtest names each test's thread after the test.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => format!("test `{name}`"),
        _ => "the test".to_owned(),
    }
}
