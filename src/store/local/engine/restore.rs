//! Rebuilding an engine from what a durable backend kept, at start.

use std::cmp::Reverse;

use crate::domain::{
    AccessCode, AccessNumber, DataId, GroupName, PhoneNumber, ServiceName, SessionId, UnixMillis,
};
use crate::store::{Fields, GroupSettings};

use super::{DataEntry, Engine, Group, Hold, Past, SessionEntry, Slot, SlotState};
use crate::rules::lifecycle::{self, EndReason, Ended};

/// One stored number, as the loader reads it.
pub struct StoredNumber {
    pub group: GroupName,
    pub number: AccessNumber,
    pub position: u32,
    pub retiring: bool,
    /// Lendable from (after its cool-down).
    pub freed_at: UnixMillis,
    pub quarantined_at: Option<UnixMillis>,
    pub strays: Vec<UnixMillis>,
    pub last: Option<Ended>,
}

/// One stored reservation, as the loader reads it.
pub struct StoredReservation {
    pub number: AccessNumber,
    pub session: SessionId,
    pub code: Option<AccessCode>,
    pub phone: Option<PhoneNumber>,
    pub expires_at: UnixMillis,
    pub wrong_codes: u32,
    pub client: Option<crate::store::ClientId>,
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

    /// A stored data entry's id and expiry; its fields stay on disk (`keep_fields_on_disk`).
    /// A stored entry whose fields stay on disk: its expiry and size only.
    pub fn restore_data(
        &mut self,
        id: DataId,
        expires_at: UnixMillis,
        bytes: u64,
        now: UnixMillis,
    ) {
        if !expires_at.is_reached(now) {
            let fields = Fields::new();
            let entry = DataEntry {
                fields,
                expires_at,
                bytes,
            };
            self.data.insert(id, entry);
        }
    }

    /// Loads numbers (sorted by group and position) and reservations. A reservation that
    /// expired while the node was down (or before the last write recorded it) becomes its
    /// number's last reservation, recorded by the next write. Returns the retired numbers that can be
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
                    past: None,
                });
            }
            let pos = group.slots.len() as u32;
            let past = (n.last.is_some() || !n.strays.is_empty()).then(|| {
                Box::new(Past {
                    last: n.last,
                    strays: n.strays,
                })
            });
            group.slots.push(Slot {
                number: n.number.clone(),
                state: match n.quarantined_at {
                    Some(since) => SlotState::Quarantined(since),
                    None => SlotState::Free(n.freed_at),
                },
                past,
            });
            self.index_number(&n.number, (g, pos));
            if n.retiring {
                retiring.push((g, pos));
            } else {
                freed.push((g, pos, n.freed_at));
            }
        }
        let mut expired = std::collections::HashMap::new();
        for r in reservations {
            if r.expires_at.is_reached(now) {
                if let Some((g, pos)) = self.locate(&r.number) {
                    let group = self.group_mut(g);
                    let free_from = lifecycle::free_from(r.expires_at, &group.settings.policy);
                    let past = group.past_mut(pos);
                    if past.last.as_ref().is_none_or(|l| l.at < r.expires_at) {
                        past.last = Some(Ended {
                            session: r.session,
                            code: r.code,
                            phone: r.phone,
                            at: r.expires_at,
                            reason: EndReason::Expired,
                        });
                        expired.insert((g, pos), free_from);
                        self.unrecorded.push(super::Unrecorded {
                            g,
                            pos,
                            at: r.expires_at,
                            retired: None,
                        });
                    }
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
                wrong_codes: r.wrong_codes,
                client: r.client.clone(),
            }));
            group.expiries.push(Reverse((r.expires_at, pos)));
            self.hold_passes(g, pos, None, r.client.as_ref());
        }
        for (g, pos, freed_at) in freed {
            let freed_at = expired
                .get(&(g, pos))
                .map_or(freed_at, |&at| at.max(freed_at));
            let group = self.group_mut(g);
            group.active += 1;
            match group.slots[pos as usize].state {
                SlotState::Held(_) => group.reserved += 1,
                SlotState::Quarantined(_) => group.quarantined += 1,
                _ => group.rest_until(pos, freed_at, now),
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
