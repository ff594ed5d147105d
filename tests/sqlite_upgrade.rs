//! A SQLite file that a node of the previous release left at schema 5 (`reservations` a
//! rowid table with `reservations_by_expiry`) keeps its state when this release migrates it
//! to 6 (`reservations` rebuilt as a `WITHOUT ROWID` table): the live reservation is still
//! held (listed with its session and code, not handed to another session, matched with its
//! code), the number resting after its cool-down still rests, and round-robin goes on from
//! the stored cursor. Fails if the migration drops the rows it copies.

mod support;

use std::sync::Arc;
use std::time::Duration;

use access_broker::clock::{Clock, ManualClock};
use access_broker::domain::{AccessCode, Allocation, SessionId};
use access_broker::store::{self, MatchRequest, ReservationFilter, StoreUrl};
use support::{group, new_session, node, options, reserve_request};

/// The migrations a node of the previous release had applied.
const SCHEMA_5: [&str; 5] = [
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_number_lifecycle.sql"),
    include_str!("../migrations/sqlite/0003_events_outbox.sql"),
    include_str!("../migrations/sqlite/0004_data_on_disk.sql"),
    include_str!("../migrations/sqlite/0005_expiry_indexes.sql"),
];

#[tokio::test]
async fn reservations_survive_migration_6() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.db");
    let clock = Arc::new(ManualClock::starting_now());
    let far = clock.now().0 + 600_000;
    let spec = group("DNIS", 4, Allocation::RoundRobin);
    let n: Vec<String> = spec.numbers.iter().map(|n| n.as_str().to_owned()).collect();
    let held = SessionId::generate(&node());
    {
        let db = rusqlite::Connection::open(&path).expect("file");
        for sql in SCHEMA_5 {
            db.execute_batch(sql).expect("schema 5");
        }
        db.execute_batch(&format!(
            "PRAGMA user_version = 5;
             INSERT INTO groups (name, allocation, cursor) VALUES ('DNIS', 'round-robin', 1);
             INSERT INTO numbers (number, group_name, position) VALUES
                 ('{0}', 'DNIS', 0), ('{1}', 'DNIS', 1), ('{2}', 'DNIS', 2), ('{3}', 'DNIS', 3);
             UPDATE numbers SET freed_at = {far} WHERE number = '{1}';
             INSERT INTO data (id, fields, expires_at) VALUES ('{held}.data', '[]', {far});
             INSERT INTO sessions (id, service, data_id, expires_at)
                 VALUES ('{held}', 'callback', '{held}.data', {far});
             INSERT INTO reservations (number, session, code, expires_at, wrong_codes)
                 VALUES ('{0}', '{held}', '4321', {far}, 1);",
            n[0], n[1], n[2], n[3]
        ))
        .expect("a live reservation at schema 5");
    }

    let url = StoreUrl::Sqlite(path);
    let store = store::open(&url, &options(&clock))
        .await
        .expect("migrates and opens");
    let live = store
        .find_reservations(ReservationFilter::default())
        .await
        .expect("find");
    assert_eq!(live.len(), 1, "the reservation made at schema 5: {live:?}");
    assert_eq!(
        (live[0].number.as_str(), &live[0].session, live[0].has_code),
        (n[0].as_str(), &held, true)
    );

    // Another session gets neither the held number nor the resting one: after the cursor
    // (1), the resting n1 is skipped.
    let other = new_session(Duration::from_secs(600), vec![]);
    let other = store.create_session(other).await.expect("session").id;
    let next = store
        .reserve(reserve_request(&other, &spec.settings.name))
        .await
        .expect("reserved");
    assert_eq!(next.number.as_str(), n[2]);

    let matched = store
        .match_reservation(MatchRequest {
            number: live[0].number.clone(),
            code: AccessCode::parse("4321").ok(),
            phone: None,
            code_required: true,
            end_session: false,
            with_fields: false,
        })
        .await
        .expect("match")
        .into_session()
        .map(|s| s.id);
    assert_eq!(matched, Some(held), "the held number matches its session");
}
