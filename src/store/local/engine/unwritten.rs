//! What a write answers without changing anything: a call on a session, group, number or
//! stored entry the engine does not know, or an operator's release of a number that holds
//! nothing. A store whose disk cannot write answers these as
//! reads (`LocalStore::unwritten`): the contract keeps every call that needs no write
//! working while writes fail. Each check is the first step of its write (`reserve` and
//! `delete_data` call theirs; a match starts with the same `locate`), so the two never
//! disagree.

use crate::domain::{AccessNumber, DataId, GroupName, UnixMillis};
use crate::store::{
    DeleteGroup, FreeNumber, MatchOutcome, MatchRequest, RemoveNumber, ReserveError, ReserveRequest,
};

use super::{Engine, GroupIdx};

impl Engine {
    /// The session's expiry and the group a reservation for `req` goes to, or why there is
    /// none (the session first, then the group).
    pub(super) fn reserve_target(
        &self,
        req: &ReserveRequest,
        now: UnixMillis,
    ) -> Result<(UnixMillis, GroupIdx), ReserveError> {
        let session_expiry = self
            .live_session(&req.session, now)
            .ok_or(ReserveError::SessionNotFound)?
            .expires_at;
        let g = self
            .group_idx(&req.group)
            .ok_or(ReserveError::UnknownGroup)?;
        Ok((session_expiry, g))
    }

    /// A request-access refused before any number is looked at.
    pub fn reserve_refused(&self, req: &ReserveRequest, now: UnixMillis) -> Option<ReserveError> {
        self.reserve_target(req, now).err()
    }

    /// A request-interaction refused before any session is made: its group is unknown.
    pub fn interaction_refused(&self, req: &ReserveRequest) -> Option<ReserveError> {
        self.group_idx(&req.group)
            .is_none()
            .then_some(ReserveError::UnknownGroup)
    }

    /// A call on a number in no group: no match, and nothing to count.
    pub fn call_unknown(&self, req: &MatchRequest) -> Option<MatchOutcome> {
        self.locate(&req.number)
            .is_none()
            .then(MatchOutcome::unknown_number)
    }

    /// An operator's delete of a group that does not exist.
    pub fn group_unknown(&self, name: &GroupName) -> Option<DeleteGroup> {
        self.group_idx(name)
            .is_none()
            .then_some(DeleteGroup::NotFound)
    }

    /// Where `number` is in `group`, or `None`: its group or the number unknown there (the
    /// first steps of an operator's remove and free).
    fn number_in(&self, group: &GroupName, number: &AccessNumber) -> Result<u32, bool> {
        let g = self.group_idx(group).ok_or(false)?;
        match self.locate(number) {
            Some((owner, pos)) if owner == g => Ok(pos),
            _ => Err(true),
        }
    }

    /// An operator's removal of a number its group does not have (or of an unknown group).
    pub fn removal_unknown(
        &self,
        group: &GroupName,
        number: &AccessNumber,
    ) -> Option<RemoveNumber> {
        match self.number_in(group, number) {
            Ok(_) => None,
            Err(false) => Some(RemoveNumber::UnknownGroup),
            Err(true) => Some(RemoveNumber::UnknownNumber),
        }
    }

    /// An operator's free of a number its group does not have (or of an unknown group).
    pub fn free_unknown(&self, group: &GroupName, number: &AccessNumber) -> Option<FreeNumber> {
        match self.number_in(group, number) {
            Ok(_) => None,
            Err(false) => Some(FreeNumber::UnknownGroup),
            Err(true) => Some(FreeNumber::UnknownNumber),
        }
    }

    /// An operator's release of a number that holds no live reservation: nothing released.
    pub fn nothing_to_release(&self, number: &AccessNumber, now: UnixMillis) -> Option<bool> {
        let Some((g, pos)) = self.locate(number) else {
            return Some(false);
        };
        let live = self.groups[g as usize]
            .as_ref()
            .is_some_and(|group| group.live_hold(pos, now).is_some());
        (!live).then_some(false)
    }

    /// Whether `id` names no live stored entry (a delete or update of it changes nothing).
    pub fn data_unknown(&self, id: &DataId, now: UnixMillis) -> bool {
        self.data
            .get(id)
            .is_none_or(|d| d.expires_at.is_reached(now))
    }
}
