//! A number's row as the calls on it (match-interaction, an operator's release and free, a
//! session's end) read, change and write it: locked and read into a [`NumberRow`], changed in
//! memory by the rules (`NumberRow::end` and the verdicts of `rules::call`), written back
//! with [`write`]. One model for every path, so a row is read and written one way.

use hashbrown::HashMap;
use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Type;

use super::claim::{POLICY_COLUMNS, policy};
use super::pg_error;
use super::prepared::{Stmt, send};
use crate::domain::{
    AccessCode, AccessNumber, GroupName, NumberPolicy, PhoneNumber, SessionId, UnixMillis,
};
use crate::events::Event;
use crate::rules::lifecycle::{self, EndReason, Ended};
use crate::store::StoreError;

/// A number's row as calls see and change it.
pub(super) struct NumberRow {
    /// Where the row is (`ctid`): it is locked, so it stays there until this transaction
    /// writes it, and the write finds it by address instead of descending the index again.
    pub(super) at: String,
    pub(super) group: GroupName,
    /// Its group allocates least recently used first: the write keeps `lru_at` (migration 7).
    pub(super) lru: bool,
    pub(super) policy: NumberPolicy,
    pub(super) retiring: bool,
    /// The reservation on the row (live or expired).
    pub(super) held: Option<Ended>,
    pub(super) wrong_codes: u32,
    pub(super) last: Option<Ended>,
    pub(super) strays: Vec<UnixMillis>,
    pub(super) quarantined_at: Option<i64>,
    pub(super) freed_at: i64,
    /// A call changed the row: it is written back.
    pub(super) changed: bool,
    /// The number retired and its reservation ended: the row is deleted.
    pub(super) gone: bool,
}

pub(super) fn corrupt(what: &'static str) -> impl Fn(crate::domain::ParseError) -> StoreError {
    move |e| StoreError::corrupt(what, e)
}

impl NumberRow {
    /// Ends the row's reservation `held` for `reason` (`Expired` if it had expired by `now`):
    /// the number rests for the cool-down and remembers it, or leaves if retiring. Returns
    /// the event.
    pub(super) fn end(
        &mut self,
        now: i64,
        number: &AccessNumber,
        held: Ended,
        reason: EndReason,
    ) -> Event {
        let expired = held.at.is_reached(UnixMillis(now));
        let reason = if expired { EndReason::Expired } else { reason };
        let at = lifecycle::ended_at(held.at, UnixMillis(now));
        self.changed = true;
        self.gone = self.retiring;
        self.wrong_codes = 0;
        self.freed_at = lifecycle::free_from(at, &self.policy).0;
        let time = if reason == EndReason::Matched {
            UnixMillis(now)
        } else {
            at
        };
        let event = Event::new(
            reason.event(),
            time,
            self.group.clone(),
            number.clone(),
            Some(held.session.clone()),
        );
        self.last = Some(Ended { at, reason, ..held });
        event
    }

    pub(super) fn count_wrong_code(&mut self, attempts: u32) {
        self.wrong_codes = attempts;
        self.changed = true;
    }
}

/// Writes every changed row back ([`write_stmts`]).
pub(super) async fn write<C: GenericClient>(
    client: &C,
    rows: &HashMap<String, NumberRow>,
) -> Result<(), StoreError> {
    send(client, &write_stmts(rows)).await.map_err(pg_error)?;
    Ok(())
}

/// The statements that write every changed row back: the retired ones deleted, the others
/// updated, one statement each whatever their number.
pub(super) fn write_stmts(rows: &HashMap<String, NumberRow>) -> Vec<Stmt<'_>> {
    let (gone, kept): (Vec<_>, Vec<_>) = rows
        .iter()
        .filter(|(_, row)| row.changed)
        .partition(|(_, row)| row.gone);
    let mut stmts = Vec::with_capacity(2);
    if !gone.is_empty() {
        let gone: Vec<&str> = gone.iter().map(|(n, _)| n.as_str()).collect();
        stmts.push(
            Stmt::new("DELETE FROM numbers WHERE number = ANY($1)").bind(gone, Type::TEXT_ARRAY),
        );
    }
    if !kept.is_empty() {
        stmts.push(update_rows(&kept));
    }
    stmts
}

