//! Reserving and ending reservations: the heart of the engine. How a reservation ends (its
//! reason, when the number is lendable again, what is remembered) is `rules::lifecycle`.

use std::cmp::Reverse;

use crate::domain::{AccessNumber, SessionId, UnixMillis};
use crate::events::{Event, EventKind};
use crate::rules::{self, lifecycle::EndReason, lifecycle::Ended};
use crate::store::{Reservation, ReserveError, ReserveRequest};

use super::{Engine, GroupIdx, Hold, Pos, SlotState, Unrecorded};
use crate::store::local::journal::{Change, ChangeLog, record};

impl Engine {
    /// Ends every hold of the group that expired by `now`, and makes lendable every cooling
    /// number whose time has come. Writes nothing (reads call it too): the expiries it ends
    /// are recorded by the next write (`record_expiries`); on disk they are dead by their
    /// `expires_at` meanwhile.
    pub(super) fn reap(&mut self, g: GroupIdx, now: UnixMillis) {
        loop {
            let group = self.group_mut(g);
            group.settle_expiries();
            match group.expiries.peek() {
                Some(&Reverse((at, pos))) if at.is_reached(now) => {
                    group.expiries.pop();
                    let slot = &group.slots[pos as usize];
                    let retired = match &slot.state {
                        SlotState::Held(h) if h.retiring => {
                            Some((slot.number.clone(), h.session.clone()))
                        }
                        _ => None,
                    };
                    if self.end_hold(g, pos, now, EndReason::Expired, None) {
                        self.unrecorded.push(Unrecorded {
                            g,
                            pos,
                            at,
                            retired,
                        });
                    }
                }
                _ => break,
            }
        }
        let group = self.group_mut(g);
        while let Some(&Reverse((at, pos))) = group.cooling.peek() {
            if !at.is_reached(now) {
                break;
            }
            group.cooling.pop();
            if matches!(group.slots[pos as usize].state, SlotState::Free(t) if t == at) {
                group.free.insert(pos, at);
            }
        }
    }

    /// Journals the expiries reads ended, with their events. Every write calls it first.
    pub(super) fn record_expiries(&mut self, log: &mut ChangeLog) {
        for Unrecorded {
            g,
            pos,
            at,
            retired,
        } in std::mem::take(&mut self.unrecorded)
        {
            let Some(group) = self.groups.get(g as usize).and_then(Option::as_ref) else {
                continue;
            };
            // A retiring number left with its reservation: its row goes, its expiry is told.
            if let Some((number, session)) = retired {
                let event = self.wants_events().then(|| {
                    let name = group.settings.name.clone();
                    Event::new(EventKind::Expired, at, name, number.clone(), Some(session))
                });
                record(log, || Change::NumberDeleted(number));
                if let Some(event) = event {
                    self.emit(event, log);
                }
                continue;
            }
            let slot = &group.slots[pos as usize];
            let (SlotState::Free(free_from), Some(ended)) = (
                &slot.state,
                slot.past.as_ref().and_then(|p| p.last.as_ref()),
            ) else {
                continue;
            };
            if ended.at != at || ended.reason != EndReason::Expired {
                continue;
            }
            let (number, free_from, ended) = (slot.number.clone(), *free_from, ended.clone());
            let event = self.wants_events().then(|| {
                Event::new(
                    EventKind::Expired,
                    at,
                    group.settings.name.clone(),
                    number.clone(),
                    Some(ended.session.clone()),
                )
            });
            record(log, || Change::Released {
                number,
                freed_at: free_from,
                ended,
            });
            if let Some(event) = event {
                self.emit(event, log);
            }
        }
    }

    /// The session holding the number at `pos` of group `g`, if it is held.
    pub(super) fn held_by(&self, g: GroupIdx, pos: Pos) -> Option<SessionId> {
        let group = self.groups[g as usize].as_ref()?;
        match &group.slots[pos as usize].state {
            SlotState::Held(hold) => Some(hold.session.clone()),
            _ => None,
        }
    }

    /// Ends the hold on a slot, if any (`reason`, or `Expired` if it had expired by `now`):
    /// the number rests for the group's cool-down (or leaves, if retiring) and remembers the
    /// reservation. Journals and emits the ending into `log`; `None` (reap, which may run in a
    /// read) leaves that to `record_expiries`. Returns whether there was a hold.
    pub(super) fn end_hold(
        &mut self,
        g: GroupIdx,
        pos: Pos,
        now: UnixMillis,
        reason: EndReason,
        mut log: Option<&mut ChangeLog>,
    ) -> bool {
        let group = self.group_mut(g);
        let slot = &mut group.slots[pos as usize];
        let SlotState::Held(hold) = std::mem::replace(&mut slot.state, SlotState::Gone) else {
            return false;
        };
        let number = slot.number.clone();
        let expired = hold.expires_at.is_reached(now);
        let reason = if expired { EndReason::Expired } else { reason };
        let ended = Ended {
            session: hold.session.clone(),
            code: hold.code,
            phone: hold.phone,
            at: rules::lifecycle::ended_at(hold.expires_at, now),
            reason,
        };
        let free_from = rules::lifecycle::free_from(ended.at, &group.settings.policy);
        let group = self.group_mut(g);
        let name = group.settings.name.clone();
        if hold.retiring {
            group.retiring -= 1;
            self.unindex_number(&number);
            if let Some(log) = log.as_deref_mut() {
                record(log, || Change::NumberDeleted(number.clone()));
            }
        } else {
            group.reserved -= 1;
            group.rest_until(pos, free_from, now);
            group.past_mut(pos).last = Some(ended.clone());
            if let Some(log) = log.as_deref_mut() {
                record(log, || Change::Released {
                    number: number.clone(),
                    freed_at: free_from,
                    ended: ended.clone(),
                });
            }
        }
        if let Some(log) = log
            && self.wants_events()
        {
            let time = if reason == EndReason::Matched {
                now
            } else {
                ended.at
            };
            let event = Event::new(
                reason.event(),
                time,
                name,
                number,
                Some(hold.session.clone()),
            );
            self.emit(event, log);
        }
        if let Some(session) = self.sessions.get_mut(&hold.session) {
            session.holds.retain(|&h| h != (g, pos));
        }
        if let Some(client) = &hold.client {
            self.forget_client(g, pos, client);
        }
        true
    }

