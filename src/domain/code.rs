//! Access codes: digits the caller keys in, drawn from a cryptographically secure generator.

use std::fmt;

use rand::Rng;

use super::ParseError;

/// Random digits every code keeps after the node's prefix.
pub const MIN_RANDOM_DIGITS: usize = 4;

/// Length of a generated code: 4 to 12 digits, default 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CodeLength(u8);

impl CodeLength {
    pub const MIN: u8 = 4;
    pub const MAX: u8 = 12;
    pub const DEFAULT: CodeLength = CodeLength(6);

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        // A 20-digit length is an integer out of range, not "not an integer".
        let n = super::timeouts::parse_int(s)?;
        Self::new(n)
            .map_err(|_| ParseError::new(format!("{s:?} is outside {}..{}", Self::MIN, Self::MAX)))
    }

    pub fn new(n: i64) -> Result<Self, ParseError> {
        match u8::try_from(n) {
            Ok(n) if (Self::MIN..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(ParseError::new(format!(
                "{n} is outside {}..{}",
                Self::MIN,
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// Digits put in front of every code a node generates, so that nodes never collide.
/// Each part is a fixed digit (`9`) or a range of digits drawn at random (`7-9`, GMS style).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodePrefix {
    parts: Vec<(u8, u8)>,
    text: String,
}

impl CodePrefix {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bytes = s.as_bytes();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let lo = digit(bytes[i]).ok_or_else(|| bad_prefix(s))?;
            if bytes.get(i + 1) == Some(&b'-') {
                let hi = bytes
                    .get(i + 2)
                    .and_then(|b| digit(*b))
                    .ok_or_else(|| bad_prefix(s))?;
                if lo > hi {
                    return Err(bad_prefix(s));
                }
                parts.push((lo, hi));
                i += 3;
            } else {
                parts.push((lo, lo));
                i += 1;
            }
        }
        Ok(Self {
            parts,
            text: s.to_owned(),
        })
    }

    /// How many digits of a code the prefix takes.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether a code of `length` digits still has at least [`MIN_RANDOM_DIGITS`] random
    /// digits after the prefix (fewer would make codes guessable in a few tries).
    pub fn fits(&self, length: CodeLength) -> bool {
        self.len() + MIN_RANDOM_DIGITS <= length.get()
    }
}

impl fmt::Display for CodePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn digit(b: u8) -> Option<u8> {
    b.is_ascii_digit().then(|| b - b'0')
}

fn bad_prefix(s: &str) -> ParseError {
    ParseError::new(format!(
        "{s:?} is not a code prefix (digits, or a digit range such as 7-9)"
    ))
}

/// An access code: ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessCode(String);

impl AccessCode {
    /// Longest code accepted from a request (generated ones are at most 12).
    const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(format!(
                "{s:?} is not an access code (digits only)"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// A code as a caller keyed it into a match (`_access_code`), compared as it is: one that
    /// is no access code (`608928#`, forty digits) equals no reservation's code, so it is a
    /// wrong code like any other (404 `NoMatch`, an attempt counted), as the contract lists
    /// wrong codes, not a bad request. Never stored: only `parse`d codes are lent.
    pub fn offered(s: &str) -> Self {
        Self(s.trim().to_owned())
    }

    /// A fresh code of `length` digits starting with `prefix`, from the thread's CSPRNG
    /// (ChaCha, seeded from the OS). The caller checks `prefix.fits(length)`.
    pub fn generate(length: CodeLength, prefix: &CodePrefix) -> Self {
        let mut rng = rand::rng();
        let mut code = String::with_capacity(length.get());
        for &(lo, hi) in &prefix.parts {
            code.push(char::from(b'0' + rng.random_range(lo..=hi)));
        }
        while code.len() < length.get() {
            code.push(char::from(b'0' + rng.random_range(0..=9u8)));
        }
        Self(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a value read back from a store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for AccessCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(CodeLength::parse("4").map(CodeLength::get), Ok(4));
        assert_eq!(CodeLength::parse("12").map(CodeLength::get), Ok(12));
        let huge = CodeLength::parse("99999999999999999999").expect_err("out of range");
        assert_eq!(huge.0, r#""99999999999999999999" is outside 4..12"#);
        for bad in ["3", "13", "-1", "six", "", "6.0"] {
            assert!(CodeLength::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(CodePrefix::parse("").map(|p| p.len()), Ok(0));
        assert_eq!(CodePrefix::parse("9").map(|p| p.len()), Ok(1));
        assert_eq!(CodePrefix::parse("7-9").map(|p| p.len()), Ok(1));
        assert_eq!(CodePrefix::parse("127-9").map(|p| p.len()), Ok(3));
        for bad in ["a", "9-", "9-1", "-5", "1 2"] {
            assert!(CodePrefix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_codes_have_the_prefix_and_length() {
        let prefix = CodePrefix::parse("47-9").expect("valid");
        for _ in 0..200 {
            let code = AccessCode::generate(CodeLength::DEFAULT, &prefix);
            let s = code.as_str();
            assert_eq!(s.len(), 6);
            assert!(s.starts_with('4'));
            assert!(matches!(s.as_bytes()[1], b'7'..=b'9'), "{s}");
            assert!(s.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn codes_from_requests() {
        assert!(AccessCode::parse("0123").is_ok());
        assert!(AccessCode::parse("12a4").is_err());
        assert!(AccessCode::parse("").is_err());
    }
}
