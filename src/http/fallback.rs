//! The router's own answers in the contract's shape: an unknown path, a wrong method, a path
//! or query that does not decode, a body an extractor refused. axum answers those itself,
//! with plain text or an empty body; this middleware turns each into the `ApiError` of its
//! status, so a client parses every error the same way, whatever produced it.
//!
//! Why a middleware rather than custom rejections everywhere: it covers every extractor and
//! the method router at once, including ones added later, and it keeps `http::error` the
//! only place a body is written (a response that `ApiError` rendered carries its marker and
//! passes untouched).

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Rendered};

/// Longest text of a router rejection read back to quote it in the message.
const REJECTION_TEXT_LIMIT: usize = 4096;

/// Whether `response` is a refusal the router or an extractor answered by itself: an error
/// status that `ApiError` did not render.
pub fn needs_repair(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response.extensions().get::<Rendered>().is_none()
}

/// Rewrites a refusal the router or an extractor answered by itself (see the module doc);
/// every other response passes untouched.
pub async fn repair(response: Response, method: &Method, path: &str) -> Response {
    if !needs_repair(&response) {
        return response;
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REJECTION_TEXT_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let err = error_for(status, method, path, text);
    let mut repaired = err.into_response();
    // Keep what the router and the layers said, all but the old body's description: Allow on
    // a 405, the page's security headers on one under /ui.
    let headers = repaired.headers_mut();
    let written: Vec<_> = headers.keys().cloned().collect();
    for (name, value) in &parts.headers {
        let about_the_body = name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH;
        if !about_the_body && !written.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    repaired
}

/// The contract's kind for a status the router answered with, its text as the message.
fn error_for(status: StatusCode, method: &Method, path: &str, text: String) -> ApiError {
    let said = |fallback: String| {
        if text.is_empty() {
            fallback
        } else {
            text.clone()
        }
    };
    match status {
        StatusCode::NOT_FOUND => {
            ApiError::NotFound(said(format!("no such endpoint: {method} {path}")))
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::MethodNotAllowed(format!("method {method} not allowed on {path}"))
        }
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout(std::time::Duration::ZERO),
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
        StatusCode::FORBIDDEN => ApiError::Forbidden(said("forbidden".into())),
        // A path parameter that does not decode: axum names its route's parameter
        // (`ttl_or_id`), an internal name; the path as sent says more.
        StatusCode::BAD_REQUEST if text.starts_with("Invalid URL") => ApiError::invalid(
            "path",
            format!("{path:?} does not decode (a bad %-escape, or not UTF-8)"),
        ),
        // 400, 415, 422 and any other refusal of the input: the client's to fix.
        s if s.is_client_error() => {
            ApiError::invalid("request", said(format!("{method} {path} refused")))
        }
        _ => ApiError::Internal(format!("{status}: {text}").into()),
    }
}
