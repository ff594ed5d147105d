//! The in-process state of a single node: groups, reservations, sessions and stored data.
//!
//! It is synchronous and pure: every method takes `now` and a change log, so the caller decides
//! the clock, the locking and the durability. Expiry is decided by comparing with `now` on every
//! read; expired reservations are reaped lazily (`reap`) before a group allocates, which keeps
//! each allocation O(log n) in the pool size.

mod admin;
mod calls;
mod clients;
mod once;
pub mod outbox;
mod reserve;
pub mod restore;
mod unwritten;
mod usage;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

// hashbrown's map (foldhash) rather than std's (SipHash): every reservation and match looks
// sessions up several times, and SipHash showed in the profiles. The keys are ids and names
// this node made or was configured with, so a client cannot choose colliding ones.
use hashbrown::HashMap;
use std::time::Duration;

use crate::domain::{
    AccessCode, AccessNumber, DataId, GroupName, PhoneNumber, SessionId, UnixMillis,
};
use crate::rules;
use crate::store::{
    ClientId, Fields, GroupSettings, NewSession, Session, fields_bytes, merge_fields,
};

use super::free_set::FreeSet;
use super::journal::{Change, ChangeLog, record};
use super::number_index::{Location, NumberIndex};

type GroupIdx = u32;
type Pos = u32;

#[derive(Debug, Default)]
pub struct Engine {
    groups: Vec<Option<Group>>,
    group_index: HashMap<GroupName, GroupIdx>,
    numbers: NumberIndex,
    sessions: HashMap<SessionId, SessionEntry>,
    data: HashMap<DataId, DataEntry>,
    /// SQLite: fields live in the store's `data` table and `DataEntry::fields` stays empty;
    /// the engine keeps only each entry's expiry (see `store::local::fields`); and
    /// `Idempotency-Key` answers live in the `idempotency` table, only the recent ones in
    /// memory (`once.rs`).
    fields_on_disk: bool,
    /// Disk mode: data whose session this operation ended while the data was live; its row
    /// is kept (expired, `Change::DataEnded`) so the answer can still read its fields.
    pub(crate) ended_data: Vec<DataId>,
    /// Holds that reads ended by expiry (reads write nothing); the next write records them
    /// (`record_expiries`), so their ending reaches the journal and the events.
    unrecorded: Vec<Unrecorded>,
    /// Events owed to the webhook (only with `[events]`; see `outbox.rs` for `emit`).
    outbox: outbox::Outbox,
    keep_outbox: bool,
    /// Nobody takes this operation's events: no outbox and no live stream subscribed (set
    /// by the store before each operation). Making an event (an id, three copies) and
    /// dropping it unsent was a tenth of a reservation's cost; `wants_events` skips it.
    events_unheard: bool,
    /// Events of the running operation, published by the store once it is durable.
    emitted: Vec<crate::events::Event>,
    remembered: once::Remembered,
    /// Where each client's holds are (`Hold::client`), for `[limits]
    /// reservations_per_client`. An entry may outlive its hold (the slot taken since by
    /// another); [`Engine::client_holds`] reads each through its slot.
    by_client: HashMap<ClientId, Vec<(GroupIdx, Pos)>>,
}

#[derive(Debug)]
struct Group {
    settings: GroupSettings,
    slots: Vec<Slot>,
    free: FreeSet,
    /// Expiry of every hold, earliest first; entries left by renewals or releases are stale and
    /// skipped when they surface.
    expiries: BinaryHeap<Reverse<(UnixMillis, Pos)>>,
    /// When each cooling number may be lent again, earliest first; an entry whose slot is no
    /// longer `Free` at that time is stale.
    cooling: BinaryHeap<Reverse<(UnixMillis, Pos)>>,
    /// Numbers in service (not retiring, not gone).
    active: u64,
    /// Holds on numbers in service.
    reserved: u64,
    /// Holds on removed numbers.
    retiring: u64,
    /// Numbers in quarantine (in service, lent to no one).
    quarantined: u64,
}

#[derive(Debug)]
struct Slot {
    number: AccessNumber,
    state: SlotState,
    /// Its last ended reservation and recent stray calls; `None` for most numbers.
    past: Option<Box<Past>>,
}

#[derive(Debug, Default)]
struct Past {
    last: Option<rules::lifecycle::Ended>,
    strays: Vec<UnixMillis>,
}

