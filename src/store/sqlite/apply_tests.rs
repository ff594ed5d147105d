//! One commit of several batches applies their changes in journal order: a number added and
//! then reserved, removed or moved within the same commit ends as the last change says.

use rusqlite::Connection;

use super::apply::commit;
use super::migrate;
use super::statements::Statements;
use crate::domain::{AccessNumber, GroupName, SessionId, UnixMillis};
use crate::store::local::journal::Change;

fn number(s: &str) -> AccessNumber {
    AccessNumber::parse(s).expect("number")
}

fn added(group: &str, n: &str, position: u32, retiring: bool) -> Change {
    Change::Number {
        group: GroupName::parse(group).expect("group"),
        number: number(n),
        position,
        retiring,
    }
}

fn rows(conn: &Connection) -> Vec<(String, String, u32, bool)> {
    conn.prepare("SELECT number, group_name, position, retiring FROM numbers ORDER BY number")
        .expect("select")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn runs_of_numbers_are_written_in_order_with_the_changes_between_them() {
    let mut conn = Connection::open_in_memory().expect("connection");
    migrate(&mut conn).expect("migrates");
    let many: Vec<Change> = (0..1_000)
        .map(|i| added("A", &format!("{}", 5_550_000_000u64 + i), i as u32, false))
        .collect();
    let mut first = many;
    first.push(added("A", "5551000001", 1_000, false));
    // Listed twice: the last change wins.
    first.push(added("A", "5551000001", 1_001, true));
    // A reservation of a number added in the same commit needs the number's row first.
    first.push(Change::Reserved {
        number: number("5550000007"),
        session: SessionId::parse("s-1").expect("session"),
        code: None,
        phone: None,
        expires_at: UnixMillis(5_000),
        wrong_codes: 0,
        client: None,
    });
    first.push(added("A", "5559999999", 1_002, false));
    // Removed, then added to another group: the second run comes after the delete; a
    // number added and removed in one commit is gone.
    let second = vec![
        Change::NumberDeleted(number("5559999999")),
        Change::NumberDeleted(number("5550000003")),
        added("B", "5550000003", 0, false),
    ];
    let mut st = Statements::new(&conn);
    commit(&mut st, &[(1, first), (2, second)]).expect("commit");
    drop(st);

    let rows = rows(&conn);
    assert_eq!(rows.len(), 1_001);
    assert!(rows.contains(&("5551000001".into(), "A".into(), 1_001, true)));
    assert!(rows.contains(&("5550000003".into(), "B".into(), 0, false)));
    assert!(rows.contains(&("5550000999".into(), "A".into(), 999, false)));
    let held: String = conn
        .query_row(
            "SELECT session FROM reservations WHERE number = '5550000007'",
            [],
            |r| r.get(0),
        )
        .expect("the reservation");
    assert_eq!(held, "s-1");
}
