//! Composing a message from parts (the web API's Send): an RFC 5322
//! header with RFC 2047 encoded words where text is not ASCII, and an RFC
//! 2045/2046 body: text/plain, text/html as its alternative, attachments
//! in multipart/mixed. Text is quoted-printable and attachments base64,
//! so the message is 7-bit and no boundary can occur inside a part.

use base64::Engine as _;

/// One attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// `type/subtype`; `application/octet-stream` when empty.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// What a message is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub from: String,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// `X-Roost-Extra-<key>` fields (submission takes them out and keeps
    /// them as the message's extra data).
    pub extra: Vec<(String, String)>,
    /// Further header fields (name, one-line ASCII value), as they are.
    pub headers: Vec<(String, String)>,
    /// With attachments: a multipart/report of this report type (RFC
    /// 6522) instead of multipart/mixed.
    pub report_type: Option<String>,
    /// RFC 5322 date-time.
    pub date: String,
    /// Without angle brackets.
    pub message_id: String,
}

/// The longest header field value taken (a subject, a name).
pub const MAX_FIELD: usize = 998;
/// Attachments per message, at most.
pub const MAX_ATTACHMENTS: usize = 100;
/// Recipients (To and Cc together), at most.
pub const MAX_RECIPIENTS: usize = 1000;
/// The longest address (RFC 5321 4.5.3.1.3: a path of 256 with its
/// brackets).
pub const MAX_ADDRESS: usize = 254;
/// The longest attachment filename, in bytes.
pub const MAX_FILENAME: usize = 255;
/// The longest content type (RFC 6838 4.2: 127 for each name).
pub const MAX_CONTENT_TYPE: usize = 255;
/// The longest header line (RFC 5322 2.1.1).
const MAX_LINE: usize = 998;

/// The message's bytes, or what is wrong with the draft.
pub fn compose(d: &Draft) -> Result<Vec<u8>, String> {
    check(d)?;
    let mut out = String::new();
    let from = match &d.from_name {
        Some(n) if !n.is_empty() => format!("{} <{}>", phrase(n), d.from),
        _ => d.from.clone(),
    };
    field(&mut out, "From", &from);
    if !d.to.is_empty() {
        field(&mut out, "To", &d.to.join(", "));
    }
    if !d.cc.is_empty() {
        field(&mut out, "Cc", &d.cc.join(", "));
    }
    field(&mut out, "Subject", &encoded_words(&d.subject));
    field(&mut out, "Date", &d.date);
    field(&mut out, "Message-ID", &format!("<{}>", d.message_id));
    for (k, v) in &d.extra {
        field(&mut out, &format!("X-Roost-Extra-{k}"), v);
    }
    for (k, v) in &d.headers {
        field(&mut out, k, v);
    }
    field(&mut out, "MIME-Version", "1.0");
    let seed = d.message_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    // "=_" never occurs in quoted-printable or base64 text.
    let boundary = |n: u32| format!("=_roost_{seed:016x}_{n}");
    let body = match (&d.text, &d.html) {
        (Some(t), Some(h)) => multipart(
            "alternative",
            &boundary(1),
            &[text_part("plain", t), text_part("html", h)],
        ),
        (None, Some(h)) => text_part("html", h),
        (Some(t), None) => text_part("plain", t),
        (None, None) => text_part("plain", ""),
    };
    let body = if d.attachments.is_empty() {
        body
    } else {
        let mut parts = vec![body];
        parts.extend(d.attachments.iter().map(attachment_part));
        match &d.report_type {
            Some(t) => multipart(
                &format!("report; report-type=\"{t}\""),
                &boundary(0),
                &parts,
            ),
            None => multipart("mixed", &boundary(0), &parts),
        }
    };
    out.push_str(&body);
    Ok(out.into_bytes())
}

