//! A resource group's number policy keys (`require_code`, `max_code_attempts`, `cool_down`,
//! `late_match_grace`, `quarantine_after_stray_calls`), parsed and range-checked, naming the
//! key on error. Shared by the config file and the admin API's group changes.

use crate::domain::{MAX_POLICY_SECS, PolicyChange, parse_bool};

/// Most wrong codes a group may let a reservation survive.
pub const MAX_CODE_ATTEMPTS: u32 = 1000;

/// The policy keys and how each is checked: (key, largest value; 0 for a boolean).
pub const KEYS: [(&str, u32); 5] = [
    ("require_code", 0),
    ("max_code_attempts", MAX_CODE_ATTEMPTS),
    ("cool_down", MAX_POLICY_SECS),
    ("late_match_grace", MAX_POLICY_SECS),
    ("quarantine_after_stray_calls", MAX_CODE_ATTEMPTS),
];

/// Reads the policy keys from `get` (a key's text value, `None` or empty when unset).
/// On error: the key and why.
pub fn parse_change<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<PolicyChange, (&'static str, String)> {
    let mut change = PolicyChange::default();
    for (key, max) in KEYS {
        let Some(text) = get(key).map(str::trim).filter(|t| !t.is_empty()) else {
            continue;
        };
        if max == 0 {
            change.require_code = Some(parse_bool(text).map_err(|e| (key, e.to_string()))?);
            continue;
        }
        let n: u32 = text
            .parse()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| (key, format!("{text:?} is not an integer in 0..={max}")))?;
        match key {
            "max_code_attempts" => change.max_code_attempts = Some(n),
            "cool_down" => change.cool_down = Some(n),
            "late_match_grace" => change.late_match_grace = Some(n),
            _ => change.quarantine_after_stray_calls = Some(n),
        }
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_name_the_bad_one() {
        let ok = parse_change(|k| match k {
            "require_code" => Some("true"),
            "cool_down" => Some("30"),
            "max_code_attempts" => Some(""),
            _ => None,
        })
        .expect("valid");
        assert_eq!(ok.require_code, Some(true));
        assert_eq!(ok.cool_down, Some(30));
        assert_eq!(ok.max_code_attempts, None);
        for (key, value) in [
            ("cool_down", "86401"),
            ("late_match_grace", "-1"),
            ("require_code", "maybe"),
            ("max_code_attempts", "x"),
        ] {
            let err = parse_change(|k| (k == key).then_some(value)).expect_err(value);
            assert_eq!(err.0, key);
        }
    }
}
