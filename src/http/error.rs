//! `ApiError`: what a client sees when something goes wrong. The one place errors render:
//! each variant maps to a status and a GMS exception kind, and the body is
//! `{"message": Display, "exception": Kind}` (XML when asked, see `reply.rs`).
//!
//! The broker's refusals arrive as [`BrokerError`] and are mapped here, and only here, to a
//! status and kind; the edge's own failures (parameters that do not parse, auth, body size)
//! are `ApiError` variants of their own. A 5xx logs the whole `source()` chain.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::broker::BrokerError;
use crate::domain::ParseError;
use crate::store::{BoxError, StoreError};

use super::reply::Reply;

mod clip;
mod flood;
pub use clip::{MAX_QUOTED_CHARS, clip_values};

/// `StoreUnavailable` failures while a store is down: one line a second (`flood.rs`).
static STORE_DOWN: flood::Flood = flood::Flood::new();

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    #[error("service {0:?} not found")]
    ServiceNotFound(String),
    /// No live session has this id; the text says which id (and when it names a service,
    /// that a service is called with POST). GMS's kind for it is `ServiceNotFound`.
    #[error("{0}")]
    NoSession(String),
    #[error("{0}")]
    NotFound(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("store unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("internal error")]
    Internal(#[source] BoxError),
    /// The path exists but not for this method; the text names the method and path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request was not read and answered within `request_timeout_ms`.
    #[error("request not completed within {} ms", .0.as_millis())]
    RequestTimeout(Duration),
    /// A cross-site write (browser safety), or a credential that may not reach this data.
    #[error("{0}")]
    Forbidden(String),
    /// The client's token bucket is empty; it may come back after `retry_after`.
    #[error("too many requests from this client; retry after the Retry-After seconds")]
    TooManyRequests { retry_after: Duration },
    /// The store holds as much as `[limits]` allows (`max_sessions`, `max_storage_bytes`).
    #[error("{0}")]
    StoreFull(String),
    /// A use case's refusal; its `Display` is the message. Never holds `BrokerError::Store`
    /// (that one becomes `StoreUnavailable` or `Internal`, see `From<BrokerError>`).
    #[error(transparent)]
    Broker(BrokerError),
}

impl ApiError {
    pub fn invalid(name: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidParameter {
            name: name.into(),
            reason: reason.to_string(),
        }
    }

    /// No live session has the id `id` (one that cannot be a session's id included).
    pub fn no_session(id: &str) -> Self {
        Self::NoSession(format!("session {id:?} not found"))
    }

    /// Whether this is the answer for no live session.
    pub fn is_no_session(&self) -> bool {
        matches!(
            self,
            Self::NoSession(_) | Self::Broker(BrokerError::SessionNotFound(_))
        )
    }

    /// Turns a domain parse failure into a 400 naming the parameter.
    pub fn param(name: &str) -> impl FnOnce(ParseError) -> Self + '_ {
        move |e| Self::invalid(name, e)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            Self::ServiceNotFound(_) | Self::NoSession(_) | Self::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::StoreFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Broker(e) => broker_status(e),
        }
    }

    /// The GMS `exception` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidParameter { .. } => "InvalidParameter",
            Self::ServiceNotFound(_) | Self::NoSession(_) => "ServiceNotFound",
            Self::NotFound(_) => "NotFound",
            Self::Unauthorized => "Unauthorized",
            Self::StoreUnavailable(_) => "StoreUnavailable",
            Self::PayloadTooLarge { .. } => "PayloadTooLarge",
            Self::Internal(_) => "Internal",
            Self::MethodNotAllowed(_) => "MethodNotAllowed",
            Self::RequestTimeout(_) => "RequestTimeout",
            Self::Forbidden(_) => "Forbidden",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::StoreFull(_) => "StoreFull",
            Self::Broker(e) => broker_kind(e),
        }
    }
}

