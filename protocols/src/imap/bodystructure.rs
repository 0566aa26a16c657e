//! Writes a message [`Summary`]'s ENVELOPE, BODYSTRUCTURE and BODY
//! (RFC 9051 7.5.2, grammar in 9: envelope, body, body-type-1part,
//! body-type-mpart, body-ext-1part, body-ext-mpart).
//!
//! The structure is walked with an explicit stack, so a message nested to
//! the MIME walker's depth limit is written without recursion.

use super::response::{nstring, quoted_or_literal};
use crate::message::address::Address;
use crate::message::summary::{BodyPart, BodyStructure, Disposition, Envelope, PartKind};
use std::borrow::Cow;
use std::io::Write;

/// `(date subject from sender reply-to to cc bcc in-reply-to message-id)`.
pub fn write_envelope(out: &mut Vec<u8>, env: &Envelope) {
    out.push(b'(');
    nstr(out, env.date.as_deref());
    out.push(b' ');
    nstr(out, env.subject.as_deref());
    for list in [
        &env.from,
        &env.sender,
        &env.reply_to,
        &env.to,
        &env.cc,
        &env.bcc,
    ] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    nstr(out, env.in_reply_to.as_deref());
    out.push(b' ');
    nstr(out, env.message_id.as_deref());
    out.push(b')');
}

fn addresses(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        nstr(out, a.name.as_deref());
        out.push(b' ');
        nstr(out, a.adl.as_deref());
        out.push(b' ');
        nstr(out, a.mailbox.as_deref());
        out.push(b' ');
        nstr(out, a.host.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// What is left to write of a part whose inside is being written.
enum Step {
    Part(u32),
    /// A multipart's subparts are out: its subtype and extension data.
    EndMultipart(u32),
    /// A message part's inner body is out: its line count and extensions.
    EndMessage(u32),
}

/// BODYSTRUCTURE when `extended`, else the non-extensible BODY form.
pub fn write_body(out: &mut Vec<u8>, body: &BodyStructure, extended: bool) {
    let mut stack = vec![Step::Part(BodyStructure::ROOT)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Part(i) => {
                let Some(p) = body.part(i) else {
                    // A summary that names a part it lacks: write an
                    // empty one rather than nothing, so the syntax holds.
                    out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)");
                    continue;
                };
                match &p.kind {
                    PartKind::Multipart { children } if !children.is_empty() => {
                        out.push(b'(');
                        stack.push(Step::EndMultipart(i));
                        stack.extend(children.iter().rev().map(|&c| Step::Part(c)));
                    }
                    PartKind::Message {
                        envelope, inner, ..
                    } => {
                        out.push(b'(');
                        fields(out, p);
                        out.push(b' ');
                        write_envelope(out, envelope);
                        out.push(b' ');
                        stack.push(Step::EndMessage(i));
                        stack.push(Step::Part(*inner));
                    }
                    PartKind::Text { lines } => {
                        out.push(b'(');
                        fields(out, p);
                        let _ = write!(out, " {lines}");
                        if extended {
                            ext_1part(out, p);
                        }
                        out.push(b')');
                    }
                    // RFC 9051 9 body-type-msg: a MESSAGE/RFC822 part left
                    // unsplit (encoded, or past the walker's limits) still
                    // needs an envelope, a body and a line count.
                    PartKind::Basic
                        if p.media_type.eq_ignore_ascii_case(b"message")
                            && p.media_subtype.eq_ignore_ascii_case(b"rfc822") =>
                    {
                        out.push(b'(');
                        fields(out, p);
                        out.push(b' ');
                        write_envelope(out, &Envelope::default());
                        out.extend_from_slice(b" (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0) 0");
                        if extended {
                            ext_1part(out, p);
                        }
                        out.push(b')');
                    }
                    PartKind::Basic | PartKind::Multipart { .. } => {
                        out.push(b'(');
                        fields(out, p);
                        if extended {
                            ext_1part(out, p);
                        }
                        out.push(b')');
                    }
                }
            }
            Step::EndMultipart(i) => {
                let Some(p) = body.part(i) else { continue };
                out.push(b' ');
                upper(out, &p.media_subtype);
                if extended {
                    out.push(b' ');
                    params(out, &p.params);
                    ext_common(out, p);
                }
                out.push(b')');
            }
            Step::EndMessage(i) => {
                let Some(p) = body.part(i) else { continue };
                let lines = match p.kind {
                    PartKind::Message { lines, .. } => lines,
                    _ => 0,
                };
                let _ = write!(out, " {lines}");
                if extended {
                    ext_1part(out, p);
                }
                out.push(b')');
            }
        }
    }
}

