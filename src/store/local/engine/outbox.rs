//! The webhook outbox of a single-node store: events waiting for delivery, with their attempts
//! and the time of their next attempt.
//!
//! Pure bookkeeping, like the rest of the engine: it decides nothing about delivery (that is
//! `events::deliver`), it only remembers what is owed, and writes each change to the journal so
//! a restart delivers what was queued before it (at least once). Delivered and given-up events
//! leave at once, so the outbox holds only what is still owed.
//!
//! Retries come before first attempts: an event that failed is offered again as soon as its
//! backoff ends, ahead of a backlog of events never tried, so its first retry keeps the
//! contract's 5 s however far behind the receiver is (in one order by due time it waited for
//! the whole backlog: 4–78 s with a receiver hanging on 2 % of posts).

use std::collections::{BTreeSet, HashMap};

use crate::domain::UnixMillis;
use crate::events::Event;
use crate::store::PendingEvent;
use crate::store::local::journal::{Change, ChangeLog, record};

#[derive(Debug, Default)]
pub struct Outbox {
    entries: HashMap<String, Entry>,
    /// `(next_at, id)` of the entries tried before (`attempts > 0`): offered first.
    retries: BTreeSet<(UnixMillis, String)>,
    /// `(next_at, id)` of the entries never tried yet.
    fresh: BTreeSet<(UnixMillis, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    event: Event,
    attempts: u32,
    queued_at: UnixMillis,
    next_at: UnixMillis,
}

impl Outbox {
    /// Queues an event, due at once.
    pub fn push(&mut self, event: Event, now: UnixMillis, log: &mut ChangeLog) {
        record(log, || Change::EventQueued {
            event: event.clone(),
            queued_at: now,
        });
        self.restore(event, 0, now, now);
    }

    /// Puts back an event a durable backend kept (at load).
    pub fn restore(
        &mut self,
        event: Event,
        attempts: u32,
        queued_at: UnixMillis,
        next_at: UnixMillis,
    ) {
        let id = event.id.clone();
        if let Some(old) = self.entries.remove(&id) {
            self.unschedule(&old, &id);
        }
        self.schedule_mut(attempts).insert((next_at, id.clone()));
        self.entries.insert(
            id,
            Entry {
                event,
                attempts,
                queued_at,
                next_at,
            },
        );
    }

    /// Up to `limit` events whose next attempt is due at `now`: the retries first, then the
    /// events never tried, each the longest-waiting first.
    pub fn due(&self, now: UnixMillis, limit: usize) -> Vec<PendingEvent> {
        due_in(&self.retries, now)
            .chain(due_in(&self.fresh, now))
            .take(limit)
            .filter_map(|id| self.entries.get(id))
            .map(|e| PendingEvent {
                event: e.event.clone(),
                attempts: e.attempts,
                // `remaining_from` read backwards: the time from queueing until now.
                age: now.remaining_from(e.queued_at),
            })
            .collect()
    }

    /// Forgets a delivered event. `false` if it was not queued (delivered twice, say).
    pub fn delivered(&mut self, id: &str, log: &mut ChangeLog) -> bool {
        let Some(entry) = self.entries.remove(id) else {
            return false;
        };
        self.unschedule(&entry, id);
        record(log, || Change::EventDone(id.to_owned()));
        true
    }

    /// Forgets an event that will never be delivered (tried for 24 h): the outbox stays bounded.
    pub fn give_up(&mut self, id: &str, log: &mut ChangeLog) -> bool {
        self.delivered(id, log)
    }

    /// Counts a failed attempt and schedules the next one at `next_at`.
    pub fn retry_later(&mut self, id: &str, next_at: UnixMillis, log: &mut ChangeLog) -> bool {
        let Some(entry) = self.entries.remove(id) else {
            return false;
        };
        self.unschedule(&entry, id);
        let attempts = entry.attempts + 1;
        self.schedule_mut(attempts).insert((next_at, id.to_owned()));
        self.entries.insert(
            id.to_owned(),
            Entry {
                attempts,
                next_at,
                ..entry
            },
        );
        record(log, || Change::EventRetry {
            id: id.to_owned(),
            attempts,
            next_at,
        });
        true
    }

    /// The order an entry with `attempts` waits in.
    fn schedule_mut(&mut self, attempts: u32) -> &mut BTreeSet<(UnixMillis, String)> {
        if attempts > 0 {
            &mut self.retries
        } else {
            &mut self.fresh
        }
    }

    fn unschedule(&mut self, entry: &Entry, id: &str) {
        self.schedule_mut(entry.attempts)
            .remove(&(entry.next_at, id.to_owned()));
    }

