//! HTTP Basic authentication: server-wide `[auth]`, per-service credentials, and the admin
//! and metrics credentials. Comparisons are constant-time; credentials never reach logs.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Credentials;

/// Passes when no credentials are required, or the request carries exactly these.
pub fn require(headers: &HeaderMap, expected: Option<&Credentials>) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some(given) = given else {
        return Err(ApiError::Unauthorized);
    };
    let Some((user, password)) = given.split_once(':') else {
        return Err(ApiError::Unauthorized);
    };
    let user_ok = user.as_bytes().ct_eq(expected.username.as_bytes());
    let password_ok = password
        .as_bytes()
        .ct_eq(expected.password.expose().as_bytes());
    if bool::from(user_ok & password_ok) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}
