//! The header section of an RFC 5322 message: where it ends and what a
//! named field says. Garbage in gives `None` or an empty answer, never a
//! panic; a line without a colon is skipped rather than ending the header.
//!
//! Reading is bounded whatever the message holds: only the first
//! [`MAX_HEADER_SIZE`] bytes of a header section and its first
//! [`MAX_HEADER_FIELDS`] fields are read; the rest is still stored and
//! served, just not interpreted.

/// How much of a header section is read for fields. RFC 5322 sets no
/// limit; real headers are a few KiB, and mail with hundreds of Received
/// lines stays far below this.
pub const MAX_HEADER_SIZE: usize = 256 * 1024;
/// How many fields of one header section are read.
pub const MAX_HEADER_FIELDS: usize = 2000;

/// Offset where the body starts: just past the first empty line (RFC 5322
/// 2.1), whether it ends in CRLF or a bare LF. A message with no empty line
/// is all header, and the answer is its length.
pub fn header_end(msg: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(lf) = msg[pos..].iter().position(|&b| b == b'\n') {
        let line = &msg[pos..pos + lf];
        pos += lf + 1;
        if line.is_empty() || line == b"\r" {
            return pos;
        }
    }
    msg.len()
}

/// The part of a header section that is read: the lines whose LF lies
/// within the first [`MAX_HEADER_SIZE`] bytes.
pub fn readable(header: &[u8]) -> &[u8] {
    match header.get(..MAX_HEADER_SIZE) {
        Some(head) if header.len() > MAX_HEADER_SIZE => {
            let keep = head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            &header[..keep]
        }
        _ => header,
    }
}

/// One header field: its name and its value unfolded (RFC 5322 2.2.3: the
/// CRLF before each continuation's whitespace removed), still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawField<'a> {
    pub name: &'a [u8],
    pub value: Vec<u8>,
}

/// The fields of a header section, in order. Stops at the first empty line,
/// so a whole message may be passed.
pub fn fields(header: &[u8]) -> Vec<RawField<'_>> {
    let header = readable(header);
    let mut out: Vec<RawField<'_>> = Vec::new();
    // Whether continuation lines belong to the last field in `out`.
    let mut continuing = false;
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let (true, Some(last)) = (continuing, out.last_mut()) {
                last.value.extend_from_slice(line);
            }
            continue;
        }
        continuing = false;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        // RFC 5322 4.5.3 (obsolete syntax): whitespace before the colon.
        let name = trim_wsp_end(&line[..colon]);
        if name.is_empty() {
            continue;
        }
        if out.len() == MAX_HEADER_FIELDS {
            break;
        }
        out.push(RawField {
            name,
            value: line[colon + 1..].to_vec(),
        });
        continuing = true;
    }
    out
}

fn trim_wsp_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// The raw (unfolded, undecoded) value of the first field called `name`
/// (case-insensitive), trimmed, as lossy UTF-8.
pub fn raw_header_value(header: &[u8], name: &str) -> Option<String> {
    fields(header)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| String::from_utf8_lossy(&f.value).trim().to_string())
}

/// The value of the first field called `name` (case-insensitive),
/// unfolded, with RFC 2047 encoded-words decoded, trimmed. Raw bytes that
/// are not UTF-8 are read as Latin-1 (mailparse's rule).
pub fn header_value(header: &[u8], name: &str) -> Option<String> {
    let field = fields(header)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))?;
    Some(decode_value(&field.value))
}

/// RFC 2047 decoding of one unfolded value, through mailparse.
pub(crate) fn decode_value(raw: &[u8]) -> String {
    let mut line = b"X: ".to_vec();
    line.extend(
        raw.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    match mailparse::parse_header(&line) {
        Ok((h, _)) => h.get_value().trim().to_string(),
        Err(_) => String::from_utf8_lossy(raw).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_finds_the_blank_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: b\n\nbody"), 6);
        assert_eq!(header_end(b"A: b\n\r\nbody"), 7);
        assert_eq!(header_end(b"\r\nbody"), 2);
        assert_eq!(header_end(b"A: b\r\nC: d\r\n"), 12);
        assert_eq!(header_end(b"A: b"), 4);
        assert_eq!(header_end(b""), 0);
        assert_eq!(header_end(b"A: b\r\n\r\n"), 8);
    }

    #[test]
    fn values_unfolded_and_decoded() {
        let h = b"From: a@b\r\nSubject: =?ISO-8859-1?Q?Caf=E9?=\r\n  au lait\r\nX-Empty:\r\n\r\nSubject: body";
        assert_eq!(
            header_value(h, "subject").as_deref(),
            Some("Caf\u{e9}  au lait")
        );
        assert_eq!(header_value(h, "FROM").as_deref(), Some("a@b"));
        assert_eq!(header_value(h, "x-empty").as_deref(), Some(""));
        assert_eq!(header_value(h, "To"), None);
        assert_eq!(
            raw_header_value(h, "Subject").as_deref(),
            Some("=?ISO-8859-1?Q?Caf=E9?=  au lait")
        );
    }

    #[test]
    fn first_field_wins_and_garbage_lines_are_skipped() {
        let h = b"no colon here\r\n  stray continuation\r\nSubject : one\r\nSubject: two\r\n";
        assert_eq!(header_value(h, "Subject").as_deref(), Some("one"));
        assert_eq!(fields(h).len(), 2);
        assert_eq!(header_value(b": nameless\r\n", ""), None);
    }

    #[test]
    fn field_count_limit_edge() {
        let header = |n: usize| -> Vec<u8> {
            let mut h = Vec::new();
            for i in 0..n {
                h.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            h.extend_from_slice(b"Subject: last\r\n\r\n");
            h
        };
        let at = header(MAX_HEADER_FIELDS - 1);
        assert_eq!(fields(&at).len(), MAX_HEADER_FIELDS);
        assert_eq!(header_value(&at, "subject").as_deref(), Some("last"));
        let past = header(MAX_HEADER_FIELDS);
        assert_eq!(fields(&past).len(), MAX_HEADER_FIELDS);
        assert_eq!(header_value(&past, "subject"), None);
    }

    #[test]
    fn header_size_limit_edge() {
        let header = |pad: usize| -> Vec<u8> {
            let mut h = b"X-Pad: ".to_vec();
            h.resize(7 + pad, b'p');
            h.extend_from_slice(b"\r\nSubject: s\r\n\r\n");
            h
        };
        // "Subject: s\r\n" ends exactly at the limit.
        let at = header(MAX_HEADER_SIZE - 7 - 2 - 12);
        assert_eq!(header_value(&at, "subject").as_deref(), Some("s"));
        let past = header(MAX_HEADER_SIZE - 7 - 2 - 11);
        assert_eq!(header_value(&past, "subject"), None);
    }

    #[test]
    fn utf8_and_latin1_raw_values() {
        assert_eq!(
            header_value("Subject: Grüße\r\n".as_bytes(), "subject").as_deref(),
            Some("Grüße")
        );
        assert_eq!(
            header_value(b"Subject: caf\xe9\r\n", "subject").as_deref(),
            Some("caf\u{e9}")
        );
    }
}
