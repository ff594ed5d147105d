//! The single-node store: an in-process [`engine::Engine`] behind one mutex, optionally backed
//! by a durable [`journal::Journal`] (SQLite). `memory://` is the same store without a journal.
//!
//! Why one mutex: every operation is a few map and tree updates (microseconds), so one short
//! critical section beats finer locks in simplicity, and it gives the journal a total order.
//! Nothing is answered before every change it could have seen is durable: each operation
//! notes the journal's sequence number under the lock and waits for it outside the lock,
//! so many requests share one commit (group commit). A failed commit rolls back every batch
//! queued with it and the journal rebuilds the engine from the durable state (see
//! `docs/architecture.md`, "When a write fails"): a write answered with an error left no
//! trace, and a read that saw a rolled-back change runs again on the rebuilt engine.

pub mod engine;
pub mod free_set;
pub mod journal;
mod number_index;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::domain::{AccessNumber, DataId, GroupName, SessionId, UnixMillis};

use self::engine::Engine;
use self::journal::{ChangeLog, Journal, JournalError};
use super::{
    AddNumbers, AnswerFn, Created, Creation, DeleteGroup, Fields, GroupChange, GroupDetail,
    GroupSpec, GroupStats, IdempotencyKey, MatchRequest, NewSession, Once, PutGroup, RemoveNumber,
    Reservation, ReservationFilter, ReservationView, ReserveError, ReserveRequest, Session, Store,
    StoreError,
};

/// How many times a read runs again after the changes it saw were rolled back.
const READ_RETRIES: usize = 5;

pub struct LocalStore {
    engine: Arc<Mutex<Engine>>,
    clock: Arc<dyn Clock>,
    journal: Option<Box<dyn Journal>>,
    kind: &'static str,
}

impl LocalStore {
    pub fn memory(clock: Arc<dyn Clock>) -> Self {
        Self {
            engine: Arc::new(Mutex::new(Engine::new())),
            clock,
            journal: None,
            kind: "memory",
        }
    }

    /// A store over a restored engine whose changes go to `journal` (which holds the same
    /// engine, to rebuild it when a commit fails).
    pub fn durable(
        engine: Arc<Mutex<Engine>>,
        clock: Arc<dyn Clock>,
        journal: Box<dyn Journal>,
        kind: &'static str,
    ) -> Self {
        Self {
            engine,
            clock,
            journal: Some(journal),
            kind,
        }
    }

    /// Runs `f` under the lock, queues its changes, then waits until they (and everything
    /// before them) are durable. A read (no changes) that saw a batch which was then rolled
    /// back runs again on the rebuilt engine, so it never answers what was not kept.
    async fn run<T>(
        &self,
        mut f: impl FnMut(&mut Engine, UnixMillis, &mut ChangeLog) -> T,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            let (value, seq, wrote) = {
                let mut engine = self.engine.lock();
                if let Some(j) = &self.journal {
                    j.usable()?;
                }
                let now = self.clock.now();
                let mut log: ChangeLog = self.journal.as_ref().map(|_| Vec::new());
                let value = f(&mut engine, now, &mut log);
                match (&self.journal, log) {
                    (Some(j), Some(changes)) if !changes.is_empty() => {
                        (value, Some(j.submit(changes)), true)
                    }
                    (Some(j), _) => (value, j.pending(), false),
                    _ => (value, None, false),
                }
            };
            let (Some(j), Some(seq)) = (&self.journal, seq) else {
                return Ok(value);
            };
            match j.durable(seq).await {
                Ok(()) => return Ok(value),
                Err(JournalError::RolledBack(_)) if !wrote && attempt < READ_RETRIES => {
                    attempt += 1;
                }
                Err(e) => return Err(e.into_store()),
            }
        }
    }

    /// Runs a one-shot operation (one that consumes its input) as a write: it is never run
    /// twice, so it cannot take the read path's retry.
    async fn run_once<T>(
        &self,
        f: impl FnOnce(&mut Engine, UnixMillis, &mut ChangeLog) -> T,
    ) -> Result<T, StoreError> {
        let mut f = Some(f);
        self.run(|e, now, log| f.take().map(|f| f(e, now, log)))
            .await?
            .ok_or_else(|| StoreError::unavailable("operation retried after a rollback"))
    }
}

#[async_trait::async_trait]
impl Store for LocalStore {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn apply_groups(&self, groups: &[GroupSpec]) -> Result<Vec<String>, StoreError> {
        self.run_once(|e, now, log| e.apply_groups(groups, now, log))
            .await
    }

    async fn create_session(&self, new: NewSession) -> Result<Session, StoreError> {
        self.run_once(|e, now, log| e.create_session(new, now, log))
            .await
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.run(|e, now, _| e.session(id, now)).await
    }

