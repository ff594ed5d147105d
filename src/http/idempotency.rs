//! The `Idempotency-Key` header of session creations, request-interaction and storage POSTs,
//! scoped to the calling client: its Basic-auth user name, else its address (`client.rs`).
//! What a key guarantees is `store::once`'s business.

use axum::http::HeaderMap;
use axum_extra::headers::HeaderMapExt;
use axum_extra::headers::authorization::{Authorization, Basic};

use super::client::ClientAddr;
use super::error::ApiError;
use super::reply::Reply;
use crate::broker::Broker;
use crate::store::IdempotencyKey;

const HEADER: &str = "idempotency-key";
/// Longest key accepted; Stripe and the IETF draft's examples stay well under it.
const MAX_LEN: usize = 255;

/// The request's key, if it sent one; a key that is empty, too long or not visible ASCII is
/// a 400 naming the header.
pub fn key(headers: &HeaderMap, addr: ClientAddr) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                format!("1 to {MAX_LEN} visible ASCII characters"),
            )
        })?;
    let client = match headers.typed_get::<Authorization<Basic>>() {
        Some(Authorization(basic)) => format!("user:{}", basic.username()),
        None => format!("addr:{addr}"),
    };
    Ok(Some(IdempotencyKey {
        client,
        key: key.to_owned(),
    }))
}

/// A call that a limit refused (`refusal`): the first answer of its `key` if it carries one
/// that has answered before (a retry must not fail where the first call succeeded), else the
/// refusal.
pub async fn replay_or(
    broker: &Broker,
    key: Option<&IdempotencyKey>,
    refusal: ApiError,
) -> Result<Reply, ApiError> {
    let Some(key) = key else {
        return Err(refusal);
    };
    match broker.replay(key).await? {
        Some(answer) => Ok(Reply::new().fields(&answer)),
        None => Err(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn keys_are_per_client_and_checked() {
        let addr = ClientAddr(Some("10.0.0.1".parse().expect("ip")));
        assert!(key(&with(&[]), addr).expect("ok").is_none());
        let k = key(&with(&[("idempotency-key", "abc-1")]), addr).expect("ok");
        assert_eq!(
            k.map(|k| (k.client, k.key)),
            Some(("addr:10.0.0.1".into(), "abc-1".into()))
        );
        let basic = [
            ("idempotency-key", "abc-1"),
            ("authorization", "Basic Z21zOnNlY3JldA=="),
        ];
        let k = key(&with(&basic), addr).expect("ok");
        assert_eq!(k.map(|k| k.client), Some("user:gms".into()));
        for bad in ["", "a b", &"x".repeat(256)] {
            assert!(
                key(&with(&[("idempotency-key", bad)]), addr).is_err(),
                "{bad:?}"
            );
        }
    }
}
