//! The parsed summary of a message that IMAP's ENVELOPE, BODYSTRUCTURE
//! and BODY are written from (RFC 9051 7.5.2), computed once from the
//! message's bytes and stored beside it, and where each MIME part lies so
//! that a numbered part is read without walking the message again.
//!
//! The body structure is flat: parts in a list, children by index, the
//! way [`MimeTree`] keeps them, so neither building, storing nor writing
//! it recurses. Offsets are into the bytes the summary was built from
//! (the message file, without the header lines roost prepends at
//! delivery; those only lengthen the top-level header).

use super::address::{parse_address_list, Address};
use super::header::{fields, header_end};
use super::mime::{MimeTree, PartId};
use serde::{Deserialize, Serialize};

/// Parameters kept from one Content-Type or Content-Disposition field.
pub const MAX_PARAMS: usize = 100;
/// Languages kept from one Content-Language field.
pub const MAX_LANGUAGES: usize = 100;

/// RFC 9051 7.5.2 ENVELOPE: header values as written (unfolded, not
/// decoded).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

impl Envelope {
    /// The envelope of the header section `header`.
    pub fn from_header(header: &[u8]) -> Envelope {
        let mut env = Envelope::default();
        let mut sender_seen = false;
        let mut reply_to_seen = false;
        for f in fields(header) {
            let name = f.name.to_ascii_lowercase();
            let value = trim(&f.value);
            let text = || Some(value.to_vec());
            match name.as_slice() {
                b"date" if env.date.is_none() => env.date = text(),
                b"subject" if env.subject.is_none() => env.subject = text(),
                b"in-reply-to" if env.in_reply_to.is_none() => env.in_reply_to = text(),
                b"message-id" if env.message_id.is_none() => env.message_id = text(),
                b"from" if env.from.is_empty() => env.from = parse_address_list(value),
                b"sender" if !sender_seen => {
                    sender_seen = true;
                    env.sender = parse_address_list(value);
                }
                b"reply-to" if !reply_to_seen => {
                    reply_to_seen = true;
                    env.reply_to = parse_address_list(value);
                }
                b"to" if env.to.is_empty() => env.to = parse_address_list(value),
                b"cc" if env.cc.is_empty() => env.cc = parse_address_list(value),
                b"bcc" if env.bcc.is_empty() => env.bcc = parse_address_list(value),
                _ => {}
            }
        }
        // RFC 9051 7.5.2: absent or empty Sender and Reply-To are From.
        if env.sender.is_empty() {
            env.sender = env.from.clone();
        }
        if env.reply_to.is_empty() {
            env.reply_to = env.from.clone();
        }
        env
    }
}

/// RFC 2183 Content-Disposition: the type and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    pub kind: Vec<u8>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a part is, for BODYSTRUCTURE's three forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartKind {
    /// body-type-1part other than text and message: type, subtype, fields.
    Basic,
    /// body-type-text: adds the body's line count.
    Text { lines: u64 },
    /// body-type-msg: the encapsulated message's envelope and structure
    /// (the part at `inner`) and the line count.
    Message {
        envelope: Box<Envelope>,
        inner: u32,
        lines: u64,
    },
    /// body-type-mpart: the subparts, in order.
    Multipart { children: Vec<u32> },
}

/// One MIME entity of the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyPart {
    /// Lower-cased media type and subtype.
    pub media_type: Vec<u8>,
    pub media_subtype: Vec<u8>,
    /// Content-Type parameters, names lower-cased, in name order.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    /// The Content-Transfer-Encoding as written, `7BIT` when absent.
    pub encoding: Vec<u8>,
    /// Octets of the body, in its transfer encoding.
    pub size: u64,
    pub md5: Option<Vec<u8>>,
    pub disposition: Option<Disposition>,
    pub language: Vec<Vec<u8>>,
    pub location: Option<Vec<u8>>,
    pub kind: PartKind,
    /// Where the entity's header starts, its body starts and it ends.
    pub start: u64,
    pub body_start: u64,
    pub end: u64,
}

/// The flat body structure: `parts[0]` is the message itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyStructure {
    pub parts: Vec<BodyPart>,
}

impl BodyStructure {
    pub const ROOT: u32 = 0;

    pub fn part(&self, i: u32) -> Option<&BodyPart> {
        self.parts.get(i as usize)
    }

