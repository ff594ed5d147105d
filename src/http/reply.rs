//! Replies in the GMS shape: a JSON object whose values are strings, or, when the client's
//! `Accept` asks for it, the same fields as `<Response xmlns="…">` XML (the seed's shape).
//!
//! Handlers and `ApiError` build a [`Reply`]; it renders as JSON and, when the client asked
//! for XML, rides along in the response's extensions for the edge (`http::edge`) to swap in
//! XML, so no handler needs to know about formats.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mime::Mime;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::Value;
use std::borrow::Cow;

use crate::store::Fields;
use crate::telemetry::REQUEST;

/// `mime` names no `application/xml` constant; this one is checked against it in the tests.
const XML_UTF_8: &str = "application/xml; charset=utf-8";
/// The JSON answers' type, made once (a header value made from a `&str` is checked and
/// copied on every answer).
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// An answer's fields in the order they were added; a name added again replaces its value
/// in place (as a JSON object would).
///
/// Why a plain list and not a `serde_json::Map`: an answer has a handful of fields, most
/// named by a `&'static str`; a map allocated and hashed every name, and the request/match
/// workload builds one answer per request (`docs/performance.md`). JSON is written straight
/// from the list.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    status: Option<StatusCode>,
    body: Vec<(Cow<'static, str>, Value)>,
}

impl Reply {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(mut self, name: impl Into<Cow<'static, str>>, value: impl ToString) -> Self {
        self.insert(name.into(), Value::String(value.to_string()));
        self
    }

    pub fn fields(self, fields: &Fields) -> Self {
        self.take_fields(fields.iter().map(|(k, v)| (k.clone(), v.clone())))
    }

    /// Like [`Reply::fields`], taking the fields rather than copying them.
    pub fn from_fields(fields: Fields) -> Self {
        Self::new().take_fields(fields)
    }

    /// Adds fields whose names are distinct among themselves (a stored field set, an
    /// answer): only the names already in the reply need comparing.
    fn take_fields(mut self, fields: impl IntoIterator<Item = (String, String)>) -> Self {
        let before = self.body.len();
        for (k, v) in fields {
            match self.body[..before].iter_mut().find(|(name, _)| *name == k) {
                Some(slot) => slot.1 = Value::String(v),
                None => self.body.push((Cow::Owned(k), Value::String(v))),
            }
        }
        self
    }

    /// Adds a field the reply does not have yet (the caller's names are distinct): no
    /// comparing with the names already there.
    pub fn push_new(&mut self, name: &'static str, value: String) {
        debug_assert!(
            self.body.iter().all(|(k, _)| k != name),
            "{name} added twice"
        );
        self.body.push((Cow::Borrowed(name), Value::String(value)));
    }

    fn insert(&mut self, name: Cow<'static, str>, value: Value) {
        match self.body.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.body.push((name, value)),
        }
    }

    /// A list of objects under `name`, e.g. `{"matches": [{"_id": …}, …]}`.
    pub fn list(mut self, name: &'static str, items: Vec<Reply>) -> Self {
        let items = items
            .into_iter()
            .map(|r| {
                Value::Object(
                    r.body
                        .into_iter()
                        .map(|(k, v)| (k.into_owned(), v))
                        .collect(),
                )
            })
            .collect();
        self.insert(Cow::Borrowed(name), Value::Array(items));
        self
    }

    /// Any JSON value (the admin API answers typed JSON, not only strings).
    pub fn json(value: Value) -> Self {
        let body = match value {
            Value::Object(map) => map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
            other => vec![(Cow::Borrowed("value"), other)],
        };
        Self { status: None, body }
    }

    /// The fields as one JSON object.
    fn to_json(&self) -> Vec<u8> {
        struct Object<'a>(&'a [(Cow<'static, str>, Value)]);
        impl serde::Serialize for Object<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k.as_ref(), v)))
            }
        }
        let mut out = Vec::with_capacity(128);
        // Writing to a Vec cannot fail, and every key is a string.
        let _ = serde_json::to_writer(&mut out, &Object(&self.body));
        out
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The reply as XML. Why `quick_xml::Writer` and not string pushing: the writer escapes
    /// every text and attribute value and closes every element it opens, so no field value,
    /// however odd, can change the document's structure.
    fn to_xml(&self, xmlns: &str) -> String {
        let mut writer = Writer::new(Vec::with_capacity(256));
        // Writing to a Vec cannot fail; a failure would only mean a bug in this function.
        let written = (|| -> std::io::Result<()> {
            writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
            let mut response = BytesStart::new("Response");
            response.push_attribute(("xmlns".as_bytes(), xml_attr(xmlns).as_bytes()));
            writer.write_event(Event::Start(response))?;
            let fields = self.body.iter().map(|(k, v)| (k.as_ref(), v));
            write_object(&mut writer, fields)?;
            writer.write_event(Event::End(BytesEnd::new("Response")))
        })();
        debug_assert!(written.is_ok(), "writing XML to memory failed");
        String::from_utf8(writer.into_inner()).unwrap_or_default()
    }
}

