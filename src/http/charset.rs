//! The `charset` a request body declares, and its text decoded exactly as sent.
//!
//! Why not `encoding_rs` alone: it follows the WHATWG Encoding Standard, where the labels
//! `iso-8859-1`, `latin1` and `us-ascii` all name windows-1252, so the bytes 0x80–0x9F of an
//! ISO-8859-1 body read as `€`, `Š`… instead of the C1 code points U+0080–U+009F that
//! ISO-8859-1 maps them to, and a US-ASCII body took bytes ASCII does not have. The contract
//! promises that every value reads back exactly as sent: ISO-8859-1 is decoded here byte for
//! code point, US-ASCII refuses bytes past 0x7F, and only an explicit `windows-1252` (or
//! another label) goes to `encoding_rs`.

use encoding_rs::Encoding;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    /// ISO-8859-1: each byte is the code point of the same value.
    Latin1,
    /// US-ASCII: bytes up to 0x7F only.
    Ascii,
    /// Any other label `encoding_rs` knows (windows-1252, Shift_JIS, …).
    Other(&'static Encoding),
}

/// Labels the WHATWG standard maps to windows-1252 that name US-ASCII.
const ASCII: [&str; 3] = ["us-ascii", "ascii", "ansi_x3.4-1968"];
/// Labels that name windows-1252 itself.
const WINDOWS_1252: [&str; 3] = ["windows-1252", "cp1252", "x-cp1252"];

impl Charset {
    /// The charset a `charset` parameter names (UTF-8 without one); an unknown label is 400
    /// naming the `Content-Type`.
    pub fn of(label: Option<&str>) -> Result<Self, ApiError> {
        let Some(label) = label else {
            return Ok(Self::Utf8);
        };
        let unknown = || ApiError::invalid("Content-Type", format!("unknown charset {label:?}"));
        let encoding = Encoding::for_label(label.as_bytes()).ok_or_else(unknown)?;
        let name = label.trim().to_ascii_lowercase();
        Ok(match encoding {
            e if e == encoding_rs::UTF_8 => Self::Utf8,
            e if e == encoding_rs::WINDOWS_1252 && ASCII.contains(&name.as_str()) => Self::Ascii,
            e if e == encoding_rs::WINDOWS_1252 && !WINDOWS_1252.contains(&name.as_str()) => {
                Self::Latin1
            }
            e => Self::Other(e),
        })
    }

    /// `bytes` as text; bytes this charset cannot carry are 400 naming `what`.
    pub fn decode(self, bytes: &[u8], what: &str) -> Result<String, ApiError> {
        let invalid = |name: &str| ApiError::invalid(what, format!("not valid {name}"));
        match self {
            // The common case is only checked: one copy, no decoder.
            Self::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| invalid("UTF-8")),
            Self::Latin1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
            Self::Ascii => match bytes.is_ascii() {
                true => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
                false => Err(invalid("US-ASCII")),
            },
            Self::Other(encoding) => {
                let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
                match had_errors {
                    true => Err(invalid(encoding.name())),
                    false => Ok(text.into_owned()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_byte_for_code_point_and_ascii_is_seven_bits() {
        let all: Vec<u8> = (0..=255).collect();
        for label in ["ISO-8859-1", "latin1", "iso_8859-1", " l1 "] {
            let text = Charset::of(Some(label))
                .and_then(|c| c.decode(&all, "v"))
                .expect(label);
            let back: Vec<u32> = text.chars().map(u32::from).collect();
            assert_eq!(back, (0..=255).collect::<Vec<u32>>(), "{label}");
        }
        for label in ["us-ascii", "ASCII"] {
            let ascii = Charset::of(Some(label)).expect(label);
            assert_eq!(ascii, Charset::Ascii);
            assert_eq!(ascii.decode(b"plain", "v").ok().as_deref(), Some("plain"));
            let err = ascii.decode(b"caf\xe9", "v").expect_err("past 0x7f");
            assert!(err.to_string().contains("US-ASCII"), "{err}");
        }
        let cp = Charset::of(Some("windows-1252")).expect("known");
        assert_eq!(cp.decode(b"\x80", "v").ok().as_deref(), Some("€"));
        assert_eq!(Charset::of(None).ok(), Some(Charset::Utf8));
        assert_eq!(Charset::of(Some("utf8")).ok(), Some(Charset::Utf8));
        assert!(Charset::of(Some("klingon")).is_err());
    }
}
