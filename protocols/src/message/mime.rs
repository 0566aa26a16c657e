//! The MIME structure of a stored message (RFC 2045, RFC 2046 5): where
//! each part's header and body lie, what type it is, and how parts nest
//! (multipart subparts, and the message encapsulated in a
//! `message/rfc822` part).
//!
//! The walk is iterative, over an explicit work list, and bounded by
//! named limits rather than by the message: past [`MAX_MIME_DEPTH`]
//! levels of nesting, or once [`MAX_MIME_PARTS`] parts are known, a part
//! is kept as an opaque leaf (its bytes are all there, its inside is not
//! split), so a hostile message still reads and costs at most
//! `O(size × MAX_MIME_DEPTH)` to walk. Only offsets are recorded; no part
//! is copied.

use super::header::fields;
use std::ops::Range;

/// Deepest nesting of multiparts and encapsulated messages that is split
/// into parts. Real mail nests a handful of levels.
pub const MAX_MIME_DEPTH: usize = 64;
/// Most parts split out of one message; later multiparts stay opaque.
pub const MAX_MIME_PARTS: usize = 10_000;
/// RFC 2046 5.1.1: a boundary is 1 to 70 characters. Longer ones are not
/// boundaries, and the multipart stays opaque.
pub const MAX_BOUNDARY_LENGTH: usize = 70;

/// Index of a part in [`MimeTree::parts`]; the root (the message itself)
/// is [`MimeTree::ROOT`].
pub type PartId = usize;

/// One entity: the message, a body part or an encapsulated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The entity's bytes: header, blank line and body.
    pub range: Range<usize>,
    /// Where the body starts, just past the blank line (or `range.end`
    /// when there is no blank line).
    pub body_start: usize,
    /// Lower-cased media type and subtype; `text/plain` when absent or
    /// unreadable (RFC 2045 5.2), `message/rfc822` in a multipart/digest.
    pub media_type: String,
    pub media_subtype: String,
    /// Lower-cased Content-Transfer-Encoding, `7bit` when absent.
    pub encoding: String,
    /// Subparts of a split multipart, in order.
    pub children: Vec<PartId>,
    /// The message inside a `message/rfc822` (or `message/global`) part.
    pub message: Option<PartId>,
    /// A multipart or message part left unsplit: past a limit, or a
    /// multipart without a usable boundary.
    pub opaque: bool,
    /// The multipart boundary parameter.
    pub boundary: Option<Vec<u8>>,
    pub depth: usize,
}

impl Part {
    pub fn header(&self) -> Range<usize> {
        self.range.start..self.body_start
    }

    pub fn body(&self) -> Range<usize> {
        self.body_start..self.range.end
    }

    pub fn is_multipart(&self) -> bool {
        self.media_type == "multipart"
    }

    fn is_message(&self) -> bool {
        self.media_type == "message"
            && (self.media_subtype == "rfc822" || self.media_subtype == "global")
            // An encoded message is not readable in place.
            && matches!(self.encoding.as_str(), "7bit" | "8bit" | "binary")
    }
}

/// The parts of a message. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimeTree {
    pub parts: Vec<Part>,
}

impl MimeTree {
    pub const ROOT: PartId = 0;

    /// Walks `msg`. Never fails: whatever the bytes, every byte belongs to
    /// the root, and malformed structure gives fewer parts, not an error.
    pub fn parse(msg: &[u8]) -> MimeTree {
        let mut tree = MimeTree {
            parts: vec![blank_part(0..msg.len(), 0)],
        };
        // Parts whose header is still to be read, innermost last.
        let mut todo: Vec<(PartId, bool)> = vec![(MimeTree::ROOT, false)];
        while let Some((id, in_digest)) = todo.pop() {
            tree.read_part(msg, id, in_digest);
            let part = &tree.parts[id];
            let can_split = part.depth < MAX_MIME_DEPTH && tree.parts.len() < MAX_MIME_PARTS;
            if part.is_multipart() {
                let digest = part.media_subtype == "digest";
                let children = if can_split {
                    tree.split_multipart(msg, id)
                } else {
                    None
                };
                match children {
                    Some(children) => {
                        todo.extend(children.iter().rev().map(|&c| (c, digest)));
                        tree.parts[id].children = children;
                    }
                    None => tree.parts[id].opaque = true,
                }
            } else if part.is_message() {
                if can_split {
                    let (body, depth) = (part.body(), part.depth + 1);
                    let inner = tree.add_part(body, depth);
                    tree.parts[id].message = Some(inner);
                    todo.push((inner, false));
                } else {
                    tree.parts[id].opaque = true;
                }
            }
        }
        tree
    }

