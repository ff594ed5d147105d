//! Reserving, matching and releasing in PostgreSQL. The decisions are the rules of
//! `crate::rules`, the same functions the embedded engine calls; this file gathers the rows
//! they need (`claim.rs`), applies them in request order, and writes the result set-based.
//!
//! Lock order is session rows → number rows, the same in every path that takes more than
//! one, so concurrent calls queue rather than deadlock (a match that ends its session locks
//! the sessions its number names first: `matches.rs`). The group row is never waited for
//! (see [`write`]).

use hashbrown::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::types::Type;

use super::claim::{self, GroupRow, Pool};
use super::pg_error;
use super::prepared::{Stmt, send};
use super::sessions::{self, left};
use super::walks::Walks;
use crate::domain::{AccessNumber, UnixMillis};
use crate::events::{Event, EventKind};
use crate::rules::{self, Booking};
use crate::store::{NewSession, Reservation, ReserveError, ReserveRequest, Session, StoreError};

pub type Answer = Result<Reservation, ReserveError>;

/// One reservation in the caller's transaction (request-interaction, after creating the
/// session).
pub async fn reserve(
    tx: &Transaction<'_>,
    now: i64,
    walks: &Walks,
    req: &ReserveRequest,
) -> Result<(Reservation, Vec<Event>), ReserveError> {
    // This transaction's `now` is the one every statement of it computes (claim::NOW).
    let one = std::slice::from_ref(req);
    let (mut answers, writes) = reserve_many(tx, Some(now), walks, Vec::new(), one).await?;
    send(tx, &writes.stmts()).await.map_err(pg_error)?;
    let events = writes.events;
    let answer = answers
        .pop()
        .unwrap_or_else(|| Err(StoreError::corrupt("a batch of one", "no answer").into()))?;
    Ok((answer, events))
}

/// A group as the batch goes through it: its settings, the candidates locked for it, and
/// what the batch already did in it.
struct GroupState {
    row: GroupRow,
    pool: Option<Pool>,
    /// Number of the group → when it becomes lendable, for every reserved or cooling number
    /// (loaded on the first refusal).
    expiries: Option<HashMap<String, i64>>,
    /// (in service, free) before the batch, when a caller asked for pool health.
    counts: Option<(u64, u64)>,
    /// Numbers this batch took in the group.
    taken: Vec<String>,
    /// Whether the batch's last look at the group's free numbers (`look_again`) found none.
    looked_in_vain: bool,
}

/// What a batch writes: every number it reserved or renewed, the round-robin cursors it
/// moved, and the events of the new reservations.
#[derive(Debug, Default)]
pub struct Writes {
    reservations: HashMap<String, Written>,
    /// (row address, the numbers it holds now, comma-separated) of each session whose list
    /// of holds the batch rewrites ([`lists_of_holds`]).
    lists: Vec<(String, String)>,
    cursors: Vec<(String, i64)>,
    /// The batch's events in the order it decided them (a lapsed reservation's expiry before
    /// the new reservation of its number).
    pub events: Vec<Event>,
    now: i64,
}

/// A session's live reservation in a group, as the batch knows it: read under lock, or
/// taken by an earlier call of the batch.
#[derive(Clone)]
struct Hold {
    number: String,
    /// Where the number's row is (locked by the batch's reads).
    at: String,
    booking: Booking,
    /// The client it counts for (`rules::quota::owner`).
    client: Option<crate::store::ClientId>,
}

/// A number a batch reserved or renewed.
#[derive(Debug)]
struct Written {
    /// Where the number's row is (locked by the batch's reads).
    at: String,
    session: String,
    booking: Booking,
    /// When the number is lendable again (`rules::lifecycle::free_from`).
    free_from: i64,
    /// A new reservation, not a renewal: the session's list of holds gains the number.
    new: bool,
    /// Its group allocates least recently used first, so the write keeps `lru_at`.
    lru: bool,
    /// Who it counts for (`rules::quota::owner`; `numbers.client`, migration 10).
    client: Option<crate::store::ClientId>,
}

