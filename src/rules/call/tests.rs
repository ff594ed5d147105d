//! Table-driven cases for `decide`: every verdict and every reason.

use super::*;

const NOW: UnixMillis = UnixMillis(500_000_000);

fn code(s: &str) -> AccessCode {
    AccessCode::from_stored(s.into())
}

fn sid(s: &str) -> SessionId {
    SessionId::parse(s).expect("session id")
}

fn policy(grace: u32, max: u32, require_code: bool) -> NumberPolicy {
    NumberPolicy {
        late_match_grace: grace,
        max_code_attempts: max,
        require_code,
        ..NumberPolicy::default()
    }
}

fn ended(reason: EndReason, ago_ms: i64, with_code: Option<&AccessCode>) -> Ended {
    Ended {
        session: sid("1-old"),
        code: with_code.cloned(),
        phone: None,
        at: UnixMillis(NOW.0 - ago_ms),
        reason,
    }
}

#[test]
fn live_reservations_match_refuse_and_count_wrong_codes() {
    let (c1, c2) = (code("1234"), code("9999"));
    let s = sid("1-live");
    let live = |wrong| Live {
        session: &s,
        code: Some(&c1),
        phone: None,
        wrong_codes: wrong,
    };
    let call = |c: Option<&'static AccessCode>, required| Call {
        code: c,
        phone: None,
        code_required: required,
    };
    let c1s: &'static AccessCode = Box::leak(Box::new(c1.clone()));
    let c2s: &'static AccessCode = Box::leak(Box::new(c2.clone()));
    let p = policy(0, 5, false);
    let cases = [
        (
            call(Some(c1s), true),
            live(0),
            &p,
            Verdict::Match(s.clone()),
        ),
        (call(None, false), live(0), &p, Verdict::Match(s.clone())),
        (
            call(None, true),
            live(0),
            &p,
            Verdict::Refused(Reason::CodeRequired),
        ),
        (
            call(Some(c2s), true),
            live(0),
            &p,
            Verdict::WrongCode { attempts: 1 },
        ),
        (
            call(Some(c2s), true),
            live(4),
            &p,
            Verdict::WrongCode { attempts: 5 },
        ),
        (call(Some(c2s), true), live(5), &p, Verdict::Lockout),
    ];
    for (c, l, p, want) in cases {
        assert_eq!(decide(c, Some(l), None, p, NOW), want, "{c:?} {l:?}");
    }
    let unlimited = policy(0, 0, false);
    assert_eq!(
        decide(
            call(Some(c2s), true),
            Some(live(1000)),
            None,
            &unlimited,
            NOW
        ),
        Verdict::WrongCode { attempts: 1001 }
    );
    let strict = policy(0, 5, true);
    assert_eq!(
        decide(call(None, false), Some(live(0)), None, &strict, NOW),
        Verdict::Refused(Reason::CodeRequired),
        "require_code beats match_without_code"
    );
}