    pub fn part(&self, id: PartId) -> &Part {
        &self.parts[id]
    }

    /// RFC 9051 6.4.5 part numbering: `path` names a part the way
    /// `BODY[1.2.3]` does. A message that is not multipart has one part,
    /// `1`, itself; the parts of a `message/rfc822` part are those of the
    /// message inside it. `None` when no such part exists.
    pub fn find(&self, path: &[u32]) -> Option<PartId> {
        let mut cur = MimeTree::ROOT;
        for (step, &n) in path.iter().enumerate() {
            let index = (n as usize).checked_sub(1)?;
            // The entity whose parts the number counts.
            let container = if step == 0 {
                MimeTree::ROOT
            } else if self.parts[cur].is_multipart() {
                cur
            } else {
                self.parts[cur].message?
            };
            let c = &self.parts[container];
            cur = if c.is_multipart() && !c.opaque {
                *c.children.get(index)?
            } else if index == 0 && !(step > 0 && container == cur) {
                container
            } else {
                return None;
            };
        }
        Some(cur)
    }

    /// Reads the header of part `id`: its type and transfer encoding.
    fn read_part(&mut self, msg: &[u8], id: PartId, in_digest: bool) {
        let range = self.parts[id].range.clone();
        let entity = &msg[range.clone()];
        let end = super::header::header_end(entity);
        let mut media = None;
        let mut encoding = None;
        for f in fields(&entity[..end]) {
            if media.is_none() && f.name.eq_ignore_ascii_case(b"Content-Type") {
                media = Some(content_type(&f.value));
            } else if encoding.is_none()
                && f.name.eq_ignore_ascii_case(b"Content-Transfer-Encoding")
            {
                encoding = Some(
                    String::from_utf8_lossy(&f.value)
                        .trim()
                        .to_ascii_lowercase(),
                );
            }
        }
        // RFC 2046 5.1.5: in a digest, parts default to message/rfc822.
        let default = if in_digest {
            ("message", "rfc822")
        } else {
            ("text", "plain")
        };
        let (media_type, media_subtype, boundary) = media
            .flatten()
            .unwrap_or_else(|| (default.0.into(), default.1.into(), None));
        let part = &mut self.parts[id];
        part.body_start = range.start + end;
        part.media_type = media_type;
        part.media_subtype = media_subtype;
        part.encoding = encoding
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "7bit".into());
        part.boundary = boundary;
    }

    /// RFC 2046 5.1.1: cuts the body of multipart `id` at its boundary
    /// delimiter lines into new parts, returned in order. The CRLF before
    /// a delimiter belongs to the delimiter; preamble and epilogue belong
    /// to no part. `None` when the body holds no delimiter.
    fn split_multipart(&mut self, msg: &[u8], id: PartId) -> Option<Vec<PartId>> {
        let part = &self.parts[id];
        let boundary = part.boundary.clone()?;
        let (body, depth) = (part.body(), part.depth + 1);
        let mut children = Vec::new();
        // Start of the current part's bytes, once a delimiter was seen.
        let mut open: Option<usize> = None;
        let mut pos = body.start;
        while pos < body.end {
            let line_end = msg[pos..body.end]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(body.end, |i| pos + i + 1);
            if let Some(close) = delimiter(&msg[pos..line_end], &boundary) {
                if let Some(start) = open.take() {
                    if !close && self.parts.len() + 1 >= MAX_MIME_PARTS {
                        // No room for the part that follows: this last
                        // one takes the rest of the body, unsplit, so no
                        // byte loses its part.
                        children.push(self.add_part(start..body.end, depth));
                        return Some(children);
                    }
                    // The line ending before the delimiter is not content.
                    let end = strip_line_ending(msg, start, pos);
                    children.push(self.add_part(start..end, depth));
                }
                if close || self.parts.len() >= MAX_MIME_PARTS {
                    break;
                }
                open = Some(line_end);
            }
            pos = line_end;
        }
        // No close delimiter: the last part runs to the end of the body.
        if let Some(start) = open {
            children.push(self.add_part(start..body.end, depth));
        }
        (!children.is_empty()).then_some(children)
    }

    fn add_part(&mut self, range: Range<usize>, depth: usize) -> PartId {
        self.parts.push(blank_part(range, depth));
        self.parts.len() - 1
    }
}

