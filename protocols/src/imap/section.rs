//! Where the section a FETCH names lies in a message (RFC 9051 6.4.5
//! `BODY[section]<partial>`): the whole message, its header or text,
//! chosen header fields, and MIME parts by number, through the bounded
//! walker of [`crate::message::mime`].
//!
//! Answers are byte ranges of the message wherever the section is a
//! contiguous run of it, so the session can stream them from the bytes it
//! already holds; only `HEADER.FIELDS[.NOT]` builds new bytes.

use super::command::{Section, SectionText};
use crate::message::header::header_end;
use crate::message::mime::MimeTree;
use crate::message::summary::{BodyStructure, PartKind};
use std::cell::OnceCell;
use std::collections::HashSet;
use std::ops::Range;

/// The bytes of a section: a range of the message, or bytes made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionData {
    Range(Range<usize>),
    Owned(Vec<u8>),
}

impl SectionData {
    pub fn len(&self) -> usize {
        match self {
            SectionData::Range(r) => r.len(),
            SectionData::Owned(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where a range starts in the message; 0 for built bytes.
    pub fn range_start(&self) -> usize {
        match self {
            SectionData::Range(r) => r.start,
            SectionData::Owned(_) => 0,
        }
    }

    /// The bytes, given the message the range refers to.
    pub fn bytes<'a>(&'a self, msg: &'a [u8]) -> &'a [u8] {
        match self {
            SectionData::Range(r) => &msg[r.clone()],
            SectionData::Owned(v) => v,
        }
    }

    /// Applies `<origin.length>` (RFC 9051 6.4.5): the bytes from `origin`
    /// on, at most `length` of them, clamped to what exists.
    pub fn partial(self, range: Option<(u32, u32)>) -> SectionData {
        let Some((origin, length)) = range else {
            return self;
        };
        let clamp = |len: usize| {
            let start = (origin as usize).min(len);
            start..start.saturating_add(length as usize).min(len)
        };
        match self {
            SectionData::Range(r) => {
                let cut = clamp(r.len());
                SectionData::Range(r.start + cut.start..r.start + cut.end)
            }
            SectionData::Owned(v) => SectionData::Owned(v[clamp(v.len())].to_vec()),
        }
    }
}

/// Where a section's bytes come from, found without building them: a
/// range of the message, or header fields to pick out of a header range
/// when they are about to be sent (so a FETCH of many such items holds one
/// built section at a time, not all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    Data(SectionData),
    Fields {
        header: Range<usize>,
        names: Vec<String>,
        keep: bool,
    },
}

impl Located {
    /// The section's bytes: picks the header fields out now if needed.
    pub fn build(self, msg: &[u8]) -> SectionData {
        match self {
            Located::Data(d) => d,
            Located::Fields {
                header,
                names,
                keep,
            } => SectionData::Owned(header_fields(&msg[header], &names, keep)),
        }
    }
}

/// Finds sections of one message; its MIME structure is walked at most
/// once, however many sections are asked for.
pub struct Sections<'a> {
    msg: &'a [u8],
    tree: OnceCell<MimeTree>,
}

impl<'a> Sections<'a> {
    pub fn new(msg: &'a [u8]) -> Sections<'a> {
        Sections {
            msg,
            tree: OnceCell::new(),
        }
    }

    /// Where `section` lies; `None` when the part does not exist or the
    /// specifier does not apply to it (the client then gets an empty
    /// string, RFC 9051 6.4.5). Walks the MIME structure only when a part
    /// number is given.
    pub fn locate(&self, section: &Section) -> Option<SectionData> {
        self.find(section).map(|l| l.build(self.msg))
    }

    /// Where `section` lies, as [`Sections::locate`], without building
    /// header fields yet.
    pub fn find(&self, section: &Section) -> Option<Located> {
        let msg = self.msg;
        if section.part.is_empty() {
            return entity_section(msg, 0..msg.len(), section.text.as_ref());
        }
        let tree = self.tree.get_or_init(|| MimeTree::parse(msg));
        let part = tree.part(tree.find(&section.part)?);
        match &section.text {
            // A numbered part alone is its body, without its MIME header.
            None => Some(Located::Data(SectionData::Range(part.body()))),
            Some(SectionText::Mime) => Some(Located::Data(SectionData::Range(part.header()))),
            // RFC 9051 6.4.5: HEADER, TEXT and HEADER.FIELDS after a part
            // number apply to the message inside a message/rfc822 part.
            Some(text) => {
                let inner = tree.part(part.message?);
                entity_section(msg, inner.range.clone(), Some(text))
            }
        }
    }
}

/// Where a numbered part's section lies, from the message's stored
/// [`BodyStructure`] instead of a walk of its bytes: the same answers as
/// [`Sections::find`], for a message whose file starts after `prefix`
/// bytes of header lines roost added (the structure's offsets are into the
/// file). `HEADER.FIELDS` answers name the header range to pick from.
pub fn locate_in_structure(
    body: &BodyStructure,
    prefix: usize,
    section: &Section,
) -> Option<Located> {
    if section.part.is_empty() {
        return None;
    }
    let at = |offset: u64| prefix + offset as usize;
    let id = body.find(&section.part)?;
    let part = body.part(id)?;
    // The root's header starts the message, prefix and all.
    let start = if id == BodyStructure::ROOT {
        0
    } else {
        at(part.start)
    };
    match &section.text {
        None => Some(Located::Data(SectionData::Range(
            at(part.body_start)..at(part.end),
        ))),
        Some(SectionText::Mime) => Some(Located::Data(SectionData::Range(
            start..at(part.body_start),
        ))),
        Some(text) => {
            let PartKind::Message { inner, .. } = &part.kind else {
                return None;
            };
            let inner = body.part(*inner)?;
            let header = at(inner.start)..at(inner.body_start);
            let fields = |names: &[String], keep| Located::Fields {
                header: header.clone(),
                names: names.to_vec(),
                keep,
            };
            Some(match text {
                SectionText::Header => Located::Data(SectionData::Range(header.clone())),
                SectionText::Text => {
                    Located::Data(SectionData::Range(at(inner.body_start)..at(inner.end)))
                }
                SectionText::HeaderFields(names) => fields(names, true),
                SectionText::HeaderFieldsNot(names) => fields(names, false),
                SectionText::Mime => return None,
            })
        }
    }
}

/// Where `section` of `msg` lies: [`Sections::locate`] for one section.
pub fn locate(msg: &[u8], section: &Section) -> Option<SectionData> {
    Sections::new(msg).locate(section)
}

/// A section of the message (or encapsulated message) at `range`.
fn entity_section(msg: &[u8], range: Range<usize>, text: Option<&SectionText>) -> Option<Located> {
    let body = range.start + header_end(&msg[range.clone()]);
    let header = range.start..body;
    let fields = |names: &[String], keep| Located::Fields {
        header: header.clone(),
        names: names.to_vec(),
        keep,
    };
    Some(match text {
        None => Located::Data(SectionData::Range(range)),
        Some(SectionText::Header) => Located::Data(SectionData::Range(header.clone())),
        Some(SectionText::Text) => Located::Data(SectionData::Range(body..range.end)),
        Some(SectionText::HeaderFields(names)) => fields(names, true),
        Some(SectionText::HeaderFieldsNot(names)) => fields(names, false),
        Some(SectionText::Mime) => return None,
    })
}

/// The header lines whose field names are (or are not) in `names`, each
/// with its continuation lines, followed by the blank line. Each line
/// costs one set lookup, however many names are asked for, so the work is
/// linear in the header.
fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let names: HashSet<Vec<u8>> = names
        .iter()
        .map(|n| n.as_bytes().to_ascii_lowercase())
        .collect();
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
            let listed = names.contains(&name.trim_ascii().to_ascii_lowercase());
            keeping = listed == keep;
        }
        if keeping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use crate::message::summary::Summary;

