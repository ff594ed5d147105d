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
#[cfg(test)]
mod unwritten_tests;

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
    NumbersFilter, Once, PutGroup, RemoveNumber, Reservation, ReservationFilter, ReservationView,
    ReserveError, ReserveRequest, Session, Store, StoreError,
};

/// How many times a read runs again after the changes it saw were rolled back.
const READ_RETRIES: usize = 5;

/// How many times a disk-mode `Idempotency-Key` lookup starts over (each time, an answer
/// left memory while it read the table: about never, see `engine/once.rs`).
const ONCE_LOOKUPS: usize = 5;

/// Whether an operation may change the engine. Writes are refused while the journal cannot
/// write (the engine was rebuilt from the durable state when the first commit failed, and
/// stays exactly that until a probe write succeeds): a persistently failing disk then costs
/// one rebuild, not one per attempted write, and a refused write never touched the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

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

    /// How many times the engine was rebuilt from the durable state since the store opened
    /// (0 without a journal). A disk that stays full costs about one per failure, not one
    /// per refused write.
    pub fn rebuilds(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| j.rebuilds())
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

    /// A read: runs `f` under the lock and answers once every change it could have seen is
    /// durable. Works while writes fail.
    async fn read<T>(
        &self,
        f: impl FnMut(&mut Engine, UnixMillis, &mut ChangeLog) -> T,
    ) -> Result<T, StoreError> {
        self.run(Access::Read, f).await
    }

    /// An operation that may change something: while the journal's writes fail it answers
    /// 503 at once, before touching the engine (see [`Access::Write`]).
    async fn write<T>(
        &self,
        f: impl FnMut(&mut Engine, UnixMillis, &mut ChangeLog) -> T,
    ) -> Result<T, StoreError> {
        self.run(Access::Write, f).await
    }

    /// Runs `f` under the lock, queues its changes, then waits until they (and everything
    /// before them) are durable. A read (no changes) that saw a batch which was then rolled
    /// back runs again on the rebuilt engine, so it never answers what was not kept.
    async fn run<T>(
        &self,
        access: Access,
        mut f: impl FnMut(&mut Engine, UnixMillis, &mut ChangeLog) -> T,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            let (value, seq, wrote, emitted) = {
                let mut engine = self.engine.lock();
                if let Some(j) = &self.journal {
                    j.usable()?;
                    if access == Access::Write {
                        // Checked under the lock, where the journal turns failing (after
                        // its rebuild): nothing is decided on a state that cannot be kept.
                        j.writable()?;
                    }
                }
                let now = self.clock.now();
                let mut log: ChangeLog = self.journal.as_ref().map(|_| Vec::new());
                engine.set_streaming(self.bus.receiver_count() > 0);
                let value = f(&mut engine, now, &mut log);
                let emitted = engine.take_emitted();
                engine.ended_data.clear();
                match (&self.journal, log) {
                    (Some(j), Some(changes)) if !changes.is_empty() => {
                        debug_assert!(access == Access::Write, "a read made changes");
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

    /// While the journal cannot write (a full disk), the answer a write gives without
    /// changing anything, when `settled` finds one (an unknown session, group, number or
    /// entry: `engine/unwritten.rs`): such a call is a read, and reads keep working. `None`:
    /// run the write (which, failing, answers 503).
    async fn unwritten<T>(
        &self,
        mut settled: impl FnMut(&Engine, UnixMillis) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        match &self.journal {
            Some(j) if j.writable().is_err() => self.read(|e, now, _| settled(e, now)).await,
            _ => Ok(None),
        }
    }

    /// Runs a one-shot operation (one that consumes its input) as a write: it is never run
    /// twice, so it cannot take the read path's retry.
    async fn run_once<T>(
        &self,
        f: impl FnOnce(&mut Engine, UnixMillis, &mut ChangeLog) -> T,
    ) -> Result<T, StoreError> {
        let mut f = Some(f);
        self.write(|e, now, log| f.take().map(|f| f(e, now, log)))
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
            .read(|e, now, _| {
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
        self.write(|e, now, log| e.end_session(id, now, log)).await
    }

    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, ReserveError> {
        if let Some(refused) = self
            .unwritten(|e, now| e.reserve_refused(&req, now))
            .await?
        {
            return Err(refused);
        }
        self.run_once(|e, now, log| e.reserve(req, now, log))
            .await?
    }

    async fn client_holds(&self, client: &str) -> Result<Vec<super::Hold>, StoreError> {
        self.read(|e, now, _| e.client_holds(client, now)).await
    }

    async fn reserve_new_session(
        &self,
        session: NewSession,
        req: ReserveRequest,
    ) -> Result<(Session, Reservation), ReserveError> {
        if let Some(refused) = self.unwritten(|e, _| e.interaction_refused(&req)).await? {
            return Err(refused);
        }
        self.run_once(|e, now, log| new_session_reserved(e, session, req, now, log))
            .await?
    }

    async fn create_once(
        &self,
        key: &IdempotencyKey,
        creation: Creation,
        answer: AnswerFn,
    ) -> Result<Once, ReserveError> {
        let Some(reader) = &self.fields else {
            // Memory: every answer is in the engine; one locked step.
            return self
                .run_once(|e, now, log| {
                    if let Some(fields) = e.remembered(key, now) {
                        return Ok(Once::Replay(fields.clone()));
                    }
                    create_remembered(e, key, creation, answer, now, log)
                })
                .await?;
        };
        // Disk mode: recent answers are in the engine, the rest only on disk (engine/once.rs).
        let mut creation = Some((creation, answer));
        for _ in 0..ONCE_LOOKUPS {
            // 1. The engine, and once every answer it had shown is durable, 2. the table.
            let seen = self
                .read(|e, now, _| match e.remembered(key, now) {
                    Some(fields) => Err(fields.clone()),
                    None => Ok(e.remembered_serial()),
                })
                .await?;
            let serial = match seen {
                Err(fields) => return Ok(Once::Replay(fields)),
                Ok(serial) => serial,
            };
            if let Some(fields) = reader.remembered(key.clone(), self.clock.now()).await? {
                return Ok(Once::Replay(fields));
            }
            // 3. Under the lock: an answer made since step 1 is in the engine, unless it has
            // left memory already (then look again).
            let step = self
                .write(|e, now, log| {
                    if let Some(fields) = e.remembered(key, now) {
                        return Some(Ok(Once::Replay(fields.clone())));
                    }
                    if e.forgot_since(serial) {
                        return None;
                    }
                    Some(match creation.take() {
                        Some((creation, answer)) => {
                            create_remembered(e, key, creation, answer, now, log)
                        }
                        None => Err(
                            StoreError::unavailable("operation retried after a rollback").into(),
                        ),
                    })
                })
                .await?;
            if let Some(outcome) = step {
                return outcome;
            }
        }
        Err(StoreError::unavailable("idempotency key lookup did not settle").into())
    }

    async fn match_reservation(&self, req: MatchRequest) -> Result<MatchOutcome, StoreError> {
        if let Some(unknown) = self.unwritten(|e, _| e.call_unknown(&req)).await? {
            return Ok(unknown);
        }
        let (outcome, read) = self
            .write(|e, now, log| {
                let outcome = e.match_reservation(&req, now, log);
                let read = match &outcome {
                    MatchOutcome::Matched { session, .. } => {
                        req.with_fields && e.fields_on_disk(&session.data_id, now)
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
        if let Some(unknown) = self.unwritten(|e, _| e.free_unknown(group, number)).await? {
            return Ok(unknown);
        }
        self.write(|e, now, log| e.free_number(group, number, now, log))
            .await
    }

    async fn put_data(&self, id: DataId, fields: Fields, ttl: Duration) -> Result<(), StoreError> {
        self.run_once(|e, now, log| e.put_data(id, fields, ttl, now, log))
            .await
    }

    async fn data(&self, id: &DataId) -> Result<Option<Fields>, StoreError> {
        let fields = self.read(|e, now, _| e.data(id, now)).await?;
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
        if let Some(gone) = self
            .unwritten(|e, now| e.data_unknown(id, now).then_some(false))
            .await?
        {
            return Ok(gone);
        }
        self.write(|e, now, log| e.delete_data(id, now, log)).await
    }

    async fn groups(&self) -> Result<Vec<GroupStats>, StoreError> {
        self.read(|e, now, _| e.groups(now)).await
    }

    async fn group_page(
        &self,
        name: &GroupName,
        filter: &NumbersFilter,
    ) -> Result<Option<GroupDetail>, StoreError> {
        self.read(|e, now, _| e.group(name, filter, now)).await
    }

    async fn put_group(&self, change: GroupChange) -> Result<PutGroup, StoreError> {
        self.run_once(|e, now, log| e.put_group(change, now, log))
            .await
    }

    async fn delete_group(&self, name: &GroupName) -> Result<DeleteGroup, StoreError> {
        if let Some(unknown) = self.unwritten(|e, _| e.group_unknown(name)).await? {
            return Ok(unknown);
        }
        self.write(|e, now, log| e.delete_group(name, now, log))
            .await
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
        if let Some(unknown) = self
            .unwritten(|e, _| e.removal_unknown(group, number))
            .await?
        {
            return Ok(unknown);
        }
        self.write(|e, now, log| e.remove_number(group, number, now, log))
            .await
    }

    async fn find_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, StoreError> {
        self.read(|e, now, _| e.find_reservations(&filter, now))
            .await
    }

    async fn release(&self, number: &AccessNumber) -> Result<bool, StoreError> {
        if let Some(none) = self
            .unwritten(|e, now| e.nothing_to_release(number, now))
            .await?
        {
            return Ok(none);
        }
        self.write(|e, now, log| e.release(number, now, log)).await
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
        self.read(|e, now, _| e.outbox().due(now, limit)).await
    }

    async fn events_done(&self, ids: &[String]) -> Result<(), StoreError> {
        self.write(|e, _, log| {
            for id in ids {
                e.outbox_mut().delivered(id, log);
            }
        })
        .await
    }

    async fn event_retry(&self, id: &str, after: Duration) -> Result<(), StoreError> {
        self.write(|e, now, log| {
            e.outbox_mut().retry_later(id, now.plus(after), log);
        })
        .await
    }

    fn rebuilds(&self) -> u64 {
        LocalStore::rebuilds(self)
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.read(|e, _, _| e.outbox().len() as u64).await
    }

    async fn usage(&self) -> Result<Option<super::Usage>, StoreError> {
        self.read(|e, now, _| Some(e.usage(now))).await
    }

    /// Fails while writes fail, so `/ready` says so even when nothing is being written.
    async fn ping(&self) -> Result<(), StoreError> {
        if let Some(j) = &self.journal {
            j.writable()?;
        }
        self.read(|_, _, _| ()).await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.write(|e, now, log| {
            journal::record(log, || journal::Change::Purge(now));
            e.purge_expired(now, log) + e.forget_expired(now)
        })
        .await
    }
}

/// Makes what `creation` asks for and keeps its answer under `key`.
fn create_remembered(
    e: &mut Engine,
    key: &IdempotencyKey,
    creation: Creation,
    answer: AnswerFn,
    now: UnixMillis,
    log: &mut ChangeLog,
) -> Result<Once, ReserveError> {
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
        Creation::Update { id, fields, ttl } => match e.update_data(&id, fields, ttl, now, log) {
            true => Created::Updated(id),
            false => return Err(ReserveError::Refused),
        },
        Creation::Refused => return Err(ReserveError::Refused),
    };
    e.remember(key, answer(&created), now, log);
    Ok(Once::First(created))
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
