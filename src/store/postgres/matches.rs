//! match-interaction on PostgreSQL, a batch at a time (`batch.rs`): the numbers' rows are
//! locked and read with the sessions they name in one round trip, `rules::call::decide` says
//! what each call does, in arrival order, on the rows as the calls before it left them, and
//! the rows are written back set-based with the `COMMIT` in a second round trip. The same
//! decisions as the embedded engine (`store/local/engine/calls.rs`).
//!
//! A call that also ends its session (`_delete_service=true`) reaches rows the batch did not
//! read (the session's other numbers, its data): it closes its batch, and its session ends
//! after the batch's rows are written, so every call sees what the ones before it did. Such a
//! batch locks the sessions its number names before the numbers: the lock order of every
//! path is sessions → numbers (a session's end and a request-access lock the session, then
//! its numbers). Locking the number first deadlocked with them in a third of such races,
//! each costing PostgreSQL's `deadlock_timeout` and, past the retries, a 503.

use hashbrown::HashMap;
use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Type;

use super::claim::NOW;
use super::prepared::{Stmt, send};
use super::rows::{self, NumberRow};
use super::{pg_error, sessions};
use crate::domain::{AccessNumber, SessionId, UnixMillis};
use crate::events::{Event, EventKind};
use crate::rules::call::{Call, Last, Live, Reason, Verdict};
use crate::rules::lifecycle::{self, EndReason};
use crate::store::{MatchOutcome, MatchRequest, Session, StoreError};

type Answer = Result<MatchOutcome, StoreError>;

/// Match-interaction calls as a batch (`batch.rs`).
pub struct Matching;

impl super::batch::Work for Matching {
    type Req = MatchRequest;
    type Ans = Answer;
    type Plan = Writes;

    /// Two round trips: `BEGIN` with the locks and the sessions, the writes with the
    /// `COMMIT` (`batch::Finish`); a call that ends its session adds its own.
    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[MatchRequest],
    ) -> Result<(Vec<Answer>, Writes), StoreError> {
        let (answers, writes) = match_many(client, db.frozen(), reqs).await?;
        Ok((answers.into_iter().map(Ok).collect(), writes))
    }

    async fn write(
        client: &deadpool_postgres::Client,
        _: &[Self::Req],
        writes: &Writes,
        finish: &mut super::batch::Finish,
    ) -> Result<Vec<Event>, StoreError> {
        let stmts = rows::write_stmts(&writes.rows);
        if writes.end_sessions.is_empty() {
            finish.last(client, &stmts).await?;
            return Ok(writes.events.clone());
        }
        finish.more(client, &stmts).await?;
        finish.within(writes.end_sessions(client)).await
    }

    fn failed(err: StoreError) -> Answer {
        Err(err)
    }

    fn closes_batch(req: &MatchRequest) -> bool {
        req.end_session
    }
}

/// What a batch of calls writes: the rows they changed, the sessions they end, their events.
pub struct Writes {
    now: i64,
    rows: HashMap<String, NumberRow>,
    end_sessions: Vec<SessionId>,
    events: Vec<Event>,
}

