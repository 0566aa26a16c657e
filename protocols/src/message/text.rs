//! A message read as text, for SEARCH (RFC 9051 6.4.4): header values with
//! RFC 2047 encoded-words decoded, and the text parts of the body with
//! their transfer encoding undone and their charset converted to UTF-8.
//! Everything is lower-cased, so a search compares without case.
//!
//! Parts come from the bounded [`MimeTree`] walk; a part in a charset
//! roost does not know is read as Latin-1, so its ASCII still matches.

use super::decode::TransferEncoding;
use super::header::{decode_value, fields, header_end};
use super::mime::MimeTree;

/// One header field, its name and decoded value both lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextField {
    pub name: String,
    pub value: String,
}

/// The header fields of a header section, decoded and lower-cased.
pub fn header_fields(header: &[u8]) -> Vec<TextField> {
    fields(header)
        .into_iter()
        .map(|f| TextField {
            name: String::from_utf8_lossy(f.name).to_lowercase(),
            value: decode_value(&f.value).to_lowercase(),
        })
        .collect()
}

/// The text of every `text/*` part of `msg` (all of the message when it
/// is a single text part), decoded and lower-cased, parts separated by a
/// line break.
pub fn body_text(msg: &[u8]) -> String {
    let tree = MimeTree::parse(msg);
    let mut out = String::new();
    for (part, _) in text_leaves(&tree) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&part_text(msg, part).to_lowercase());
    }
    out
}

/// RFC 8970 3: a preview is at most this many characters.
pub const PREVIEW_CHARS: usize = 256;

