//! Cluster tests: three real nodes on one PostgreSQL schema under concurrent load much larger
//! than the pool. Checked from the answers (no two reservations on one number proven live at
//! once; every match lands on the right session, whichever node it goes through) and from
//! the database (never more than one live reservation per session and group, none left).
//! Then a node is killed with SIGKILL mid-load: every reservation it answered is still
//! matched through the others.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cluster::{self, Cluster, Held, overlaps};
use support::limit::within_for;

#[derive(Default, Debug)]
struct Tally {
    requests: usize,
    refused: usize,
    other: Vec<String>,
    held: Vec<Held>,
    matches_wrong: usize,
}

/// One virtual caller: session on one node, request-access on the next, match on the third.
async fn caller(cluster: Arc<Cluster>, i: usize, rounds: usize, tally: Arc<Mutex<Tally>>) {
    let c = &cluster.client;
    for round in 0..rounds {
        let k = i + round;
        let Ok(r) = c
            .post(format!("{}/genesys/1/service/callback", cluster.url(k)))
            .form(&[("caller", i.to_string())])
            .send()
            .await
        else {
            continue;
        };
        let Ok(body) = r.json::<serde_json::Value>().await else {
            continue;
        };
        let session = body["_id"].as_str().unwrap_or_default().to_owned();
        let r = c
            .post(format!(
                "{}/genesys/1/service/request-access",
                cluster.url(k + 1)
            ))
            .form(&[("_id", session.as_str())])
            .send()
            .await;
        let Ok(r) = r else { continue };
        let status = r.status().as_u16();
        let granted = Instant::now();
        let text = r.text().await.unwrap_or_default();
        {
            let mut t = tally.lock().expect("lock");
            t.requests += 1;
            match status {
                200 => {}
                // Only an empty pool may refuse; a 503 StoreUnavailable is a failure here.
                503 if text.contains("PoolExhausted") => {
                    t.refused += 1;
                    continue;
                }
                other => {
                    t.other.push(format!("{other}: {text}"));
                    continue;
                }
            }
        }
        let body: serde_json::Value = serde_json::from_str(&text).expect("json");
        let number = body["_access_number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let code = body["_access_code"].as_str().unwrap_or_default().to_owned();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let released = Instant::now();
        let m = c
            .post(format!(
                "{}/genesys/1/service/match-interaction",
                cluster.url(k + 2)
            ))
            .form(&[
                ("_access_number", number.as_str()),
                ("_access_code", code.as_str()),
            ])
            .send()
            .await
            .expect("match sent");
        let ok = m.status() == 200;
        let matched: serde_json::Value = m.json().await.unwrap_or_default();
        let mut t = tally.lock().expect("lock");
        if !ok || matched["_id"].as_str() != Some(session.as_str()) {
            t.matches_wrong += 1;
        }
        t.held.push(Held {
            number,
            code,
            session,
            granted,
            released: Some(released),
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn three_nodes_never_double_book_and_match_anywhere() {
    within_for(cluster::limit(), three_nodes_never_double_book()).await;
}

async fn three_nodes_never_double_book() {
    let cluster = Cluster::start(3, 20, 60).await;
    let cluster = Arc::new(cluster);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let db = support::pg::connect(&cluster.schema.url_string()).await;
    let callers: Vec<_> = (0..60)
        .map(|i| tokio::spawn(caller(cluster.clone(), i, 50, tally.clone())))
        .collect();
    // From the database, while the load runs: never two live reservations for one session in
    // one group, never more live reservations than numbers.
    let mut samples = 0;
    while !callers.iter().all(|c| c.is_finished()) {
        let per_session = "SELECT count(*) FROM (SELECT session FROM numbers WHERE session IS NOT NULL AND expires_at > (extract(epoch FROM clock_timestamp())*1000)::bigint GROUP BY session, group_name HAVING count(*) > 1) x";
        let dup: i64 = db.query_one(per_session, &[]).await.expect("query").get(0);
        assert_eq!(dup, 0, "a session held two numbers in one group");
        samples += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in callers {
        c.await.expect("caller");
    }
    let live: i64 = db
        .query_one("SELECT count(*) FROM numbers WHERE session IS NOT NULL AND expires_at > (extract(epoch FROM clock_timestamp())*1000)::bigint", &[])
        .await
        .expect("query")
        .get(0);
    let t = tally.lock().expect("lock");
    let found = overlaps(&t.held);
    eprintln!(
        "cluster: 3 nodes, pool 20, {} request-access calls, {} successes, {} refused (503 PoolExhausted), {} other, overlaps found = {found}, wrong matches = {}, {samples} database samples",
        t.requests,
        t.held.len(),
        t.refused,
        t.other.len(),
        t.matches_wrong
    );
    let errors: Vec<String> = cluster.nodes.iter().flat_map(|n| n.errors()).collect();
    assert!(
        t.other.is_empty(),
        "unexpected answers: {:?}; the nodes logged: {errors:#?}",
        &t.other[..t.other.len().min(5)]
    );
    assert_eq!(found, 0, "two live reservations on one number");
    assert_eq!(t.matches_wrong, 0, "a match landed on the wrong session");
    assert!(
        t.refused > 0 && t.held.len() > 100,
        "demand exceeded the pool: {t:?}",
        t = (t.requests, t.refused)
    );
    assert_eq!(live, 0, "every reservation was matched and released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_killed_node_loses_nothing_it_answered() {
    within_for(cluster::limit(), a_killed_node_loses_nothing()).await;
}

async fn a_killed_node_loses_nothing() {
    let mut cluster = Cluster::start(3, 2000, 1800).await;
    let client = cluster.client.clone();
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    let answered: Arc<Mutex<Vec<Held>>> = Arc::default();
    let workers: Vec<_> = (0..24)
        .map(|i| {
            let (client, url, answered) = (client.clone(), urls[i % 3].clone(), answered.clone());
            tokio::spawn(async move {
                for _ in 0..200 {
                    let Ok(r) = client
                        .post(format!("{url}/genesys/1/service/callback"))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(s) = r.json::<serde_json::Value>().await else {
                        return;
                    };
                    let session = s["_id"].as_str().unwrap_or_default().to_owned();
                    let Ok(r) = client
                        .post(format!("{url}/genesys/1/service/request-access"))
                        .form(&[("_id", session.as_str())])
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != 200 {
                        continue;
                    }
                    let Ok(b) = r.json::<serde_json::Value>().await else {
                        return;
                    };
                    let held = Held {
                        number: b["_access_number"].as_str().unwrap_or_default().into(),
                        code: b["_access_code"].as_str().unwrap_or_default().into(),
                        session,
                        granted: Instant::now(),
                        released: None,
                    };
                    answered.lock().expect("lock").push(held);
                }
            })
        })
        .collect();
    while answered.lock().expect("lock").len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.nodes[1].kill9();
    for w in workers {
        w.await.expect("worker");
    }
    let answered = answered.lock().expect("lock").clone();
    assert_eq!(overlaps(&answered), 0);
    for (i, h) in answered.iter().enumerate() {
        let survivor = if i % 2 == 0 { &urls[0] } else { &urls[2] };
        let m = client
            .post(format!("{survivor}/genesys/1/service/match-interaction"))
            .form(&[
                ("_access_number", h.number.as_str()),
                ("_access_code", h.code.as_str()),
            ])
            .send()
            .await
            .expect("match");
        assert_eq!(m.status(), 200, "reservation on {} lost", h.number);
        let body: serde_json::Value = m.json().await.expect("json");
        assert_eq!(body["_id"].as_str(), Some(h.session.as_str()));
    }
    eprintln!(
        "cluster: node 2 killed with SIGKILL mid-load; all {} answered reservations matched through nodes 1 and 3",
        answered.len()
    );
}

/// Fewer sessions than numbers, each giving its number back (after holding it a moment) and
/// asking again, through two nodes: no call is refused while numbers are free. A batch saw
/// the group as it was when its transaction began (free "at its `now`", in its reads'
/// snapshot); the numbers free then were taken by the other node meanwhile and those given
/// back since looked held, so a few calls in thousands were refused with most of the pool
/// free (an outside audit, release build: 5–6 of ~6,000; the store now looks again before
/// refusing). At this test's speed (debug build) the refusal did not show without the fix
/// either: it guards the property, the audit's runs showed the fix.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn two_nodes_refuse_no_call_while_numbers_are_free() {
    within_for(cluster::limit(), two_nodes_turns()).await;
}

async fn two_nodes_turns() {
    const SESSIONS: usize = 18;
    let cluster = Arc::new(Cluster::start(2, 20, 60).await);
    // 15 s: alone it makes ~1,800 turns in 8 s, beside this file's other tests (three nodes
    // under load each) 900–1,200 on a slow host, at the edge of the 1,000 it needs.
    let until = Instant::now() + Duration::from_secs(15);
    let turns: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let url = cluster.url(i).to_owned();
                let client = &cluster.client;
                let id = cluster.session(i).await;
                let (mut taken, mut refused) = (0, Vec::new());
                while Instant::now() < until {
                    let r = client
                        .post(format!("{url}/genesys/1/service/request-access"))
                        .form(&[("_id", id.as_str())])
                        .send()
                        .await
                        .expect("request-access");
                    let status = r.status();
                    let body: serde_json::Value = r.json().await.expect("json");
                    if status != 200 {
                        refused.push(format!("{status} {body}"));
                        continue;
                    }
                    taken += 1;
                    let hold = rand::random_range(0..10);
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    let number = body["_access_number"].as_str().expect("number");
                    let released = client
                        .delete(format!("{url}/genesys/1/admin/reservations/{number}"))
                        .send()
                        .await
                        .expect("release");
                    assert_eq!(released.status(), 200);
                }
                (taken, refused)
            })
        })
        .collect();
    let (mut taken, mut refused) = (0, Vec::new());
    for turn in turns {
        let (t, r) = turn.await.expect("task");
        taken += t;
        refused.extend(r);
    }
    assert!(taken > 1000, "only {taken} turns: the test shows nothing");
    assert!(
        refused.is_empty(),
        "{} of {} calls refused with at most {SESSIONS} of 20 numbers held: {:?}",
        refused.len(),
        taken + refused.len(),
        &refused[..refused.len().min(3)]
    );
}

/// One client's quota holds across nodes: a burst of its calls spread over two nodes gets
/// exactly its quota, and a reservation matched through one node frees its place on the
/// other at once. (Each node counted only the reservations it handed out itself: the burst
/// got the quota on each node, twice the limit.)
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_clients_quota_holds_across_nodes() {
    within_for(cluster::limit(), quota_across_nodes()).await;
}

async fn quota_across_nodes() {
    const QUOTA: usize = 4;
    let cluster =
        Arc::new(Cluster::start_with(2, 50, 600, "[limits]\nreservations_per_client = 4").await);
    let client = &cluster.client;
    let mut sessions = Vec::new();
    for i in 0..20 {
        sessions.push(cluster.session(i).await);
    }
    let calls = sessions.iter().enumerate().map(|(i, id)| {
        let url = format!("{}/genesys/1/service/request-access", cluster.url(i));
        async move {
            let r = client
                .post(url)
                .form(&[("_id", id.as_str())])
                .send()
                .await
                .expect("request-access");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.expect("json"))
        }
    });
    let answers = futures::future::join_all(calls).await;
    let granted: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(granted.len(), QUOTA, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["exception"], "QuotaExceeded", "{body}");
    }

    // A match through node 2 frees a place for a call through node 1, and only one.
    let first = granted[0];
    let matched = client
        .post(format!(
            "{}/genesys/1/service/match-interaction",
            cluster.url(1)
        ))
        .form(&[
            (
                "_access_number",
                first["_access_number"].as_str().expect("n"),
            ),
            (
                "_access_code",
                first["_access_code"].as_str().expect("code"),
            ),
        ])
        .send()
        .await
        .expect("match");
    assert_eq!(matched.status(), 200);
    let refused: Vec<&String> = sessions
        .iter()
        .zip(&answers)
        .filter(|(_, (s, _))| *s != 200)
        .map(|(id, _)| id)
        .collect();
    let again = |id: &str| {
        client
            .post(format!(
                "{}/genesys/1/service/request-access",
                cluster.url(0)
            ))
            .form(&[("_id", id)])
            .send()
    };
    assert_eq!(again(refused[0]).await.expect("again").status(), 200);
    assert_eq!(again(refused[1]).await.expect("again").status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_refusal_counts_the_reservation_another_node_is_committing() {
    within_for(cluster::limit(), refusal_waits_for_a_claim_in_flight()).await;
}

/// Two numbers: one reserved for 100 s, the other being taken (for 20 s) by node 1, whose
/// link to PostgreSQL is slow, when node 2 refuses a call. The refusal's `Retry-After` must
/// count node 1's reservation once it commits (20 s), not the state before it (100 s). The
/// count waits without a waiting lock (`store/postgres/retry_after.rs`): an earlier version's
/// `FOR SHARE` deadlocked with matches.
async fn refusal_waits_for_a_claim_in_flight() {
    use support::proxy::{FaultProxy, Mode};
    let schema = support::pg::Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = schema.url_string();
    let upstream = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in TEST_POSTGRES_URL")
        .to_owned();
    let proxy = FaultProxy::start(&upstream, Mode::Pass).await;
    let slow =
        support::process::Node::start(&cluster::config(&dir, 1, 2, 60), &proxy.url(&url), &[]);
    let fast = support::process::Node::start(&cluster::config(&dir, 2, 2, 60), &url, &[]);
    let client = reqwest::Client::new();
    let interaction = |node: &str, booking: &'static str| {
        client
            .post(format!("{node}/genesys/1/service/request-interaction"))
            .form(&[("_booking_expiration_timeout", booking)])
            .send()
    };
    let first = interaction(&fast.url, "100").await.expect("first");
    assert_eq!(first.status(), 200);
    // The free number's row as it stands: a transaction locking it sets its `xmax` (read
    // without a lock of our own: a probe's lock would make node 1's claim skip the number).
    let db = support::pg::connect(&url).await;
    let row = db
        .query_one(
            "SELECT number, xmax::text FROM numbers WHERE session IS NULL",
            &[],
        )
        .await
        .expect("one free number");
    let (free, before): (String, String) = (row.get(0), row.get(1));
    proxy.set_latency(Duration::from_millis(100));
    let taking = tokio::spawn(interaction(&slow.url, "20"));
    // Wait until node 1 holds that row, not yet committed, then ask node 2.
    let look = "SELECT xmax::text, session IS NULL FROM numbers WHERE number = $1";
    let start = Instant::now();
    loop {
        let row = db.query_one(look, &[&free]).await.expect("query");
        let (xmax, still_free): (String, bool) = (row.get(0), row.get(1));
        assert!(
            still_free,
            "node 1 committed before it was seen holding {free}"
        );
        if xmax != before {
            break;
        }
        assert!(
            !taking.is_finished() && start.elapsed() < Duration::from_secs(10),
            "node 1 never took {free}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refused = interaction(&fast.url, "60").await.expect("refused");
    assert_eq!(refused.status(), 503);
    let told = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .to_owned();
    let taken = taking.await.expect("task").expect("taken");
    let status = taken.status();
    let text = taken.text().await.unwrap_or_default();
    assert_eq!(status, 200, "node 1's call: {text}; {:?}", slow.errors());
    assert!(
        told == "20" || told == "19",
        "Retry-After {told}: node 1's reservation ends in 20 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_renewal_batch_locks_its_numbers_in_number_order() {
    within_for(cluster::limit(), renewal_lock_order()).await;
}

/// A batch renewing two sessions' reservations locks their numbers in number order, as a
/// match batch does, whatever the sessions' order. Set up by hand: another transaction (a
/// match, in effect) holds the lower number and then asks for the higher one while the
/// batch waits; the batch must not hold the higher one meanwhile. Locked session by session,
/// it did: the two deadlocked (an outside audit saw it once in eight three-node runs).
async fn renewal_lock_order() {
    let schema = support::pg::Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = schema.url_string();
    let path = cluster::config(&dir, 1, 3, 60);
    // Four connections: one batch of a kind at a time (`batch::parallel`), so calls queued
    // behind a waiting batch go in the next one together.
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replace("store_max_connections = 8", "store_max_connections = 4");
    std::fs::write(&path, text).expect("config");
    let node = support::process::Node::start(&path, &url, &[]);
    let client = reqwest::Client::new();
    let base = node.url.clone();
    let session = || async {
        let r = client
            .post(format!("{base}/genesys/1/service/callback"))
            .send()
            .await
            .expect("session");
        let body: serde_json::Value = r.json().await.expect("json");
        body["_id"].as_str().expect("_id").to_owned()
    };
    let reserve = |id: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client
                .post(format!("{base}/genesys/1/service/request-access"))
                .form(&[("_id", id.as_str())])
                .send()
                .await
                .expect("request-access");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let number = body["_access_number"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (status, number)
        }
    };
    let mut pair = [session().await, session().await];
    pair.sort();
    let [first, second] = pair;
    let other = session().await;
    // Round-robin from the group's start: the second session in id order gets the lower.
    let (_, low) = reserve(second.clone()).await;
    let (_, high) = reserve(first.clone()).await;
    let (_, third) = reserve(other.clone()).await;
    assert!(low < high && high < third, "{low} {high} {third}");

    let watch = support::pg::connect(&url).await;
    let blocked_by = |pid: i32| {
        let watch = &watch;
        async move {
            let sql = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))";
            let start = Instant::now();
            while watch
                .query_one(sql, &[&pid])
                .await
                .expect("query")
                .get::<_, i64>(0)
                == 0
            {
                assert!(start.elapsed() < Duration::from_secs(10), "no batch waited");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let lock = "SELECT 1 FROM numbers WHERE number = $1 FOR UPDATE";
    let pid = "SELECT pg_backend_pid()";
    let holder = support::pg::connect(&url).await;
    let matcher = support::pg::connect(&url).await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder.query(lock, &[&third]).await.expect("lock");
    matcher.batch_execute("BEGIN").await.expect("begin");
    matcher.query(lock, &[&low]).await.expect("lock");
    // The third session's renewal waits for its number; the pair queues behind it.
    let waiting = tokio::spawn(reserve(other));
    blocked_by(holder.query_one(pid, &[]).await.expect("pid").get(0)).await;
    let renewals = tokio::spawn(futures::future::join(reserve(first), reserve(second)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.batch_execute("COMMIT").await.expect("commit");
    // The pair's batch now waits for the lower number.
    blocked_by(matcher.query_one(pid, &[]).await.expect("pid").get(0)).await;
    matcher
        .batch_execute("SET LOCAL lock_timeout = '500ms'")
        .await
        .expect("set");
    let taken = matcher.query(lock, &[&high]).await;
    assert!(
        taken.is_ok(),
        "the renewal batch held {high} while it waited for {low}: {taken:?}"
    );
    matcher.batch_execute("COMMIT").await.expect("commit");
    let (a, b) = renewals.await.expect("renewals");
    assert_eq!((a.0, b.0), (200, 200), "the renewals: {a:?} {b:?}");
    assert_eq!((a.1, b.1), (high, low), "each kept its number");
    assert_eq!(waiting.await.expect("renewal").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_refused_group_delete_locks_none_of_its_numbers() {
    within_for(cluster::limit(), refused_delete_locks_nothing()).await;
}

/// Deleting a group that holds a live reservation is refused (409) without locking the
/// group's numbers: it locked them all before it looked, so every node's claims skipped
/// them meanwhile and an operator retrying the delete of a busy group turned callers away
/// with 503 `PoolExhausted` from a nearly free pool (an outside audit). Staged with another
/// transaction holding one free number: a delete that locks them all waits behind it.
async fn refused_delete_locks_nothing() {
    let schema = support::pg::Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = schema.url_string();
    let node = support::process::Node::start(&cluster::config(&dir, 1, 3, 600), &url, &[]);
    let client = reqwest::Client::new();
    let base = node.url.clone();
    let session = client
        .post(format!("{base}/genesys/1/service/callback"))
        .send()
        .await
        .expect("session");
    let id = session.json::<serde_json::Value>().await.expect("json")["_id"]
        .as_str()
        .expect("_id")
        .to_owned();
    let held = client
        .post(format!("{base}/genesys/1/service/request-access"))
        .form(&[("_id", id.as_str())])
        .send()
        .await
        .expect("request-access");
    assert_eq!(held.status(), 200);
    let other = support::pg::connect(&url).await;
    other.batch_execute("BEGIN").await.expect("begin");
    other
        .query(
            "SELECT 1 FROM numbers WHERE number = '7000002' FOR UPDATE",
            &[],
        )
        .await
        .expect("lock a free number");
    let asked = Instant::now();
    let refused = client
        .delete(format!("{base}/genesys/1/admin/groups/DNIS?force=true"))
        .send()
        .await
        .expect("delete");
    let took = asked.elapsed();
    let status = refused.status();
    let body = refused.text().await.expect("body");
    other.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("live reservation"), "{body}");
    assert!(took < Duration::from_secs(1), "the refusal waited {took:?}");
}