/// Request-access calls decided one by one in order, as if each came alone, in the caller's
/// transaction; item i of the answer is for request i. A refusal (no session, no group, no
/// free number) is that item's answer and does not undo the others. Returns the answers and
/// what to write ([`write`]); the caller writes and commits (the batcher sends both at once).
///
/// Round trips: the reads (the transaction's `now`, the groups, and in one statement the
/// sessions locked in id order with their live reservations and each round-robin or
/// least-recently-used group's candidates) go together, so they follow a `BEGIN` in one
/// trip; a random group's candidates take one more; then the writes. `first` are statements
/// sent ahead of the reads in their trip (request-interaction's new sessions).
pub async fn reserve_many<'a, C: GenericClient>(
    tx: &C,
    frozen: Option<i64>,
    walks: &Walks,
    first: Vec<Stmt<'a>>,
    reqs: &'a [ReserveRequest],
) -> Result<(Vec<Answer>, Writes), StoreError> {
    let mut ids: Vec<&str> = reqs.iter().map(|r| r.session.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut names: Vec<&str> = reqs.iter().map(|r| r.group.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    // Every (session, group) asked for, once: the pairs whose candidates `claim::reads` counts.
    let mut pairs: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.session.as_str(), r.group.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    // The clients whose quota the batch counts (`[limits] reservations_per_client`).
    let mut clients: Vec<&str> = reqs
        .iter()
        .filter_map(|r| r.quota.as_ref().map(|q| &*q.client))
        .collect();
    clients.sort_unstable();
    clients.dedup();
    // Sent together after BEGIN; the last ones lock, in the lock order (clients, sessions,
    // then numbers), the sessions in a statement of their own (`claim::lock_sessions`).
    let skip = first.len();
    let mut reads = first;
    reads.extend([claim::now_stmt(frozen), claim::groups(&names)]);
    if !clients.is_empty() {
        reads.push(claim::lock_clients(&clients));
        reads.push(claim::client_holds(frozen, &clients));
    }
    reads.push(claim::lock_sessions(&ids));
    reads.push(claim::reads(
        frozen,
        &ids,
        pairs.into_iter().unzip(),
        walks.hints(&names),
    ));
    let read = send(tx, &reads).await.map_err(pg_error)?;
    let read = &read[skip..];
    let now = claim::now_from(&read[0])?;
    let groups = claim::groups_from(&read[1])?;
    let mut by_client = match clients.is_empty() {
        true => HashMap::new(),
        false => claim::client_holds_from(&read[3]),
    };
    let last = &read[read.len() - 1];
    let claim::Locked { sessions, held } = claim::sessions_from(last, now);
    let mut prefetched = claim::pools_from(last)?;

    // (session, group) → the live reservation.
    let mut holds: HashMap<(String, String), Hold> = held
        .into_iter()
        .map(|h| {
            let hold = Hold {
                number: h.number,
                at: h.at,
                booking: h.booking,
                client: h.client,
            };
            ((h.session, h.group), hold)
        })
        .collect();
    let mut states: HashMap<&str, GroupState> = groups
        .into_iter()
        .filter_map(|(name, row)| {
            let name = names.iter().find(|n| **n == name)?;
            Some((*name, GroupState::new(row)))
        })
        .collect();
    load_candidates(
        tx,
        now,
        reqs,
        &sessions,
        &holds,
        &mut states,
        &mut prefetched,
    )
    .await?;

    let mut written: HashMap<String, Written> = HashMap::new();
    let mut events = Vec::new();
    let mut answers = Vec::with_capacity(reqs.len());
    for (i, req) in reqs.iter().enumerate() {
        let Some(session_expiry) = sessions.get(req.session.as_str()).map(|s| s.expires_at) else {
            answers.push(Err(ReserveError::SessionNotFound));
            continue;
        };
        let Some(state) = states.get_mut(req.group.as_str()) else {
            answers.push(Err(ReserveError::UnknownGroup));
            continue;
        };
        let key = (
            req.session.as_str().to_owned(),
            req.group.as_str().to_owned(),
        );
        let current = holds.get(&key).cloned();
        let renewal = current.is_some();
        let take = |state: &mut GroupState| {
            state
                .take(&mut rand::rng())
                .map(|f| (f.number, f.at, f.lapsed))
        };
        if let (None, Some(quota)) = (&current, &req.quota) {
            let ends = by_client
                .get(&*quota.client)
                .into_iter()
                .flat_map(|h| h.values());
            if let Err(refusal) = rules::quota::admit(quota, ends.copied(), UnixMillis(now)) {
                answers.push(Err(refusal));
                continue;
            }
        }
        let mut taken = match &current {
            Some(hold) => Some((hold.number.clone(), hold.at.clone(), None)),
            None => take(state),
        };
        if taken.is_none() && current.is_none() {
            // At most the calls left in the batch for this group.
            let more = reqs[i..].iter().filter(|r| r.group == req.group).count();
            if state
                .look_again(tx, frozen, now, req.group.as_str(), more)
                .await?
            {
                taken = take(state);
            }
        }
        let (number, at, lapsed) = match taken {
            Some(taken) => taken,
            None => {
                let refusal = state.exhausted(tx, now, req.group.as_str(), &written);
                answers.push(Err(refusal.await?));
                continue;
            }
        };
        let policy = state.row.policy;
        let code = rules::booking::code_to_give(req.provide_code, &policy, req.code.clone());
        let booking = rules::book(
            UnixMillis(now),
            req.timeout,
            state.row.timeout,
            UnixMillis(session_expiry),
            code,
            req.phone.clone(),
            current.as_ref().map(|hold| &hold.booking),
        );
        let (size, free) = match req.pool_health {
            true => state.health(tx, now, req).await?,
            false => (0, 0),
        };
        answers.push(Ok(Reservation {
            number: AccessNumber::parse(&number)
                .map_err(|e| StoreError::corrupt("numbers.number", e))?,
            code: booking.code.clone(),
            expires_in: left(booking.expires_at.0, now),
            pool_size: size,
            pool_free: free,
        }));
        if let Some((session, at)) = lapsed {
            events.push(lapsed_event(&req.group, &number, &session, at));
        }
        if !renewal {
            events.push(Event::new(
                EventKind::Created,
                UnixMillis(now),
                req.group.clone(),
                AccessNumber::from_stored(number.clone()),
                Some(req.session.clone()),
            ));
        }
        let free_from = rules::lifecycle::free_from(booking.expires_at, &policy).0;
        let asker = req.quota.as_ref().map(|q| &q.client);
        let client = rules::quota::owner(current.as_ref().and_then(|h| h.client.as_ref()), asker);
        if let Some(client) = &client {
            by_client
                .entry(client.to_string())
                .or_default()
                .insert(key.clone(), booking.expires_at);
        }
        let hold = Hold {
            number: number.clone(),
            at: at.clone(),
            booking: booking.clone(),
            client: client.clone(),
        };
        holds.insert(key, hold);
        // New to the session's list unless it held the number when the batch read it: a
        // second call of the session in this batch renews what the first took, and must not
        // turn it into a renewal (its list of holds would never name it).
        let new = !renewal || written.get(&number).is_some_and(|w| w.new);
        written.insert(
            number,
            Written {
                at,
                session: req.session.as_str().to_owned(),
                booking,
                free_from,
                new,
                lru: state.row.allocation == crate::domain::Allocation::LeastRecentlyUsed,
                client,
            },
        );
    }
    let cursors: Vec<(String, i64)> = states
        .iter()
        .filter(|(_, s)| s.walks() && !s.taken.is_empty())
        .filter_map(|(name, s)| {
            let pool = s.pool.as_ref()?;
            let at = i64::from(pool.cursor);
            walks.walked(name, pool.stored, at);
            Some(((*name).to_owned(), at))
        })
        .collect();
    let lists = lists_of_holds(&sessions, &holds, &written);
    let writes = Writes {
        reservations: written,
        lists,
        cursors,
        events,
        now,
    };
    Ok((answers, writes))
}

impl GroupState {
    fn new(row: GroupRow) -> Self {
        Self {
            row,
            pool: None,
            expiries: None,
            counts: None,
            taken: Vec::new(),
            looked_in_vain: false,
        }
    }

    /// Whether the group walks a round-robin cursor (moved by every number it takes).
    fn walks(&self) -> bool {
        self.row.allocation == crate::domain::Allocation::RoundRobin
    }

    /// Takes the next free number by the group's strategy.
    fn take(&mut self, rng: &mut impl rand::Rng) -> Option<claim::Found> {
        let walks = self.walks();
        let pool = self.pool.as_mut()?;
        let pos = rules::pick(self.row.allocation, pool.cursor, &pool.candidates, rng)?;
        pool.candidates.remove(pos);
        if walks {
            pool.cursor = rules::cursor_after_pick(pos);
        }
        let found = pool.numbers.remove(&pos)?;
        self.taken.push(found.number.clone());
        Some(found)
    }

    /// Before a call is refused for want of a free number (until a look finds none in the
    /// batch): the group's free numbers as committed now, up to `more` besides those the
    /// batch took. The batch's reads saw the group as their statement's snapshot had it,
    /// free "at the transaction's `now`", when it began; with other nodes busy in the group
    /// that view can hold no free number while some are: numbers given back since look held
    /// (or freed after `now`), and the ones free then are taken meanwhile (an outside audit:
    /// 5–6 of ~6,000 calls refused with 8–18 of 20 numbers free, 18 sessions giving theirs
    /// back and asking again through two nodes). A new statement, by the database's clock as
    /// it is now, sees the numbers given back. They are drawn as a random group's are
    /// (`claim::random`), the walk's place kept; a number whose reservation lapsed after
    /// `now` is left for the next batch (this one's writes take a reservation that ends
    /// after `now` for a renewal). Returns whether any was found.
    async fn look_again(
        &mut self,
        tx: &impl GenericClient,
        frozen: Option<i64>,
        now: i64,
        group: &str,
        more: usize,
    ) -> Result<bool, StoreError> {
        if self.looked_in_vain {
            return Ok(false);
        }
        let Some(old) = self.pool.as_ref() else {
            return Ok(false);
        };
        let later = claim::clock(tx, frozen).await?;
        // The numbers this batch took are locked by it, and still free in the table.
        let mut fresh = claim::random(tx, later, group, more + self.taken.len()).await?;
        fresh.forget(|found| {
            self.taken.contains(&found.number)
                || found.lapsed.as_ref().is_some_and(|(_, at)| *at > now)
        });
        fresh.cursor = old.cursor;
        fresh.stored = old.stored;
        let found = !fresh.candidates.is_empty();
        self.looked_in_vain = !found;
        self.pool = Some(fresh);
        Ok(found)
    }

    /// The refusal for an empty pool, with Retry-After counted over the group's live
    /// reservations as this batch left them so far (renewals and new ones included).
    async fn exhausted(
        &mut self,
        tx: &impl GenericClient,
        now: i64,
        group: &str,
        written: &HashMap<String, Written>,
    ) -> Result<ReserveError, StoreError> {
        let live = match self.expiries.take() {
            Some(live) => live,
            None => claim::lendable_at(tx, now, group).await?,
        };
        let at = |number: &String| written.get(number).map(|w| w.free_from);
        let first = live
            .iter()
            .map(|(number, &expires)| at(number).unwrap_or(expires))
            .chain(self.taken.iter().filter_map(at))
            .min();
        // Nothing held and nothing to wait for: the group may be being deleted (its numbers,
        // locked by the delete, were skipped) or deleted since the batch read it. A share
        // lock on its row waits for such a delete to end, then reads the row as it left it.
        if first.is_none() && self.taken.is_empty() && live.is_empty() {
            let exists = tx
                .query_opt("SELECT 1 FROM groups WHERE name = $1 FOR SHARE", &[&group])
                .await
                .map_err(super::pg_error)?;
            if exists.is_none() {
                return Ok(ReserveError::UnknownGroup);
            }
        }
        self.expiries = Some(live);
        Ok(ReserveError::Exhausted {
            retry_after: rules::retry_after(UnixMillis(now), first.map(UnixMillis)),
        })
    }

    /// (in service, free) after this batch's changes so far.
    async fn health(
        &mut self,
        tx: &impl GenericClient,
        now: i64,
        req: &ReserveRequest,
    ) -> Result<(u64, u64), StoreError> {
        if self.counts.is_none() {
            self.counts = Some(claim::counts(tx, now, req.group.as_str()).await?);
        }
        let (size, free) = self.counts.unwrap_or_default();
        Ok((size, free.saturating_sub(self.taken.len() as u64)))
    }
}

/// Locks enough candidates in each group for the batch's new reservations there: one per
/// live session of the batch that holds no number in the group yet. A round-robin or
/// least-recently-used group's were locked with the reads (`claim::reads`, the same
/// count); a random group's are found now.
async fn load_candidates(
    tx: &impl GenericClient,
    now: i64,
    reqs: &[ReserveRequest],
    sessions: &HashMap<String, claim::LockedSession>,
    holds: &HashMap<(String, String), Hold>,
    states: &mut HashMap<&str, GroupState>,
    prefetched: &mut HashMap<String, Pool>,
) -> Result<(), StoreError> {
    let mut wanted: HashMap<&str, HashSet<&str>> = HashMap::new();
    for req in reqs {
        let (session, group) = (req.session.as_str(), req.group.as_str());
        let key = (session.to_owned(), group.to_owned());
        if sessions.contains_key(session) && states.contains_key(group) && !holds.contains_key(&key)
        {
            wanted.entry(group).or_default().insert(session);
        }
    }
    for (group, new) in wanted {
        let Some(state) = states.get_mut(group) else {
            continue;
        };
        let pool = match state.row.allocation {
            crate::domain::Allocation::Random => claim::random(tx, now, group, new.len()).await?,
            _ => prefetched.remove(group).unwrap_or_else(Pool::empty),
        };
        state.pool = Some(pool);
    }
    Ok(())
}

/// The new list of holds of each session that took a number it did not list yet: what it
/// holds once the batch is written, the live reservations read under lock (renewed or not)
/// and the new ones, so the list never grows past what the session holds. A session whose
/// list has all its new numbers already is left alone. Numbers are digits (and a leading
/// `+`), so a comma separates them.
fn lists_of_holds(
    sessions: &HashMap<String, claim::LockedSession>,
    holds: &HashMap<(String, String), Hold>,
    written: &HashMap<String, Written>,
) -> Vec<(String, String)> {
    let mut changed: Vec<&str> = written
        .iter()
        .filter(|(number, w)| {
            w.new
                && sessions
                    .get(&w.session)
                    .is_some_and(|s| !s.listed.contains(number))
        })
        .map(|(_, w)| w.session.as_str())
        .collect();
    changed.sort_unstable();
    changed.dedup();
    changed
        .into_iter()
        .filter_map(|id| {
            let mut numbers: Vec<&str> = holds
                .iter()
                .filter(|((session, _), _)| session == id)
                .map(|(_, hold)| hold.number.as_str())
                .collect();
            numbers.sort_unstable();
            Some((sessions.get(id)?.row.clone(), numbers.join(",")))
        })
        .collect()
}

/// The key of the advisory lock that guards the round-robin cursor of the group named by the
/// SQL expression `name`: batches try it ([`CURSOR_SQL`]) and move the cursor only when they
/// get it; an admin change of the group waits for it before it locks the group's row
/// (`admin::hold_group`), so batches skip the cursor instead of waiting on that row.
pub fn cursor_lock(name: &str) -> String {
    format!("hashtextextended(current_schema() || '/' || {name}, 7)")
}

/// Moves the cursors of a batch's groups (`$1` names, `$2` cursors) that no other open
/// transaction guards.
static CURSOR_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE groups g SET cursor = x.cursor
           FROM unnest($1::text[], $2::int8[]) AS x(name, cursor)
          WHERE g.name = x.name AND pg_try_advisory_xact_lock({})",
        cursor_lock("x.name")
    )
});

