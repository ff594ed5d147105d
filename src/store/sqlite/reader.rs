//! Reading stored fields from the SQLite file, beside the writer: a few read-only connections,
//! used on tokio's blocking pool, never under the engine's lock.
//!
//! Why separate connections: in WAL mode readers do not wait for the writer, so a large
//! entry being read never delays a commit, and a commit never delays a read. Each read is
//! its own short transaction, started after the changes it must see were committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::Semaphore;

use crate::domain::DataId;
use crate::store::local::fields::FieldReader;
use crate::store::{Fields, StoreError};

/// Most reads at once (and connections kept): enough for a few cores, small in memory.
const READERS: usize = 4;

pub struct SqliteFields {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl SqliteFields {
    pub fn new(path: &Path, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(READERS),
            }),
            timeout,
        }
    }
}

impl FieldReader for SqliteFields {
    fn read(&self, id: DataId) -> BoxFuture<'_, Result<Option<Fields>, StoreError>> {
        Box::pin(async move {
            let read = async {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .map_err(StoreError::unavailable)?;
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || inner.read(&id))
                    .await
                    .map_err(StoreError::unavailable)?
            };
            tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| {
                    StoreError::unavailable(format!(
                        "sqlite read not done after {:?}",
                        self.timeout
                    ))
                })?
        })
    }
}

impl Inner {
    fn read(&self, id: &DataId) -> Result<Option<Fields>, StoreError> {
        let conn = match self.idle.lock().pop() {
            Some(conn) => conn,
            None => open(&self.path).map_err(StoreError::unavailable)?,
        };
        let json: Option<String> = conn
            .prepare_cached("SELECT fields FROM data WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([id.as_str()], |r| r.get(0)).optional())
            .map_err(StoreError::unavailable)?;
        self.idle.lock().push(conn);
        json.map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| StoreError::corrupt("data.fields", e))
    }
}

/// A read-only connection with a small page cache (the entries it reads pass through once).
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_millis(200))?;
    conn.execute_batch("PRAGMA cache_size = -1024;")?;
    Ok(conn)
}
