//! A store that a node of the previous release left at schema 6 (a session's reservations
//! found through `numbers.session`) keeps its reservations when a node of this one migrates
//! it to 7 (the sessions' lists of holds, heap-only pairs): the live reservation is the
//! session's own, renewed rather than doubled, matched, and the session's next request gets
//! another number with its list kept to what it holds; and migration 8 counts the bytes of
//! the fields stored before it.

mod support;

use support::cluster;
use support::pg::Schema;
use support::process::Node;

/// The migrations a node of the previous release had applied.
const SCHEMA_6: [&str; 6] = [
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_config_hash.sql"),
    include_str!("../migrations/postgres/0003_rules_leave_sql.sql"),
    include_str!("../migrations/postgres/0004_number_lifecycle.sql"),
    include_str!("../migrations/postgres/0005_events_outbox.sql"),
    include_str!("../migrations/postgres/0006_expiry_indexes.sql"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn reservations_survive_migration_7() {
    support::limit::within(upgrade()).await;
}

async fn upgrade() {
    let schema = Schema::require().await;
    let db = support::pg::connect(&schema.url_string()).await;
    for sql in SCHEMA_6 {
        db.batch_execute(sql).await.expect("schema 6");
    }
    let session = format!("1-{}", uuid::Uuid::new_v4());
    let far = "(extract(epoch FROM now()) * 1000)::int8 + 600000";
    db.batch_execute(&format!(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY,
                                         applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO schema_migrations (version) SELECT generate_series(1, 6);
         INSERT INTO groups (name, allocation, cursor) VALUES ('DNIS', 'round-robin', 1);
         INSERT INTO numbers (number, group_name, position)
              SELECT (7000000 + i)::text, 'DNIS', i FROM generate_series(0, 9) AS i;
         INSERT INTO data (id, fields, expires_at) VALUES ('{session}.data', '[]', {far});
         INSERT INTO data (id, fields, expires_at)
              VALUES ('stored', '[[\"name\",\"value\"],[\"é\",\"\\\"\"]]', {far});
         INSERT INTO sessions (id, service, data_id, expires_at)
              VALUES ('{session}', 'callback', '{session}.data', {far});
         UPDATE numbers SET session = '{session}', expires_at = {far}, freed_at = {far}
          WHERE number = '7000000';"
    ))
    .await
    .expect("a live reservation at schema 6");

    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(
        &cluster::config(&dir, 1, 10, 600),
        &schema.url_string(),
        &[],
    );
    let http = reqwest::Client::new();
    let post = |service: &str, form: Vec<(&str, String)>| {
        http.post(format!("{}/genesys/1/service/{service}", node.url))
            .form(&form)
            .send()
    };
    let access = |session: &str| post("request-access", vec![("_id", session.to_owned())]);

    let renewed: serde_json::Value = access(&session)
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(
        renewed["_access_number"], "7000000",
        "the reservation made at schema 6 is the session's own: {renewed}"
    );
    let code = renewed["_access_code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let matched = post(
        "match-interaction",
        vec![("_access_number", "7000000".into()), ("_access_code", code)],
    )
    .await
    .expect("answer");
    assert_eq!(
        matched.status(),
        200,
        "{}",
        matched.text().await.unwrap_or_default()
    );

    let next: serde_json::Value = access(&session)
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let number = next["_access_number"]
        .as_str()
        .expect("a number")
        .to_owned();
    assert_ne!(number, "7000000", "matched, so a new reservation: {next}");
    let row = db
        .query_one("SELECT holds FROM sessions WHERE id = $1", &[&session])
        .await
        .expect("the session");
    let holds: Vec<String> = row.get(0);
    assert_eq!(holds, vec![number], "the list holds what the session holds");

    // Migration 8 counted the fields stored before it as the node counts new ones: names
    // and values in bytes ("name" "value" "é" and a quote: 4 + 5 + 2 + 1).
    let row = db
        .query_one("SELECT bytes FROM data WHERE id = 'stored'", &[])
        .await
        .expect("the stored entry");
    assert_eq!(row.get::<_, i64>(0), 12);
}
