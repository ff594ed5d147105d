//! The edge: what every request passes through, in one middleware, in this order:
//!
//! 1. its request id (the client's `x-request-id`, else a new one), the context every log
//!    line of the request carries (`telemetry::RequestContext`, which the client's address
//!    extractor reads too);
//! 2. the browser check (`browser.rs`: a cross-site write answers 403), then the client's
//!    token bucket (`limits.rs`: 429);
//! 3. the handler, cut off at `request_timeout_ms` (408) while the request is still being
//!    read (once it is read whole the store's own timeout bounds the answer, so that no
//!    error answer hides a write that took effect), and kept from taking the node down by a
//!    panic (500);
//! 4. the router's own refusals rewritten in the contract's JSON (`fallback.rs`), the answer
//!    re-rendered as XML when the client asked for it (`reply.rs`);
//! 5. the request counted and timed by service and status (`metrics.rs`), and the request id
//!    returned in `x-request-id`.
//!
//! Why one function rather than a stack of tower layers: each layer the router wraps clones
//! its inner service (a boxed clone) and its state on every request, and a tracing span and
//! a UUID from the kernel's random source came on top: together they cost more than the
//! store's work on the request/match workload (profiles in `docs/performance.md`). One
//! function reads in the order things happen, and costs one clone.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use futures::FutureExt as _;

use super::AppState;
use super::client::ClientAddr;
use super::error::ApiError;
use super::{auth, browser, fallback, limits, reply};
use crate::telemetry::{REQUEST, RequestContext};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The edge as a layer on every route (`Router::layer`, so it runs after routing and sees
/// the route template).
///
/// Why a layer of our own rather than `middleware::from_fn`: that one clones the route and
/// boxes it again for its `Next` on every request, and runs the state and route-template
/// extractors; this one clones the route once and reads the template from the extensions.
#[derive(Clone)]
pub struct Layer(pub AppState);

impl tower::Layer<Route> for Layer {
    type Service = Edge;

    fn layer(&self, route: Route) -> Edge {
        Edge {
            state: self.0.clone(),
            route,
        }
    }
}

/// A route behind the edge.
#[derive(Clone)]
pub struct Edge {
    state: AppState,
    route: Route,
}

impl tower::Service<Request> for Edge {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(())) // a route is always ready
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (state, mut route) = (self.state.clone(), self.route.clone());
        let handler = move |request| async move {
            match route.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        Box::pin(async move { Ok(edge(state, request, None, handler).await) })
    }
}

