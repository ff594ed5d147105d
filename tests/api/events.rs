//! Lifecycle webhooks delivered to a real HTTP receiver started here: signature checked, a 500
//! retried with the same id, a restart between queueing and delivery, two PostgreSQL nodes
//! sharing the work (the live stream's tests are in `event_stream.rs`).
//!
//! Events are put in the outbox through `Store::record_events` where a test needs one event
//! at a known moment; the end-to-end tests have request-access and match-interaction produce
//! them, on every store.

use std::sync::Arc;
use std::time::Duration;

use access_broker::clock::Clock;
use access_broker::domain::{AccessNumber, GroupName, UnixMillis};
use access_broker::events::deliver::SIGNATURE_HEADER;
use access_broker::events::{Event, EventKind};
use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;

use access_broker::app::App;
use access_broker::config::Config;
use access_broker::events::deliver;
use access_broker::store::{self, StoreOptions, StoreUrl};

use crate::helpers::{DEMO, TestApp};
use crate::on_every_backend;
use crate::support::{Backend, TestStore};

const SECRET: &str = "hmac-key";

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: String,
    pub signature: String,
    pub content_type: String,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a delivery is JSON")
    }
}

/// A webhook endpoint on 127.0.0.1:0 that answers 500 to the first `failures` posts, then 200.
pub struct Receiver {
    pub url: String,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Receiver {
        let (tx, deliveries) = mpsc::unbounded_channel();
        let left = Arc::new(Mutex::new(failures));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (tx, left) = (tx.clone(), left.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let _ = tx.send(Delivery {
                        signature: header(SIGNATURE_HEADER),
                        content_type: header("content-type"),
                        body,
                    });
                    let mut left = left.lock();
                    if *left > 0 {
                        *left -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let url = serve_hook(app).await;
        Receiver { url, deliveries }
    }

    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(20), self.deliveries.recv())
            .await
            .expect("a delivery within 20 s")
            .expect("receiver running")
    }
}

/// The demo config with `[events]` posting to `url`.
pub fn config_for(url: &str) -> String {
    format!("{DEMO}\n[events]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n")
}