/// RFC 8970 3: the start of a message's text for a client's message list:
/// the first `text/plain` part (else the first `text/*` part, with HTML
/// tags dropped), decoded, runs of white space made one space, at most
/// [`PREVIEW_CHARS`] characters. Empty when the message has no text.
pub fn preview(msg: &[u8]) -> String {
    let tree = MimeTree::parse(msg);
    let leaves = text_leaves(&tree);
    let chosen = leaves
        .iter()
        .find(|(_, subtype)| subtype == "plain")
        .or_else(|| leaves.first());
    let Some((part, subtype)) = chosen else {
        return String::new();
    };
    let mut text = part_text(msg, part);
    if text.len() > PREVIEW_SOURCE {
        let mut end = PREVIEW_SOURCE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    if subtype == "html" {
        text = strip_tags(&text);
    }
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        for c in (!out.is_empty())
            .then_some(' ')
            .into_iter()
            .chain(word.chars())
        {
            if chars == PREVIEW_CHARS {
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

/// How much of a part's text a preview reads: far more than 256
/// characters of text need, and a bound on the work a message can cause.
pub const PREVIEW_SOURCE: usize = 64 * 1024;

/// HTML text without its tags (and without what is in `<style>` and
/// `<script>`), good enough for a preview. One pass over the text: the
/// lower-cased copy is made once, and every search moves forward.
fn strip_tags(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let (bytes, low) = (html.as_bytes(), lower.as_bytes());
    let mut out = String::with_capacity(html.len());
    let mut i = 0;
    while i < bytes.len() {
        let Some(open) = memchr(b'<', &bytes[i..]).map(|o| i + o) else {
            out.push_str(&html[i..]);
            break;
        };
        out.push_str(&html[i..open]);
        out.push(' ');
        // Inside <style> and <script>, skip to the closing tag.
        let mut from = open;
        for (tag, close) in [(&b"<style"[..], &b"</style"[..]), (b"<script", b"</script")] {
            if low[open..].starts_with(tag) {
                from = find(&low[open..], close).map_or(bytes.len(), |c| open + c);
            }
        }
        match memchr(b'>', &bytes[from..]) {
            Some(c) => i = from + c + 1,
            None => break,
        }
    }
    out
}

fn memchr(b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&x| x == b)
}

/// The first place `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The leaf parts of type `text`, with their subtypes, in order.
fn text_leaves(tree: &MimeTree) -> Vec<(&super::mime::Part, String)> {
    tree.parts
        .iter()
        .filter(|p| p.children.is_empty() && p.message.is_none() && p.media_type == "text")
        .map(|p| (p, p.media_subtype.clone()))
        .collect()
}

/// One part's body with its transfer encoding undone, in UTF-8.
fn part_text(msg: &[u8], part: &super::mime::Part) -> String {
    let header = &msg[part.header()];
    let body = &msg[part.body()];
    let decoded = TransferEncoding::from_name(part.encoding.as_bytes())
        .map_or_else(|| body.to_vec(), |e| e.decode(body));
    to_utf8(&decoded, charset_of(header).as_deref())
}

/// The whole message as text: its decoded header fields, then its body
/// text (SEARCH TEXT).
pub fn message_text(msg: &[u8]) -> String {
    let mut out = String::new();
    for f in header_fields(&msg[..header_end(msg)]) {
        out.push_str(&f.name);
        out.push_str(": ");
        out.push_str(&f.value);
        out.push('\n');
    }
    out.push_str(&body_text(msg));
    out
}

fn charset_of(header: &[u8]) -> Option<String> {
    let ct = fields(header)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(b"Content-Type"))?;
    let parsed = mailparse::parse_content_type(&String::from_utf8_lossy(&ct.value));
    Some(parsed.charset)
}

/// `bytes` in `charset` as UTF-8; unknown charsets read as Latin-1, and
/// UTF-8 (or no charset) with invalid sequences replaced.
fn to_utf8(bytes: &[u8], charset: Option<&str>) -> String {
    let label = charset.unwrap_or("us-ascii");
    if label.eq_ignore_ascii_case("us-ascii") || label.eq_ignore_ascii_case("utf-8") {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    match charset::Charset::for_label(label.as_bytes()) {
        Some(cs) => cs.decode(bytes).0.into_owned(),
        None => charset::decode_latin1(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decoded_and_lowered() {
        let f = header_fields(b"Subject: =?ISO-8859-1?Q?Caf=E9?= NOW\r\nFrom: A <a@B>\r\n\r\n");
        assert_eq!(f[0].name, "subject");
        assert_eq!(f[0].value, "café now");
        assert_eq!(f[1].value, "a <a@b>");
    }

    #[test]
    fn bodies_decoded_in_their_charset() {
        let msg = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=FC=DFE\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PGI+SGFsbG88L2I+\r\n--b\r\nContent-Type: image/png\r\n\r\nNOTTEXT\r\n--b--\r\n";
        assert_eq!(body_text(msg), "grüße\n<b>hallo</b>");
        assert!(message_text(msg).starts_with("content-type: multipart/alternative"));
        assert_eq!(body_text(b"Subject: x\r\n\r\nPlain Body"), "plain body");
        assert_eq!(
            body_text(b"Content-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xe9"),
            "café"
        );
    }

    #[test]
    fn previews() {
        let plain = b"Subject: x\r\n\r\nHello   there,\r\n\r\n  the figures\tare in.\r\n";
        assert_eq!(preview(plain), "Hello there, the figures are in.");
        let alt = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/html\r\n\r\n<p>From <b>HTML</b></p>\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=C3=BC=C3=9Fe aus Bern\r\n--b--\r\n";
        assert_eq!(preview(alt), "Grüße aus Bern");
        let html =
            b"Content-Type: text/html\r\n\r\n<style>p{x:1}</style><p>Only <i>HTML</i> here</p>\r\n";
        assert_eq!(preview(html), "Only HTML here");
        assert_eq!(preview(b"Content-Type: image/png\r\n\r\nxx"), "");
        let multibyte =
            "Content-Type: text/html\r\n\r\n<b>\u{e9}\u{e9}\u{e9}</b> <SCRIPT>x<y</script>z\r\n";
        assert_eq!(preview(multibyte.as_bytes()), "\u{e9}\u{e9}\u{e9} z");
        // Many style blocks: each is skipped once, forward only.
        let styles = format!(
            "Content-Type: text/html\r\n\r\n{}tail\r\n",
            "<style>a</style>".repeat(20_000)
        );
        assert_eq!(preview(styles.as_bytes()), "");
        // At most PREVIEW_CHARS characters, counted as characters.
        let long = format!("Subject: x\r\n\r\n{}\r\n", "é".repeat(300));
        assert_eq!(preview(long.as_bytes()).chars().count(), PREVIEW_CHARS);
        let at = format!("Subject: x\r\n\r\n{}\r\n", "a".repeat(PREVIEW_CHARS));
        assert_eq!(preview(at.as_bytes()).len(), PREVIEW_CHARS);
    }
}