type XmlWriter = Writer<Vec<u8>>;

/// Fields in name order, as the seed's example shows them.
fn write_object<'a>(
    out: &mut XmlWriter,
    fields: impl Iterator<Item = (&'a str, &'a Value)>,
) -> std::io::Result<()> {
    let mut fields: Vec<_> = fields.collect();
    fields.sort_by_key(|&(k, _)| k);
    for (key, value) in fields {
        write_element(out, key, value)?;
    }
    Ok(())
}

fn write_element(out: &mut XmlWriter, name: &str, value: &Value) -> std::io::Result<()> {
    // User data may carry names that are not XML names; those go in a <field name="…">.
    let start = if is_xml_name(name) {
        BytesStart::new(name)
    } else {
        let mut field = BytesStart::new("field");
        field.push_attribute(("name".as_bytes(), xml_attr(name).as_bytes()));
        field
    };
    let end = start.to_end().into_owned();
    out.write_event(Event::Start(start.borrow()))?;
    match value {
        Value::String(s) => out.write_event(Event::Text(BytesText::from_escaped(xml_text(s))))?,
        Value::Array(items) => {
            let item_name = if name == "matches" { "match" } else { "item" };
            for item in items {
                write_element(out, item_name, item)?;
            }
        }
        Value::Object(map) => write_object(out, map.iter().map(|(k, v)| (k.as_str(), v)))?,
        other => out.write_event(Event::Text(BytesText::new(&other.to_string())))?,
    }
    out.write_event(Event::End(end))
}

fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

/// A text value escaped for element content: markup escaped, and a carriage return as a
/// character reference, which a parser keeps (a raw one it turns into a line feed).
fn xml_text(s: &str) -> String {
    quick_xml::escape::escape(xml_chars(s).as_ref()).replace('\r', "&#13;")
}

/// A value escaped for an attribute: markup escaped, and tab, line feed and carriage return
/// as character references (a parser turns raw ones into spaces).
fn xml_attr(s: &str) -> String {
    quick_xml::escape::escape(xml_chars(s).as_ref())
        .replace('\t', "&#9;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
}

/// Drops the characters XML 1.0 cannot carry, even escaped (C0 controls other than tab, LF
/// and CR, and U+FFFE/U+FFFF), so an XML answer always parses (the contract's rule; JSON
/// carries every value exactly).
fn xml_chars(s: &str) -> Cow<'_, str> {
    let allowed = |c: char| !matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}');
    if s.chars().all(allowed) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| allowed(c)).collect())
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.to_json()));
        *response.status_mut() = self.status.unwrap_or(StatusCode::OK);
        response.headers_mut().insert(header::CONTENT_TYPE, JSON);
        // Kept for `as_xml` only when the edge will re-render it (the client asked for XML,
        // or no request is known): a response's first extension allocates its map.
        if REQUEST.try_with(|r| r.xml).unwrap_or(true) {
            response.extensions_mut().insert(self);
        }
        response
    }
}

/// Whether the client's `Accept` prefers XML to JSON.
///
/// Why a parser of our own on top of `mime` (and not a crate): `headers` 0.4 dropped its
/// `Accept`, and the choice is between two formats only. Each media range is parsed by
/// `mime`; a format's quality is the `q` of the most specific range that covers it. JSON
/// wins unless XML is preferred: by a higher `q`, by being named first at the same `q` (as
/// GMS clients that list both expect), or because JSON alone is refused with `q=0`.
pub fn wants_xml(headers: &HeaderMap) -> bool {
    // Several `Accept` lines are one list (RFC 9110 §5.3), in the order sent.
    let ranges: Vec<(Mime, u16)> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|accept| accept.split(','))
        .filter_map(|range| {
            let mime = super::media::parse(range.trim())?;
            let q = quality(&mime)?;
            Some((mime, q))
        })
        .collect();
    let json = preference(&ranges, &[("application", "json")]);
    let xml = preference(&ranges, &[("application", "xml"), ("text", "xml")]);
    match (xml, json) {
        (Some((xq, xi)), Some((jq, ji))) => xq > jq || (xq == jq && xq > 0 && xi < ji),
        // Not named at all sits between refused (q=0) and accepted.
        (Some((xq, _)), None) => xq > 0,
        (None, Some((jq, _))) => jq == 0,
        (None, None) => false,
    }
}

