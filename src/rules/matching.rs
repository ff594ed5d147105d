//! Match acceptance: whether a call's access code and phone number match a live reservation.

use crate::domain::{AccessCode, PhoneNumber};

/// Why a live reservation did not accept a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The reservation has a code, the call gave none, and codes are required.
    CodeRequired,
    WrongCode,
    /// The reservation was made for another caller's phone number.
    WrongPhone,
}

/// Checks a call against a live reservation's code and phone.
///
/// - A reservation with a code needs the same code; a call without one is accepted only when
///   codes are not required (the lenient GMS mode). A reservation without a code accepts any.
/// - A reservation with a phone number accepts a call from that number, or a call that gives
///   none (the IVR may not know it); a reservation without one accepts any caller. "That
///   number" is [`PhoneNumber::same_caller`]: the same digits and the same leading `+`.
pub fn check_match(
    held_code: Option<&AccessCode>,
    held_phone: Option<&PhoneNumber>,
    code: Option<&AccessCode>,
    phone: Option<&PhoneNumber>,
    code_required: bool,
) -> Result<(), Refusal> {
    match (held_code, code) {
        (Some(want), Some(got)) if want != got => return Err(Refusal::WrongCode),
        (Some(_), None) if code_required => return Err(Refusal::CodeRequired),
        _ => {}
    }
    match (held_phone, phone) {
        (Some(want), Some(got)) if !want.same_caller(got) => Err(Refusal::WrongPhone),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_phone_rules() {
        let c1 = AccessCode::from_stored("1234".into());
        let c2 = AccessCode::from_stored("4321".into());
        let p1 = PhoneNumber::parse("5551").expect("phone");
        let p2 = PhoneNumber::parse("5552").expect("phone");
        let p1_plus = PhoneNumber::parse("+5551").expect("phone");
        let cases = [
            (Some(&c1), None, Some(&c1), None, true, Ok(())),
            (
                Some(&c1),
                None,
                Some(&c2),
                None,
                true,
                Err(Refusal::WrongCode),
            ),
            (
                Some(&c1),
                None,
                None,
                None,
                true,
                Err(Refusal::CodeRequired),
            ),
            (Some(&c1), None, None, None, false, Ok(())),
            (None, None, Some(&c2), None, true, Ok(())),
            (None, Some(&p1), None, Some(&p1), true, Ok(())),
            (
                None,
                Some(&p1),
                None,
                Some(&p2),
                true,
                Err(Refusal::WrongPhone),
            ),
            (None, Some(&p1), None, None, true, Ok(())),
            (
                None,
                Some(&p1_plus),
                None,
                Some(&p1),
                true,
                Err(Refusal::WrongPhone),
            ),
            (None, None, None, Some(&p2), true, Ok(())),
        ];
        for (hc, hp, c, p, required, want) in cases {
            assert_eq!(
                check_match(hc, hp, c, p, required),
                want,
                "{hc:?} {hp:?} {c:?} {p:?}"
            );
        }
    }
}