/// Whether `a` is an address roost puts into a header or an SMTP
/// command: `local@domain`, at most [`MAX_ADDRESS`] bytes, without white
/// space, controls or the characters that end or separate addresses.
pub fn is_address(a: &str) -> bool {
    a.len() <= MAX_ADDRESS
        && a.split_once('@')
            .is_some_and(|(l, dom)| !l.is_empty() && !dom.is_empty())
        && !a.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}

fn check(d: &Draft) -> Result<(), String> {
    for a in std::iter::once(&d.from).chain(&d.to).chain(&d.cc) {
        if !is_address(a) {
            return Err(format!("{a:?} is not an address"));
        }
    }
    if d.to.len() + d.cc.len() > MAX_RECIPIENTS {
        return Err(format!("at most {MAX_RECIPIENTS} recipients"));
    }
    if d.attachments.len() > MAX_ATTACHMENTS {
        return Err(format!("at most {MAX_ATTACHMENTS} attachments"));
    }
    // RFC 5322 2.2: visible characters and spaces (and tabs) only.
    let one_line =
        |s: &str| s.len() <= MAX_FIELD && !s.chars().any(|c| c.is_control() && c != '\t');
    let texts = [d.subject.as_str(), d.from_name.as_deref().unwrap_or("")];
    if !texts.iter().all(|t| one_line(t)) {
        return Err(format!(
            "the subject and the name are one line of at most {MAX_FIELD} bytes"
        ));
    }
    for (k, v) in &d.extra {
        let key_ok = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let fits = "X-Roost-Extra-: ".len() + k.len() + v.len() <= MAX_LINE;
        if !key_ok || !fits || !one_line(v) || !v.is_ascii() {
            return Err(format!(
                "extra data {k:?}: a key of letters, digits, - and _, an ASCII one-line value, \
                 within one header line"
            ));
        }
    }
    for (k, v) in &d.headers {
        let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !name_ok || !one_line(v) || !v.is_ascii() || k.len() + 2 + v.len() > MAX_LINE {
            return Err(format!(
                "header field {k:?}: a name and a one-line ASCII value"
            ));
        }
    }
    if let Some(t) = &d.report_type {
        if t.is_empty()
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            return Err(format!("{t:?} is not a report type"));
        }
    }
    for a in &d.attachments {
        if !one_line(&a.filename) || a.filename.len() > MAX_FILENAME {
            return Err(format!(
                "an attachment's filename is one line of at most {MAX_FILENAME} bytes"
            ));
        }
        let t = &a.content_type;
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        let well_formed = t.len() <= MAX_CONTENT_TYPE
            && t.split_once('/').is_some_and(|(a, b)| token(a) && token(b));
        if !t.is_empty() && !well_formed {
            return Err(format!("{t:?} is not a content type (type/subtype)"));
        }
        // RFC 2045 6.4: composite types are never base64.
        let top = t.split('/').next().unwrap_or("").to_ascii_lowercase();
        if top == "multipart" || top == "message" {
            return Err(format!("{t:?}: an attachment cannot be a composite type"));
        }
    }
    Ok(())
}

/// A header field, folded before 78 columns where it has spaces (RFC
/// 5322 2.2.3).
fn field(out: &mut String, name: &str, value: &str) {
    let mut line = format!("{name}:");
    let mut width = line.len();
    for word in value.split(' ') {
        if width + 1 + word.len() > 78 && width > name.len() + 1 {
            line.push_str("\r\n");
            width = 0;
        }
        line.push(' ');
        line.push_str(word);
        width += 1 + word.len();
    }
    out.push_str(&line);
    out.push_str("\r\n");
}

