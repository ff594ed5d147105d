//! Request bodies and query strings: every content type the API takes (form, multipart, JSON)
//! in every charset label, plus raw content types. The parser must answer a value or a 400,
//! never panic, and never return more fields than the input has bytes.
#![no_main]

use access_broker::http::params::{parse_body_now, parse_query_now};
use libfuzzer_sys::fuzz_target;

const TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=ISO-8859-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=\"shift_jis\"",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data; boundary=XyZ; charset=iso-8859-1",
    "application/json",
    "application/json; charset=windows-1252",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body) = match TYPES.get(usize::from(selector) % (TYPES.len() + 1)) {
        Some(t) => (Some((*t).to_owned()), rest),
        // The content type itself from the input: up to the first newline.
        None => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (Some(String::from_utf8_lossy(&rest[..i]).into_owned()), &rest[i + 1..]),
            None => (None, rest),
        },
    };
    if let Ok(fields) = parse_body_now(content_type.as_deref(), body) {
        assert!(fields.len() <= body.len() + 1);
    }
    let _ = parse_query_now(rest);
});
