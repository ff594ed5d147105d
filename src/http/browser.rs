//! Browser safety: a foreign page may not change state with the operator's cached
//! credentials, and the management page may not be framed or made to run injected script.
//!
//! A request that may change state (any method but GET and HEAD) is refused with 403
//! Forbidden when the browser says it comes from another site: `Sec-Fetch-Site: cross-site`,
//! or an `Origin` whose host name differs from the one the request was sent to (an opaque
//! `Origin: null` counts as foreign). Clients that are not browsers send neither header and
//! are not affected.
//!
//! "The one served" is `X-Forwarded-Host` when a proxy set it, else `Host`; ports and
//! schemes are not compared (a site, as browsers define it, has no port), so a proxy on the
//! same host under another port needs nothing. A proxy that serves another name must pass it
//! (nginx: `proxy_set_header Host $host` or `X-Forwarded-Host $host`, docs/deploying.md).
//! Trusting `X-Forwarded-Host` opens nothing: a foreign page cannot add that header to a
//! cross-site request without a CORS preflight, which this server never approves.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;

/// The `/ui` page's policy: its own script and style files only, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

// Named once: a lookup by `&str` parses the name on every request.
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The 403 for a state-changing request that a browser sent from another site.
pub fn refusal(request: &Request) -> Option<ApiError> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let reason = cross_site(request.headers())?;
    Some(ApiError::Forbidden(format!(
        "cross-site {} refused: {reason}",
        request.method()
    )))
}

/// Why the request comes from another site, if it does.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    // Every copy of each header: a second `Origin` must not slip past behind a first.
    if headers
        .get_all(SEC_FETCH_SITE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Some("Sec-Fetch-Site is cross-site");
    }
    let origins = headers.get_all(header::ORIGIN);
    // Most calls (IVRs, apps' back ends) send no `Origin`: the served host is not needed.
    origins.iter().next()?;
    let served = headers
        .get(X_FORWARDED_HOST)
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').next())
        .map(host_name);
    for origin in origins {
        let Some(origin_host) = origin.to_str().ok().and_then(origin_host) else {
            return Some("Origin is not a site (null or malformed)");
        };
        if served.as_deref() != Some(origin_host.as_str()) {
            return Some("Origin is another site than the one served");
        }
    }
    None
}

/// The host name of `https://Example.com:8443`: `example.com`.
fn origin_host(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@'])
        || !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
    {
        return None;
    }
    Some(host_name(rest))
}

/// `Example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
fn host_name(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    match authority.rsplit_once(':') {
        // A port follows the last colon unless that colon is inside an IPv6 literal.
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.ends_with(':') => {
            host.to_owned()
        }
        _ => authority,
    }
}

/// Adds the page's security headers to every `/ui` answer.
pub async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origin: Option<&str>, host: Option<&str>, fetch_site: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("origin", origin),
            ("host", host),
            ("sec-fetch-site", fetch_site),
        ] {
            if let Some(v) = value {
                headers.insert(name, v.parse().expect("value"));
            }
        }
        cross_site(&headers).is_some()
    }

    #[test]
    fn foreign_origins_are_cross_site() {
        let h = Some("broker.example:8080");
        assert!(!check(None, h, None), "no browser headers: not a browser");
        assert!(!check(Some("http://broker.example:8080"), h, None));
        assert!(!check(
            Some("http://BROKER.example:8080"),
            h,
            Some("same-origin")
        ));
        assert!(!check(
            Some("https://broker.example"),
            Some("broker.example:443"),
            None
        ));
        assert!(!check(
            Some("http://broker.example"),
            Some("broker.example"),
            None
        ));
        assert!(check(Some("http://evil.example"), h, None));
        assert!(
            !check(Some("http://broker.example:8081"), h, None),
            "a site has no port"
        );
        assert!(check(Some("http://broker.example.evil:8080"), h, None));
        assert!(!check(Some("http://[::1]:9"), Some("[::1]:8080"), None));
        assert!(!check(Some("http://[::1]"), Some("[::1]"), None));
        assert!(check(Some("null"), h, None));
        assert!(check(Some("http://broker.example:8080"), None, None));
        assert!(check(None, h, Some("cross-site")));
        assert!(check(
            Some("http://broker.example:8080"),
            h,
            Some("Cross-Site")
        ));
        // A second Origin is checked too.
        let mut two = HeaderMap::new();
        two.insert("host", "broker.example".parse().expect("value"));
        two.append("origin", "http://broker.example".parse().expect("value"));
        two.append("origin", "http://evil.example".parse().expect("value"));
        assert!(cross_site(&two).is_some());
    }
}