    /// RFC 9051 6.4.5 part numbering, as [`MimeTree::find`] does it.
    pub fn find(&self, path: &[u32]) -> Option<u32> {
        let mut cur = BodyStructure::ROOT;
        for (step, &n) in path.iter().enumerate() {
            let index = (n as usize).checked_sub(1)?;
            let container = if step == 0 {
                BodyStructure::ROOT
            } else {
                match &self.part(cur)?.kind {
                    PartKind::Multipart { .. } => cur,
                    PartKind::Message { inner, .. } => *inner,
                    _ => return None,
                }
            };
            cur = match &self.part(container)?.kind {
                PartKind::Multipart { children } => *children.get(index)?,
                _ if index == 0 && !(step > 0 && container == cur) => container,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// Everything FETCH needs that does not change once a message is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub envelope: Envelope,
    pub body: BodyStructure,
    /// RFC 8970: the message's preview text; absent from summaries made
    /// before roost kept previews (made again on first need).
    #[serde(default)]
    pub preview: Option<String>,
}

impl Summary {
    /// Reads `msg` (header and body). Never fails; malformed parts read as
    /// well as they can, bounded as [`MimeTree`] is.
    pub fn build(msg: &[u8]) -> Summary {
        let tree = MimeTree::parse(msg);
        let envelope = Envelope::from_header(&msg[..header_end(msg)]);
        // Parts are numbered in tree order, so indexes carry over.
        let parts = (0..tree.parts.len())
            .map(|id| body_part(msg, &tree, id))
            .collect();
        Summary {
            envelope,
            body: BodyStructure { parts },
            preview: Some(super::text::preview(msg)),
        }
    }
}

fn body_part(msg: &[u8], tree: &MimeTree, id: PartId) -> BodyPart {
    let p = tree.part(id);
    let header = &msg[p.header()];
    let body = &msg[p.body()];
    let mut part = BodyPart {
        media_type: p.media_type.clone().into_bytes(),
        media_subtype: p.media_subtype.clone().into_bytes(),
        params: Vec::new(),
        id: None,
        description: None,
        encoding: b"7BIT".to_vec(),
        size: body.len() as u64,
        md5: None,
        disposition: None,
        language: Vec::new(),
        location: None,
        kind: PartKind::Basic,
        start: p.range.start as u64,
        body_start: p.body_start as u64,
        end: p.range.end as u64,
    };
    let mut typed = false;
    for f in fields(header) {
        let name = f.name.to_ascii_lowercase();
        let value = trim(&f.value);
        let text = || Some(value.to_vec());
        match name.as_slice() {
            b"content-type" if !typed => {
                typed = true;
                part.params = params_of(value);
            }
            b"content-id" if part.id.is_none() => part.id = text(),
            b"content-description" if part.description.is_none() => part.description = text(),
            b"content-transfer-encoding" if !value.is_empty() => part.encoding = value.to_vec(),
            b"content-md5" if part.md5.is_none() => part.md5 = text(),
            b"content-location" if part.location.is_none() => part.location = text(),
            b"content-language" if part.language.is_empty() => {
                part.language = value
                    .split(|&b| b == b',')
                    .map(trim)
                    .filter(|l| !l.is_empty())
                    .take(MAX_LANGUAGES)
                    .map(<[u8]>::to_vec)
                    .collect();
            }
            b"content-disposition" if part.disposition.is_none() => {
                part.disposition = disposition_of(value);
            }
            _ => {}
        }
    }
    // RFC 2045 5.2: a text part without a charset is US-ASCII.
    if p.media_type == "text" && !part.params.iter().any(|(n, _)| n == b"charset") {
        part.params
            .insert(0, (b"charset".to_vec(), b"us-ascii".to_vec()));
    }
    part.kind = if p.is_multipart() && !p.opaque {
        PartKind::Multipart {
            children: p.children.iter().map(|&c| c as u32).collect(),
        }
    } else if let Some(inner) = p.message {
        let inner_part = tree.part(inner);
        let inner_header = &msg[inner_part.header()];
        PartKind::Message {
            envelope: Box::new(Envelope::from_header(inner_header)),
            inner: inner as u32,
            lines: count_lines(body),
        }
    } else if p.media_type == "text" {
        PartKind::Text {
            lines: count_lines(body),
        }
    } else {
        PartKind::Basic
    };
    part
}

/// RFC 9051 7.5.2 body-fld-lines: the lines of the body as it is sent.
fn count_lines(body: &[u8]) -> u64 {
    let lfs = body.iter().filter(|&&b| b == b'\n').count() as u64;
    lfs + u64::from(!body.is_empty() && !body.ends_with(b"\n"))
}

/// The parameters of a Content-Type or Content-Disposition value, through
/// mailparse (which joins RFC 2231 continuations and decodes them).
fn params_of(value: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let text = String::from_utf8_lossy(value);
    let parsed = mailparse::parse_content_type(&text);
    parsed
        .params
        .into_iter()
        .take(MAX_PARAMS)
        .map(|(k, v)| (k.to_ascii_lowercase().into_bytes(), v.into_bytes()))
        .collect()
}

fn disposition_of(value: &[u8]) -> Option<Disposition> {
    let kind_end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    let kind = trim(&value[..kind_end]);
    if kind.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(value);
    let parsed = mailparse::parse_content_disposition(&text);
    Some(Disposition {
        kind: kind.to_vec(),
        params: parsed
            .params
            .into_iter()
            .take(MAX_PARAMS)
            .map(|(k, v)| (k.to_ascii_lowercase().into_bytes(), v.into_bytes()))
            .collect(),
    })
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &[u8] = b"From: Alice <a@x>\r\nTo: b@y\r\nSubject: hi\r\n\
Content-Type: multipart/mixed; boundary=B\r\n\r\npreamble\r\n--B\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nline1\r\nline2\r\n--B\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: c@z\r\n\r\nin\r\n--B\r\n\
Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"p.png\"\r\n\r\niVBO\r\n--B--\r\n";

    #[test]
    fn envelope_defaults_sender_and_reply_to() {
        let s = Summary::build(MIXED);
        assert_eq!(s.envelope.subject.as_deref(), Some(&b"hi"[..]));
        assert_eq!(s.envelope.from.len(), 1);
        assert_eq!(s.envelope.sender, s.envelope.from);
        assert_eq!(s.envelope.reply_to, s.envelope.from);
        assert_eq!(s.envelope.date, None);
        let env = Envelope::from_header(b"From: a@b\r\nSender:\r\nReply-To: r@s\r\n\r\n");
        assert_eq!(env.sender, env.from);
        assert_eq!(env.reply_to[0].mailbox.as_deref(), Some(&b"r"[..]));
    }

    #[test]
    fn structure_of_a_mixed_message() {
        let s = Summary::build(MIXED);
        let b = &s.body;
        let PartKind::Multipart { children } = &b.parts[0].kind else {
            panic!("root is not multipart: {:?}", b.parts[0].kind);
        };
        assert_eq!(children.len(), 3);
        let text = &b.parts[children[0] as usize];
        assert_eq!(text.kind, PartKind::Text { lines: 2 });
        assert_eq!(text.size, 12);
        assert_eq!(text.params, vec![(b"charset".to_vec(), b"utf-8".to_vec())]);
        let msg = &b.parts[children[1] as usize];
        let PartKind::Message {
            envelope, inner, ..
        } = &msg.kind
        else {
            panic!("not a message part");
        };
        assert_eq!(envelope.subject.as_deref(), Some(&b"inner"[..]));
        assert_eq!(b.find(&[2, 1]), Some(*inner));
        let png = &b.parts[children[2] as usize];
        assert_eq!(png.encoding, b"base64");
        assert_eq!(png.disposition.as_ref().unwrap().kind, b"attachment");
        assert_eq!(
            png.disposition.as_ref().unwrap().params,
            vec![(b"filename".to_vec(), b"p.png".to_vec())]
        );
        assert_eq!(&MIXED[png.body_start as usize..png.end as usize], b"iVBO");
        assert_eq!(b.find(&[3]), Some(children[2]));
        assert_eq!(b.find(&[4]), None);
    }

    #[test]
    fn single_part_defaults() {
        let s = Summary::build(b"Subject: x\r\n\r\nbody\r\nmore");
        let root = &s.body.parts[0];
        assert_eq!(root.kind, PartKind::Text { lines: 2 });
        assert_eq!(
            root.params,
            vec![(b"charset".to_vec(), b"us-ascii".to_vec())]
        );
        assert_eq!(root.encoding, b"7BIT");
        assert_eq!(s.body.find(&[1]), Some(0));
        assert_eq!(s.body.find(&[1, 1]), None);
    }

    #[test]
    fn param_limit_edge() {
        let ct = |n: usize| {
            let mut v = b"Content-Type: application/x".to_vec();
            for i in 0..n {
                v.extend_from_slice(format!("; p{i}=v").as_bytes());
            }
            v.extend_from_slice(b"\r\n\r\nbody");
            v
        };
        assert_eq!(
            Summary::build(&ct(MAX_PARAMS)).body.parts[0].params.len(),
            MAX_PARAMS
        );
        assert_eq!(
            Summary::build(&ct(MAX_PARAMS + 1)).body.parts[0]
                .params
                .len(),
            MAX_PARAMS
        );
    }
}
