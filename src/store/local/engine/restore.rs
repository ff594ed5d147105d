//! Rebuilding an engine from what a durable backend kept, at start.

use std::cmp::Reverse;

use crate::domain::{
    AccessCode, AccessNumber, DataId, GroupName, PhoneNumber, ServiceName, SessionId, UnixMillis,
};
use crate::store::{Fields, GroupSettings};

use super::{DataEntry, Engine, Group, Hold, SessionEntry, Slot, SlotState};

/// One stored number, as the loader reads it.
pub struct StoredNumber {
    pub group: GroupName,
    pub number: AccessNumber,
    pub position: u32,
    pub retiring: bool,
    pub freed_at: UnixMillis,
}

/// One stored reservation, as the loader reads it.
pub struct StoredReservation {
    pub number: AccessNumber,
    pub session: SessionId,
    pub code: Option<AccessCode>,
    pub phone: Option<PhoneNumber>,
    pub expires_at: UnixMillis,
}

impl Engine {
    /// A stored group; `size` (its highest position + 1) sizes the tables once, up front.
    pub fn restore_group(&mut self, settings: GroupSettings, cursor: Option<u32>, size: usize) {
        let g = self.groups.len() as u32;
        let mut group = Group::new(settings);
        group.slots.reserve_exact(size);
        let groups = &self.groups;
        self.numbers.reserve(size, |k| super::number_at(groups, k));
        if let Some(c) = cursor {
            group.free.set_cursor(c);
        }
        self.group_index.insert(group.settings.name.clone(), g);
        self.groups.push(Some(group));
    }

    pub fn restore_session(
        &mut self,
        id: SessionId,
        service: ServiceName,
        data_id: DataId,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) {
        if !expires_at.is_reached(now) {
            self.sessions.insert(
                id,
                SessionEntry {
                    service,
                    data_id,
                    expires_at,
                    holds: Vec::new(),
                },
            );
        }
    }

    pub fn restore_data(
        &mut self,
        id: DataId,
        fields: Fields,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) {
        if !expires_at.is_reached(now) {
            self.data.insert(id, DataEntry { fields, expires_at });
        }
    }

    /// Loads numbers (sorted by group and position) and reservations; whatever expired while
    /// the node was down is simply not restored. Returns the retired numbers that can be
    /// deleted from disk (retiring, and no live reservation any more).
    pub fn restore_numbers(
        &mut self,
        numbers: impl IntoIterator<Item = StoredNumber>,
        reservations: Vec<StoredReservation>,
        now: UnixMillis,
    ) -> Vec<AccessNumber> {
        let mut retiring = Vec::new();
        let mut freed = Vec::new();
        for n in numbers {
            let Some(g) = self.group_idx(&n.group) else {
                continue;
            };
            let group = self.group_mut(g);
            // Positions may have gaps where numbers were removed; the slots keep those gaps
            // as Gone so the stored round-robin order and cursor still line up.
            while (group.slots.len() as u32) < n.position {
                group.slots.push(Slot {
                    number: n.number.clone(),
                    state: SlotState::Gone,
                });
            }
            let pos = group.slots.len() as u32;
            group.slots.push(Slot {
                number: n.number.clone(),
                state: SlotState::Free(n.freed_at),
            });
            self.index_number(&n.number, (g, pos));
            if n.retiring {
                retiring.push((g, pos));
            } else {
                freed.push((g, pos, n.freed_at));
            }
        }
        // A reservation that expired while the node was down freed its number at its expiry.
        let mut expired = std::collections::HashMap::new();
        for r in reservations {
            if r.expires_at.is_reached(now) {
                if let Some(at) = self.locate(&r.number) {
                    expired.insert(at, r.expires_at);
                }
                continue;
            }
            let Some((g, pos)) = self.locate(&r.number) else {
                continue;
            };
            let Some(session) = self.sessions.get_mut(&r.session) else {
                continue;
            };
            session.holds.push((g, pos));
            let group = self.group_mut(g);
            group.slots[pos as usize].state = SlotState::Held(Box::new(Hold {
                session: r.session,
                code: r.code,
                phone: r.phone,
                expires_at: r.expires_at,
                retiring: false,
            }));
            group.expiries.push(Reverse((r.expires_at, pos)));
        }
        for (g, pos, freed_at) in freed {
            let freed_at = expired
                .get(&(g, pos))
                .map_or(freed_at, |&at| at.max(freed_at));
            let group = self.group_mut(g);
            group.active += 1;
            let slot = &mut group.slots[pos as usize];
            match slot.state {
                SlotState::Held(_) => group.reserved += 1,
                _ => {
                    slot.state = SlotState::Free(freed_at);
                    group.free.insert(pos, freed_at);
                }
            }
        }
        let mut gone = Vec::new();
        for (g, pos) in retiring {
            let group = self.group_mut(g);
            let slot = &mut group.slots[pos as usize];
            match &mut slot.state {
                SlotState::Held(hold) => {
                    hold.retiring = true;
                    group.retiring += 1;
                }
                _ => {
                    slot.state = SlotState::Gone;
                    gone.push(slot.number.clone());
                }
            }
        }
        for n in &gone {
            self.unindex_number(n);
        }
        gone
    }
}
