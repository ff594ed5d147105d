//! Sessions and stored data in PostgreSQL. A session's fields live in its data row.

use std::sync::LazyLock;
use std::time::Duration;

use deadpool_postgres::Transaction;

use super::pg_error;
use super::prepared::Prepared as _;
use crate::domain::{DataId, ServiceName, SessionId};
use crate::store::{Fields, NewSession, Session, StoreError, merge_fields};

pub(super) fn ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn left(expires_at: i64, now: i64) -> Duration {
    Duration::from_millis(u64::try_from(expires_at - now).unwrap_or(0))
}

pub(super) fn encode(fields: &Fields) -> String {
    serde_json::to_string(fields).unwrap_or_else(|_| "[]".into())
}

/// The bytes `[limits] max_storage_bytes` counts for these fields (`data.bytes`, migration 8).
pub(super) fn bytes(fields: &Fields) -> i64 {
    i64::try_from(crate::store::fields_bytes(fields)).unwrap_or(i64::MAX)
}

pub(super) fn decode(text: &str) -> Result<Fields, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt("data.fields", e))
}

pub async fn create(
    tx: &Transaction<'_>,
    now: i64,
    new: &NewSession,
) -> Result<Session, StoreError> {
    let expires_at = now + ms(&new.ttl);
    tx.execute_cached(
        "INSERT INTO sessions (id, service, data_id, expires_at) VALUES ($1, $2, $3, $4)",
        &[
            &new.id.as_str(),
            &new.service.as_str(),
            &new.data_id.as_str(),
            &expires_at,
        ],
    )
    .await
    .map_err(pg_error)?;
    put_data(tx, now, &new.data_id, &new.fields, &new.ttl).await?;
    Ok(created(new))
}

/// The session a creation made, as its caller is answered.
pub(super) fn created(new: &NewSession) -> Session {
    Session {
        id: new.id.clone(),
        service: new.service.clone(),
        data_id: new.data_id.clone(),
        fields: new.fields.clone(),
        expires_in: new.ttl,
    }
}

pub async fn get(
    tx: &Transaction<'_>,
    now: i64,
    id: &SessionId,
) -> Result<Option<Session>, StoreError> {
    let sql = "SELECT s.service, s.data_id, s.expires_at, d.fields FROM sessions s
               LEFT JOIN data d ON d.id = s.data_id AND d.expires_at > $2
               WHERE s.id = $1 AND s.expires_at > $2";
    let Some(row) = tx
        .query_opt_cached(sql, &[&id.as_str(), &now])
        .await
        .map_err(pg_error)?
    else {
        return Ok(None);
    };
    from_row(id.clone(), &row, 0, now).map(Some)
}

/// A session from `service, data_id, expires_at, fields` at columns `at..at + 4` of a row
/// (the fields from the joined data row, `NULL` when it expired), as of `now`.
pub(super) fn from_row(
    id: SessionId,
    row: &tokio_postgres::Row,
    at: usize,
    now: i64,
) -> Result<Session, StoreError> {
    let fields: Option<String> = row.get(at + 3);
    Ok(Session {
        id,
        service: ServiceName::parse(row.get(at))
            .map_err(|e| StoreError::corrupt("sessions.service", e))?,
        data_id: DataId::parse(row.get(at + 1))
            .map_err(|e| StoreError::corrupt("sessions.data_id", e))?,
        fields: fields
            .as_deref()
            .map(decode)
            .transpose()?
            .unwrap_or_default(),
        expires_in: left(row.get(at + 2), now),
    })
}

