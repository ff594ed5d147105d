//! `[limits]`: what one client, and all clients together, may take.
//!
//! - `requests_per_second`: a token bucket per client (governor's GCRA) holding two seconds'
//!   worth; an empty bucket answers 429 TooManyRequests with `Retry-After`. `/health`,
//!   `/ready` and `/metrics` are exempt (probes must not be starved by the traffic they watch).
//! - `reservations_per_client`: live reservations a client may hold; one more answers 429
//!   QuotaExceeded. Here only who the client is ([`Limits::quota`]): the store counts the
//!   client's live reservations and refuses one too many in the same step as the reservation
//!   (`rules::quota`), so the count is exact under a burst, across the nodes of a cluster
//!   and across restarts, and a reservation ended any way (match, expiry, wrong codes, an
//!   operator's release, its session's end) frees its place at once.
//! - `max_sessions`, `max_storage_bytes`: what the store holds; a call whose session or
//!   fields would take it past them answers 507 StoreFull, and nothing is written. Counting
//!   the store (`Store::usage`) walks every session, so it is read at most once a second and
//!   the calls this node lets in meanwhile are added to that reading ([`Count`]): the sum is
//!   never below what the store holds, so on one node the limit is exact even under a burst
//!   of concurrent calls. When that sum says a call does not fit, the store is read again
//!   before it is refused (sessions that expired meanwhile make room), at most every 100 ms
//!   so that a flood at a full store does not walk it on every call, and at once after a
//!   session or entry was ended through this node ([`Limits::made_room`]). Nodes of a cluster
//!   see each other's sessions at their next reading: together they may pass the limit by
//!   what the others added within that second.
//!
//! A client is its Basic-auth user name when the name and password match a configured
//! credential (an unverified name would let anyone spend someone else's bucket, or dodge
//! their own by inventing names), else its address (`http::client`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
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
use crate::broker::{Broker, Keyed};
use crate::config::{Config, LimitsConfig};
use crate::store::{Fields, IdempotencyKey, Usage, fields_bytes};

/// How long a read of the store's usage serves before it is read again.
const USAGE_FRESH_FOR: Duration = Duration::from_secs(1);
/// At the limit, the soonest the store is read again to see whether room was made.
const REREAD_AFTER: Duration = Duration::from_millis(100);
/// Readings under way a refusal waits for at most (each ends within the store's timeout).
const MAX_READING_WAITS: usize = 2;
/// Past this many clients, buckets that are full again are forgotten.
const BUCKETS_KEPT: usize = 100_000;

pub struct Limits {
    config: LimitsConfig,
    buckets: Option<DefaultKeyedRateLimiter<String>>,
    count: Mutex<Count>,
    /// Told when a reading of the store ends ([`Limits::read`]), for refusals that wait for
    /// one begun after room was made.
    read_ended: tokio::sync::Notify,
    /// Keys with a call in flight ([`Limits::key_turn`]).
    keyed: Mutex<HashMap<IdempotencyKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// A keyed call's turn ([`Limits::key_turn`]): the next call with its key waits until it
/// is dropped.
pub struct KeyTurn<'a> {
    limits: &'a Limits,
    key: IdempotencyKey,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for KeyTurn<'_> {
    fn drop(&mut self) {
        let mut keyed = self.limits.keyed.lock();
        // The map's and this turn's: no other call waits for the key.
        if keyed
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            keyed.remove(&self.key);
        }
    }
}

/// Sessions and bytes, as `[limits]` counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Amount {
    sessions: u64,
    bytes: u64,
}

