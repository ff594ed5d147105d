//! Shared test support: a fresh store of each backend with a manual clock, and small builders.
//!
//! PostgreSQL runs when `TEST_POSTGRES_URL` is set at build time (each test in its own schema,
//! dropped after unless `KEEP_TEST_DB` is set); without it, tests marked
//! `#[cfg_attr(no_postgres, ignore = "…")]` show as ignored in the summary (see `build.rs` and
//! `pg.rs`). Every store a test opens carries a watchdog (`limit.rs`), so no test can hang.
#![allow(dead_code)]

pub mod chaos;
pub mod cluster;
pub mod limit;
pub mod pg;
pub mod process;
pub mod proxy;

use std::sync::Arc;
use std::time::Duration;

use access_broker::clock::ManualClock;
use access_broker::domain::{
    AccessNumber, Allocation, DataId, GroupName, NodeId, ServiceName, SessionId,
};
use access_broker::store::{
    self, DynStore, GroupSettings, GroupSpec, NewSession, Reservation, ReserveError,
    ReserveRequest, StoreOptions, StoreUrl,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

impl Backend {
    /// Every backend this build tests: PostgreSQL only when enabled (see `pg::ENABLED`).
    pub fn all() -> Vec<Backend> {
        let mut all = vec![Backend::Memory, Backend::Sqlite];
        if pg::ENABLED {
            all.push(Backend::Postgres);
        }
        all
    }
}

/// A store opened for one test, with the clock that test moves by hand.
///
/// Fields drop in order: the store handle goes before its schema or directory.
pub struct TestStore {
    pub store: DynStore,
    pub clock: Arc<ManualClock>,
    pub url: StoreUrl,
    pub backend: Backend,
    /// Where the store publishes lifecycle events (subscribe before the calls).
    pub bus: access_broker::events::Bus,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<pg::Schema>,
    _watchdog: limit::Watchdog,
}

impl TestStore {
    /// A fresh, empty store, or a panic naming what is missing (a test that reaches this for
    /// PostgreSQL in a `no_postgres` build was run with `--include-ignored`).
    pub async fn require(backend: Backend) -> TestStore {
        match TestStore::open(backend).await {
            Some(t) => t,
            None => panic!("{backend:?} store unavailable: this test {}", pg::IGNORE),
        }
    }

    /// A fresh, empty store; `None` when the backend is not available here (PostgreSQL in a
    /// `no_postgres` build, after one `skipped:` line). Prefer [`TestStore::require`] in a test
    /// marked `#[cfg_attr(no_postgres, ignore = …)]`, so a skip is never counted as a pass.
    pub async fn open(backend: Backend) -> Option<TestStore> {
        Self::open_with(backend, false).await
    }

    /// [`TestStore::require`] for a store that keeps a webhook outbox (`[events]` set).
    pub async fn require_with_outbox(backend: Backend) -> TestStore {
        match TestStore::open_with(backend, true).await {
            Some(t) => t,
            None => panic!("{backend:?} store unavailable: this test {}", pg::IGNORE),
        }
    }

    /// [`TestStore::open`], keeping an outbox when asked.
    pub async fn open_with(backend: Backend, keep_outbox: bool) -> Option<TestStore> {
        let watchdog = limit::Watchdog::for_test();
        let clock = Arc::new(ManualClock::starting_now());
        let (url, dir, schema) = match backend {
            Backend::Memory => (StoreUrl::Memory, None, None),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = StoreUrl::Sqlite(dir.path().join("store.db"));
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let schema = pg::Schema::create().await?;
                (schema.url(), None, Some(schema))
            }
        };
        let options = StoreOptions {
            keep_outbox,
            ..options(&clock)
        };
        let store = store::open(&url, &options).await.expect("store opens");
        Some(TestStore {
            store,
            clock,
            url,
            backend,
            bus: options.bus.clone(),
            _dir: dir,
            _schema: schema,
            _watchdog: watchdog,
        })
    }

    /// Another handle on the same store, as a second node (PostgreSQL) would have.
    pub async fn reopen(&self) -> DynStore {
        store::open(&self.url, &options(&self.clock))
            .await
            .expect("store reopens")
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn with_group(&self, name: &str, size: u32, allocation: Allocation) -> GroupName {
        let spec = group(name, size, allocation);
        let group = spec.settings.name.clone();
        self.store
            .apply_groups(&[spec])
            .await
            .expect("apply groups");
        group
    }

    pub async fn session(&self, ttl: Duration) -> SessionId {
        self.session_with(ttl, vec![]).await
    }

    pub async fn session_with(&self, ttl: Duration, fields: Vec<(&str, &str)>) -> SessionId {
        let new = new_session(ttl, fields);
        let id = new.id.clone();
        self.store
            .create_session(new)
            .await
            .expect("create session");
        id
    }

    pub async fn reserve(
        &self,
        session: &SessionId,
        group: &GroupName,
    ) -> Result<Reservation, ReserveError> {
        self.store.reserve(reserve_request(session, group)).await
    }
}

pub fn options(clock: &Arc<ManualClock>) -> StoreOptions {
    StoreOptions {
        clock: clock.clone(),
        timeout: Duration::from_secs(5),
        ..StoreOptions::default()
    }
}

pub fn node() -> NodeId {
    NodeId::parse("7").expect("node id")
}

/// The three-digit prefix of a test group's numbers: `555` for DNIS, else derived from the name,
/// so groups of one test never share a number.
pub fn prefix(name: &str) -> u32 {
    if name == "DNIS" {
        555
    } else {
        600 + name.bytes().map(u32::from).sum::<u32>() % 300
    }
}

/// A group of `size` numbers `{prefix}0000…` (`5550000…` for DNIS), in order.
pub fn group(name: &str, size: u32, allocation: Allocation) -> GroupSpec {
    let prefix = prefix(name);
    GroupSpec {
        settings: GroupSettings {
            name: GroupName::parse(name).expect("group name"),
            allocation,
            booking_timeout: None,
            policy: Default::default(),
        },
        numbers: (0..size)
            .map(|i| number(&format!("{prefix}{i:04}")))
            .collect(),
    }
}

pub fn number(s: &str) -> AccessNumber {
    AccessNumber::parse(s).expect("number")
}

pub fn new_session(ttl: Duration, fields: Vec<(&str, &str)>) -> NewSession {
    NewSession {
        id: SessionId::generate(&node()),
        service: ServiceName::parse("callback").expect("service"),
        data_id: DataId::generate(&node()),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ttl,
    }
}

pub fn reserve_request(session: &SessionId, group: &GroupName) -> ReserveRequest {
    ReserveRequest {
        session: session.clone(),
        group: group.clone(),
        timeout: None,
        code: None,
        provide_code: false,
        phone: None,
        pool_health: true,
        quota: None,
    }
}
