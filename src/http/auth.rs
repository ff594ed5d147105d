//! HTTP Basic authentication: server-wide `[auth]`, per-service credentials, and the admin
//! and metrics credentials. Comparisons are constant-time; credentials never reach logs.
//!
//! The header is decoded by `headers`' typed `Authorization<Basic>` (scheme case-insensitive,
//! base64, the first `:` splitting user from password), so no hand-written decoder is left.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::headers::HeaderMapExt as _;
use axum_extra::headers::authorization::{Authorization, Basic};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::Credentials;

/// Passes when no credentials are required, or the request carries exactly these.
pub fn require(headers: &HeaderMap, expected: Option<&Credentials>) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let Some(Authorization(given)) = headers.typed_get::<Authorization<Basic>>() else {
        return Err(ApiError::Unauthorized);
    };
    // Both compared every time (`&`, not `&&`): the answer's timing tells nothing.
    let user_ok = given
        .username()
        .as_bytes()
        .ct_eq(expected.username.as_bytes());
    let password_ok = given
        .password()
        .as_bytes()
        .ct_eq(expected.password.expose().as_bytes());
    if bool::from(user_ok & password_ok) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Whether the request carries one of the configured credentials (server-wide, admin,
/// metrics or a service's): for a path no route serves, where which would apply is unknown.
pub fn any_known(config: &crate::config::Config, headers: &HeaderMap) -> bool {
    let guards = config.auth.iter().chain(&config.admin_auth);
    carries_one_of(
        headers,
        guards
            .chain(&config.metrics_auth)
            .chain(services_own(config)),
    )
}

/// The credentials services set for themselves.
fn services_own(config: &crate::config::Config) -> impl Iterator<Item = &Credentials> {
    config
        .services
        .values()
        .filter_map(|s| s.credentials.as_ref())
}

/// Whether the request carries one of these credentials.
fn carries_one_of<'a>(
    headers: &HeaderMap,
    mut credentials: impl Iterator<Item = &'a Credentials>,
) -> bool {
    credentials.any(|c| require(headers, Some(c)).is_ok())
}

/// For a session id that names no live session (unknown, expired, ended): whose it was is
/// not known, so with `[auth]` its credentials or any service's own pass (the owner of an
/// ended session hears 404, not 401); without `[auth]` anyone may ask, as for a session of a
/// service without credentials.
pub fn require_for_no_session(
    config: &crate::config::Config,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Some(server) = config.auth.as_ref() else {
        return Ok(());
    };
    match carries_one_of(headers, std::iter::once(server).chain(services_own(config))) {
        true => Ok(()),
        false => Err(ApiError::Unauthorized),
    }
}

/// Whether a request-access call must look up the session it names before its credentials
/// are known to pass: only when some service has credentials of its own
/// ([`require_for_access`]). Until then, the service's guard or any service's own
/// credentials let the body be read.
pub fn sessions_guarded(config: &crate::config::Config) -> bool {
    services_own(config).next().is_some()
}

/// Before a request-access call's body is read, while services have credentials of their
/// own: the request-access service's guard, or any service's own credentials (which one
/// applies depends on the session the body names: [`require_for_access`]).
pub fn require_before_session(
    config: &crate::config::Config,
    headers: &HeaderMap,
    needed: Option<&Credentials>,
) -> Result<(), ApiError> {
    match require(headers, needed).is_ok() || carries_one_of(headers, services_own(config)) {
        true => Ok(()),
        false => Err(ApiError::Unauthorized),
    }
}

/// A request-access call for a session of a service with credentials of its own: only those
/// open it (the server-wide ones do not, as for the session itself: a number reserved for
/// it hands its data to match-interaction), and the request-access service's own, when it
/// has some, must be the same. For a session of a service without its own: the
/// request-access service's guard (`access`, or else the server's).
pub fn require_for_access(
    headers: &HeaderMap,
    access: Option<&Credentials>,
    session_owner: Option<&Credentials>,
    server: Option<&Credentials>,
) -> Result<(), ApiError> {
    match session_owner {
        None => require(headers, access.or(server)),
        Some(owner) => {
            require(headers, Some(owner))?;
            require(headers, access)
        }
    }
}

/// Middleware for routes every `[auth]` user may call (the storage API): checked once,
/// after routing, before any extractor reads the body.
pub async fn require_server(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(req.headers(), state.config.auth.as_ref())?;
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::AUTHORIZATION;

    fn creds() -> Credentials {
        Credentials {
            username: "gms".into(),
            password: crate::config::Secret::new("s:ecret"),
        }
    }

    fn with(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn basic_credentials() {
        // gms:s:ecret: the password keeps its colon.
        assert!(require(&with("Basic Z21zOnM6ZWNyZXQ="), Some(&creds())).is_ok());
        assert!(require(&with("basic Z21zOnM6ZWNyZXQ="), Some(&creds())).is_ok());
        for bad in [
            "Basic Z21zOnM=",
            "Bearer Z21zOnM6ZWNyZXQ=",
            "Basic !!!",
            "Basic",
        ] {
            assert!(require(&with(bad), Some(&creds())).is_err(), "{bad}");
        }
        assert!(require(&HeaderMap::new(), Some(&creds())).is_err());
        assert!(require(&HeaderMap::new(), None).is_ok());
    }
}
