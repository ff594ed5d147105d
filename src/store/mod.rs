//! The store: every piece of state access-broker keeps, behind one domain-level trait.
//!
//! Each method is atomic inside its backend (one SQL transaction, or one locked section), and
//! answers only after its effect is durable for that backend. Backends are picked once from
//! the store URL by [`open`] and then hidden behind `Arc<dyn Store>`.
//!
//! Invariants every backend keeps (the conformance suite in `tests/conformance/`
//! checks them on each):
//! - A number is in at most one live reservation. A reservation is live while `now < expires_at`
//!   and it was neither matched nor released; reads decide this, never a sweeper.
//! - A session holds at most one live reservation per group; reserving again returns the same
//!   number (and code), with its expiry renewed.
//! - A reservation never outlives its session: `expires_at <= session.expires_at`.
//! - Ending a session releases its reservations at once and deletes its data.

mod fields;
mod once;
mod page;
mod types;
mod url;

pub mod local;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod sweeper;
mod waiting;

use std::sync::Arc;

pub use fields::*;
pub use once::{AnswerFn, Created, Creation, IDEMPOTENCY_TTL, IdempotencyKey, Once};
pub use page::{NumbersFilter, StateKind};
pub use types::*;
pub use url::StoreUrl;
pub use waiting::{log_notes, open_waiting};

use crate::domain::{AccessNumber, DataId, GroupName, SessionId};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store error's cause, shared: one failed batch answers each of its callers with the same
/// error, cause chain included.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time; the caller may retry.
    #[error("store unavailable")]
    Unavailable(#[source] Cause),
    /// A stored value breaks the store's own rules (it does not parse back, say).
    #[error("corrupt store data in {what}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Cause,
    },
    /// The backend refused a statement for a reason that will not pass by retrying: a bug in
    /// our SQL or a schema that is not ours.
    #[error("store query failed")]
    Query(#[source] Cause),
    /// The database's schema is newer than this build knows.
    #[error("store schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: usize },
}

impl StoreError {
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::Unavailable(Arc::from(cause.into()))
    }

    pub fn corrupt(what: &'static str, cause: impl Into<BoxError>) -> Self {
        Self::Corrupt {
            what,
            source: Arc::from(cause.into()),
        }
    }

    pub fn query(cause: impl Into<BoxError>) -> Self {
        Self::Query(Arc::from(cause.into()))
    }
}