    #[test]
    fn the_stored_structure_locates_what_the_walk_does() {
        let file = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\
Content-Type: text/plain\r\n\r\none\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\nFrom: a@b\r\n\r\ninner body\r\n--B--\r\n";
        let prefix = b"Received: by roost\r\n";
        let mut msg = prefix.to_vec();
        msg.extend_from_slice(file);
        let structure = Summary::build(file).body;
        let walk = Sections::new(&msg);
        let texts = [
            None,
            Some(SectionText::Mime),
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::HeaderFields(vec!["subject".into()])),
            Some(SectionText::HeaderFieldsNot(vec!["subject".into()])),
        ];
        for part in [
            vec![1],
            vec![2],
            vec![2, 1],
            vec![3],
            vec![1, 1],
            vec![2, 2],
        ] {
            for text in &texts {
                let section = Section {
                    part: part.clone(),
                    text: text.clone(),
                };
                let stored = locate_in_structure(&structure, prefix.len(), &section)
                    .map(|l| l.build(&msg).bytes(&msg).to_vec());
                let walked = walk.locate(&section).map(|d| d.bytes(&msg).to_vec());
                assert_eq!(stored, walked, "{section:?}");
            }
        }
        // A message that is not multipart: part 1 is its body.
        let single = b"Subject: s\r\n\r\nbody";
        let mut msg = prefix.to_vec();
        msg.extend_from_slice(single);
        let structure = Summary::build(single).body;
        for text in [None, Some(SectionText::Mime)] {
            let section = Section {
                part: vec![1],
                text,
            };
            let stored = locate_in_structure(&structure, prefix.len(), &section)
                .map(|l| l.build(&msg).bytes(&msg).to_vec());
            let walked = Sections::new(&msg)
                .locate(&section)
                .map(|d| d.bytes(&msg).to_vec());
            assert_eq!(stored, walked, "{section:?}");
        }
    }

    use super::*;

    const SIMPLE: &[u8] = b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\nbody\r\n";
    const MULTI: &[u8] = b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\none\r\n--XX\r\nContent-Type: text/html\r\n\r\n<b>two</b>\r\n--XX--\r\n";

    fn get(msg: &[u8], part: Vec<u32>, text: Option<SectionText>) -> Option<Vec<u8>> {
        locate(msg, &Section { part, text }).map(|d| d.bytes(msg).to_vec())
    }

    #[test]
    fn whole_header_text() {
        assert_eq!(get(SIMPLE, vec![], None).unwrap(), SIMPLE);
        assert_eq!(
            get(SIMPLE, vec![], Some(SectionText::Header)).unwrap(),
            b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\n"
        );
        assert_eq!(
            get(SIMPLE, vec![], Some(SectionText::Text)).unwrap(),
            b"body\r\n"
        );
    }

    #[test]
    fn header_fields_keep_folding_and_end_blank() {
        let f = SectionText::HeaderFields(vec!["subject".into()]);
        assert_eq!(
            get(SIMPLE, vec![], Some(f)).unwrap(),
            b"Subject: hi\r\n there\r\n\r\n"
        );
        let n = SectionText::HeaderFieldsNot(vec!["SUBJECT".into()]);
        assert_eq!(
            get(SIMPLE, vec![], Some(n)).unwrap(),
            b"From: a@b\r\nTo: c@d\r\n\r\n"
        );
    }

    #[test]
    fn parts_by_number() {
        assert_eq!(get(SIMPLE, vec![1], None).unwrap(), b"body\r\n");
        assert_eq!(get(SIMPLE, vec![2], None), None);
        assert_eq!(get(SIMPLE, vec![1, 1], None), None);
        assert_eq!(get(MULTI, vec![1], None).unwrap(), b"one");
        assert_eq!(get(MULTI, vec![2], None).unwrap(), b"<b>two</b>");
        assert_eq!(
            get(MULTI, vec![1], Some(SectionText::Mime)).unwrap(),
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(get(MULTI, vec![3], None), None);
        // HEADER after a number needs a message/rfc822 part.
        assert_eq!(get(MULTI, vec![1], Some(SectionText::Header)), None);
    }

    /// RFC 9051 6.4.5's example structure, in small.
    const NESTED: &[u8] = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\npreamble\r\n--o\r\n\r\nplain one\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n--i\r\nContent-Type: text/html\r\n\r\ninner html\r\n--i--\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: leaf\r\n\r\nleaf body\r\n--o--\r\nepilogue\r\n";

    #[test]
    fn encapsulated_messages() {
        assert_eq!(get(NESTED, vec![1], None).unwrap(), b"plain one");
        assert_eq!(
            get(NESTED, vec![2], Some(SectionText::Header)).unwrap(),
            b"Subject: inner\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
        );
        assert_eq!(get(NESTED, vec![2, 1], None).unwrap(), b"inner plain");
        assert_eq!(get(NESTED, vec![2, 2], None).unwrap(), b"inner html");
        assert_eq!(get(NESTED, vec![2, 3], None), None);
        assert_eq!(
            get(NESTED, vec![3], Some(SectionText::Text)).unwrap(),
            b"leaf body"
        );
        assert_eq!(get(NESTED, vec![3, 1], None).unwrap(), b"leaf body");
        assert_eq!(get(NESTED, vec![3, 1, 1], None), None);
        assert_eq!(
            get(NESTED, vec![3], None).unwrap(),
            b"Subject: leaf\r\n\r\nleaf body"
        );
    }

    #[test]
    fn partial_clamps() {
        let r = |d: SectionData| d.bytes(b"abcdef").to_vec();
        assert_eq!(r(SectionData::Range(0..6).partial(Some((2, 3)))), b"cde");
        assert_eq!(r(SectionData::Range(1..6).partial(Some((3, 100)))), b"ef");
        assert_eq!(r(SectionData::Range(0..3).partial(Some((10, 1)))), b"");
        assert_eq!(
            SectionData::Owned(b"abc".to_vec()).partial(Some((1, 1))),
            SectionData::Owned(b"b".to_vec())
        );
    }
}