/// Ends the live sessions among `ids` as of `at` (the transaction's `now` when `None`,
/// `claim::NOW`): deletes them and their data in one statement, then ends their reservations
/// in number order (`session_ended`; the numbers rest for their cool-down, retiring ones
/// leave). Returns the ids that were live, and the reservations' events. Lock order as every
/// path: the sessions, then their numbers (`matches.rs`); a session's data row is only ever
/// locked alone or after its session.
pub async fn end_all<C: deadpool_postgres::GenericClient>(
    tx: &C,
    at: Option<i64>,
    ids: &[&str],
) -> Result<(hashbrown::HashSet<String>, Vec<crate::events::Event>), StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH clock AS (SELECT {} AS at),
             ended AS (DELETE FROM sessions WHERE id = ANY($1)
                       AND expires_at > (SELECT at FROM clock) RETURNING id, data_id, holds),
             gone AS (DELETE FROM data WHERE id IN (SELECT data_id FROM ended))
             SELECT id, holds, (SELECT at FROM clock) FROM ended",
            super::claim::now_param(2)
        )
    });
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let deleted = tx
        .query_cached(SQL.as_str(), &[&ids, &at])
        .await
        .map_err(pg_error)?;
    let mut live = hashbrown::HashSet::with_capacity(deleted.len());
    // A session's list of holds is a superset (migration 7): each number's row says.
    let mut holds: Vec<String> = Vec::new();
    let mut now = at.unwrap_or_default();
    for row in &deleted {
        live.insert(row.get::<_, String>(0));
        holds.extend(row.get::<_, Vec<String>>(1));
        now = row.get(2);
    }
    let mut events = Vec::new();
    if !holds.is_empty() {
        let ended: Vec<&str> = live.iter().map(String::as_str).collect();
        let held = tx
            .query_cached(
                "SELECT number FROM numbers WHERE number = ANY($1) AND session = ANY($2)
                 ORDER BY number",
                &[&holds, &ended],
            )
            .await
            .map_err(pg_error)?;
        for r in held {
            let number = crate::domain::AccessNumber::from_stored(r.get(0));
            events.extend(super::calls::end_session_hold(tx, now, &number).await?);
        }
    }
    Ok((live, events))
}

pub async fn put_data(
    tx: &Transaction<'_>,
    now: i64,
    id: &DataId,
    fields: &Fields,
    ttl: &Duration,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO data (id, fields, expires_at, bytes) VALUES ($1, $2, $3, $4)
               ON CONFLICT (id) DO UPDATE SET fields = excluded.fields, expires_at = excluded.expires_at,
                                              bytes = excluded.bytes";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
        &id.as_str(),
        &encode(fields),
        &(now + ms(ttl)),
        &bytes(fields),
    ];
    tx.execute_cached(sql, &params).await.map_err(pg_error)?;
    Ok(())
}

pub async fn data(
    tx: &Transaction<'_>,
    now: i64,
    id: &DataId,
) -> Result<Option<Fields>, StoreError> {
    let row = tx
        .query_opt_cached(
            "SELECT fields FROM data WHERE id = $1 AND expires_at > $2",
            &[&id.as_str(), &now],
        )
        .await
        .map_err(pg_error)?;
    row.map(|r| decode(r.get(0))).transpose()
}

pub async fn update_data(
    tx: &Transaction<'_>,
    now: i64,
    id: &DataId,
    update: &Fields,
    ttl: &Duration,
) -> Result<bool, StoreError> {
    let sql = "SELECT fields FROM data WHERE id = $1 AND expires_at > $2 FOR UPDATE";
    let Some(row) = tx
        .query_opt_cached(sql, &[&id.as_str(), &now])
        .await
        .map_err(pg_error)?
    else {
        return Ok(false);
    };
    let mut fields = decode(row.get(0))?;
    merge_fields(&mut fields, update.clone());
    put_data(tx, now, id, &fields, ttl).await?;
    Ok(true)
}

/// Session creations as a batch (`batch.rs`): every session and its data row of the batch in
/// two statements, one commit.
pub struct Creating;

impl super::batch::Work for Creating {
    type Req = NewSession;
    type Ans = Result<Session, StoreError>;
    /// A test's frozen time, for the expiries computed in SQL.
    type Plan = Option<i64>;

