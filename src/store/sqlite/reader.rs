//! Reading stored fields and `Idempotency-Key` answers from the SQLite file, beside the
//! writer: a few read-only connections, used on tokio's blocking pool, never under the
//! engine's lock.
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

use crate::domain::{DataId, UnixMillis};
use crate::store::local::fields::FieldReader;
use crate::store::{Fields, IdempotencyKey, StoreError};

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

impl SqliteFields {
    /// Runs `read` on an idle connection on the blocking pool, within the store's timeout.
    fn query<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let run = async {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .map_err(StoreError::unavailable)?;
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || inner.with_connection(read))
                    .await
                    .map_err(StoreError::unavailable)?
            };
            tokio::time::timeout(self.timeout, run).await.map_err(|_| {
                StoreError::unavailable(format!("sqlite read not done after {:?}", self.timeout))
            })?
        })
    }
}

impl FieldReader for SqliteFields {
    fn read(&self, id: DataId) -> BoxFuture<'_, Result<Option<Fields>, StoreError>> {
        self.query(move |conn| {
            let json: Option<String> = conn
                .prepare_cached("SELECT fields FROM data WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([id.as_str()], |r| r.get(0)).optional())
                .map_err(StoreError::unavailable)?;
            json.map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| StoreError::corrupt("data.fields", e))
        })
    }

    fn remembered(
        &self,
        key: IdempotencyKey,
        now: UnixMillis,
    ) -> BoxFuture<'_, Result<Option<Fields>, StoreError>> {
        self.query(move |conn| {
            let sql =
                "SELECT body FROM idempotency WHERE client = ?1 AND key = ?2 AND expires_at > ?3";
            let json: Option<String> = conn
                .prepare_cached(sql)
                .and_then(|mut stmt| {
                    stmt.query_row(rusqlite::params![key.client, key.key, now.0], |r| r.get(0))
                        .optional()
                })
                .map_err(StoreError::unavailable)?;
            json.map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| StoreError::corrupt("idempotency.body", e))
        })
    }
}

impl Inner {
    /// Runs `read` on an idle connection (opened if none), and keeps the connection for the
    /// next read unless the read failed.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.idle.lock().pop() {
            Some(conn) => conn,
            None => open(&self.path).map_err(StoreError::unavailable)?,
        };
        let result = read(&conn);
        if result.is_ok() {
            self.idle.lock().push(conn);
        }
        result
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