impl Writes {
    /// Writes every number the batch reserved or renewed, the lists of holds of the sessions
    /// that took new ones, and the cursors it moved: one statement each, whatever the batch's
    /// size, sent together (the reservations first; the events of their expiries,
    /// [`Writes::events`], come from its rows).
    ///
    /// The round-robin cursor is not a hot row: batches read it without a lock, so batches on
    /// every node claim at once (`FOR UPDATE SKIP LOCKED` spreads them over different
    /// numbers), and a batch moves it only if no other open transaction is moving it (a
    /// transaction-level advisory lock tried, never waited for); otherwise the batch that
    /// holds it moves it. A lone node walks the pool exactly in order (its own walk goes on
    /// while its moves are skipped, `walks.rs`); concurrent batches walk it together, each
    /// skipping what the others took.
    pub fn stmts(&self) -> Vec<Stmt<'_>> {
        let mut stmts = Vec::with_capacity(3);
        let written = &self.reservations;
        if !written.is_empty() {
            let mut rows = Vec::with_capacity(written.len());
            let mut sessions = Vec::with_capacity(written.len());
            let mut codes = Vec::with_capacity(written.len());
            let mut phones = Vec::with_capacity(written.len());
            let mut expiries = Vec::with_capacity(written.len());
            let mut frees = Vec::with_capacity(written.len());
            let mut lru = Vec::with_capacity(written.len());
            let mut clients = Vec::with_capacity(written.len());
            for w in written.values() {
                rows.push(w.at.as_str());
                sessions.push(w.session.as_str());
                codes.push(w.booking.code.as_ref().map(|c| c.as_str()));
                phones.push(w.booking.phone.as_ref().map(|p| p.as_str()));
                expiries.push(w.booking.expires_at.0);
                frees.push(w.free_from);
                lru.push(w.lru);
                clients.push(w.client.as_deref());
            }
            // Each row by its address: see [`RESERVE_SQL`].
            let count = i64::try_from(written.len()).unwrap_or(i64::MAX);
            stmts.push(
                Stmt::new(RESERVE_SQL.as_str())
                    .bind(rows, Type::TEXT_ARRAY)
                    .bind(sessions, Type::TEXT_ARRAY)
                    .bind(codes, Type::TEXT_ARRAY)
                    .bind(phones, Type::TEXT_ARRAY)
                    .bind(expiries, Type::INT8_ARRAY)
                    .bind(frees, Type::INT8_ARRAY)
                    .bind(lru, Type::BOOL_ARRAY)
                    .bind(self.now, Type::INT8)
                    .bind(count, Type::INT8)
                    .bind(clients, Type::TEXT_ARRAY),
            );
            if let Some(stmt) = self.holds_stmt() {
                stmts.push(stmt);
            }
        }
        if !self.cursors.is_empty() {
            let (names, cursors): (Vec<&str>, Vec<i64>) = self
                .cursors
                .iter()
                .map(|(name, cursor)| (name.as_str(), *cursor))
                .unzip();
            stmts.push(
                Stmt::new(CURSOR_SQL.as_str())
                    .bind(names, Type::TEXT_ARRAY)
                    .bind(cursors, Type::INT8_ARRAY),
            );
        }
        stmts
    }

    /// The sessions that took new numbers get their new lists of holds ([`lists_of_holds`]),
    /// each session's row found by its address (a Tid Scan: it is locked since the batch's
    /// first statement). The lists were a statement's work before, which looked each session
    /// up again and probed every number of its list: the costliest statement of the pair
    /// (`pg_stat_statements`, 0.28 ms a batch).
    fn holds_stmt(&self) -> Option<Stmt<'_>> {
        if self.lists.is_empty() {
            return None;
        }
        let (rows, lists): (Vec<&str>, Vec<&str>) = self
            .lists
            .iter()
            .map(|(row, list)| (row.as_str(), list.as_str()))
            .unzip();
        Some(
            Stmt::new(
                "UPDATE sessions s SET holds = string_to_array(x.holds, ',')
                   FROM unnest($1::text[], $2::text[]) AS x(row, holds)
                  WHERE s.ctid = x.row::tid",
            )
            .bind(rows, Type::TEXT_ARRAY)
            .bind(lists, Type::TEXT_ARRAY),
        )
    }
}

