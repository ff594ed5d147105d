//! What a call (match-interaction) on a number of a group does: match its live reservation,
//! find an ended one late, count a wrong code or cancel on too many, or count a stray call;
//! and the reason a refused call is given. Stores gather the number's rows, call [`decide`],
//! and write what the verdict says.

use crate::domain::{AccessCode, NumberPolicy, PhoneNumber, SessionId, UnixMillis};

use super::lifecycle::{EndReason, Ended, MEMORY};
use super::matching::{Refusal, check_match};

/// Why a call found no session: the contract's `reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The number is in no group.
    UnknownNumber,
    /// Free, cooling or quarantined, with nothing more telling to say.
    NotReserved,
    Expired,
    CodeRequired,
    WrongCode,
    WrongPhone,
    /// Cancelled by wrong codes.
    Locked,
    SessionEnded,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownNumber => "unknown_number",
            Self::NotReserved => "not_reserved",
            Self::Expired => "expired",
            Self::CodeRequired => "code_required",
            Self::WrongCode => "wrong_code",
            Self::WrongPhone => "wrong_phone",
            Self::Locked => "locked",
            Self::SessionEnded => "session_ended",
        }
    }
}

impl From<Refusal> for Reason {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::CodeRequired => Self::CodeRequired,
            Refusal::WrongCode => Self::WrongCode,
            Refusal::WrongPhone => Self::WrongPhone,
        }
    }
}

/// What the caller offered.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub code: Option<&'a AccessCode>,
    pub phone: Option<&'a PhoneNumber>,
    /// The service's side: false when `match_without_code` is set (the lenient GMS mode).
    pub code_required: bool,
}

/// The number's live reservation, as a call sees it.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    pub session: &'a SessionId,
    pub code: Option<&'a AccessCode>,
    pub phone: Option<&'a PhoneNumber>,
    /// Wrong codes it survived so far.
    pub wrong_codes: u32,
}

/// The number's last ended reservation, whether its session still lives, and the number's
/// recent stray calls (their times, oldest first: those since the end are guesses at it).
#[derive(Debug, Clone, Copy)]
pub struct Last<'a> {
    pub ended: &'a Ended,
    pub session_alive: bool,
    pub strays: &'a [UnixMillis],
}

/// What a store does with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The live reservation accepts: answer its session, end it as matched.
    Match(SessionId),
    /// An ended reservation accepts within the grace: answer its session, change nothing.
    Late(SessionId),
    /// An ended reservation accepts, but the call's code was wrong for the live one: the
    /// wrong code still counts there (a guesser cannot hide behind an older reservation
    /// without a code): write `attempts`, or end the live one as locked when `lockout`.
    LateAfterWrongCode {
        session: SessionId,
        attempts: u32,
        lockout: bool,
    },
    /// A wrong code on the live reservation: write its new count, answer `wrong_code`.
    WrongCode { attempts: u32 },
    /// One wrong code too many: end the live reservation as locked, answer `locked`.
    Lockout,
    /// The live reservation refuses the call for another reason (no code, other phone).
    Refused(Reason),
    /// No live or late reservation took the call: a stray call; count it
    /// ([`super::lifecycle::stray_call`]) and answer `reason`.
    Stray(Reason),
}

