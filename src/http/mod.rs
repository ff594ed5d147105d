//! The HTTP surface: one router merging each area's routes, the edge every request passes
//! (`edge.rs`: request id and span, browser check, rate limit, deadline, panic safety, JSON
//! errors, XML, metrics), and in front of the router (`front.rs`) the way around it for the
//! busiest route.

pub mod admin;
pub mod admin_views;
pub mod auth;
pub mod browser;
pub mod charset;
pub mod client;
pub mod edge;
pub mod error;
pub mod events;
pub mod fallback;
pub mod front;
pub mod idempotency;
pub mod json_body;
pub mod limits;
pub mod media;
pub mod ops;
pub mod params;
pub mod reply;
pub mod service;
pub mod storage;
pub mod ui;

use std::sync::Arc;

use axum::extract::Request;
use axum::{Router, middleware};

use crate::broker::Broker;
use crate::config::Config;

use self::error::ApiError;

/// What every handler gets: one shared value, so a request clones one pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The node's shared parts, reached through `AppState` (`state.broker`, `state.config`, …).
pub struct Shared {
    pub broker: Broker,
    pub config: Arc<Config>,
    /// `[limits]`: token buckets, reservations held per client, the store's usage.
    pub limits: Arc<limits::Limits>,
    /// Committed lifecycle events, live (the store publishes; `events.rs` streams them).
    pub bus: crate::events::Bus,
    /// Turns true when the node starts shutting down: open event streams end then, since
    /// graceful shutdown waits for every response to finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    // The admin credentials' check, for the admin API, its event stream and the page.
    let admin_auth = || middleware::from_fn_with_state(state.clone(), admin::require_admin);
    Router::new()
        .merge(service::router())
        // Auth as a route layer, like the admin credentials: checked after routing (so an
        // unknown path still answers 404) and before any extractor reads the body.
        .merge(
            storage::router().route_layer(middleware::from_fn_with_state(
                state.clone(),
                storage::require_storage,
            )),
        )
        .merge(ops::router())
        .merge(
            admin::router()
                .merge(events::router())
                .route_layer(admin_auth()),
        )
        // The page's security headers on every answer under /ui, a 401 included.
        .merge(
            ui::router()
                .route_layer(admin_auth())
                .layer(middleware::from_fn(browser::page_headers)),
        )
        .fallback(not_found)
        // One layer for everything a request passes (`edge.rs`): a router layer, so it runs
        // after routing and sees the route template.
        .layer(edge::Layer(state.clone()))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
}
