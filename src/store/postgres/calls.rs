//! Calls on a number (match-interaction), an operator's `free` and `release`, and the end of
//! a reservation, in PostgreSQL. The number's row is locked, `rules::call::decide` says what
//! the call does, and this file writes it: the same decisions as the embedded engine.

use tokio_postgres::Transaction;

use super::claim::{POLICY_COLUMNS, policy};
use super::pg_error;
use super::sessions;
use crate::domain::{
    AccessCode, AccessNumber, GroupName, NumberPolicy, PhoneNumber, SessionId, UnixMillis,
};
use crate::events::{Event, EventKind};
use crate::rules::call::{Call, Last, Live, Reason, Verdict};
use crate::rules::lifecycle::{self, EndReason, Ended};
use crate::store::{FreeNumber, MatchOutcome, MatchRequest, StoreError};

/// A number's row as a call needs it, locked.
struct NumberRow {
    group: GroupName,
    policy: NumberPolicy,
    retiring: bool,
    /// The reservation on the row (live or expired).
    held: Option<Ended>,
    wrong_codes: u32,
    last: Option<Ended>,
    strays: Vec<UnixMillis>,
    quarantined: bool,
    freed_at: i64,
}

fn corrupt(what: &'static str) -> impl Fn(crate::domain::ParseError) -> StoreError {
    move |e| StoreError::corrupt(what, e)
}

async fn lock_number(
    tx: &Transaction<'_>,
    number: &AccessNumber,
) -> Result<Option<NumberRow>, StoreError> {
    let sql = format!(
        "SELECT n.group_name, n.retiring, n.session, n.code, n.phone, n.expires_at, n.wrong_codes,
                n.last_session, n.last_code, n.last_phone, n.last_end, n.last_reason, n.strays,
                n.quarantined_at, n.freed_at, {POLICY_COLUMNS}
           FROM numbers n JOIN groups g ON g.name = n.group_name
          WHERE n.number = $1 FOR UPDATE OF n"
    );
    let Some(r) = tx
        .query_opt(&sql, &[&number.as_str()])
        .await
        .map_err(pg_error)?
    else {
        return Ok(None);
    };
    let session: Option<String> = r.get(2);
    let expires_at: Option<i64> = r.get(5);
    let held = match (session, expires_at) {
        (Some(s), Some(at)) => Some(Ended {
            session: SessionId::parse(&s).map_err(corrupt("numbers.session"))?,
            code: r.get::<_, Option<String>>(3).map(AccessCode::from_stored),
            phone: r.get::<_, Option<String>>(4).map(PhoneNumber::from_stored),
            at: UnixMillis(at),
            reason: EndReason::Expired,
        }),
        _ => None,
    };
    let last_session: Option<String> = r.get(7);
    let last_reason: Option<String> = r.get(11);
    let last = match (last_session, last_reason) {
        (Some(s), Some(reason)) => Some(Ended {
            session: SessionId::parse(&s).map_err(corrupt("numbers.last_session"))?,
            code: r.get::<_, Option<String>>(8).map(AccessCode::from_stored),
            phone: r.get::<_, Option<String>>(9).map(PhoneNumber::from_stored),
            at: UnixMillis(r.get::<_, Option<i64>>(10).unwrap_or(0)),
            reason: EndReason::parse(&reason)
                .ok_or_else(|| StoreError::corrupt("numbers.last_reason", format!("{reason:?}")))?,
        }),
        _ => None,
    };
    let strays: Option<Vec<i64>> = r.get(12);
    Ok(Some(NumberRow {
        group: GroupName::parse(r.get(0)).map_err(corrupt("numbers.group_name"))?,
        policy: policy(&r, 15),
        retiring: r.get(1),
        held,
        wrong_codes: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
        last,
        strays: strays
            .unwrap_or_default()
            .into_iter()
            .map(UnixMillis)
            .collect(),
        quarantined: r.get::<_, Option<i64>>(13).is_some(),
        freed_at: r.get(14),
    }))
}