/// Decides the calls one by one in order, on the locked rows; answer i is for call i.
pub async fn match_many<C: GenericClient>(
    client: &C,
    frozen: Option<i64>,
    reqs: &[MatchRequest],
) -> Result<(Vec<MatchOutcome>, Writes), StoreError> {
    let mut numbers: Vec<&str> = reqs.iter().map(|r| r.number.as_str()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    // Sent together after BEGIN: the sessions are read after the rows are locked, so from
    // the rows as locked.
    let ending: Vec<&str> = reqs
        .iter()
        .filter(|r| r.end_session)
        .map(|r| r.number.as_str())
        .collect();
    let mut reads = Vec::with_capacity(4);
    reads.push(super::claim::now_stmt(frozen));
    if !ending.is_empty() {
        reads.push(lock_sessions_of(&ending));
    }
    reads.push(rows::lock_stmt(&numbers));
    reads.push(sessions_of(
        frozen,
        &numbers,
        reqs.iter().any(|r| r.with_fields),
    ));
    let read = send(client, &reads).await.map_err(pg_error)?;
    let now = super::claim::now_from(&read[0])?;
    let [.., locked, named] = read.as_slice() else {
        return Err(StoreError::corrupt(
            "a match batch",
            "fewer answers than statements",
        ));
    };
    let mut rows = rows::locked_from(locked)?;
    let sessions = sessions_from(named)?;
    let mut writes = Writes {
        now,
        rows: HashMap::new(),
        end_sessions: Vec::new(),
        events: Vec::new(),
    };
    let mut answers = Vec::with_capacity(reqs.len());
    for req in reqs {
        let outcome = match rows.get_mut(req.number.as_str()) {
            Some(row) if !row.gone => call(row, &sessions, now, req, &mut writes),
            _ => MatchOutcome::unknown_number(),
        };
        if req.end_session
            && let MatchOutcome::Matched { session, .. } = &outcome
        {
            writes.end_sessions.push(session.id.clone());
        }
        answers.push(outcome);
    }
    writes.rows = rows.drain().filter(|(_, row)| row.changed).collect();
    Ok((answers, writes))
}

/// One call on its number's row (see `rules::call::decide`); changes the row and returns
/// the outcome, its events in `writes`.
fn call(
    row: &mut NumberRow,
    sessions: &HashMap<String, Session>,
    now: i64,
    req: &MatchRequest,
    writes: &mut Writes,
) -> MatchOutcome {
    let now_at = UnixMillis(now);
    let number = &req.number;
    // An expired reservation no purge recorded yet is the number's last one from here on.
    if let Some(held) = row.held.take_if(|h| h.at.is_reached(now_at)) {
        writes
            .events
            .push(row.end(now, number, held, EndReason::Expired));
        if row.gone {
            return MatchOutcome::unknown_number();
        }
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
        (Some(l), true) => sessions.get(l.session.as_str()),
        _ => None,
    };
    let last = row.last.as_ref().map(|ended| Last {
        ended,
        session_alive: last_session.is_some(),
        strays: &row.strays,
    });
    let offered = Call {
        code: req.code.as_ref(),
        phone: req.phone.as_ref(),
        code_required: req.code_required,
    };
    let verdict = crate::rules::call::decide(offered, live, last, &row.policy, now_at);
    let last_session = last_session.cloned();
    let group = row.group.clone();
    let refused = |reason| MatchOutcome::refused(reason, group.clone());
    match verdict {
        Verdict::Match(id) => {
            let Some(found) = sessions.get(id.as_str()).cloned() else {
                return refused(Reason::SessionEnded);
            };
            if let Some(held) = row.held.take() {
                writes
                    .events
                    .push(row.end(now, number, held, EndReason::Matched));
            }
            MatchOutcome::Matched {
                session: found,
                group,
                late: false,
                locked: None,
            }
        }
        Verdict::Late(id) => late(row, number, now, id, last_session, None, writes),
        Verdict::LateAfterWrongCode {
            session,
            attempts,
            lockout,
        } => late(
            row,
            number,
            now,
            session,
            last_session,
            Some((attempts, lockout)),
            writes,
        ),
        Verdict::WrongCode { attempts } => {
            row.count_wrong_code(attempts);
            refused(Reason::WrongCode)
        }
        Verdict::Lockout => {
            let held = row.held.take().expect("a lockout ends a live reservation");
            let session = held.session.clone();
            writes
                .events
                .push(row.end(now, number, held, EndReason::Locked));
            MatchOutcome::locked_out(group.clone(), session)
        }
        Verdict::Refused(reason) => refused(reason),
        Verdict::Stray(reason) => {
            let (strays, quarantine) = lifecycle::stray_call(&row.strays, now_at, &row.policy);
            let newly = quarantine && row.quarantined_at.is_none() && !row.retiring;
            row.strays = strays;
            row.changed = true;
            if newly {
                row.quarantined_at = Some(now);
                writes.events.push(Event::new(
                    EventKind::Quarantined,
                    now_at,
                    group.clone(),
                    number.clone(),
                    None,
                ));
            }
            MatchOutcome::stray(reason, group.clone(), newly)
        }
    }
}

/// A late match (see `rules::call::Verdict::Late`). `wrong`: the call's code was wrong for
/// the live reservation (attempts so far, and whether that cancels it): it counts first.
fn late(
    row: &mut NumberRow,
    number: &AccessNumber,
    now: i64,
    id: SessionId,
    last_session: Option<Session>,
    wrong: Option<(u32, bool)>,
    writes: &mut Writes,
) -> MatchOutcome {
    let mut locked = None;
    if let Some((attempts, lockout)) = wrong {
        match row.held.take_if(|_| lockout) {
            Some(held) => {
                locked = Some(held.session.clone());
                let event = row.end(now, number, held, EndReason::Locked);
                writes.events.push(event);
            }
            None => row.count_wrong_code(attempts),
        }
    }
    let Some(found) = last_session else {
        return MatchOutcome::refused(Reason::SessionEnded, row.group.clone());
    };
    writes.events.push(Event::new(
        EventKind::LateMatch,
        UnixMillis(now),
        row.group.clone(),
        number.clone(),
        Some(id),
    ));
    MatchOutcome::Matched {
        session: found,
        group: row.group.clone(),
        late: true,
        locked,
    }
}

impl Writes {
    /// Ends the sessions the calls asked to end, after the rows are written.
    /// Returns every event of the batch.
    async fn end_sessions<C: GenericClient>(&self, client: &C) -> Result<Vec<Event>, StoreError> {
        let mut events = self.events.clone();
        if !self.end_sessions.is_empty() {
            let ids: Vec<&str> = self.end_sessions.iter().map(SessionId::as_str).collect();
            events.extend(sessions::end_all(client, Some(self.now), &ids).await?.1);
        }
        Ok(events)
    }
}

/// Locks, in id order, the sessions that the reservations (live or last) on `numbers` name:
/// the sessions a call ending its session may end. A statement of its own before the numbers
/// are locked (sessions → numbers, as everywhere); the numbers' statement then reads them as
/// they are once these locks are held.
fn lock_sessions_of<'a>(numbers: &'a [&'a str]) -> Stmt<'a> {
    Stmt::new(
        "SELECT s.id
           FROM (SELECT DISTINCT named
                   FROM numbers n, unnest(ARRAY[n.session, n.last_session]) AS named
                  WHERE n.number = ANY($1) AND named IS NOT NULL
                  ORDER BY named) q
          CROSS JOIN LATERAL (SELECT id FROM sessions WHERE id = q.named FOR UPDATE) s",
    )
    .bind(numbers, Type::TEXT_ARRAY)
}

/// The live sessions the numbers' reservations (live or last) name, with their fields when
/// a call of the batch returns them (`_return_data`; otherwise the data rows are not read):
/// [`sessions_from`]. A last reservation's session only where the group has a late-match
/// grace: without one no call can match it late (`rules::call`), and reading it doubled the
/// sessions read in a pool where every number was reserved before.
fn sessions_of<'a>(frozen: Option<i64>, numbers: &'a [&'a str], with_fields: bool) -> Stmt<'a> {
    /// The two texts (without, with the data rows), built once.
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| [false, true].map(sessions_sql));
    Stmt::new(SQL[usize::from(with_fields)].as_str())
        .bind(numbers, Type::TEXT_ARRAY)
        .bind(frozen, Type::INT8)
}

fn sessions_sql(with_fields: bool) -> String {
    let now = NOW.replace("$N", "$2");
    let (fields, data) = match with_fields {
        true => (
            "d.fields",
            format!("LEFT JOIN data d ON d.id = s.data_id AND d.expires_at > {now}"),
        ),
        false => ("NULL::text", String::new()),
    };
    format!(
        "SELECT s.id, s.service, s.data_id, s.expires_at, {fields}, {now} FROM sessions s {data}
          WHERE s.expires_at > {now}
            AND s.id IN (SELECT named
                           FROM numbers n JOIN groups g ON g.name = n.group_name,
                                unnest(ARRAY[n.session, CASE WHEN g.late_match_grace > 0
                                                             THEN n.last_session END]) AS named
                          WHERE n.number = ANY($1))"
    )
}

fn sessions_from(rows: &[tokio_postgres::Row]) -> Result<HashMap<String, Session>, StoreError> {
    rows.iter()
        .map(|r| {
            let id: String = r.get(0);
            let parsed = SessionId::parse(&id).map_err(super::rows::corrupt("sessions.id"))?;
            Ok((id, sessions::from_row(parsed, r, 1, r.get(5))?))
        })
        .collect()
}