#[test]
fn late_calls_find_an_ended_reservation_within_the_grace() {
    let c1 = code("1234");
    let p = policy(30, 5, false);
    let lenient = Call {
        code: None,
        phone: None,
        code_required: false,
    };
    let with_code = Call {
        code: Some(&c1),
        ..lenient
    };
    let c2 = code("9999");
    let wrong = Call {
        code: Some(&c2),
        ..lenient
    };
    let cases = [
        (
            ended(EndReason::Expired, 10_000, None),
            true,
            lenient,
            Verdict::Late(sid("1-old")),
        ),
        (
            ended(EndReason::Matched, 29_999, None),
            true,
            lenient,
            Verdict::Late(sid("1-old")),
        ),
        (
            ended(EndReason::Matched, 30_000, None),
            true,
            lenient,
            Verdict::Stray(Reason::NotReserved),
        ),
        (
            ended(EndReason::Expired, 40_000, None),
            true,
            lenient,
            Verdict::Stray(Reason::Expired),
        ),
        // Its own caller after its session ended: refused, not a stray call.
        (
            ended(EndReason::Expired, 10_000, None),
            false,
            lenient,
            Verdict::Refused(Reason::SessionEnded),
        ),
        (
            ended(EndReason::Expired, 10_000, Some(&c1)),
            true,
            lenient,
            Verdict::Stray(Reason::Expired),
        ),
        // A wrong code within the grace: how the number's reservation ended, never
        // `wrong_code` (the contract's reasons for a number without a live reservation).
        (
            ended(EndReason::Expired, 10_000, Some(&c1)),
            true,
            wrong,
            Verdict::Stray(Reason::Expired),
        ),
        (
            ended(EndReason::Matched, 10_000, Some(&c1)),
            true,
            wrong,
            Verdict::Stray(Reason::NotReserved),
        ),
        (
            ended(EndReason::Matched, 10_000, Some(&c1)),
            false,
            with_code,
            Verdict::Refused(Reason::SessionEnded),
        ),
        // Past the grace, the same call is stray (and says how the number's last
        // reservation ended).
        (
            ended(EndReason::Matched, 30_000, Some(&c1)),
            false,
            with_code,
            Verdict::Stray(Reason::NotReserved),
        ),
        (
            ended(EndReason::Expired, 10_000, Some(&c1)),
            true,
            with_code,
            Verdict::Late(sid("1-old")),
        ),
        (
            ended(EndReason::Locked, 10_000, None),
            true,
            lenient,
            Verdict::Stray(Reason::Locked),
        ),
        // Ended with its session: the call it would have taken is its caller's, not stray.
        (
            ended(EndReason::SessionEnded, 10_000, None),
            true,
            lenient,
            Verdict::Refused(Reason::SessionEnded),
        ),
        (
            ended(EndReason::Released, 10_000, None),
            true,
            lenient,
            Verdict::Stray(Reason::NotReserved),
        ),
        (
            ended(EndReason::Expired, 86_400_000, None),
            true,
            lenient,
            Verdict::Stray(Reason::NotReserved),
        ),
    ];
    for (e, alive, call, want) in cases {
        let last = Last {
            ended: &e,
            session_alive: alive,
            strays: &[],
        };
        assert_eq!(
            decide(call, None, Some(last), &p, NOW),
            want,
            "{e:?} {alive}"
        );
    }
}

#[test]
fn a_live_reservation_that_accepts_wins_over_a_late_one() {
    let (c1, c2) = (code("1234"), code("9999"));
    let s = sid("1-live");
    let live = Live {
        session: &s,
        code: Some(&c2),
        phone: None,
        wrong_codes: 0,
    };
    let e = ended(EndReason::Expired, 1_000, Some(&c1));
    let last = Last {
        ended: &e,
        session_alive: true,
        strays: &[],
    };
    let p = policy(30, 5, false);
    let call = |c| Call {
        code: Some(c),
        phone: None,
        code_required: true,
    };
    assert_eq!(
        decide(call(&c2), Some(live), Some(last), &p, NOW),
        Verdict::Match(s.clone())
    );
    let worn = Live {
        wrong_codes: 5,
        ..live
    };
    assert_eq!(
        decide(call(&c1), Some(worn), Some(last), &p, NOW),
        Verdict::Late(sid("1-old")),
        "the ended reservation's own code: its late caller, nothing counted on the live one"
    );
    // An ended reservation without a code accepts every code: a code wrong for the live one
    // still counts there, and the one too many still cancels it.
    let codeless = ended(EndReason::Expired, 1_000, None);
    let codeless = Last {
        ended: &codeless,
        session_alive: true,
        strays: &[],
    };
    assert_eq!(
        decide(call(&c1), Some(live), Some(codeless), &p, NOW),
        Verdict::LateAfterWrongCode {
            session: sid("1-old"),
            attempts: 1,
            lockout: false
        },
    );
    assert_eq!(
        decide(call(&c1), Some(worn), Some(codeless), &p, NOW),
        Verdict::LateAfterWrongCode {
            session: sid("1-old"),
            attempts: 6,
            lockout: true
        },
    );
    let c3 = code("5555");
    assert_eq!(
        decide(call(&c3), Some(live), Some(last), &p, NOW),
        Verdict::WrongCode { attempts: 1 }
    );
}