    /// Nothing to read: two round trips, `BEGIN`, then both inserts with the `COMMIT`
    /// (`batch::Finish`), the expiries from the transaction's time.
    async fn decide(
        _client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[NewSession],
    ) -> Result<(Vec<Self::Ans>, Self::Plan), StoreError> {
        let answers = reqs.iter().map(|new| Ok(created(new))).collect();
        Ok((answers, db.frozen()))
    }

    async fn write(
        client: &deadpool_postgres::Client,
        reqs: &[NewSession],
        frozen: &Option<i64>,
        finish: &mut super::batch::Finish,
    ) -> Result<Vec<crate::events::Event>, StoreError> {
        let stmts = inserts(reqs.iter(), *frozen);
        finish.last(client, &stmts).await?;
        Ok(Vec::new())
    }

    fn failed(err: StoreError) -> Self::Ans {
        Err(err)
    }
}

/// Data rows written in one statement (ids, fields as JSON, ttls in ms from the
/// transaction's `now` (`claim::NOW`, `frozen` a test's time), sizes for
/// `[limits] max_storage_bytes`), a row already there replaced: a batch of session
/// creations' and of storage writes' (`storing.rs`). The expiry is computed in SQL, so no
/// round trip reads the time first.
pub(super) fn data_rows<'a>(
    ids: impl tokio_postgres::types::ToSql + Sync + Send + 'a,
    fields: Vec<String>,
    ttls: Vec<i64>,
    sizes: Vec<i64>,
    frozen: Option<i64>,
) -> super::prepared::Stmt<'a> {
    use tokio_postgres::types::Type;
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO data (id, fields, expires_at, bytes)
             SELECT i, f, {} + t, b
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) AS u(i, f, t, b)
             ON CONFLICT (id) DO UPDATE SET fields = excluded.fields,
                                            expires_at = excluded.expires_at,
                                            bytes = excluded.bytes",
            super::claim::now_param(5)
        )
    });
    super::prepared::Stmt::new(SQL.as_str())
        .bind(ids, Type::TEXT_ARRAY)
        .bind(fields, Type::TEXT_ARRAY)
        .bind(ttls, Type::INT8_ARRAY)
        .bind(sizes, Type::INT8_ARRAY)
        .bind(frozen, Type::INT8)
}

/// The statements that insert new sessions and their data rows, their expiries from the
/// transaction's `now` computed in SQL (`claim::NOW`, `frozen` a test's time): a batch of
/// creations' (`Creating`) and of request-interactions' (`interacting.rs`, sent with its
/// reads).
pub(super) fn inserts<'a>(
    news: impl Iterator<Item = &'a NewSession> + Clone,
    frozen: Option<i64>,
) -> [super::prepared::Stmt<'a>; 2] {
    use tokio_postgres::types::Type;
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO sessions (id, service, data_id, expires_at)
             SELECT i, s, d, {} + t
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(i, s, d, t)",
            super::claim::now_param(5)
        )
    });
    let ids: Vec<&str> = news.clone().map(|r| r.id.as_str()).collect();
    let services: Vec<&str> = news.clone().map(|r| r.service.as_str()).collect();
    let data_ids: Vec<&str> = news.clone().map(|r| r.data_id.as_str()).collect();
    let ttls: Vec<i64> = news.clone().map(|r| ms(&r.ttl)).collect();
    let fields: Vec<String> = news.clone().map(|r| encode(&r.fields)).collect();
    let sizes: Vec<i64> = news.map(|r| bytes(&r.fields)).collect();
    [
        super::prepared::Stmt::new(SQL.as_str())
            .bind(ids, Type::TEXT_ARRAY)
            .bind(services, Type::TEXT_ARRAY)
            .bind(data_ids.clone(), Type::TEXT_ARRAY)
            .bind(ttls.clone(), Type::INT8_ARRAY)
            .bind(frozen, Type::INT8),
        data_rows(data_ids, fields, ttls, sizes, frozen),
    ]
}
