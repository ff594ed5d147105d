//! What a write answers without changing anything: a call on a session, group, number or
//! stored entry the engine does not know. A store whose disk cannot write answers these as
//! reads (`LocalStore::unwritten`): the contract keeps every call that needs no write
//! working while writes fail. Each check is the first step of its write (`reserve` and
//! `delete_data` call theirs; a match starts with the same `locate`), so the two never
//! disagree.

use crate::domain::{DataId, UnixMillis};
use crate::store::{MatchOutcome, MatchRequest, ReserveError, ReserveRequest};

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

    /// Whether `id` names no live stored entry (a delete or update of it changes nothing).
    pub fn data_unknown(&self, id: &DataId, now: UnixMillis) -> bool {
        self.data
            .get(id)
            .is_none_or(|d| d.expires_at.is_reached(now))
    }
}
