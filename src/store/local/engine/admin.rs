//! Group administration: config at start, and the admin API's changes at run time.

use crate::domain::{AccessNumber, GroupName, UnixMillis};
use crate::store::{
    AddNumbers, DeleteGroup, GroupChange, GroupDetail, GroupSettings, GroupSpec, GroupStats,
    NumberState, NumberView, NumbersFilter, PutGroup, RemoveNumber, ReservationFilter,
    ReservationView, StateKind,
};

use super::{Engine, Group, GroupIdx, Hold, Slot, SlotState};
use crate::rules;
use crate::store::local::free_set::FreeSet;
use crate::store::local::journal::{Change, ChangeLog, record};

impl Engine {
    fn stats(group: &Group) -> GroupStats {
        GroupStats {
            name: group.settings.name.clone(),
            allocation: group.settings.allocation,
            booking_timeout: group.settings.booking_timeout.map(|t| t.secs()),
            size: group.active,
            free: group.free.len() as u64,
            reserved: group.reserved,
            cooling: group.cooling_count(),
            quarantined: group.quarantined,
            retiring: group.retiring,
            policy: group.settings.policy,
        }
    }

    fn live_groups(&self) -> impl Iterator<Item = GroupIdx> + '_ {
        (0..self.groups.len() as GroupIdx).filter(|&g| self.groups[g as usize].is_some())
    }

    pub fn groups(&mut self, now: UnixMillis) -> Vec<GroupStats> {
        let all: Vec<GroupIdx> = self.live_groups().collect();
        let mut out: Vec<GroupStats> = all
            .into_iter()
            .map(|g| {
                self.reap(g, now);
                Self::stats(self.group_mut(g))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The group's counts and the numbers `filter` lets through. Runs under the engine's
    /// lock: a number's details are built only for those listed, so a page of a million
    /// numbers costs a walk over the slots (~70 ms before, each number's view built).
    pub fn group(
        &mut self,
        name: &GroupName,
        filter: &NumbersFilter,
        now: UnixMillis,
    ) -> Option<GroupDetail> {
        let g = self.group_idx(name)?;
        self.reap(g, now);
        let group = self.group_mut(g);
        let mut listed = 0;
        let mut numbers = Vec::new();
        for slot in &group.slots {
            let Some(state) = Shown::of(&slot.state, now) else {
                continue;
            };
            if !filter.passes(&slot.number, state.kind()) {
                continue;
            }
            let passed = listed;
            listed += 1;
            if filter.takes(passed, numbers.len()) {
                let strays = slot.past.as_ref().map_or(&[][..], |p| &p.strays[..]);
                numbers.push(NumberView {
                    number: slot.number.clone(),
                    state: state.detail(now),
                    stray_calls: rules::lifecycle::recent_strays(strays, now),
                });
            }
        }
        Some(GroupDetail {
            stats: Self::stats(group),
            listed,
            numbers,
        })
    }

    /// Sets a group's whole settings, creating it if needed; `true` when created. A change of
    /// allocation rebuilds the free set, which restarts the round-robin walk at position 0
    /// (the rule every store keeps, PostgreSQL included), and journals that cursor so a
    /// restart does not bring back the old one; an unchanged allocation keeps the walk.
    pub fn set_group(
        &mut self,
        settings: GroupSettings,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> bool {
        record(log, || Change::Group(settings.clone()));
        let Some(g) = self.group_idx(&settings.name) else {
            let g = self.groups.len() as GroupIdx;
            self.group_index.insert(settings.name.clone(), g);
            self.groups.push(Some(Group::new(settings)));
            return true;
        };
        self.reap(g, now);
        let group = self.group_mut(g);
        let (old, new) = (group.settings.allocation, settings.allocation);
        if old != new {
            // The free numbers keep the time each became free (least-recently-used order).
            let lendable = group
                .slots
                .iter()
                .enumerate()
                .filter_map(|(pos, slot)| match slot {
                    Slot {
                        state: SlotState::Free(since),
                        ..
                    } if since.is_reached(now) => Some((pos as u32, *since)),
                    _ => None,
                });
            let mut free = FreeSet::build(new, lendable, group.slots.len());
            let cursor = rules::cursor_after_change(old, new, group.free.cursor().unwrap_or(0));
            free.set_cursor(cursor);
            group.free = free;
            let name = settings.name.clone();
            record(log, || Change::Cursor {
                group: name,
                cursor,
            });
        }
        group.settings = settings;
        false
    }

    /// The admin API's change to one group (see `Store::put_group`). Every check comes before
    /// the first write, so a refusal leaves the engine and the journal untouched.
    pub fn put_group(
        &mut self,
        change: GroupChange,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> PutGroup {
        let back = match self.group_idx(&change.name) {
            Some(g) => self.listed_retiring(g, &change.numbers),
            None => Vec::new(),
        };
        let numbers = match self.numbers_to_add(&change.name, change.numbers) {
            Ok(numbers) => numbers,
            Err((number, owner)) => return PutGroup::Taken(number, owner),
        };
        let current = self.group_idx(&change.name).map(|g| {
            let s = &self.group_mut(g).settings;
            (s.allocation, s.booking_timeout, s.policy)
        });
        let (allocation, booking_timeout) = rules::group::changed_settings(
            current.map(|(a, t, _)| (a, t)),
            change.allocation,
            change.booking_timeout,
        );
        let policy = rules::group::changed_policy(current.map(|c| c.2), &change.policy);
        let settings = GroupSettings {
            allocation,
            booking_timeout,
            policy,
            name: change.name,
        };
        let name = settings.name.clone();
        let created = self.set_group(settings, now, log);
        if let Some(g) = self.group_idx(&name) {
            for pos in back {
                self.unretire(g, pos, log);
            }
            for number in numbers {
                self.push_number(g, number, log);
            }
        }
        if created {
            PutGroup::Created
        } else {
            PutGroup::Changed
        }
    }

    pub fn delete_group(
        &mut self,
        name: &GroupName,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> DeleteGroup {
        let Some(g) = self.group_idx(name) else {
            return DeleteGroup::NotFound;
        };
        self.reap(g, now);
        let group = self.group_mut(g);
        if group.reserved + group.retiring > 0 {
            return DeleteGroup::Busy;
        }
        // Gone slots are skipped: their number may belong to another group by now.
        let numbers: Vec<AccessNumber> = group
            .slots
            .iter()
            .filter(|s| !matches!(s.state, SlotState::Gone))
            .map(|s| s.number.clone())
            .collect();
        for n in numbers {
            self.unindex_number(&n);
        }
        self.groups[g as usize] = None;
        self.group_index.remove(name);
        record(log, || Change::GroupDeleted(name.clone()));
        DeleteGroup::Deleted
    }

    pub fn add_numbers(
        &mut self,
        name: &GroupName,
        numbers: Vec<AccessNumber>,
        log: &mut ChangeLog,
    ) -> AddNumbers {
        let Some(g) = self.group_idx(name) else {
            return AddNumbers::UnknownGroup;
        };
        let back = self.listed_retiring(g, &numbers);
        let numbers = match self.numbers_to_add(name, numbers) {
            Ok(numbers) => numbers,
            Err((number, owner)) => return AddNumbers::Taken(number, owner),
        };
        let added = (numbers.len() + back.len()) as u64;
        for pos in back {
            self.unretire(g, pos, log);
        }
        for number in numbers {
            self.push_number(g, number, log);
        }
        AddNumbers::Added(added)
    }

    /// Where the group's own retiring numbers that an admin request lists are: they go back
    /// into service (an operator who removed a reserved number and adds it again keeps it).
    fn listed_retiring(&self, g: GroupIdx, listed: &[AccessNumber]) -> Vec<u32> {
        let Some(group) = self.groups[g as usize].as_ref() else {
            return Vec::new();
        };
        let mut back: Vec<u32> = listed
            .iter()
            .filter_map(|n| self.locate(n))
            .filter(|&(owner, pos)| {
                owner == g
                    && matches!(&group.slots[pos as usize].state, SlotState::Held(h) if h.retiring)
            })
            .map(|(_, pos)| pos)
            .collect();
        // A number listed twice comes back once.
        back.sort_unstable();
        back.dedup();
        back
    }

    /// The numbers of an admin request that join `name` (`rules::group::numbers_to_add`).
    fn numbers_to_add(
        &self,
        name: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<Vec<AccessNumber>, (AccessNumber, GroupName)> {
        rules::group::numbers_to_add(name, numbers, |n| {
            let (g, _) = self.locate(n)?;
            self.groups[g as usize]
                .as_ref()
                .map(|o| o.settings.name.clone())
        })
    }

    fn push_number(&mut self, g: GroupIdx, number: AccessNumber, log: &mut ChangeLog) {
        let group = self.group_mut(g);
        let last = (group.slots.len() as u32).checked_sub(1);
        let pos = rules::next_position(last, group.free.cursor().unwrap_or(0));
        while (group.slots.len() as u32) < pos {
            group.slots.push(Slot {
                number: number.clone(),
                state: SlotState::Gone,
                past: None,
            });
        }
        let name = group.settings.name.clone();
        record(log, || Change::Number {
            group: name,
            number: number.clone(),
            position: pos,
            retiring: false,
        });
        group.slots.push(Slot {
            number: number.clone(),
            state: SlotState::Free(UnixMillis(0)),
            past: None,
        });
        group.free.insert(pos, UnixMillis(0));
        group.active += 1;
        self.index_number(&number, (g, pos));
    }

    pub fn remove_number(
        &mut self,
        name: &GroupName,
        number: &AccessNumber,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> RemoveNumber {
        let Some(g) = self.group_idx(name) else {
            return RemoveNumber::UnknownGroup;
        };
        self.reap(g, now);
        let Some((owner, pos)) = self.locate(number) else {
            return RemoveNumber::UnknownNumber;
        };
        if owner != g {
            return RemoveNumber::UnknownNumber;
        }
        let group = self.group_mut(g);
        let slot = &mut group.slots[pos as usize];
        match &mut slot.state {
            SlotState::Free(_) | SlotState::Quarantined(_) => {
                if matches!(slot.state, SlotState::Quarantined(_)) {
                    group.quarantined -= 1;
                }
                slot.state = SlotState::Gone;
                slot.past = None;
                group.free.remove(pos);
                group.active -= 1;
                self.unindex_number(number);
                record(log, || Change::NumberDeleted(number.clone()));
                RemoveNumber::Removed
            }
            SlotState::Held(hold) if hold.retiring => RemoveNumber::Retiring,
            SlotState::Held(hold) => {
                hold.retiring = true;
                group.active -= 1;
                group.reserved -= 1;
                group.retiring += 1;
                let group_name = name.clone();
                record(log, || Change::Number {
                    group: group_name,
                    number: number.clone(),
                    position: pos,
                    retiring: true,
                });
                RemoveNumber::Retiring
            }
            SlotState::Gone => RemoveNumber::UnknownNumber,
        }
    }

    pub fn find_reservations(
        &mut self,
        filter: &ReservationFilter,
        now: UnixMillis,
    ) -> Vec<ReservationView> {
        let candidates: Vec<(GroupIdx, u32)> = if let Some(n) = &filter.number {
            self.locate(n).into_iter().collect()
        } else if let Some(s) = &filter.session {
            self.sessions
                .get(s)
                .map(|e| e.holds.clone())
                .unwrap_or_default()
        } else {
            self.live_groups()
                .flat_map(|g| {
                    let group = self.groups[g as usize].as_ref();
                    let held = group.into_iter().flat_map(|grp| {
                        grp.slots
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| matches!(s.state, SlotState::Held(_)))
                    });
                    held.map(move |(pos, _)| (g, pos as u32))
                })
                .collect()
        };
        let mut out = Vec::new();
        for (g, pos) in candidates {
            let Some(group) = self.groups[g as usize].as_ref() else {
                continue;
            };
            let Some(hold) = group.live_hold(pos, now) else {
                continue;
            };
            let wanted = filter.session.as_ref().is_none_or(|s| *s == hold.session)
                && filter
                    .phone
                    .as_ref()
                    .is_none_or(|p| hold.phone.as_ref().is_some_and(|h| h.same_digits(p)));
            if wanted {
                let view = ReservationView {
                    number: group.slots[pos as usize].number.clone(),
                    group: group.settings.name.clone(),
                    session: hold.session.clone(),
                    phone: hold.phone.clone(),
                    has_code: hold.code.is_some(),
                    expires_in: hold.expires_at.remaining_from(now).as_secs(),
                };
                out.push((pos, view));
            }
        }
        // The order every store lists them in (`Store::find_reservations`).
        out.sort_by(|(a_pos, a), (b_pos, b)| (&a.group, a_pos).cmp(&(&b.group, b_pos)));
        out.truncate(filter.limit.unwrap_or(usize::MAX));
        out.into_iter().map(|(_, view)| view).collect()
    }

    /// Applies a node's configured groups (see `Store::apply_groups`); returns the differences.
    pub fn apply_groups(
        &mut self,
        specs: &[GroupSpec],
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        // First retire what the config dropped, so a number moved between groups is free to join.
        for spec in specs {
            let name = &spec.settings.name;
            let Some(g) = self.group_idx(name) else {
                continue;
            };
            let current = &self.group_mut(g).settings;
            if *current != spec.settings {
                let changes =
                    crate::store::setting_changes(current.described(), spec.settings.described());
                notes.push(format!(
                    "group {name}: settings in the store differ from the config; applying the config: {}",
                    changes.join(", ")
                ));
            }
            // Mark the slots the config still lists (through the index: no million-entry set).
            let mut wanted = vec![false; self.group_mut(g).slots.len()];
            for number in &spec.numbers {
                if let Some((owner, pos)) = self.locate(number)
                    && owner == g
                {
                    wanted[pos as usize] = true;
                }
            }
            let dropped: Vec<AccessNumber> = self
                .group_mut(g)
                .slots
                .iter()
                .zip(&wanted)
                .filter(|(s, wanted)| !matches!(s.state, SlotState::Gone) && !**wanted)
                .map(|(s, _)| s.number.clone())
                .collect();
            if !dropped.is_empty() {
                notes.push(format!(
                    "group {name}: {} numbers not in the config are retired",
                    dropped.len()
                ));
            }
            for number in dropped {
                self.remove_number(name, &number, now, log);
            }
        }
        for spec in specs {
            let name = &spec.settings.name;
            self.set_group(spec.settings.clone(), now, log);
            let g = self.group_idx(name).expect("group was just put");
            let mut added = 0u64;
            for number in &spec.numbers {
                match self.locate(number) {
                    None => {
                        self.push_number(g, number.clone(), log);
                        added += 1;
                    }
                    Some((owner, pos)) if owner == g => self.unretire(g, pos, log),
                    Some((owner, _)) => {
                        let other = self.groups[owner as usize]
                            .as_ref()
                            .map(|o| o.settings.name.to_string());
                        notes.push(format!(
                            "group {name}: number {number} still belongs to group {} (an operator moved it there); it is left there",
                            other.unwrap_or_default()
                        ));
                    }
                }
            }
            if added > 0 && added < spec.numbers.len() as u64 {
                notes.push(format!(
                    "group {name}: {added} numbers from the config were added"
                ));
            }
        }
        notes
    }

    /// A number the config or an operator lists again while it was retiring goes back into
    /// service.
    fn unretire(&mut self, g: GroupIdx, pos: u32, log: &mut ChangeLog) {
        let group = self.group_mut(g);
        let slot = &mut group.slots[pos as usize];
        if let SlotState::Held(hold) = &mut slot.state
            && hold.retiring
        {
            hold.retiring = false;
            group.retiring -= 1;
            group.reserved += 1;
            group.active += 1;
            let (name, number) = (group.settings.name.clone(), slot.number.clone());
            record(log, || Change::Number {
                group: name,
                number,
                position: pos,
                retiring: false,
            });
        }
    }
}

/// A slot as a group's page shows it, borrowing the hold: what the filter needs, without
/// copying a session id for numbers the page does not list.
enum Shown<'a> {
    Free,
    Cooling(UnixMillis),
    Quarantined,
    Held(&'a Hold),
}

impl<'a> Shown<'a> {
    /// `None` for a removed number.
    fn of(state: &'a SlotState, now: UnixMillis) -> Option<Self> {
        match state {
            SlotState::Free(at) if at.is_reached(now) => Some(Shown::Free),
            SlotState::Free(at) => Some(Shown::Cooling(*at)),
            SlotState::Quarantined(_) => Some(Shown::Quarantined),
            SlotState::Held(h) => Some(Shown::Held(h)),
            SlotState::Gone => None,
        }
    }

    fn kind(&self) -> StateKind {
        match self {
            Shown::Free => StateKind::Free,
            Shown::Cooling(_) => StateKind::Cooling,
            Shown::Quarantined => StateKind::Quarantined,
            Shown::Held(h) if h.retiring => StateKind::Retiring,
            Shown::Held(_) => StateKind::Reserved,
        }
    }

    fn detail(self, now: UnixMillis) -> NumberState {
        match self {
            Shown::Free => NumberState::Free,
            Shown::Cooling(at) => NumberState::Cooling {
                seconds_left: at.remaining_from(now).as_millis().div_ceil(1000) as u64,
            },
            Shown::Quarantined => NumberState::Quarantined,
            Shown::Held(h) => {
                let session = h.session.clone();
                let expires_in = h.expires_at.remaining_from(now).as_secs();
                match h.retiring {
                    true => NumberState::Retiring {
                        session,
                        expires_in,
                    },
                    false => NumberState::Reserved {
                        session,
                        expires_in,
                    },
                }
            }
        }
    }
}
