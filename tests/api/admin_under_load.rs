//! An admin change on a PostgreSQL group does not hold up the group's calls: adding 100,000
//! numbers took ~1.5 s, and every request-access on the group (on every node) waited for it,
//! because the change held the group's row and each batch that took a new number waited to
//! move the round-robin cursor there. The change now holds the cursor's advisory lock first,
//! and batches leave the cursor alone while it runs (`store::postgres::admin::hold_group`).

use std::time::{Duration, Instant};

use crate::helpers::{DEMO, TestApp};
use crate::support::Backend;

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn adding_many_numbers_holds_up_no_reservation() {
    let app = TestApp::spawn_with(Backend::Postgres, DEMO).await;
    let id = app.session(&[]).await;
    let adding = async {
        // Let the loop below run first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let added = app
            .post(
                "/genesys/1/admin/groups/DNIS/numbers",
                &[("numbers", "7100000000-7100099999")],
            )
            .await;
        assert_eq!(added.status, 200, "{}", added.text);
        started.elapsed()
    };
    // Each turn takes a new number (its cursor moves) and gives it back.
    let reserving = async {
        let mut slowest = Duration::ZERO;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut turns = 0;
        while Instant::now() < deadline {
            let started = Instant::now();
            let access = app.request_access(&id, &[]).await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(access.status, 200, "{}", access.text);
            let number = access.field("_access_number");
            let matched = app
                .match_interaction(&[("_access_number", number.as_str())])
                .await;
            assert_eq!(matched.status, 200, "{}", matched.text);
            turns += 1;
            if turns > 20
                && app.get("/genesys/1/admin/groups/DNIS?limit=1").await.json()["size"]
                    .as_u64()
                    .is_some_and(|size| size > 100_000)
            {
                return (slowest, turns);
            }
        }
        panic!("the numbers were not added within 60 s");
    };
    let (took, (slowest, turns)) = futures::future::join(adding, reserving).await;
    assert!(
        slowest < took / 2,
        "a reservation waited {slowest:?} while the add took {took:?} ({turns} turns)"
    );
}
