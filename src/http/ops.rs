//! `/health` (the process answers) and `/ready` (the store answers), without auth, and
//! `/metrics` (Prometheus text), guarded by `[auth.metrics]` when set.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;
use super::reply::Reply;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The Prometheus text format (the contract's), or OpenMetrics for a scraper whose `Accept`
/// asks for it (Prometheus itself does). Pool gauges are refreshed from the store at each
/// scrape. A store that cannot answer does not take the metrics with it (a node whose store
/// is down must not look down itself): `access_broker_store_up` says 0, the rest is served.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    super::auth::require(&headers, state.config.metrics_auth.as_ref())?;
    let store_up = state.broker.admin_groups().await.is_ok();
    let metrics = state.broker.metrics();
    metrics.set_store_up(store_up);
    metrics.set_store_rebuilds(state.broker.store_rebuilds());
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = match openmetrics {
        true => (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        false => (
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.encode_prometheus(),
        ),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

async fn health() -> Reply {
    Reply::new().field("status", "alive")
}

async fn ready(State(state): State<AppState>) -> Result<Reply, ApiError> {
    let ready = state.broker.ready().await?;
    Ok(Reply::new()
        .field("status", "ready")
        .field("store", ready.store)
        .with_status(StatusCode::OK))
}
