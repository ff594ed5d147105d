//! Reading and locking the rows a batch of request-access calls needs: the sessions, the
//! groups, the sessions' live reservations, and free candidate numbers. The rules that decide
//! among them live in `crate::rules`; this file only finds rows.
//!
//! Candidates are locked with `FOR UPDATE SKIP LOCKED`, so nodes claiming in one group at the
//! same time take different numbers instead of queueing: a number another transaction is
//! taking is, for this one, not free.

use hashbrown::HashMap;
use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use rand::Rng;
use rand::seq::SliceRandom;
use tokio_postgres::types::{ToSql, Type};

use super::pg_error;
use super::prepared::{Prepared as _, Stmt, send};
use crate::domain::{
    AccessCode, Allocation, BookingTimeout, NumberPolicy, PhoneNumber, UnixMillis,
};
use crate::rules::{self, Candidates, Pos};
use crate::store::StoreError;

/// The transaction's `now` in ms: when it began, by the database's clock (`$N` is a test's
/// frozen time, else NULL). Every statement of a transaction computes the same value, so the
/// reads of a batch can be sent together before the node knows it.
pub const NOW: &str =
    "coalesce($N::int8, (extract(epoch FROM transaction_timestamp()) * 1000)::int8)";

/// [`NOW`] with its frozen time as parameter `$n`, for statements that compute an expiry
/// or test liveness in SQL without the node reading the time first.
pub(super) fn now_param(n: usize) -> String {
    NOW.replace("$N", &format!("${n}"))
}

/// The transaction's `now` (see [`NOW`]).
pub async fn now<C: GenericClient>(tx: &C, frozen: Option<i64>) -> Result<i64, StoreError> {
    let rows = send(tx, &[now_stmt(frozen)]).await.map_err(pg_error)?;
    now_from(&rows[0])
}

/// The database's clock now (or a test's frozen time), which goes on during a transaction.
pub async fn clock<C: GenericClient>(tx: &C, frozen: Option<i64>) -> Result<i64, StoreError> {
    let sql = "SELECT coalesce($1::int8, (extract(epoch FROM clock_timestamp()) * 1000)::int8)";
    let rows = send(tx, &[Stmt::new(sql).bind(frozen, Type::INT8)])
        .await
        .map_err(pg_error)?;
    now_from(&rows[0])
}

/// The statement that reads the transaction's `now`, to send with others.
pub fn now_stmt(frozen: Option<i64>) -> Stmt<'static> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {}", now_param(1)));
    Stmt::new(SQL.as_str()).bind(frozen, Type::INT8)
}

pub fn now_from(rows: &[tokio_postgres::Row]) -> Result<i64, StoreError> {
    let row = rows
        .first()
        .ok_or_else(|| StoreError::corrupt("the transaction's now", "no row"))?;
    Ok(row.get(0))
}

/// "Lendable at `now`": not retiring, not quarantined, no live reservation (an expired one
/// is free) and past its cool-down (`freed_at`, see `rules::lifecycle::free_from`).
pub(super) const FREE: &str = "NOT retiring AND quarantined_at IS NULL AND freed_at <= $2
                    AND (session IS NULL OR expires_at <= $2)";

/// A group's settings as a reservation needs them.
pub struct GroupRow {
    pub allocation: Allocation,
    pub timeout: Option<BookingTimeout>,
    pub policy: NumberPolicy,
}

/// The policy columns of `groups`, in this order, for every query that reads a group.
pub const POLICY_COLUMNS: &str =
    "require_code, max_code_attempts, cool_down, late_match_grace, quarantine_after_stray_calls";

/// Reads the policy columns starting at `at`.
pub fn policy(r: &tokio_postgres::Row, at: usize) -> NumberPolicy {
    let n = |i: usize| u32::try_from(r.get::<_, i32>(at + i)).unwrap_or(0);
    NumberPolicy {
        require_code: r.get(at),
        max_code_attempts: n(1),
        cool_down: n(2),
        late_match_grace: n(3),
        quarantine_after_stray_calls: n(4),
    }
}

