//! A store whose database does not answer yet at start (a reboot, a compose file starting
//! the nodes with their database): the node serves at once, every store call answers 503
//! `StoreUnavailable` (`/ready` too, `/health` stays 200), and a background task retries
//! the opening with backoff, logged, until it succeeds; from then on calls go to the real
//! store. A malformed URL or a refusal that waiting cannot cure (wrong password, unknown
//! database, schema too new) still fails `open` at once (exit 2). The config's groups are
//! part of the opening: a PostgreSQL database that stops answering while they are applied
//! is waited for too (the node exited 2 when the connection broke then).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{
    AddNumbers, AnswerFn, Creation, DeleteGroup, DynStore, Fields, FreeNumber, GroupChange,
    GroupDetail, GroupSpec, GroupStats, Hold, IdempotencyKey, MatchOutcome, MatchRequest,
    NewSession, NumbersFilter, Once, OpenError, PendingEvent, PutGroup, RemoveNumber, Reservation,
    ReservationFilter, ReservationView, ReserveError, ReserveRequest, Session, Store, StoreError,
    StoreOptions, StoreUrl, Usage,
};
use crate::domain::{AccessNumber, DataId, GroupName, SessionId};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How long a PostgreSQL store's first opening may take before the node serves without it
/// (503, `/ready` 503) while the opening goes on in the background: a database host that
/// drops packets (still booting, a partition) would otherwise hold the listener, and
/// `/health`, back for the whole connect timeout.
const FIRST_OPEN: Duration = Duration::from_secs(1);

type Opening = tokio::task::JoinHandle<Result<DynStore, OpenError>>;

/// Opens the store and applies `groups` to it (logging every difference found); if its
/// database is unreachable, or a PostgreSQL one has not answered within [`FIRST_OPEN`] or
/// stops answering while the groups are applied, returns a [`WaitingStore`] that keeps
/// trying in the background and applies `groups` once it gets through. An embedded store's
/// opening (loading a large file) is awaited whole.
pub async fn open_waiting(
    url: &StoreUrl,
    options: &StoreOptions,
    groups: Vec<GroupSpec>,
) -> Result<DynStore, OpenError> {
    let mut opening: Opening = tokio::spawn({
        let (url, options) = (url.clone(), options.clone());
        async move { super::open(&url, &options).await }
    });
    let first = match url {
        StoreUrl::Postgres(_) => tokio::time::timeout(FIRST_OPEN, &mut opening).await.ok(),
        _ => Some((&mut opening).await),
    };
    let pending = match first {
        Some(Ok(Err(OpenError::Unreachable { url: shown, reason }))) => {
            tracing::warn!(store = %shown, %reason, "store unreachable; serving 503 and retrying");
            None
        }
        Some(Ok(Ok(real))) => match real.apply_groups(&groups).await {
            Ok(notes) => {
                log_notes(&real, notes);
                return Ok(real);
            }
            Err(StoreError::Unavailable(cause)) if matches!(url, StoreUrl::Postgres(_)) => {
                tracing::warn!(store = %url, error = %crate::telemetry::Chain(&*cause), "store stopped answering while the config was applied; serving 503 and retrying");
                None
            }
            Err(e) => {
                return Err(OpenError::Failed {
                    url: url.to_string(),
                    reason: e.to_string(),
                });
            }
        },
        Some(Ok(Err(other))) => return Err(other),
        Some(Err(join)) => {
            return Err(OpenError::Unreachable {
                url: url.to_string(),
                reason: join.to_string(),
            });
        }
        None => {
            tracing::warn!(store = %url, "store not answering yet; serving 503 while it opens");
            Some(opening)
        }
    };
    let store = Arc::new(WaitingStore {
        real: OnceLock::new(),
        bus: options.bus.clone(),
    });
    tokio::spawn(keep_trying(
        Arc::downgrade(&store),
        url.clone(),
        options.clone(),
        groups,
        pending,
    ));
    Ok(store)
}

/// Waits for `pending` (the first opening, still under way), then retries with backoff until
/// the store opens and takes the groups.
async fn keep_trying(
    store: std::sync::Weak<WaitingStore>,
    url: StoreUrl,
    options: StoreOptions,
    groups: Vec<GroupSpec>,
    pending: Option<Opening>,
) {
    let mut wait = FIRST_RETRY;
    let mut attempt = pending;
    loop {
        let opened = match attempt.take() {
            Some(first) => first.await.unwrap_or_else(|join| {
                Err(OpenError::Unreachable {
                    url: url.to_string(),
                    reason: join.to_string(),
                })
            }),
            None => {
                tokio::time::sleep(wait).await;
                if store.upgrade().is_none() {
                    return;
                }
                super::open(&url, &options).await
            }
        };
        let opened = match opened {
            Ok(real) => real.apply_groups(&groups).await.map(|notes| (real, notes)),
            Err(e) => Err(StoreError::unavailable(e.to_string())),
        };
        match opened {
            Ok((real, notes)) => {
                log_notes(&real, notes);
                tracing::info!(store = %url, "store reachable; serving");
                if let Some(waiting) = store.upgrade() {
                    let _ = waiting.real.set(real);
                }
                return;
            }
            Err(e) => {
                wait = (wait * 2).min(MAX_RETRY);
                tracing::warn!(store = %url, error = %crate::telemetry::Chain(&e), retry_in = ?wait, "store still unreachable");
            }
        }
    }
}

