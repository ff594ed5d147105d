//! Calls on a number (match-interaction) and an operator's `free`: the engine gathers the
//! number's live and last reservations, `rules::call::decide` says what the call does, and
//! this file does it.

use crate::domain::{AccessNumber, GroupName, UnixMillis};
use crate::events::{Event, EventKind};
use crate::rules::call::{Call, Last, Live, Verdict};
use crate::rules::{self, lifecycle::EndReason};
use crate::store::{FreeNumber, MatchOutcome, MatchRequest};

use super::{Engine, GroupIdx, Pos, SlotState};
use crate::store::local::journal::{Change, ChangeLog, record};

impl Engine {
    pub fn match_reservation(
        &mut self,
        req: &MatchRequest,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> MatchOutcome {
        let Some((g, _)) = self.locate(&req.number) else {
            return MatchOutcome::unknown_number();
        };
        self.reap(g, now);
        self.record_expiries(log);
        // A retiring number whose reservation the reap just ended has left its group.
        let Some((g, pos)) = self.locate(&req.number) else {
            return MatchOutcome::unknown_number();
        };
        let group = self.groups[g as usize]
            .as_ref()
            .expect("a located number's group is live");
        let policy = group.settings.policy;
        let name = group.settings.name.clone();
        let slot = &group.slots[pos as usize];
        let live = match &slot.state {
            SlotState::Held(h) if !h.expires_at.is_reached(now) => Some(Live {
                session: &h.session,
                code: h.code.as_ref(),
                phone: h.phone.as_ref(),
                wrong_codes: h.wrong_codes,
            }),
            _ => None,
        };
        let last = slot
            .past
            .as_ref()
            .and_then(|p| Some((p.last.as_ref()?, &p.strays)));
        let last = last.map(|(ended, strays)| Last {
            ended,
            session_alive: self.live_session(&ended.session, now).is_some(),
            strays,
        });
        let call = Call {
            code: req.code.as_ref(),
            phone: req.phone.as_ref(),
            code_required: req.code_required,
        };
        let verdict = rules::call::decide(call, live, last, &policy, now);
        let refused = |reason| MatchOutcome::refused(reason, name.clone());
        // A wrong code for the live reservation counts even when an ended one answers late.
        let mut locked = None;
        let verdict = match verdict {
            Verdict::LateAfterWrongCode {
                session,
                attempts,
                lockout,
            } => {
                match lockout {
                    true => {
                        locked = self.held_by(g, pos);
                        self.end_hold(g, pos, now, EndReason::Locked, Some(&mut *log));
                    }
                    false => self.count_wrong_code(g, pos, &req.number, attempts, log),
                }
                Verdict::Late(session)
            }
            v => v,
        };
        let late = matches!(verdict, Verdict::Late(_));
        match verdict {
            Verdict::Match(id) | Verdict::Late(id) => {
                let Some(session) = self.session(&id, now) else {
                    return refused(rules::call::Reason::SessionEnded);
                };
                if late {
                    if self.wants_events() {
                        let event = Event::new(
                            EventKind::LateMatch,
                            now,
                            name.clone(),
                            req.number.clone(),
                            Some(id.clone()),
                        );
                        self.emit(event, log);
                    }
                } else {
                    self.end_hold(g, pos, now, EndReason::Matched, Some(&mut *log));
                }
                if req.end_session {
                    self.end_session(&id, now, log);
                }
                MatchOutcome::Matched {
                    session,
                    group: name,
                    late,
                    locked,
                }
            }
            Verdict::WrongCode { attempts } => {
                self.count_wrong_code(g, pos, &req.number, attempts, log);
                refused(rules::call::Reason::WrongCode)
            }
            Verdict::LateAfterWrongCode { .. } => unreachable!("turned into Late above"),
            Verdict::Lockout => {
                let session = self.held_by(g, pos).expect("a lockout ends a live hold");
                self.end_hold(g, pos, now, EndReason::Locked, Some(&mut *log));
                MatchOutcome::locked_out(name.clone(), session)
            }
            Verdict::Refused(reason) => refused(reason),
            Verdict::Stray(reason) => {
                let quarantined = self.stray_call(g, pos, now, log);
                MatchOutcome::stray(reason, name.clone(), quarantined)
            }
        }
    }

    /// A live reservation's new count of wrong codes.
    fn count_wrong_code(
        &mut self,
        g: GroupIdx,
        pos: Pos,
        number: &AccessNumber,
        attempts: u32,
        log: &mut ChangeLog,
    ) {
        if let SlotState::Held(h) = &mut self.group_mut(g).slots[pos as usize].state {
            h.wrong_codes = attempts;
        }
        record(log, || Change::WrongCodes {
            number: number.clone(),
            count: attempts,
        });
    }

    /// Counts a stray call on a number with no live reservation; the N-th within 24 h puts
    /// it in quarantine. Returns whether this call did.
    fn stray_call(&mut self, g: GroupIdx, pos: Pos, now: UnixMillis, log: &mut ChangeLog) -> bool {
        let group = self.group_mut(g);
        let policy = group.settings.policy;
        let recent = group.past_mut(pos).strays.clone();
        let (strays, quarantine) = rules::lifecycle::stray_call(&recent, now, &policy);
        group.past_mut(pos).strays = strays.clone();
        let slot = &mut group.slots[pos as usize];
        let newly = quarantine && matches!(slot.state, SlotState::Free(_));
        if newly {
            slot.state = SlotState::Quarantined(now);
            group.free.remove(pos);
            group.quarantined += 1;
        }
        let slot = &group.slots[pos as usize];
        let (freed_at, quarantined_at) = match slot.state {
            SlotState::Free(at) => (at, None),
            SlotState::Quarantined(since) => (now, Some(since)),
            _ => (now, None),
        };
        let number = slot.number.clone();
        let name = group.settings.name.clone();
        record(log, || Change::Rest {
            number: number.clone(),
            freed_at,
            quarantined_at,
            strays,
        });
        if newly && self.wants_events() {
            let event = Event::new(EventKind::Quarantined, now, name, number, None);
            self.emit(event, log);
        }
        newly
    }

    /// Ends a cool-down or a quarantine: the number is lendable now.
    pub fn free_number(
        &mut self,
        group: &GroupName,
        number: &AccessNumber,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) -> FreeNumber {
        let Some(g) = self.group_idx(group) else {
            return FreeNumber::UnknownGroup;
        };
        self.reap(g, now);
        self.record_expiries(log);
        let pos = match self.locate(number) {
            Some((owner, pos)) if owner == g => pos,
            _ => return FreeNumber::UnknownNumber,
        };
        let group = self.group_mut(g);
        match group.slots[pos as usize].state {
            SlotState::Free(at) if !at.is_reached(now) => {}
            SlotState::Quarantined(_) => group.quarantined -= 1,
            _ => return FreeNumber::NotResting,
        }
        group.rest_until(pos, now, now);
        if let Some(past) = group.slots[pos as usize].past.as_mut() {
            past.strays.clear();
        }
        record(log, || Change::Rest {
            number: number.clone(),
            freed_at: now,
            quarantined_at: None,
            strays: Vec::new(),
        });
        FreeNumber::Freed
    }
}
