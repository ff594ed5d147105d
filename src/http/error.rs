//! `ApiError`: what a client sees when something goes wrong. The one place errors render:
//! each variant maps to a status and a GMS exception kind, and the body is
//! `{"message": Display, "exception": Kind}` (XML when asked, see `reply.rs`).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::{GroupName, ParseError};
use crate::store::{BoxError, ReserveError, StoreError};

use super::reply::Reply;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    #[error("_resource_group: unknown resource group {0:?}")]
    UnknownResourceGroup(String),
    #[error("service {0:?} not found")]
    ServiceNotFound(String),
    #[error("no live reservation matches access number {0}")]
    NoMatch(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("no free number in resource group {group}")]
    PoolExhausted {
        group: GroupName,
        retry_after: Duration,
    },
    #[error("authentication required")]
    Unauthorized,
    #[error("store unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn invalid(name: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidParameter {
            name: name.into(),
            reason: reason.to_string(),
        }
    }

    /// Turns a domain parse failure into a 400 naming the parameter.
    pub fn param(name: &str) -> impl FnOnce(ParseError) -> Self + '_ {
        move |e| Self::invalid(name, e)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidParameter { .. } | Self::UnknownResourceGroup(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::ServiceNotFound(_) | Self::NoMatch(_) | Self::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PoolExhausted { .. } | Self::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The GMS `exception` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidParameter { .. } => "InvalidParameter",
            Self::UnknownResourceGroup(_) => "UnknownResourceGroup",
            Self::ServiceNotFound(_) => "ServiceNotFound",
            Self::NoMatch(_) => "NoMatch",
            Self::NotFound(_) => "NotFound",
            Self::Conflict(_) => "Conflict",
            Self::PoolExhausted { .. } => "PoolExhausted",
            Self::Unauthorized => "Unauthorized",
            Self::StoreUnavailable(_) => "StoreUnavailable",
            Self::PayloadTooLarge { .. } => "PayloadTooLarge",
            Self::Internal(_) => "Internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::StoreUnavailable(err),
            _ => Self::Internal(Box::new(err)),
        }
    }
}

impl ApiError {
    /// Maps a reservation refusal, naming the session and group the request named.
    pub fn from_reserve(err: ReserveError, session: &str, group: &GroupName) -> Self {
        match err {
            ReserveError::SessionNotFound => Self::ServiceNotFound(session.to_owned()),
            ReserveError::UnknownGroup => Self::UnknownResourceGroup(group.to_string()),
            ReserveError::Exhausted { retry_after } => Self::PoolExhausted {
                group: group.clone(),
                retry_after,
            },
            ReserveError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, Self::PoolExhausted { .. }) {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), kind = self.kind(), "request failed");
        }
        let body = Reply::new()
            .field("message", self.to_string())
            .field("exception", self.kind());
        let mut response = body.with_status(status).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::PoolExhausted { retry_after, .. } => {
                let secs = retry_after.as_secs().max(1) + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
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
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status() {
        let g = GroupName::parse("DNIS").expect("name");
        let cases = [
            (ApiError::invalid("_id", "missing"), 400, "InvalidParameter"),
            (
                ApiError::UnknownResourceGroup("X".into()),
                400,
                "UnknownResourceGroup",
            ),
            (
                ApiError::ServiceNotFound("x".into()),
                404,
                "ServiceNotFound",
            ),
            (ApiError::NoMatch("1".into()), 404, "NoMatch"),
            (ApiError::NotFound("x".into()), 404, "NotFound"),
            (
                ApiError::PoolExhausted {
                    group: g,
                    retry_after: Duration::from_secs(3),
                },
                503,
                "PoolExhausted",
            ),
            (ApiError::Unauthorized, 401, "Unauthorized"),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "PayloadTooLarge",
            ),
            (ApiError::Internal("boom".into()), 500, "Internal"),
        ];
        for (err, status, kind) in cases {
            assert_eq!((err.status().as_u16(), err.kind()), (status, kind));
        }
        assert_eq!(
            ApiError::Internal("secret detail".into()).to_string(),
            "internal error"
        );
    }
}
