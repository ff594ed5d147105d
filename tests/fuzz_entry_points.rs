//! The fuzz targets' entry points (`fuzz/`) on stable, with proptest: request bodies in every
//! content type and charset, query strings, the config loader and number ranges never panic
//! and answer a value or an error. `cargo fuzz` runs the same entry points for as long as
//! asked, guided by coverage; this keeps a short run of them in every `cargo test`.

use access_broker::config::Config;
use access_broker::domain::{AccessNumber, NumberSpec};
use access_broker::http::params::{parse_body_now, parse_query_now};
use proptest::prelude::*;

const TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=ISO-8859-1",
    "multipart/form-data; boundary=XyZ",
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "multipart/form-data",
    ";;;=\"",
];

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[a-z_%=&+0-9]{0,200}".prop_map(String::into_bytes),
        r#"\{("[a-z]{1,3}":("[^"]{0,5}"|[0-9]{1,3}|true|null|\[\]),?){0,5}\}"#
            .prop_map(String::into_bytes),
        "(--XyZ\r\nContent-Disposition: form-data; name=\"[a-z]{1,4}\"\r\n\r\n[a-z]{0,8}\r\n){0,3}--XyZ--\r\n"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn request_bodies_never_panic(kind in 0..=TYPES.len(), body in body()) {
        let content_type = TYPES.get(kind).copied();
        if let Ok(fields) = parse_body_now(content_type, &body) {
            prop_assert!(fields.len() <= body.len() + 1);
        }
        let _ = parse_query_now(&body);
    }

    #[test]
    fn the_config_loader_never_panics(text in "(\\[[a-z_.]{1,20}\\]\n|[a-z_]{1,12} = (\"[^\"\n]{0,12}\"|-?[0-9]{1,6}|\\[\"[0-9-]{0,12}\"\\]|true)\n){0,8}") {
        let _ = Config::from_toml(&text, "prop.toml");
    }

    #[test]
    fn number_ranges_expand_to_their_length(text in "[0-9]{0,8}(-[0-9]{0,8})?|.{0,12}") {
        if let Ok(spec) = NumberSpec::parse(&text)
            && spec.len() <= 10_000
        {
            let numbers: Vec<AccessNumber> = spec.numbers().collect();
            prop_assert_eq!(numbers.len() as u64, spec.len());
            for n in numbers {
                prop_assert_eq!(AccessNumber::parse(n.as_str()).ok(), Some(n));
            }
        }
    }
}
