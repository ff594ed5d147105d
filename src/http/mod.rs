//! The HTTP surface: one router merging each area's routes, with the layers every request
//! passes (body limit, XML negotiation, tracing with a request id, panic safety).

pub mod admin;
pub mod admin_views;
pub mod auth;
pub mod browser;
pub mod client;
pub mod error;
pub mod events;
pub mod fallback;
pub mod idempotency;
pub mod limits;
pub mod ops;
pub mod params;
pub mod reply;
pub mod service;
pub mod storage;
pub mod ui;

use std::sync::Arc;

use std::time::Instant;

use axum::RequestExt as _;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderName, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router, middleware};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::broker::Broker;
use crate::config::Config;

use self::error::ApiError;
use self::params::BodyLimit;

/// What every handler gets: cheap to clone.
#[derive(Clone)]
pub struct AppState {
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

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let limit = BodyLimit(state.config.server.max_body_bytes);
    let node = state.config.server.node_id.to_string();
    let client_header = state.config.limits.client_ip_header.clone();
    Router::new()
        .merge(service::router())
        // Auth as a route layer, like the admin credentials: checked after routing (so an
        // unknown path still answers 404) and before any extractor reads the body.
        .merge(storage::router().route_layer(middleware::from_fn_with_state(
            state.clone(),
            storage::require_storage,
        )))
        .merge(ops::router())
        .merge(
            admin::router()
                .merge(events::router())
                .merge(ui::router())
                .route_layer(middleware::from_fn_with_state(state.clone(), admin::require_admin)),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(browser::refuse_cross_site))
        .layer(middleware::from_fn_with_state(state.clone(), limits::rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), fallback::deadline))
        .layer(middleware::from_fn(fallback::json_errors))
        .layer(middleware::from_fn(reply::negotiate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
        .layer(Extension(limit))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(move |req: &Request| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            let client = client::ClientAddr::from_request(req.headers(), req.extensions(), client_header.as_ref());
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id,
                node = %node, client = %client)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Counts every request by service and status, and times it. Runs after routing (a
/// `Router::layer`), so axum's `MatchedPath` names the route template that answered.
async fn observe(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let name = match req.extract_parts::<RawPathParams>().await {
        Ok(params) => params
            .iter()
            .find(|(key, _)| *key == "name")
            .map(|(_, value)| value.to_owned()),
        Err(_) => None,
    };
    let service = service_label(
        &state,
        req.method(),
        matched.as_ref().map(MatchedPath::as_str),
        name.as_deref(),
    );
    let started = Instant::now();
    let response = next.run(req).await;
    state.broker.metrics().observe_request(
        service,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A bounded label from the route template, never from the raw path (which carries ids):
/// a configured service's name for its POSTs (the config bounds them), else the API area.
fn service_label<'a>(
    state: &'a AppState,
    method: &Method,
    template: Option<&str>,
    name: Option<&str>,
) -> &'a str {
    let Some(template) = template else {
        return "other"; // the fallback: no route matched
    };
    if template == "/genesys/1/service/{name}" {
        if *method != Method::POST {
            return "session";
        }
        return match name.and_then(|n| state.broker.service(n)) {
            Some((configured, _)) => configured.as_str(),
            None => "unknown",
        };
    }
    let mut parts = template.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("genesys"), Some("1"), Some("storage")) => "storage",
        (Some("genesys"), Some("1"), Some("admin")) => "admin",
        (Some("health"), ..) => "health",
        (Some("ready"), ..) => "ready",
        (Some("metrics"), ..) => "metrics",
        (Some("ui"), ..) => "ui",
        _ => "other",
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
}
