//! What the server calls for every request: the router, except for the route the
//! request/match workload sends nearly every request to, `POST /genesys/1/service/{name}`,
//! which goes to its handler directly, through the same edge (`edge.rs`).
//!
//! Why: on that route axum's router cost ~5k instructions a request, 12 % of the request/match
//! path (matching, the route template and URL parameters as request extensions, clones of the
//! boxed route chain and a boxed future at each of its levels, the extractors; figures in
//! `docs/performance.md`). Only a request the router would give the same handler with the
//! same name is taken: `POST`, the prefix and one non-empty segment without escapes (an
//! escaped name goes through the router, which decodes it). Everything else goes to the
//! router, unchanged but for its 401s, which lose the `Allow` the router adds
//! ([`unrevealing`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::FutureExt as _;
use futures::future::Either;
use tower::Service;

use super::{AppState, edge, service};

/// The router with the service route's fast way in.
#[derive(Clone)]
pub struct Front {
    state: AppState,
    router: Router,
}

impl Front {
    pub fn new(state: AppState) -> Self {
        Self {
            router: super::router(state.clone()),
            state,
        }
    }
}

type Unrouted = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;
type Answered = Result<Response, Infallible>;
type Routed = futures::future::Map<<Router as Service<Request>>::Future, fn(Answered) -> Answered>;

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Unrouted, Routed>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(())) // the router is always ready
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() != Method::POST || !is_service_name(request.uri().path()) {
            return Either::Right(self.router.call(request).map(unrevealing as fn(_) -> _));
        }
        let state = self.state.clone();
        Either::Left(Box::pin(async move {
            // The handler's future boxed apart, as the router boxes it: inline, it made the
            // edge's future large, and a large future costs its size in bytes copied each
            // time it is moved (into its box, into the deadline, …).
            let handler = |request| Box::pin(service::create_unrouted(state.clone(), request));
            let mut response =
                edge::edge(state.clone(), request, Some(service::ROUTE), handler).await;
            set_content_length(&mut response);
            Ok(response)
        }))
    }
}

/// A 401 says nothing of the route it refused: the router adds `Allow` (the route's methods)
/// to a wrong method's answer after the edge has refused it for its credentials.
fn unrevealing(answered: Answered) -> Answered {
    let Ok(mut response) = answered;
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().remove(header::ALLOW);
    }
    Ok(response)
}

/// Whether `path` is the service route's prefix and one segment the router's `Path` would
/// pass on unchanged (no escapes).
fn is_service_name(path: &str) -> bool {
    path.strip_prefix(service::PREFIX)
        .is_some_and(|name| !name.is_empty() && !name.contains(['/', '%']))
}

/// What the router does last to every answer it routed: a body of known size gets its
/// `Content-Length` (unless the handler set one).
fn set_content_length(response: &mut Response) {
    if response.headers().contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(size) = response.body().size_hint().exact() {
        let length = HeaderValue::from(size);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_service_names_skip_the_router() {
        assert!(is_service_name("/genesys/1/service/request-access"));
        assert!(is_service_name("/genesys/1/service/a.b_c~d"));
        for path in [
            "/genesys/1/service/",
            "/genesys/1/service/a/b",
            "/genesys/1/service/a/",
            "/genesys/1/service/a%20b",
            "/genesys/1/storage/10",
            "/genesys/1/service",
        ] {
            assert!(!is_service_name(path), "{path}");
        }
    }
}