#[derive(Debug)]
enum SlotState {
    /// Lendable from this time: in the free set once it has come (least-recently-used order,
    /// kept across strategy changes), cooling until then.
    Free(UnixMillis),
    Held(Box<Hold>),
    /// Put in quarantine by stray calls at this time; lent to no one until freed.
    Quarantined(UnixMillis),
    /// Removed from the group; the position stays so round-robin order is stable.
    Gone,
}

/// A hold a read ended by expiry, for the next write to record.
#[derive(Debug)]
struct Unrecorded {
    g: GroupIdx,
    pos: Pos,
    at: UnixMillis,
    /// The number and session of a retiring hold: its number left with it, so the slot no
    /// longer tells them.
    retired: Option<(AccessNumber, SessionId)>,
}

#[derive(Debug, Clone)]
struct Hold {
    session: SessionId,
    code: Option<AccessCode>,
    phone: Option<PhoneNumber>,
    expires_at: UnixMillis,
    retiring: bool,
    /// Wrong codes it survived.
    wrong_codes: u32,
    /// Who asked for it, when clients are counted (`ReserveRequest::client`).
    client: Option<ClientId>,
}

#[derive(Debug)]
struct SessionEntry {
    service: crate::domain::ServiceName,
    data_id: DataId,
    expires_at: UnixMillis,
    holds: Vec<(GroupIdx, Pos)>,
}

#[derive(Debug)]
struct DataEntry {
    /// Empty when the fields are on disk.
    fields: Fields,
    expires_at: UnixMillis,
    /// Bytes of the fields' names and values (`[limits] max_storage_bytes`): exact when they
    /// are in memory or were loaded; with fields on disk, an update adds its own bytes (an
    /// upper bound) until its commit, when the writer takes back what it replaced
    /// (`data_overcounted`).
    bytes: u64,
}

impl Group {
    fn new(settings: GroupSettings) -> Self {
        let free = FreeSet::new(settings.allocation);
        Self {
            settings,
            slots: Vec::new(),
            free,
            expiries: BinaryHeap::new(),
            cooling: BinaryHeap::new(),
            active: 0,
            reserved: 0,
            retiring: 0,
            quarantined: 0,
        }
    }

    fn hold(&self, pos: Pos) -> Option<&Hold> {
        match &self.slots.get(pos as usize)?.state {
            SlotState::Held(h) => Some(h),
            _ => None,
        }
    }

    fn live_hold(&self, pos: Pos, now: UnixMillis) -> Option<&Hold> {
        self.hold(pos).filter(|h| !h.expires_at.is_reached(now))
    }

    /// Drops stale heap entries from the top, so the top is a real hold's expiry.
    fn settle_expiries(&mut self) {
        while let Some(&Reverse((at, pos))) = self.expiries.peek() {
            if self.hold(pos).is_some_and(|h| h.expires_at == at) {
                return;
            }
            self.expiries.pop();
        }
    }

    /// The first moment a number of the group becomes lendable: the earliest hold's end
    /// plus the cool-down, or the earliest cooling number's time, whichever comes first. A
    /// retiring number's hold does not count: its end frees nothing.
    fn first_free_at(&mut self) -> Option<UnixMillis> {
        self.settle_expiries();
        let lends_again = |&Reverse((at, pos)): &Reverse<(UnixMillis, Pos)>| {
            self.hold(pos)
                .is_some_and(|h| h.expires_at == at && !h.retiring)
                .then_some(at)
        };
        // The earliest hold, unless it is a retiring one: then the earliest of the others
        // (a scan, only for an empty pool whose next hold to end retires).
        let held = match self.expiries.peek().map(lends_again) {
            Some(Some(at)) => Some(at),
            Some(None) => self.expiries.iter().filter_map(lends_again).min(),
            None => None,
        }
        .map(|at| rules::lifecycle::free_from(at, &self.settings.policy));
        while let Some(&Reverse((at, pos))) = self.cooling.peek() {
            if matches!(self.slots[pos as usize].state, SlotState::Free(t) if t == at) {
                break;
            }
            self.cooling.pop();
        }
        let cooling = self.cooling.peek().map(|Reverse((at, _))| *at);
        held.into_iter().chain(cooling).min()
    }

    /// Numbers resting after a reservation: in service, neither free, held nor quarantined.
    fn cooling_count(&self) -> u64 {
        self.active
            .saturating_sub(self.reserved + self.quarantined + self.free.len() as u64)
    }

    /// Makes a slot that just became `Free(at)` lendable: at once if `at` has come, else
    /// when the cooling heap reaches it.
    fn rest_until(&mut self, pos: Pos, at: UnixMillis, now: UnixMillis) {
        self.slots[pos as usize].state = SlotState::Free(at);
        if at.is_reached(now) {
            self.free.insert(pos, at);
        } else {
            self.cooling.push(Reverse((at, pos)));
        }
    }

