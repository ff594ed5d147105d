//! Nodes on one PostgreSQL store, at the store level: claims made at the same moment in a
//! small pool must each take only the numbers they use; calls that lock the same session and
//! number take their locks in one order (no deadlock). A batch that locked every free number
//! it looked at (random allocation probes many) would leave the other node a pool that looks
//! empty, and its callers would be refused although numbers were free.

mod support;

use std::sync::Arc;
use std::time::Duration;

use access_broker::clock::ManualClock;
use access_broker::domain::Allocation;
use access_broker::store::{self, DynStore, MatchRequest, StoreOptions};
use support::{TestStore, group, new_session, reserve_request};

const POOL: u32 = 8;
const ROUNDS: usize = 30;

/// A fresh PostgreSQL store holding one group `NODES` of `size` numbers.
async fn store_with_group(size: u32, allocation: Allocation) -> (TestStore, store::GroupSpec) {
    let t = TestStore::require(support::Backend::Postgres).await;
    let spec = group("NODES", size, allocation);
    t.store
        .apply_groups(std::slice::from_ref(&spec))
        .await
        .expect("apply");
    (t, spec)
}

async fn second_node(t: &TestStore) -> DynStore {
    let options = StoreOptions {
        clock: t.clock.clone() as Arc<ManualClock>,
        node_id: "8".into(),
        ..support::options(&t.clock)
    };
    store::open(&t.url, &options)
        .await
        .expect("second node opens")
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn concurrent_claims_in_a_small_pool_leave_each_other_the_rest() {
    support::limit::within(async {
        for allocation in [Allocation::Random, Allocation::RoundRobin, Allocation::LeastRecentlyUsed] {
            let (t, spec) = store_with_group(POOL, allocation).await;
            let b = second_node(&t).await;
            let g = &spec.settings.name;
            for round in 0..ROUNDS {
                let mut calls = Vec::new();
                for i in 0..POOL {
                    let node = if i % 2 == 0 { t.store.clone() } else { b.clone() };
                    let session = node
                        .create_session(new_session(Duration::from_secs(600), vec![]))
                        .await
                        .expect("session");
                    let req = reserve_request(&session.id, g);
                    calls.push(tokio::spawn(async move { node.reserve(req).await }));
                }
                let mut numbers = Vec::new();
                for call in calls {
                    match call.await.expect("task") {
                        Ok(r) => numbers.push(r.number),
                        Err(e) => panic!("{allocation} round {round}: refused with {e:?} while the pool had room for every caller"),
                    }
                }
                numbers.sort();
                numbers.dedup();
                assert_eq!(numbers.len(), POOL as usize, "{allocation}: distinct numbers");
                for number in numbers {
                    let m = MatchRequest { number, code: None, phone: None, code_required: false, end_session: true , with_fields: true};
                    assert!(t.store.match_reservation(m).await.expect("match").into_session().is_some());
                }
            }
        }
    })
    .await;
}

/// One session asking through two nodes at the same moment (an app retrying through a load
/// balancer) holds one reservation in the group, and ending the session ends it: the batch
/// that waited for the other's lock on the session must see the number the other took.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn one_session_asking_through_two_nodes_holds_one_number() {
    support::limit::within(async {
        let (t, spec) = store_with_group(20, Allocation::RoundRobin).await;
        let b = second_node(&t).await;
        let g = &spec.settings.name;
        for round in 0..ROUNDS {
            let session = t
                .store
                .create_session(new_session(Duration::from_secs(600), vec![]))
                .await
                .expect("session");
            let calls: Vec<_> = [t.store.clone(), b.clone(), t.store.clone(), b.clone()]
                .into_iter()
                .map(|node| {
                    let req = reserve_request(&session.id, g);
                    tokio::spawn(async move { node.reserve(req).await })
                })
                .collect();
            let mut numbers = Vec::new();
            for call in calls {
                numbers.push(call.await.expect("task").expect("reserved").number);
            }
            numbers.sort();
            numbers.dedup();
            assert_eq!(
                numbers.len(),
                1,
                "round {round}: one number for the session: {numbers:?}"
            );
            let filter = store::ReservationFilter {
                session: Some(session.id.clone()),
                ..Default::default()
            };
            let held = t
                .store
                .find_reservations(filter.clone())
                .await
                .expect("list");
            assert_eq!(held.len(), 1, "round {round}: {held:?}");
            assert!(t.store.end_session(&session.id).await.expect("end"));
            let left = b.find_reservations(filter).await.expect("list");
            assert!(
                left.is_empty(),
                "round {round}: outlived its session: {left:?}"
            );
        }
    })
    .await;
}

