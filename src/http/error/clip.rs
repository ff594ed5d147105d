//! Error messages quote at most [`MAX_QUOTED_CHARS`] characters of any value: the clipping
//! `ApiError` applies to every message it renders.

/// Most characters of one value a message quotes; the rest becomes `…`.
pub const MAX_QUOTED_CHARS: usize = 100;

/// Shortens every value a message quotes to [`MAX_QUOTED_CHARS`] characters plus `…`.
///
/// Why here and on the finished text: values reach messages from many places (a parser's
/// reason, a path, a service name, a store id), and the one place errors render is the one
/// place that sees them all. A value is a `"…"` string (Rust's `{:?}`, escapes honoured) or,
/// unquoted, any run of characters without a space: the messages' own words are short, so a
/// longer run can only be something the client sent.
pub fn clip_values(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len().min(4 * MAX_QUOTED_CHARS));
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        if chars[i] == '"' {
            // A quoted value: up to the closing quote that is not escaped.
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            let end = i.min(chars.len());
            push_clipped(&mut out, &chars[start + 1..end], true, end < chars.len());
            i = end + 1;
        } else if chars[i].is_whitespace() {
            out.push(chars[i]);
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '"' {
                i += 1;
            }
            push_clipped(&mut out, &chars[start..i], false, false);
        }
    }
    out
}

/// Writes `value`, clipped, between the quotes it had (`open`, `close`).
fn push_clipped(out: &mut String, value: &[char], open: bool, close: bool) {
    if open {
        out.push('"');
    }
    out.extend(value.iter().take(MAX_QUOTED_CHARS));
    if value.len() > MAX_QUOTED_CHARS {
        out.push('…');
    }
    if close {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_clipped_to_100_characters() {
        let long = "y".repeat(500);
        let clipped = clip_values(&format!("_id: {long:?} is not a session; raw {long} too"));
        let want = format!(
            "_id: \"{}…\" is not a session; raw {}… too",
            "y".repeat(100),
            "y".repeat(100)
        );
        assert_eq!(clipped, want);
        let spaced = format!("{:?}", "a \"b ".repeat(100));
        let clipped = clip_values(&format!("x: {spaced} end"));
        assert!(clipped.ends_with("…\" end"), "{clipped}");
        assert!(clipped.chars().count() < 120, "{clipped}");
        for short in [
            "service \"callback\" not found",
            "no match",
            "",
            "\"unterminated",
        ] {
            assert_eq!(clip_values(short), short);
        }
    }
}
