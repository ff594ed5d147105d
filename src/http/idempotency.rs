//! The `Idempotency-Key` header of session creations, request-interaction and storage POSTs,
//! scoped to the calling client: its Basic-auth user name, else its address (`client.rs`).
//! What a key guarantees is `store::once`'s business.

use axum::http::HeaderMap;
use axum_extra::headers::HeaderMapExt;
use axum_extra::headers::authorization::{Authorization, Basic};

use super::client::ClientAddr;
use super::error::ApiError;
use super::limits::{KeyTurn, Limits};
use super::reply::Reply;
use crate::broker::Broker;
use crate::store::IdempotencyKey;

const HEADER: &str = "idempotency-key";
/// Longest key accepted; Stripe and the IETF draft's examples stay well under it.
const MAX_LEN: usize = 255;

/// The request's key, if it sent one, for the call `scope` names (`service/{name}`,
/// `storage`, `storage/{id}`): a key answers again only the call it was first sent with, so
/// a key reused on another route makes its own first answer (it replayed the other route's:
/// a storage client got a session's `_id` and its write was dropped). A key that is empty,
/// too long, not visible ASCII or sent twice is a 400 naming the header.
pub fn key(
    config: &crate::config::Config,
    headers: &HeaderMap,
    addr: ClientAddr,
    scope: &str,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut sent = headers.get_all(HEADER).iter();
    let Some(value) = sent.next() else {
        return Ok(None);
    };
    if sent.next().is_some() {
        return Err(ApiError::invalid("Idempotency-Key", "sent more than once"));
    }
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
    // The user name only when its password matches a configured credential, as `[limits]`
    // has it: an unverified name let anyone replay that user's first answers (on a route
    // that needs no credentials, `Basic app:anything` got app's stored id back).
    let client = match headers.typed_get::<Authorization<Basic>>() {
        Some(Authorization(basic)) if super::auth::any_known(config, headers) => {
            format!("user:{}", basic.username())
        }
        _ => format!("addr:{addr}"),
    };
    Ok(Some(IdempotencyKey {
        client,
        key: format!("{scope} {key}"),
    }))
}

/// Where a keyed call goes before `[limits]` count it ([`turn`]).
pub enum Turn<'a> {
    /// The key's first answer: the call is a retry, and adds nothing.
    Replay(Reply),
    /// A first call (or no limit applies): go on, holding the key's turn on this node.
    Go(Option<KeyTurn<'a>>),
}

/// A keyed call's turn among calls with its key on this node, and while a limit applies its
/// first answer if it has one, before the limit counts it: a retry then takes no room and no
/// place, even for a moment (retries in flight made a new client's session answer 507 at
/// three sessions of four on PostgreSQL, whose lookup takes a round trip).
pub async fn turn<'a>(
    limits: &'a Limits,
    broker: &Broker,
    key: &IdempotencyKey,
) -> Result<Turn<'a>, ApiError> {
    let Some(turn) = limits.key_turn(key).await else {
        return Ok(Turn::Go(None));
    };
    match broker.replay(key).await? {
        Some(answer) => Ok(Turn::Replay(Reply::new().fields(&answer))),
        None => Ok(Turn::Go(Some(turn))),
    }
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
    fn keys_are_per_client_and_call_and_checked() {
        let mut config = crate::config::Config::demo();
        config.auth = Some(crate::config::Credentials {
            username: "gms".into(),
            password: crate::config::Secret::new("secret"),
        });
        let key = |headers: &HeaderMap, addr, scope: &str| key(&config, headers, addr, scope);
        let addr = ClientAddr(Some("10.0.0.1".parse().expect("ip")));
        assert!(key(&with(&[]), addr, "storage").expect("ok").is_none());
        let k = key(&with(&[("idempotency-key", "abc-1")]), addr, "storage").expect("ok");
        assert_eq!(
            k.map(|k| (k.client, k.key)),
            Some(("addr:10.0.0.1".into(), "storage abc-1".into()))
        );
        let basic = [
            ("idempotency-key", "abc-1"),
            ("authorization", "Basic Z21zOnNlY3JldA=="),
        ];
        let k = key(&with(&basic), addr, "service/callback").expect("ok");
        assert_eq!(
            k.map(|k| (k.client, k.key)),
            Some(("user:gms".into(), "service/callback abc-1".into()))
        );
        // A user name whose password does not match is no client of its own: the address.
        let claimed = [
            ("idempotency-key", "abc-1"),
            ("authorization", "Basic Z21zOndyb25n"), // gms:wrong
        ];
        let k = key(&with(&claimed), addr, "service/callback").expect("ok");
        assert_eq!(k.map(|k| k.client), Some("addr:10.0.0.1".into()));
        for bad in ["", "a b", &"x".repeat(256)] {
            assert!(
                key(&with(&[("idempotency-key", bad)]), addr, "storage").is_err(),
                "{bad:?}"
            );
        }
        let mut twice = with(&[("idempotency-key", "a")]);
        twice.append("idempotency-key", HeaderValue::from_static("b"));
        assert!(key(&twice, addr, "storage").is_err(), "two keys");
    }
}