/// What the receiver checks: HMAC-SHA256 of the body with the shared secret, in hex.
fn expected_signature(body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

pub fn event(kind: EventKind, at: UnixMillis) -> Event {
    Event::new(
        kind,
        at,
        GroupName::parse("DNIS").expect("group"),
        AccessNumber::parse("6504660000").expect("number"),
        None,
    )
}

on_every_backend!(
    a_refused_delivery_is_retried_signed_with_the_same_id,
    |backend: Backend| async move {
        let mut receiver = Receiver::start(1).await;
        let store = TestStore::require_with_outbox(backend).await;
        let app = TestApp::spawn_on(store, &config_for(&receiver.url)).await;
        let sent = event(EventKind::Created, app.store.clock.now());
        app.store
            .store
            .record_events(vec![sent.clone()])
            .await
            .expect("queued");

        let first = receiver.next().await;
        assert_eq!(first.json()["id"], sent.id.as_str());
        assert_eq!(first.json()["type"], "reservation.created");
        assert_eq!(first.content_type, "application/json");
        assert_eq!(first.signature, expected_signature(&first.body));

        // Answered 500: retried within 5 s (by the store's clock), same id, signed again.
        wait_for_metrics(&app, "access_broker_events_failed_total 1", "").await;
        app.advance(Duration::from_secs(5));
        let second = receiver.next().await;
        assert_eq!(second.body, first.body, "the retry sends the same event");
        assert_eq!(second.signature, expected_signature(&second.body));

        // Answered 200: it leaves the outbox, and the metrics say so.
        let metrics = wait_for_metrics(
            &app,
            "access_broker_events_delivered_total 1",
            "access_broker_events_backlog 0",
        )
        .await;
        assert!(
            metrics.contains("access_broker_events_failed_total 1"),
            "{metrics}"
        );
        assert_eq!(app.store.store.outbox_len().await.expect("len"), 0);
        assert!(app.get("/ready").await.status.is_success());
    }
);

/// Polls `/metrics` until it shows `needle` (delivery runs on its own task).
async fn wait_for_metrics(app: &TestApp, needle: &str, and: &str) -> String {
    for _ in 0..100 {
        let text = app.get("/metrics").await.text;
        if text.contains(needle) && text.contains(and) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{needle} never showed in /metrics:\n{}",
        app.get("/metrics").await.text
    )
}

/// The outbox is on disk: an event queued by a node that stops before delivering is delivered
/// by the next node started on the same file.
#[tokio::test]
async fn an_event_queued_before_a_restart_is_delivered_after_it() {
    crate::support::limit::within(async {
        let mut receiver = Receiver::start(0).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let url = StoreUrl::Sqlite(dir.path().join("store.db"));
        let clock = Arc::new(access_broker::clock::ManualClock::starting_now());
        let options = StoreOptions {
            keep_outbox: true,
            ..crate::support::options(&clock)
        };
        let sent = event(EventKind::Expired, clock.now());
        {
            let first = store::open(&url, &options).await.expect("opens");
            first
                .record_events(vec![sent.clone()])
                .await
                .expect("queued");
            assert_eq!(first.outbox_len().await.expect("len"), 1);
        } // the node stops before any delivery task ran

        let reopened = store::open(&url, &options).await.expect("reopens");
        assert_eq!(reopened.outbox_len().await.expect("len"), 1, "kept on disk");
        let (config, _) =
            Config::from_toml(&config_for(&receiver.url), "test.toml").expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = App::build(config, listener, reopened.clone())
            .await
            .expect("app");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let got = receiver.next().await;
        assert_eq!(got.json()["id"], sent.id.as_str());
        assert_eq!(got.json()["type"], "reservation.expired");
        for _ in 0..100 {
            if reopened.outbox_len().await.expect("len") == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            reopened.outbox_len().await.expect("len"),
            0,
            "delivered events leave"
        );
        let _ = stop.send(());
        let _ = served.await;
    })
    .await
}

/// Several nodes deliver from one PostgreSQL outbox; each event is claimed by one of them at
/// a time, so in the normal case (every answer a 200) each is posted exactly once.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn two_postgres_nodes_never_deliver_one_event_twice() {
    crate::support::limit::within(async {
        let mut receiver = Receiver::start(0).await;
        let (first, events) = outbox_with(200).await;
        let second = second_node(&first).await;

        let (config, _) =
            Config::from_toml(&config_for(&receiver.url), "test.toml").expect("config");
        let settings = config.events.clone().expect("[events]");
        let metrics = Arc::new(access_broker::metrics::Metrics::new());
        let (_stop, running) = tokio::sync::watch::channel(false);
        let wrap_up = Duration::from_secs(1);
        let nodes = [
            deliver::spawn(
                first.store.clone(),
                settings.clone(),
                metrics.clone(),
                running.clone(),
                wrap_up,
            ),
            deliver::spawn(second.clone(), settings, metrics.clone(), running, wrap_up),
        ];
        let mut seen = std::collections::HashMap::<String, usize>::new();
        while seen.len() < events.len() {
            let got = receiver.next().await;
            let id = got.json()["id"].as_str().expect("id").to_owned();
            *seen.entry(id).or_default() += 1;
        }
        // A short grace for a duplicate still in flight to arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok(got) = receiver.deliveries.try_recv() {
            let id = got.json()["id"].as_str().expect("id").to_owned();
            *seen.entry(id).or_default() += 1;
        }
        for node in nodes {
            node.abort();
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "delivered more than once: {twice:?}");
        assert!(events.iter().all(|e| seen.contains_key(&e.id)));
    })
    .await
}

/// A webhook for a real reservation's life, end to end.
#[tokio::test]
async fn a_reservation_webhook_follows_request_and_match() {
    crate::support::limit::within(async {
        let mut receiver = Receiver::start(0).await;
        let store = TestStore::require_with_outbox(Backend::Sqlite).await;
        let app = TestApp::spawn_on(store, &config_for(&receiver.url)).await;
        let id = app.session(&[]).await;
        let number = app.request_access(&id, &[]).await.field("_access_number");
        app.match_interaction(&[("_access_number", &number)]).await;
        // Posted concurrently, so in either order (receivers order by `time`, dedupe by `id`).
        let mut got = [receiver.next().await.json(), receiver.next().await.json()];
        got.sort_by_key(|e| e["type"].as_str().map(str::to_owned));
        let (created, matched) = (&got[0], &got[1]);
        assert_eq!(created["type"], "reservation.created");
        assert_eq!(matched["type"], "reservation.matched");
        assert_eq!(matched["session"], id.as_str());
    })
    .await
}

