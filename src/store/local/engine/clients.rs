//! Which client holds which reservation, for `[limits] reservations_per_client`: the quota
//! counts the store's live reservations, so it holds on every node and across restarts (the
//! HTTP layer counted the reservations its own node handed out since it started).
//!
//! A hold carries its client (`Hold::client`, journalled with the reservation); the engine
//! keeps, per client, where its holds are: an entry goes in when a hold becomes the
//! client's and out when the hold ends (`end_hold`) or passes to another client. Each is read
//! through its slot, so a hold past its time, not ended yet (nothing reaped its group since),
//! does not count.

use super::{Engine, Group, GroupIdx, Pos, SlotState};
use crate::domain::UnixMillis;
use crate::store::{ClientId, Hold};

impl Engine {
    /// The live holds of `client`.
    pub fn client_holds(&self, client: &str, now: UnixMillis) -> Vec<Hold> {
        self.live_holds_of(client, now)
            .map(|(group, hold)| (hold.session.clone(), group.settings.name.clone()))
            .collect()
    }

    /// When each live hold of `client` expires: what its quota counts (`rules::quota`).
    pub(super) fn client_hold_ends<'a>(
        &'a self,
        client: &'a str,
        now: UnixMillis,
    ) -> impl Iterator<Item = UnixMillis> + Clone + 'a {
        self.live_holds_of(client, now)
            .map(|(_, hold)| hold.expires_at)
    }

    fn live_holds_of<'a>(
        &'a self,
        client: &'a str,
        now: UnixMillis,
    ) -> impl Iterator<Item = (&'a Group, &'a super::Hold)> + Clone {
        let places = self.by_client.get(client).map_or(&[][..], Vec::as_slice);
        places.iter().filter_map(move |&(g, pos)| {
            let group = self.groups.get(g as usize)?.as_ref()?;
            match &group.slots.get(pos as usize)?.state {
                SlotState::Held(hold)
                    if hold.client.as_deref() == Some(client)
                        && !hold.expires_at.is_reached(now) =>
                {
                    Some((group, &**hold))
                }
                _ => None,
            }
        })
    }

    /// The hold at `pos` of `g` is `client`'s now (it was `before`'s).
    pub(super) fn hold_passes(
        &mut self,
        g: GroupIdx,
        pos: Pos,
        before: Option<&ClientId>,
        client: Option<&ClientId>,
    ) {
        if before == client {
            return;
        }
        if let Some(before) = before {
            self.forget_client(g, pos, before);
        }
        if let Some(client) = client {
            self.by_client
                .entry(client.clone())
                .or_default()
                .push((g, pos));
        }
    }

    /// The hold at `pos` of `g` is no longer `client`'s (it ended).
    pub(super) fn forget_client(&mut self, g: GroupIdx, pos: Pos, client: &ClientId) {
        if let Some(places) = self.by_client.get_mut(client) {
            places.retain(|&p| p != (g, pos));
            if places.is_empty() {
                self.by_client.remove(client);
            }
        }
    }
}