/// body-type-1part's start: type, subtype and body-fields.
fn fields(out: &mut Vec<u8>, p: &BodyPart) {
    upper(out, &p.media_type);
    out.push(b' ');
    upper(out, &p.media_subtype);
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstr(out, p.id.as_deref());
    out.push(b' ');
    nstr(out, p.description.as_deref());
    out.push(b' ');
    upper(out, &p.encoding);
    let _ = write!(out, " {}", p.size);
}

/// body-ext-1part: md5, then what multiparts have too.
fn ext_1part(out: &mut Vec<u8>, p: &BodyPart) {
    out.push(b' ');
    nstr(out, p.md5.as_deref());
    ext_common(out, p);
}

/// Disposition, language and location.
fn ext_common(out: &mut Vec<u8>, p: &BodyPart) {
    out.push(b' ');
    disposition(out, p.disposition.as_ref());
    out.push(b' ');
    match p.language.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one),
        many => {
            out.push(b'(');
            for (i, l) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstr(out, p.location.as_deref());
}

fn disposition(out: &mut Vec<u8>, d: Option<&Disposition>) {
    let Some(d) = d else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    upper(out, &d.kind);
    out.push(b' ');
    params(out, &d.params);
    out.push(b')');
}

fn params(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        upper(out, name);
        out.push(b' ');
        string(out, value);
    }
    out.push(b')');
}

fn upper(out: &mut Vec<u8>, s: &[u8]) {
    string(out, &s.to_ascii_uppercase());
}

/// A string; NUL, which no IMAP string may hold, is dropped.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let s: Cow<'_, [u8]> = if s.contains(&0) {
        Cow::Owned(s.iter().copied().filter(|&b| b != 0).collect())
    } else {
        Cow::Borrowed(s)
    };
    quoted_or_literal(out, &s);
}

fn nstr(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => nstring(out, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::summary::Summary;

    fn body(msg: &[u8], extended: bool) -> String {
        let mut out = Vec::new();
        write_body(&mut out, &Summary::build(msg).body, extended);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc_example_shapes() {
        let msg = b"From: \"Fred\" <f@example.com>\r\nTo: a@b, Team: c@d;\r\n\
Subject: =?utf-8?q?hi?=\r\nDate: Wed, 17 Jul 1996 02:23:25 -0700\r\n\
Message-ID: <1@x>\r\n\r\nhello\r\n";
        let s = Summary::build(msg);
        let mut out = Vec::new();
        write_envelope(&mut out, &s.envelope);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700\" \"=?utf-8?q?hi?=\" \
((\"Fred\" NIL \"f\" \"example.com\")) ((\"Fred\" NIL \"f\" \"example.com\")) \
((\"Fred\" NIL \"f\" \"example.com\")) \
((NIL NIL \"a\" \"b\")(NIL NIL \"Team\" NIL)(NIL NIL \"c\" \"d\")(NIL NIL NIL NIL)) \
NIL NIL NIL \"<1@x>\")"
        );
        assert_eq!(
            body(msg, true),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 7 1 NIL NIL NIL NIL)"
        );
        assert_eq!(
            body(msg, false),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 7 1)"
        );
    }

    #[test]
    fn multipart_with_a_message_inside() {
        let msg = b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Language: en, de\r\n\r\nhi\r\n--B\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n--B--\r\n";
        assert_eq!(
            body(msg, true),
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 2 1 NIL NIL (\"en\" \"de\") NIL)\
(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 16 \
(NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) \
\"MIXED\" (\"BOUNDARY\" \"B\") NIL NIL NIL)"
        );
        assert_eq!(
            body(msg, false),
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 2 1)\
(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 16 \
(NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 1) 3) \"MIXED\")"
        );
    }

    #[test]
    fn an_encoded_message_part_keeps_the_message_form() {
        let msg = b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\
Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA==\r\n--B--\r\n";
        assert_eq!(
            body(msg, false),
            "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"BASE64\" 16 \
(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0) 0) \"MIXED\")"
        );
    }

    #[test]
    fn deep_nesting_writes_without_recursion() {
        let mut msg = Vec::new();
        for i in 0..5000 {
            msg.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        msg.extend_from_slice(b"\r\nleaf\r\n");
        let out = body(&msg, true);
        let opens = out.bytes().filter(|&b| b == b'(').count();
        let closes = out.bytes().filter(|&b| b == b')').count();
        assert_eq!(opens, closes);
    }
}