/// Ends the reservation on a row (`held`) for `reason` (`Expired` if it had expired by
/// `now`): the number rests for the cool-down and remembers it, or leaves if retiring.
/// Returns the event.
async fn end_reservation(
    tx: &Transaction<'_>,
    now: i64,
    number: &AccessNumber,
    row: &NumberRow,
    held: &Ended,
    reason: EndReason,
) -> Result<Event, StoreError> {
    let (group, policy, retiring) = (&row.group, &row.policy, row.retiring);
    let expired = held.at.is_reached(UnixMillis(now));
    let reason = if expired { EndReason::Expired } else { reason };
    let at = lifecycle::ended_at(held.at, UnixMillis(now));
    let free_from = lifecycle::free_from(at, policy);
    if retiring {
        tx.execute("DELETE FROM numbers WHERE number = $1", &[&number.as_str()])
            .await
            .map_err(pg_error)?;
    } else {
        let sql = "UPDATE numbers SET session = NULL, code = NULL, phone = NULL, expires_at = NULL,
                          wrong_codes = 0, freed_at = $2, last_session = $3, last_code = $4,
                          last_phone = $5, last_end = $6, last_reason = $7
                    WHERE number = $1";
        tx.execute(
            sql,
            &[
                &number.as_str(),
                &free_from.0,
                &held.session.as_str(),
                &held.code.as_ref().map(|c| c.as_str()),
                &held.phone.as_ref().map(|p| p.as_str()),
                &at.0,
                &reason.as_str(),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    let time = if reason == EndReason::Matched {
        UnixMillis(now)
    } else {
        at
    };
    Ok(Event::new(
        reason.event(),
        time,
        group.clone(),
        number.clone(),
        Some(held.session.clone()),
    ))
}

/// A call on a number: see `Store::match_reservation`. Returns the outcome and its events.
pub async fn match_reservation(
    tx: &Transaction<'_>,
    now: i64,
    req: &MatchRequest,
) -> Result<(MatchOutcome, Vec<Event>), StoreError> {
    let Some(mut row) = lock_number(tx, &req.number).await? else {
        return Ok((MatchOutcome::unknown_number(), Vec::new()));
    };
    let mut events = Vec::new();
    let now_at = UnixMillis(now);
    // An expired reservation no purge recorded yet is the number's last one from here on.
    if let Some(held) = row.held.take_if(|h| h.at.is_reached(now_at)) {
        let e = end_reservation(tx, now, &req.number, &row, &held, EndReason::Expired).await?;
        events.push(e);
        if row.retiring {
            return Ok((MatchOutcome::unknown_number(), events));
        }
        row.freed_at = lifecycle::free_from(held.at, &row.policy).0;
        row.last = Some(held);
        row.wrong_codes = 0;
    }
    let live = row.held.as_ref().map(|h| Live {
        session: &h.session,
        code: h.code.as_ref(),
        phone: h.phone.as_ref(),
        wrong_codes: row.wrong_codes,
    });
    let in_grace = row
        .last
        .as_ref()
        .is_some_and(|l| now_at < l.at.plus(row.policy.late_match_grace()));
    let last_session = match (&row.last, in_grace) {
        (Some(l), true) => sessions::get(tx, now, &l.session).await?,
        _ => None,
    };
    let last = row.last.as_ref().map(|ended| Last {
        ended,
        session_alive: last_session.is_some(),
    });
    let call = Call {
        code: req.code.as_ref(),
        phone: req.phone.as_ref(),
        code_required: req.code_required,
    };
    let verdict = crate::rules::call::decide(call, live, last, &row.policy, now_at);
    let group = row.group.clone();
    let no_match = |reason, locked, stray, quarantined| MatchOutcome::NoMatch {
        reason,
        group: Some(group.clone()),
        locked,
        stray,
        quarantined,
    };
    // A wrong code for the live reservation counts even when an ended one answers late.
    let mut locked = false;
    let verdict = match verdict {
        Verdict::LateAfterWrongCode {
            session,
            attempts,
            lockout,
        } => {
            locked = lockout;
            match (&row.held, lockout) {
                (Some(held), true) => {
                    let e = end_reservation(tx, now, &req.number, &row, held, EndReason::Locked)
                        .await?;
                    events.push(e);
                }
                _ => count_wrong_code(tx, &req.number, attempts).await?,
            }
            Verdict::Late(session)
        }
        v => v,
    };
    let outcome = match verdict {
        Verdict::Match(id) => {
            let Some(found) = sessions::get(tx, now, &id).await? else {
                return Ok((no_match(Reason::SessionEnded, false, false, false), events));
            };
            if let Some(held) = &row.held {
                let e =
                    end_reservation(tx, now, &req.number, &row, held, EndReason::Matched).await?;
                events.push(e);
            }
            if req.end_session {
                events.extend(sessions::end(tx, now, &id).await?.unwrap_or_default());
            }
            MatchOutcome::Matched {
                session: found,
                group: row.group.clone(),
                late: false,
                locked: false,
            }
        }
        Verdict::Late(id) => {
            let Some(found) = last_session else {
                return Ok((no_match(Reason::SessionEnded, false, false, false), events));
            };
            events.push(Event::new(
                EventKind::LateMatch,
                now_at,
                row.group.clone(),
                req.number.clone(),
                Some(id.clone()),
            ));
            if req.end_session {
                events.extend(sessions::end(tx, now, &id).await?.unwrap_or_default());
            }
            MatchOutcome::Matched {
                session: found,
                group: row.group.clone(),
                late: true,
                locked,
            }
        }
        Verdict::WrongCode { attempts } => {
            count_wrong_code(tx, &req.number, attempts).await?;
            no_match(Reason::WrongCode, false, false, false)
        }
        Verdict::LateAfterWrongCode { .. } => unreachable!("turned into Late above"),
        Verdict::Lockout => {
            if let Some(held) = &row.held {
                let e =
                    end_reservation(tx, now, &req.number, &row, held, EndReason::Locked).await?;
                events.push(e);
            }
            no_match(Reason::Locked, true, false, false)
        }
        Verdict::Refused(reason) => no_match(reason, false, false, false),
        Verdict::Stray(reason) => {
            let (strays, quarantine) = lifecycle::stray_call(&row.strays, now_at, &row.policy);
            let newly = quarantine && !row.quarantined && !row.retiring;
            let times: Vec<i64> = strays.iter().map(|t| t.0).collect();
            tx.execute(
                "UPDATE numbers SET strays = $2,
                        quarantined_at = CASE WHEN $3 THEN $4 ELSE quarantined_at END
                  WHERE number = $1",
                &[&req.number.as_str(), &times, &newly, &now],
            )
            .await
            .map_err(pg_error)?;
            if newly {
                events.push(Event::new(
                    EventKind::Quarantined,
                    now_at,
                    row.group.clone(),
                    req.number.clone(),
                    None,
                ));
            }
            no_match(reason, false, true, newly)
        }
    };
    Ok((outcome, events))
}

/// A live reservation's new count of wrong codes.
async fn count_wrong_code(
    tx: &Transaction<'_>,
    number: &AccessNumber,
    attempts: u32,
) -> Result<(), StoreError> {
    let count = i32::try_from(attempts).unwrap_or(i32::MAX);
    tx.execute(
        "UPDATE numbers SET wrong_codes = $2 WHERE number = $1",
        &[&number.as_str(), &count],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Ends a number's cool-down or quarantine (`Store::free_number`).
pub async fn free_number(
    tx: &Transaction<'_>,
    now: i64,
    group: &GroupName,
    number: &AccessNumber,
) -> Result<FreeNumber, StoreError> {
    let known = tx
        .query_opt("SELECT 1 FROM groups WHERE name = $1", &[&group.as_str()])
        .await
        .map_err(pg_error)?;
    if known.is_none() {
        return Ok(FreeNumber::UnknownGroup);
    }
    let row = match lock_number(tx, number).await? {
        Some(row) if row.group == *group && !row.retiring => row,
        _ => return Ok(FreeNumber::UnknownNumber),
    };
    let live = row
        .held
        .as_ref()
        .is_some_and(|h| !h.at.is_reached(UnixMillis(now)));
    let cooling = !live && row.freed_at > now;
    if !(row.quarantined || cooling) {
        return Ok(FreeNumber::NotResting);
    }
    tx.execute(
        "UPDATE numbers SET freed_at = $2, quarantined_at = NULL, strays = NULL WHERE number = $1",
        &[&number.as_str(), &now],
    )
    .await
    .map_err(pg_error)?;
    Ok(FreeNumber::Freed)
}

/// Releases the live reservation on a number (admin); `false` if it had none.
pub async fn release(
    tx: &Transaction<'_>,
    now: i64,
    number: &AccessNumber,
) -> Result<(bool, Vec<Event>), StoreError> {
    let Some(row) = lock_number(tx, number).await? else {
        return Ok((false, Vec::new()));
    };
    match &row.held {
        Some(held) if !held.at.is_reached(UnixMillis(now)) => {
            let e = end_reservation(tx, now, number, &row, held, EndReason::Released).await?;
            Ok((true, vec![e]))
        }
        _ => Ok((false, Vec::new())),
    }
}

/// Ends the reservation on a number because its session ended (`sessions::end`).
pub async fn end_session_hold(
    tx: &Transaction<'_>,
    now: i64,
    number: &AccessNumber,
) -> Result<Option<Event>, StoreError> {
    let Some(row) = lock_number(tx, number).await? else {
        return Ok(None);
    };
    let Some(held) = &row.held else {
        return Ok(None);
    };
    let e = end_reservation(tx, now, number, &row, held, EndReason::SessionEnded).await?;
    Ok(Some(e))
}

/// `Store::release`, with its event.
pub async fn release_number(
    tx: &Transaction<'_>,
    now: i64,
    number: &AccessNumber,
) -> Result<(bool, Vec<Event>), StoreError> {
    release(tx, now, number).await
}

/// `Store::end_session`, with its reservations' events.
pub async fn end_session(
    tx: &Transaction<'_>,
    now: i64,
    id: &SessionId,
) -> Result<(bool, Vec<Event>), StoreError> {
    Ok(match sessions::end(tx, now, id).await? {
        Some(events) => (true, events),
        None => (false, Vec::new()),
    })
}