/// The status of each refusal the broker makes.
fn broker_status(e: &BrokerError) -> StatusCode {
    use BrokerError as B;
    match e {
        B::GroupRequired
        | B::CodeTooShort { .. }
        | B::UnknownGroup(_)
        | B::NumberTaken { .. }
        | B::TooManyFields { .. } => StatusCode::BAD_REQUEST,
        B::UnknownService(_)
        | B::SessionNotFound(_)
        | B::NoMatch { .. }
        | B::DataNotFound(_)
        | B::GroupNotFound(_)
        | B::NumberNotInGroup { .. }
        | B::NoReservation(_) => StatusCode::NOT_FOUND,
        B::GroupBusy(_) | B::ConfigGroup(_) | B::LastConfigNumber { .. } => StatusCode::CONFLICT,
        B::PoolExhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
        B::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        // Not reached: `From<BrokerError>` turns it into StoreUnavailable or Internal.
        B::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The GMS `exception` of each refusal the broker makes.
fn broker_kind(e: &BrokerError) -> &'static str {
    use BrokerError as B;
    match e {
        B::GroupRequired
        | B::CodeTooShort { .. }
        | B::NumberTaken { .. }
        | B::TooManyFields { .. } => "InvalidParameter",
        B::UnknownGroup(_) => "UnknownResourceGroup",
        B::UnknownService(_) | B::SessionNotFound(_) => "ServiceNotFound",
        B::NoMatch { .. } => "NoMatch",
        B::DataNotFound(_)
        | B::GroupNotFound(_)
        | B::NumberNotInGroup { .. }
        | B::NoReservation(_) => "NotFound",
        B::GroupBusy(_) | B::ConfigGroup(_) | B::LastConfigNumber { .. } => "Conflict",
        B::PoolExhausted { .. } => "PoolExhausted",
        B::QuotaExceeded { .. } => "QuotaExceeded",
        B::Store(_) => "Internal",
    }
}

impl From<BrokerError> for ApiError {
    fn from(err: BrokerError) -> Self {
        match err {
            BrokerError::Store(e) => e.into(),
            other => Self::Broker(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::StoreUnavailable(err),
            // Why a wildcard: every other store error is a broken rule, not the client's doing.
            _ => Self::Internal(Box::new(err)),
        }
    }
}

impl ApiError {
    /// `Retry-After` for an empty pool: whole seconds until a number frees up, at least 1.
    fn pool_retry_after(&self) -> Option<Duration> {
        match self {
            Self::Broker(BrokerError::PoolExhausted { retry_after, .. }) => Some(*retry_after),
            _ => None,
        }
    }

    /// `Retry-After` for any answer that has one: an empty pool, an empty token bucket, or a
    /// client at its reservation quota.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyRequests { retry_after }
            | Self::Broker(BrokerError::QuotaExceeded { retry_after, .. }) => Some(*retry_after),
            _ => self.pool_retry_after(),
        }
    }
}

impl ApiError {
    /// Marks a response as rendered here, so `http::fallback` leaves it as it is.
    fn mark(response: &mut Response) {
        response.extensions_mut().insert(Rendered);
    }
}

/// On a response this module rendered: the router's own answers lack it (see `http::fallback`).
#[derive(Debug, Clone, Copy)]
pub struct Rendered;

