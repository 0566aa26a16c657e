//! Content-Transfer-Encoding decoding (RFC 2045 6), for IMAP BINARY
//! (RFC 3516, RFC 9051 6.4.5) and SEARCH over decoded bodies.
//!
//! Decoding is lenient, as readers of real mail must be: base64 skips
//! bytes outside its alphabet and stops at padding; quoted-printable keeps
//! a malformed `=` sequence as it is. Both are one linear pass.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// The encodings roost can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    /// 7bit, 8bit and binary: the bytes are the content.
    Identity,
    Base64,
    QuotedPrintable,
}

impl TransferEncoding {
    /// The encoding a Content-Transfer-Encoding value names; `None` for one
    /// roost does not know (IMAP answers `[UNKNOWN-CTE]`).
    pub fn from_name(name: &[u8]) -> Option<TransferEncoding> {
        let name = name.trim_ascii().to_ascii_lowercase();
        match name.as_slice() {
            b"" | b"7bit" | b"8bit" | b"binary" => Some(TransferEncoding::Identity),
            b"base64" => Some(TransferEncoding::Base64),
            b"quoted-printable" => Some(TransferEncoding::QuotedPrintable),
            _ => None,
        }
    }

    pub fn decode(self, data: &[u8]) -> Vec<u8> {
        match self {
            TransferEncoding::Identity => data.to_vec(),
            TransferEncoding::Base64 => decode_base64(data),
            TransferEncoding::QuotedPrintable => decode_quoted_printable(data),
        }
    }
}

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// RFC 2045 6.8, skipping line breaks and anything else outside the
/// alphabet, and ending at the padding; a dangling sixth bit group is
/// dropped.
pub fn decode_base64(data: &[u8]) -> Vec<u8> {
    let end = data.iter().position(|&b| b == b'=').unwrap_or(data.len());
    let mut clean: Vec<u8> = data[..end]
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(&clean).unwrap_or_default()
}

/// RFC 2045 6.7: `=XX` octets, soft line breaks removed, whitespace at the
/// end of a line dropped.
pub fn decode_quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    // Whether the line before ended in a soft break (`=` at its end).
    let mut joined = true;
    for line in data.split(|&b| b == b'\n') {
        if !joined {
            out.extend_from_slice(b"\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let end = line
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |p| p + 1);
        let (line, soft) = match line[..end].strip_suffix(b"=") {
            Some(l) => (l, true),
            None => (&line[..end], false),
        };
        let mut j = 0;
        while j < line.len() {
            let pair = (
                line.get(j + 1).copied().and_then(hex),
                line.get(j + 2).copied().and_then(hex),
            );
            match (line[j], pair) {
                (b'=', (Some(h), Some(l))) => {
                    out.push(h << 4 | l);
                    j += 3;
                }
                (b, _) => {
                    out.push(b);
                    j += 1;
                }
            }
        }
        joined = soft;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lenient() {
        assert_eq!(decode_base64(b"aGVsbG8=\r\n"), b"hello");
        assert_eq!(decode_base64(b"aGVs\r\nbG8"), b"hello");
        assert_eq!(decode_base64(b"aGVsbG8=garbage!!"), b"hello");
        assert_eq!(decode_base64(b"a"), b"");
        assert_eq!(decode_base64(b""), b"");
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(decode_quoted_printable(b"caf=C3=A9"), "café".as_bytes());
        assert_eq!(
            decode_quoted_printable(b"soft=\r\nbreak\r\nnext"),
            b"softbreak\r\nnext"
        );
        assert_eq!(
            decode_quoted_printable(b"trailing  \r\nx"),
            b"trailing\r\nx"
        );
        assert_eq!(decode_quoted_printable(b"bad=ZZ and =4"), b"bad=ZZ and =4");
        assert_eq!(decode_quoted_printable(b"end="), b"end");
    }

    #[test]
    fn names() {
        assert_eq!(
            TransferEncoding::from_name(b" BASE64 "),
            Some(TransferEncoding::Base64)
        );
        assert_eq!(TransferEncoding::from_name(b"x-uuencode"), None);
    }
}
