//! The in-process state of a single node: groups, reservations, sessions and stored data.
//!
//! It is synchronous and pure: every method takes `now` and a change log, so the caller decides
//! the clock, the locking and the durability. Expiry is decided by comparing with `now` on every
//! read; expired reservations are reaped lazily (`reap`) before a group allocates, which keeps
//! each allocation O(log n) in the pool size.

mod admin;
mod once;
mod reserve;
pub mod restore;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use crate::domain::{
    AccessCode, AccessNumber, DataId, GroupName, PhoneNumber, SessionId, UnixMillis,
};
use crate::store::{Fields, GroupSettings, NewSession, Session, merge_fields};

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
    remembered: once::Remembered,
}

#[derive(Debug)]
struct Group {
    settings: GroupSettings,
    slots: Vec<Slot>,
    free: FreeSet,
    /// Expiry of every hold, earliest first; entries left by renewals or releases are stale and
    /// skipped when they surface.
    expiries: BinaryHeap<Reverse<(UnixMillis, Pos)>>,
    /// Numbers in service (not retiring, not gone).
    active: u64,
    /// Holds on numbers in service.
    reserved: u64,
    /// Holds on removed numbers.
    retiring: u64,
}

#[derive(Debug)]
struct Slot {
    number: AccessNumber,
    state: SlotState,
}

#[derive(Debug)]
enum SlotState {
    /// Free since this time (least-recently-used order, kept across strategy changes).
    Free(UnixMillis),
    Held(Box<Hold>),
    /// Removed from the group; the position stays so round-robin order is stable.
    Gone,
}

#[derive(Debug, Clone)]
struct Hold {
    session: SessionId,
    code: Option<AccessCode>,
    phone: Option<PhoneNumber>,
    expires_at: UnixMillis,
    retiring: bool,
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
    fields: Fields,
    expires_at: UnixMillis,
}

impl Group {
    fn new(settings: GroupSettings) -> Self {
        let free = FreeSet::new(settings.allocation);
        Self {
            settings,
            slots: Vec::new(),
            free,
            expiries: BinaryHeap::new(),
            active: 0,
            reserved: 0,
            retiring: 0,
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

    /// When the earliest hold of the group ends.
    fn first_expiry(&mut self) -> Option<UnixMillis> {
        self.settle_expiries();
        self.expiries.peek().map(|Reverse((at, _))| *at)
    }
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
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
        let view = self.session_view(&new.id, &entry, now);
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
        for (g, pos) in entry.holds {
            self.release_slot(g, pos, now, log);
        }
        record(log, || Change::SessionEnded(id.clone()));
        if self.data.remove(&entry.data_id).is_some() {
            record(log, || Change::DataDeleted(entry.data_id.clone()));
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
        record(log, || Change::Data {
            id: id.clone(),
            fields: fields.clone(),
            expires_at,
        });
        self.data.insert(id, DataEntry { fields, expires_at });
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
        merge_fields(&mut entry.fields, fields);
        entry.expires_at = now.plus(ttl);
        let (fields, expires_at) = (entry.fields.clone(), entry.expires_at);
        record(log, || Change::Data {
            id: id.clone(),
            fields,
            expires_at,
        });
        true
    }

    pub fn delete_data(&mut self, id: &DataId, now: UnixMillis, log: &mut ChangeLog) -> bool {
        if self.data(id, now).is_none() {
            return false;
        }
        self.data.remove(id);
        record(log, || Change::DataDeleted(id.clone()));
        true
    }

    /// Frees the memory of expired sessions and data; returns how many entries went.
    /// Expired reservations are reaped per group as they surface.
    pub fn purge_expired(&mut self, now: UnixMillis) -> u64 {
        let before = self.sessions.len() + self.data.len();
        self.sessions.retain(|_, s| !s.expires_at.is_reached(now));
        self.data.retain(|_, d| !d.expires_at.is_reached(now));
        for idx in 0..self.groups.len() as GroupIdx {
            if self.groups[idx as usize].is_some() {
                self.reap(idx, now);
            }
        }
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
