//! `[limits]`: what one client, and all clients together, may take.
//!
//! - `requests_per_second`: a token bucket per client (governor's GCRA) holding two seconds'
//!   worth; an empty bucket answers 429 TooManyRequests with `Retry-After`. `/health`,
//!   `/ready` and `/metrics` are exempt (probes must not be starved by the traffic they watch).
//! - `reservations_per_client`: live reservations a client may hold; one more answers 429
//!   QuotaExceeded. Counted **per node**, from the reservations this node handed out since it
//!   started (the store does not keep who asked for a reservation), until
//!   they expire, or are matched, cancelled by wrong codes, released by an operator or their
//!   session ends through this node (an end through another node is seen only at expiry, so
//!   the count errs on the strict side). A client spread
//!   over N nodes of a cluster may hold up to N times the limit.
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

use std::collections::{HashMap, HashSet};
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
use crate::domain::{GroupName, SessionId};
use crate::store::{Fields, IdempotencyKey, Usage, fields_bytes};

/// How long a read of the store's usage serves before it is read again.
const USAGE_FRESH_FOR: Duration = Duration::from_secs(1);
/// At the limit, the soonest the store is read again to see whether room was made.
const REREAD_AFTER: Duration = Duration::from_millis(100);
/// Past this many clients, buckets that are full again are forgotten.
const BUCKETS_KEPT: usize = 100_000;

pub struct Limits {
    config: LimitsConfig,
    buckets: Option<DefaultKeyedRateLimiter<String>>,
    held: Mutex<Held>,
    count: Mutex<Count>,
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

/// A reservation as the quota counts it: a session's hold in one group (a session holds at
/// most one reservation per group, so this names it).
pub type Hold = (SessionId, GroupName);

/// The reservations this node handed out, by client.
#[derive(Default)]
struct Held {
    by_client: HashMap<String, HashMap<Hold, Instant>>,
    client_of: HashMap<SessionId, String>,
    /// Places taken by calls still in flight, by client (`QuotaPlace`).
    pending: HashMap<String, Pending>,
}

/// A client's calls in flight, as places in its quota.
#[derive(Default)]
struct Pending {
    /// request-access calls by the hold they ask for, with how many ask for it: concurrent
    /// calls of one session in one group get one reservation, so they take one place
    /// between them (each took its own: a session's burst of renewals was refused 429).
    holds: HashMap<Hold, u32>,
    /// request-interaction calls: each makes a session of its own, so a reservation each.
    fresh: u64,
}

impl Pending {
    /// Places taken, besides the holds in `mine` (a hold recorded while a twin call of it
    /// is still in flight counts once).
    fn places(&self, mine: Option<&HashMap<Hold, Instant>>) -> u64 {
        let new = self
            .holds
            .keys()
            .filter(|h| mine.is_none_or(|m| !m.contains_key(*h)))
            .count();
        new as u64 + self.fresh
    }

    fn is_empty(&self) -> bool {
        self.holds.is_empty() && self.fresh == 0
    }
}

/// A call's place in its client's quota, from [`Limits::check_quota`] until the call ends:
/// while it waits for the store it counts, so concurrent calls of one client cannot all pass
/// a check of the same count (a burst of 150 took 150 places of 5). [`QuotaPlace::record`]
/// turns it into a held reservation; dropped without, it frees the place.
pub struct QuotaPlace<'a> {
    limits: Option<&'a Limits>,
    client: String,
    /// The place this call takes while in flight: `Some(None)` a fresh reservation's,
    /// `Some(Some(hold))` a share of its hold's; `None` when it takes none (a renewal).
    pending: Option<Option<Hold>>,
}

impl QuotaPlace<'_> {
    /// The reservation was handed out: it counts as held from now on, for `expires_in`.
    pub fn record(self, hold: Hold, expires_in: Duration) {
        if let Some(limits) = self.limits {
            limits.record(&self.client, hold, expires_in);
        }
    }
}

