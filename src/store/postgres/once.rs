//! Creations under an `Idempotency-Key` on PostgreSQL (see `store::once`): the key's row is
//! claimed, the thing created and the answer written, all in one transaction.
//!
//! Two calls with one key racing (on one node or two): the first inserts the key's row; the
//! second's `INSERT … ON CONFLICT` waits on that uncommitted row. If the first commits, the
//! second finds the row taken and reads its answer (a new statement sees the commit under
//! READ COMMITTED); if the first rolls back, the second goes on as if alone. A row past its
//! 24 h is taken over as if absent, whether or not the purge deleted it yet.

use deadpool_postgres::Transaction;

use super::prepared::Prepared as _;
use super::walks::Walks;
use super::{pg_error, reserve, sessions};
use crate::store::{
    AnswerFn, Created, Creation, Fields, IDEMPOTENCY_TTL, IdempotencyKey, Once, ReserveError,
    StoreError,
};

pub async fn create_once(
    tx: &Transaction<'_>,
    now: i64,
    walks: &Walks,
    key: &IdempotencyKey,
    creation: &Creation,
    answer: &AnswerFn,
) -> Result<(Once, Vec<crate::events::Event>), ReserveError> {
    let until = now + IDEMPOTENCY_TTL.as_millis() as i64;
    let claim = "INSERT INTO idempotency (client, key, status, body, expires_at)
                 VALUES ($1, $2, 0, '', $3)
                 ON CONFLICT (client, key) DO UPDATE
                    SET status = 0, body = '', expires_at = excluded.expires_at
                  WHERE idempotency.expires_at <= $4
                 RETURNING 1";
    let claimed = tx
        .query_opt_cached(claim, &[&key.client, &key.key, &until, &now])
        .await
        .map_err(pg_error)?;
    if claimed.is_none() {
        let row = tx
            .query_one(
                "SELECT body FROM idempotency WHERE client = $1 AND key = $2",
                &[&key.client, &key.key],
            )
            .await
            .map_err(pg_error)?;
        let body: String = row.get(0);
        let fields: Fields =
            serde_json::from_str(&body).map_err(|e| StoreError::corrupt("idempotency.body", e))?;
        return Ok((Once::Replay(fields), Vec::new()));
    }
    let mut events = Vec::new();
    let created = match creation {
        Creation::Session(new) => Created::Session(sessions::create(tx, now, new).await?),
        Creation::Interaction(new, req) => {
            let ((s, r), made) = reserve::reserve_new_session(tx, now, walks, new, req).await?;
            events = made;
            Created::Interaction(s, r)
        }
        Creation::Data { id, fields, ttl } => {
            sessions::put_data(tx, now, id, fields, ttl).await?;
            Created::Data(id.clone())
        }
        Creation::Update { id, fields, ttl } => {
            match sessions::update_data(tx, now, id, fields, ttl).await? {
                true => Created::Updated(id.clone()),
                false => return Err(ReserveError::Refused),
            }
        }
        // The key's claimed row goes with the rolled-back transaction.
        Creation::Refused => return Err(ReserveError::Refused),
    };
    let body = serde_json::to_string(&answer(&created)).map_err(StoreError::query)?;
    tx.execute_cached(
        "UPDATE idempotency SET status = 200, body = $3 WHERE client = $1 AND key = $2",
        &[&key.client, &key.key, &body],
    )
    .await
    .map_err(pg_error)?;
    Ok((Once::First(created), events))
}
