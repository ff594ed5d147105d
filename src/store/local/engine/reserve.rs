//! Reserving, matching and releasing numbers: the heart of the engine.

use std::cmp::Reverse;

use crate::domain::{AccessNumber, UnixMillis};
use crate::rules;
use crate::store::{MatchRequest, Reservation, ReserveError, ReserveRequest, Session};

use super::{Engine, GroupIdx, Hold, Pos, SlotState};
use crate::store::local::journal::{Change, ChangeLog, record};

impl Engine {
    /// Releases every hold of the group that expired by `now`. Writes nothing to the log: an
    /// expired row on disk is already dead by its `expires_at`.
    pub(super) fn reap(&mut self, g: GroupIdx, now: UnixMillis) {
        loop {
            let group = self.group_mut(g);
            group.settle_expiries();
            match group.expiries.peek() {
                Some(&Reverse((at, pos))) if at.is_reached(now) => {
                    group.expiries.pop();
                    self.release_slot(g, pos, at, &mut None);
                }
                _ => return,
            }
        }
    }

    /// Ends the hold on a slot, if any: the number is free again (or gone, if retiring).
    pub(super) fn release_slot(
        &mut self,
        g: GroupIdx,
        pos: Pos,
        freed_at: UnixMillis,
        log: &mut ChangeLog,
    ) {
        let group = self.group_mut(g);
        let slot = &mut group.slots[pos as usize];
        let SlotState::Held(hold) = std::mem::replace(&mut slot.state, SlotState::Gone) else {
            return;
        };
        let number = slot.number.clone();
        let freed_at = rules::freed_at(hold.expires_at, freed_at);
        slot.state = SlotState::Free(freed_at);
        record(log, || Change::Released {
            number: number.clone(),
            freed_at,
        });
        if hold.retiring {
            slot.state = SlotState::Gone;
            group.retiring -= 1;
            self.unindex_number(&number);
            record(log, || Change::NumberDeleted(number));
        } else {
            group.free.insert(pos, freed_at);
            group.reserved -= 1;
        }
        if let Some(session) = self.sessions.get_mut(&hold.session) {
            session.holds.retain(|&h| h != (g, pos));
        }
    }

    pub fn reserve(
        &mut self,
        req: ReserveRequest,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> Result<Reservation, ReserveError> {
        let session_expiry = self
            .live_session(&req.session, now)
            .ok_or(ReserveError::SessionNotFound)?
            .expires_at;
        let g = self
            .group_idx(&req.group)
            .ok_or(ReserveError::UnknownGroup)?;
        self.reap(g, now);
        let group_timeout = self.group_mut(g).settings.booking_timeout;
        let existing = self
            .sessions
            .get(&req.session)
            .and_then(|s| s.holds.iter().find(|h| h.0 == g))
            .map(|h| h.1);
        let pos = match existing {
            Some(pos) => pos,
            None => self.take_free(g, &req, now, log)?,
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
        let booking = rules::book(
            now,
            req.timeout,
            group_timeout,
            session_expiry,
            req.code,
            req.phone,
            current.as_ref(),
        );
        let expires_at = booking.expires_at;
        hold.expires_at = expires_at;
        hold.code = booking.code;
        hold.phone = booking.phone;
        let reservation = Reservation {
            number: slot.number.clone(),
            code: hold.code.clone(),
            expires_in: expires_at.remaining_from(now),
            pool_size: group.active,
            pool_free: group.free.len() as u64,
        };
        record(log, || Change::Reserved {
            number: reservation.number.clone(),
            session: req.session.clone(),
            code: hold.code.clone(),
            phone: hold.phone.clone(),
            expires_at,
        });
        group.expiries.push(Reverse((expires_at, pos)));
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
            let retry_after = rules::retry_after(now, group.first_expiry());
            return Err(ReserveError::Exhausted { retry_after });
        };
        group.reserved += 1;
        group.slots[pos as usize].state = SlotState::Held(Box::new(Hold {
            session: req.session.clone(),
            code: None,
            phone: None,
            expires_at: now,
            retiring: false,
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

    /// Matches and releases the live hold on a number; ends the session when asked.
    pub fn match_reservation(
        &mut self,
        req: &MatchRequest,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> Option<Session> {
        let (g, pos) = self.locate(&req.number)?;
        let hold = self.groups[g as usize].as_ref()?.live_hold(pos, now)?;
        let accepted = rules::check_match(
            hold.code.as_ref(),
            hold.phone.as_ref(),
            req.code.as_ref(),
            req.phone.as_ref(),
            req.code_required,
        );
        if accepted.is_err() {
            return None;
        }
        let session_id = hold.session.clone();
        let session = self.session(&session_id, now)?;
        self.release_slot(g, pos, now, log);
        if req.end_session {
            self.end_session(&session_id, now, log);
        }
        Some(session)
    }

    /// Releases the live hold on a number (admin); `false` if it had none.
    pub fn release(&mut self, number: &AccessNumber, now: UnixMillis, log: &mut ChangeLog) -> bool {
        let Some((g, pos)) = self.locate(number) else {
            return false;
        };
        let live = self.groups[g as usize]
            .as_ref()
            .is_some_and(|grp| grp.live_hold(pos, now).is_some());
        if live {
            self.release_slot(g, pos, now, log);
        }
        live
    }
}