/// Every operation access-broker performs on its state.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Backend name for logs and metrics: `memory`, `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Applies the resource groups of a node's config at start: creates missing groups, updates
    /// allocation and timeout, adds missing numbers, and retires numbers the config no longer
    /// lists (a reserved one leaves when its reservation ends). Groups not named are untouched.
    /// Returns one line per difference found between the store and the config, for the log.
    async fn apply_groups(&self, groups: &[GroupSpec]) -> Result<Vec<String>, StoreError>;

    /// Creates a session and its data record (same lifetime).
    async fn create_session(&self, new: NewSession) -> Result<Session, StoreError>;

    /// A live session, or `None` once it expired or ended.
    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;

    /// Ends a session: releases its reservations and deletes its data. `false` if unknown.
    async fn end_session(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// Reserves a number of `req.group` for an existing live session.
    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, ReserveError>;

    /// The live reservations `client` holds in every group (`ReserveRequest::client`), as
    /// every node of the store sees them: `[limits] reservations_per_client` counts these.
    async fn client_holds(&self, client: &str) -> Result<Vec<Hold>, StoreError>;

    /// Creates a session and reserves for it in one atomic step: if no number is free,
    /// no session is left behind (request-interaction).
    async fn reserve_new_session(
        &self,
        session: NewSession,
        req: ReserveRequest,
    ) -> Result<(Session, Reservation), ReserveError>;

    /// Runs `creation` unless this key already has an answer, atomically with remembering
    /// `answer(&created)` for [`IDEMPOTENCY_TTL`]: two calls with one key, even at once on
    /// two nodes, create one thing; the second gets [`Once::Replay`] of the first's answer.
    /// A failed creation remembers nothing.
    async fn create_once(
        &self,
        key: &IdempotencyKey,
        creation: Creation,
        answer: AnswerFn,
    ) -> Result<Once, ReserveError>;

    /// A call on `req.number`, decided by [`crate::rules::call::decide`] atomically with its
    /// effects: a live reservation that accepts is ended as matched (and its session too when
    /// asked); an ended one within the grace answers late and changes nothing; a wrong code
    /// counts and may cancel the reservation; a stray call counts and may quarantine.
    async fn match_reservation(&self, req: MatchRequest) -> Result<MatchOutcome, StoreError>;

    /// Ends a number's cool-down or quarantine (an operator's `free`).
    async fn free_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<FreeNumber, StoreError>;

    /// Stores fields under a fresh id.
    async fn put_data(
        &self,
        id: DataId,
        fields: Fields,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError>;
    /// Live stored fields, or `None`.
    async fn data(&self, id: &DataId) -> Result<Option<Fields>, StoreError>;
    /// Adds or replaces fields and sets a new lifetime. `false` if unknown or expired.
    async fn update_data(
        &self,
        id: &DataId,
        fields: Fields,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// Deletes stored fields. `false` if unknown or expired.
    async fn delete_data(&self, id: &DataId) -> Result<bool, StoreError>;

    /// Every group with its counts.
    async fn groups(&self) -> Result<Vec<GroupStats>, StoreError>;
    /// One group with its counts and the numbers `filter` lets through, in the group's order.
    async fn group_page(
        &self,
        name: &GroupName,
        filter: &NumbersFilter,
    ) -> Result<Option<GroupDetail>, StoreError>;
    /// One group with the state of each of its numbers.
    async fn group(&self, name: &GroupName) -> Result<Option<GroupDetail>, StoreError> {
        self.group_page(name, &NumbersFilter::default()).await
    }
    /// Creates a group or changes its settings in one atomic step: fields left `None` keep their
    /// value (a new group takes round-robin and the 30 s default); `numbers` are added, those the
    /// group has already left as they are, refused whole (nothing changed) if one belongs to
    /// another group (`rules::group::numbers_to_add`). A change of allocation
    /// restarts the round-robin walk at the group's first number; any other change keeps it.
    async fn put_group(&self, change: GroupChange) -> Result<PutGroup, StoreError>;
    /// Deletes a group that holds no live reservation.
    async fn delete_group(&self, name: &GroupName) -> Result<DeleteGroup, StoreError>;
    /// Adds numbers to a group, as `put_group` does (those it has already are left as they
    /// are); refused whole if one belongs to another group.
    async fn add_numbers(
        &self,
        group: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<AddNumbers, StoreError>;
    /// Removes a number; a reserved one retires when its reservation ends.
    async fn remove_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<RemoveNumber, StoreError>;
    /// Live reservations matching every given criterion, by group name, then by their
    /// numbers' positions in the group; a phone matches by
    /// [`PhoneNumber::same_digits`](crate::domain::PhoneNumber::same_digits) (the leading `+`
    /// does not count here, unlike in a match).
    async fn find_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, StoreError>;
    /// Releases the live reservation on a number; `false` if it had none.
    async fn release(&self, number: &AccessNumber) -> Result<bool, StoreError>;

    /// Nodes that share this store and when each was last seen (seconds ago), for stores
    /// shared by several nodes; a single-node store answers an empty list.
    async fn nodes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(Vec::new())
    }

    // ---- lifecycle events (`events::deliver` and the admin event stream) ----

    /// The bus this store publishes committed events on. Every backend has one, `[events]`
    /// or not; the default is a bus nothing is ever sent on.
    fn bus(&self) -> crate::events::Bus {
        crate::events::bus()
    }

    /// Records events that belong to no other change (and lets tests put events in the
    /// outbox): queued for the webhook when the store keeps an outbox, then published.
    async fn record_events(&self, events: Vec<crate::events::Event>) -> Result<(), StoreError> {
        let _ = events;
        Ok(())
    }

    /// Up to `limit` outbox events due for an attempt now. On a shared store each one is
    /// leased to this node for a while, so two nodes never deliver one event at once.
    async fn due_events(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }

    /// These events leave the outbox: delivered, or given up after trying for 24 h. One call
    /// for a whole round of deliveries (one commit, not one per event).
    async fn events_done(&self, ids: &[String]) -> Result<(), StoreError> {
        let _ = ids;
        Ok(())
    }

    /// The node stops without attempting these events it had taken: any node may take them
    /// at once (on PostgreSQL their leases end; the embedded stores lease nothing).
    async fn events_unclaim(&self, ids: &[String]) -> Result<(), StoreError> {
        let _ = ids;
        Ok(())
    }

    /// An attempt failed: count it, and try again once `after` has passed (store's clock).
    async fn event_retry(&self, id: &str, after: std::time::Duration) -> Result<(), StoreError> {
        let _ = (id, after);
        Ok(())
    }

    /// Events still owed to the webhook.
    async fn outbox_len(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// How many times the store rebuilt its state from the durable copy after a failed write
    /// since it opened (the local store, `docs/architecture.md` "When a write fails"; 0 for
    /// the others).
    fn rebuilds(&self) -> u64 {
        0
    }

    /// Whether the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Live sessions and stored bytes, for `[limits]`. `None`: this store does not count
    /// (the limits are then not enforced; the HTTP layer logs it once). Callers ask at most
    /// about once a second: a store may count by walking its entries.
    async fn usage(&self) -> Result<Option<Usage>, StoreError> {
        Ok(None)
    }

    /// Frees the space of expired sessions, data and reservations. Never decides expiry:
    /// everything it removes was already invisible.
    async fn purge_expired(&self) -> Result<u64, StoreError>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the backend a store URL names. Fails naming the URL (its password redacted).
pub async fn open(url: &StoreUrl, options: &StoreOptions) -> Result<DynStore, OpenError> {
    match url {
        StoreUrl::Memory => {
            let store: DynStore = Arc::new(
                local::LocalStore::memory(options.clock.clone())
                    .with_events(options.bus.clone(), options.keep_outbox),
            );
            // Memory keeps nothing on disk, but expiries still end and send their events.
            sweeper::spawn(&store, options);
            Ok(store)
        }
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => sqlite::open(path, options).await,
        #[cfg(not(feature = "sqlite"))]
        StoreUrl::Sqlite(_) => Err(OpenError::FeatureMissing {
            url: url.to_string(),
            feature: "sqlite",
        }),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(_) => postgres::open(url, options).await,
        #[cfg(not(feature = "postgres"))]
        StoreUrl::Postgres(_) => Err(OpenError::FeatureMissing {
            url: url.to_string(),
            feature: "postgres",
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store {url}: built without the {feature:?} cargo feature")]
    FeatureMissing { url: String, feature: &'static str },
    #[error("store {url}: {reason}")]
    Failed { url: String, reason: String },
    /// Well-formed, but its database did not answer: worth waiting for (`open_waiting`).
    #[error("store {url}: unreachable: {reason}")]
    Unreachable { url: String, reason: String },
}