/// The error and every cause under it, `: `-separated, for the one log line a 5xx writes.
fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ApiError {
    /// Logs a 5xx with its whole cause; while a store is down, once a second (`flood.rs`).
    fn log(&self) {
        if !matches!(self, Self::StoreUnavailable(_)) {
            tracing::error!(error = %cause_chain(self), kind = self.kind(), "request failed");
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some((left_out, last)) = STORE_DOWN.admit(now) {
            // How long ago the line that `left_out` counts from was written (none: 0).
            let last_line_secs_ago = if last == 0 {
                0
            } else {
                now.saturating_sub(last)
            };
            tracing::error!(
                error = %cause_chain(self),
                kind = self.kind(),
                left_out,
                last_line_secs_ago,
                "request failed (one line a second while the store is unavailable; left_out: such failures since the last such line)"
            );
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // An empty pool is an answer, not a failure; every other 5xx logs its whole chain.
        if status.is_server_error()
            && self.pool_retry_after().is_none()
            && !matches!(self, Self::StoreFull(_))
        {
            self.log();
        }
        let mut body = Reply::new()
            .field("message", clip_values(&self.to_string()))
            .field("exception", self.kind());
        if let Self::Broker(BrokerError::NoMatch {
            reason: Some(reason),
            ..
        }) = &self
        {
            body = body.field("reason", reason.as_str());
        }
        let mut response = body.with_status(status).into_response();
        let headers = response.headers_mut();
        if let Some(retry_after) = self.retry_after() {
            let secs = retry_after.as_secs().max(1) + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        match &self {
            Self::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"access-broker\""),
                );
            }
            Self::StoreUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        Self::mark(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccessNumber, GroupName};

    #[test]
    fn every_kind_has_its_status() {
        let g = GroupName::parse("DNIS").expect("name");
        let n = AccessNumber::parse("100").expect("number");
        let cases = [
            (ApiError::invalid("_id", "missing"), 400, "InvalidParameter"),
            (
                BrokerError::UnknownGroup(g.clone()).into(),
                400,
                "UnknownResourceGroup",
            ),
            (
                ApiError::ServiceNotFound("x".into()),
                404,
                "ServiceNotFound",
            ),
            (
                BrokerError::NoMatch {
                    number: n.clone(),
                    reason: None,
                }
                .into(),
                404,
                "NoMatch",
            ),
            (ApiError::NotFound("x".into()), 404, "NotFound"),
            (BrokerError::GroupBusy(g.clone()).into(), 409, "Conflict"),
            (BrokerError::ConfigGroup(g.clone()).into(), 409, "Conflict"),
            (
                BrokerError::LastConfigNumber {
                    group: g.clone(),
                    number: n.clone(),
                }
                .into(),
                409,
                "Conflict",
            ),
            (
                BrokerError::NumberTaken {
                    number: n,
                    owner: g.clone(),
                }
                .into(),
                400,
                "InvalidParameter",
            ),
            (
                BrokerError::PoolExhausted {
                    group: g,
                    retry_after: Duration::from_secs(3),
                }
                .into(),
                503,
                "PoolExhausted",
            ),
            (
                BrokerError::Store(StoreError::unavailable("down")).into(),
                503,
                "StoreUnavailable",
            ),
            (
                BrokerError::Store(StoreError::corrupt("a test", "bad")).into(),
                500,
                "Internal",
            ),
            (ApiError::Unauthorized, 401, "Unauthorized"),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "PayloadTooLarge",
            ),
            (ApiError::Internal("boom".into()), 500, "Internal"),
            (
                ApiError::MethodNotAllowed("x".into()),
                405,
                "MethodNotAllowed",
            ),
            (
                ApiError::RequestTimeout(Duration::from_secs(1)),
                408,
                "RequestTimeout",
            ),
            (ApiError::Forbidden("x".into()), 403, "Forbidden"),
            (
                ApiError::TooManyRequests {
                    retry_after: Duration::from_secs(1),
                },
                429,
                "TooManyRequests",
            ),
            (
                BrokerError::QuotaExceeded {
                    held: 2,
                    limit: 2,
                    retry_after: Duration::from_secs(7),
                }
                .into(),
                429,
                "QuotaExceeded",
            ),
            (ApiError::StoreFull("x".into()), 507, "StoreFull"),
        ];
        for (err, status, kind) in cases {
            let err: ApiError = err;
            assert_eq!((err.status().as_u16(), err.kind()), (status, kind));
        }
        assert_eq!(
            ApiError::Internal("secret detail".into()).to_string(),
            "internal error"
        );
    }

    #[test]
    fn a_5xx_log_line_carries_every_cause() {
        let io = std::io::Error::other("disk full");
        let err: ApiError = BrokerError::Store(StoreError::unavailable(io)).into();
        assert_eq!(err.to_string(), "store unavailable; retry later");
        assert_eq!(
            cause_chain(&err),
            "store unavailable; retry later: store unavailable: disk full"
        );
    }
}
