//! Who is calling: the client's address, for the request span's `client` field (and for the
//! per-client limits of `[limits]` once they exist).
//!
//! Behind a proxy every connection comes from the proxy, so `[limits] client_ip_header`
//! (e.g. `x-forwarded-for`) names a header whose first address is the client's. Only set it
//! behind a proxy you trust: anyone else can write that header. When the header is not set
//! in the config, absent from the request, or not an address, the connection's peer address
//! is used.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName};

use super::AppState;

/// The calling client's IP address, when known (a router served without connect info, as
/// in-process tests do, knows none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// From a request's headers and extensions: the first address of `header` when set and
    /// parseable, else the peer address that `axum::serve` recorded as `ConnectInfo`.
    pub fn from_request(
        headers: &HeaderMap,
        extensions: &Extensions,
        header: Option<&HeaderName>,
    ) -> ClientAddr {
        let forwarded = header.and_then(|h| headers.get(h)).and_then(|v| {
            let first = v.to_str().ok()?.split(',').next()?.trim();
            parse_addr(first)
        });
        let peer = || {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        };
        ClientAddr(forwarded.or_else(peer))
    }
}

impl ClientAddr {
    /// A request's client: as the edge (`http::edge`) found it for the request being served
    /// (kept in the request's context, cheaper to read than an extension is to insert), else
    /// from the request.
    pub fn of(state: &AppState, headers: &HeaderMap, extensions: &Extensions) -> ClientAddr {
        crate::telemetry::REQUEST
            .try_with(|r| r.client)
            .unwrap_or_else(|_| {
                let header = state.config.limits.client_ip_header.as_ref();
                ClientAddr::from_request(headers, extensions, header)
            })
    }
}

/// `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:5678`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("-"),
        }
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr::of(state, &parts.headers, &parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(header: Option<&str>, value: Option<&str>, peer: Option<&str>) -> String {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert("x-forwarded-for", v.parse().expect("header value"));
        }
        let mut extensions = Extensions::new();
        if let Some(p) = peer {
            extensions.insert(ConnectInfo(p.parse::<SocketAddr>().expect("addr")));
        }
        let header = header.map(|h| HeaderName::from_bytes(h.as_bytes()).expect("name"));
        ClientAddr::from_request(&headers, &extensions, header.as_ref()).to_string()
    }

    #[test]
    fn the_header_wins_only_when_configured_and_parseable() {
        let peer = Some("10.0.0.1:4000");
        let h = Some("x-forwarded-for");
        let cases = [
            (h, Some("203.0.113.7, 10.0.0.1"), "203.0.113.7"),
            (h, Some(" 2001:db8::1 "), "2001:db8::1"),
            (h, Some("203.0.113.7:5555"), "203.0.113.7"),
            (h, Some("[2001:db8::2]:443, 1.1.1.1"), "2001:db8::2"),
            (h, Some("unknown, 1.2.3.4"), "10.0.0.1"),
            (h, None, "10.0.0.1"),
            (None, Some("203.0.113.7"), "10.0.0.1"),
        ];
        for (header, value, want) in cases {
            assert_eq!(client(header, value, peer), want, "{header:?} {value:?}");
        }
        assert_eq!(client(None, None, None), "-");
    }
}
