//! JSON request bodies as parameters: an object whose values are strings, numbers or
//! booleans, each read back exactly as sent (the contract: "every value reads back exactly as
//! sent"). Values are taken as their raw JSON text (`serde_json::value::RawValue`), so a
//! number keeps its spelling (`1.50`, `1e3`, a twenty-digit id): read as a `serde_json`
//! number it went through an `f64` and came back as `1.5`, `1000.0`, `9.87e19`.
//! `null` leaves a parameter unset; a list is taken only where a parameter is a list.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ApiError;

/// Parameters whose value is a list (the admin API's `numbers`: numbers and ranges), which
/// a JSON body may send as an array, as the config file writes it; a form sends them
/// separated by commas.
const LISTS: &[&str] = &["numbers"];

/// The body's parameters in the order sent.
pub fn decode(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    // A byte order mark may lead a JSON text; RFC 8259 lets a parser ignore it, and serde
    // refuses it, so it goes here (some Windows clients write one).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let Pairs(pairs) = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid("JSON body", "must be an object"),
        _ => ApiError::invalid("JSON body", e.to_string()),
    })?;
    let mut out = Vec::with_capacity(pairs.len());
    for (name, raw) in pairs {
        let value = match scalar(&raw) {
            Some(Scalar::Text(text)) => text,
            Some(Scalar::Null) => continue,
            Some(Scalar::Bad(why)) => {
                return Err(ApiError::invalid(
                    name,
                    format!("not a valid string: {why}"),
                ));
            }
            None if LISTS.contains(&name.as_str()) => match list(&raw) {
                Some(text) => text,
                None => return Err(ApiError::invalid(name, "must be strings or numbers")),
            },
            None => {
                return Err(ApiError::invalid(
                    name,
                    "must be a string, number or boolean",
                ));
            }
        };
        out.push((name, value));
    }
    Ok(out)
}

enum Scalar {
    Text(String),
    Null,
    /// A string JSON cannot carry as text (a lone surrogate escape, `"\ud800"`): why.
    Bad(String),
}

/// A string, number or boolean as the text a form would carry; `None` for a list or object.
fn scalar(raw: &RawValue) -> Option<Scalar> {
    let text = raw.get().trim();
    match text.as_bytes().first()? {
        b'"' => Some(match serde_json::from_str(text) {
            Ok(text) => Scalar::Text(text),
            Err(e) => Scalar::Bad(e.to_string()),
        }),
        b'n' => Some(Scalar::Null),
        b'[' | b'{' => None,
        // Numbers and booleans, as written.
        _ => Some(Scalar::Text(text.to_owned())),
    }
}

/// A list of strings and numbers as the comma-separated text a form would send.
fn list(raw: &RawValue) -> Option<String> {
    let items: Vec<Box<RawValue>> = serde_json::from_str(raw.get()).ok()?;
    let texts = items
        .iter()
        .map(|item| match scalar(item) {
            Some(Scalar::Text(text)) if !item.get().trim().starts_with(['t', 'f']) => Some(text),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()?;
    Some(texts.join(","))
}

/// An object's members in order, each value left as raw JSON.
struct Pairs(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    pairs.push(member);
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        let got = decode(b"\xEF\xBB\xBF{\"a\":\"b\"}").expect("decodes");
        assert_eq!(got, pairs(&[("a", "b")]));
        assert!(
            decode(b"{\"a\":\"b\"}\xEF\xBB\xBF").is_err(),
            "only at the start"
        );
    }

    #[test]
    fn values_read_back_as_sent() {
        let got = decode(
            br#"{"_id":"1-a","n":5,"b":true,"z":null,"f":1.50,"e":1e3,"big":98765432109876543210,"neg":-0,"s":"x\"\u00e9"}"#,
        )
        .expect("decodes");
        assert_eq!(
            got,
            pairs(&[
                ("_id", "1-a"),
                ("n", "5"),
                ("b", "true"),
                ("f", "1.50"),
                ("e", "1e3"),
                ("big", "98765432109876543210"),
                ("neg", "-0"),
                ("s", "x\"é"),
            ])
        );
    }

    #[test]
    fn lists_only_where_a_parameter_is_a_list() {
        let list = decode(br#"{"numbers":["100-102", 7]}"#).expect("a list");
        assert_eq!(list, pairs(&[("numbers", "100-102,7")]));
        for bad in [
            &br#"{"numbers":[["1"]]}"#[..],
            br#"{"numbers":[true]}"#,
            br#"{"x":[1]}"#,
            br#"{"x":{"y":1}}"#,
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        for bad in [&b"[1]"[..], b"{", b"3", b"\"x\"", b""] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let err = decode(b"[1]").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("JSON body: must be an object"));
        // A string with a lone surrogate is named as a bad string, not as another type.
        let err = decode(br#"{"a":"\ud800"}"#).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("a: not a valid string")),
            "{err:?}"
        );
    }
}
