//! The storage API's writes on PostgreSQL, a batch at a time (`batch.rs`): new entries
//! (`POST /genesys/1/storage/{ttl}`) and changes to one (`POST …/{id}/{ttl}`, its fields
//! merged in) together, deletes apart; each batch one transaction and one WAL flush for
//! every call of its kind made meanwhile (each was a transaction of its own).
//!
//! Each batch answers as the calls would one by one in arrival order: changes to one entry
//! merge in turn and the last one's ttl sets its expiry; an entry deleted twice is found by
//! the first delete only. A batch of changes locks its entries in id order.

use hashbrown::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use tokio_postgres::types::Type;

use super::pg_error;
use super::prepared::{Stmt, send};
use super::sessions::{bytes, data_rows, decode, encode, ms};
use crate::domain::DataId;
use crate::events::Event;
use crate::store::{Fields, StoreError, merge_fields};

/// One entry's write: its id, its fields, its ttl from the batch's clock.
pub type Entry = (DataId, Fields, Duration);

/// What a write does with its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new entry (its id is new, `DataId::generate`).
    New,
    /// The fields merged into the live entry; `false` when there is none.
    Change,
}

/// New entries and changes to entries as a batch. They cannot meet in one: a new entry's
/// id is known to its caller only once its batch has committed.
pub struct Writing;

/// Deletes of entries as a batch: `false` when there is no live entry.
pub struct Deleting;

/// The rows a batch writes with its `COMMIT`, by id: the fields and the ttl in ms from the
/// transaction's `now`; and a test's frozen time.
pub struct Rows(Vec<(String, Fields, i64)>, Option<i64>);

impl super::batch::Work for Writing {
    type Req = (Write, Entry);
    type Ans = Result<bool, StoreError>;
    type Plan = Rows;

    /// The live entries the changes name locked and read, then each write applied in
    /// arrival order.
    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[Self::Req],
    ) -> Result<(Vec<Self::Ans>, Self::Plan), StoreError> {
        let frozen = db.frozen();
        let mut ids: Vec<&str> = reqs
            .iter()
            .filter(|(write, _)| *write == Write::Change)
            .map(|(_, (id, _, _))| id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut live: HashMap<String, (Fields, i64)> = HashMap::with_capacity(reqs.len());
        if !ids.is_empty() {
            static SQL: LazyLock<String> = LazyLock::new(|| {
                format!(
                    "SELECT id, fields FROM data WHERE id = ANY($1) AND expires_at > {}
                     ORDER BY id FOR UPDATE",
                    super::claim::now_param(2)
                )
            });
            let read = Stmt::new(SQL.as_str())
                .bind(ids, Type::TEXT_ARRAY)
                .bind(frozen, Type::INT8);
            let found = send(client, &[read]).await.map_err(pg_error)?;
            for row in &found[0] {
                live.insert(row.get(0), (decode(row.get(1))?, 0));
            }
        }
        let mut order: Vec<String> = Vec::with_capacity(reqs.len());
        let answers = reqs
            .iter()
            .map(|(write, (id, fields, ttl))| {
                let ttl = ms(ttl);
                match (write, live.get_mut(id.as_str())) {
                    (Write::New, _) => {
                        live.insert(id.as_str().to_owned(), (fields.clone(), ttl));
                    }
                    (Write::Change, Some(entry)) => {
                        merge_fields(&mut entry.0, fields.clone());
                        entry.1 = ttl;
                    }
                    (Write::Change, None) => return Ok(false),
                }
                order.push(id.as_str().to_owned());
                Ok(true)
            })
            .collect();
        order.sort_unstable();
        order.dedup();
        let rows = order
            .into_iter()
            .filter_map(|id| live.remove(&id).map(|(fields, ttl)| (id, fields, ttl)))
            .collect();
        Ok((answers, Rows(rows, frozen)))
    }

    async fn write(
        client: &deadpool_postgres::Client,
        _reqs: &[Self::Req],
        rows: &Rows,
        finish: &mut super::batch::Finish,
    ) -> Result<Vec<Event>, StoreError> {
        finish.last(client, &[upsert(rows)]).await?;
        Ok(Vec::new())
    }

    fn failed(err: StoreError) -> Self::Ans {
        Err(err)
    }
}

impl super::batch::Work for Deleting {
    type Req = DataId;
    type Ans = Result<bool, StoreError>;
    type Plan = ();

    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[DataId],
    ) -> Result<(Vec<Self::Ans>, Self::Plan), StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "DELETE FROM data WHERE id = ANY($1) AND expires_at > {} RETURNING id",
                super::claim::now_param(2)
            )
        });
        let mut ids: Vec<&str> = reqs.iter().map(DataId::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        let delete = Stmt::new(SQL.as_str())
            .bind(ids, Type::TEXT_ARRAY)
            .bind(db.frozen(), Type::INT8);
        let deleted = send(client, &[delete]).await.map_err(pg_error)?;
        let mut live: hashbrown::HashSet<String> = deleted[0].iter().map(|r| r.get(0)).collect();
        // In arrival order: the first delete of an entry found it, a second did not.
        let answers = reqs.iter().map(|id| Ok(live.remove(id.as_str()))).collect();
        Ok((answers, ()))
    }

    async fn write(
        client: &deadpool_postgres::Client,
        _reqs: &[DataId],
        _plan: &(),
        finish: &mut super::batch::Finish,
    ) -> Result<Vec<Event>, StoreError> {
        finish.last(client, &[]).await?;
        Ok(Vec::new())
    }

    fn failed(err: StoreError) -> Self::Ans {
        Err(err)
    }
}

/// Every row of the batch written in one statement (`sessions::data_rows`).
fn upsert(rows: &Rows) -> Stmt<'_> {
    let ids: Vec<&str> = rows.0.iter().map(|(id, _, _)| id.as_str()).collect();
    let fields: Vec<String> = rows.0.iter().map(|(_, f, _)| encode(f)).collect();
    let ttls: Vec<i64> = rows.0.iter().map(|(_, _, ttl)| *ttl).collect();
    let sizes: Vec<i64> = rows.0.iter().map(|(_, f, _)| bytes(f)).collect();
    data_rows(ids, fields, ttls, sizes, rows.1)
}