/// Whether `line` is a delimiter line for `boundary`: `Some(true)` for the
/// close delimiter `--boundary--`. Transport padding (spaces and tabs)
/// may follow the boundary (RFC 2046 5.1.1).
fn delimiter(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    rest.iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .then_some(close)
}

/// `end`, less the CRLF (or LF) just before it, but never before `start`.
fn strip_line_ending(msg: &[u8], start: usize, end: usize) -> usize {
    let mut e = end;
    if e > start && msg[e - 1] == b'\n' {
        e -= 1;
        if e > start && msg[e - 1] == b'\r' {
            e -= 1;
        }
    }
    e
}

/// Media type, subtype and boundary of a Content-Type value, lower-cased;
/// `None` when it has no `type/subtype` (RFC 2045 5.2: then text/plain).
fn content_type(value: &[u8]) -> Option<(String, String, Option<Vec<u8>>)> {
    let text = String::from_utf8_lossy(value);
    let parsed = mailparse::parse_content_type(text.trim());
    let (main, sub) = parsed.mimetype.split_once('/')?;
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !token(main) || !token(sub) {
        return None;
    }
    let boundary = parsed
        .params
        .get("boundary")
        .map(|b| b.as_bytes().to_vec())
        .filter(|b| !b.is_empty() && b.len() <= MAX_BOUNDARY_LENGTH);
    Some((
        main.to_ascii_lowercase(),
        sub.to_ascii_lowercase(),
        boundary,
    ))
}

