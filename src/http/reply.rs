//! Replies in the GMS shape: a JSON object whose values are strings, or, when the client's
//! `Accept` asks for it, the same fields as `<Response xmlns="…">` XML (the seed's shape).
//!
//! Handlers and `ApiError` build a [`Reply`]; it renders as JSON and rides along in the
//! response's extensions, and the [`negotiate`] middleware swaps in XML when asked, so no
//! handler needs to know about formats.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::store::Fields;

#[derive(Debug, Clone, Default)]
pub struct Reply {
    status: Option<StatusCode>,
    body: Map<String, Value>,
}

impl Reply {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.body
            .insert(name.into(), Value::String(value.to_string()));
        self
    }

    pub fn fields(mut self, fields: &Fields) -> Self {
        for (k, v) in fields {
            self.body.insert(k.clone(), Value::String(v.clone()));
        }
        self
    }

    /// A list of objects under `name`, e.g. `{"matches": [{"_id": …}, …]}`.
    pub fn list(mut self, name: &str, items: Vec<Reply>) -> Self {
        let items = items.into_iter().map(|r| Value::Object(r.body)).collect();
        self.body.insert(name.into(), Value::Array(items));
        self
    }

    /// Any JSON value (the admin API answers typed JSON, not only strings).
    pub fn json(value: Value) -> Self {
        match value {
            Value::Object(body) => Self { status: None, body },
            other => {
                let mut body = Map::new();
                body.insert("value".into(), other);
                Self { status: None, body }
            }
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    fn to_xml(&self, xmlns: &str) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        out.push_str(&format!("<Response xmlns=\"{}\">", escape(xmlns)));
        write_object(&mut out, &self.body);
        out.push_str("</Response>");
        out
    }
}

/// Fields in name order, as the seed's example shows them.
fn write_object(out: &mut String, body: &Map<String, Value>) {
    let mut keys: Vec<&String> = body.keys().collect();
    keys.sort();
    for key in keys {
        write_element(out, key, &body[key]);
    }
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    // User data may carry names that are not XML names; those go in a <field name="…">.
    let (open, close) = if is_xml_name(name) {
        (format!("<{name}>"), format!("</{name}>"))
    } else {
        (
            format!("<field name=\"{}\">", escape(name)),
            "</field>".to_owned(),
        )
    };
    out.push_str(&open);
    match value {
        Value::String(s) => out.push_str(&escape(s)),
        Value::Array(items) => {
            let item_name = if name == "matches" { "match" } else { "item" };
            for item in items {
                write_element(out, item_name, item);
            }
        }
        Value::Object(map) => write_object(out, map),
        other => out.push_str(&escape(&other.to_string())),
    }
    out.push_str(&close);
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

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or(StatusCode::OK);
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Whether the client asked for XML: the first of JSON or XML named in `Accept` wins.
pub fn wants_xml(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    for range in accept.split(',') {
        let media = range
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media == "application/json" {
            return false;
        }
        if media == "application/xml" || media == "text/xml" {
            return true;
        }
    }
    false
}

/// Middleware: re-renders any `Reply` (errors included) as XML when the request asked for it.
pub async fn negotiate(request: Request, next: Next) -> Response {
    if !wants_xml(request.headers()) {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let xmlns = format!("http://{host}{}", request.uri().path());
    let mut response = next.run(request).await;
    if let Some(reply) = response.extensions_mut().remove::<Reply>() {
        let xml = reply.to_xml(&xmlns);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
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

    #[test]
    fn accept_negotiation() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            wants_xml(&h)
        };
        assert!(with("application/xml"));
        assert!(with("text/xml; q=0.9"));
        assert!(!with("application/json, application/xml"));
        assert!(with("text/html, application/xml"));
        assert!(!with("*/*"));
        assert!(!wants_xml(&HeaderMap::new()));
    }
}