/// Every column a call may change, for all the rows at once.
fn update_rows<'a>(rows: &[(&'a String, &'a NumberRow)]) -> Stmt<'a> {
    let mut addresses: Vec<&str> = Vec::with_capacity(rows.len());
    let mut sessions: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut codes: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut phones: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut expiries: Vec<Option<i64>> = Vec::with_capacity(rows.len());
    let mut wrong: Vec<i32> = Vec::with_capacity(rows.len());
    let mut freed: Vec<i64> = Vec::with_capacity(rows.len());
    let mut last_sessions: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut last_codes: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut last_phones: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut last_ends: Vec<Option<i64>> = Vec::with_capacity(rows.len());
    let mut last_reasons: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut strays: Vec<Option<String>> = Vec::with_capacity(rows.len());
    let mut quarantined: Vec<Option<i64>> = Vec::with_capacity(rows.len());
    let mut lru: Vec<bool> = Vec::with_capacity(rows.len());
    for (_, row) in rows {
        addresses.push(row.at.as_str());
        lru.push(row.lru);
        let held = row.held.as_ref();
        sessions.push(held.map(|h| h.session.as_str()));
        codes.push(held.and_then(|h| h.code.as_ref()).map(|c| c.as_str()));
        phones.push(held.and_then(|h| h.phone.as_ref()).map(|p| p.as_str()));
        expiries.push(held.map(|h| h.at.0));
        wrong.push(i32::try_from(row.wrong_codes).unwrap_or(i32::MAX));
        freed.push(row.freed_at);
        let last = row.last.as_ref();
        last_sessions.push(last.map(|l| l.session.as_str()));
        last_codes.push(last.and_then(|l| l.code.as_ref()).map(|c| c.as_str()));
        last_phones.push(last.and_then(|l| l.phone.as_ref()).map(|p| p.as_str()));
        last_ends.push(last.map(|l| l.at.0));
        last_reasons.push(last.map(|l| l.reason.as_str()));
        strays.push((!row.strays.is_empty()).then(|| {
            let times: Vec<String> = row.strays.iter().map(|t| t.0.to_string()).collect();
            format!("{{{}}}", times.join(","))
        }));
        quarantined.push(row.quarantined_at);
    }
    /// The text, built once.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH u AS (UPDATE numbers n SET session = x.session, code = x.code, phone = x.phone,
                    expires_at = x.expires_at, wrong_codes = x.wrong_codes, freed_at = x.freed_at,
                    last_session = x.last_session, last_code = x.last_code,
                    last_phone = x.last_phone, last_end = x.last_end, last_reason = x.last_reason,
                    strays = x.strays::int8[], quarantined_at = x.quarantined_at,
                    lru_at = CASE WHEN x.lru THEN x.freed_at ELSE n.lru_at END,
                    client = CASE WHEN x.session IS NOT NULL THEN n.client END
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int4[],
                           $7::int8[], $8::text[], $9::text[], $10::text[], $11::int8[],
                           $12::text[], $13::text[], $14::int8[], $15::bool[])
                    AS x(at, session, code, phone, expires_at, wrong_codes, freed_at,
                         last_session, last_code, last_phone, last_end, last_reason, strays,
                         quarantined_at, lru)
              WHERE n.ctid = x.at::tid
          RETURNING 1)
         {}",
            all_written(16)
        )
    });
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    Stmt::new(SQL.as_str())
        .bind(addresses, Type::TEXT_ARRAY)
        .bind(sessions, Type::TEXT_ARRAY)
        .bind(codes, Type::TEXT_ARRAY)
        .bind(phones, Type::TEXT_ARRAY)
        .bind(expiries, Type::INT8_ARRAY)
        .bind(wrong, Type::INT4_ARRAY)
        .bind(freed, Type::INT8_ARRAY)
        .bind(last_sessions, Type::TEXT_ARRAY)
        .bind(last_codes, Type::TEXT_ARRAY)
        .bind(last_phones, Type::TEXT_ARRAY)
        .bind(last_ends, Type::INT8_ARRAY)
        .bind(last_reasons, Type::TEXT_ARRAY)
        .bind(strays, Type::TEXT_ARRAY)
        .bind(quarantined, Type::INT8_ARRAY)
        .bind(lru, Type::BOOL_ARRAY)
        .bind(count, Type::INT8)
}