/// A range's `q` in thousandths (absent: 1000); `None` when it is not a number in 0..=1.
fn quality(range: &Mime) -> Option<u16> {
    let Some(q) = range.get_param("q") else {
        return Some(1000);
    };
    let q: f32 = q.as_str().trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&q)
        .then(|| (q * 1000.0).round() as u16)
}

/// The best quality any of `types` gets, with the position of the range that gave it; each
/// type takes the `q` of its most specific covering range (`type/sub` > `type/*` > `*/*`).
fn preference(ranges: &[(Mime, u16)], types: &[(&str, &str)]) -> Option<(u16, usize)> {
    types
        .iter()
        .filter_map(|&(ty, sub)| {
            ranges
                .iter()
                .enumerate()
                .filter_map(|(i, (range, q))| {
                    let specificity = if range.type_() == mime::STAR {
                        0
                    } else if range.type_() != ty {
                        return None;
                    } else if range.subtype() == mime::STAR {
                        1
                    } else if range.subtype() == sub {
                        2
                    } else {
                        return None;
                    };
                    Some((specificity, std::cmp::Reverse(i), *q))
                })
                .max()
                .map(|(_, std::cmp::Reverse(i), q)| (q, i))
        })
        .max_by_key(|&(q, i)| (q, std::cmp::Reverse(i)))
}

/// The XML namespace of a request's answer: its own URL, as GMS writes it (`https` when this
/// node serves TLS). A `Host` that is no URL authority (`a b`, empty) would make a namespace
/// that strict parsers refuse: then `localhost`.
pub fn xmlns(request: &Request, tls: bool) -> String {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.parse::<axum::http::uri::Authority>().is_ok())
        .unwrap_or("localhost");
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}{}", request.uri().path())
}

