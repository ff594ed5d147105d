//! The shared store (`postgres://…`): any number of nodes on one PostgreSQL database.
//!
//! Every operation is one transaction. Correctness across nodes rests on row locks, never on
//! a node's memory: a reservation lives on its number's row (so a number cannot carry two),
//! claims take free rows with `FOR UPDATE SKIP LOCKED`, and a reserving session's row is
//! locked first so one session cannot get two numbers in a group. The only clock is the
//! database's (tests may freeze it, see `Clock::frozen`), so node clock skew cannot end or
//! extend a reservation.
//!
//! Any failure to reach the database, and any operation slower than the configured timeout,
//! is `StoreError::Unavailable` (503); the pool reconnects by itself. The timeout never covers
//! a `COMMIT` (see `tx.rs`).
//!
//! The batches' maps (`claim.rs`, `reserve.rs`, `matches.rs`, `rows.rs`, `calls.rs`) are
//! hashbrown's (foldhash), as the engine's: a batch builds and probes several maps a call,
//! and SipHash showed in its profile. A batch holds at most `batch::MAX_BATCH` calls, so a
//! client choosing its keys cannot make a map large.

mod admin;
mod apply;
mod batch;
mod calls;
mod claim;
mod ending;
mod housekeeping;
mod interacting;
mod matches;
mod migrate;
mod once;
pub mod outbox;
mod prepared;
mod purge;
mod reserve;
mod retry_after;
mod rows;
mod sessions;
mod storing;
mod tls;
mod tx;
mod usage;
mod views;
mod walks;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

use super::{
    AddNumbers, AnswerFn, Creation, DeleteGroup, DynStore, Fields, FreeNumber, GroupChange,
    GroupDetail, GroupSpec, GroupStats, IdempotencyKey, MatchOutcome, MatchRequest, NewSession,
    NumbersFilter, Once, OpenError, PendingEvent, PutGroup, RemoveNumber, Reservation,
    ReservationFilter, ReservationView, ReserveError, ReserveRequest, Session, Store, StoreError,
    StoreOptions, StoreUrl, sweeper,
};
use crate::clock::Clock;
use crate::domain::{AccessNumber, DataId, GroupName, SessionId};

pub(crate) use self::tx::{before, commit, retried, timed_out};

/// Runs `$f(tx, now, &arg…)` in a transaction (see `with_tx`), cloning each argument into
/// every attempt so the future borrows only the transaction.
macro_rules! in_tx {
    ($store:expr, $f:path $(, $arg:ident)*) => {
        $store.db.with_tx(move |tx, now| {
            $( let $arg = $arg.clone(); )*
            Box::pin(async move { $f(tx, now $(, &$arg)*).await })
        })
    };
}

/// `in_tx!` for an operation that also returns its events (`Db::with_events`).
macro_rules! in_tx_events {
    ($store:expr, $f:path $(, $arg:ident)*) => {
        $store.db.with_events(move |tx, now| {
            $( let $arg = $arg.clone(); )*
            Box::pin(async move { $f(tx, now $(, &$arg)*).await })
        })
    };
}

/// `in_tx!` for an admin change of a group's numbers, bounded by [`admin::BULK_TIMEOUT`]
/// (or the store's timeout when longer) instead of the store's timeout: adding the 100,000
/// numbers one request may carry took 3–5 s on a loaded machine, and two at once answered
/// 503 at the store's 5 s although nothing was wrong.
macro_rules! in_bulk_tx {
    ($store:expr, $f:path $(, $arg:ident)*) => {{
        let bound = admin::BULK_TIMEOUT.max($store.db.timeout);
        $store.db.with_tx_within(bound, move |tx, now| {
            $( let $arg = $arg.clone(); )*
            Box::pin(async move {
                admin::allow(tx, bound).await?;
                $f(tx, now $(, &$arg)*).await
            })
        })
    }};
}

pub struct PgStore {
    db: Db,
    reserving: batch::Batcher<reserve::Reserving>,
    matching: batch::Batcher<matches::Matching>,
    creating: batch::Batcher<sessions::Creating>,
    ending: batch::Batcher<ending::Ending>,
    writing: batch::Batcher<storing::Writing>,
    deleting: batch::Batcher<storing::Deleting>,
    interacting: batch::Batcher<interacting::Interacting>,
    node_id: String,
}

/// The connection pool with the clock and bound every transaction runs under; cheap to
/// clone, so the batcher's tasks hold their own.
#[derive(Clone)]
struct Db {
    pool: Pool,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    /// Committed events go live here (see [`Db::publish`]).
    bus: crate::events::Bus,
    /// Whether events are written to `events_outbox` (`[events]` set).
    keep_outbox: bool,
    /// Where this node's round-robin walks stand (`walks.rs`).
    walks: Arc<walks::Walks>,
}