/// A live reservation of one of the batch's sessions.
pub struct HeldRow {
    pub number: String,
    /// Where its row is (`ctid`, locked: it stays there until this transaction writes it).
    pub at: String,
    pub session: String,
    pub group: String,
    pub booking: rules::Booking,
    /// The client it counts for (`numbers.client`; `None` when clients were not counted).
    pub client: Option<crate::store::ClientId>,
}

/// A live session of the batch, as [`sessions`] read it.
pub struct LockedSession {
    pub expires_at: i64,
    /// The row's address (`ctid` as text): the session is locked, so it stays put until the
    /// commit and the batch's write of its list of holds finds it by address.
    pub row: String,
    /// Its list of holds as stored (`sessions.holds`, migration 7: a superset).
    pub listed: Vec<String>,
}

/// The batch's live sessions and their live reservations ([`sessions_from`]).
pub struct Locked {
    pub sessions: HashMap<String, LockedSession>,
    pub held: Vec<HeldRow>,
}

/// Locks the batch's sessions, in the order of `ids` (sorted by the caller), before
/// [`reads`] runs: sent with it in one round trip, but a statement of its own, so that the
/// reads' snapshot is taken once every session is locked. When another node's batch held one
/// of them, the reads then see everything that batch committed: the number it gave the
/// session, not only its new list of holds. (In one statement, a lock waited for re-reads the
/// session's row but not the snapshot the statement looks the numbers up in, where the
/// other batch's number was still free: the session got a second number in the group.)
pub fn lock_sessions<'a>(ids: &'a [&'a str]) -> Stmt<'a> {
    Stmt::new(
        "SELECT s.id FROM unnest($1::text[]) AS q(id)
          CROSS JOIN LATERAL (SELECT id FROM sessions WHERE id = q.id FOR UPDATE) s",
    )
    .bind(ids, Type::TEXT_ARRAY)
}

/// Waits for, then holds until the transaction ends, a lock of each client the batch counts
/// (`clients` sorted by the caller, so batches sharing clients queue in one order; taken
/// before the sessions, and by nothing else, so no cycle of waits can form): the batch then
/// reads each client's holds ([`client_holds`]) knowing no other batch on any node adds to
/// them before it commits, and `[limits] reservations_per_client` holds across nodes.
/// (Different keys from the cursors' locks: a seed of 11, not 7.)
pub fn lock_clients<'a>(clients: &'a [&'a str]) -> Stmt<'a> {
    Stmt::new(
        "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || c, 11))
           FROM unnest($1::text[]) AS q(c)",
    )
    .bind(clients, Type::TEXT_ARRAY)
}

/// The live reservations each of `clients` holds, by [`NOW`]: rows `(client, session,
/// group, expires_at)` ([`client_holds_from`]). Sent after [`lock_clients`], so it reads what every
/// batch that held a client's lock before committed.
pub fn client_holds<'a>(frozen: Option<i64>, clients: &'a [&'a str]) -> Stmt<'a> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT client, session, group_name, expires_at FROM numbers
              WHERE client = ANY($2::text[]) AND session IS NOT NULL AND expires_at > {}",
            now_param(1)
        )
    });
    Stmt::new(SQL.as_str())
        .bind(frozen, Type::INT8)
        .bind(clients, Type::TEXT_ARRAY)
}

/// Each client's live holds, `(session, group)` → when it expires, from [`client_holds`]'s
/// rows (what its quota counts, `rules::quota`).
pub type ClientHolds = HashMap<String, HashMap<(String, String), UnixMillis>>;

pub fn client_holds_from(rows: &[tokio_postgres::Row]) -> ClientHolds {
    let mut holds = ClientHolds::new();
    for row in rows {
        holds
            .entry(row.get(0))
            .or_default()
            .insert((row.get(1), row.get(2)), UnixMillis(row.get(3)));
    }
    holds
}