    async fn end_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.run(|e, now, log| e.end_session(id, now, log)).await
    }

    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, ReserveError> {
        self.run_once(|e, now, log| e.reserve(req, now, log))
            .await?
    }

    async fn reserve_new_session(
        &self,
        session: NewSession,
        req: ReserveRequest,
    ) -> Result<(Session, Reservation), ReserveError> {
        self.run_once(|e, now, log| new_session_reserved(e, session, req, now, log))
            .await?
    }

    async fn create_once(
        &self,
        key: &IdempotencyKey,
        creation: Creation,
        answer: AnswerFn,
    ) -> Result<Once, ReserveError> {
        self.run_once(|e, now, log| {
            if let Some(fields) = e.remembered(key, now) {
                return Ok(Once::Replay(fields.clone()));
            }
            let created = match creation {
                Creation::Session(new) => Created::Session(e.create_session(new, now, log)),
                Creation::Interaction(new, req) => {
                    let (s, r) = new_session_reserved(e, new, req, now, log)?;
                    Created::Interaction(s, r)
                }
                Creation::Data { id, fields, ttl } => {
                    e.put_data(id.clone(), fields, ttl, now, log);
                    Created::Data(id)
                }
            };
            e.remember(key, answer(&created), now, log);
            Ok(Once::First(created))
        })
        .await?
    }

    async fn match_reservation(&self, req: MatchRequest) -> Result<Option<Session>, StoreError> {
        self.run(|e, now, log| e.match_reservation(&req, now, log))
            .await
    }

    async fn put_data(&self, id: DataId, fields: Fields, ttl: Duration) -> Result<(), StoreError> {
        self.run_once(|e, now, log| e.put_data(id, fields, ttl, now, log))
            .await
    }

    async fn data(&self, id: &DataId) -> Result<Option<Fields>, StoreError> {
        self.run(|e, now, _| e.data(id, now)).await
    }

    async fn update_data(
        &self,
        id: &DataId,
        fields: Fields,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.run_once(|e, now, log| e.update_data(id, fields, ttl, now, log))
            .await
    }

    async fn delete_data(&self, id: &DataId) -> Result<bool, StoreError> {
        self.run(|e, now, log| e.delete_data(id, now, log)).await
    }

    async fn groups(&self) -> Result<Vec<GroupStats>, StoreError> {
        self.run(|e, now, _| e.groups(now)).await
    }

    async fn group(&self, name: &GroupName) -> Result<Option<GroupDetail>, StoreError> {
        self.run(|e, now, _| e.group(name, now)).await
    }

    async fn put_group(&self, change: GroupChange) -> Result<PutGroup, StoreError> {
        self.run_once(|e, now, log| e.put_group(change, now, log))
            .await
    }

    async fn delete_group(&self, name: &GroupName) -> Result<DeleteGroup, StoreError> {
        self.run(|e, now, log| e.delete_group(name, now, log)).await
    }

    async fn add_numbers(
        &self,
        group: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<AddNumbers, StoreError> {
        self.run_once(|e, _, log| e.add_numbers(group, numbers, log))
            .await
    }

    async fn remove_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<RemoveNumber, StoreError> {
        self.run(|e, now, log| e.remove_number(group, number, now, log))
            .await
    }

    async fn find_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, StoreError> {
        self.run(|e, now, _| e.find_reservations(&filter, now))
            .await
    }

    async fn release(&self, number: &AccessNumber) -> Result<bool, StoreError> {
        self.run(|e, now, log| e.release(number, now, log)).await
    }

    /// Fails while writes fail, so `/ready` says so even when nothing is being written.
    async fn ping(&self) -> Result<(), StoreError> {
        if let Some(j) = &self.journal {
            j.writable()?;
        }
        self.run(|_, _, _| ()).await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.run(|e, now, log| {
            journal::record(log, || journal::Change::Purge(now));
            e.purge_expired(now) + e.forget_expired(now)
        })
        .await
    }
}

/// Creates a session and reserves for it in one step: a refusal leaves no session behind.
fn new_session_reserved(
    e: &mut Engine,
    session: NewSession,
    req: ReserveRequest,
    now: UnixMillis,
    log: &mut ChangeLog,
) -> Result<(Session, Reservation), ReserveError> {
    // Decide on a scratch log first: a refusal must leave no session behind.
    let mut scratch: ChangeLog = log.as_ref().map(|_| Vec::new());
    let id = session.id.clone();
    let created = e.create_session(session, now, &mut scratch);
    match e.reserve(req, now, &mut scratch) {
        Ok(r) => {
            if let (Some(log), Some(scratch)) = (log.as_mut(), scratch) {
                log.extend(scratch);
            }
            Ok((
                Session {
                    expires_in: created.expires_in,
                    ..created
                },
                r,
            ))
        }
        Err(err) => {
            e.end_session(&id, now, &mut None);
            Err(err)
        }
    }
}