    /// Events still owed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The ids of `schedule` due at `now`, the longest-waiting first.
fn due_in(
    schedule: &BTreeSet<(UnixMillis, String)>,
    now: UnixMillis,
) -> impl Iterator<Item = &String> {
    schedule
        .iter()
        .take_while(move |(at, _)| at.is_reached(now))
        .map(|(_, id)| id)
}

impl super::Engine {
    /// Records a lifecycle event of the running operation: queued for the webhook when the
    /// store keeps an outbox (`[events]`), and published on the live bus once the operation
    /// is durable (the store drains [`Engine::take_emitted`] after its commit). The stores
    /// call this wherever a reservation starts or ends, or a number is quarantined, when
    /// [`Engine::wants_events`] says anyone would get it.
    /// The event is due at its own `time` (an expiry noticed late is owed since it happened).
    pub(crate) fn emit(&mut self, event: Event, log: &mut ChangeLog) {
        if self.keep_outbox {
            let at = event.time;
            self.outbox.push(event.clone(), at, log);
        }
        self.emitted.push(event);
    }

    /// Whether an event made now would reach anyone (the call sites skip making it if not).
    pub(crate) fn wants_events(&self) -> bool {
        self.keep_outbox || !self.events_unheard
    }

    /// Whether a live stream listens now (the store asks its bus before each operation).
    pub fn set_streaming(&mut self, streaming: bool) {
        self.events_unheard = !streaming;
    }

    /// Whether events are queued for the webhook; set once, when the store opens.
    pub fn set_keep_outbox(&mut self, keep: bool) {
        self.keep_outbox = keep;
    }

    /// The events emitted since the last call, oldest first.
    pub fn take_emitted(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.emitted)
    }

    /// Drops what the running operation emitted (it was refused and undone).
    pub fn discard_emitted(&mut self) {
        self.emitted.clear();
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.outbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccessNumber, GroupName};
    use crate::events::EventKind;

    fn event() -> Event {
        Event::new(
            EventKind::Created,
            UnixMillis(0),
            GroupName::parse("DNIS").expect("group"),
            AccessNumber::parse("5550000").expect("number"),
            None,
        )
    }

    #[test]
    fn due_events_come_in_order_and_retries_wait() {
        let mut outbox = Outbox::default();
        let mut log: ChangeLog = Some(Vec::new());
        let (a, b) = (event(), event());
        outbox.push(a.clone(), UnixMillis(1_000), &mut log);
        outbox.push(b.clone(), UnixMillis(2_000), &mut log);
        assert!(outbox.due(UnixMillis(500), 10).is_empty());
        let due = outbox.due(UnixMillis(2_000), 10);
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].event.id, a.id);
        assert_eq!(due[0].age, std::time::Duration::from_secs(1));

        assert!(outbox.retry_later(&a.id, UnixMillis(7_000), &mut log));
        let due = outbox.due(UnixMillis(3_000), 10);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event.id, b.id);
        let later = outbox.due(UnixMillis(7_000), 10);
        assert_eq!(later.len(), 2);
        let retried = later.iter().find(|p| p.event.id == a.id).expect("a is due");
        assert_eq!(retried.attempts, 1);

        assert!(outbox.delivered(&a.id, &mut log));
        assert!(!outbox.delivered(&a.id, &mut log));
        assert!(outbox.give_up(&b.id, &mut log));
        assert!(outbox.is_empty());
        assert_eq!(log.map(|l| l.len()), Some(5));
    }

    /// A retry due goes before a backlog of first attempts due earlier, and a limit cuts the
    /// backlog, not the retry; an event restored with attempts counts as a retry.
    #[test]
    fn due_retries_go_before_the_backlog() {
        let mut outbox = Outbox::default();
        let mut log: ChangeLog = None;
        let backlog: Vec<Event> = (0..5).map(|_| event()).collect();
        for (i, e) in backlog.iter().enumerate() {
            outbox.push(e.clone(), UnixMillis(1_000 + i as i64), &mut log);
        }
        let failed = event();
        outbox.push(failed.clone(), UnixMillis(900), &mut log);
        assert!(outbox.retry_later(&failed.id, UnixMillis(5_000), &mut log));
        let restored = event();
        outbox.restore(restored.clone(), 3, UnixMillis(0), UnixMillis(6_000));

        let ids = |due: Vec<PendingEvent>| due.into_iter().map(|p| p.event.id).collect::<Vec<_>>();
        assert_eq!(
            ids(outbox.due(UnixMillis(4_000), 3)),
            [
                backlog[0].id.clone(),
                backlog[1].id.clone(),
                backlog[2].id.clone()
            ],
            "no retry due yet: the backlog in order"
        );
        assert_eq!(
            ids(outbox.due(UnixMillis(6_000), 3)),
            [
                failed.id.clone(),
                restored.id.clone(),
                backlog[0].id.clone()
            ]
        );
        assert!(outbox.delivered(&failed.id, &mut log));
        assert!(outbox.delivered(&restored.id, &mut log));
        assert_eq!(outbox.due(UnixMillis(6_000), 10).len(), 5);
    }
}
