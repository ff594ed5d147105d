//! Access numbers (the DNIS a caller dials), ranges of them, and callers' phone numbers.

use std::fmt;

use super::ParseError;

/// Longest access number accepted, in characters (E.164 allows 15 digits; leave room).
const MAX_NUMBER_LEN: usize = 32;
/// Ranges are expanded into single numbers; this bounds the memory one config line can ask for.
pub const MAX_RANGE_SPAN: u64 = 10_000_000;

/// One access number: digits with an optional leading `+`, leading zeros kept.
///
/// Stored inline (no heap allocation up to 24 characters, which covers E.164): a node holds
/// a million of these, so each one's size is most of a group's memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct AccessNumber(compact_str::CompactString);

impl AccessNumber {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if digits.is_empty() || s.len() > MAX_NUMBER_LEN {
            return Err(ParseError::new(format!(
                "{s:?} is not an access number (1 to {MAX_NUMBER_LEN} digits)"
            )));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(format!(
                "{s:?} is not an access number (digits only, optional leading +)"
            )));
        }
        Ok(Self(compact_str::CompactString::new(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A number read back from a store that only ever holds parsed ones.
    pub fn from_stored(s: String) -> Self {
        Self(compact_str::CompactString::from(s))
    }
}

impl fmt::Display for AccessNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An inclusive range `start-end` of equal-width numbers, e.g. `6504660000-6504660099`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberRange {
    start: u64,
    end: u64,
    width: usize,
}

impl NumberRange {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| ParseError::new(format!("{s:?} is not a range start-end")))?;
        let bad = |why: &str| ParseError::new(format!("range {s:?}: {why}"));
        let digits =
            |x: &str| !x.is_empty() && x.len() <= 18 && x.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(bad("both ends must be 1 to 18 digits"));
        }
        if a.len() != b.len() {
            return Err(bad(&format!(
                "both ends must have the same number of digits; if it is one number, write it without separators: {a}{b}"
            )));
        }
        let (start, end) = (a.parse::<u64>(), b.parse::<u64>());
        let (Ok(start), Ok(end)) = (start, end) else {
            return Err(bad("both ends must be 1 to 18 digits"));
        };
        if start > end {
            return Err(bad("start is greater than end"));
        }
        if end - start >= MAX_RANGE_SPAN {
            return Err(bad(&format!("more than {MAX_RANGE_SPAN} numbers")));
        }
        Ok(Self {
            start,
            end,
            width: a.len(),
        })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = AccessNumber> + '_ {
        let width = self.width;
        (self.start..=self.end)
            .map(move |n| AccessNumber(compact_str::format_compact!("{n:0width$}")))
    }
}

impl fmt::Display for NumberRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.width;
        write!(f, "{:0w$}-{:0w$}", self.start, self.end)
    }
}

/// One entry of a group's `numbers` list: a single number or an inclusive range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberSpec {
    Single(AccessNumber),
    Range(NumberRange),
}