impl Drop for QuotaPlace<'_> {
    fn drop(&mut self) {
        let (Some(limits), Some(place)) = (self.limits, self.pending.take()) else {
            return;
        };
        let mut held = limits.held.lock();
        let Some(pending) = held.pending.get_mut(&self.client) else {
            return;
        };
        match place {
            None => pending.fresh = pending.fresh.saturating_sub(1),
            Some(hold) => {
                if let Some(n) = pending.holds.get_mut(&hold) {
                    *n -= 1;
                    if *n == 0 {
                        pending.holds.remove(&hold);
                    }
                }
            }
        }
        if pending.is_empty() {
            held.pending.remove(&self.client);
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
            held: Mutex::new(Held::default()),
            count: Mutex::new(Count::default()),
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

    /// Before a reservation: refused when the client already holds its quota. Asking again
    /// for a `hold` the client holds (a renewal), or one another of its calls is asking
    /// for, always passes; `None` asks for a new session's (request-interaction).
    /// Keep the returned place until the call's reservation is recorded or refused.
    pub fn check_quota(
        &self,
        client: &str,
        hold: Option<&Hold>,
    ) -> Result<QuotaPlace<'_>, ApiError> {
        let Some(limit) = self.config.reservations_per_client else {
            return Ok(QuotaPlace {
                limits: None,
                client: String::new(),
                pending: None,
            });
        };
        let mut held = self.held.lock();
        let Held {
            by_client, pending, ..
        } = &mut *held;
        let now = Instant::now();
        let place = |pending| QuotaPlace {
            limits: Some(self),
            client: client.to_owned(),
            pending,
        };
        let mine = by_client.get_mut(client).map(|mine| {
            mine.retain(|_, until| *until > now);
            &*mine
        });
        if let Some(h) = hold
            && mine.is_some_and(|m| m.contains_key(h))
        {
            return Ok(place(None));
        }
        let waiting = pending.entry(client.to_owned()).or_default();
        if let Some(n) = hold.and_then(|h| waiting.holds.get_mut(h)) {
            *n += 1;
            return Ok(place(Some(hold.cloned())));
        }
        let count = mine.map_or(0, |m| m.len() as u64);
        let in_flight = waiting.places(mine);
        if count + in_flight >= limit {
            if waiting.is_empty() {
                pending.remove(client);
            }
            // `in_flight`: the client's other calls still waiting for a number.
            let waiting = match in_flight {
                0 => String::new(),
                n => format!(" and {n} more on the way"),
            };
            return Err(ApiError::QuotaExceeded(format!(
                "this client holds {count} live reservations{waiting}; [limits] reservations_per_client allows {limit}"
            )));
        }
        match hold {
            Some(h) => {
                waiting.holds.insert(h.clone(), 1);
            }
            None => waiting.fresh += 1,
        }
        Ok(place(Some(hold.cloned())))
    }

    /// After a reservation was handed out to `client`, held for `expires_in`.
    pub fn record(&self, client: &str, hold: Hold, expires_in: Duration) {
        if self.config.reservations_per_client.is_none() {
            return;
        }
        let mut held = self.held.lock();
        let until = Instant::now() + expires_in;
        held.client_of.insert(hold.0.clone(), client.to_owned());
        held.by_client
            .entry(client.to_owned())
            .or_default()
            .insert(hold, until);
        if held.client_of.len() > BUCKETS_KEPT {
            let now = Instant::now();
            let Held {
                by_client,
                client_of,
                ..
            } = &mut *held;
            by_client.retain(|_, mine| {
                mine.retain(|_, until| *until > now);
                !mine.is_empty()
            });
            let live: HashSet<&SessionId> = by_client
                .values()
                .flat_map(|mine| mine.keys().map(|(session, _)| session))
                .collect();
            client_of.retain(|session, _| live.contains(session));
        }
    }

    /// A reservation of `session` ended here: the one in `group` (matched), or all of them
    /// (`None`: the session ended).
    pub fn forget(&self, session: &SessionId, group: Option<&GroupName>) {
        if self.config.reservations_per_client.is_none() {
            return;
        }
        let mut held = self.held.lock();
        let client = match group {
            Some(_) => held.client_of.get(session).cloned(),
            None => held.client_of.remove(session),
        };
        let Some(mine) = client.and_then(|c| held.by_client.get_mut(&c)) else {
            return;
        };
        match group {
            Some(group) => {
                mine.remove(&(session.clone(), group.clone()));
            }
            None => mine.retain(|(held_by, _), _| held_by != session),
        }
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
        let mut count = self.count.lock();
        let Some(held) = count.bound() else {
            return Ok(Room::none());
        };
        if let Some(msg) = over(held) {
            return Err(ApiError::StoreFull(msg));
        }
        count.in_flight = count.in_flight.plus(amount);
        Ok(Room {
            limits: Some(self),
            amount,
            landed: true,
        })
    }

    /// Reads the store's usage and applies it unless a reading begun later was applied
    /// first. False when the store could not answer.
    async fn read(&self, broker: &Broker) -> bool {
        let (begun, done_before, at) = {
            let mut count = self.count.lock();
            count.begun += 1;
            // This reading sees every end committed before it began.
            count.room_made = false;
            (count.begun, count.done, Instant::now())
        };
        let store = match broker.usage().await {
            Ok(None) => {
                tracing::warn!(
                    "[limits] max_sessions / max_storage_bytes: this store does not count its usage; not enforced"
                );
                None
            }
            Ok(Some(usage)) => Some(Amount::from(usage)),
            Err(err) => {
                tracing::debug!(error = %err, "store usage not read");
                return false;
            }
        };
        let mut count = self.count.lock();
        if begun > count.applied {
            count.applied = begun;
            count.store = store;
            count.read_at = Some(at);
            count.done_before = done_before;
        }
        true
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