/// Re-renders a `Reply` answer (errors included) as XML, for a client that asked for it
/// (`http::edge`); any other response passes untouched.
pub fn as_xml(mut response: Response, xmlns: &str) -> Response {
    if let Some(reply) = response.extensions_mut().remove::<Reply>() {
        let xml = reply.to_xml(xmlns);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(XML_UTF_8));
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(xml);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_in_the_seed_shape() {
        let reply = Reply::new()
            .field("_id", "1213-2fb1")
            .field("_access_number", "6504664136")
            .field("_expiration_time", 29);
        assert_eq!(
            reply.to_xml("http://10.10.26.36/genesys/1/service/request-access"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response xmlns=\"http://10.10.26.36/genesys/1/service/request-access\">\
             <_access_number>6504664136</_access_number><_expiration_time>29</_expiration_time><_id>1213-2fb1</_id></Response>"
        );
    }

    #[test]
    fn xml_keeps_carriage_returns_and_attribute_whitespace() {
        let reply = Reply::new()
            .field("a", "x\ry\r\nz")
            .field("tab\tand\nline", "v");
        let xml = reply.to_xml("http://h/");
        assert!(xml.contains("<a>x&#13;y&#13;\nz</a>"), "{xml}");
        assert!(
            xml.contains("<field name=\"tab&#9;and&#10;line\">v</field>"),
            "{xml}"
        );
    }

    #[test]
    fn xml_escapes_values_and_odd_names() {
        let reply = Reply::new()
            .field("note", "a<b & \"c\"")
            .field("first name", "Zoë");
        let xml = reply.to_xml("x");
        assert!(
            xml.contains("<field name=\"first name\">Zoë</field>"),
            "{xml}"
        );
        assert!(
            xml.contains("<note>a&lt;b &amp; &quot;c&quot;</note>"),
            "{xml}"
        );
    }

    #[test]
    fn xml_lists() {
        let reply = Reply::new().list(
            "matches",
            vec![
                Reply::new().field("_id", "1"),
                Reply::new().field("_id", "2"),
            ],
        );
        assert!(
            reply.to_xml("x").contains(
                "<matches><match><_id>1</_id></match><match><_id>2</_id></match></matches>"
            )
        );
    }

    fn accepts_xml(accept: &'static str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(accept));
        wants_xml(&h)
    }

    #[test]
    fn accept_negotiation() {
        assert!(accepts_xml("application/xml"));
        assert!(accepts_xml("text/xml; q=0.9"));
        assert!(!accepts_xml("application/json, application/xml"));
        assert!(
            accepts_xml("application/xml, application/json"),
            "first named wins a tie"
        );
        assert!(accepts_xml("text/html, application/xml"));
        assert!(!accepts_xml("*/*"));
        assert!(!accepts_xml("text/html"));
        assert!(!accepts_xml("not a media type"));
        assert!(!wants_xml(&HeaderMap::new()));
    }

    #[test]
    fn accept_honours_q_values() {
        assert!(!accepts_xml("application/xml;q=0.1, application/json"));
        assert!(accepts_xml("application/json;q=0.5, text/xml"));
        assert!(accepts_xml("application/json;q=0"), "JSON refused: XML");
        assert!(accepts_xml("application/json;q=0, */*"));
        assert!(!accepts_xml("application/xml;q=0"));
        assert!(!accepts_xml("application/xml;q=0, application/json;q=0"));
        assert!(accepts_xml("*/*;q=0.5, application/xml"));
        assert!(
            !accepts_xml("application/*;q=0.9, application/xml;q=0.8"),
            "json 0.9 > xml 0.8"
        );
        assert!(
            !accepts_xml("application/xml;q=2"),
            "a q out of range ignores the range"
        );
    }

    #[test]
    fn xml_content_type_is_a_valid_mime() {
        let m: Mime = XML_UTF_8.parse().expect("parses");
        assert_eq!((m.type_(), m.subtype()), (mime::APPLICATION, mime::XML));
        assert_eq!(m.get_param(mime::CHARSET), Some(mime::UTF_8));
    }

    #[test]
    fn xml_escapes_markup_in_values_names_and_namespace() {
        let reply = Reply::new()
            .field("x", "</x><evil attr='1'>&amp;")
            .field("a\"b", "v");
        let xml = reply.to_xml("http://h/?a=1&b=<2>");
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response xmlns=\"http://h/?a=1&amp;b=&lt;2&gt;\">\
             <field name=\"a&quot;b\">v</field><x>&lt;/x&gt;&lt;evil attr=&apos;1&apos;&gt;&amp;amp;</x></Response>"
        );
    }

    #[test]
    fn the_namespace_is_a_url_whatever_the_host_header() {
        let with_host = |host: &str| {
            let mut req = Request::new(axum::body::Body::empty());
            *req.uri_mut() = "/genesys/1/service/x".parse().expect("uri");
            if let Ok(v) = header::HeaderValue::from_str(host) {
                req.headers_mut().insert(header::HOST, v);
            }
            xmlns(&req, false)
        };
        assert_eq!(
            with_host("gms.example:8080"),
            "http://gms.example:8080/genesys/1/service/x"
        );
        assert_eq!(with_host("[::1]:80"), "http://[::1]:80/genesys/1/service/x");
        let mut req = Request::new(axum::body::Body::empty());
        *req.uri_mut() = "/genesys/1/service/x".parse().expect("uri");
        req.headers_mut().insert(
            header::HOST,
            header::HeaderValue::from_static("gms.example"),
        );
        assert_eq!(
            xmlns(&req, true),
            "https://gms.example/genesys/1/service/x",
            "over TLS (it said http)"
        );
        for odd in ["a b", "", "a\"b", "x<y"] {
            assert_eq!(
                with_host(odd),
                "http://localhost/genesys/1/service/x",
                "{odd:?}"
            );
        }
    }

    #[test]
    fn xml_drops_characters_xml_cannot_carry() {
        let reply = Reply::new().field("v", "a\u{1}b\tc\u{1b}d\u{FFFF}");
        assert!(
            reply.to_xml("x").contains("<v>ab\tcd</v>"),
            "{}",
            reply.to_xml("x")
        );
    }

    #[test]
    fn xml_empty_values_and_non_strings() {
        let reply = Reply::json(serde_json::json!({"e": "", "n": 5, "z": null}));
        assert!(
            reply
                .to_xml("x")
                .ends_with("<e></e><n>5</n><z>null</z></Response>"),
            "{}",
            reply.to_xml("x")
        );
    }
}
