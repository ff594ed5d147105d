//! The HTTP surface: one router merging each area's routes, with the layers every request
//! passes (body limit, XML negotiation, tracing with a request id, panic safety).

pub mod admin;
pub mod admin_views;
pub mod auth;
pub mod error;
pub mod ops;
pub mod params;
pub mod reply;
pub mod service;
pub mod storage;
pub mod ui;

use std::sync::Arc;

use std::time::Instant;

use axum::extract::{Request, State};
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
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let limit = BodyLimit(state.config.server.max_body_bytes);
    let node = state.config.server.node_id.to_string();
    Router::new()
        .merge(service::router())
        .merge(storage::router())
        .merge(ops::router())
        .merge(
            admin::router()
                .merge(ui::router())
                .route_layer(middleware::from_fn_with_state(state.clone(), admin::require_admin)),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(reply::negotiate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
        .layer(Extension(limit))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(move |req: &Request| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id,
                node = %node)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Counts every request by service and status, and times it.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let service = service_label(&state, req.method(), req.uri().path());
    let started = Instant::now();
    let response = next.run(req).await;
    state.broker.metrics().observe_request(
        &service,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A bounded label: the configured service's name, or the API area; never a raw id.
fn service_label(state: &AppState, method: &Method, path: &str) -> String {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("genesys"), Some("1"), Some("service"), Some(name)) if *method == Method::POST => {
            if state.broker.service(name).is_some() {
                name.to_owned()
            } else {
                "unknown".to_owned()
            }
        }
        (Some("genesys"), Some("1"), Some("service"), _) => "session".to_owned(),
        (Some("genesys"), Some("1"), Some(area @ ("storage" | "admin")), _) => area.to_owned(),
        (Some(p @ ("health" | "ready" | "metrics" | "ui")), ..) => p.to_owned(),
        _ => "other".to_owned(),
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
}
