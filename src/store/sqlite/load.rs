//! Rebuilding the engine from the SQLite tables at start. Whatever expired while the node was
//! down is left out; retired numbers whose reservation ended are deleted.

use rusqlite::Connection;

use crate::domain::{
    AccessCode, AccessNumber, Allocation, BookingTimeout, DataId, GroupName, PhoneNumber,
    ServiceName, SessionId, UnixMillis,
};
use crate::store::local::engine::Engine;
use crate::store::local::engine::restore::{StoredNumber, StoredReservation};
use crate::store::{Fields, GroupSettings};

pub fn load(conn: &mut Connection, now: UnixMillis) -> Result<Engine, String> {
    let sql_err = |e: rusqlite::Error| format!("reading the store: {e}");
    let bad = |what: &str, value: &str| format!("corrupt {what} {value:?} in the store");
    let mut engine = Engine::new();

    let mut stmt = conn
        .prepare(
            "SELECT name, allocation, booking_timeout, cursor,
                    (SELECT max(position) + 1 FROM numbers n WHERE n.group_name = groups.name)
               FROM groups ORDER BY rowid",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<u32>>(3)?,
                r.get::<_, Option<u32>>(4)?,
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (name, allocation, timeout, cursor, size) = row.map_err(sql_err)?;
        let settings = GroupSettings {
            name: GroupName::parse(&name).map_err(|_| bad("group", &name))?,
            allocation: allocation
                .parse::<Allocation>()
                .map_err(|_| bad("allocation", &allocation))?,
            booking_timeout: timeout.map(BookingTimeout::from_secs_lenient),
        };
        engine.restore_group(settings, cursor, size.unwrap_or(0) as usize);
    }
    drop(stmt);

    let mut stmt = conn
        .prepare("SELECT id, service, data_id, expires_at FROM sessions WHERE expires_at > ?1")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([now.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (id, service, data_id, expires_at) = row.map_err(sql_err)?;
        engine.restore_session(
            SessionId::parse(&id).map_err(|_| bad("session", &id))?,
            ServiceName::parse(&service).map_err(|_| bad("service", &service))?,
            DataId::parse(&data_id).map_err(|_| bad("data id", &data_id))?,
            UnixMillis(expires_at),
            now,
        );
    }
    drop(stmt);

    let mut stmt = conn
        .prepare("SELECT id, fields, expires_at FROM data WHERE expires_at > ?1")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([now.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (id, fields, expires_at) = row.map_err(sql_err)?;
        let fields: Fields = serde_json::from_str(&fields).map_err(|_| bad("fields of", &id))?;
        engine.restore_data(
            DataId::parse(&id).map_err(|_| bad("data id", &id))?,
            fields,
            UnixMillis(expires_at),
            now,
        );
    }
    drop(stmt);

    let mut stmt = conn
        .prepare("SELECT client, key, body, expires_at FROM idempotency WHERE expires_at > ?1")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([now.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (client, key, body, expires_at) = row.map_err(sql_err)?;
        let fields: Fields = serde_json::from_str(&body).map_err(|_| bad("answer of key", &key))?;
        let key = crate::store::IdempotencyKey { client, key };
        engine.restore_remembered(key, fields, UnixMillis(expires_at), now);
    }
    drop(stmt);

    // Reservations first (a small table), so the numbers can stream from their query straight
    // into the engine: a million-row list held in between would double the start-up memory.
    let mut reservations = Vec::new();
    let mut stmt = conn.prepare("SELECT number, session, code, phone, expires_at FROM reservations WHERE expires_at > ?1").map_err(sql_err)?;
    let rows = stmt
        .query_map([now.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (number, session, code, phone, expires_at) = row.map_err(sql_err)?;
        reservations.push(StoredReservation {
            number: AccessNumber::parse(&number).map_err(|_| bad("number", &number))?,
            session: SessionId::parse(&session).map_err(|_| bad("session", &session))?,
            code: code.map(AccessCode::from_stored),
            phone: phone.map(PhoneNumber::from_stored),
            expires_at: UnixMillis(expires_at),
        });
    }
    drop(stmt);

    let mut stmt = conn
        .prepare("SELECT group_name, number, position, retiring, freed_at FROM numbers ORDER BY group_name, position")
        .map_err(sql_err)?;
    let mut rows = stmt.query([]).map_err(sql_err)?;
    let mut failure: Option<String> = None;
    let mut group: Option<GroupName> = None;
    let mut read = |r: &rusqlite::Row<'_>| -> Result<StoredNumber, String> {
        let name = r
            .get_ref(0)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(sql_err)?;
        // Rows come sorted by group: parse each group's name once, not once per number.
        if group.as_ref().is_none_or(|g| g.as_str() != name) {
            group = Some(GroupName::parse(name).map_err(|_| bad("group", name))?);
        }
        let number = r
            .get_ref(1)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(sql_err)?;
        Ok(StoredNumber {
            group: group.clone().ok_or_else(|| bad("group", name))?,
            number: AccessNumber::parse(number).map_err(|_| bad("number", number))?,
            position: r.get(2).map_err(sql_err)?,
            retiring: r.get(3).map_err(sql_err)?,
            freed_at: UnixMillis(r.get(4).map_err(sql_err)?),
        })
    };
    let numbers = std::iter::from_fn(|| {
        let row = match rows.next() {
            Ok(Some(row)) => read(row),
            Ok(None) => return None,
            Err(e) => Err(sql_err(e)),
        };
        row.map_err(|e| failure = Some(e)).ok()
    });
    let gone = engine.restore_numbers(numbers, reservations, now);
    if let Some(failure) = failure {
        return Err(failure);
    }
    drop(rows);
    drop(stmt);
    if !gone.is_empty() {
        // Only space: a retired number no reservation holds is left out of the engine either
        // way, so a failed delete (a full disk during a rebuild) is not worth failing for.
        if let Err(err) = delete_gone(conn, &gone) {
            tracing::warn!(error = %err, "cannot delete retired numbers; will try at next start");
        }
    }
    Ok(engine)
}

fn delete_gone(conn: &mut Connection, gone: &[AccessNumber]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for n in gone {
        tx.execute("DELETE FROM numbers WHERE number = ?1", [n.as_str()])?;
    }
    tx.commit()
}
