//! The purge on a file at the current schema: expired holds (found by a scan since migration
//! 6, more than one batch of them), sessions, data (after its read grace) and idempotency keys
//! go; live rows stay, and so does a retiring number that is still held.

use rusqlite::Connection;

use super::apply::{GONE, purge};
use super::migrate;
use crate::domain::UnixMillis;

const NOW: i64 = 1_000_000;

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn purge_deletes_expired_rows_in_batches_and_keeps_live_ones() {
    let mut conn = Connection::open_in_memory().expect("connection");
    migrate(&mut conn).expect("migrates");
    let (old, live) = (NOW - 1, NOW + 1);
    conn.execute_batch(&format!(
        "INSERT INTO numbers (number, group_name, position, retiring)
              VALUES ('r-gone', 'G', 0, 1), ('r-held', 'G', 1, 1), ('kept', 'G', 2, 0);
         WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 2500)
         INSERT INTO reservations (number, session, expires_at)
              SELECT 'n' || n, 's', {old} FROM i;
         INSERT INTO reservations (number, session, expires_at)
              VALUES ('r-gone', 's', {old}), ('r-held', 's', {live}), ('kept', 's', {live});
         INSERT INTO sessions (id, service, data_id, expires_at)
              VALUES ('old', 'c', 'd', {old}), ('live', 'c', 'd', {live});
         INSERT INTO data (id, fields, expires_at)
              VALUES ('old', '[]', {old} - 60000), ('recent', '[]', {old}), ('live', '[]', {live});
         INSERT INTO idempotency (client, key, status, body, expires_at)
              VALUES ('c', 'old', 200, '[]', {old}), ('c', 'live', 200, '[]', {live});"
    ))
    .expect("rows");

    let deleted = purge(&conn, UnixMillis(NOW)).expect("purge");

    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM reservations WHERE expires_at <= 1000000"
        ),
        0
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM reservations"), 2);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM sessions WHERE id = 'live'"),
        1
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM sessions"), 1);
    // Data stays a minute after its expiry (a match reads it after its commit).
    assert_eq!(count(&conn, "SELECT count(*) FROM data"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM idempotency"), 1);
    let numbers: String = conn
        .query_row(
            "SELECT group_concat(number, ',') FROM (SELECT number FROM numbers ORDER BY number)",
            [],
            |r| r.get(0),
        )
        .expect("numbers");
    assert_eq!(
        numbers, "kept,r-held",
        "a retiring number goes once not held"
    );
    // 2,500 + 1 holds, a session, a data entry, a key, a retired number.
    assert_eq!(deleted, 2501 + 4);
}

/// The purge runs every 5 s while a live stream listens: finding the retiring numbers that
/// left by a scan of every number took 47 ms on a million, with every call's commit waiting.
#[test]
fn retiring_numbers_are_found_without_a_scan_of_every_number() {
    let mut conn = Connection::open_in_memory().expect("connection");
    migrate(&mut conn).expect("migrates");
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {GONE}"))
        .expect("plan")
        .query_map([], |r| r.get::<_, String>(3))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    // "SCAN numbers USING COVERING INDEX numbers_retiring": the partial index alone.
    assert!(
        plan.iter()
            .any(|step| step.starts_with("SCAN numbers") && step.contains("numbers_retiring")),
        "{plan:?}"
    );
}
