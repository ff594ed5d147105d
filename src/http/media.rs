//! Media types as HTTP writes them (RFC 9110 §5.6.6: `type/subtype *( OWS ";" OWS
//! [ parameter ] )`), for a request's `Content-Type`, a multipart part's, and each range of
//! `Accept`.
//!
//! Why this on top of `mime`: `mime` refuses whitespace before a `;` and empty parameters
//! (`text/xml ;q=1`, `application/x-www-form-urlencoded ;`), both legal, so a client writing
//! them got a 400 for its form, JSON instead of the XML it asked for, or a part's charset
//! silently ignored. A header `mime` reads as it is is not copied.

use mime::Mime;

/// The media type `text` names, or `None` when it is not one.
pub fn parse(text: &str) -> Option<Mime> {
    match text.parse() {
        Ok(mime) => Some(mime),
        Err(_) => normalized(text).parse().ok(),
    }
}

/// `text` with the spaces and tabs around each `;` (outside quoted strings) left out, and
/// empty parameters with them.
fn normalized(text: &str) -> String {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                pieces.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    let mut out = String::with_capacity(text.len());
    for (i, piece) in pieces
        .iter()
        .map(|p| p.trim_matches([' ', '\t']))
        .enumerate()
    {
        if i == 0 {
            out.push_str(piece);
        } else if !piece.is_empty() {
            out.push_str("; ");
            out.push_str(piece);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn essence_and_charset(text: &str) -> Option<(String, Option<String>)> {
        let mime = parse(text)?;
        let charset = mime
            .get_param("charset")
            .map(|c| c.as_str().to_ascii_uppercase());
        Some((mime.essence_str().to_owned(), charset))
    }

    #[test]
    fn whitespace_around_semicolons_and_empty_parameters_are_legal() {
        let form = "application/x-www-form-urlencoded";
        for text in [
            "application/x-www-form-urlencoded ; charset=ISO-8859-1",
            "application/x-www-form-urlencoded\t;charset=ISO-8859-1",
            "application/x-www-form-urlencoded;charset=ISO-8859-1 ;",
            "application/x-www-form-urlencoded ;; charset=ISO-8859-1",
        ] {
            assert_eq!(
                essence_and_charset(text),
                Some((form.into(), Some("ISO-8859-1".into()))),
                "{text:?}"
            );
        }
        assert_eq!(
            essence_and_charset("application/x-www-form-urlencoded ;"),
            Some((form.into(), None))
        );
        let xml = parse("application/xml ;q=0.9").expect("parses");
        assert_eq!(
            xml.get_param("q").map(|q| q.as_str().to_owned()),
            Some("0.9".into())
        );
    }

    #[test]
    fn a_semicolon_inside_quotes_is_part_of_the_value() {
        let mime = parse("multipart/form-data ; boundary=\"a ;b\"").expect("parses");
        assert_eq!(mime.get_param("boundary").map(|b| b.as_str()), Some("a ;b"));
    }

    #[test]
    fn what_is_no_media_type_stays_refused() {
        for text in ["", "text", ";charset=utf-8", "a b/c", "text/plain; =x"] {
            assert!(parse(text).is_none(), "{text:?}");
        }
    }
}
