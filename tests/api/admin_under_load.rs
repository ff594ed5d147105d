//! An admin change on a PostgreSQL group does not hold up the group's calls: adding 100,000
//! numbers took ~1.5 s, and every request-access on the group (on every node) waited for it,
//! because the change held the group's row and each batch that took a new number waited to
//! move the round-robin cursor there. The change now holds the cursor's advisory lock first,
//! and batches leave the cursor alone while it runs (`store::postgres::admin::hold_group`).
//! Round-robin still walks on meanwhile: each node keeps its own walk while the stored cursor
//! cannot move (`store::postgres::walks`); before, a session that gave its number back and
//! asked again got the same number on every turn of the add.

use std::time::{Duration, Instant};

use crate::helpers::{DEMO, TestApp};
use crate::support::Backend;

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn adding_many_numbers_holds_up_no_reservation() {
    let app = TestApp::spawn_with(Backend::Postgres, &walking_config()).await;
    let id = app.session(&[]).await;
    let adding = async {
        // Let the loop below run first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        add_a_hundred_thousand(&app).await;
        started.elapsed()
    };
    // Each turn takes a new number (its cursor moves) and gives it back.
    let reserving = async {
        let mut slowest = Duration::ZERO;
        let mut taken: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut turns = 0;
        while Instant::now() < deadline {
            let started = Instant::now();
            let access = app.request_access(&id, &[]).await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(access.status, 200, "{}", access.text);
            let number = access.field("_access_number");
            taken.push(number.clone());
            let matched = app
                .match_interaction(&[("_access_number", number.as_str())])
                .await;
            assert_eq!(matched.status, 200, "{}", matched.text);
            turns += 1;
            // Ten turns more once the add is in, to see where the walk goes on from.
            if turns > 20
                && app.get("/genesys/1/admin/groups/DNIS?limit=1").await.json()["size"]
                    .as_u64()
                    .is_some_and(|size| size > 100_000)
            {
                for _ in 0..10 {
                    taken.push(turn(&app, &id).await);
                }
                return (slowest, turns, taken);
            }
        }
        panic!("the numbers were not added within 60 s");
    };
    let (took, (slowest, turns, taken)) = futures::future::join(adding, reserving).await;
    assert!(
        slowest < took / 2,
        "a reservation waited {slowest:?} while the add took {took:?} ({turns} turns)"
    );
    assert_walks_on(&taken);
}

/// A group grown by an admin add keeps its calls fast: each pooled connection plans its
/// prepared statements for the table as the planner last measured it, so a group of 20
/// numbers grown by 100,000 had every request-access scan the whole table (an outside audit,
/// on a server without autovacuum: 3.4 → 120 ms a call) until something analyzed it. The add
/// now measures the table when it grew it that much (`store::postgres::admin`).
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_group_grown_by_an_add_keeps_its_calls_fast() {
    let config = DEMO.replace("6504660000-6504660099", "6504660000-6504660019");
    let app = TestApp::spawn_with(Backend::Postgres, &config).await;
    let id = app.session(&[]).await;
    // The median time of 20 turns, each taking a number and giving it back.
    let turns = || async {
        let mut took = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let access = app.request_access(&id, &[]).await;
            took.push(started.elapsed());
            assert_eq!(access.status, 200, "{}", access.text);
            let number = access.field("_access_number");
            let released = app
                .delete(&format!("/genesys/1/admin/reservations/{number}"))
                .await;
            assert_eq!(released.status, 200, "{}", released.text);
        }
        took.sort();
        took[took.len() / 2]
    };
    let before = turns().await;
    add_a_hundred_thousand(&app).await;
    let after = turns().await;
    assert!(
        after < before * 4 + Duration::from_millis(20),
        "request-access took {after:?} (median) after the add, {before:?} before"
    );
}

/// Adds 100,000 numbers to the demo group through the admin API.
async fn add_a_hundred_thousand(app: &TestApp) {
    let added = app
        .post(
            "/genesys/1/admin/groups/DNIS/numbers",
            &[("numbers", "7100000000-7100099999")],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
}

/// The demo group with 1,000 numbers (a walk of a few hundred turns does not wrap) and no
/// cool-down, so a number given back is free at once and only the walk's order keeps the
/// next turn from taking it again.
fn walking_config() -> String {
    DEMO.replace("6504660000-6504660099", "6504660000-6504660999")
        .replace("cool_down = 30", "cool_down = 0")
        .replace("late_match_grace = 30", "late_match_grace = 0")
}

/// One turn of a session: takes a number and gives it back by a call; the number.
async fn turn(app: &TestApp, id: &str) -> String {
    let access = app.request_access(id, &[]).await;
    assert_eq!(access.status, 200, "{}", access.text);
    let number = access.field("_access_number");
    let matched = app
        .match_interaction(&[("_access_number", number.as_str())])
        .await;
    assert_eq!(matched.status, 200, "{}", matched.text);
    number
}

/// The numbers a walk took, in order, went on from where the last one stopped: each after
/// the one before (numbers added later come after the group's), never the same or an
/// earlier one again.
fn assert_walks_on(taken: &[String]) {
    let back: Vec<_> = taken
        .windows(2)
        .filter(|w| w[1].parse::<u64>().ok() <= w[0].parse::<u64>().ok())
        .collect();
    assert!(
        back.is_empty(),
        "round-robin went back (or lent the number just given back) {} times in {} turns: {back:?}",
        back.len(),
        taken.len()
    );
}

/// Settings changes of a group while its calls flow (each holds the group for tens of
/// milliseconds) leave the round-robin walk where it was: the change writes back the cursor
/// it read, which a node's own walk had passed while its moves were skipped, and the walk
/// went back there after each change (an outside audit: the number just given back, on 7 of
/// 10 changes).
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn settings_changes_leave_the_walk_where_it_was() {
    let app = TestApp::spawn_with(Backend::Postgres, &walking_config()).await;
    let id = app.session(&[]).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let changing = async {
        for i in 0..10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let timeout = (20 + i).to_string();
            let put = app
                .send(
                    app.client
                        .put(app.path("/genesys/1/admin/groups/DNIS"))
                        .form(&[
                            ("allocation", "round-robin"),
                            ("booking_expiration_timeout", timeout.as_str()),
                        ]),
                )
                .await;
            assert_eq!(put.status, 200, "{}", put.text);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let walking = async {
        let mut taken = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            taken.push(turn(&app, &id).await);
        }
        for _ in 0..5 {
            taken.push(turn(&app, &id).await);
        }
        taken
    };
    let ((), taken) = futures::future::join(changing, walking).await;
    assert_walks_on(&taken);
}