/// A display name: as it is when it is plain ASCII words, quoted when it
/// has specials, RFC 2047 encoded when it is not ASCII.
fn phrase(name: &str) -> String {
    if !name.is_ascii() || name.split(' ').any(|w| w.len() > 76) {
        return encoded_words(name);
    }
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" !#$%&'*+-/=?^_`{|}~".contains(&b))
    {
        return name.to_string();
    }
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// RFC 2047 B encoded words for text that is not ASCII (or has a word
/// too long to fold), each at most 75 characters and never splitting a
/// character; other ASCII text as it is.
pub fn encoded_words(text: &str) -> String {
    if text.is_ascii() && text.split(' ').all(|w| w.len() <= 76) {
        return text.to_string();
    }
    // "=?utf-8?b?" + "?=" is 12; 63 characters of base64 carry 45 bytes
    // at most, keeping each word within 75.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn text_part(subtype: &str, text: &str) -> String {
    format!(
        "Content-Type: text/{subtype}; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n{}",
        quoted_printable(text)
    )
}

fn attachment_part(a: &Attachment) -> String {
    let content_type = if a.content_type.is_empty() {
        "application/octet-stream"
    } else {
        &a.content_type
    };
    let filename = if a.filename.is_ascii() && !a.filename.contains(['"', '\\']) {
        format!("filename=\"{}\"", a.filename)
    } else {
        // RFC 2231 4: charset, no language, percent-encoded.
        let encoded: String = a
            .filename
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("filename*=utf-8''{encoded}")
    };
    let data = base64::engine::general_purpose::STANDARD.encode(&a.data);
    let mut lines = String::with_capacity(data.len() + data.len() / 76 * 2 + 2);
    for chunk in data.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        lines.push_str("\r\n");
    }
    format!(
        "Content-Type: {content_type}\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; {filename}\r\n\r\n{lines}"
    )
}

