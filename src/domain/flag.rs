//! GMS booleans, as requests and config files spell them.

use super::ParseError;

/// `true`/`false` in any case, or `1`/`0`. Why in the domain: a service's config options and a
/// request's parameters must read a boolean the same way, and neither layer may depend on the
/// other for it.
pub fn parse_bool(s: &str) -> Result<bool, ParseError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ParseError::new(format!(
            "{s:?} is not a boolean (true, false, 1 or 0)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for (s, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("False", false),
            ("0", false),
        ] {
            assert_eq!(parse_bool(s), Ok(want));
        }
        for bad in ["yes", "2", "t"] {
            assert!(parse_bool(bad).is_err());
        }
    }
}