/// The reads of a request-access batch that lock rows, in one statement: the batch's
/// sessions, each with the reservations it holds (a renewal rewrites them), then, in each
/// round-robin or least-recently-used group, as many free candidate numbers as the batch
/// can take there, locked ([`sessions_from`] and [`pools_from`] read its rows).
///
/// Sessions: locked in the order of `ids` (sorted by the caller, so two batches sharing
/// sessions queue instead of deadlocking), each looked up by key (`LATERAL`; `FOR UPDATE`
/// also keeps the planner from flattening it into a join); then the reservations they hold,
/// found by key from their lists of holds (`sessions.holds`, migration 7: a superset, each
/// checked against the number's row), all locked in number order, as a match batch and a
/// session's end lock numbers. Locked session by session, a renewal batch held one
/// session's number while it waited for another's, and a match batch holding that one and
/// waiting for the first deadlocked with it (an outside audit, once in eight runs of three
/// nodes; PostgreSQL's `deadlock_timeout`, 1 s, then a retry). "Live" is left out of the lookups: with
/// `id = ANY($1) AND expires_at > now`, the planner scanned every live session and compared
/// each one with the array (0.3–1.3 ms a batch at 1,000 sessions, against 0.13 ms by key). An
/// ended session not purged yet is locked too, and left out by the reader.
///
/// Candidates: one per asking pair (`asking`, a session and a group, distinct) whose session
/// is live and holds no live number in the group, the count `reserve_many` computes from the
/// same rows, so a batch never locks a free number it does not take and other nodes claiming
/// in a small pool are not refused for numbers nobody uses. The count reads the sessions as
/// this statement locked them (`s`, materialized): when the candidates had a statement of
/// their own, it looked every session and held number up a second time, two thirds of its
/// cost. `s` is read to its end by the first branch of the `UNION ALL` before the candidates
/// are locked, so the lock order stays sessions → their numbers → candidates. A random
/// group's candidates are found later ([`random`]); this statement gives only its cursor row.
///
/// Round-robin: the cursor (read, not locked: see `reserve::Writes::stmts` for how it moves
/// without a hot row), the first free numbers from it, and, only for the shortfall, the first
/// ones from the start (the wrap); the cursor is an index condition on `(group_name,
/// position)`, so the walk starts at it instead of scanning up to it (306 ms to 0.3 ms with
/// the cursor half-way through a million numbers). Least recently used: by
/// `(lru_at, position)`, the copy of `freed_at` that only such groups keep up to date.
///
/// A round-robin walk starts from the stored cursor, or from where this node's own walk
/// stands when the stored cursor is one this node read or wrote itself (`hints`, from
/// `walks::Walks::hints`): nobody else has moved the walk since, though this node's last
/// batches may not have been able to store theirs.
pub fn reads<'a>(
    frozen: Option<i64>,
    ids: &'a [&'a str],
    asking: (Vec<&'a str>, Vec<&'a str>),
    hints: Hints,
) -> Stmt<'a> {
    Stmt::new(READS.as_str())
        .bind(ids, Type::TEXT_ARRAY)
        .bind(frozen, Type::INT8)
        .bind(asking.0, Type::TEXT_ARRAY)
        .bind(asking.1, Type::TEXT_ARRAY)
        .bind(hints.groups, Type::TEXT_ARRAY)
        .bind(hints.seen, Type::INT8_ARRAY)
        .bind(hints.own, Type::INT8_ARRAY)
}

/// A node's round-robin walks as [`reads`] takes them: row i says that in group
/// `groups[i]`, a stored cursor of `seen[i]` stands for this node's own walk, which stands
/// at `own[i]`.
#[derive(Debug, Default)]
pub struct Hints {
    pub groups: Vec<String>,
    pub seen: Vec<i64>,
    pub own: Vec<i64>,
}