/// What follows an update of locked rows by their address (`WITH u AS (UPDATE … RETURNING
/// 1)`, `$n` the number of rows it must write): their count when every one was written, else
/// an error that aborts the transaction, so the `COMMIT` sent with it rolls back. A row only
/// moves when the transaction writes it, so this never fires unless a path writes a row twice;
/// without it, that row's write would be lost without a word.
pub(super) fn all_written(n: usize) -> String {
    format!(
        "SELECT CASE WHEN count(*) = ${n} THEN count(*)
                ELSE ('locked rows moved: ' || count(*) || ' of ' || ${n} || ' written')::int8 END
           FROM u"
    )
}

fn number_row(r: &tokio_postgres::Row) -> Result<NumberRow, StoreError> {
    let session: Option<String> = r.get(3);
    let expires_at: Option<i64> = r.get(6);
    let held = match (session, expires_at) {
        (Some(s), Some(at)) => Some(Ended {
            session: SessionId::parse(&s).map_err(corrupt("numbers.session"))?,
            code: r.get::<_, Option<String>>(4).map(AccessCode::from_stored),
            phone: r.get::<_, Option<String>>(5).map(PhoneNumber::from_stored),
            at: UnixMillis(at),
            reason: EndReason::Expired,
        }),
        _ => None,
    };
    let last_session: Option<String> = r.get(8);
    let last_reason: Option<String> = r.get(12);
    let last = match (last_session, last_reason) {
        (Some(s), Some(reason)) => Some(Ended {
            session: SessionId::parse(&s).map_err(corrupt("numbers.last_session"))?,
            code: r.get::<_, Option<String>>(9).map(AccessCode::from_stored),
            phone: r.get::<_, Option<String>>(10).map(PhoneNumber::from_stored),
            at: UnixMillis(r.get::<_, Option<i64>>(11).unwrap_or(0)),
            reason: EndReason::parse(&reason)
                .ok_or_else(|| StoreError::corrupt("numbers.last_reason", format!("{reason:?}")))?,
        }),
        _ => None,
    };
    let strays: Option<Vec<i64>> = r.get(13);
    Ok(NumberRow {
        at: r.get(21),
        group: GroupName::from_stored(r.get(1)).map_err(corrupt("numbers.group_name"))?,
        lru: r.get(22),
        policy: policy(r, 16),
        retiring: r.get(2),
        held,
        wrong_codes: u32::try_from(r.get::<_, i32>(7)).unwrap_or(0),
        last,
        strays: strays
            .unwrap_or_default()
            .into_iter()
            .map(UnixMillis)
            .collect(),
        quarantined_at: r.get(14),
        freed_at: r.get(15),
        changed: false,
        gone: false,
    })
}

/// Locks the numbers' rows, in number order (two transactions sharing numbers queue instead
/// of deadlocking), and reads them with their group's policy. Unknown numbers are absent.
pub(super) async fn lock<C: GenericClient>(
    client: &C,
    numbers: &[&str],
) -> Result<HashMap<String, NumberRow>, StoreError> {
    let rows = send(client, &[lock_stmt(numbers)])
        .await
        .map_err(pg_error)?;
    locked_from(&rows[0])
}

/// The statement of [`lock`], to send with others; [`locked_from`] reads its rows.
pub(super) fn lock_stmt<'a>(numbers: &'a [&'a str]) -> Stmt<'a> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT n.number, n.group_name, n.retiring, n.session, n.code, n.phone, n.expires_at,
                n.wrong_codes, n.last_session, n.last_code, n.last_phone, n.last_end,
                n.last_reason, n.strays, n.quarantined_at, n.freed_at, {POLICY_COLUMNS},
                n.ctid::text, g.allocation = 'least-recently-used'
           FROM numbers n JOIN groups g ON g.name = n.group_name
          WHERE n.number = ANY($1) ORDER BY n.number FOR UPDATE OF n"
        )
    });
    Stmt::new(SQL.as_str()).bind(numbers, Type::TEXT_ARRAY)
}

pub(super) fn locked_from(
    rows: &[tokio_postgres::Row],
) -> Result<HashMap<String, NumberRow>, StoreError> {
    rows.iter()
        .map(|r| Ok((r.get(0), number_row(r)?)))
        .collect()
}

/// One number's row, locked (`None`: no such number).
pub(super) async fn lock_one<C: GenericClient>(
    client: &C,
    number: &AccessNumber,
) -> Result<Option<NumberRow>, StoreError> {
    Ok(lock(client, &[number.as_str()]).await?.into_values().next())
}