/// A slow answer holds up no other event: while the receiver takes 4 s to answer the first
/// event, a second one that came due meanwhile is posted at once (deliveries went in rounds
/// that waited for their slowest attempt, so the second waited the 4 s).
#[tokio::test]
async fn a_slow_delivery_holds_up_no_other_event() {
    let (url, mut arrived) = paced_receiver(|n| match n {
        0 => Duration::from_secs(4),
        _ => Duration::ZERO,
    })
    .await;
    let store = TestStore::require_with_outbox(Backend::Memory).await;
    let app = TestApp::spawn_on(store, &config_for(&url)).await;
    let first = event(EventKind::Created, app.store.clock.now());
    app.store
        .store
        .record_events(vec![first.clone()])
        .await
        .expect("queued");
    let got = next_within(&mut arrived, 5)
        .await
        .expect("the first is posted");
    assert!(got.contains(first.id.as_str()), "{got}");
    // The first's answer is still 4 s away.
    let second = event(EventKind::Expired, app.store.clock.now());
    app.store
        .store
        .record_events(vec![second.clone()])
        .await
        .expect("queued");
    let got = next_within(&mut arrived, 2)
        .await
        .expect("the second is posted while the first waits for its answer");
    assert!(got.contains(second.id.as_str()), "{got}");
}

/// A receiver that takes only a few posts at once gets no more than it takes: one that answers
/// 503 beyond 4 in flight refused most of the 32 a node sent at once, again and again, and
/// each refused event waited out its backoff (4 s, then 8 s, …; here the store's clock is
/// moved on when nothing comes), ~7 refusals for each delivery. The node now sends fewer at
/// once while the receiver is busy.
#[tokio::test]
async fn a_receiver_that_takes_few_at_once_is_sent_few_at_once() {
    crate::support::limit::within(async {
        const TAKES: usize = 4;
        let (tx, mut arrived) = mpsc::unbounded_channel::<String>();
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (busy, refusals) = (in_flight.clone(), refused.clone());
        let hook = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let (tx, busy, refusals) = (tx.clone(), busy.clone(), refusals.clone());
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    if busy.fetch_add(1, SeqCst) >= TAKES {
                        busy.fetch_sub(1, SeqCst);
                        refusals.fetch_add(1, SeqCst);
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    busy.fetch_sub(1, SeqCst);
                    let _ = tx.send(body);
                    StatusCode::OK
                }
            }),
        );
        let url = serve_hook(hook).await;
        let (store, events) = outbox_on(Backend::Memory, 200).await;
        let (_stop, node) = deliver_to(&store, &url);
        let mut delivered = std::collections::HashSet::new();
        let mut waits = 0;
        while delivered.len() < events.len() {
            let Some(body) = next_within(&mut arrived, 1).await else {
                // The refused ones wait for their retry: the store's clock brings it now.
                waits += 1;
                assert!(waits < 60, "{} of 200 delivered", delivered.len());
                store.advance(Duration::from_secs(300));
                continue;
            };
            delivered.insert(serde_json::from_str::<Value>(&body).expect("JSON")["id"].clone());
        }
        node.abort();
        // The first burst of 32 meets 28 refusals, the halvings after it a dozen more, and
        // the limit's growth past 4 one now and then.
        let refused = refused.load(std::sync::atomic::Ordering::SeqCst);
        assert!(refused < 120, "{refused} refusals to deliver 200 events");
    })
    .await
}

/// A retry goes before a backlog of first attempts: the first post is answered 500, the
/// others after 100 ms, with 600 events queued. Events were offered by due time alone, and the
/// retry (due 4 s after its failure) came after every event queued before then: here after
/// the whole backlog, 599 posts later; live, 4–78 s after the failure instead of within 5 s.
/// The store's clock moves 1 s a post until the retry comes.
async fn a_retry_goes_before_the_backlog(backend: Backend) {
    crate::support::limit::within(async {
        const QUEUED: usize = 600;
        let (tx, mut arrived) = mpsc::unbounded_channel::<String>();
        let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hook = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let (tx, posts) = (tx.clone(), posts.clone());
                async move {
                    let n = posts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = tx.send(body);
                    if n == 0 {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    StatusCode::OK
                }
            }),
        );
        let url = serve_hook(hook).await;
        let (store, _) = outbox_on(backend, QUEUED).await;
        let (_stop, node) = deliver_to(&store, &url);
        let id_of = |body: &str| serde_json::from_str::<Value>(body).expect("JSON")["id"].clone();
        let failed = id_of(&next_within(&mut arrived, 10).await.expect("a first post"));
        let mut before_retry = 0;
        loop {
            let body = next_within(&mut arrived, 10)
                .await
                .unwrap_or_else(|| panic!("no post for 10 s, {before_retry} since the 500"));
            if id_of(&body) == failed {
                break;
            }
            before_retry += 1;
            store.advance(Duration::from_secs(1));
        }
        node.abort();
        // Its backoff (4 posts here), then at most one read of the outbox's worth (32) ahead.
        assert!(
            before_retry < 100,
            "the retry came after {before_retry} of the {QUEUED} queued events"
        );
    })
    .await
}

