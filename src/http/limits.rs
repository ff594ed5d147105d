//! `[limits]`: what one client, and all clients together, may take.
//!
//! - `requests_per_second`: a token bucket per client (governor's GCRA) holding two seconds'
//!   worth; an empty bucket answers 429 TooManyRequests with `Retry-After`. `/health`,
//!   `/ready` and `/metrics` are exempt (probes must not be starved by the traffic they watch).
//! - `reservations_per_client`: live reservations a client may hold; one more answers 429
//!   QuotaExceeded. Counted **per node**, from the reservations this node handed out, until
//!   they expire, are matched, or their session ends through this node (a release by an
//!   operator is seen only at expiry, so the count errs on the strict side). A client spread
//!   over N nodes of a cluster may hold up to N times the limit.
//! - `max_sessions`, `max_storage_bytes`: what the store holds (`Store::usage`, read at most
//!   once a second, so a burst may pass the limit by one second's worth); a call that would
//!   add a session or stored bytes past them answers 507 StoreFull.
//!
//! A client is its Basic-auth user name when the name and password match a configured
//! credential (an unverified name would let anyone spend someone else's bucket, or dodge
//! their own by inventing names), else its address (`http::client`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::HeaderMap;
use axum_extra::headers::HeaderMapExt as _;
use axum_extra::headers::authorization::{Authorization, Basic};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::AppState;
use super::client::ClientAddr;
use super::error::ApiError;
use crate::broker::Broker;
use crate::config::{Config, LimitsConfig};
use crate::domain::SessionId;
use crate::store::Usage;

/// How long a read of the store's usage serves before it is read again.
const USAGE_FRESH_FOR: Duration = Duration::from_secs(1);
/// Past this many clients, buckets that are full again are forgotten.
const BUCKETS_KEPT: usize = 100_000;

pub struct Limits {
    config: LimitsConfig,
    buckets: Option<DefaultKeyedRateLimiter<String>>,
    held: Mutex<Held>,
    usage: Mutex<Option<(Instant, Option<Usage>)>>,
}

/// The reservations this node handed out, by client.
#[derive(Default)]
struct Held {
    by_client: HashMap<String, HashMap<SessionId, Instant>>,
    client_of: HashMap<SessionId, String>,
}

