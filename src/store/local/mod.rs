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
//!
//! With a [`fields::FieldReader`] (SQLite), stored fields are not kept in the engine: an
//! answer that carries fields is decided under the lock, made durable, then its fields are
//! read from disk outside the lock.

pub mod engine;
pub mod fields;
pub mod free_set;
pub mod journal;
mod number_index;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::domain::{AccessNumber, DataId, GroupName, SessionId, UnixMillis};

use self::engine::Engine;
use self::fields::FieldReader;
use self::journal::{ChangeLog, Journal, JournalError};
use super::{
    AddNumbers, AnswerFn, Created, Creation, DeleteGroup, Fields, FreeNumber, GroupChange,
    GroupDetail, GroupSpec, GroupStats, IdempotencyKey, MatchOutcome, MatchRequest, NewSession,
    Once, PutGroup, RemoveNumber, Reservation, ReservationFilter, ReservationView, ReserveError,
    ReserveRequest, Session, Store, StoreError,
};

/// How many times a read runs again after the changes it saw were rolled back.
const READ_RETRIES: usize = 5;

pub struct LocalStore {
    engine: Arc<Mutex<Engine>>,
    clock: Arc<dyn Clock>,
    journal: Option<Box<dyn Journal>>,
    /// Where stored fields are read when the engine does not keep them.
    fields: Option<Box<dyn FieldReader>>,
    kind: &'static str,
    /// Where committed events go live (`GET /genesys/1/admin/events`).
    bus: crate::events::Bus,
}

impl LocalStore {
    pub fn memory(clock: Arc<dyn Clock>) -> Self {
        Self {
            engine: Arc::new(Mutex::new(Engine::new())),
            clock,
            journal: None,
            fields: None,
            kind: "memory",
            bus: crate::events::bus(),
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
            fields: None,
            kind,
            bus: crate::events::bus(),
        }
    }

    /// Publishes committed events on `bus`, and keeps them in the outbox for the webhook too
    /// when `keep_outbox` (`[events]` set).
    pub fn with_events(self, bus: crate::events::Bus, keep_outbox: bool) -> Self {
        self.engine.lock().set_keep_outbox(keep_outbox);
        Self { bus, ..self }
    }

    /// Stored fields stay on disk: the engine keeps only their expiry, and answers read
    /// them through `reader`.
    pub fn with_fields_on_disk(mut self, reader: Box<dyn FieldReader>) -> Self {
        self.engine.lock().keep_fields_on_disk();
        self.fields = Some(reader);
        self
    }

    /// Fills a session's fields from disk when the engine said they are there (`read`).
    async fn with_fields(&self, mut session: Session, read: bool) -> Result<Session, StoreError> {
        if let (Some(reader), true) = (&self.fields, read) {
            session.fields = reader
                .read(session.data_id.clone())
                .await?
                .unwrap_or_default();
        }
        Ok(session)
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
            let (value, seq, wrote, emitted) = {
                let mut engine = self.engine.lock();
                if let Some(j) = &self.journal {
                    j.usable()?;
                }
                let now = self.clock.now();
                let mut log: ChangeLog = self.journal.as_ref().map(|_| Vec::new());
                let value = f(&mut engine, now, &mut log);
                let emitted = engine.take_emitted();
                engine.ended_data.clear();
                match (&self.journal, log) {
                    (Some(j), Some(changes)) if !changes.is_empty() => {
                        (value, Some(j.submit(changes)), true, emitted)
                    }
                    (Some(j), _) => (value, j.pending(), false, emitted),
                    _ => (value, None, false, emitted),
                }
            };
            let (Some(j), Some(seq)) = (&self.journal, seq) else {
                self.publish(emitted);
                return Ok(value);
            };
            match j.durable(seq).await {
                Ok(()) => {
                    self.publish(emitted);
                    return Ok(value);
                }
                Err(JournalError::RolledBack(_)) if !wrote && attempt < READ_RETRIES => {
                    attempt += 1;
                }
                Err(e) => return Err(e.into_store()),
            }
        }
    }

    /// Sends an operation's events on the live bus, once it is durable (nobody listening is
    /// fine: the stream is a view; a rolled-back operation's events are dropped unsent).
    fn publish(&self, emitted: Vec<crate::events::Event>) {
        for event in emitted {
            let _ = self.bus.send(event);
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
        let found = self
            .run(|e, now, _| {
                let s = e.session(id, now)?;
                let read = e.fields_on_disk(&s.data_id, now);
                Some((s, read))
            })
            .await?;
        match found {
            Some((s, read)) => Ok(Some(self.with_fields(s, read).await?)),
            None => Ok(None),
        }
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

    async fn match_reservation(&self, req: MatchRequest) -> Result<MatchOutcome, StoreError> {
        let (outcome, read) = self
            .run(|e, now, log| {
                let outcome = e.match_reservation(&req, now, log);
                let read = match &outcome {
                    MatchOutcome::Matched { session, .. } => {
                        e.fields_on_disk(&session.data_id, now)
                    }
                    MatchOutcome::NoMatch { .. } => false,
                };
                (outcome, read)
            })
            .await?;
        match outcome {
            MatchOutcome::Matched {
                session,
                group,
                late,
                locked,
            } => Ok(MatchOutcome::Matched {
                session: self.with_fields(session, read).await?,
                group,
                late,
                locked,
            }),
            no_match => Ok(no_match),
        }
    }

    async fn free_number(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Result<FreeNumber, StoreError> {
        self.run(|e, now, log| e.free_number(group, number, now, log))
            .await
    }

    async fn put_data(&self, id: DataId, fields: Fields, ttl: Duration) -> Result<(), StoreError> {
        self.run_once(|e, now, log| e.put_data(id, fields, ttl, now, log))
            .await
    }

    async fn data(&self, id: &DataId) -> Result<Option<Fields>, StoreError> {
        let fields = self.run(|e, now, _| e.data(id, now)).await?;
        match (&self.fields, fields) {
            (Some(reader), Some(_)) => reader.read(id.clone()).await,
            (_, fields) => Ok(fields),
        }
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

    fn bus(&self) -> crate::events::Bus {
        self.bus.clone()
    }

    async fn record_events(&self, events: Vec<crate::events::Event>) -> Result<(), StoreError> {
        self.run_once(|e, _, log| {
            for event in events {
                e.emit(event, log);
            }
        })
        .await
    }

    async fn due_events(&self, limit: usize) -> Result<Vec<super::PendingEvent>, StoreError> {
        self.run(|e, now, _| e.outbox().due(now, limit)).await
    }

    async fn events_done(&self, ids: &[String]) -> Result<(), StoreError> {
        self.run(|e, _, log| {
            for id in ids {
                e.outbox_mut().delivered(id, log);
            }
        })
        .await
    }

    async fn event_retry(&self, id: &str, after: Duration) -> Result<(), StoreError> {
        self.run(|e, now, log| {
            e.outbox_mut().retry_later(id, now.plus(after), log);
        })
        .await
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.run(|e, _, _| e.outbox().len() as u64).await
    }

    async fn usage(&self) -> Result<Option<super::Usage>, StoreError> {
        self.run(|e, now, _| Some(e.usage(now))).await
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
            e.purge_expired(now, log) + e.forget_expired(now)
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
