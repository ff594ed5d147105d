//! GMS request parameters from the query string and a form-urlencoded, multipart or JSON body.
//!
//! The body's declared `charset` is honoured (UTF-8 by default; ISO-8859-1 as GMS clients
//! send), so every value reads back exactly as sent. The body is read up to the configured
//! limit, past which the request gets 413 PayloadTooLarge.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::charset::Charset;
use super::error::ApiError;
use crate::store::Fields;

/// The request's parameters in the order sent; a name sent twice keeps its last value.
#[derive(Debug, Clone, Default)]
pub struct Params {
    fields: Fields,
}

impl Params {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let pairs: Fields = pairs.into_iter().collect();
        // A handful of distinct names (every request of the request/match workload): they
        // are the fields as they are, with no second list built to merge them into.
        let small = pairs.len() <= 8;
        if small
            && pairs
                .iter()
                .enumerate()
                .all(|(i, (k, _))| pairs[..i].iter().all(|(n, _)| n != k))
        {
            return Self { fields: pairs };
        }
        let mut fields = Fields::new();
        crate::store::merge_fields(&mut fields, pairs);
        Self { fields }
    }

    /// A parameter's value; an empty value counts as not sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Parses a parameter with a domain parser; a failure is a 400 naming it.
    pub fn parse<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(parse)
            .transpose()
            .map_err(|e| ApiError::invalid(name, e))
    }

    /// A boolean: `true`/`false` in any case, or `1`/`0`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.parse(name, crate::domain::parse_bool)
    }

    /// 400 naming the first parameter not in `known` (a misspelt setting must not be
    /// answered as if it were applied).
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self
            .fields
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) if known.is_empty() => Err(ApiError::invalid(
                k,
                "unknown parameter; this call takes none",
            )),
            Some((k, _)) => Err(ApiError::invalid(
                k,
                format!("unknown parameter; expected one of {}", known.join(", ")),
            )),
        }
    }

    /// Every field whose name does not start with `_`: the user data of a session.
    pub fn user_fields(&self) -> Fields {
        self.fields
            .iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .cloned()
            .collect()
    }

    /// Every field but the named control parameters.
    pub fn fields_except(&self, control: &[&str]) -> Fields {
        self.fields
            .iter()
            .filter(|(k, _)| !control.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        Self::read(&parts, body, state.config.server.max_body_bytes).await
    }
}

impl Params {
    /// Reads the parameters of a request whose head the caller keeps (a handler that needs
    /// the headers too borrows them instead of copying them); a body past `limit` bytes
    /// (`max_body_bytes`) is refused.
    pub async fn read(parts: &Parts, body: Body, limit: usize) -> Result<Self, ApiError> {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::invalid("Content-Type", "not ASCII"))
            })
            .transpose()?;
        let mut pairs = match parts.uri.query() {
            Some(q) => decode_urlencoded(q.as_bytes(), Charset::Utf8)?,
            None => Vec::new(),
        };
        // A body declared larger than the limit (its `Content-Length`, which hyper keeps as
        // the body's size hint: no header lookup) is refused at once, not awaited.
        if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let body = read_body(body, limit).await?;
        let from_body = parse_body(content_type, body).await?;
        crate::telemetry::RequestContext::mark_read();
        // Most requests send no query: the body's list is taken as it is, not copied.
        match pairs.is_empty() {
            true => pairs = from_body,
            false => pairs.extend(from_body),
        }
        if pairs.len() > crate::store::MAX_FIELDS_PER_REQUEST {
            return Err(ApiError::invalid(
                "fields",
                format!(
                    "{} sent; a request carries at most {}",
                    pairs.len(),
                    crate::store::MAX_FIELDS_PER_REQUEST
                ),
            ));
        }
        Ok(Self::from_pairs(pairs))
    }
}

