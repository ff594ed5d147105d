//! What PostgreSQL shows of the groups: every group's settings and counts by state, a
//! group's page of numbers, and the admin search of live reservations. Reads only; the
//! changes are `admin.rs`'s.

use deadpool_postgres::Transaction;

use super::admin::{LIVE, corrupt};
use super::claim::{POLICY_COLUMNS, policy};
use super::pg_error;
use super::sessions::left;
use crate::domain::{AccessNumber, Allocation, GroupName, SessionId, UnixMillis};
use crate::rules;
use crate::store::{
    GroupDetail, GroupStats, NumberState, NumberView, NumbersFilter, ReservationFilter,
    ReservationView, StateKind, StoreError,
};

/// Every group (or the one `name`d) with its settings and, when `counted`, its counts by
/// state (else all 0, and no number is read: a group's page counts in its own statement).
pub(super) async fn stats(
    tx: &Transaction<'_>,
    now: i64,
    name: Option<&str>,
    counted: bool,
) -> Result<Vec<GroupStats>, StoreError> {
    let sql = format!(
        "SELECT g.name, g.allocation, g.booking_timeout,
                count(n.number) FILTER (WHERE NOT n.retiring),
                count(n.number) FILTER (WHERE NOT n.retiring AND {live}),
                count(n.number) FILTER (WHERE n.retiring AND {live}),
                count(n.number) FILTER (WHERE NOT n.retiring AND n.quarantined_at IS NOT NULL),
                count(n.number) FILTER (WHERE NOT n.retiring AND n.quarantined_at IS NULL
                                          AND NOT {live} AND n.freed_at > $2),
                g.{policy}
         FROM groups g LEFT JOIN numbers n ON $3 AND n.group_name = g.name
         WHERE $1::text IS NULL OR g.name = $1
         GROUP BY g.name ORDER BY g.name COLLATE \"C\"",
        live = "(n.session IS NOT NULL AND n.expires_at > $2)",
        policy = POLICY_COLUMNS.replace(", ", ", g."),
    );
    let rows = tx
        .query(&sql, &[&name, &now, &counted])
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|r| {
            let (size, reserved, retiring): (i64, i64, i64) = (r.get(3), r.get(4), r.get(5));
            let (quarantined, cooling): (i64, i64) = (r.get(6), r.get(7));
            let allocation: String = r.get(1);
            let timeout: Option<i32> = r.get(2);
            Ok(GroupStats {
                name: GroupName::from_stored(r.get(0)).map_err(corrupt("groups.name"))?,
                allocation: allocation
                    .parse::<Allocation>()
                    .map_err(corrupt("groups.allocation"))?,
                booking_timeout: timeout.map(|t| t as u32),
                size: size as u64,
                free: (size - reserved - quarantined - cooling).max(0) as u64,
                reserved: reserved as u64,
                cooling: cooling as u64,
                quarantined: quarantined as u64,
                retiring: retiring as u64,
                policy: policy(r, 8),
            })
        })
        .collect()
}

pub async fn groups(tx: &Transaction<'_>, now: i64) -> Result<Vec<GroupStats>, StoreError> {
    stats(tx, now, None, true).await
}

/// A number's state as the admin page names it (`StateKind::name`; NULL: a retiring
/// number no reservation holds, gone from the group). `$2` is now.
const STATE: &str = "CASE WHEN session IS NOT NULL AND expires_at > $2
                          THEN CASE WHEN retiring THEN 'retiring' ELSE 'reserved' END
                        WHEN retiring THEN NULL
                        WHEN quarantined_at IS NOT NULL THEN 'quarantined'
                        WHEN freed_at > $2 THEN 'cooling'
                        ELSE 'free' END";

/// A group's page in one statement, so one snapshot: its counts by state, how many numbers
/// pass the filter (`$3` state, `$4` digits), and the first `$5` of those in the group's
/// order after the first `$6`. The counts are the list's picture (from two statements they disagreed in a tenth
/// of the answers under traffic); only the listed rows leave PostgreSQL (a million-number
/// group's whole list took 1.5 s a page).
fn page_sql() -> String {
    format!(
        "WITH v AS NOT MATERIALIZED (
             SELECT number, position, session, expires_at, freed_at, strays, state,
                    state IS NOT NULL AND ($3::text IS NULL OR state = $3)
                        AND ($4::text IS NULL OR strpos(number, $4) > 0) AS shown
               FROM (SELECT *, {STATE} AS state FROM numbers WHERE group_name = $1) n),
         counts AS (
             SELECT count(*) FILTER (WHERE state = 'free') AS free,
                    count(*) FILTER (WHERE state = 'reserved') AS reserved,
                    count(*) FILTER (WHERE state = 'cooling') AS cooling,
                    count(*) FILTER (WHERE state = 'quarantined') AS quarantined,
                    count(*) FILTER (WHERE state = 'retiring') AS retiring,
                    count(*) FILTER (WHERE shown) AS listed
               FROM v)
         SELECT counts.*, l.number, l.state, l.session, l.expires_at, l.freed_at, l.strays
           FROM counts LEFT JOIN LATERAL
                (SELECT * FROM v WHERE shown ORDER BY position LIMIT $5 OFFSET $6) l ON true"
    )
}

