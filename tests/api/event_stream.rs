//! The live event stream (`GET /genesys/1/admin/events`, Server-Sent Events) read by a real
//! client: committed events arrive as named SSE events, the admin credentials guard it, and it
//! ends when the node stops.

use std::time::Duration;

use access_broker::clock::Clock;
use access_broker::events::EventKind;
use serde_json::Value;

use crate::events::event;
use crate::helpers::{DEMO, TestApp};
use crate::on_every_backend;
use crate::support::Backend;

/// Opens the node's live event stream (as the admin: the test config has no credentials).
async fn open_stream(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.path("/genesys/1/admin/events"))
        .send()
        .await
        .expect("stream opens")
}

/// Reads Server-Sent Events off a streaming response until `count` events arrived.
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .expect("stream readable")
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .map(str::to_owned)
            };
            if let (Some(name), Some(data)) = (field("event:"), field("data:")) {
                events.push((name, serde_json::from_str(&data).expect("data is JSON")));
            }
        }
    }
    events
}

on_every_backend!(
    the_stream_shows_committed_events,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let mut stream = open_stream(&app).await;
        assert_eq!(stream.status(), 200);
        let content_type = stream.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let sent = event(EventKind::Locked, app.store.clock.now());
        app.store
            .store
            .record_events(vec![sent.clone()])
            .await
            .expect("recorded");
        let got = read_events(&mut stream, 1).await;
        assert_eq!(got[0].0, "reservation.locked");
        assert_eq!(got[0].1["id"], sent.id.as_str());
        assert_eq!(got[0].1["number"], "6504660000");
    }
);

// An expiry nobody calls about reaches a live stream within the purge's 5 s, with or
// without `[events]` (without, the purge ran every 30 s and told it up to 30 s late).
on_every_backend!(
    an_expiry_reaches_the_stream_without_events_configured,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let mut stream = open_stream(&app).await;
        let id = app.session(&[]).await;
        let booked = app
            .request_access(&id, &[("_booking_expiration_timeout", "5")])
            .await;
        assert_eq!(booked.status, 200, "{}", booked.text);
        assert_eq!(
            read_events(&mut stream, 1).await[0].0,
            "reservation.created"
        );
        app.store.clock.advance(Duration::from_secs(6));
        let got = read_events(&mut stream, 1).await;
        assert_eq!(got[0].0, "reservation.expired");
        assert_eq!(got[0].1["session"], id.as_str());
    }
);

/// request-access then match-interaction, seen on the stream: the stores emit them.
async fn a_request_and_a_match_stream_created_and_matched(backend: Backend) {
    {
        let app = TestApp::spawn(backend).await;
        let mut stream = open_stream(&app).await;
        let id = app.session(&[]).await;
        let number = app.request_access(&id, &[]).await.field("_access_number");
        let matched = app.match_interaction(&[("_access_number", &number)]).await;
        assert_eq!(matched.field("_id"), id);
        let got = read_events(&mut stream, 2).await;
        assert_eq!(got[0].0, "reservation.created");
        assert_eq!(got[1].0, "reservation.matched");
        for (_, data) in &got {
            assert_eq!(data["number"], number.as_str());
            assert_eq!(data["session"], id.as_str());
            assert_eq!(data["group"], "DNIS");
        }
    }
}

#[tokio::test]
async fn created_and_matched_stream_on_memory() {
    crate::support::limit::within(a_request_and_a_match_stream_created_and_matched(
        Backend::Memory,
    ))
    .await
}

#[tokio::test]
async fn created_and_matched_stream_on_sqlite() {
    crate::support::limit::within(a_request_and_a_match_stream_created_and_matched(
        Backend::Sqlite,
    ))
    .await
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn created_and_matched_stream_on_postgres() {
    crate::support::limit::within(a_request_and_a_match_stream_created_and_matched(
        Backend::Postgres,
    ))
    .await
}

/// The stream is part of the admin API: the same credentials guard it.
#[tokio::test]
async fn the_stream_needs_the_admin_credentials() {
    crate::support::limit::within(async {
        let config = format!("{DEMO}\n[auth.admin]\nusername = \"ops\"\npassword = \"pw\"\n");
        let app = TestApp::spawn_with(Backend::Memory, &config).await;
        let path = app.path("/genesys/1/admin/events");
        let refused = app.client.get(&path).send().await.expect("sent");
        assert_eq!(refused.status(), 401);
        let allowed = app
            .client
            .get(&path)
            .basic_auth("ops", Some("pw"))
            .send()
            .await
            .expect("sent");
        assert_eq!(allowed.status(), 200);
    })
    .await
}

/// An open stream does not hold a stopping node: it ends when shutdown starts.
#[tokio::test]
async fn the_stream_ends_when_the_node_stops() {
    crate::support::limit::within(async {
        let app = TestApp::spawn(Backend::Memory).await;
        let mut stream = open_stream(&app).await;
        assert_eq!(stream.status(), 200);
        drop(app); // starts the graceful shutdown
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await;
        assert!(
            end.is_ok(),
            "the stream was still open 5 s after shutdown began"
        );
    })
    .await
}