/// The text of [`reads`], built once. Columns 0–9 and 19 are a session's row (NULL on a
/// candidate's; 19 the client its reservation counts for), 10–17 a group's candidate or, with
/// a NULL number, its cursor alone (where the walk starts); 18 the cursor as stored
/// (`walks.rs`).
static READS: LazyLock<String> = LazyLock::new(|| {
    let now = now_param(2);
    // Inside each candidate's subquery the only columns of these names are the number's.
    let free = FREE.replace("$2", "t.now");
    format!(
        "WITH l AS MATERIALIZED (
           SELECT s.id, s.expires_at, s.ctid::text AS row, s.holds
             FROM unnest($1::text[]) AS q(id)
            CROSS JOIN LATERAL (SELECT ctid, id, expires_at, holds FROM sessions
                                 WHERE id = q.id FOR UPDATE) s),
         h AS MATERIALIZED (
           SELECT number, group_name, code, phone, expires_at, ctid::text AS at, session, client
             FROM numbers
            WHERE number = ANY(ARRAY(SELECT unnest(holds) FROM l))
              AND session = ANY(ARRAY(SELECT id FROM l))
            ORDER BY number FOR UPDATE),
         s AS MATERIALIZED (
           SELECT l.id, l.expires_at, l.row, l.holds, h.number, h.group_name, h.code, h.phone,
                  h.expires_at AS held_until, h.at, h.client
             FROM l LEFT JOIN h ON h.session = l.id AND h.number = ANY(l.holds)),
         t AS (SELECT {now} AS now),
         w AS (SELECT g.name, coalesce(h.own, g.cursor) AS cursor, g.allocation, x.wanted,
                      g.cursor AS stored
                 FROM (SELECT a.group_name, count(*) AS wanted
                         FROM unnest($3::text[], $4::text[]) AS a(id, group_name), t
                        WHERE EXISTS (SELECT 1 FROM s WHERE s.id = a.id AND s.expires_at > t.now)
                          AND NOT EXISTS (SELECT 1 FROM s
                                           WHERE s.id = a.id AND s.group_name = a.group_name
                                             AND s.held_until > t.now)
                        GROUP BY a.group_name) x
                 JOIN groups g ON g.name = x.group_name
                 LEFT JOIN LATERAL (SELECT h.own
                                      FROM unnest($5::text[], $6::int8[], $7::int8[])
                                           AS h(name, seen, own)
                                     WHERE h.name = g.name AND h.seen = g.cursor
                                     LIMIT 1) h ON true),
         a AS (SELECT w.name AS grp, c.* FROM w, t CROSS JOIN LATERAL (
                 SELECT c.number, c.position, c.freed_at, c.session, c.expires_at, c.ctid
                   FROM numbers c
                  WHERE w.allocation = 'round-robin' AND c.group_name = w.name AND {free}
                    AND c.position >= w.cursor
                  ORDER BY c.position LIMIT w.wanted FOR UPDATE OF c SKIP LOCKED) c),
         b AS (SELECT w.name AS grp, c.* FROM w, t CROSS JOIN LATERAL (
                 SELECT c.number, c.position, c.freed_at, c.session, c.expires_at, c.ctid
                   FROM numbers c
                  WHERE w.allocation = 'round-robin' AND c.group_name = w.name AND {free}
                    AND c.position < w.cursor
                  ORDER BY c.position
                  LIMIT greatest(0, w.wanted - (SELECT count(*) FROM a WHERE a.grp = w.name))
                  FOR UPDATE OF c SKIP LOCKED) c),
         c AS (SELECT w.name AS grp, c.* FROM w, t CROSS JOIN LATERAL (
                 SELECT c.number, c.position, c.freed_at, c.session, c.expires_at, c.ctid
                   FROM numbers c
                  WHERE w.allocation = 'least-recently-used' AND c.group_name = w.name AND {free}
                  ORDER BY c.lru_at, c.position LIMIT w.wanted FOR UPDATE OF c SKIP LOCKED) c)
         SELECT s.id, s.expires_at, s.row, s.holds, s.number, s.group_name, s.code, s.phone,
                s.held_until, s.at, NULL::text, NULL::int8, NULL::text, NULL::int8, NULL::int8,
                NULL::text, NULL::int8, NULL::text, NULL::int8, s.client
           FROM s
         UNION ALL
         SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                w.name, w.cursor, x.number, x.position, x.freed_at, x.session, x.expires_at,
                x.ctid::text, w.stored, NULL::text
           FROM w LEFT JOIN (SELECT * FROM a UNION ALL SELECT * FROM b UNION ALL SELECT * FROM c) x
             ON x.grp = w.name"
    )
});