fn multipart(subtype: &str, boundary: &str, parts: &[String]) -> String {
    let mut out = format!("Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n");
    // The line break before a delimiter belongs to the delimiter (RFC
    // 2046 5.1.1): one more keeps a part's own last line break.
    for p in parts {
        out.push_str(&format!("--{boundary}\r\n{p}\r\n"));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// RFC 2045 6.7 quoted-printable of text: its lines end in CRLF (hard
/// breaks; text that does not end with a line break gets one), lines longer than 76 are broken softly, `=` and bytes outside
/// printable ASCII are encoded, as is white space at a line's end.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalized.split('\n').peekable();
    while let Some(line) = lines.next() {
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let len = if plain { 1 } else { 3 };
            // A soft break leaves room for the "=".
            if width + len > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            if plain {
                out.push(b as char);
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            width += len;
        }
        if lines.peek().is_some() || !line.is_empty() {
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::decode::decode_quoted_printable;

    fn draft() -> Draft {
        Draft {
            from: "alice@example.org".into(),
            to: vec!["bob@example.net".into()],
            subject: "Hello".into(),
            text: Some("Hi Bob\n".into()),
            date: "Tue, 1 Dec 2026 10:00:00 +0000".into(),
            message_id: "m1@example.org".into(),
            ..Draft::default()
        }
    }

    #[test]
    fn a_plain_text_message() {
        let m = String::from_utf8(compose(&draft()).unwrap()).unwrap();
        assert_eq!(
            m,
            "From: alice@example.org\r\n\
             To: bob@example.net\r\n\
             Subject: Hello\r\n\
             Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n\
             Message-ID: <m1@example.org>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             \r\n\
             Hi Bob\r\n"
        );
    }

    #[test]
    fn alternatives_attachments_and_encoded_words() {
        let mut d = draft();
        d.from_name = Some("Ålice A.".into());
        d.subject = "Grüße".into();
        d.html = Some("<p>Hi</p>".into());
        d.attachments = vec![Attachment {
            filename: "résumé.pdf".into(),
            content_type: "application/pdf".into(),
            data: vec![0, 1, 2, 255],
        }];
        d.extra = vec![("campaign".into(), "c1".into())];
        let m = String::from_utf8(compose(&d).unwrap()).unwrap();
        assert!(
            m.starts_with("From: =?utf-8?b?w4VsaWNlIEEu?= <alice@example.org>\r\n"),
            "{m}"
        );
        assert!(
            m.contains("\r\nSubject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"),
            "{m}"
        );
        assert!(m.contains("\r\nX-Roost-Extra-campaign: c1\r\n"), "{m}");
        let tree = crate::message::mime::MimeTree::parse(m.as_bytes());
        let types: Vec<String> = [&[][..], &[1], &[1, 1], &[1, 2], &[2]]
            .iter()
            .map(|path| {
                let p = tree.part(tree.find(path).unwrap());
                format!("{}/{}", p.media_type, p.media_subtype)
            })
            .collect();
        assert_eq!(
            types,
            [
                "multipart/mixed",
                "multipart/alternative",
                "text/plain",
                "text/html",
                "application/pdf"
            ]
        );
        assert!(m.contains("Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\r\nAAEC/w==\r\n"), "{m}");
    }

    /// Quoted-printable round trips through roost's own decoder; lines
    /// stay within 76 characters; trailing white space is encoded.
    #[test]
    fn quoted_printable_round_trips_within_76_columns() {
        let text = format!("{}\nline = two \nÄ\ttab\n", "x".repeat(200));
        let qp = quoted_printable(&text);
        assert!(qp.split("\r\n").all(|l| l.len() <= 76), "{qp}");
        assert!(qp.contains("line =3D two=20\r\n"), "{qp}");
        assert_eq!(
            decode_quoted_printable(qp.as_bytes()),
            text.replace('\n', "\r\n").into_bytes()
        );
    }

    #[test]
    fn encoded_words_stay_within_75_and_keep_characters_whole() {
        let long = "ü".repeat(100);
        let words = encoded_words(&long);
        assert!(words.split(' ').all(|w| w.len() <= 75), "{words}");
        let decoded: String = words
            .split(' ')
            .map(|w| {
                let b64 = w.trim_start_matches("=?utf-8?b?").trim_end_matches("?=");
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(decoded, long);
    }

    /// Limits at the edge and one past; malformed input refused.
    #[test]
    fn drafts_are_checked() {
        let mut d = draft();
        d.to = (0..MAX_RECIPIENTS)
            .map(|i| format!("r{i}@example.net"))
            .collect();
        assert!(compose(&d).is_ok());
        d.to.push("one@more.example".into());
        assert_eq!(
            compose(&d).unwrap_err(),
            format!("at most {MAX_RECIPIENTS} recipients")
        );
        let mut d = draft();
        d.attachments = vec![
            Attachment {
                filename: "a".into(),
                content_type: String::new(),
                data: vec![]
            };
            MAX_ATTACHMENTS
        ];
        assert!(compose(&d).is_ok());
        d.attachments.push(d.attachments[0].clone());
        assert!(compose(&d).is_err());
        let mut d = draft();
        d.subject = "s".repeat(MAX_FIELD);
        assert!(compose(&d).is_ok());
        d.subject.push('s');
        assert!(compose(&d).is_err());
        for bad in ["no-at", "a@b\r\nBcc: x@y", "<a@b>", "a b@c"] {
            let mut d = draft();
            d.to = vec![bad.into()];
            assert!(compose(&d).is_err(), "{bad}");
        }
        let mut d = draft();
        d.extra = vec![("bad key".into(), "v".into())];
        assert!(compose(&d).is_err());
        // Controls in a subject; composite types as attachments.
        let mut d = draft();
        d.subject = "a\u{7}b".into();
        assert!(compose(&d).is_err());
        for composite in ["message/rfc822", "multipart/mixed"] {
            let mut d = draft();
            d.attachments = vec![Attachment {
                filename: "m".into(),
                content_type: composite.into(),
                data: vec![],
            }];
            assert!(compose(&d).is_err(), "{composite}");
        }
        assert!(is_address("a@b.example") && !is_address("a@b>\r\nRSET"));
        let mut d = draft();
        d.attachments = vec![Attachment {
            filename: "a".into(),
            content_type: "text".into(),
            data: vec![],
        }];
        assert!(compose(&d).is_err());
    }
}