#[tokio::test]
async fn a_retry_goes_before_the_backlog_in_memory() {
    a_retry_goes_before_the_backlog(Backend::Memory).await;
}

#[tokio::test]
async fn a_retry_goes_before_the_backlog_on_sqlite() {
    a_retry_goes_before_the_backlog(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_retry_goes_before_the_backlog_on_postgres() {
    a_retry_goes_before_the_backlog(Backend::Postgres).await;
}

/// A webhook endpoint on 127.0.0.1:0 that passes each body on as it arrives and answers 200
/// after `delay(n)`, `n` counting the posts from 0.
async fn paced_receiver(
    delay: impl Fn(usize) -> Duration + Clone + Send + Sync + 'static,
) -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, arrived) = mpsc::unbounded_channel::<String>();
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let (tx, posts, delay) = (tx.clone(), posts.clone(), delay.clone());
            async move {
                let _ = tx.send(body);
                let n = posts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(delay(n)).await;
                StatusCode::OK
            }
        }),
    );
    (serve_hook(hook).await, arrived)
}

/// A PostgreSQL store keeping an outbox, with `n` `reservation.created` events queued in it.
async fn outbox_with(n: usize) -> (TestStore, Vec<Event>) {
    outbox_on(Backend::Postgres, n).await
}

/// A `backend` store keeping an outbox, with `n` `reservation.created` events queued in it.
async fn outbox_on(backend: Backend, n: usize) -> (TestStore, Vec<Event>) {
    let store = TestStore::require_with_outbox(backend).await;
    let events: Vec<Event> = (0..n)
        .map(|_| event(EventKind::Created, store.clock.now()))
        .collect();
    store
        .store
        .record_events(events.clone())
        .await
        .expect("queued");
    (store, events)
}

/// Another node's store on `first`'s PostgreSQL database, keeping the outbox too.
async fn second_node(first: &TestStore) -> store::DynStore {
    let options = StoreOptions {
        keep_outbox: true,
        ..crate::support::options(&first.clock)
    };
    store::open(&first.url, &options)
        .await
        .expect("second node")
}

/// A node's delivery of `store`'s outbox to `url`, running until the task is aborted (or the
/// sender, kept by the caller, says stop).
fn deliver_to(
    store: &TestStore,
    url: &str,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let metrics = Arc::new(access_broker::metrics::Metrics::new());
    let (stop, running) = tokio::sync::watch::channel(false);
    let node = deliver::spawn(
        store.store.clone(),
        events_to(url),
        metrics,
        running,
        Duration::from_secs(1),
    );
    (stop, node)
}

/// The `[events]` settings posting to `url`.
fn events_to(url: &str) -> access_broker::config::EventsConfig {
    let (config, _) = Config::from_toml(&config_for(url), "test.toml").expect("config");
    config.events.expect("[events]")
}

/// Serves a receiver's routes on 127.0.0.1:0; the URL of its `/hook`.
async fn serve_hook(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn next_within(arrived: &mut mpsc::UnboundedReceiver<String>, secs: u64) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(secs), arrived.recv())
        .await
        .ok()
        .flatten()
}

/// Every event read from a PostgreSQL outbox is sent at once, however the answers straggle.
/// Each read leases the events it returns to the node; the reader asked for more than it had
/// places for while some were in flight and dropped the rest, which then waited out their
/// one-minute lease (the two-node test above timed out on it under load).
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn events_read_from_postgres_are_all_sent_while_answers_straggle() {
    crate::support::limit::within(async {
        // 0, 300, 600 or 900 ms: places free up one by one, not all at once.
        let (url, mut arrived) =
            paced_receiver(|n| Duration::from_millis(300 * (n % 4) as u64)).await;
        let (store, events) = outbox_with(100).await;
        let (_stop, node) = deliver_to(&store, &url);
        let mut seen = std::collections::HashSet::new();
        while seen.len() < events.len() {
            let Some(body) = next_within(&mut arrived, 20).await else {
                panic!(
                    "{} of {} events sent, then none for 20 s",
                    seen.len(),
                    events.len()
                );
            };
            let id = serde_json::from_str::<Value>(&body).expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned();
            seen.insert(id);
        }
        node.abort();
    })
    .await
}