/// The live sessions [`reads`] locked, and their live reservations.
pub fn sessions_from(rows: &[tokio_postgres::Row], now: i64) -> Locked {
    let mut locked = Locked {
        sessions: HashMap::new(),
        held: Vec::new(),
    };
    for r in rows {
        let Some(id) = r.get::<_, Option<String>>(0) else {
            continue; // a candidate's row
        };
        let expires_at: i64 = r.get(1);
        if expires_at <= now {
            continue;
        }
        if !locked.sessions.contains_key(&id) {
            let session = LockedSession {
                expires_at,
                row: r.get(2),
                listed: r.get(3),
            };
            locked.sessions.insert(id.clone(), session);
        }
        let Some(held_until) = r.get::<_, Option<i64>>(8).filter(|at| *at > now) else {
            continue;
        };
        let code: Option<String> = r.get(6);
        let phone: Option<String> = r.get(7);
        locked.held.push(HeldRow {
            number: r.get(4),
            at: r.get(9),
            session: id,
            group: r.get(5),
            client: r.get::<_, Option<&str>>(19).map(Into::into),
            booking: rules::Booking {
                code: code.map(AccessCode::from_stored),
                phone: phone.map(PhoneNumber::from_stored),
                expires_at: crate::domain::UnixMillis(held_until),
            },
        });
    }
    locked
}

/// The groups' settings ([`groups_from`]).
pub fn groups<'a>(names: &'a [&'a str]) -> Stmt<'a> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT name, allocation, booking_timeout, {POLICY_COLUMNS} FROM groups WHERE name = ANY($1)"
        )
    });
    Stmt::new(SQL.as_str()).bind(names, Type::TEXT_ARRAY)
}

pub fn groups_from(rows: &[tokio_postgres::Row]) -> Result<HashMap<String, GroupRow>, StoreError> {
    rows.iter()
        .map(|r| {
            let allocation: &str = r.get(1);
            let timeout: Option<i32> = r.get(2);
            let row = GroupRow {
                allocation: allocation
                    .parse()
                    .map_err(|e| StoreError::corrupt("groups.allocation", e))?,
                // A stored value out of 5..=1800 counts as the default, as in the engine.
                timeout: timeout.map(|t| BookingTimeout::from_secs_lenient(i64::from(t))),
                policy: policy(r, 3),
            };
            Ok((r.get(0), row))
        })
        .collect()
}

/// Free numbers of a group, locked, enough for `wanted` picks by the group's strategy, with
/// the round-robin cursor when that is the strategy.
pub struct Pool {
    pub candidates: Candidates,
    pub numbers: HashMap<Pos, Found>,
    pub cursor: Pos,
    /// The cursor as stored when the batch read it (`cursor` may be this node's own walk);
    /// 0 where the group does not walk.
    pub stored: i64,
}

impl Pool {
    /// Leaves out the candidates `gone` says.
    pub fn forget(&mut self, gone: impl Fn(&Found) -> bool) {
        let gone: Vec<Pos> = self
            .numbers
            .iter()
            .filter(|(_, found)| gone(found))
            .map(|(pos, _)| *pos)
            .collect();
        for pos in gone {
            self.numbers.remove(&pos);
            self.candidates.remove(pos);
        }
    }

    /// No candidate (none was wanted in the group, or none was free).
    pub fn empty() -> Self {
        Self {
            candidates: Candidates::new(Vec::new()),
            numbers: HashMap::new(),
            cursor: 0,
            stored: 0,
        }
    }
}

/// A candidate number as locked, with the reservation it still carries when that one has
/// expired and no purge has released it yet (session, when it expired): the batch that
/// takes the number records that one as its last and reports its expiry, from this row
/// rather than a second read of it.
pub struct Found {
    pub number: String,
    /// Where its row is (`ctid`, locked: it stays there until this transaction writes it).
    pub at: String,
    pub lapsed: Option<(String, i64)>,
}