impl Amount {
    fn plus(self, other: Amount) -> Amount {
        Amount {
            sessions: self.sessions.saturating_add(other.sessions),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    fn minus(self, other: Amount) -> Amount {
        Amount {
            sessions: self.sessions.saturating_sub(other.sessions),
            bytes: self.bytes.saturating_sub(other.bytes),
        }
    }
}

impl From<Usage> for Amount {
    fn from(u: Usage) -> Self {
        Amount {
            sessions: u.sessions,
            bytes: u.stored_bytes,
        }
    }
}

/// The store's last reading and what this node let in around it. A call's amount is in
/// `in_flight` from the moment it is let in until its write has returned, then in `done` if
/// it may have been written ([`Room::settle`]: on success or a store failure; an error that
/// changed nothing takes no room). A reading includes
/// every call done before it began, so what the store holds now is at most
/// `store + in_flight + (done − done when the reading began)`.
#[derive(Default)]
struct Count {
    /// The reading applied last; `None` until the first, or when the store does not count.
    store: Option<Amount>,
    /// When the applied reading began.
    read_at: Option<Instant>,
    /// `done` when the applied reading began.
    done_before: Amount,
    in_flight: Amount,
    done: Amount,
    /// Readings begun, and the one applied (a slower, older reading never replaces it).
    begun: u64,
    applied: u64,
    /// Readings ended, applied or not (`begun - ended` are under way), and those of them
    /// that failed (the store did not answer).
    ended: u64,
    failed: u64,
    /// A session or entry was ended through this node since the last reading began: a
    /// refusal reads the store again at once, not after `REREAD_AFTER`.
    room_made: bool,
}

impl Count {
    /// An upper bound of what the store holds now (`None`: not known).
    fn bound(&self) -> Option<Amount> {
        let since = self.done.minus(self.done_before);
        self.store.map(|s| s.plus(self.in_flight).plus(since))
    }
}

/// A call let in by [`Limits::room_for`]: its amount counts as in flight until this is
/// dropped, then as done if the call may have written it ([`Room::settle`]).
pub struct Room<'a> {
    limits: Option<&'a Limits>,
    amount: Amount,
    /// Whether the amount may be in the store now. Until the call settles, yes: a call
    /// dropped half-way (its client gone) may have written.
    landed: bool,
}

impl Room<'_> {
    /// A call nothing is counted for (no limit applies, or the store cannot count).
    pub fn none() -> Self {
        Room {
            limits: None,
            amount: Amount::default(),
            landed: false,
        }
    }

    /// The call's outcome, passed through. What it adds counts as done (until the store's
    /// next reading) when it may be in the store: on success, and on a failure of the store
    /// itself (its commit may have landed). Any other error changed nothing ("an error answer
    /// means the call changed nothing"), so it takes no room: a refused request-interaction
    /// (unknown group, empty pool) must not use up a session of `max_sessions`.
    pub fn settle<T, E: Into<ApiError>>(self, outcome: Result<T, E>) -> Result<T, ApiError> {
        self.settle_when(outcome, |_| true)
    }

    /// [`Self::settle`] for a call under an `Idempotency-Key`: a replay of the first answer
    /// added nothing now (counted as done, each replay took a session of `max_sessions` for
    /// a second: a client replaying one key kept other clients at 507).
    pub fn settle_keyed<E: Into<ApiError>>(
        self,
        outcome: Result<Keyed, E>,
    ) -> Result<Keyed, ApiError> {
        self.settle_when(outcome, |answer| answer.fresh)
    }

