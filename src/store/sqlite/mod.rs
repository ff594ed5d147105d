//! The embedded store (`sqlite://PATH`, the default): the single-node engine, with every change
//! written to a SQLite file before it is answered.
//!
//! One connection, opened in exclusive locking mode so a second process can never share the
//! file; at open it migrates the schema and rebuilds the engine from the tables (`load.rs`),
//! then moves to the writer thread (`writer.rs`), which commits queued changes in batches.

mod load;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::local::LocalStore;
use super::{DynStore, OpenError, SqliteSync, StoreOptions, sweeper};

const MIGRATIONS: [&str; 1] = [include_str!("../../../migrations/sqlite/0001_init.sql")];

pub async fn open(path: &Path, options: &StoreOptions) -> Result<DynStore, OpenError> {
    let url = format!("sqlite://{}", path.display());
    let fail = |reason: String| OpenError::Failed {
        url: url.clone(),
        reason,
    };
    let (path, options_copy) = (path.to_owned(), options.clone());
    let (conn, engine) = tokio::task::spawn_blocking(move || {
        let mut conn = connect(&path, options_copy.sqlite_synchronous)?;
        migrate(&mut conn)?;
        let engine = load::load(&mut conn, options_copy.clock.now())?;
        Ok::<_, String>((conn, engine))
    })
    .await
    .map_err(|e| fail(e.to_string()))?
    .map_err(fail)?;
    let journal = writer::SqliteJournal::start(conn, options.timeout);
    let store: DynStore = Arc::new(LocalStore::durable(
        engine,
        options.clock.clone(),
        Box::new(journal),
        "sqlite",
    ));
    sweeper::spawn(&store, Duration::from_secs(30));
    Ok(store)
}

fn connect(path: &Path, sync: SqliteSync) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create folder {}: {e}", dir.display()))?;
    }
    let conn = Connection::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let synchronous = match sync {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    };
    // Exclusive mode: the first write takes a lock this process keeps until it exits, so a
    // second access-broker on the same file fails at start instead of double-booking.
    let pragmas = format!(
        "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
    );
    conn.busy_timeout(Duration::from_millis(200))
        .map_err(|e| e.to_string())?;
    conn.execute_batch(&pragmas).map_err(|e| explain(&e))?;
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .map_err(|e| explain(&e))?;
    Ok(conn)
}

fn explain(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "the file is in use by another process (another access-broker?)".into()
        }
        Some(rusqlite::ErrorCode::NotADatabase) => "not a SQLite database".into(),
        _ => e.to_string(),
    }
}

/// Applies the migrations newer than the file's `user_version`, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<(), String> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| explain(&e))?;
    if version > MIGRATIONS.len() {
        return Err(format!(
            "schema version {version} is newer than this build knows ({})",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(|e| explain(&e))?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {}: {e}", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| explain(&e))?;
    }
    Ok(())
}