/// A locked candidate row: number, position, `freed_at`, where the row is, and the
/// reservation it lapsed from.
type Locked5 = (String, i64, i64, String, Option<(String, i64)>);

/// Reads the lapsed reservation at columns `at` (session) and `at + 1` (its expiry).
fn lapsed(r: &tokio_postgres::Row, at: usize) -> Option<(String, i64)> {
    Some((
        r.get::<_, Option<String>>(at)?,
        r.get::<_, Option<i64>>(at + 1)?,
    ))
}

/// Each group's pool as [`reads`] locked it, by group name (a group absent: no candidate
/// was wanted there).
pub fn pools_from(rows: &[tokio_postgres::Row]) -> Result<HashMap<String, Pool>, StoreError> {
    let mut found: HashMap<String, ((i64, i64), Vec<Locked5>)> = HashMap::new();
    for r in rows {
        let Some(group) = r.get::<_, Option<String>>(10) else {
            continue; // a session's row
        };
        let entry = found
            .entry(group)
            .or_insert_with(|| ((r.get(11), r.get(18)), Vec::new()));
        if let (Some(number), Some(at)) = (
            r.get::<_, Option<String>>(12),
            r.get::<_, Option<String>>(17),
        ) {
            entry
                .1
                .push((number, r.get(13), r.get(14), at, lapsed(r, 15)));
        }
    }
    found
        .into_iter()
        .map(|(group, ((cursor, stored), rows))| {
            let cursor = Pos::try_from(cursor.max(0)).unwrap_or(Pos::MAX);
            let pool = Pool {
                stored,
                ..pool(rows, cursor)?
            };
            Ok((group, pool))
        })
        .collect()
}

/// A random group's candidates ([`random_sample`]), `wanted` of them.
pub async fn random<C: GenericClient>(
    tx: &C,
    now: i64,
    group: &str,
    wanted: usize,
) -> Result<Pool, StoreError> {
    pool(random_sample(tx, now, group, wanted).await?, 0)
}

fn pool(rows: impl IntoIterator<Item = Locked5>, cursor: Pos) -> Result<Pool, StoreError> {
    let mut items = Vec::new();
    let mut numbers = HashMap::new();
    for (number, position, freed_at, at, lapsed) in rows {
        let pos =
            Pos::try_from(position).map_err(|e| StoreError::corrupt("numbers.position", e))?;
        let found = Found { number, at, lapsed };
        if numbers.insert(pos, found).is_none() {
            items.push((pos, freed_at));
        }
    }
    Ok(Pool {
        candidates: Candidates::new(items),
        numbers,
        cursor,
        stored: 0,
    })
}

type Row3 = (String, i64, i64);

/// A uniform random choice of `wanted` free numbers of the group, locked. It looks at random
/// positions first (one index probe each, whatever the pool size), without locking, and
/// shuffles the free numbers found; when those are too few (a nearly full pool) it reads every
/// free number instead. Either way every free number is equally likely to come first, so the
/// first `wanted` that can still be locked are a uniform choice (`rules::FreeNumbers::nth`).
/// Only those are locked: a batch never holds more free numbers than it takes, so other nodes
/// claiming in the same small pool are not refused for numbers nobody uses.
async fn random_sample<C: GenericClient>(
    tx: &C,
    now: i64,
    group: &str,
    wanted: usize,
) -> Result<Vec<Locked5>, StoreError> {
    let max: Option<i64> = tx
        .query_one_prepared(
            "SELECT max(position) FROM numbers WHERE group_name = $1",
            &[(&group, Type::TEXT)],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let Some(max) = max else {
        return Ok(Vec::new());
    };
    let probes = (wanted * 4 + 32).min(usize::try_from(max + 1).unwrap_or(usize::MAX));
    let positions: Vec<i64> = {
        let mut rng = rand::rng();
        (0..probes).map(|_| rng.random_range(0..=max)).collect()
    };
    let sql = format!(
        "SELECT number, position, freed_at FROM numbers WHERE group_name = $1 AND {FREE}
         AND position = ANY($3)"
    );
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&group, Type::TEXT),
        (&now, Type::INT8),
        (&positions, Type::INT8_ARRAY),
    ];
    let found = tx.query_prepared(&sql, &params).await.map_err(pg_error)?;
    let mut locked = lock_some(tx, now, shuffled(rows3(&found)), wanted).await?;
    if locked.len() < wanted {
        let sql = format!(
            "SELECT number, position, freed_at FROM numbers WHERE group_name = $1 AND {FREE}"
        );
        let every = tx
            .query_prepared(&sql, &[(&group, Type::TEXT), (&now, Type::INT8)])
            .await
            .map_err(pg_error)?;
        let rest = rows3(&every)
            .into_iter()
            .filter(|(n, _, _)| !locked.iter().any(|(m, ..)| m == n))
            .collect();
        let more = lock_some(tx, now, shuffled(rest), wanted - locked.len()).await?;
        locked.extend(more);
    }
    Ok(locked)
}

