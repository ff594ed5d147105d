//! The history of a chaos run and its checker (a Jepsen-style check of number ownership).
//!
//! Every client operation is logged with its invocation and completion time and its answer.
//! The checker proves, from the answers alone and the store's final state:
//! - no two acknowledged live reservations of one number overlap in time;
//! - every acknowledged release (a 200 match) is honoured: the reservation is gone at the end;
//! - no acknowledged reservation is lost: unmatched ones are all in the final state, with
//!   their session, and a match on one never answers 404;
//! - every 503 left no trace: no number held at the end by a call that was never
//!   acknowledged, and a match answered 503 did not release (its retry still matches).

use std::collections::HashMap;
use std::time::Instant;

/// One request-interaction the client saw through (possibly after retries with its key).
#[derive(Debug, Clone)]
pub struct Granted {
    pub number: String,
    pub code: String,
    pub session: String,
    /// Completion of the attempt that brought the answer: live from here…
    pub granted: Instant,
    /// …at least until the first match attempt was sent (None: never matched).
    pub release_sent: Option<Instant>,
    /// The match's final answer: 200 released it, 404 means it was gone.
    pub release_status: Option<u16>,
    /// A match attempt on it answered 503 before the final answer.
    pub release_retried: bool,
    /// A match attempt on it got no answer at all (connection lost, node killed): that
    /// attempt may have released it, so a 404 afterwards is no violation.
    pub release_unanswered: bool,
}

#[derive(Debug, Default)]
pub struct History {
    pub granted: Vec<Granted>,
    /// Answers by status (each attempt counts).
    pub answers: HashMap<u16, u64>,
    /// Calls whose outcome the client never learnt (every retry failed): their effects are
    /// allowed but not required.
    pub unknown_sessions: u64,
    pub transport_errors: u64,
}

impl History {
    pub fn answered(&mut self, status: u16) {
        *self.answers.entry(status).or_default() += 1;
    }

    pub fn ops(&self) -> u64 {
        self.answers.values().sum::<u64>() + self.transport_errors
    }
}

/// What the checker found; every count but the last two must be 0.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub overlaps: usize,
    pub releases_not_honoured: usize,
    pub lost: usize,
    pub traces: usize,
    /// A match answered 503 and its retry found nothing: the 503 released (a trace), or its
    /// commit landed with an unknown outcome (allowed on PostgreSQL when the connection broke
    /// during COMMIT). Reported apart.
    pub released_by_a_503: usize,
    /// A match got no answer, and its retry found nothing: the lost attempt released it.
    pub unanswered_releases: usize,
    pub checked_reservations: usize,
}

impl Verdict {
    pub fn violations(&self) -> usize {
        self.overlaps + self.releases_not_honoured + self.lost + self.traces
    }
}

/// Checks `h` against the final state: (number, session) of every live reservation.
pub fn check(h: &History, final_state: &[(String, String)], end: Instant) -> Verdict {
    let mut v = Verdict {
        checked_reservations: h.granted.len(),
        ..Verdict::default()
    };
    let mut by_number: HashMap<&str, Vec<&Granted>> = HashMap::new();
    for g in &h.granted {
        by_number.entry(&g.number).or_default().push(g);
    }
    for list in by_number.values() {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let (a_end, b_end) = (a.release_sent.unwrap_or(end), b.release_sent.unwrap_or(end));
                if a.granted < b_end && b.granted < a_end {
                    v.overlaps += 1;
                }
            }
        }
    }
    let live: HashMap<&str, &str> = final_state
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    for g in &h.granted {
        let held_now = live.get(g.number.as_str()) == Some(&g.session.as_str());
        match g.release_status {
            Some(200) if held_now => v.releases_not_honoured += 1,
            Some(404) if g.release_unanswered => v.unanswered_releases += 1,
            Some(404) if g.release_retried => v.released_by_a_503 += 1,
            Some(404) => v.lost += 1,
            None if !held_now => v.lost += 1,
            _ => {}
        }
    }
    let acknowledged: std::collections::HashSet<&str> =
        h.granted.iter().map(|g| g.session.as_str()).collect();
    let strays = final_state
        .iter()
        .filter(|(_, s)| !acknowledged.contains(s.as_str()))
        .count();
    // A call whose outcome stayed unknown may have left one reservation; more is a trace.
    v.traces = strays.saturating_sub(h.unknown_sessions as usize);
    v
}
