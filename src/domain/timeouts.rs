//! Bounded durations: booking timeouts, session TTLs and storage TTLs, with the GMS fallbacks.

use std::time::Duration;

use super::ParseError;

/// An integer in decimal; one too large for 64 bits is still an integer (out of any range),
/// so it saturates rather than reading as "not an integer".
pub(super) fn parse_int(s: &str) -> Result<i64, ParseError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(if negative { i64::MIN } else { i64::MAX });
    }
    Err(ParseError::new(format!("{s:?} is not an integer")))
}

/// How long a reservation holds: 5..=1800 s. GMS rule: an integer outside the range means 30 s;
/// something that is not an integer is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingTimeout(u32);

impl BookingTimeout {
    pub const DEFAULT: BookingTimeout = BookingTimeout(30);
    pub const MIN: i64 = 5;
    pub const MAX: i64 = 1800;

    /// Out-of-range integers fall back to 30 s, as the GMS help page says.
    pub fn from_secs_lenient(n: i64) -> Self {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Self(n as u32)
        } else {
            Self::DEFAULT
        }
    }

    /// For config files: out of range is an error there, not a silent 30.
    pub fn from_secs_strict(n: i64) -> Result<Self, ParseError> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err(ParseError::new(format!(
                "{n} is outside {}..{}",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    /// For request parameters: not an integer is an error, out of range means 30 s.
    pub fn parse_lenient(s: &str) -> Result<Self, ParseError> {
        parse_int(s).map(Self::from_secs_lenient)
    }

    pub fn secs(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

/// How long a service session lives: 1..=86400 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTtl(u32);

impl SessionTtl {
    pub const MAX: i64 = 86_400;
    /// Default for `session` services without `_ttl`.
    pub const DEFAULT: SessionTtl = SessionTtl(300);
    /// Default for request-interaction without `_ttl` (GMS: 30 s).
    pub const INTERACTION_DEFAULT: SessionTtl = SessionTtl(30);

    pub fn new(n: i64) -> Result<Self, ParseError> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err(ParseError::new(format!("{n} is outside 1..{}", Self::MAX)))
        }
    }

    /// A request's `_ttl`; out of range names the value as sent (one past `i64` read as its
    /// bound, which the message must not quote as if sent).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::new(parse_int(s)?)
            .map_err(|_| ParseError::new(format!("{:?} is outside 1..{}", s.trim(), Self::MAX)))
    }

    pub fn secs(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

/// How long stored data lives: 1..=2592000 s (30 days); anything else means 30 s (GMS rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageTtl(u32);

impl StorageTtl {
    pub const MAX: i64 = 2_592_000;
    pub const DEFAULT: StorageTtl = StorageTtl(30);

    pub fn parse_lenient(s: &str) -> Self {
        match s.trim().parse::<i64>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Self(n as u32),
            _ => Self::DEFAULT,
        }
    }

    pub fn secs(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_timeouts_follow_the_gms_rule() {
        let cases = [
            ("5", Ok(5)),
            ("1800", Ok(1800)),
            ("4", Ok(30)),
            ("1801", Ok(30)),
            ("-3", Ok(30)),
            (" 60 ", Ok(60)),
            ("99999999999999999999", Ok(30)),
            ("-99999999999999999999", Ok(30)),
        ];
        for (input, want) in cases {
            assert_eq!(
                BookingTimeout::parse_lenient(input).map(BookingTimeout::secs),
                want,
                "{input:?}"
            );
        }
        for bad in ["", "ten", "30s", "2.5", "-", "+", "1e3"] {
            assert!(BookingTimeout::parse_lenient(bad).is_err(), "{bad:?}");
        }
        assert!(BookingTimeout::from_secs_strict(4).is_err());
    }

    #[test]
    fn session_ttls() {
        assert_eq!(SessionTtl::parse("1").map(SessionTtl::secs), Ok(1));
        assert_eq!(SessionTtl::parse("86400").map(SessionTtl::secs), Ok(86400));
        for bad in ["0", "86401", "x", ""] {
            assert!(SessionTtl::parse(bad).is_err(), "{bad:?}");
        }
        let huge = "99999999999999999999999";
        let err = SessionTtl::parse(huge).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("\"99999999999999999999999\" is outside 1..86400"),
            "the value as sent, not i64::MAX"
        );
    }

    #[test]
    fn storage_ttls_fall_back_to_30() {
        assert_eq!(StorageTtl::parse_lenient("3600").secs(), 3600);
        for odd in ["0", "-1", "2592001", "abc", ""] {
            assert_eq!(StorageTtl::parse_lenient(odd).secs(), 30, "{odd:?}");
        }
    }
}
