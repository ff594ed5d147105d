//! Numbers and ranges as the config and the admin API take them: a spec parses or is refused,
//! its length is what it expands to, and every number it yields parses back to itself.
#![no_main]

use access_broker::domain::{AccessNumber, NumberSpec, PhoneNumber};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = PhoneNumber::parse(text);
    let _ = AccessNumber::parse(text);
    let Ok(spec) = NumberSpec::parse(text) else {
        return;
    };
    if spec.len() <= 10_000 {
        let numbers: Vec<AccessNumber> = spec.numbers().collect();
        assert_eq!(numbers.len() as u64, spec.len());
        for n in numbers {
            assert_eq!(AccessNumber::parse(n.as_str()).ok().as_ref(), Some(&n));
        }
    }
});
