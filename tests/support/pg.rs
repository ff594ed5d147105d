//! A PostgreSQL schema per test, named in the store URL's `options`, dropped afterwards.
//!
//! Whether PostgreSQL tests run is decided when they are built (see `build.rs`): without
//! `TEST_POSTGRES_URL` they are compiled as `#[ignore]`d, so the summary counts them as
//! ignored. Mark a test that needs PostgreSQL with [`IGNORE`]'s attribute:
//! `#[cfg_attr(no_postgres, ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test")]`.
//!
//! Dropping a [`Schema`] never waits on the test's runtime: it runs on its own thread with its
//! own connections, and ends every backend that blocks the `DROP SCHEMA` (a store the test
//! dropped may still have a transaction open there, whose connection task could only finish
//! on the very runtime the drop is blocking: the 20-minute hang of issue 10). The drop runs
//! under `lock_timeout`, and `Drop` gives up after 30 s with a warning rather than hang.

use std::time::Duration;

use access_broker::store::StoreUrl;

pub const ENV: &str = "TEST_POSTGRES_URL";
/// The reason shown for PostgreSQL tests compiled without a URL; keep it in step with the
/// literal in the `ignore` attributes (attributes cannot name a constant).
pub const IGNORE: &str =
    "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test";

/// True when this build runs the PostgreSQL tests (not `no_postgres`).
pub const ENABLED: bool = !cfg!(no_postgres);

/// How long the drop may wait for locks on the schema (its blockers are being ended
/// meanwhile), and how long `Drop` waits for the whole cleanup before leaving the schema.
const DROP_LOCK_TIMEOUT: &str = "20s";
const DROP_DEADLINE: Duration = Duration::from_secs(30);

/// The base URL of the test database.
///
/// Tests built with PostgreSQL enabled (URL set at build time, or `CI=true`) panic when it is
/// missing now, because they are counted as run. In a `no_postgres` build this returns `None`
/// after printing one `skipped:` line: only a test that forgot its `ignore` attribute, or one
/// run with `--include-ignored`, gets here; use [`require_url`] to fail instead.
pub fn base_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{ENV} is not set, and CI=true requires the PostgreSQL tests")
        }
        _ if ENABLED => panic!(
            "{ENV} was set when this test was built but is not set now; set it again \
             (or rebuild without it to have these tests ignored)"
        ),
        _ => {
            eprintln!("skipped: PostgreSQL test; {IGNORE}");
            None
        }
    }
}

/// The base URL, or a panic saying how to provide one.
pub fn require_url() -> String {
    base_url().unwrap_or_else(|| panic!("this test {IGNORE}"))
}

pub struct Schema {
    base: String,
    name: String,
}

impl Schema {
    /// A fresh schema; `None` (after one `skipped:` line) when PostgreSQL is not configured.
    #[cfg(feature = "postgres")]
    pub async fn create() -> Option<Schema> {
        let base = base_url()?;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let client = connect(&base).await;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        Some(Schema { base, name })
    }

    #[cfg(not(feature = "postgres"))]
    pub async fn create() -> Option<Schema> {
        eprintln!("skipped: PostgreSQL test; built without the postgres feature");
        None
    }

    /// A fresh schema, or a panic saying how to enable PostgreSQL tests.
    pub async fn require() -> Schema {
        match Schema::create().await {
            Some(schema) => schema,
            None => panic!("this test {IGNORE}"),
        }
    }

    pub fn url(&self) -> StoreUrl {
        self.url_string().parse().expect("store url")
    }

    /// The URL with the schema as `search_path`, password included (for child processes).
    pub fn url_string(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(feature = "postgres")]
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to test database");
    tokio::spawn(conn);
    client
}

impl Drop for Schema {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        {
            if std::env::var_os("KEEP_TEST_DB").is_some() {
                eprintln!("kept schema {}", self.name);
                return;
            }
            let (base, name) = (self.base.clone(), self.name.clone());
            // Its own thread and runtime: the test's runtime may be the one being dropped
            // from, and must not be needed for the cleanup to finish.
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let outcome = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| rt.block_on(drop_schema(&base, &name)));
                let _ = done.send(outcome);
            });
            match finished.recv_timeout(DROP_DEADLINE) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: test schema {} left behind: {e}", self.name),
                Err(_) => eprintln!(
                    "warning: test schema {} not dropped within {DROP_DEADLINE:?}; left behind",
                    self.name
                ),
            }
        }
    }
}

/// Drops the schema on one connection while a second ends every backend that blocks the drop
/// (`pg_blocking_pids`): a transaction still open on the schema, even one that created tables
/// there and has not committed, is ended rather than waited for.
#[cfg(feature = "postgres")]
async fn drop_schema(base: &str, name: &str) -> Result<(), String> {
    let dropper = cleanup_connection(base).await?;
    let watcher = cleanup_connection(base).await?;
    let pid: i32 = dropper
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(describe)?
        .get(0);
    let sql =
        format!("SET lock_timeout = '{DROP_LOCK_TIMEOUT}'; DROP SCHEMA IF EXISTS {name} CASCADE");
    let drop = dropper.batch_execute(&sql);
    let end_blockers = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let ended = watcher
                .execute(
                    "SELECT pg_terminate_backend(b) FROM unnest(pg_blocking_pids($1)) b",
                    &[&pid],
                )
                .await;
            if let Err(e) = ended {
                return describe(e);
            }
        }
    };
    tokio::select! {
        dropped = drop => dropped.map_err(|e| format!("drop: {}", describe(e))),
        failed = end_blockers => Err(format!("ending the drop's blockers: {failed}")),
    }
}

#[cfg(feature = "postgres")]
async fn cleanup_connection(base: &str) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = base.parse().map_err(describe)?;
    config
        .connect_timeout(Duration::from_secs(5))
        .application_name("access-broker test cleanup");
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connect: {}", describe(e)))?;
    tokio::spawn(conn);
    Ok(client)
}

/// The server's message when there is one (`Display` alone says only "db error").
#[cfg(feature = "postgres")]
fn describe(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}
