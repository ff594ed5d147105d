//! Rebuilding the engine from the SQLite tables at start. Whatever expired while the node was
//! down is left out; retired numbers whose reservation ended are deleted. Stored fields are not
//! read: the engine keeps only each entry's id and expiry (`local::fields`).

use rusqlite::Connection;

use crate::domain::{
    AccessCode, AccessNumber, Allocation, BookingTimeout, DataId, GroupName, NumberPolicy,
    PhoneNumber, ServiceName, SessionId, UnixMillis,
};
use crate::rules::{self, lifecycle::EndReason, lifecycle::Ended};
use crate::store::GroupSettings;
use crate::store::local::engine::Engine;
use crate::store::local::engine::restore::{StoredNumber, StoredReservation};

pub fn load(conn: &mut Connection, now: UnixMillis) -> Result<Engine, String> {
    let sql_err = |e: rusqlite::Error| format!("reading the store: {e}");
    let bad = |what: &str, value: &str| format!("corrupt {what} {value:?} in the store");
    let mut engine = Engine::new();

    let mut stmt = conn
        .prepare(
            "SELECT name, allocation, booking_timeout, cursor,
                    (SELECT max(position) + 1 FROM numbers n WHERE n.group_name = groups.name),
                    require_code, max_code_attempts, cool_down, late_match_grace,
                    quarantine_after_stray_calls
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
                NumberPolicy {
                    require_code: r.get(5)?,
                    max_code_attempts: r.get(6)?,
                    cool_down: r.get(7)?,
                    late_match_grace: r.get(8)?,
                    quarantine_after_stray_calls: r.get(9)?,
                },
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (name, allocation, timeout, cursor, size, policy) = row.map_err(sql_err)?;
        let settings = GroupSettings {
            name: GroupName::from_stored(&name).map_err(|_| bad("group", &name))?,
            allocation: allocation
                .parse::<Allocation>()
                .map_err(|_| bad("allocation", &allocation))?,
            booking_timeout: timeout.map(BookingTimeout::from_secs_lenient),
            policy,
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

    // Ids and expiries only, from the index `data_by_expiry` (the fields stay on disk and are
    // never read here), so restart time does not grow with stored bytes.
    let mut stmt = conn
        .prepare("SELECT id, expires_at, bytes FROM data INDEXED BY data_by_expiry WHERE expires_at > ?1")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([now.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (id, expires_at, bytes) = row.map_err(sql_err)?;
        engine.restore_data(
            DataId::parse(&id).map_err(|_| bad("data id", &id))?,
            UnixMillis(expires_at),
            u64::try_from(bytes).unwrap_or(0),
            now,
        );
    }
    drop(stmt);

    // Idempotency-Key answers stay in their table (`engine/once.rs`, disk mode).

    // Reservations first (a small table), so the numbers can stream from their query straight
    // into the engine: a million-row list held in between would double the start-up memory.
    let mut reservations = Vec::new();
    // Expired ones too, for a day: they are the numbers' last reservations (late calls,
    // failure reasons) until a write records them.
    let since = now
        .0
        .saturating_sub(rules::lifecycle::MEMORY.as_millis() as i64);
    let mut stmt = conn.prepare("SELECT number, session, code, phone, expires_at, wrong_codes, client FROM reservations WHERE expires_at > ?1").map_err(sql_err)?;
    let rows = stmt
        .query_map([since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (number, session, code, phone, expires_at, wrong_codes, client) =
            row.map_err(sql_err)?;
        reservations.push(StoredReservation {
            number: AccessNumber::parse(&number).map_err(|_| bad("number", &number))?,
            session: SessionId::parse(&session).map_err(|_| bad("session", &session))?,
            code: code.map(AccessCode::from_stored),
            phone: phone.map(PhoneNumber::from_stored),
            expires_at: UnixMillis(expires_at),
            wrong_codes,
            client: client.map(crate::store::ClientId::from),
        });
    }
    drop(stmt);

    let mut stmt = conn
        .prepare(
            "SELECT group_name, number, position, retiring, freed_at, quarantined_at, strays,
                         last_session, last_code, last_phone, last_end, last_reason
                    FROM numbers ORDER BY group_name, position",
        )
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
            group = Some(GroupName::from_stored(name).map_err(|_| bad("group", name))?);
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
            quarantined_at: r.get::<_, Option<i64>>(5).map_err(sql_err)?.map(UnixMillis),
            strays: match r.get_ref(6).map_err(sql_err)?.as_str_or_null() {
                Ok(Some(text)) => text
                    .split(',')
                    .map(|t| t.parse().map(UnixMillis).map_err(|_| bad("strays", text)))
                    .collect::<Result<_, _>>()?,
                _ => Vec::new(),
            },
            last: last_reservation(r)
                .map_err(|e| e.unwrap_or_else(|| bad("last reservation of", number)))?,
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

/// Columns 7..=11 of a numbers row: its last ended reservation, if any. `Err(None)` for a
/// value that does not parse (the caller names the number).
fn last_reservation(r: &rusqlite::Row<'_>) -> Result<Option<Ended>, Option<String>> {
    let text = |i| -> Result<Option<String>, Option<String>> {
        r.get::<_, Option<String>>(i)
            .map_err(|e| Some(e.to_string()))
    };
    let (Some(session), Some(reason)) = (text(7)?, text(11)?) else {
        return Ok(None);
    };
    let at: i64 = r.get(10).map_err(|e| Some(e.to_string()))?;
    Ok(Some(Ended {
        session: SessionId::parse(&session).map_err(|_| None)?,
        code: text(8)?.map(AccessCode::from_stored),
        phone: text(9)?.map(PhoneNumber::from_stored),
        at: UnixMillis(at),
        reason: EndReason::parse(&reason).ok_or(None)?,
    }))
}

fn delete_gone(conn: &mut Connection, gone: &[AccessNumber]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for n in gone {
        tx.execute("DELETE FROM numbers WHERE number = ?1", [n.as_str()])?;
    }
    tx.commit()
}