/// What a call is about to add to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adds {
    /// A session (and its fields).
    Session,
    /// Stored fields only.
    Fields,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let buckets = config.requests_per_second.map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            config: config.clone(),
            buckets,
            held: Mutex::new(Held::default()),
            usage: Mutex::new(None),
        }
    }

    /// The client a request counts against: a verified Basic-auth user, else its address.
    pub fn client(config: &Config, headers: &HeaderMap, addr: ClientAddr) -> String {
        if let Some(Authorization(basic)) = headers.typed_get::<Authorization<Basic>>() {
            let known = config
                .auth
                .iter()
                .chain(config.admin_auth.iter())
                .chain(config.metrics_auth.iter())
                .chain(
                    config
                        .services
                        .values()
                        .filter_map(|s| s.credentials.as_ref()),
                );
            for credentials in known {
                if super::auth::require(headers, Some(credentials)).is_ok() {
                    return format!("user:{}", basic.username());
                }
            }
        }
        format!("ip:{addr}")
    }

    /// Whether reservations are counted per client (`reservations_per_client` set).
    pub fn counts_clients(&self) -> bool {
        self.config.reservations_per_client.is_some()
    }

    /// Takes a token from the client's bucket, or says when the next one comes.
    fn spend(&self, client: &String) -> Result<(), ApiError> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        if buckets.len() > BUCKETS_KEPT {
            buckets.retain_recent();
        }
        buckets.check_key(client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                retry_after: wait.max(Duration::from_secs(1)),
            }
        })
    }

    /// Before a reservation for `session`: refused when the client already holds its quota
    /// (asking again for a session it holds one for is a renewal and always passes).
    pub fn check_quota(&self, client: &str, session: Option<&SessionId>) -> Result<(), ApiError> {
        let Some(limit) = self.config.reservations_per_client else {
            return Ok(());
        };
        let mut held = self.held.lock();
        let now = Instant::now();
        let count = match held.by_client.get_mut(client) {
            None => 0,
            Some(mine) => {
                mine.retain(|_, until| *until > now);
                if session.is_some_and(|s| mine.contains_key(s)) {
                    return Ok(());
                }
                mine.len() as u64
            }
        };
        if count >= limit {
            return Err(ApiError::QuotaExceeded(format!(
                "this client holds {count} live reservations; [limits] reservations_per_client allows {limit}"
            )));
        }
        Ok(())
    }

    /// After a reservation was handed out to `client` for `session`, held for `expires_in`.
    pub fn record(&self, client: &str, session: &SessionId, expires_in: Duration) {
        if self.config.reservations_per_client.is_none() {
            return;
        }
        let mut held = self.held.lock();
        let until = Instant::now() + expires_in;
        held.by_client
            .entry(client.to_owned())
            .or_default()
            .insert(session.clone(), until);
        held.client_of.insert(session.clone(), client.to_owned());
        if held.client_of.len() > BUCKETS_KEPT {
            let now = Instant::now();
            held.by_client.retain(|_, mine| {
                mine.retain(|_, until| *until > now);
                !mine.is_empty()
            });
            let Held {
                by_client,
                client_of,
            } = &mut *held;
            client_of.retain(|s, c| by_client.get(c).is_some_and(|m| m.contains_key(s)));
        }
    }

    /// The session's reservation ended here (matched, or the session ended).
    pub fn forget(&self, session: &SessionId) {
        if self.config.reservations_per_client.is_none() {
            return;
        }
        let mut held = self.held.lock();
        if let Some(client) = held.client_of.remove(session)
            && let Some(mine) = held.by_client.get_mut(&client)
        {
            mine.remove(session);
        }
    }

    /// Before a call that adds to the store: 507 StoreFull when it is at a limit.
    pub async fn room_for(&self, broker: &Broker, adds: Adds) -> Result<(), ApiError> {
        let sessions_limit = self.config.max_sessions.filter(|_| adds == Adds::Session);
        let bytes_limit = self.config.max_storage_bytes;
        if sessions_limit.is_none() && bytes_limit.is_none() {
            return Ok(());
        }
        let Some(usage) = self.usage(broker).await else {
            return Ok(());
        };
        if let Some(limit) = sessions_limit
            && usage.sessions >= limit
        {
            return Err(ApiError::StoreFull(format!(
                "the store holds {} live sessions; [limits] max_sessions allows {limit}",
                usage.sessions
            )));
        }
        if let Some(limit) = bytes_limit
            && usage.stored_bytes >= limit
        {
            return Err(ApiError::StoreFull(format!(
                "the store holds {} bytes of fields; [limits] max_storage_bytes allows {limit}",
                usage.stored_bytes
            )));
        }
        Ok(())
    }

    /// The store's usage, read again once the last read is a second old. A store that cannot
    /// answer does not block writes here: the write itself will meet the same failure.
    async fn usage(&self, broker: &Broker) -> Option<Usage> {
        if let Some((at, usage)) = *self.usage.lock()
            && at.elapsed() < USAGE_FRESH_FOR
        {
            return usage;
        }
        let usage = match broker.usage().await {
            Ok(None) => {
                tracing::warn!(
                    "[limits] max_sessions / max_storage_bytes: this store does not count its usage; not enforced"
                );
                None
            }
            Ok(usage) => usage,
            Err(err) => {
                tracing::debug!(error = %err, "store usage not read");
                return None;
            }
        };
        *self.usage.lock() = Some((Instant::now(), usage));
        usage
    }
}

/// Every request but the probes spends a token from its client's bucket (`http::edge`).
pub fn take_token(state: &AppState, request: &Request, addr: ClientAddr) -> Result<(), ApiError> {
    if state.limits.buckets.is_none()
        || matches!(request.uri().path(), "/health" | "/ready" | "/metrics")
    {
        return Ok(());
    }
    let client = Limits::client(&state.config, request.headers(), addr);
    state.limits.spend(&client)
}