pub async fn group(
    tx: &Transaction<'_>,
    now: i64,
    name: &GroupName,
    filter: &NumbersFilter,
) -> Result<Option<GroupDetail>, StoreError> {
    let Some(mut stats) = stats(tx, now, Some(name.as_str()), false).await?.pop() else {
        return Ok(None);
    };
    let state = filter.state.map(StateKind::name);
    let limit = filter.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            &page_sql(),
            &[
                &name.as_str(),
                &now,
                &state,
                &filter.digits,
                &limit,
                &offset,
            ],
        )
        .await
        .map_err(pg_error)?;
    let count = |i: usize| rows.first().map_or(0, |r| r.get::<_, i64>(i) as u64);
    stats.free = count(0);
    stats.reserved = count(1);
    stats.cooling = count(2);
    stats.quarantined = count(3);
    stats.retiring = count(4);
    stats.size = stats.free + stats.reserved + stats.cooling + stats.quarantined;
    let listed = count(5);
    let mut numbers = Vec::with_capacity(rows.len());
    // Without a listed number the one row carries the counts and NULLs.
    for r in rows
        .iter()
        .filter(|r| r.get::<_, Option<&str>>(6).is_some())
    {
        numbers.push(number_view(r, now)?);
    }
    Ok(Some(GroupDetail {
        stats,
        listed,
        numbers,
    }))
}

/// One listed row of the page statement (columns from 6: number, state, session,
/// expires_at, freed_at, strays).
fn number_view(r: &tokio_postgres::Row, now: i64) -> Result<NumberView, StoreError> {
    let state: &str = r.get(7);
    let kind = StateKind::from_name(state)
        .ok_or_else(|| StoreError::corrupt("numbers state", format!("{state:?} is not a state")))?;
    let held = || -> Result<(SessionId, u64), StoreError> {
        let session = SessionId::parse(r.get(8)).map_err(corrupt("numbers.session"))?;
        Ok((session, left(r.get(9), now).as_secs()))
    };
    let state = match kind {
        StateKind::Free => NumberState::Free,
        StateKind::Quarantined => NumberState::Quarantined,
        StateKind::Cooling => {
            let ms = u64::try_from(r.get::<_, i64>(10) - now).unwrap_or(0);
            NumberState::Cooling {
                seconds_left: ms.div_ceil(1000),
            }
        }
        StateKind::Reserved => {
            let (session, expires_in) = held()?;
            NumberState::Reserved {
                session,
                expires_in,
            }
        }
        StateKind::Retiring => {
            let (session, expires_in) = held()?;
            NumberState::Retiring {
                session,
                expires_in,
            }
        }
    };
    let strays: Vec<UnixMillis> = r
        .get::<_, Option<Vec<i64>>>(11)
        .unwrap_or_default()
        .into_iter()
        .map(UnixMillis)
        .collect();
    Ok(NumberView {
        number: AccessNumber::parse(r.get(6)).map_err(corrupt("numbers.number"))?,
        state,
        stray_calls: rules::lifecycle::recent_strays(&strays, UnixMillis(now)),
    })
}

pub async fn find_reservations(
    tx: &Transaction<'_>,
    now: i64,
    f: &ReservationFilter,
) -> Result<Vec<ReservationView>, StoreError> {
    // The phone is compared here, not in SQL, by `PhoneNumber::same_digits` (a `+` or not, same
    // digits), so the search's rule is written once for every backend. Names are ordered by
    // their bytes (`COLLATE "C"`), as the embedded stores order them, whatever the database's
    // collation. SQL narrows to
    // reservations that carry a phone; an admin search is rare enough for those to be read.
    let sql = format!(
        "SELECT number, group_name, session, phone, code IS NOT NULL, expires_at FROM numbers
         WHERE {LIVE} AND ($1::text IS NULL OR number = $1) AND ($3::text IS NULL OR session = $3)
           AND (NOT $4 OR phone IS NOT NULL)
         ORDER BY group_name COLLATE \"C\", position"
    );
    let (number, session, by_phone) = (
        f.number.as_ref().map(|n| n.as_str()),
        f.session.as_ref().map(|s| s.as_str()),
        f.phone.is_some(),
    );
    let rows = tx
        .query(&sql, &[&number, &now, &session, &by_phone])
        .await
        .map_err(pg_error)?;
    let views = rows.iter().map(|r| {
        let phone: Option<String> = r.get(3);
        Ok(ReservationView {
            number: AccessNumber::parse(r.get(0)).map_err(corrupt("numbers.number"))?,
            group: GroupName::from_stored(r.get(1)).map_err(corrupt("numbers.group_name"))?,
            session: SessionId::parse(r.get(2)).map_err(corrupt("numbers.session"))?,
            phone: phone.map(crate::domain::PhoneNumber::from_stored),
            has_code: r.get(4),
            expires_in: left(r.get(5), now).as_secs(),
        })
    });
    let mut found = Vec::new();
    for view in views {
        let view: ReservationView = view?;
        let wanted = f.phone.as_ref().is_none_or(|want| {
            view.phone
                .as_ref()
                .is_some_and(|held| held.same_digits(want))
        });
        if wanted {
            found.push(view);
            if f.limit.is_some_and(|l| found.len() >= l) {
                break;
            }
        }
    }
    Ok(found)
}