fn blank_part(range: Range<usize>, depth: usize) -> Part {
    Part {
        body_start: range.end,
        range,
        media_type: String::new(),
        media_subtype: String::new(),
        encoding: String::new(),
        children: Vec::new(),
        message: None,
        opaque: false,
        boundary: None,
        depth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `levels` multiparts nested in one another, a text leaf innermost.
    pub(crate) fn nested_multiparts(levels: usize) -> Vec<u8> {
        let mut msg = b"Subject: deep\r\n".to_vec();
        for i in 0..levels {
            msg.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        msg.extend_from_slice(b"Content-Type: text/plain\r\n\r\ncore\r\n");
        for i in (0..levels).rev() {
            msg.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
        }
        msg
    }

    fn depth_of_deepest(tree: &MimeTree) -> usize {
        tree.parts.iter().map(|p| p.depth).max().unwrap()
    }

    #[test]
    fn single_part_message() {
        let msg = b"Subject: x\r\n\r\nbody";
        let tree = MimeTree::parse(msg);
        assert_eq!(tree.parts.len(), 1);
        let root = tree.part(MimeTree::ROOT);
        assert_eq!(
            (root.media_type.as_str(), root.media_subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(&msg[root.body()], b"body");
        assert_eq!(root.encoding, "7bit");
    }

    #[test]
    fn nesting_at_the_depth_limit_is_split() {
        // Root at depth 0 plus MAX_MIME_DEPTH nested levels: the innermost
        // multipart sits at depth MAX_MIME_DEPTH - 1 and is still split.
        let msg = nested_multiparts(MAX_MIME_DEPTH);
        let tree = MimeTree::parse(&msg);
        assert!(tree.parts.iter().all(|p| !p.opaque));
        assert_eq!(depth_of_deepest(&tree), MAX_MIME_DEPTH);
        let leaf = tree.part(tree.find(&vec![1; MAX_MIME_DEPTH]).unwrap());
        assert_eq!(leaf.media_type, "text");
        assert_eq!(&msg[leaf.body()], b"core");
    }

    #[test]
    fn nesting_past_the_depth_limit_is_an_opaque_leaf() {
        let msg = nested_multiparts(MAX_MIME_DEPTH + 1);
        let tree = MimeTree::parse(&msg);
        assert_eq!(depth_of_deepest(&tree), MAX_MIME_DEPTH);
        let deepest = tree.find(&vec![1; MAX_MIME_DEPTH]).unwrap();
        let part = tree.part(deepest);
        assert!(part.opaque && part.is_multipart() && part.children.is_empty());
        // Its bytes are all there, readable as one leaf.
        assert!(msg[part.body()].ends_with(b"core\r\n--b64--"));
        assert_eq!(tree.find(&vec![1; MAX_MIME_DEPTH + 1]), None);
    }

    #[test]
    fn twenty_thousand_levels_walk_without_recursion() {
        let msg = nested_multiparts(20_000);
        let tree = MimeTree::parse(&msg);
        assert_eq!(depth_of_deepest(&tree), MAX_MIME_DEPTH);
        assert_eq!(tree.parts.len(), MAX_MIME_DEPTH + 1);
    }

    fn many_parts(n: usize) -> Vec<u8> {
        let mut msg = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n".to_vec();
        for i in 0..n {
            msg.extend_from_slice(format!("--z\r\n\r\np{i}\r\n").as_bytes());
        }
        msg.extend_from_slice(b"--z--\r\n");
        msg
    }

    #[test]
    fn part_count_limit_edge() {
        // The root and MAX_MIME_PARTS - 1 subparts: all split out.
        let msg = many_parts(MAX_MIME_PARTS - 1);
        let tree = MimeTree::parse(&msg);
        assert_eq!(tree.parts.len(), MAX_MIME_PARTS);
        assert_eq!(tree.part(MimeTree::ROOT).children.len(), MAX_MIME_PARTS - 1);
        let last = tree.find(&[MAX_MIME_PARTS as u32 - 1]).unwrap();
        assert_eq!(&msg[tree.part(last).body()], b"p9998");
        // One more is not split out.
        let msg = many_parts(MAX_MIME_PARTS);
        let tree = MimeTree::parse(&msg);
        assert_eq!(tree.parts.len(), MAX_MIME_PARTS);
        // The last part split out holds the rest of the body.
        let last = tree.find(&[MAX_MIME_PARTS as u32 - 1]).unwrap();
        assert_eq!(
            &msg[tree.part(last).body()],
            b"p9998\r\n--z\r\n\r\np9999\r\n--z--\r\n"
        );
        assert_eq!(tree.find(&[MAX_MIME_PARTS as u32]), None);
    }

    #[test]
    fn boundary_length_edge() {
        let msg = |b: &str| {
            format!("Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n\r\nx\r\n--{b}--\r\n")
        };
        let at = "b".repeat(MAX_BOUNDARY_LENGTH);
        let tree = MimeTree::parse(msg(&at).as_bytes());
        assert_eq!(tree.part(MimeTree::ROOT).children.len(), 1);
        let past = "b".repeat(MAX_BOUNDARY_LENGTH + 1);
        let tree = MimeTree::parse(msg(&past).as_bytes());
        assert!(tree.part(MimeTree::ROOT).opaque);
    }

    #[test]
    fn delimiters_need_the_whole_boundary() {
        let msg = b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\n\r\none\r\n--abc\r\n--ab \t\r\n\r\ntwo\r\n--ab--\r\n";
        let tree = MimeTree::parse(msg);
        let root = tree.part(MimeTree::ROOT);
        assert_eq!(root.children.len(), 2);
        assert_eq!(&msg[tree.part(root.children[0]).body()], b"one\r\n--abc");
        assert_eq!(&msg[tree.part(root.children[1]).body()], b"two");
    }

    #[test]
    fn digest_parts_default_to_messages_and_encoded_messages_stay_leaves() {
        let msg = b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in\r\n\r\nhi\r\n--d\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp5\r\n--d--\r\n";
        let tree = MimeTree::parse(msg);
        let first = tree.part(tree.find(&[1]).unwrap());
        assert_eq!(first.media_type, "message");
        assert!(first.message.is_some());
        let second = tree.part(tree.find(&[2]).unwrap());
        assert_eq!(second.encoding, "base64");
        assert_eq!(second.message, None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let pieces: [&[u8]; 8] = [
            b"Content-Type: multipart/mixed; boundary=q\r\n",
            b"Content-Type: message/rfc822\r\n",
            b"\r\n",
            b"--q\r\n",
            b"--q--\r\n",
            b"text\n",
            b"\r",
            b"Content-Type: multipart/digest; boundary=\"q\"\r\n",
        ];
        for _ in 0..2000 {
            let mut msg = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                msg.extend_from_slice(pieces[(x % 8) as usize]);
            }
            let tree = MimeTree::parse(&msg);
            for p in &tree.parts {
                assert!(p.range.start <= p.body_start && p.body_start <= p.range.end);
                assert!(p.range.end <= msg.len());
            }
        }
    }
}
