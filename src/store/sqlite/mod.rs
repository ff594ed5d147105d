//! The embedded store (`sqlite://PATH`, the default): the single-node engine, with every change
//! written to a SQLite file before it is answered.
//!
//! One connection in WAL mode; at open it migrates the schema and rebuilds the engine from the
//! tables (`load.rs`), then moves to the writer thread (`writer.rs`), which commits queued
//! changes in batches and wakes the requests each commit covers (`outcome.rs`; the store
//! timeout for waiting requests is one thread's, `deadline.rs`). Stored fields stay in the file and are read when asked, through a few
//! read-only connections (`reader.rs`). A second access-broker can never share the file: the node holds an
//! exclusive `flock` on `PATH.lock` and one on the database file itself for as long as the
//! store is open. Other processes may
//! read the file meanwhile (SQLite's normal WAL locking), which is what `backup.rs` does.

mod apply;
pub mod backup;
mod deadline;
mod load;
mod outbox;
mod outcome;
mod reader;
mod statements;
mod writer;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod purge_tests;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::local::LocalStore;
use super::{DynStore, OpenError, SqliteSync, StoreOptions, sweeper};

const MIGRATIONS: [&str; 8] = [
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_number_lifecycle.sql"),
    include_str!("../../../migrations/sqlite/0003_events_outbox.sql"),
    include_str!("../../../migrations/sqlite/0004_data_on_disk.sql"),
    include_str!("../../../migrations/sqlite/0005_expiry_indexes.sql"),
    include_str!("../../../migrations/sqlite/0006_without_rowid.sql"),
    include_str!("../../../migrations/sqlite/0007_retiring_index.sql"),
    include_str!("../../../migrations/sqlite/0008_reservation_client.sql"),
];

pub async fn open(path: &Path, options: &StoreOptions) -> Result<DynStore, OpenError> {
    let store: DynStore = Arc::new(open_local(path, options, |_| Ok(())).await?);
    sweeper::spawn(&store, options);
    Ok(store)
}

/// Opens the file and starts its writer; `tweak` runs on the writer's connection once the
/// engine is loaded (tests use it to cap the file's size: a real `SQLITE_FULL` without root).
async fn open_local(
    path: &Path,
    options: &StoreOptions,
    tweak: impl FnOnce(&Connection) -> Result<(), String> + Send + 'static,
) -> Result<LocalStore, OpenError> {
    let url = format!("sqlite://{}", path.display());
    let fail = |reason: String| OpenError::Failed {
        url: url.clone(),
        reason,
    };
    let fields = reader::SqliteFields::new(path, options.timeout);
    let (path, options_copy) = (path.to_owned(), options.clone());
    let (conn, lock, engine) = tokio::task::spawn_blocking(move || {
        let (lock, lock_path, made) = lock_file(&path)?;
        let opened = (|| {
            let mut conn = connect(&path, options_copy.sqlite_synchronous)?;
            let database = lock_database(&resolved(&path))?;
            check_whole(&conn)?;
            migrate(&mut conn)?;
            let mut engine = load::load(&mut conn, options_copy.clock.now())?;
            outbox::load(&conn, &mut engine)?;
            tweak(&conn)?;
            Ok::<_, String>((conn, engine, database))
        })();
        match opened {
            Ok((conn, engine, database)) => {
                let locks = Locks {
                    _database: database,
                    _beside: lock,
                };
                Ok((conn, locks, engine))
            }
            Err(reason) => {
                // A start that fails leaves nothing behind: the lock file it made goes.
                drop(lock);
                if made {
                    let _ = std::fs::remove_file(&lock_path);
                }
                Err(reason)
            }
        }
    })
    .await
    .map_err(|e| fail(e.to_string()))?
    .map_err(fail)?;
    let engine = Arc::new(parking_lot::Mutex::new(engine));
    let rebuild = writer::Rebuild {
        engine: engine.clone(),
        clock: options.clock.clone(),
    };
    let journal = writer::SqliteJournal::start(conn, lock, rebuild, options.timeout);
    Ok(
        LocalStore::durable(engine, options.clock.clone(), Box::new(journal), "sqlite")
            .with_events(options.bus.clone(), options.keep_outbox)
            .with_fields_on_disk(Box::new(fields)),
    )
}

/// Takes the node's exclusive lock on `PATH.lock` (created if missing, never removed: an
/// empty file), before SQLite opens or makes the database: it keeps a second node out of a
/// file being made, and names the holder in messages. The database itself is locked too
/// once it exists ([`lock_database`]), in case this file is removed while a node serves.
/// The lock ends with the process, so a node killed with SIGKILL leaves nothing to clean up.
/// Returns the locked file, its path, and whether this call made it.
fn lock_file(path: &Path) -> Result<(std::fs::File, std::path::PathBuf, bool), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create folder {}: {e}", dir.display()))?;
    }
    // The lock sits beside the file SQLite opens, whatever path leads there: a second node
    // reaching the file through a symlink took a lock of its own and double-booked.
    let path = &resolved(path);
    refuse_unfit(path)?;
    let lock_path = lock_name(path);
    let made = !lock_path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open lock file {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok((file, lock_path, made)),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "the file is in use by another process (another access-broker? it holds {})",
            lock_path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock {}: {e}", lock_path.display()))
        }
    }
}

