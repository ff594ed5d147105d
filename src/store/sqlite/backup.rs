//! `access-broker backup`: a consistent copy of a SQLite store, taken by a separate process
//! while the node keeps serving and writing, with SQLite's online backup API.
//!
//! The store is opened read-only (this process never writes to it, and takes no node lock).
//! The copy is written to a hidden file next to the target, checked (`PRAGMA quick_check`),
//! switched to a single self-contained file (`journal_mode = DELETE`), synced, and only then
//! renamed to the target: a failed or interrupted backup never leaves a half copy under the
//! target's name (nor its hidden file: removed on failure, and by `main` on Ctrl-C or
//! SIGTERM), and `--force` replaces an old copy only once the new one is complete. Each
//! backup writes a hidden file of its own (the process id in its name): two backups to one
//! target both finish, and without `--force` the second is refused when it would replace
//! the first's copy. A backup killed outright leaves its hidden file: the next backup to the
//! same target removes it (`remove_abandoned`).
//! Restoring is `serve --store sqlite://COPY`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// Pages copied per step (4 KiB pages: 4 MiB): the node's writer thread never waits for a
/// step, and a small store is copied in one.
const PAGES_PER_STEP: i32 = 1024;
/// Pause between steps, so the copy leaves the disk to the node between them.
const PAUSE: Duration = Duration::from_millis(5);
/// A write by the node between two steps restarts the copy from the first page (SQLite's
/// rule for a source changed by another process). After this many restarts the rest is
/// copied in one step: one read transaction, which in WAL mode never blocks the node.
const MAX_RESTARTS: u32 = 3;
/// How long the store may stay locked (busy) before the backup gives up.
const BUSY_LIMIT: Duration = Duration::from_secs(30);

/// What a finished backup reports.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Copies the store at `source` to `to`. An existing `to` is refused unless `force` is set or
/// it is empty (as `mktemp` leaves it); `to` may never be the store itself.
pub fn backup(source: &Path, to: &Path, force: bool) -> Result<BackupReport, String> {
    let started = Instant::now();
    let store = format!("sqlite://{}", source.display());
    if !source.is_file() {
        // A relative store path is read from the current folder, which `sudo` and cron do
        // not set to the node's (the unit's `WorkingDirectory`).
        let from = match (source.is_relative(), std::env::current_dir()) {
            (true, Ok(dir)) => format!(" (a relative path, read from {})", dir.display()),
            _ => String::new(),
        };
        return Err(format!("store {store}: no such file{from}"));
    }
    check_target(source, to, force)?;
    lock_target(to).map_err(|e| format!("--to {}: {e}", to.display()))?;
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("store {store}: cannot open: {e}"))?;
    src.busy_timeout(Duration::from_secs(5))
        .map_err(|e| format!("store {store}: {e}"))?;
    let version: i64 = src
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| format!("store {store}: {e}"))?;
    if version < 1 {
        return Err(format!(
            "store {store}: not an access-broker store (no schema)"
        ));
    }

    remove_abandoned(to);
    let partial = partial_path(to);
    remove_partial(&partial);
    let result = copy(&src, &partial).and_then(|()| finish(&partial, to, force));
    if let Err(e) = result {
        remove_partial(&partial);
        return Err(format!("backup of {store} to {}: {e}", to.display()));
    }
    let bytes = std::fs::metadata(to)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", to.display()))?;
    Ok(BackupReport {
        path: to.to_owned(),
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Refuses a target that exists (unless forced, or empty) or that is the store or one of
/// its side files.
fn check_target(source: &Path, to: &Path, force: bool) -> Result<(), String> {
    let canonical_source = source
        .canonicalize()
        .map_err(|e| format!("{}: {e}", source.display()))?;
    to.file_name()
        .ok_or_else(|| format!("--to {}: not a file name", to.display()))?;
    // The copy is made in the target's folder: it must be there.
    match to.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.canonicalize().map(drop),
        None => std::env::current_dir().map(drop),
    }
    .map_err(|e| format!("--to {}: folder: {e}", to.display()))?;
    // The file the target names, its links followed, as a node's lock names it.
    let canonical_target = super::resolved(to);
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let mut side = canonical_source.as_os_str().to_owned();
        side.push(suffix);
        if canonical_target == Path::new(&side) {
            return Err(format!(
                "--to {}: that is the store's own file; choose another path",
                to.display()
            ));
        }
    }
    match std::fs::metadata(to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("--to {}: {e}", to.display())),
        Ok(m) if !m.is_file() => Err(format!("--to {}: not a regular file", to.display())),
        Ok(m) if m.len() == 0 || force => Ok(()),
        Ok(_) => Err(format!(
            "--to {}: the file exists; pass --force to replace it",
            to.display()
        )),
    }
}

