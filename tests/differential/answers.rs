//! How answers are written down for comparison: in reference numbers (see `stores.rs`), at
//! the precision each answer type carries, and a tally of what a run saw.

use access_broker::rules::call::Reason;
use access_broker::store::{
    GroupDetail, MatchOutcome, NumberState, Reservation, ReserveError, Session,
};

use crate::driver::Run;
use crate::stores::Side;

/// A reservation answer in reference numbers; expiry and Retry-After exact to the ms (every
/// clock is manual and every store keeps ms); pool counts only when asked for (a shared
/// store fills them only then).
pub fn fmt_reserve(side: &Side, a: &Result<Reservation, ReserveError>, health: bool) -> String {
    match a {
        Ok(r) => {
            let pool = if health {
                format!(" pool {} free of {}", r.pool_free, r.pool_size)
            } else {
                String::new()
            };
            format!(
                "Ok {} code={:?} expires_in={}ms{pool}",
                side.to_ref(&r.number),
                r.code.as_ref().map(|c| c.as_str()),
                r.expires_in.as_millis()
            )
        }
        Err(ReserveError::Exhausted { retry_after }) => {
            format!("Exhausted retry_after={}ms", retry_after.as_millis())
        }
        Err(e) => format!("Err {e:?}"),
    }
}

/// A call's outcome: the session (and whether late), or the reason and what it did. With
/// `history_differs` (a number random picks paired differently on each store), a reason that
/// comes from the number's past is shown as `past`: each store's number has its own.
pub fn fmt_outcome(o: MatchOutcome, history_differs: bool) -> String {
    let from_past = |r| {
        matches!(
            r,
            Reason::NotReserved
                | Reason::Expired
                | Reason::SessionEnded
                | Reason::Locked
                | Reason::UnknownNumber
        )
    };
    match o {
        MatchOutcome::NoMatch { reason, locked, .. } if history_differs && from_past(reason) => {
            format!("NoMatch (the number's past) locked={locked:?}")
        }
        MatchOutcome::Matched { session, late, .. } => {
            format!("{} late={late}", fmt_session(&Some(session)))
        }
        MatchOutcome::NoMatch {
            reason,
            locked,
            stray,
            quarantined,
            ..
        } => {
            format!("NoMatch {reason:?} locked={locked:?} stray={stray} quarantined={quarantined}")
        }
    }
}

pub fn fmt_session(s: &Option<Session>) -> String {
    match s {
        None => "None".into(),
        Some(s) => format!(
            "{} service={} data={} fields={:?} expires_in={}ms",
            s.id,
            s.service,
            s.data_id,
            s.fields,
            s.expires_in.as_millis()
        ),
    }
}

/// A group's detail in reference numbers; admin views count whole seconds (`u64`, rounded
/// down by every backend), so `expires_in` compares at that precision. Numbers come in
/// position order, except in a random group, where aliases reorder them: sorted there.
pub fn fmt_detail(side: &Side, detail: Option<GroupDetail>, random: bool) -> String {
    let Some(d) = detail else {
        return "None".into();
    };
    let mut numbers: Vec<String> = d
        .numbers
        .iter()
        .map(|n| {
            let state = match &n.state {
                NumberState::Free => "free".to_owned(),
                NumberState::Reserved {
                    session,
                    expires_in,
                } => format!("reserved by {session} for {expires_in}s"),
                NumberState::Retiring {
                    session,
                    expires_in,
                } => format!("retiring, held by {session} for {expires_in}s"),
                NumberState::Cooling { seconds_left } => format!("cooling {seconds_left}s"),
                NumberState::Quarantined => "quarantined".to_owned(),
            };
            // In a random group each store's numbers have their own past (random picks pair
            // them differently), so stray counts are compared only in the other groups.
            match random {
                true => format!("{} {state}", side.to_ref(&n.number)),
                false => format!(
                    "{} {state} strays={}",
                    side.to_ref(&n.number),
                    n.stray_calls
                ),
            }
        })
        .collect();
    if random {
        numbers.sort();
    }
    format!("{:?} {numbers:?}", d.stats)
}

impl Run {
    /// What the answers of a run were, roughly: shows a run reaches every kind of answer.
    pub fn tally(&self) -> String {
        let kinds = [
            ("reserve -> Ok", "reserve", "-> Ok"),
            ("Exhausted", "", "Exhausted"),
            ("QuotaExceeded", "", "QuotaExceeded"),
            ("SessionNotFound", "", "SessionNotFound"),
            ("UnknownGroup", "", "UnknownGroup"),
            ("matched", "match", "-> 7-"),
            ("Retiring", "remove_number", "Retiring"),
            ("Taken", "add_numbers", "Taken"),
            ("released", "release", "Ok(true)"),
        ];
        let counts: Vec<String> = kinds
            .iter()
            .map(|(label, op, answer)| {
                let n = self
                    .history
                    .iter()
                    .filter(|l| l.contains(op) && l.contains(answer))
                    .count();
                format!("{label} {n}")
            })
            .collect();
        counts.join(", ")
    }
}