    pub fn reserve(
        &mut self,
        req: ReserveRequest,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> Result<Reservation, ReserveError> {
        let (session_expiry, g) = self.reserve_target(&req, now)?;
        self.reap(g, now);
        self.record_expiries(log);
        let settings = self.group_mut(g).settings.clone();
        let existing = self
            .sessions
            .get(&req.session)
            .and_then(|s| s.holds.iter().find(|h| h.0 == g))
            .map(|h| h.1);
        let pos = match existing {
            Some(pos) => pos,
            None => {
                if let Some(quota) = &req.quota {
                    rules::quota::admit(quota, self.client_hold_ends(&quota.client, now), now)?;
                }
                self.take_free(g, &req, now, log)?
            }
        };
        let group = self.group_mut(g);
        let slot = &mut group.slots[pos as usize];
        let SlotState::Held(hold) = &mut slot.state else {
            unreachable!("a session's hold points at a held slot");
        };
        let current = existing.map(|_| rules::Booking {
            code: hold.code.clone(),
            phone: hold.phone.clone(),
            expires_at: hold.expires_at,
        });
        let code = rules::booking::code_to_give(req.provide_code, &settings.policy, req.code);
        let booking = rules::book(
            now,
            req.timeout,
            settings.booking_timeout,
            session_expiry,
            code,
            req.phone,
            current.as_ref(),
        );
        let expires_at = booking.expires_at;
        hold.expires_at = expires_at;
        hold.code = booking.code;
        hold.phone = booking.phone;
        // A renewal leaves the reservation counting for the client that made it.
        let client_before = hold.client.clone();
        let current = existing.and(client_before.as_ref());
        hold.client = rules::quota::owner(current, req.quota.as_ref().map(|q| &q.client));
        let client = hold.client.clone();
        let reservation = Reservation {
            number: slot.number.clone(),
            code: hold.code.clone(),
            expires_in: expires_at.remaining_from(now),
            pool_size: group.active,
            pool_free: group.free.len() as u64,
        };
        let wrong_codes = hold.wrong_codes;
        record(log, || Change::Reserved {
            number: reservation.number.clone(),
            session: req.session.clone(),
            code: hold.code.clone(),
            phone: hold.phone.clone(),
            expires_at,
            wrong_codes,
            client: client.clone(),
        });
        group.expiries.push(Reverse((expires_at, pos)));
        self.hold_passes(g, pos, client_before.as_ref(), client.as_ref());
        if existing.is_none() && self.wants_events() {
            let event = Event::new(
                EventKind::Created,
                now,
                settings.name,
                reservation.number.clone(),
                Some(req.session.clone()),
            );
            self.emit(event, log);
        }
        Ok(reservation)
    }

    /// Takes a free number for a new hold (its expiry is set by the caller).
    fn take_free(
        &mut self,
        g: GroupIdx,
        req: &ReserveRequest,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> Result<Pos, ReserveError> {
        let group = self.group_mut(g);
        let Some(pos) = group.free.take() else {
            let retry_after = rules::retry_after(now, group.first_free_at());
            return Err(ReserveError::Exhausted { retry_after });
        };
        group.reserved += 1;
        group.slots[pos as usize].state = SlotState::Held(Box::new(Hold {
            session: req.session.clone(),
            code: None,
            phone: None,
            expires_at: now,
            retiring: false,
            wrong_codes: 0,
            client: None,
        }));
        if let Some(cursor) = group.free.cursor() {
            let name = group.settings.name.clone();
            record(log, || Change::Cursor {
                group: name,
                cursor,
            });
        }
        if let Some(session) = self.sessions.get_mut(&req.session) {
            session.holds.push((g, pos));
        }
        Ok(pos)
    }

    /// Releases the live hold on a number (admin); `false` if it had none.
    pub fn release(&mut self, number: &AccessNumber, now: UnixMillis, log: &mut ChangeLog) -> bool {
        let Some((g, pos)) = self.locate(number) else {
            return false;
        };
        self.reap(g, now);
        self.record_expiries(log);
        let live = self.groups[g as usize]
            .as_ref()
            .is_some_and(|grp| grp.live_hold(pos, now).is_some());
        if live {
            self.end_hold(g, pos, now, EndReason::Released, Some(log));
        }
        live
    }
}
