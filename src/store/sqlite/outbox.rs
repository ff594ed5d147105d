//! The webhook outbox on disk (`events_outbox`): the journal's event changes written down, and
//! read back at start so events queued before a restart are still delivered.

use rusqlite::{Connection, params};

use crate::domain::{AccessNumber, GroupName, SessionId, UnixMillis};
use crate::events::{Event, EventKind};
use crate::store::local::engine::Engine;
use crate::store::local::journal::Change;

/// Writes one outbox change; other changes are not this file's and are ignored.
pub fn apply(tx: &Connection, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::EventQueued { event, queued_at } => {
            let sql = "INSERT OR REPLACE INTO events_outbox (id, kind, time, group_name, number, session, attempts, queued_at, next_at)
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7)";
            tx.prepare_cached(sql)?.execute(params![
                event.id,
                event.kind.as_str(),
                event.time.0,
                event.group.as_str(),
                event.number.as_str(),
                event.session.as_ref().map(|s| s.as_str()),
                queued_at.0
            ])?;
        }
        Change::EventDone(id) => {
            tx.prepare_cached("DELETE FROM events_outbox WHERE id = ?1")?
                .execute([id])?;
        }
        Change::EventRetry {
            id,
            attempts,
            next_at,
        } => {
            tx.prepare_cached(
                "UPDATE events_outbox SET attempts = ?1, next_at = ?2 WHERE id = ?3",
            )?
            .execute(params![attempts, next_at.0, id])?;
        }
        _ => {}
    }
    Ok(())
}

/// Puts every stored event back in the engine's outbox.
pub fn load(conn: &Connection, engine: &mut Engine) -> Result<(), String> {
    let sql_err = |e: rusqlite::Error| format!("reading the event outbox: {e}");
    let bad = |what: &str, value: &str| format!("corrupt {what} {value:?} in the event outbox");
    let mut stmt = conn
        .prepare("SELECT id, kind, time, group_name, number, session, attempts, queued_at, next_at FROM events_outbox")
        .map_err(sql_err)?;
    let mut rows = stmt.query([]).map_err(sql_err)?;
    while let Some(r) = rows.next().map_err(sql_err)? {
        let text = |i: usize| r.get::<_, String>(i).map_err(sql_err);
        let (id, kind, group, number) = (text(0)?, text(1)?, text(3)?, text(4)?);
        let session: Option<String> = r.get(5).map_err(sql_err)?;
        let event = Event {
            kind: EventKind::parse(&kind).ok_or_else(|| bad("type", &kind))?,
            time: UnixMillis(r.get(2).map_err(sql_err)?),
            group: GroupName::from_stored(&group).map_err(|_| bad("group", &group))?,
            number: AccessNumber::parse(&number).map_err(|_| bad("number", &number))?,
            session: match session {
                Some(s) => Some(SessionId::parse(&s).map_err(|_| bad("session", &s))?),
                None => None,
            },
            id,
        };
        engine.outbox_mut().restore(
            event,
            r.get(6).map_err(sql_err)?,
            UnixMillis(r.get(7).map_err(sql_err)?),
            UnixMillis(r.get(8).map_err(sql_err)?),
        );
    }
    Ok(())
}