/// The node's two locks on its file, held until the writer has closed the connection.
/// Released in this order (fields drop as declared): the database's first, so a node
/// starting meanwhile is refused by `PATH.lock`, with the message that names it.
pub struct Locks {
    _database: std::fs::File,
    _beside: std::fs::File,
}

/// Takes the node's second lock: an exclusive `flock` on the database file itself, once
/// SQLite has opened (or made) it. The lock file beside it ([`lock_file`]) names what holds
/// the file in messages and shows `backup` a serving node; this one holds when that file was
/// removed while a node served (a clean-up job, a tidy operator): a second node made a new
/// lock file, locked it, and both handed out the same number (an outside audit). On a local
/// filesystem, where the store belongs (docs/deploying.md), `flock` and SQLite's own POSIX
/// locks on the same file never meet.
fn lock_database(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open {} to lock it: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "the file is in use by another process (another access-broker holds {} itself; was {} removed?)",
            path.display(),
            lock_name(path).display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// `FILE.lock`: the lock a node serving `FILE` (resolved) holds.
pub(super) fn lock_name(file: &Path) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    std::path::PathBuf::from(name)
}

/// The file a path names: its symlinks followed (also a dangling one, for a file yet to be
/// made), its folder made absolute. A path that cannot be resolved is kept as given.
pub(super) fn resolved(path: &Path) -> std::path::PathBuf {
    let mut path = path.to_owned();
    // As the kernel does, give up after 40 links (a loop).
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return path;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::canonicalize(dir) {
        Ok(dir) => dir.join(name),
        Err(_) => path,
    }
}

/// Refuses a path that cannot be a store file: a directory, a device, FIFO or socket
/// (`/dev/null` failed with "disk I/O error" and left a journal beside it), or a file with a
/// second hard link, a path the lock beside this one does not cover (a node opening it there
/// started, kept a WAL of its own and double-booked).
fn refuse_unfit(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!(
            "{} is a directory: the store URL names the database file",
            path.display()
        )),
        Ok(meta) if !meta.is_file() => Err(format!(
            "{} is not a regular file (a device, FIFO or socket): the store URL names the database file",
            path.display()
        )),
        Ok(meta) if meta.nlink() > 1 => Err(format!(
            "{} has {} hard links: another path to it would escape this node's lock; remove the other links",
            path.display(),
            meta.nlink()
        )),
        _ => Ok(()),
    }
}

/// Refuses a damaged file before anything is written to it: the load reads the numbers and
/// reservations, not the stored fields (they stay on disk), so a damaged page there let the
/// node start, serve and write, while every `backup` of it failed. `quick_check` reads every
/// page once: 0.18 s for a million numbers (75 MB) here, warm.
fn check_whole(conn: &Connection) -> Result<(), String> {
    let said: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| explain(&e))?;
    match said.as_str() {
        "ok" => Ok(()),
        damage => Err(format!(
            "the file is damaged ({}); restore it from a backup",
            damage.replace('\n', "; ")
        )),
    }
}

fn connect(path: &Path, sync: SqliteSync) -> Result<Connection, String> {
    let conn = Connection::open(path).map_err(|e| format!("cannot open: {e}"))?;
    refuse_foreign(&conn)?;
    let synchronous = match sync {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    };
    // Normal (not exclusive) locking, so `access-broker backup` can read a consistent snapshot
    // from another process while this one writes; the lock file keeps other nodes out.
    let pragmas = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
    );
    conn.busy_timeout(Duration::from_millis(200))
        .map_err(|e| e.to_string())?;
    conn.execute_batch(&pragmas).map_err(|e| explain(&e))?;
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .map_err(|e| explain(&e))?;
    Ok(conn)
}

/// Refuses a file that holds tables but no schema of ours (`user_version` 0): another
/// application's database named by mistake. Checked before anything is written (the WAL
/// pragma below changes the file's header): it took such a file over, adding its tables
/// beside the other application's, or printed migration 1 whole when a table's name clashed.
fn refuse_foreign(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| explain(&e))?;
    if version != 0 {
        return Ok(());
    }
    let mut names = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 4")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>())
        .map_err(|e| explain(&e))?;
    if names.is_empty() {
        return Ok(());
    }
    if names.len() == 4 {
        names[3] = "…".into();
    }
    Err(format!(
        "holds tables that are not access-broker's ({}); refusing to write into another \
         application's database: give a new file",
        names.join(", ")
    ))
}

fn explain(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "the file is in use by another process (another access-broker?)".into()
        }
        Some(rusqlite::ErrorCode::NotADatabase) => "not a SQLite database".into(),
        // Without the statement's text (a migration's is dozens of lines).
        _ => match e {
            rusqlite::Error::SqlInputError { msg, offset, .. } => {
                format!("{msg} (at offset {offset})")
            }
            _ => e.to_string(),
        },
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
            .map_err(|e| format!("migration {}: {}", i + 1, explain(&e)))?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| explain(&e))?;
    }
    Ok(())
}
