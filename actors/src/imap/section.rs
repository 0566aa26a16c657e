//! Cutting a message into the sections FETCH asks for (RFC 9051 6.4.5
//! BODY[section]<partial>): the whole message, its header, its text, chosen
//! header fields, and MIME parts by number.

use mailparse::{parse_mail, ParsedMail};
use roost_protocols::imap::command::{Section, SectionText};
use roost_protocols::message::header::header_end;

/// The bytes of `section` of `msg`; `None` when the part does not exist
/// (the client then gets an empty string, RFC 9051 6.4.5).
pub fn section_bytes(msg: &[u8], section: &Section) -> Option<Vec<u8>> {
    let part = if section.part.is_empty() {
        msg.to_vec()
    } else {
        find_part(msg, &section.part)?
    };
    let entity: &[u8] = &part;
    let end = header_end(entity);
    Some(match &section.text {
        None if section.part.is_empty() => part,
        // A numbered part alone is its body, without its MIME header.
        None => entity[end..].to_vec(),
        Some(SectionText::Mime) | Some(SectionText::Header) => entity[..end].to_vec(),
        Some(SectionText::Text) => entity[end..].to_vec(),
        Some(SectionText::HeaderFields(names)) => header_fields(&entity[..end], names, true),
        Some(SectionText::HeaderFieldsNot(names)) => header_fields(&entity[..end], names, false),
    })
}

/// The raw bytes (header and body) of a numbered MIME part.
fn find_part(msg: &[u8], path: &[u32]) -> Option<Vec<u8>> {
    let parsed = parse_mail(msg).ok()?;
    let mut cur: &ParsedMail = &parsed;
    for (depth, &n) in path.iter().enumerate() {
        let n = n.checked_sub(1)? as usize;
        if cur.subparts.is_empty() {
            // RFC 9051 6.4.5: a non-multipart entity has one part, itself.
            if n != 0 || depth + 1 != path.len() {
                return None;
            }
            return Some(cur.raw_bytes.to_vec());
        }
        cur = cur.subparts.get(n)?;
    }
    Some(cur.raw_bytes.to_vec())
}

/// The header lines whose field names are (or are not) in `names`, each
/// with its continuation lines, followed by the blank line.
fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keeping = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|i| &line[..i])
                .unwrap_or(b"");
            let listed = names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name.trim_ascii()));
            keeping = listed == keep;
        }
        if keeping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Applies `<origin.length>` (RFC 9051 6.4.5).
pub fn partial(data: Vec<u8>, range: Option<(u32, u32)>) -> Vec<u8> {
    match range {
        None => data,
        Some((origin, len)) => {
            let start = (origin as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            data[start..end].to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: &[u8] = b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\nbody\r\n";
    const MULTI: &[u8] = b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\none\r\n--XX\r\nContent-Type: text/html\r\n\r\n<b>two</b>\r\n--XX--\r\n";

    fn sec(part: Vec<u32>, text: Option<SectionText>) -> Section {
        Section { part, text }
    }

    #[test]
    fn whole_header_text() {
        assert_eq!(section_bytes(SIMPLE, &sec(vec![], None)).unwrap(), SIMPLE);
        assert_eq!(
            section_bytes(SIMPLE, &sec(vec![], Some(SectionText::Header))).unwrap(),
            b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\n"
        );
        assert_eq!(
            section_bytes(SIMPLE, &sec(vec![], Some(SectionText::Text))).unwrap(),
            b"body\r\n"
        );
    }

    #[test]
    fn header_fields_keep_folding_and_end_blank() {
        let f = SectionText::HeaderFields(vec!["subject".into()]);
        assert_eq!(
            section_bytes(SIMPLE, &sec(vec![], Some(f))).unwrap(),
            b"Subject: hi\r\n there\r\n\r\n"
        );
        let n = SectionText::HeaderFieldsNot(vec!["SUBJECT".into()]);
        assert_eq!(
            section_bytes(SIMPLE, &sec(vec![], Some(n))).unwrap(),
            b"From: a@b\r\nTo: c@d\r\n\r\n"
        );
    }

    #[test]
    fn parts_by_number() {
        assert_eq!(
            section_bytes(SIMPLE, &sec(vec![1], None)).unwrap(),
            b"body\r\n"
        );
        assert_eq!(section_bytes(SIMPLE, &sec(vec![2], None)), None);
        assert_eq!(
            section_bytes(MULTI, &sec(vec![2], None)).unwrap(),
            b"<b>two</b>"
        );
        assert_eq!(
            section_bytes(MULTI, &sec(vec![1], Some(SectionText::Mime))).unwrap(),
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(section_bytes(MULTI, &sec(vec![3], None)), None);
    }

    #[test]
    fn partial_clamps() {
        assert_eq!(partial(b"abcdef".to_vec(), Some((2, 3))), b"cde");
        assert_eq!(partial(b"abcdef".to_vec(), Some((4, 100))), b"ef");
        assert_eq!(partial(b"abc".to_vec(), Some((10, 1))), b"");
    }
}