/// What applying the config found in the store that it changed, one warning each.
pub fn log_notes(store: &DynStore, notes: Vec<String>) {
    for note in notes {
        tracing::warn!(store = store.kind(), "{note}");
    }
}

pub struct WaitingStore {
    real: OnceLock<DynStore>,
    /// The bus the real store will publish on (the node's, from the options).
    bus: crate::events::Bus,
}

impl WaitingStore {
    fn real(&self) -> Result<&DynStore, StoreError> {
        self.real
            .get()
            .ok_or_else(|| StoreError::unavailable("the store is not reachable yet"))
    }
}

#[async_trait::async_trait]
impl Store for WaitingStore {
    fn kind(&self) -> &'static str {
        self.real.get().map_or("postgres", |s| s.kind())
    }

    /// Until the store opens, the groups wait with the opener (which applies them first).
    async fn apply_groups(&self, groups: &[GroupSpec]) -> Result<Vec<String>, StoreError> {
        match self.real.get() {
            Some(real) => real.apply_groups(groups).await,
            None => Ok(Vec::new()),
        }
    }

    async fn create_session(&self, new: NewSession) -> Result<Session, StoreError> {
        Ok(self.real()?.create_session(new).await?)
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        Ok(self.real()?.session(id).await?)
    }

    async fn end_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.real()?.end_session(id).await?)
    }

    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, ReserveError> {
        Ok(self.real()?.reserve(req).await?)
    }

    async fn reserve_new_session(
        &self,
        session: NewSession,
        req: ReserveRequest,
    ) -> Result<(Session, Reservation), ReserveError> {
        Ok(self.real()?.reserve_new_session(session, req).await?)
    }

    async fn create_once(
        &self,
        key: &IdempotencyKey,
        creation: Creation,
        answer: AnswerFn,
    ) -> Result<Once, ReserveError> {
        Ok(self.real()?.create_once(key, creation, answer).await?)
    }

    async fn free_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<FreeNumber, StoreError> {
        self.real()?.free_number(group, number).await
    }

    fn bus(&self) -> crate::events::Bus {
        self.bus.clone()
    }

    async fn record_events(&self, events: Vec<crate::events::Event>) -> Result<(), StoreError> {
        self.real()?.record_events(events).await
    }

    async fn due_events(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        self.real()?.due_events(limit).await
    }

    async fn client_holds(&self, client: &str) -> Result<Vec<Hold>, StoreError> {
        self.real()?.client_holds(client).await
    }

    async fn events_done(&self, ids: &[String]) -> Result<(), StoreError> {
        self.real()?.events_done(ids).await
    }

    async fn event_retry(&self, id: &str, after: Duration) -> Result<(), StoreError> {
        self.real()?.event_retry(id, after).await
    }

    async fn events_unclaim(&self, ids: &[String]) -> Result<(), StoreError> {
        self.real()?.events_unclaim(ids).await
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.real()?.outbox_len().await
    }

    fn rebuilds(&self) -> u64 {
        self.real().map_or(0, |store| store.rebuilds())
    }

    async fn usage(&self) -> Result<Option<Usage>, StoreError> {
        self.real()?.usage().await
    }

    async fn match_reservation(&self, req: MatchRequest) -> Result<MatchOutcome, StoreError> {
        Ok(self.real()?.match_reservation(req).await?)
    }

    async fn put_data(&self, id: DataId, fields: Fields, ttl: Duration) -> Result<(), StoreError> {
        Ok(self.real()?.put_data(id, fields, ttl).await?)
    }

    async fn data(&self, id: &DataId) -> Result<Option<Fields>, StoreError> {
        Ok(self.real()?.data(id).await?)
    }

    async fn update_data(
        &self,
        id: &DataId,
        fields: Fields,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.real()?.update_data(id, fields, ttl).await?)
    }

    async fn delete_data(&self, id: &DataId) -> Result<bool, StoreError> {
        Ok(self.real()?.delete_data(id).await?)
    }

    async fn groups(&self) -> Result<Vec<GroupStats>, StoreError> {
        Ok(self.real()?.groups().await?)
    }

    async fn group_page(
        &self,
        name: &GroupName,
        filter: &NumbersFilter,
    ) -> Result<Option<GroupDetail>, StoreError> {
        Ok(self.real()?.group_page(name, filter).await?)
    }

    async fn put_group(&self, change: GroupChange) -> Result<PutGroup, StoreError> {
        Ok(self.real()?.put_group(change).await?)
    }

    async fn delete_group(&self, name: &GroupName) -> Result<DeleteGroup, StoreError> {
        Ok(self.real()?.delete_group(name).await?)
    }

    async fn add_numbers(
        &self,
        group: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<AddNumbers, StoreError> {
        Ok(self.real()?.add_numbers(group, numbers).await?)
    }

    async fn remove_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<RemoveNumber, StoreError> {
        Ok(self.real()?.remove_number(group, number).await?)
    }

    async fn find_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, StoreError> {
        Ok(self.real()?.find_reservations(filter).await?)
    }

    async fn release(&self, number: &AccessNumber) -> Result<bool, StoreError> {
        Ok(self.real()?.release(number).await?)
    }

    async fn nodes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.real()?.nodes().await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.real()?.ping().await?)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        Ok(self.real()?.purge_expired().await?)
    }
}