/// The `reservation.expired` event of a row `(number, group, session, expires_at, …)`.
pub fn expired_event(r: &tokio_postgres::Row) -> Option<Event> {
    let group = crate::domain::GroupName::from_stored(r.get(1)).ok()?;
    Some(lapsed_event(&group, r.get(0), r.get(2), r.get(3)))
}

/// The `reservation.expired` event of `session`'s reservation of `number`, which ended `at`.
fn lapsed_event(group: &crate::domain::GroupName, number: &str, session: &str, at: i64) -> Event {
    Event::new(
        EventKind::Expired,
        UnixMillis(at),
        group.clone(),
        AccessNumber::from_stored(number.to_owned()),
        crate::domain::SessionId::parse(session).ok(),
    )
}

pub async fn reserve_new_session(
    tx: &Transaction<'_>,
    now: i64,
    walks: &Walks,
    new: &NewSession,
    req: &ReserveRequest,
) -> Result<((Session, Reservation), Vec<Event>), ReserveError> {
    let session = sessions::create(tx, now, new).await?;
    let (reservation, events) = reserve(tx, now, walks, req).await?;
    Ok(((session, reservation), events))
}

/// The write of a batch's reservations, each number's row found by the address it was locked
/// at (a Tid Scan; `rows::all_written` guards it). A number taken over an expired
/// reservation no purge has recorded yet keeps that one as its last (late calls, failure
/// reasons; its expiry event came with the candidate, `claim::Found`); a renewal (the row's
/// reservation is live) keeps its wrong-code count. `lru_at` moves only in
/// least-recently-used groups (migration 7). `client` is who the reservation counts for,
/// decided by `rules::quota::owner` from the held row the batch read (migration 10).
static RESERVE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH u AS (UPDATE numbers n SET session = x.session, code = x.code, phone = x.phone,
                expires_at = x.expires, freed_at = x.free_from,
                lru_at = CASE WHEN x.lru THEN x.free_from ELSE n.lru_at END,
                wrong_codes = CASE WHEN n.expires_at > $8 THEN n.wrong_codes ELSE 0 END,
                last_session = CASE WHEN n.expires_at <= $8 THEN n.session ELSE n.last_session END,
                last_code = CASE WHEN n.expires_at <= $8 THEN n.code ELSE n.last_code END,
                last_phone = CASE WHEN n.expires_at <= $8 THEN n.phone ELSE n.last_phone END,
                last_end = CASE WHEN n.expires_at <= $8 THEN n.expires_at ELSE n.last_end END,
                last_reason = CASE WHEN n.expires_at <= $8 THEN 'expired' ELSE n.last_reason END,
                client = x.client
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[],
                           $6::int8[], $7::bool[], $10::text[])
                    AS x(at, session, code, phone, expires, free_from, lru, client)
              WHERE n.ctid = x.at::tid
          RETURNING 1)
         {}",
        super::rows::all_written(9)
    )
});

/// Request-access calls as a batch (`batch.rs`).
pub struct Reserving;

impl super::batch::Work for Reserving {
    type Req = ReserveRequest;
    type Ans = Answer;
    type Plan = Writes;

    /// Two round trips: `BEGIN` with the reads and the candidates, the writes with the
    /// `COMMIT` (`batch::Finish`); a random group's candidates add one.
    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[ReserveRequest],
    ) -> Result<(Vec<Answer>, Writes), StoreError> {
        reserve_many(client, db.frozen(), &db.walks, Vec::new(), reqs).await
    }

    async fn write(
        client: &deadpool_postgres::Client,
        _: &[Self::Req],
        writes: &Writes,
        finish: &mut super::batch::Finish,
    ) -> Result<Vec<Event>, StoreError> {
        finish.last(client, &writes.stmts()).await?;
        Ok(writes.events.clone())
    }

    fn after_commit<'a>(
        db: &'a super::Db,
        reqs: &'a [ReserveRequest],
        answers: &'a mut [Answer],
    ) -> impl std::future::Future<Output = ()> + Send + 'a {
        super::retry_after::recount(db, reqs.iter().zip(answers))
    }

    fn failed(err: StoreError) -> Answer {
        Err(err.into())
    }
}