impl NumberSpec {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        // A range is two numbers joined by one `-`. More dashes mean a number written with
        // separators (`650-466-0000`): name it as such, not as a broken range.
        if s.matches('-').count() > 1 {
            return Err(ParseError::new(format!(
                "{s:?} is not a number (digits only, no separators: write {:?}) nor a range \
                 (two numbers of the same width joined by one -)",
                s.replace(['-', ' ', '.'], "")
            )));
        }
        if s.contains('-') {
            NumberRange::parse(s).map(Self::Range)
        } else {
            AccessNumber::parse(s).map(Self::Single)
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Self::Single(_) => 1,
            Self::Range(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every number of the spec, in order.
    pub fn numbers(&self) -> Box<dyn Iterator<Item = AccessNumber> + '_> {
        match self {
            Self::Single(n) => Box::new(std::iter::once(n.clone())),
            Self::Range(r) => Box::new(r.iter()),
        }
    }

    /// Expands a list of specs into numbers, in order; duplicates are reported by the caller.
    pub fn expand(specs: &[NumberSpec]) -> Vec<AccessNumber> {
        specs.iter().flat_map(|s| s.numbers()).collect()
    }
}

/// A caller's phone number, normalised to its digits and a leading `+`: what the caller or the
/// app sent, minus spaces, dots, dashes and brackets.
///
/// Two phone numbers are compared by the two rules below, never by `==` at the call site, so
/// each rule lives here once: [`PhoneNumber::same_caller`] for matching (the contract's rule),
/// [`PhoneNumber::same_digits`] for the admin search.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match Self::normalise(s) {
            Some(n) if n.digits().len() <= MAX_NUMBER_LEN => Ok(n),
            _ => Err(ParseError::new(format!(
                "{s:?} is not a phone number (1 to {MAX_NUMBER_LEN} digits)"
            ))),
        }
    }

    /// The digits, after a leading `+` if there is one; `None` without a digit.
    fn normalise(s: &str) -> Option<Self> {
        let trimmed = s.trim();
        let mut out = String::with_capacity(trimmed.len());
        if trimmed.starts_with('+') {
            out.push('+');
        }
        out.extend(trimmed.chars().filter(char::is_ascii_digit));
        (out.len() > usize::from(trimmed.starts_with('+'))).then_some(Self(out))
    }

    /// Rebuilds a value read back from a store (already normalised).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// A caller's number as a match gives it (`_phone_number`, often the caller id as the
    /// switch passed it), normalised as the contract says (digits and a leading `+`) but of
    /// any length. `None` when it has no digit (`anonymous`, `private`, `unknown`: a withheld
    /// caller id), which is a call that gives no number, accepted on its code as any such
    /// call; one too long to be a number matches no reservation's phone (`wrong_phone`).
    pub fn offered(s: &str) -> Option<Self> {
        Self::normalise(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits alone, without the leading `+`.
    pub fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }

    /// Matching's rule (`rules::matching::check_match`): equal once everything but the digits
    /// and a leading `+` is removed, as the contract's match-interaction section says. So the
    /// `+` counts: `+15557654321` and `15557654321` are different callers to a match.
    pub fn same_caller(&self, other: &PhoneNumber) -> bool {
        self.0 == other.0
    }

    /// The admin search's rule: equal digits, whatever the leading `+`.
    ///
    /// Why looser than [`PhoneNumber::same_caller`]: an operator types what the customer reads
    /// out (`15557654321`, `+1 (555) 765-4321`) while the app stored E.164; a search lists
    /// candidates for a person to look at and never grants a match, so finding both spellings
    /// costs nothing. Every digit must still agree: no national-prefix guessing (`0…` vs
    /// `+33…`), which would need a numbering plan per country.
    pub fn same_digits(&self, other: &PhoneNumber) -> bool {
        self.digits() == other.digits()
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_numbers() {
        for good in ["6504664136", "0001", "+33123456789", "7"] {
            assert_eq!(
                AccessNumber::parse(good).map(|n| n.to_string()),
                Ok(good.to_string())
            );
        }
        for bad in ["", "+", "650 466", "65a", "1-2", &"9".repeat(33)] {
            assert!(AccessNumber::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_keep_leading_zeros_and_are_inclusive() {
        let r = NumberRange::parse("0098-0101").expect("valid");
        let all: Vec<String> = r.iter().map(|n| n.to_string()).collect();
        assert_eq!(all, ["0098", "0099", "0100", "0101"]);
        assert_eq!(r.len(), 4);
        assert_eq!(r.to_string(), "0098-0101");
    }

    #[test]
    fn bad_ranges() {
        for bad in [
            "100-99",
            "1-22",
            "a-b",
            "1-",
            "-1",
            "12-1x",
            "1234567890123456789-1234567890123456789",
        ] {
            assert!(NumberRange::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            NumberRange::parse("00000000-99999999").is_err(),
            "too large"
        );
    }

    #[test]
    fn specs() {
        assert_eq!(NumberSpec::parse("5").map(|s| s.len()), Ok(1));
        assert_eq!(NumberSpec::parse("10-19").map(|s| s.len()), Ok(10));
    }

    #[test]
    fn phone_numbers_normalise() {
        let p = |s| PhoneNumber::parse(s).map(|p| p.to_string());
        assert_eq!(p("+1 (650) 466-4136"), Ok("+16504664136".into()));
        assert_eq!(p("650.466.4136"), Ok("6504664136".into()));
        assert!(p("call me").is_err());
        assert!(p("+").is_err());
    }

    #[test]
    fn matching_counts_the_plus_and_search_does_not() {
        let p = |s| PhoneNumber::parse(s).expect("phone");
        let held = p("+15557654321");
        for same in [
            "15557654321",
            "+1 (555) 765-4321",
            "1.555.765.4321",
            "+15557654321",
        ] {
            assert!(held.same_digits(&p(same)), "{same}");
            assert!(p(same).same_digits(&held), "{same} (symmetric)");
        }
        for other in [
            "5557654321",
            "+15557654320",
            "015557654321",
            "+115557654321",
        ] {
            assert!(!held.same_digits(&p(other)), "{other}");
            assert!(!held.same_caller(&p(other)), "{other}");
        }
        assert!(held.same_caller(&p("+1 (555) 765-4321")));
        assert!(
            !held.same_caller(&p("15557654321")),
            "the + counts in a match"
        );
    }
}