    fn past_mut(&mut self, pos: Pos) -> &mut Past {
        self.slots[pos as usize]
            .past
            .get_or_insert_with(Box::default)
    }
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, stored fields are only journaled (`Change::Data`, `Change::DataMerged`),
    /// never kept here; the store reads them from disk when asked.
    /// Takes `other`'s modes (fields on disk, an outbox kept): a rebuilt engine runs as the
    /// one it replaces.
    pub fn copy_modes_from(&mut self, other: &Engine) {
        self.set_keep_outbox(other.keep_outbox);
        if other.fields_on_disk {
            self.keep_fields_on_disk();
        }
        self.copy_remembered_serials(other);
    }

    pub fn keep_fields_on_disk(&mut self) {
        self.fields_on_disk = true;
        for entry in self.data.values_mut() {
            entry.fields = Fields::new();
        }
    }

    /// Disk mode: whether the answer about `id` needs its fields read from disk, i.e. the
    /// entry is live, or this operation ended it with its session.
    pub fn fields_on_disk(&self, id: &DataId, now: UnixMillis) -> bool {
        self.fields_on_disk && (self.is_data_live(id, now) || self.ended_data.contains(id))
    }

    fn is_data_live(&self, id: &DataId, now: UnixMillis) -> bool {
        self.data
            .get(id)
            .is_some_and(|d| !d.expires_at.is_reached(now))
    }

    fn group_idx(&self, name: &GroupName) -> Option<GroupIdx> {
        self.group_index.get(name).copied()
    }

    /// Where a number lives, if it is in a group.
    fn locate(&self, number: &AccessNumber) -> Option<(GroupIdx, Pos)> {
        let groups = &self.groups;
        self.numbers
            .get(number.as_str(), |at| number_at(groups, at))
    }

    /// Indexes a number whose slot was just filled.
    fn index_number(&mut self, number: &AccessNumber, at: (GroupIdx, Pos)) {
        let groups = &self.groups;
        self.numbers
            .insert(number.as_str(), at, |k| number_at(groups, k));
    }

    /// Forgets a number; call it before its group or slot goes away.
    fn unindex_number(&mut self, number: &AccessNumber) {
        let groups = &self.groups;
        self.numbers
            .remove(number.as_str(), |k| number_at(groups, k));
    }

    fn group_mut(&mut self, idx: GroupIdx) -> &mut Group {
        self.groups[idx as usize]
            .as_mut()
            .expect("group index points at a live group")
    }

    fn live_session(&self, id: &SessionId, now: UnixMillis) -> Option<&SessionEntry> {
        self.sessions
            .get(id)
            .filter(|s| !s.expires_at.is_reached(now))
    }

    fn session_view(&self, id: &SessionId, entry: &SessionEntry, now: UnixMillis) -> Session {
        let fields = self
            .data
            .get(&entry.data_id)
            .filter(|d| !d.expires_at.is_reached(now))
            .map(|d| d.fields.clone())
            .unwrap_or_default();
        Session {
            id: id.clone(),
            service: entry.service.clone(),
            data_id: entry.data_id.clone(),
            fields,
            expires_in: entry.expires_at.remaining_from(now),
        }
    }

    // ---- sessions ----