fn rows3(rows: &[tokio_postgres::Row]) -> Vec<Row3> {
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn shuffled(mut rows: Vec<Row3>) -> Vec<Row3> {
    rows.shuffle(&mut rand::rng());
    rows
}

/// Locks the first `wanted` of `rows`, in their order, that are still free and not locked by
/// another transaction (a row taken meanwhile is skipped, the next one tried), with the
/// reservation each lapsed from as locked.
async fn lock_some<C: GenericClient>(
    tx: &C,
    now: i64,
    rows: Vec<Row3>,
    wanted: usize,
) -> Result<Vec<Locked5>, StoreError> {
    let sql = format!(
        "SELECT number, session, expires_at, ctid::text FROM numbers
          WHERE number = ANY($1) AND {FREE} FOR UPDATE SKIP LOCKED"
    );
    let mut locked = Vec::with_capacity(wanted);
    let mut rest = rows.as_slice();
    while locked.len() < wanted && !rest.is_empty() {
        let (chunk, after) = rest.split_at((wanted - locked.len()).min(rest.len()));
        rest = after;
        let numbers: Vec<&str> = chunk.iter().map(|(n, _, _)| n.as_str()).collect();
        let got = tx
            .query_prepared(&sql, &[(&numbers, Type::TEXT_ARRAY), (&now, Type::INT8)])
            .await
            .map_err(pg_error)?;
        let mut got: HashMap<String, (String, Option<(String, i64)>)> = got
            .iter()
            .map(|r| (r.get(0), (r.get(3), lapsed(r, 1))))
            .collect();
        // Keep the shuffled order: the rules pick by index among these.
        locked.extend(chunk.iter().filter_map(|(n, position, freed_at)| {
            let (at, lapsed) = got.remove(n)?;
            Some((n.clone(), *position, *freed_at, at, lapsed))
        }));
    }
    Ok(locked)
}

/// When each number of a group that is not lendable now (reserved or cooling) becomes
/// lendable (Retry-After on an empty pool). A retiring number never becomes lendable, so it
/// does not count, as in the embedded engine.
pub async fn lendable_at<C: GenericClient>(
    tx: &C,
    now: i64,
    group: &str,
) -> Result<HashMap<String, i64>, StoreError> {
    let rows = tx
        .query_prepared(
            "SELECT number, freed_at FROM numbers
             WHERE group_name = $1 AND quarantined_at IS NULL AND freed_at > $2
               AND NOT retiring",
            &[(&group, Type::TEXT), (&now, Type::INT8)],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Numbers in service and free ones, at `now`, before this batch's changes.
pub async fn counts<C: GenericClient>(
    tx: &C,
    now: i64,
    group: &str,
) -> Result<(u64, u64), StoreError> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE NOT retiring), count(*) FILTER (WHERE {FREE})
         FROM numbers WHERE group_name = $1"
    );
    let row = tx
        .query_one_prepared(&sql, &[(&group, Type::TEXT), (&now, Type::INT8)])
        .await
        .map_err(pg_error)?;
    let (size, free): (i64, i64) = (row.get(0), row.get(1));
    Ok((size.max(0) as u64, free.max(0) as u64))
}