pub async fn open(url: &StoreUrl, options: &StoreOptions) -> Result<DynStore, OpenError> {
    let StoreUrl::Postgres(raw) = url else {
        return Err(OpenError::Failed {
            url: url.to_string(),
            reason: "not a postgres:// URL".into(),
        });
    };
    let fail = |reason: String| OpenError::Failed {
        url: url.to_string(),
        reason,
    };
    let mut config: tokio_postgres::Config = raw.parse().map_err(|e| fail(format!("{e}")))?;
    let ms = options.timeout.as_millis();
    // Keep any options the URL carries (tests pass their schema as search_path there).
    // A transaction of this node left waiting for its next statement longer than the store
    // timeout is ended by the database, its locks with it: the node gave up on it by then,
    // and a node cut off from the database mid-transaction (a partition that keeps the
    // connection open, a node stopped or paused) held its rows, its numbers and its clients'
    // locks, for as long as the connection stayed open: every other node's calls on them
    // answered 503 or found the pool empty (see `docs/architecture.md`, "Outcome unknown").
    let extra = config.get_options().map(str::to_owned).unwrap_or_default();
    config.options(
        format!(
            "{extra} -c statement_timeout={ms} -c lock_timeout={ms} \
             -c idle_in_transaction_session_timeout={ms} -c client_min_messages=warning"
        )
        .trim(),
    );
    config.connect_timeout(options.timeout);
    config.application_name(format!("access-broker node {}", options.node_id));
    let manager = Manager::from_config(
        config,
        tls::connector().map_err(|e| fail(format!("TLS: {e}")))?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(options.max_connections.max(1))
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .recycle_timeout(Some(options.timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let db = Db {
        pool,
        clock: options.clock.clone(),
        timeout: options.timeout,
        bus: options.bus.clone(),
        keep_outbox: options.keep_outbox,
        walks: Arc::default(),
    };
    let store = PgStore {
        reserving: batch::Batcher::start(db.clone(), batch::parallel(options.max_connections)),
        matching: batch::Batcher::start(db.clone(), batch::parallel(options.max_connections)),
        creating: batch::Batcher::start(db.clone(), batch::parallel(options.max_connections)),
        ending: batch::Batcher::start(db.clone(), batch::parallel(options.max_connections)),
        writing: batch::Batcher::start(db.clone(), batch::parallel(options.max_connections)),
        deleting: batch::Batcher::start(db.clone(), batch::parallel(options.max_connections)),
        interacting: batch::Batcher::start(db.clone(), batch::parallel(options.max_connections)),
        db,
        node_id: options.node_id.clone(),
    };
    // Not answering (down, starting, refusing connections, a connection lost mid-way) may
    // pass; a refusal may not.
    let opening = |e: StoreError| match e {
        StoreError::Unavailable(_) => OpenError::Unreachable {
            url: url.to_string(),
            reason: describe(&e),
        },
        _ => fail(describe(&e)),
    };
    in_tx!(store, migrate::migrate).await.map_err(opening)?;
    let node = store.node_id.clone();
    in_tx!(store, housekeeping::touch_node, node)
        .await
        .map_err(opening)?;
    let store: DynStore = Arc::new(store);
    sweeper::spawn(&store, options);
    Ok(store)
}

/// The error's chain in one line, for startup messages.
fn describe(e: &StoreError) -> String {
    crate::telemetry::Chain(e).to_string()
}

/// Maps a driver error: unreachable, timed out, overloaded, or a lost race the caller may
/// retry are `Unavailable`; anything else is a bug in our SQL or data.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let transient = match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                // The database ended a transaction the node left waiting (it was stopped,
                // paused or cut off; see `open`): nothing of it was committed.
                || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                || *code == SqlState::UNIQUE_VIOLATION
        }
    };
    if transient {
        StoreError::unavailable(e)
    } else {
        StoreError::query(e)
    }
}

impl PgStore {
    /// One transaction of a group's switch to least recently used (`admin::order_by_age`,
    /// [`admin::ORDER_BATCH`] rows, within the store's timeout however large the group);
    /// returns how many rows it found to copy.
    async fn order_by_age(&self, name: &GroupName) -> Result<u64, StoreError> {
        self.db
            .with_tx(|tx, _| {
                let name = name.clone();
                Box::pin(
                    async move { admin::order_by_age(tx, name.as_str(), admin::ORDER_BATCH).await },
                )
            })
            .await
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn apply_groups(&self, groups: &[GroupSpec]) -> Result<Vec<String>, StoreError> {
        let groups = groups.to_vec();
        // Applying a million-number group at start takes longer than any request may.
        self.db
            .with_tx_within(apply::TIMEOUT, move |tx, now| {
                let groups = groups.clone();
                Box::pin(async move { apply::apply_groups(tx, now, &groups).await })
            })
            .await
    }

    async fn create_session(&self, new: NewSession) -> Result<Session, StoreError> {
        self.creating.call(new).await
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        in_tx!(self, sessions::get, id).await
    }

    async fn end_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.ending.call(id.clone()).await
    }

    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, ReserveError> {
        self.reserving.call(req).await
    }