#[test]
fn a_number_with_no_reservation_at_all_is_not_reserved() {
    let call = Call {
        code: None,
        phone: None,
        code_required: true,
    };
    assert_eq!(
        decide(call, None, None, &NumberPolicy::default(), NOW),
        Verdict::Stray(Reason::NotReserved)
    );
}

/// Guesses at an ended reservation's code: each a stray call, and `max_code_attempts` of them
/// since it ended close its grace, for the right code too (`locked`); strays from before it
/// ended, or a reservation without a code, or no limit, leave it open.
#[test]
fn guesses_at_an_ended_reservation_close_its_grace() {
    let c1 = code("1234");
    let e = ended(EndReason::Expired, 1_000, Some(&c1));
    let p = policy(30, 3, false);
    let at = |ms_after_end: i64| UnixMillis(e.at.0 + ms_after_end);
    let right = Call {
        code: Some(&c1),
        phone: None,
        code_required: true,
    };
    let last = |strays: &'static [UnixMillis], e: &'static Ended| Last {
        ended: e,
        session_alive: true,
        strays,
    };
    let e: &'static Ended = Box::leak(Box::new(e.clone()));
    let two: &'static [UnixMillis] = Box::leak(Box::new([at(10), at(20)]));
    let three: &'static [UnixMillis] = Box::leak(Box::new([at(10), at(20), at(30)]));
    let before: &'static [UnixMillis] = Box::leak(Box::new([at(-30), at(-20), at(-10), at(10)]));
    assert_eq!(
        decide(right, None, Some(last(two, e)), &p, NOW),
        Verdict::Late(sid("1-old")),
        "two guesses of three: still open"
    );
    assert_eq!(
        decide(right, None, Some(last(three, e)), &p, NOW),
        Verdict::Stray(Reason::Locked),
        "the third closed it"
    );
    assert_eq!(
        decide(right, None, Some(last(before, e)), &p, NOW),
        Verdict::Late(sid("1-old")),
        "stray calls before it ended are not guesses at it"
    );
    assert_eq!(
        decide(
            right,
            None,
            Some(last(three, e)),
            &policy(30, 0, false),
            NOW
        ),
        Verdict::Late(sid("1-old")),
        "max_code_attempts = 0: no limit"
    );
    let codeless: &'static Ended = Box::leak(Box::new(ended(EndReason::Expired, 1_000, None)));
    assert_eq!(
        decide(right, None, Some(last(three, codeless)), &p, NOW),
        Verdict::Late(sid("1-old")),
        "nothing to guess without a code"
    );
}

/// A reservation that ended with its session (the app ended it before the call): within the
/// grace its own caller hears `session_ended` and is not a stray call; anyone else, or its
/// caller after the grace, is one.
#[test]
fn the_caller_of_a_reservation_ended_with_its_session_is_not_stray() {
    let c1 = code("1234");
    let wrong = code("9999");
    let e = ended(EndReason::SessionEnded, 1_000, Some(&c1));
    let last = Last {
        ended: &e,
        session_alive: false,
        strays: &[],
    };
    let call = |c| Call {
        code: Some(c),
        phone: None,
        code_required: true,
    };
    let p = policy(30, 5, false);
    assert_eq!(
        decide(call(&c1), None, Some(last), &p, NOW),
        Verdict::Refused(Reason::SessionEnded)
    );
    assert_eq!(
        decide(call(&wrong), None, Some(last), &p, NOW),
        Verdict::Stray(Reason::SessionEnded)
    );
    assert_eq!(
        decide(call(&c1), None, Some(last), &policy(0, 5, false), NOW),
        Verdict::Stray(Reason::SessionEnded),
        "no grace: stray"
    );
}