/// `DIR/.NAME.partial-PID`: same folder as the target, so the final rename is atomic; this
/// process's own, so two backups to one target do not write one file.
pub fn partial_path(to: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    to.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Removes the hidden files of earlier backups to `to` whose process is gone: a backup
/// killed outright (`kill -9`, a power cut) cannot remove its own, and nothing else would
/// (an outside audit found them piling up beside the copies, 6–14 MB each). A file whose
/// process still runs (a backup under way, or a new process that took a dead one's id) is
/// left alone. Processes are looked up in `/proc`: elsewhere nothing is removed.
fn remove_abandoned(to: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Some(name) = to.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.partial-");
    let dir = match to.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_owned(),
        None => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let gone = pid.parse::<u32>().is_ok_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        });
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes a copy that will not be finished, and the side files SQLite made beside it.
pub fn remove_partial(partial: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut side = partial.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
}

/// Takes the locks a node serving `to` would hold (`FILE.lock` and the database file itself,
/// `store/sqlite/mod.rs`), for those that are there: refused while a node holds either. Kept
/// until the copy is in place. (With `FILE.lock` removed while a node served, a forced backup
/// took the file from under it: the node's WAL deleted, its database renamed over.)
fn lock_target(to: &Path) -> Result<Vec<std::fs::File>, String> {
    let target = super::resolved(to);
    let name = super::lock_name(&target);
    let mut held = Vec::new();
    for path in [&name, &target] {
        let Ok(file) = std::fs::File::open(path) else {
            continue;
        };
        match file.try_lock() {
            Ok(()) => held.push(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "a node serves that file (it holds {}); stop it first",
                    path.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.to_string()),
        }
    }
    Ok(held)
}

/// What SQLite says went wrong, in words: its result code's own text when the message is
/// empty or the placeholder "not an error" (the backup API reports a failed step of the
/// copy's connection, a full disk say, through the source's message).
fn said(e: rusqlite::Error) -> String {
    match &e {
        rusqlite::Error::SqliteFailure(code, message) => match message.as_deref() {
            None | Some("not an error") => code.to_string(),
            Some(message) => format!("{message} ({code})"),
        },
        _ => e.to_string(),
    }
}

/// The online backup, step by step. (`Backup::run_to_completion` does the same loop but
/// cannot see restarts or bound a busy store, so the loop is written out.)
fn copy(src: &Connection, partial: &Path) -> Result<(), String> {
    let mut dst = Connection::open(partial).map_err(said)?;
    {
        let backup = Backup::new(src, &mut dst).map_err(said)?;
        let mut restarts = 0;
        let mut last_remaining = i32::MAX;
        let mut busy_since: Option<Instant> = None;
        loop {
            let pages = if restarts >= MAX_RESTARTS {
                -1
            } else {
                PAGES_PER_STEP
            };
            match backup.step(pages).map_err(said)? {
                StepResult::Done => break,
                StepResult::More => {
                    busy_since = None;
                    let remaining = backup.progress().remaining;
                    if remaining > last_remaining {
                        restarts += 1;
                    }
                    last_remaining = remaining;
                    std::thread::sleep(PAUSE);
                }
                StepResult::Busy | StepResult::Locked => {
                    let since = *busy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > BUSY_LIMIT {
                        return Err(format!(
                            "the store stayed locked for {} s",
                            BUSY_LIMIT.as_secs()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                // StepResult is non-exhaustive.
                _ => std::thread::sleep(PAUSE),
            }
        }
    }
    let check: String = dst
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(said)?;
    if check != "ok" {
        let check = check.replace('\n', "; ");
        return Err(format!("the copy fails its check: {check}"));
    }
    // One self-contained file: the copy needs no -wal beside it.
    dst.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(said)?;
    dst.close().map_err(|(_, e)| said(e))
}

/// Syncs the copy and moves it into place, then syncs the folder so the rename lasts. Without
/// `force` a copy that appeared at the target meanwhile (another backup's) is not replaced.
fn finish(partial: &Path, to: &Path, force: bool) -> Result<(), String> {
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    // A node serving the target keeps its lock; the old file's WAL and journal must not stay
    // beside the new one (SQLite would replay them onto it: a restore drill's writes came
    // back over the copy).
    let _served = lock_target(to)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = to.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(&side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{}: {e}", Path::new(&side).display()));
            }
            _ => {}
        }
    }
    let replace = force || std::fs::metadata(to).is_ok_and(|m| m.len() == 0);
    match replace {
        true => std::fs::rename(partial, to).map_err(|e| e.to_string())?,
        // A link is made only where no file is: the check and the move in one step.
        false => match std::fs::hard_link(partial, to) {
            Ok(()) => {
                let _ = std::fs::remove_file(partial);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(
                    "the file exists now (another backup wrote it meanwhile); pass --force to replace it"
                        .into(),
                );
            }
            // A filesystem without hard links: the check at the start stands.
            Err(_) => std::fs::rename(partial, to).map_err(|e| e.to_string())?,
        },
    }
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