    pub fn create_session(
        &mut self,
        new: NewSession,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> Session {
        let expires_at = now.plus(new.ttl);
        // On disk the engine keeps no fields, so the answer takes them from the request.
        let posted = self.fields_on_disk.then(|| new.fields.clone());
        record(log, || Change::Session {
            id: new.id.clone(),
            service: new.service.clone(),
            data_id: new.data_id.clone(),
            expires_at,
        });
        self.put_data(new.data_id.clone(), new.fields, new.ttl, now, log);
        let entry = SessionEntry {
            service: new.service,
            data_id: new.data_id,
            expires_at,
            holds: Vec::new(),
        };
        let mut view = self.session_view(&new.id, &entry, now);
        if let Some(posted) = posted {
            view.fields = posted;
        }
        self.sessions.insert(new.id, entry);
        view
    }

    pub fn session(&self, id: &SessionId, now: UnixMillis) -> Option<Session> {
        self.live_session(id, now)
            .map(|e| self.session_view(id, e, now))
    }

    /// Ends a live session: releases its holds, deletes it and its data.
    pub fn end_session(&mut self, id: &SessionId, now: UnixMillis, log: &mut ChangeLog) -> bool {
        if self.live_session(id, now).is_none() {
            return false;
        }
        let Some(entry) = self.sessions.remove(id) else {
            return false;
        };
        self.record_expiries(log);
        for (g, pos) in entry.holds {
            let reason = rules::lifecycle::EndReason::SessionEnded;
            self.end_hold(g, pos, now, reason, Some(&mut *log));
        }
        record(log, || Change::SessionEnded(id.clone()));
        let live = self.is_data_live(&entry.data_id, now);
        if self.data.remove(&entry.data_id).is_some() {
            if self.fields_on_disk {
                // Expired on disk rather than deleted: a match ending the session still
                // answers its fields, read after this commit.
                if live {
                    self.ended_data.push(entry.data_id.clone());
                }
                record(log, || Change::DataEnded {
                    id: entry.data_id.clone(),
                    at: now,
                });
            } else {
                record(log, || Change::DataDeleted(entry.data_id.clone()));
            }
        }
        true
    }

    // ---- storage ----

    pub fn put_data(
        &mut self,
        id: DataId,
        fields: Fields,
        ttl: Duration,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) {
        let expires_at = now.plus(ttl);
        let bytes = fields_bytes(&fields);
        if self.fields_on_disk {
            record(log, || Change::Data {
                id: id.clone(),
                fields,
                expires_at,
            });
            let fields = Fields::new();
            let entry = DataEntry {
                fields,
                expires_at,
                bytes,
            };
            self.data.insert(id, entry);
            return;
        }
        record(log, || Change::Data {
            id: id.clone(),
            fields: fields.clone(),
            expires_at,
        });
        let entry = DataEntry {
            fields,
            expires_at,
            bytes,
        };
        self.data.insert(id, entry);
    }

    pub fn data(&self, id: &DataId, now: UnixMillis) -> Option<Fields> {
        self.data
            .get(id)
            .filter(|d| !d.expires_at.is_reached(now))
            .map(|d| d.fields.clone())
    }

    pub fn update_data(
        &mut self,
        id: &DataId,
        fields: Fields,
        ttl: Duration,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> bool {
        let Some(entry) = self
            .data
            .get_mut(id)
            .filter(|d| !d.expires_at.is_reached(now))
        else {
            return false;
        };
        if self.fields_on_disk {
            // The writer merges inside its transaction, one change after another, so
            // concurrent updates each keep the other's fields.
            entry.expires_at = now.plus(ttl);
            entry.bytes += fields_bytes(&fields);
            let expires_at = entry.expires_at;
            record(log, || Change::DataMerged {
                id: id.clone(),
                fields,
                expires_at,
            });
            return true;
        }
        merge_fields(&mut entry.fields, fields);
        entry.bytes = fields_bytes(&entry.fields);
        entry.expires_at = now.plus(ttl);
        let (fields, expires_at) = (entry.fields.clone(), entry.expires_at);
        record(log, || Change::Data {
            id: id.clone(),
            fields,
            expires_at,
        });
        true
    }

    /// Disk mode: an update counted `bytes` it did not add (the writer's merge found the
    /// fields it replaced): the entry's count comes back to its real size.
    pub fn data_overcounted(&mut self, id: &DataId, bytes: u64) {
        if let Some(entry) = self.data.get_mut(id) {
            entry.bytes = entry.bytes.saturating_sub(bytes);
        }
    }

    pub fn delete_data(&mut self, id: &DataId, now: UnixMillis, log: &mut ChangeLog) -> bool {
        if self.data_unknown(id, now) {
            return false;
        }
        self.data.remove(id);
        record(log, || Change::DataDeleted(id.clone()));
        true
    }

    /// Frees the memory of expired sessions and data; returns how many entries went.
    /// Expired reservations are reaped per group as they surface.
    pub fn purge_expired(&mut self, now: UnixMillis, log: &mut ChangeLog) -> u64 {
        let before = self.sessions.len() + self.data.len();
        for idx in 0..self.groups.len() as GroupIdx {
            if self.groups[idx as usize].is_some() {
                self.reap(idx, now);
            }
        }
        self.record_expiries(log);
        self.sessions.retain(|_, s| !s.expires_at.is_reached(now));
        self.data.retain(|_, d| !d.expires_at.is_reached(now));
        (before - self.sessions.len() - self.data.len()) as u64
    }
}

/// The number in a slot, for the index to hash and compare with.
fn number_at(groups: &[Option<Group>], (g, pos): Location) -> &str {
    groups[g as usize]
        .as_ref()
        .and_then(|group| group.slots.get(pos as usize))
        .map_or("", |slot| slot.number.as_str())
}
