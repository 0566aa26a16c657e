//! The keys threading works from (RFC 5256 and RFC 5322 3.6.4): the
//! message's own Message-ID, the ids it answers, and its base subject.
//!
//! Building threads from these keys is the store's job; this module only
//! reads them from a header, the same way for every message.

use super::header::{fields, header_value};

/// Most References ids kept. When there are more, the first (the thread's
/// root) and the last ones (the nearest ancestors) are kept, as RFC 5322
/// 3.6.4 suggests for trimming.
pub const MAX_REFERENCES: usize = 100;

/// Longest message id kept, in octets: RFC 5322 2.1.1's line limit. Longer
/// ones are dropped as garbage.
pub const MAX_MESSAGE_ID: usize = 998;

/// The threading keys of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThreadKeys {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Subject with RFC 2047 words decoded; empty if absent.
    pub subject: String,
    /// RFC 5256 2.1.
    pub base_subject: String,
    /// RFC 5256 2.1: the base subject extraction removed a reply or forward
    /// marker (`Re:`, `Fwd:`, a `(fwd)` trailer or a `[fwd: ...]` wrapper).
    pub is_reply_or_forward: bool,
}

impl ThreadKeys {
    /// Reads the keys from a header section (a whole message is fine too:
    /// reading stops at the empty line).
    pub fn from_header(header: &[u8]) -> ThreadKeys {
        let mut message_id = None;
        let mut in_reply_to = None;
        let mut references = None;
        for f in fields(header) {
            let value = String::from_utf8_lossy(&f.value);
            let name = f.name;
            // The first field of each name counts (RFC 5322 3.6 allows one).
            if name.eq_ignore_ascii_case(b"Message-ID") && message_id.is_none() {
                message_id = Some(single_message_id(&value));
            } else if name.eq_ignore_ascii_case(b"In-Reply-To") && in_reply_to.is_none() {
                in_reply_to = Some(message_ids(&value));
            } else if name.eq_ignore_ascii_case(b"References") && references.is_none() {
                references = Some(trim_references(message_ids(&value)));
            }
        }
        let subject = header_value(header, "Subject").unwrap_or_default();
        let (base_subject, is_reply_or_forward) = extract_base_subject(&subject);
        ThreadKeys {
            message_id: message_id.flatten(),
            in_reply_to: in_reply_to.unwrap_or_default(),
            references: references.unwrap_or_default(),
            subject,
            base_subject,
            is_reply_or_forward,
        }
    }
}

/// The `<...>` ids in a field value, without brackets and with whitespace
/// (from folding) removed. Text between ids (phrases, comments) is skipped.
pub fn message_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        // "<a <b@c>": the id is the innermost one.
        let inner = after[..close].rsplit('<').next().unwrap_or("");
        let id: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
        if !id.is_empty() && id.len() <= MAX_MESSAGE_ID {
            out.push(id);
        }
        rest = &after[close + 1..];
    }
    out
}

/// Message-ID's id; a value without brackets but a single word is taken as
/// it stands, since some senders leave the brackets out.
fn single_message_id(value: &str) -> Option<String> {
    if let Some(id) = message_ids(value).into_iter().next() {
        return Some(id);
    }
    let v = value.trim();
    (!v.is_empty() && v.len() <= MAX_MESSAGE_ID && !v.contains(char::is_whitespace))
        .then(|| v.to_string())
}

fn trim_references(mut ids: Vec<String>) -> Vec<String> {
    if ids.len() > MAX_REFERENCES {
        ids.drain(1..ids.len() - (MAX_REFERENCES - 1));
    }
    ids
}

/// RFC 5256 2.1: the base subject of `subject` (already RFC 2047 decoded).
pub fn base_subject(subject: &str) -> String {
    extract_base_subject(subject).0
}

/// RFC 5256 2.1: the base subject, and whether a reply or forward marker
/// was removed on the way.
pub fn extract_base_subject(subject: &str) -> (String, bool) {
    // (1) Tabs and continuations to space, runs of spaces to one.
    let mut s = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if !(c == ' ' && s.ends_with(' ')) {
            s.push(c);
        }
    }
    let mut s = s.as_str();
    let mut marked = false;
    loop {
        // (2) Remove subj-trailer, repeatedly: "(fwd)" / WSP.
        loop {
            if let Some(t) = s.strip_suffix(' ') {
                s = t;
            } else if let Some(t) = strip_suffix_ci(s, "(fwd)") {
                s = t;
                marked = true;
            } else {
                break;
            }
        }
        // (3), (4), (5): subj-leader, then a subj-blob that leaves a
        // non-empty base, until neither matches.
        loop {
            if let Some(t) = s.strip_prefix(' ') {
                s = t;
            } else if let Some(t) = strip_refwd_leader(s) {
                s = t;
                marked = true;
            } else if let Some(t) = strip_blob(s).filter(|t| !t.is_empty()) {
                s = t;
            } else {
                break;
            }
        }
        // (6) "[fwd:" ... "]": unwrap and start again from (2).
        match strip_prefix_ci(s, "[fwd:").and_then(|t| t.strip_suffix(']')) {
            Some(inner) => {
                s = inner;
                marked = true;
            }
            None => break,
        }
    }
    (s.to_string(), marked)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    let tail = s.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..at])
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: the text after it.
fn strip_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find([']', '['])?;
    (inner.as_bytes()[close] == b']').then(|| inner[close + 1..].trim_start_matches(' '))
}

