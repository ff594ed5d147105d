//! The storage API's writes on PostgreSQL, a batch at a time (`batch.rs`): new entries
//! (`POST /genesys/1/storage/{ttl}`), changes to one (`POST …/{id}/{ttl}`, its fields merged
//! in) and deletes, each kind batched apart, each batch one transaction and one WAL flush for
//! every call of its kind made meanwhile (each was a transaction of its own).
//!
//! Each batch answers as the calls would one by one in arrival order: changes to one entry
//! merge in turn and the last one's ttl sets its expiry; an entry deleted twice is found by
//! the first delete only. A batch of changes locks its entries in id order.

use hashbrown::HashMap;
use std::time::Duration;

use super::pg_error;
use super::prepared::{Prepared as _, Stmt};
use super::sessions::{bytes, data_rows, decode, encode, ms};
use crate::domain::DataId;
use crate::events::Event;
use crate::store::{Fields, StoreError, merge_fields};

/// One entry's write: its id, its fields, its ttl from the batch's clock.
pub type Entry = (DataId, Fields, Duration);

/// New entries as a batch; their ids are new (`DataId::generate`).
pub struct Putting;

/// Changes to entries as a batch: the fields merged into the live entry, or `false` when
/// there is none.
pub struct Updating;

/// Deletes of entries as a batch: `false` when there is no live entry.
pub struct Deleting;

/// The rows a batch writes with its `COMMIT`, by id: the fields and the expiry.
pub struct Rows(Vec<(String, Fields, i64)>);

impl super::batch::Work for Putting {
    type Req = Entry;
    type Ans = Result<(), StoreError>;
    type Plan = Rows;

    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[Entry],
    ) -> Result<(Vec<Self::Ans>, Self::Plan), StoreError> {
        let now = super::claim::now(client, db.frozen()).await?;
        let rows = last_by_id(
            reqs.iter()
                .map(|(id, fields, ttl)| (id.as_str().to_owned(), fields.clone(), now + ms(ttl))),
        );
        Ok((reqs.iter().map(|_| Ok(())).collect(), rows))
    }

    async fn write(
        client: &deadpool_postgres::Client,
        _reqs: &[Entry],
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

impl super::batch::Work for Updating {
    type Req = Entry;
    type Ans = Result<bool, StoreError>;
    type Plan = Rows;

    /// The live entries locked and read, then each change merged in arrival order.
    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[Entry],
    ) -> Result<(Vec<Self::Ans>, Self::Plan), StoreError> {
        let now = super::claim::now(client, db.frozen()).await?;
        let mut ids: Vec<&str> = reqs.iter().map(|(id, _, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let found = client
            .query_cached(
                "SELECT id, fields FROM data WHERE id = ANY($1) AND expires_at > $2
                 ORDER BY id FOR UPDATE",
                &[&ids, &now],
            )
            .await
            .map_err(pg_error)?;
        let mut live: HashMap<String, (Fields, i64)> = HashMap::with_capacity(found.len());
        for row in found {
            live.insert(row.get(0), (decode(row.get(1))?, 0));
        }
        let answers = reqs
            .iter()
            .map(|(id, update, ttl)| match live.get_mut(id.as_str()) {
                Some((fields, expires_at)) => {
                    merge_fields(fields, update.clone());
                    *expires_at = now + ms(ttl);
                    Ok(true)
                }
                None => Ok(false),
            })
            .collect();
        let rows = live
            .into_iter()
            .map(|(id, (fields, expires_at))| (id, fields, expires_at))
            .collect();
        Ok((answers, Rows(rows)))
    }

    async fn write(
        client: &deadpool_postgres::Client,
        _reqs: &[Entry],
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
        let now = super::claim::now(client, db.frozen()).await?;
        let mut ids: Vec<&str> = reqs.iter().map(DataId::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        let deleted = client
            .query_cached(
                "DELETE FROM data WHERE id = ANY($1) AND expires_at > $2 RETURNING id",
                &[&ids, &now],
            )
            .await
            .map_err(pg_error)?;
        let mut live: hashbrown::HashSet<String> = deleted.iter().map(|r| r.get(0)).collect();
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

/// One row per id, the last write of each (as one by one: the last one wins); one
/// `INSERT … ON CONFLICT` cannot change a row twice.
fn last_by_id(rows: impl Iterator<Item = (String, Fields, i64)>) -> Rows {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut kept: Vec<(String, Fields, i64)> = Vec::new();
    for row in rows {
        match at.get(&row.0) {
            Some(&i) => kept[i] = row,
            None => {
                at.insert(row.0.clone(), kept.len());
                kept.push(row);
            }
        }
    }
    Rows(kept)
}

/// Every row of the batch written in one statement (`sessions::data_rows`).
fn upsert(rows: &Rows) -> Stmt<'_> {
    let ids: Vec<&str> = rows.0.iter().map(|(id, _, _)| id.as_str()).collect();
    let fields: Vec<String> = rows.0.iter().map(|(_, f, _)| encode(f)).collect();
    let expiries: Vec<i64> = rows.0.iter().map(|(_, _, at)| *at).collect();
    let sizes: Vec<i64> = rows.0.iter().map(|(_, f, _)| bytes(f)).collect();
    data_rows(ids, fields, expiries, sizes)
}