/// A session's end and a match that ends that session (`_delete_service`), or a renewal of
/// it, at the same moment: each runs, none waits on the other in a deadlock. The match locked
/// the number and then the session, the others the session and then its numbers: a third of
/// such races deadlocked, each waiting PostgreSQL's `deadlock_timeout`, then a 503 past the
/// retries. This node's connections wait a minute before PostgreSQL looks for a deadlock, so
/// one shows as a call past the store's 3 s timeout, not as a one-second pause.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn ending_a_session_while_its_number_is_matched_never_deadlocks() {
    support::limit::within(async {
        let (t, spec) = store_with_group(20, Allocation::RoundRobin).await;
        let url = format!("{}%20-cdeadlock_timeout%3D60s", t.url);
        assert!(
            url.contains("options="),
            "the schema rides in options: {url}"
        );
        let options = StoreOptions {
            timeout: Duration::from_secs(3),
            ..support::options(&t.clock)
        };
        let node = store::open(&url.parse().expect("url"), &options)
            .await
            .expect("node opens");
        let g = &spec.settings.name;
        for round in 0..ROUNDS {
            let session = node
                .create_session(new_session(Duration::from_secs(600), vec![]))
                .await
                .expect("session");
            let number = node
                .reserve(reserve_request(&session.id, g))
                .await
                .expect("reserved")
                .number;
            let matched = {
                let (node, number) = (node.clone(), number.clone());
                tokio::spawn(async move {
                    let m = MatchRequest {
                        number,
                        code: None,
                        phone: None,
                        code_required: false,
                        end_session: true,
                        with_fields: false,
                    };
                    node.match_reservation(m).await.map(|_| ())
                })
            };
            let other = {
                let (node, id) = (node.clone(), session.id.clone());
                let renew = reserve_request(&id, g);
                tokio::spawn(async move {
                    match round % 2 {
                        0 => node.end_session(&id).await.map(|_| ()),
                        _ => match node.reserve(renew).await {
                            Err(store::ReserveError::Store(e)) => Err(e),
                            _ => Ok(()),
                        },
                    }
                })
            };
            matched.await.expect("task").expect("the match answers");
            other
                .await
                .expect("task")
                .expect("the end or renewal answers");
            // Whichever came first, the session is over: nothing of it is left.
            node.end_session(&session.id).await.expect("end");
            let left = node
                .find_reservations(store::ReservationFilter {
                    number: Some(number),
                    ..Default::default()
                })
                .await
                .expect("list");
            assert!(left.is_empty(), "round {round}: {left:?}");
        }
    })
    .await;
}

/// An admin add of the 100,000 numbers one request may carry is bounded by the admin bound
/// (`store::postgres::admin::BULK_TIMEOUT`), not by a call's store timeout: it took 3–5 s on a
/// loaded machine, and two at once answered 503 at the default 5 s (an outside audit). Here
/// a node whose calls may take 300 ms adds them whole.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn adding_many_numbers_is_not_held_to_a_calls_timeout() {
    let (t, spec) = store_with_group(POOL, Allocation::RoundRobin).await;
    let options = StoreOptions {
        timeout: Duration::from_millis(300),
        ..support::options(&t.clock)
    };
    let node = store::open(&t.url, &options).await.expect("node opens");
    let numbers: Vec<_> = (0..100_000)
        .map(|i| support::number(&format!("71{i:08}")))
        .collect();
    let started = std::time::Instant::now();
    let added = node
        .add_numbers(&spec.settings.name, numbers)
        .await
        .expect("added within the admin bound");
    assert_eq!(added, store::AddNumbers::Added(100_000));
    assert!(
        started.elapsed() > options.timeout,
        "the add took {:?}, not longer than a call may: the test shows nothing",
        started.elapsed()
    );
}