/// `subj-leader = *subj-blob subj-refwd`, where
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn strip_refwd_leader(s: &str) -> Option<&str> {
    let mut t = s;
    while let Some(after) = strip_blob(t) {
        t = after;
    }
    let after_word = strip_prefix_ci(t, "re")
        .or_else(|| strip_prefix_ci(t, "fwd"))
        .or_else(|| strip_prefix_ci(t, "fw"))?;
    let mut u = after_word.trim_start_matches(' ');
    if let Some(after) = strip_blob(u) {
        u = after;
    }
    u.strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subject_rfc5256_cases() {
        for (subject, base, marked) in [
            ("test", "test", false),
            ("Re: test", "test", true),
            ("RE:test", "test", true),
            ("Re : test", "test", true),
            ("Re: Re: re: test", "test", true),
            ("Re[2]: test", "test", true),
            ("Re [2]: test", "test", true),
            ("Fwd: test", "test", true),
            ("FW: test", "test", true),
            ("fw:test", "test", true),
            ("[list] Re: test", "test", true),
            ("[a] [b] Fwd: test", "test", true),
            ("[list] test", "test", false),
            ("Re: [list] [other] test", "test", true),
            ("[list]", "[list]", false),
            ("[a][b]", "[b]", false),
            ("test (fwd)", "test", true),
            ("test (FWD) (fwd) ", "test", true),
            ("[Fwd: test]", "test", true),
            ("[fwd: Re: test] (fwd)", "test", true),
            ("Re: [fwd: [fwd: x]]", "x", true),
            ("  test \t  with   spaces  ", "test with spaces", false),
            ("Re:", "", true),
            ("", "", false),
            ("Regarding: test", "Regarding: test", false),
            ("Fwdx: test", "Fwdx: test", false),
            ("Re: Grüße", "Grüße", true),
            ("[Liste] Ärger", "Ärger", false),
            ("[unclosed test", "[unclosed test", false),
            ("[a[b] test", "[a[b] test", false),
        ] {
            assert_eq!(
                extract_base_subject(subject),
                (base.to_string(), marked),
                "{subject:?}"
            );
        }
        assert_eq!(base_subject("Re: hi"), "hi");
    }

    #[test]
    fn keys_from_a_header() {
        let h = b"Message-ID: <abc@example.org>\r\n\
In-Reply-To: <parent@example.org> (comment)\r\n\
References: <root@example.org>\r\n <parent@\r\n example.org>\r\n\
Subject: =?UTF-8?Q?Re:_caf=C3=A9?=\r\n\r\nbody <x@y>\r\n";
        let k = ThreadKeys::from_header(h);
        assert_eq!(
            k,
            ThreadKeys {
                message_id: Some("abc@example.org".into()),
                in_reply_to: vec!["parent@example.org".into()],
                references: vec!["root@example.org".into(), "parent@example.org".into()],
                subject: "Re: café".into(),
                base_subject: "café".into(),
                is_reply_or_forward: true,
            }
        );
    }

    #[test]
    fn missing_and_odd_fields() {
        assert_eq!(ThreadKeys::from_header(b""), ThreadKeys::default());
        let k = ThreadKeys::from_header(b"message-id: bare@id\r\nIn-Reply-To: junk\r\n");
        assert_eq!(k.message_id.as_deref(), Some("bare@id"));
        assert!(k.in_reply_to.is_empty());
        let k = ThreadKeys::from_header(b"Message-ID: two words\r\nMessage-ID: <x@y>\r\n");
        assert_eq!(k.message_id, None);
        assert_eq!(message_ids("<> <a <b@c> <d@e"), vec!["b@c".to_string()]);
    }

    #[test]
    fn message_id_length_edge() {
        let id = "i".repeat(MAX_MESSAGE_ID);
        assert_eq!(message_ids(&format!("<{id}>")), vec![id.clone()]);
        assert!(message_ids(&format!("<{id}i>")).is_empty());
    }

    #[test]
    fn references_trimmed_keeping_root_and_nearest() {
        let ids = |n: usize| (0..n).map(|i| format!("<{i}@x>")).collect::<String>();
        let h = format!("References: {}\r\n", ids(MAX_REFERENCES));
        let k = ThreadKeys::from_header(h.as_bytes());
        assert_eq!(k.references.len(), MAX_REFERENCES);
        let h = format!("References: {}\r\n", ids(MAX_REFERENCES + 1));
        let k = ThreadKeys::from_header(h.as_bytes());
        assert_eq!(k.references.len(), MAX_REFERENCES);
        assert_eq!(k.references[0], "0@x");
        assert_eq!(k.references[1], "2@x");
        assert_eq!(
            k.references[MAX_REFERENCES - 1],
            format!("{MAX_REFERENCES}@x")
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = "<>[]():; \t\r\nReFwd@=?Q_é\u{0}".as_bytes();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    let r = x.rotate_left(i as u32 % 64) ^ (i as u64).wrapping_mul(0x2545_f491);
                    if r % 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r as usize / 3) % alphabet.len()]
                    }
                })
                .collect();
            let mut h = b"Subject: ".to_vec();
            h.extend_from_slice(&bytes);
            let _ = ThreadKeys::from_header(&h);
            let _ = ThreadKeys::from_header(&bytes);
            let _ = super::super::header::header_end(&bytes);
            let _ = extract_base_subject(&String::from_utf8_lossy(&bytes));
        }
    }
}
