//! `GET /genesys/1/admin/events`: the store's committed lifecycle events, live, as
//! Server-Sent Events (event name = the event's `type`, data = its JSON, `id` = its id).
//! Guarded like the rest of the admin API; the UI's charts read it with `EventSource`.
//!
//! The stream is a view, not a queue: a client that falls far behind is told how many events
//! it missed (a `lagged` event) and goes on from the newest; the webhook outbox is the
//! at-least-once path. Keep-alive comments every 15 s keep proxies from closing an idle stream.
//! Streams end when the node starts shutting down (graceful shutdown waits for open responses;
//! `EventSource` reconnects by itself to whichever node answers next).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures::{Stream, StreamExt as _};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/genesys/1/admin/events", get(stream))
}

async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.bus.subscribe();
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        let item = match receiver.recv().await {
            Ok(event) => SseEvent::default()
                .event(event.kind.as_str())
                .id(event.id.clone())
                .data(event.to_json().to_string()),
            Err(RecvError::Lagged(missed)) => SseEvent::default()
                .event("lagged")
                .data(serde_json::json!({ "missed": missed }).to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(item), receiver))
    });
    let mut stopping = state.stopping.clone();
    let events = events.take_until(async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