    fn settle_when<T, E: Into<ApiError>>(
        mut self,
        outcome: Result<T, E>,
        added: impl FnOnce(&T) -> bool,
    ) -> Result<T, ApiError> {
        let outcome = outcome.map_err(Into::into);
        self.landed = match &outcome {
            Ok(answer) => added(answer),
            Err(err) => matches!(err, ApiError::StoreUnavailable(_) | ApiError::Internal(_)),
        };
        outcome
    }
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        if let Some(limits) = self.limits {
            let mut count = limits.count.lock();
            count.in_flight = count.in_flight.minus(self.amount);
            if self.landed {
                count.done = count.done.plus(self.amount);
            }
        }
    }
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
            count: Mutex::new(Count::default()),
            read_ended: tokio::sync::Notify::new(),
            keyed: Mutex::new(HashMap::new()),
        }
    }

    /// Calls with one `Idempotency-Key` take turns on this node while a limit applies: a
    /// retry sent while the first call was still writing met the room or quota that call
    /// held, and answered 507 or 429 although the first succeeded ("the first answer to that
    /// key"). Taking turns, the retry sees the first call's answer kept, and a limit's
    /// refusal gives way to it (`idempotency::replay_or`). Without limits the store alone
    /// makes them agree, and no turn is taken. (Nodes of a cluster do not take turns with
    /// each other: a retry through another node during the first call's commit can still
    /// meet a limit.)
    pub async fn key_turn(&self, key: &IdempotencyKey) -> Option<KeyTurn<'_>> {
        let limited = self.config.reservations_per_client.is_some()
            || self.config.max_sessions.is_some()
            || self.config.max_storage_bytes.is_some();
        if !limited {
            return None;
        }
        let turn = self.keyed.lock().entry(key.clone()).or_default().clone();
        Some(KeyTurn {
            limits: self,
            key: key.clone(),
            _turn: turn.lock_owned().await,
        })
    }

    /// The client a request counts against: a verified Basic-auth user, else its address.
    pub fn client(config: &Config, headers: &HeaderMap, addr: ClientAddr) -> String {
        if let Some(Authorization(basic)) = headers.typed_get::<Authorization<Basic>>()
            && super::auth::any_known(config, headers)
        {
            return format!("user:{}", basic.username());
        }
        format!("ip:{addr}")
    }

    /// The quota a reservation carries when `reservations_per_client` is set: the client it
    /// counts against and the limit (`rules::quota`; the store counts and refuses).
    pub fn quota(
        &self,
        config: &Config,
        headers: &HeaderMap,
        addr: ClientAddr,
    ) -> Option<crate::store::Quota> {
        let limit = self.config.reservations_per_client?;
        Some(crate::store::Quota {
            client: Self::client(config, headers, addr).into(),
            limit,
        })
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

    /// After a session or stored entry was ended through this node (its end committed): a
    /// call refused for room next reads the store first, so what was freed is seen at once.
    pub fn made_room(&self) {
        if self.config.max_sessions.is_some() || self.config.max_storage_bytes.is_some() {
            self.count.lock().room_made = true;
        }
    }

    /// Before a call that adds a session (`Adds::Session`) or stored `fields` (counted by
    /// their names and values): 507 StoreFull when they would not fit. Keep the returned
    /// [`Room`] until the call's write has returned.
    pub async fn room_for(
        &self,
        broker: &Broker,
        adds: Adds,
        fields: &Fields,
    ) -> Result<Room<'_>, ApiError> {
        if !self.counts_room(adds) {
            return Ok(Room::none());
        }
        self.room_for_bytes(broker, adds, fields_bytes(fields))
            .await
    }

    /// Whether a call that adds this needs room counted (a limit that applies is set).
    pub fn counts_room(&self, adds: Adds) -> bool {
        self.config.max_storage_bytes.is_some()
            || (adds == Adds::Session && self.config.max_sessions.is_some())
    }

    /// [`Self::room_for`] a call that adds `bytes` (a replacement's growth, say).
    pub async fn room_for_bytes(
        &self,
        broker: &Broker,
        adds: Adds,
        bytes: u64,
    ) -> Result<Room<'_>, ApiError> {
        let sessions_limit = self.config.max_sessions.filter(|_| adds == Adds::Session);
        let bytes_limit = self.config.max_storage_bytes;
        if sessions_limit.is_none() && bytes_limit.is_none() {
            return Ok(Room::none());
        }
        let amount = Amount {
            sessions: u64::from(adds == Adds::Session),
            bytes,
        };
        let over = |held: Amount| {
            let after = held.plus(amount);
            if let Some(limit) = sessions_limit.filter(|&l| after.sessions > l) {
                return Some(format!(
                    "the store holds {} live sessions; [limits] max_sessions allows {limit}",
                    held.sessions
                ));
            }
            bytes_limit.filter(|&l| after.bytes > l).map(|limit| {
                format!(
                    "the store holds {} bytes of fields and this call adds {bytes}; [limits] max_storage_bytes allows {limit}",
                    held.bytes
                )
            })
        };
        let read_again = {
            let count = self.count.lock();
            let age = count.read_at.map(|at| at.elapsed());
            let stale = age.is_none_or(|age| age >= USAGE_FRESH_FOR);
            // At the limit, a refusal reads the store again first, but not more often than
            // every REREAD_AFTER: a flood of calls at a full store must not walk it each time.
            let full = count.bound().is_some_and(|held| over(held).is_some());
            stale || (full && (count.room_made || age.is_some_and(|age| age >= REREAD_AFTER)))
        };
        if read_again && !self.read(broker).await {
            // The store cannot answer: the write itself will meet the same failure.
            return Ok(Room::none());
        }
        // A refusal waits for readings under way (one begun because room was made, by a
        // call just before): on PostgreSQL a reading takes a round trip, and a burst right
        // after a delete was refused by the reading before it (an outside audit: 1 of 100
        // calls let in, the rest told the deleted entry's bytes were still held).
        let mut waits = 0;
        loop {
            // Registered under the lock: a reading that ends after it is let go tells it.
            let (ended, failed) = {
                let mut count = self.count.lock();
                let Some(held) = count.bound() else {
                    return Ok(Room::none());
                };
                match over(held) {
                    None => {
                        count.in_flight = count.in_flight.plus(amount);
                        break;
                    }
                    Some(msg) if count.ended >= count.begun || waits == MAX_READING_WAITS => {
                        return Err(ApiError::StoreFull(msg));
                    }
                    Some(_) => (self.read_ended.notified(), count.failed),
                }
            };
            waits += 1;
            ended.await;
            if self.count.lock().failed > failed {
                // The store cannot answer: as for a reading of the call's own (above).
                return Ok(Room::none());
            }
        }
        Ok(Room {
            limits: Some(self),
            amount,
            landed: true,
        })
    }

    /// Reads the store's usage and applies it unless a reading begun later was applied
    /// first. False when the store could not answer.
    async fn read(&self, broker: &Broker) -> bool {
        // One reading at a time: one under way that began after the last room was made sees
        // all this one would, and is waited for. Each reading counts twice the calls that
        // commit between its start and its snapshot (`Count::bound`, the strict side); a
        // burst that began fifty at once (each call finding the count stale), their snapshots
        // late behind the pool, counted 28 live sessions of 20 and refused calls with room
        // for them (an outside audit, PostgreSQL, 2 rounds of 8 after the sessions expired).
        let under_way = {
            let count = self.count.lock();
            (count.ended < count.begun && !count.room_made)
                .then(|| (self.read_ended.notified(), count.failed))
        };
        if let Some((ended, failed)) = under_way {
            ended.await;
            // Failed, it told the callers waiting for it what it told its own: the store
            // cannot answer (they answered 507 on the old count before).
            return self.count.lock().failed == failed;
        }
        let (begun, done_before, at) = {
            let mut count = self.count.lock();
            count.begun += 1;
            // This reading sees every end committed before it began.
            count.room_made = false;
            (count.begun, count.done, Instant::now())
        };
        // Declared before `count`, so dropped after it (the lock is not reentrant).
        let _reading = Reading(self);
        let usage = broker.usage().await;
        let mut count = self.count.lock();
        let store = match usage {
            Ok(None) => {
                tracing::warn!(
                    "[limits] max_sessions / max_storage_bytes: this store does not count its usage; not enforced"
                );
                None
            }
            Ok(Some(usage)) => Some(Amount::from(usage)),
            Err(err) => {
                tracing::debug!(error = %err, "store usage not read");
                count.failed += 1;
                return false;
            }
        };
        if begun > count.applied {
            count.applied = begun;
            count.store = store;
            count.read_at = Some(at);
            count.done_before = done_before;
        }
        true
    }
}

/// A reading of the store under way ([`Limits::read`]): however it ends (applied, failed,
/// or its call gone mid-way, its future dropped), it then counts as ended and wakes the
/// calls waiting for it, which would otherwise wait for a reading that never ends.
struct Reading<'a>(&'a Limits);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.count.lock().ended += 1;
        self.0.read_ended.notify_waiters();
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