/// Decides a call on a number of a group.
///
/// - A live reservation that accepts wins. Its code check follows the service's leniency,
///   unless the group has `require_code`.
/// - Else an ended one within `late_match_grace` that ended by expiry or match and would have
///   accepted (its code if it had one, lenient or not; its phone if both carry one) answers
///   its session, as long as the session lives.
/// - A wrong code on the live reservation counts, even when an ended one then answers (an
///   ended reservation without a code accepts every code: a guesser must not hide behind
///   it), unless the call's code is the ended reservation's own: that is its late caller, whose
///   IVR may retry, and must not wear down or cancel the number's next holder. The attempt
///   after `max_code_attempts` wrong ones (0: no limit) cancels it.
/// - Guesses at an ended reservation's code are bounded as a live one's are: once the
///   number has taken `max_code_attempts` stray calls since a coded reservation ended, its
///   grace is over (every call on it is stray and answers `locked`, the right code too).
///   Without this a caller had the whole grace to try codes, each wrong one a stray call
///   that nothing limited (an outside audit: a 4-digit code found in under 3 s, 30 s grace).
/// - With no live reservation, the call is stray; the reason is how the number's last
///   reservation ended (within 24 h: `expired`, `locked`, `session_ended`), else
///   `not_reserved`, as the contract lists them. Within the grace an ended reservation that
///   would have taken the call but whose session has ended (or that ended because its
///   session did) answers `session_ended`, and the call is not stray (it is that
///   reservation's caller, late: it counts towards no quarantine); why it
///   refused a call (a wrong code or phone) is not told: the contract gives those reasons
///   to live reservations, and a guesser learns nothing about an ended one's code.
pub fn decide(
    call: Call<'_>,
    live: Option<Live<'_>>,
    last: Option<Last<'_>>,
    policy: &NumberPolicy,
    now: UnixMillis,
) -> Verdict {
    let live_refusal = match live {
        Some(l) => {
            let required = call.code_required || policy.require_code;
            match check_match(l.code, l.phone, call.code, call.phone, required) {
                Ok(()) => return Verdict::Match(l.session.clone()),
                Err(r) => Some((r, l.wrong_codes)),
            }
        }
        None => None,
    };
    let late = last.map(|l| late_answer(call, l, policy, now));
    let own_late_code = matches!(
        (last.and_then(|l| l.ended.code.as_ref()), call.code),
        (Some(ended), Some(offered)) if ended == offered
    );
    // A wrong code on the live reservation counts, whatever else answers the call, unless it
    // is the code of the ended reservation that answers it.
    let wrong_code = match live_refusal {
        Some((Refusal::WrongCode, _)) if own_late_code && matches!(late, Some(Ok(_))) => None,
        Some((Refusal::WrongCode, wrong)) => {
            let max = policy.max_code_attempts;
            Some((max > 0 && wrong >= max, wrong.saturating_add(1)))
        }
        _ => None,
    };
    if let Some(Ok(session)) = late {
        return match wrong_code {
            Some((lockout, attempts)) => Verdict::LateAfterWrongCode {
                session,
                attempts,
                lockout,
            },
            None => Verdict::Late(session),
        };
    }
    match live_refusal {
        Some((Refusal::WrongCode, _)) => match wrong_code {
            Some((true, _)) => Verdict::Lockout,
            Some((false, attempts)) => Verdict::WrongCode { attempts },
            None => Verdict::Refused(Reason::WrongCode),
        },
        Some((r, _)) => Verdict::Refused(r.into()),
        // Its own caller, late, after its session ended (an IVR retrying a match that ended
        // the session with `_delete_service`): not a stray call. Counted as one, such retries
        // quarantined numbers in daily use (an auditor's soak: every stray call was one).
        None if matches!(late, Some(Err(Some(Reason::SessionEnded)))) => {
            Verdict::Refused(Reason::SessionEnded)
        }
        None => Verdict::Stray(match (late, last) {
            (Some(Err(Some(reason))), _) => reason,
            (_, Some(l)) => remembered(l.ended, now),
            _ => Reason::NotReserved,
        }),
    }
}

/// An ended reservation's answer to a late call: its session, or `session_ended` when it
/// would have taken the call but its session is gone (`None`: out of the grace, ended in a
/// way that closes it, or the call is not its caller's).
fn late_answer(
    call: Call<'_>,
    last: Last<'_>,
    policy: &NumberPolicy,
    now: UnixMillis,
) -> Result<SessionId, Option<Reason>> {
    let e = last.ended;
    let within = now < e.at.plus(policy.late_match_grace());
    // Ended with its session (the app ended it before the call came): its caller finds no
    // session, but is its caller, not a stray call.
    let session_ended = e.reason == EndReason::SessionEnded;
    if !within || !(e.reason.allows_late_match() || session_ended) {
        return Err(None);
    }
    let guesses = last.strays.iter().filter(|t| **t >= e.at).count();
    let max = policy.max_code_attempts as usize;
    if e.code.is_some() && max > 0 && guesses >= max {
        return Err(Some(Reason::Locked));
    }
    check_match(
        e.code.as_ref(),
        e.phone.as_ref(),
        call.code,
        call.phone,
        true,
    )
    .map_err(|_| None)?;
    if session_ended || !last.session_alive {
        return Err(Some(Reason::SessionEnded));
    }
    Ok(e.session.clone())
}

/// The reason a number gives for its last reservation, for a day after it ended.
fn remembered(e: &Ended, now: UnixMillis) -> Reason {
    if now >= e.at.plus(MEMORY) {
        return Reason::NotReserved;
    }
    match e.reason {
        EndReason::Expired => Reason::Expired,
        EndReason::Locked => Reason::Locked,
        EndReason::SessionEnded => Reason::SessionEnded,
        EndReason::Matched | EndReason::Released => Reason::NotReserved,
    }
}

#[cfg(test)]
mod tests;