    async fn client_holds(&self, client: &str) -> Result<Vec<crate::store::Hold>, StoreError> {
        let client = client.to_owned();
        in_tx!(self, usage::client_holds, client).await
    }

    async fn reserve_new_session(
        &self,
        session: NewSession,
        req: ReserveRequest,
    ) -> Result<(Session, Reservation), ReserveError> {
        self.interacting.call((session, req)).await
    }

    async fn create_once(
        &self,
        key: &IdempotencyKey,
        creation: Creation,
        answer: AnswerFn,
    ) -> Result<Once, ReserveError> {
        let walks = self.db.walks.clone();
        in_tx_events!(self, once::create_once, walks, key, creation, answer).await
    }

    async fn match_reservation(&self, req: MatchRequest) -> Result<MatchOutcome, StoreError> {
        self.matching.call(req).await
    }

    async fn free_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<FreeNumber, StoreError> {
        in_tx!(self, calls::free_number, group, number).await
    }

    async fn put_data(&self, id: DataId, fields: Fields, ttl: Duration) -> Result<(), StoreError> {
        let write = (storing::Write::New, (id, fields, ttl));
        self.writing.call(write).await.map(|_| ())
    }

    async fn data(&self, id: &DataId) -> Result<Option<Fields>, StoreError> {
        in_tx!(self, sessions::data, id).await
    }

    async fn update_data(
        &self,
        id: &DataId,
        fields: Fields,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let write = (storing::Write::Change, (id.clone(), fields, ttl));
        self.writing.call(write).await
    }

    async fn delete_data(&self, id: &DataId) -> Result<bool, StoreError> {
        self.deleting.call(id.clone()).await
    }

    async fn groups(&self) -> Result<Vec<GroupStats>, StoreError> {
        in_tx!(self, views::groups).await
    }

    async fn group_page(
        &self,
        name: &GroupName,
        filter: &NumbersFilter,
    ) -> Result<Option<GroupDetail>, StoreError> {
        in_tx!(self, views::group, name, filter).await
    }

    async fn put_group(&self, change: GroupChange) -> Result<PutGroup, StoreError> {
        let name = change.name.clone();
        let to_lru = change.allocation == Some(crate::domain::Allocation::LeastRecentlyUsed);
        let put = in_bulk_tx!(self, admin::put_group, change).await?;
        // Switched to least recently used: its order is copied in bounded transactions after
        // the switch (each within the store's timeout, however large the group), and the
        // change is answered once the order is complete.
        if to_lru {
            while self.order_by_age(&name).await? > 0 {}
        }
        Ok(put)
    }

    async fn delete_group(&self, name: &GroupName) -> Result<DeleteGroup, StoreError> {
        in_bulk_tx!(self, admin::delete_group, name).await
    }

    async fn add_numbers(
        &self,
        group: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<AddNumbers, StoreError> {
        in_bulk_tx!(self, admin::add_numbers, group, numbers).await
    }

    async fn remove_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<RemoveNumber, StoreError> {
        in_tx!(self, admin::remove_number, group, number).await
    }

    async fn find_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, StoreError> {
        in_tx!(self, views::find_reservations, filter).await
    }

    async fn release(&self, number: &AccessNumber) -> Result<bool, StoreError> {
        in_tx_events!(self, calls::release_number, number).await
    }

    async fn nodes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        in_tx!(self, housekeeping::nodes).await
    }

    fn bus(&self) -> crate::events::Bus {
        self.db.bus.clone()
    }

    async fn record_events(&self, events: Vec<crate::events::Event>) -> Result<(), StoreError> {
        self.db
            .with_events(move |_, _| {
                let events = events.clone();
                Box::pin(async move { Ok::<_, StoreError>(((), events)) })
            })
            .await
    }

    async fn due_events(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        in_tx!(self, outbox::claim, limit).await
    }

    async fn events_done(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        in_tx!(self, outbox::done, ids).await
    }

    async fn event_retry(&self, id: &str, after: Duration) -> Result<(), StoreError> {
        let id = id.to_owned();
        in_tx!(self, outbox::retry, id, after).await
    }

    async fn events_unclaim(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        in_tx!(self, outbox::unclaim, ids).await
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        in_tx!(self, outbox::len).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        in_tx!(self, housekeeping::ping).await
    }

    async fn usage(&self) -> Result<Option<super::Usage>, StoreError> {
        in_tx!(self, usage::usage).await.map(Some)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut purged = 0;
        for table in purge::TABLES {
            for _ in 0..purge::MAX_BATCHES {
                let n = in_tx!(self, purge::purge_batch, table).await?;
                purged += n;
                if n < purge::BATCH as u64 {
                    break;
                }
            }
        }
        let node = self.node_id.clone();
        Ok(purged + in_tx_events!(self, housekeeping::purge, node).await?)
    }
}