/// What the edge does, in the module doc's order, around `handler`. `unrouted` is the route
/// template of a request the router did not see (`front.rs`); a routed one carries its own.
pub async fn edge<F: Future<Output = Response>>(
    state: AppState,
    request: Request,
    unrouted: Option<&'static str>,
    handler: impl FnOnce(Request) -> F,
) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let template = request.extensions().get::<MatchedPath>();
    let service = label(
        &state,
        &request,
        template.map(MatchedPath::as_str).or(unrouted),
    );
    // Handlers that need it take it from the context below rather than reading the headers
    // again (`ClientAddr`'s extractor).
    let client = ClientAddr::from_request(
        request.headers(),
        request.extensions(),
        state.config.limits.client_ip_header.as_ref(),
    );
    // Under `/genesys/1/` with `[auth]`, a request that carries none of the configured
    // credentials answers 401 before anything else: an unknown path, a wrong method or an
    // undecodable path would otherwise say which routes exist (404, 405 with `Allow`, 400).
    // Requests with credentials go on to the route's own check.
    let guarded = state.config.auth.is_some() && request.uri().path().starts_with("/genesys/1/");
    let xml = reply::wants_xml(request.headers())
        .then(|| reply::xmlns(&request, state.config.server.tls.is_some()));
    // A request without a body is read whole once its head is; one with a body, when its
    // parameters are decoded (`Params::read`).
    let bodiless = axum::body::HttpBody::size_hint(request.body()).exact() == Some(0);
    let context = RequestContext {
        id,
        method: request.method().clone(),
        uri: request.uri().clone(),
        client,
        xml: xml.is_some(),
        read: std::cell::Cell::new(bodiless),
    };

    // Built in place, each inside the one that awaits it: a future kept in a local and
    // moved into another took room in both, and the request's future is copied whenever it
    // moves (into its box, …).
    let mut scoped = std::pin::pin!(REQUEST.scope(context, async {
        let response = answer(&state, request, client, guarded, handler).await;
        if !fallback::needs_repair(&response) {
            return response;
        }
        // Rare: the method and path for its message are read back from the context rather
        // than cloned for every request; its future boxed, so as not to size every call's.
        let (method, uri) = REQUEST.with(|r| (r.method.clone(), r.uri.clone()));
        Box::pin(fallback::repair(response, &method, uri.path())).await
    }));
    // The context is taken back when the answer is ready: its request id goes in the answer's
    // header without a copy.
    let response = scoped.as_mut().await;
    let (id, read) = match scoped.as_mut().take_value() {
        Some(context) => (Some(context.id), context.read.get()),
        None => (None, true),
    };
    let mut response = match xml {
        Some(xmlns) => reply::as_xml(response, &xmlns),
        None => response,
    };
    state.broker.metrics().observe_request(
        service,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    if let Some(id) = id {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    // Answered before its body was read (a 429, a 401, a 413): the connection cannot carry
    // another request, as the rest of this one may still come. Say so, so that a client
    // opens a new one instead of writing into a closed socket.
    if !read {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The request's checks (a browser's cross-site call, the client's rate, credentials), then
/// `handler` within the request timeout.
async fn answer<F: Future<Output = Response>>(
    state: &AppState,
    request: Request,
    client: ClientAddr,
    guarded: bool,
    handler: impl FnOnce(Request) -> F,
) -> Response {
    if let Some(refusal) = browser::refusal(&request) {
        return refusal.into_response();
    }
    if let Err(refusal) = limits::take_token(state, &request, client) {
        return refusal.into_response();
    }
    if guarded && !auth::any_known(&state.config, request.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    let limit = state.config.server.request_timeout;
    let handler = AssertUnwindSafe(async { handler(request).await }).catch_unwind();
    let mut handler = std::pin::pin!(handler);
    let done = match tokio::time::timeout(limit, handler.as_mut()).await {
        Ok(done) => done,
        // Read whole, the request is in the store's hands: its write may be landing, and
        // a 408 would say it changed nothing. The store's own bound (`store_timeout_ms`,
        // then 503 StoreUnavailable) ends the wait.
        Err(_) if RequestContext::was_read() => handler.await,
        Err(_) => return ApiError::RequestTimeout(limit).into_response(),
    };
    match done {
        Ok(response) => response,
        Err(_) => ApiError::Internal("handler panicked".into()).into_response(),
    }
}

/// The client's request id when it sent a usable one, else a new one: a UUID (v4 layout)
/// from the thread's fast generator, not the kernel's (one system call per request showed
/// in the profile; a request id needs to be unique, not secret). Usable: at most 200
/// characters of letters, digits and `-_.:/+=@~`. Text log lines write it unquoted, so one
/// with a space or a quote forged fields there (`… user=root action="delete_group"`, even in
/// the admin audit trail); such an id is replaced.
fn request_id(request: &Request) -> HeaderValue {
    if let Some(id) = request.headers().get(REQUEST_ID)
        && !id.is_empty()
        && id.len() <= 200
        && id
            .as_bytes()
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:/+=@~".contains(&b))
    {
        return id.clone();
    }
    let uuid = crate::domain::uuid_v4();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A bounded metrics label from the route template, never from the raw path (which carries
/// ids): a configured service's name for its POSTs (the config bounds them), else the API area.
fn label<'a>(state: &'a AppState, request: &Request, template: Option<&str>) -> &'a str {
    let Some(template) = template else {
        return "other"; // the fallback: no route matched
    };
    if template == SERVICE_ROUTE {
        if request.method() != Method::POST {
            return "session";
        }
        // The route matched, so the path is its prefix and one segment: the name,
        // percent-decoded as the router's own path extractor decodes it (read here from the
        // path: extracting the router's parameters cost more than the rest of this function).
        let segment = request
            .uri()
            .path()
            .strip_prefix(SERVICE_PREFIX)
            .unwrap_or_default();
        // A name without escapes (nearly all) is the segment itself, without the decoder's
        // walk through it.
        let name = match segment.contains('%') {
            false => Ok(std::borrow::Cow::Borrowed(segment)),
            true => percent_encoding::percent_decode_str(segment).decode_utf8(),
        };
        return match name.ok().and_then(|name| state.broker.service(&name)) {
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

/// The service route (`service.rs`) and the prefix before its one parameter.
const SERVICE_ROUTE: &str = super::service::ROUTE;
const SERVICE_PREFIX: &str = super::service::PREFIX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_kept_or_made_unique() {
        let mut sent = Request::new(axum::body::Body::empty());
        sent.headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static("abc-1"));
        assert_eq!(request_id(&sent), "abc-1");
        let bare = Request::new(axum::body::Body::empty());
        let (a, b) = (request_id(&bare), request_id(&bare));
        assert_ne!(a, b);
        let a = a.to_str().expect("ascii");
        assert_eq!(a.len(), 36);
        assert!(uuid::Uuid::parse_str(a).is_ok_and(|u| u.get_version_num() == 4));
    }
}