/// The whole body (as `axum::body::to_bytes`, but without its list of chunks and its extra
/// wrapper: a form comes in one chunk, kept as it came): 413 past `limit` bytes, 400 when it
/// cannot be read (a chunked body's framing broken, the body cut short), which is no size.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut whole: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::invalid("body", format!("cannot be read: {}", unreadable(&err)))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not parameters
        };
        // Bytes so far: the first chunk alone, or `more` once it holds the first's copy.
        let had = match more.is_empty() {
            true => whole.as_ref().map_or(0, Bytes::len),
            false => more.len(),
        };
        if data.len() > limit.saturating_sub(had) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        match &whole {
            None => whole = Some(data),
            Some(first) => {
                if more.is_empty() {
                    more.extend_from_slice(first);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(match more.is_empty() {
        true => whole.unwrap_or_default(),
        false => Bytes::from(more),
    })
}

/// Why a body could not be read, in words: hyper's error, or the one it wraps.
fn unreadable(err: &axum::Error) -> String {
    use std::error::Error as _;
    let inner = err.source().unwrap_or(err);
    inner.to_string()
}

/// The body parser as a request runs it, without a server: the entry point of the fuzz
/// targets (`fuzz/`) and of the property test that runs the same inputs on stable.
pub fn parse_body_now(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    futures::executor::block_on(parse_body(content_type, Bytes::copy_from_slice(body)))
}

/// The query-string decoder (UTF-8), for the same fuzz targets.
pub fn parse_query_now(query: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    decode_urlencoded(query, Charset::Utf8)
}

async fn parse_body(
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Vec<(String, String)>, ApiError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let Some(content_type) = content_type else {
        return decode_urlencoded(&body, Charset::Utf8);
    };
    // What nearly every GMS client sends, answered without parsing the header (the same
    // result as below: a form without a charset is UTF-8).
    if content_type.eq_ignore_ascii_case(mime::APPLICATION_WWW_FORM_URLENCODED.as_ref()) {
        return decode_urlencoded(&body, Charset::Utf8);
    }
    // Parsed by `mime` (quoted parameters, case rules) as HTTP writes it (`media.rs`). A
    // header it cannot parse is named as sent: a supported type with malformed parameters
    // must not read "not supported".
    let Some(mime) = super::media::parse(content_type) else {
        return Err(ApiError::invalid(
            "Content-Type",
            format!("{content_type:?} cannot be parsed (type/subtype; name=value parameters)"),
        ));
    };
    let encoding = Charset::of(mime.get_param(mime::CHARSET).map(|v| v.as_str()))?;
    match (mime.type_(), mime.subtype()) {
        (mime::APPLICATION, mime::WWW_FORM_URLENCODED) => decode_urlencoded(&body, encoding),
        (mime::MULTIPART, mime::FORM_DATA) => {
            let boundary = mime
                .get_param(mime::BOUNDARY)
                .ok_or_else(|| ApiError::invalid("Content-Type", "multipart without a boundary"))?;
            // Boxed: the multipart reader's state is large, and every request's future would
            // carry room for it (and copy it each time the future is moved) if it were inline.
            Box::pin(decode_multipart(
                body,
                boundary.as_str().to_owned(),
                encoding,
            ))
            .await
        }
        // JSON is UTF-8 by its own rules; a GMS client that declares ISO-8859-1 still gets
        // its bytes read as it declared them.
        (mime::APPLICATION, mime::JSON) if encoding == Charset::Utf8 => {
            super::json_body::decode(&body)
        }
        (mime::APPLICATION, mime::JSON) => {
            super::json_body::decode(encoding.decode(&body, "JSON body")?.as_bytes())
        }
        _ => Err(unsupported(mime.essence_str())),
    }
}

fn unsupported(essence: &str) -> ApiError {
    ApiError::invalid(
        "Content-Type",
        format!(
            "{essence:?} is not supported; send application/x-www-form-urlencoded, multipart/form-data or application/json"
        ),
    )
}

fn decode_urlencoded(raw: &[u8], encoding: Charset) -> Result<Vec<(String, String)>, ApiError> {
    // UTF-8 (nearly every form): the body is checked once; a piece cut from it at an ASCII
    // `&` or `=` is UTF-8 too, so a name or value without escapes is copied as it is.
    if encoding == Charset::Utf8
        && let Ok(text) = std::str::from_utf8(raw)
    {
        let mut out = Vec::new();
        let mut rest = Some(text);
        while let Some(text) = rest {
            let pair;
            (pair, rest) = cut(text, b'&');
            if pair.is_empty() {
                continue;
            }
            let (k, v) = cut(pair, b'=');
            let name = utf8_piece(k, "parameter name")?;
            let value = utf8_piece(v.unwrap_or(""), &name)?;
            out.push((name, value));
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for pair in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let name = encoding.decode(&unescape(k), "parameter name")?;
        let value = encoding.decode(&unescape(v), &name)?;
        out.push((name, value));
    }
    Ok(out)
}

/// `text` cut at the first `byte` (ASCII): before it, and after it if it is there. Why not
/// `str::split`: its searcher is made for long texts, and a form's pieces are a few bytes
/// (the searcher was 2 % of the request/match path's instructions).
fn cut(text: &str, byte: u8) -> (&str, Option<&str>) {
    match text.bytes().position(|b| b == byte) {
        // An ASCII byte is a character of its own: both sides are whole characters.
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    }
}

/// A name or value of a body that is valid UTF-8: copied when it has no escapes, else
/// unescaped and checked (an escape may still make invalid UTF-8).
fn utf8_piece(piece: &str, what: &str) -> Result<String, ApiError> {
    match unescape(piece.as_bytes()) {
        std::borrow::Cow::Borrowed(_) => Ok(piece.to_owned()),
        std::borrow::Cow::Owned(bytes) => Charset::Utf8.decode(&bytes, what),
    }
}

/// `+` as a space, then `%XX` escapes; borrowed when there is neither (most names and
/// values), so a plain form costs no copy before its text is decoded.
fn unescape(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !s.iter().any(|&b| b == b'+' || b == b'%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let plus: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    std::borrow::Cow::Owned(percent_encoding::percent_decode(&plus).collect())
}

async fn decode_multipart(
    body: Bytes,
    boundary: String,
    encoding: Charset,
) -> Result<Vec<(String, String)>, ApiError> {
    let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    let bad = |e: multer::Error| ApiError::invalid("multipart body", e.to_string());
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        // The part's own `Content-Type` read here, not by multer (`mime` alone refuses a
        // space before its `;` and the charset was then ignored); none, or one that is no
        // media type: the body's charset.
        let part_type = field
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(super::media::parse);
        let field_encoding = match part_type.as_ref().and_then(|m| m.get_param("charset")) {
            Some(cs) => Charset::of(Some(cs.as_str()))?,
            None => encoding,
        };
        let name = field_name(&field, field_encoding)?;
        let bytes = field.bytes().await.map_err(bad)?;
        let value = field_encoding.decode(&bytes, &name)?;
        out.push((name, value));
    }
    Ok(out)
}

/// A part's name, from its `Content-Disposition`: `name*=CHARSET''escaped` (RFC 5987), else
/// `name="…"` in the part's charset (multer reads names as UTF-8 only, and gave an empty
/// name for any other bytes, so fields overwrote each other under `""`). No name, or one the
/// charset cannot carry: 400.
fn field_name(field: &multer::Field<'_>, charset: Charset) -> Result<String, ApiError> {
    const WHAT: &str = "multipart field name";
    let disposition = field
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if let Some(extended) = disposition_param(disposition, b"name*") {
        let (label, rest) = split_once(extended, b'\'')
            .ok_or_else(|| ApiError::invalid(WHAT, "name* without a charset"))?;
        let (_language, escaped) = split_once(rest, b'\'')
            .ok_or_else(|| ApiError::invalid(WHAT, "name* without a language part"))?;
        let label =
            std::str::from_utf8(label).map_err(|_| ApiError::invalid(WHAT, "bad charset"))?;
        let bytes: Vec<u8> = percent_encoding::percent_decode(escaped).collect();
        return Charset::of(Some(label))?.decode(&bytes, WHAT);
    }
    match disposition_param(disposition, b"name") {
        Some(raw) if !raw.is_empty() => charset.decode(raw, WHAT),
        _ => Err(ApiError::invalid(WHAT, "a part without a name")),
    }
}

/// A parameter's raw value in a `Content-Disposition` header: quoted (`\"` and `\\`
/// escapes kept as sent: browsers escape `"` as `%22`) or a bare token.
fn disposition_param<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = header;
    while let Some(i) = rest.iter().position(|&b| b == b';') {
        rest = &rest[i + 1..];
        let param = rest.trim_ascii_start();
        let Some((key, value)) = split_once(param, b'=') else {
            continue;
        };
        if !key.trim_ascii().eq_ignore_ascii_case(name) {
            continue;
        }
        let value = value.trim_ascii_start();
        return Some(match value.strip_prefix(b"\"") {
            Some(quoted) => {
                let end = quoted
                    .iter()
                    .position(|&b| b == b'"')
                    .unwrap_or(quoted.len());
                &quoted[..end]
            }
            None => {
                let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
                value[..end].trim_ascii_end()
            }
        });
    }
    None
}

fn split_once(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == at)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &[u8], charset: &str) -> Vec<(String, String)> {
        decode_urlencoded(body, charset_or(charset)).expect("decodes")
    }

    fn charset_or(label: &str) -> Charset {
        Charset::of(Some(label)).expect("known charset")
    }

    #[test]
    fn urlencoded_in_utf8_and_latin1() {
        assert_eq!(
            form(b"a=1&b=Zo%C3%AB+x&c", "utf-8"),
            [
                ("a".into(), "1".into()),
                ("b".into(), "Zoë x".into()),
                ("c".into(), String::new())
            ]
        );
        assert_eq!(
            form(b"name=Zo%EB", "ISO-8859-1"),
            [("name".into(), "Zoë".into())]
        );
        assert!(
            decode_urlencoded(b"name=Zo%EB", Charset::Utf8).is_err(),
            "latin1 bytes sent as UTF-8 are rejected, not mangled"
        );
    }

    #[test]
    fn utf8_forms_cut_as_sent() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            form(b"a=1=2&&=v&b+c=%41+&d&e=%C3%A9&", "utf-8"),
            pairs(&[
                ("a", "1=2"),
                ("", "v"),
                ("b c", "A "),
                ("d", ""),
                ("e", "é")
            ])
        );
        assert_eq!(form(b"", "utf-8"), pairs(&[]));
        assert!(decode_urlencoded(b"a=%FF", Charset::Utf8).is_err());
    }

    #[test]
    fn last_value_wins_and_empty_is_unset() {
        let p = Params::from_pairs([
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
            ("e".to_owned(), String::new()),
        ]);
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("e"), None);
    }

    #[tokio::test]
    async fn content_types_parse_with_mime() {
        let body = || Bytes::from_static(b"name=Zo%EB");
        let latin1 = parse_body(
            Some("Application/X-WWW-Form-URLEncoded; charset=\"ISO-8859-1\""),
            body(),
        )
        .await
        .expect("decodes");
        assert_eq!(latin1, [("name".into(), "Zoë".into())]);
        // Empty parameters are legal (RFC 9110 §5.6.6): `;;;` is a form without a charset.
        let spaced = parse_body(
            Some("application/x-www-form-urlencoded;;;"),
            Bytes::from_static(b"name=Zo%C3%AB"),
        )
        .await
        .expect("decodes");
        assert_eq!(spaced, [("name".into(), "Zoë".into())]);
        let json = parse_body(
            Some("application/json; charset=ISO-8859-1"),
            Bytes::from_static(b"{\"name\":\"Zo\xeb\"}"),
        )
        .await
        .expect("decodes");
        assert_eq!(json, [("name".into(), "Zoë".into())]);
        for (content_type, named) in [
            ("text/plain", "\"text/plain\" is not supported"),
            ("garbage", "\"garbage\" cannot be parsed"),
            (
                "application/x-www-form-urlencoded; =x",
                "\"application/x-www-form-urlencoded; =x\" cannot be parsed",
            ),
            ("multipart/form-data", "multipart without a boundary"),
            ("application/json; charset=klingon", "unknown charset"),
        ] {
            let err = parse_body(Some(content_type), body())
                .await
                .expect_err(content_type);
            assert!(err.to_string().contains(named), "{content_type}: {err}");
        }
    }

    #[tokio::test]
    async fn multipart_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"_id\"\r\n\r\n1-abc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhé\r\n--XyZ--\r\n";
        let got = decode_multipart(Bytes::from(body), "XyZ".into(), Charset::Utf8)
            .await
            .expect("decodes");
        assert_eq!(
            got,
            [("_id".into(), "1-abc".into()), ("note".into(), "hé".into())]
        );
    }

    /// Names as sent: in the body's or the part's charset, or RFC 5987's `name*`; a part
    /// without a name, or with one its charset cannot carry, is refused (multer gave both an
    /// empty name, and they overwrote each other).
    #[tokio::test]
    async fn multipart_names_in_their_charset() {
        let part = |disposition: &[u8], ct: &str, value: &str| {
            let mut p = b"--XyZ\r\nContent-Disposition: form-data; ".to_vec();
            p.extend_from_slice(disposition);
            p.extend_from_slice(format!("\r\n{ct}\r\n{value}\r\n").as_bytes());
            p
        };
        let mut body = part(
            b"name=\"n\xe9\"",
            "Content-Type: text/plain; charset=ISO-8859-1\r\n",
            "x",
        );
        body.extend(part(b"name*=UTF-8''n%C3%A8", "", "y"));
        body.extend(part(b"name=plain", "", "z"));
        body.extend_from_slice(b"--XyZ--\r\n");
        let got = decode_multipart(Bytes::from(body), "XyZ".into(), Charset::Utf8)
            .await
            .expect("decodes");
        assert_eq!(
            got,
            [
                ("né".into(), "x".into()),
                ("nè".into(), "y".into()),
                ("plain".into(), "z".into())
            ]
        );
        for bad in [&b"filename=\"a\""[..], b"name=\"n\xe9\""] {
            let mut body = part(bad, "", "v");
            body.extend_from_slice(b"--XyZ--\r\n");
            let err = decode_multipart(Bytes::from(body), "XyZ".into(), Charset::Utf8)
                .await
                .expect_err("refused");
            assert!(err.to_string().contains("multipart field name"), "{err}");
        }
        let latin1 = decode_urlencoded(b"v=%80%9F%FF", Charset::Latin1).expect("decodes");
        assert_eq!(latin1, [("v".into(), "\u{80}\u{9f}\u{ff}".into())]);
    }
}
