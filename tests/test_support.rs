//! The test support's own promises: a hung test fails instead of hanging, and dropping a
//! PostgreSQL test schema never waits on the runtime it is dropped from.

mod support;

use std::time::{Duration, Instant};

use support::limit::within_for;

#[tokio::test]
#[should_panic(expected = "did not finish within")]
async fn a_test_past_its_time_limit_fails() {
    within_for(Duration::from_millis(50), std::future::pending::<()>()).await;
}

/// The hang of issue 10: a transaction on the schema, driven by this test's only runtime
/// thread, while `Drop` blocks that thread. The drop must end the holder, not wait for it.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_schema_drops_while_its_runtime_holds_a_transaction_on_it() {
    let schema = support::pg::Schema::require().await;
    let name = schema.name().to_owned();
    let holder = support::pg::connect(&schema.url_string()).await;
    holder
        .batch_execute("CREATE TABLE held (id int); BEGIN; LOCK TABLE held IN ACCESS SHARE MODE")
        .await
        .expect("lock held");
    let started = Instant::now();
    drop(schema);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "drop took {:?}",
        started.elapsed()
    );
    let check = support::pg::connect(&support::pg::require_url()).await;
    let left: i64 = check
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&name],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(left, 0, "schema {name} was dropped");
    drop(holder);
}