/// A node that stops gives back the events it had taken and not delivered: on PostgreSQL
/// each was leased to it for a minute, so a clean stop (SIGTERM) held them back from every
/// other node as long as a crash does. An attempt that ends within the wrap-up counts.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_stopping_node_gives_back_the_events_it_had_not_delivered() {
    crate::support::limit::within(async {
        // The first post is answered at once, the next four only after 60 s; then at once.
        let (url, mut arrived) = paced_receiver(|n| match n {
            1..=4 => Duration::from_secs(60),
            _ => Duration::ZERO,
        })
        .await;
        let (first, events) = outbox_with(5).await;
        let settings = events_to(&url);
        let metrics = Arc::new(access_broker::metrics::Metrics::new());
        let id_of = |body: &str| {
            let json = serde_json::from_str::<Value>(body).expect("JSON");
            json["id"].as_str().expect("id").to_owned()
        };
        let (stop, running) = tokio::sync::watch::channel(false);
        let wrap_up = Duration::from_secs(1);
        let node = deliver::spawn(
            first.store.clone(),
            settings.clone(),
            metrics.clone(),
            running,
            wrap_up,
        );
        let mut posted = Vec::new();
        while posted.len() < events.len() {
            let body = next_within(&mut arrived, 20)
                .await
                .expect("every event posted");
            posted.push(id_of(&body));
        }
        stop.send_replace(true);
        tokio::time::timeout(wrap_up + Duration::from_secs(5), node)
            .await
            .expect("the node wraps up within its time")
            .expect("ends cleanly");
        assert_eq!(
            first.store.outbox_len().await.expect("len"),
            4,
            "the answered one left the outbox, the four unanswered stay"
        );

        let second = second_node(&first).await;
        let (_stop, running) = tokio::sync::watch::channel(false);
        let other = deliver::spawn(second, settings, metrics, running, wrap_up);
        let mut again = std::collections::HashSet::new();
        while again.len() < 4 {
            let Some(body) = next_within(&mut arrived, 5).await else {
                panic!(
                    "another node sent {} of the 4 given back within 5 s",
                    again.len()
                );
            };
            again.insert(id_of(&body));
        }
        other.abort();
        let unanswered: std::collections::HashSet<String> = posted[1..].iter().cloned().collect();
        assert_eq!(
            again, unanswered,
            "the four unanswered, not the answered one"
        );
    })
    .await
}

/// The same through the binary and SIGTERM: the node exits 0 within `shutdown_timeout_ms`
/// and leaves no lease on the events it had not delivered (the app waited only the
/// attempts' wrap-up for the delivery task and cut off the store's update that follows).
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn sigterm_gives_back_the_events_in_flight() {
    crate::support::limit::within(async {
        let (url, mut arrived) = paced_receiver(|_| Duration::from_secs(60)).await;
        let schema = crate::support::pg::Schema::require().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.toml");
        let toml = config_for(&url).replace("[server]", "[server]\nshutdown_timeout_ms = 1000");
        assert!(toml.contains("shutdown_timeout_ms = 1000"), "{toml}");
        std::fs::write(&config, toml).expect("config");
        let mut node = crate::support::process::Node::start(&config, &schema.url_string(), &[]);
        let http = reqwest::Client::new();
        let post = |path: &str, form: &[(&str, &str)]| {
            http.post(format!("{}{path}", node.url)).form(form).send()
        };
        let session = post("/genesys/1/service/callback", &[])
            .await
            .expect("session");
        let session: Value = session.json().await.expect("JSON");
        let id = session["_id"].as_str().expect("_id").to_owned();
        let access = post("/genesys/1/service/request-access", &[("_id", id.as_str())]).await;
        assert_eq!(access.expect("request-access").status(), 200);
        next_within(&mut arrived, 20)
            .await
            .expect("the created event posted");
        let started = std::time::Instant::now();
        let code = tokio::task::spawn_blocking(move || node.terminate())
            .await
            .expect("join");
        assert_eq!(code, Some(0));
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "{:?}",
            started.elapsed()
        );
        let db = crate::support::pg::connect(&schema.url_string()).await;
        let row = db
            .query_one(
                "SELECT count(*), count(claimed_until) FROM events_outbox",
                &[],
            )
            .await
            .expect("outbox");
        let (queued, leased): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            (queued, leased),
            (1, 0),
            "undelivered, and free for any node"
        );
    })
    .await
}
