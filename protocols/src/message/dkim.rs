//! DKIM signing, the parts that read the message (RFC 6376): the relaxed
//! body canonicalization fed as the message streams in (3.4.4), relaxed
//! header canonicalization (3.4.2), and the DKIM-Signature field with the
//! data its signature covers (3.5, 3.7). Sans-IO and without keys: the
//! caller signs what [`Signing::data_to_sign`] returns.

use crate::message::header::fields;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The header fields signed when present (RFC 6376 5.4.1's list of those
/// a signer should cover), lower case.
pub const SIGNED_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-message-id",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
];

/// Fields signed once more than they occur (RFC 6376 8.15), so that none
/// can be added after signing without breaking the signature; the other
/// [`SIGNED_FIELDS`] are signed as often as they occur.
pub const OVERSIGNED_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "in-reply-to",
    "references",
];

/// RFC 6376 3.4.4 relaxed body canonicalization and its SHA-256, fed
/// the body in pieces of any size. Memory is constant: only counts and a
/// flag or two are held back, never bytes.
#[derive(Default)]
pub struct BodyHasher {
    hash: Sha256,
    /// Whitespace seen in this line and not yet written (as one SP, if
    /// something other than whitespace follows before the line ends).
    pending_space: bool,
    /// A CR not yet known to start a CRLF.
    pending_cr: bool,
    /// Line ends not yet written: the lines after them may all be empty,
    /// and trailing empty lines are dropped.
    pending_line_ends: usize,
    /// Something other than whitespace is in the current line.
    line_has_text: bool,
    /// Anything was written at all.
    any: bool,
}

impl BodyHasher {
    pub fn new() -> BodyHasher {
        BodyHasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.line_end();
                    continue;
                }
                self.text(b'\r');
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.line_end(),
                b' ' | b'\t' => self.pending_space = true,
                _ => self.text(b),
            }
        }
    }

    fn text(&mut self, b: u8) {
        for _ in 0..self.pending_line_ends {
            self.hash.update(b"\r\n");
        }
        self.pending_line_ends = 0;
        if self.pending_space {
            self.hash.update(b" ");
            self.pending_space = false;
        }
        self.hash.update([b]);
        self.line_has_text = true;
        self.any = true;
    }

    fn line_end(&mut self) {
        // Whitespace at the end of a line goes.
        self.pending_space = false;
        self.line_has_text = false;
        self.pending_line_ends += 1;
    }

    /// The body hash, base64 (the `bh=` value).
    pub fn finish(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.finish_bytes())
    }

    /// The body hash.
    pub fn finish_bytes(mut self) -> Vec<u8> {
        if self.pending_cr {
            self.pending_cr = false;
            self.text(b'\r');
        }
        // A non-empty body ends in exactly one CRLF.
        if self.any {
            self.hash.update(b"\r\n");
        }
        self.hash.finalize().to_vec()
    }
}

/// RFC 6376 3.4.2: a header field in relaxed form, `name:value` CRLF.
pub fn relaxed_field(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = name
        .iter()
        .map(u8::to_ascii_lowercase)
        .filter(|b| !matches!(b, b' ' | b'\t'))
        .collect();
    out.push(b':');
    let mut space = false;
    let mut started = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && started {
                    out.push(b' ');
                }
                space = false;
                started = true;
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// One signature in the making: the DKIM-Signature field without its
/// `b=` value, and what the signature covers.
pub struct Signing {
    /// `DKIM-Signature: ...; b=` (no line end).
    pub field_without_b: String,
    data: Vec<u8>,
}

impl Signing {
    /// Prepares a signature of `header` (the sender's header section) and
    /// a body whose hash is `body_hash`, for `domain` and `selector`, with
    /// `algorithm` (`ed25519-sha256` or `rsa-sha256`) at unix time `now`.
    /// The fields of [`SIGNED_FIELDS`] present are signed, each name once,
    /// its last instance as RFC 6376 5.4.2 has verifiers take it.
    pub fn new(
        header: &[u8],
        body_hash: &str,
        algorithm: &str,
        domain: &str,
        selector: &str,
        now: i64,
    ) -> Signing {
        let all = fields(header);
        let mut names: Vec<&str> = Vec::new();
        let mut data = Vec::new();
        for name in SIGNED_FIELDS {
            // Every instance, bottom up (RFC 6376 5.4.2), then one that is
            // not there for the oversigned ones.
            let mut present = 0;
            for f in all
                .iter()
                .rev()
                .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            {
                names.push(name);
                data.extend_from_slice(&relaxed_field(f.name, &f.value));
                present += 1;
            }
            if OVERSIGNED_FIELDS.contains(name) && (present > 0 || *name != "sender") {
                names.push(name);
            }
        }
        let field_without_b = format!(
            "DKIM-Signature: v=1; a={algorithm}; c=relaxed/relaxed; d={domain}; s={selector}; t={now}; h={}; bh={body_hash}; b=",
            names.join(":")
        );
        // RFC 6376 3.7: the signature field itself, relaxed, b= empty,
        // without its CRLF, comes last.
        let (name, value) = field_without_b
            .split_once(':')
            .unwrap_or(("DKIM-Signature", ""));
        let mut own = relaxed_field(name.as_bytes(), value.as_bytes());
        own.truncate(own.len() - 2);
        data.extend_from_slice(&own);
        Signing {
            field_without_b,
            data,
        }
    }

    /// The bytes the algorithm signs (rsa-sha256 hashes them itself;
    /// ed25519-sha256 signs their SHA-256, RFC 8463 3).
    pub fn data_to_sign(&self) -> &[u8] {
        &self.data
    }

    /// The finished field, CRLF included, folded after each `;` and in
    /// the `b=` value so no line is longer than RFC 5322 2.1.1 allows
    /// (relaxed canonicalization reads the folds as the spaces they
    /// replace, and the `b=` value is not signed).
    pub fn field(&self, signature: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(signature);
        let mut out = self.field_without_b.replace("; ", ";\r\n\t");
        for (i, piece) in b.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                out.push_str("\r\n\t");
            }
            out.push_str(&String::from_utf8_lossy(piece));
        }
        out.push_str("\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_hash(pieces: &[&[u8]]) -> String {
        let mut h = BodyHasher::new();
        for p in pieces {
            h.update(p);
        }
        h.finish()
    }

    fn b64_sha256(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
    }

    #[test]
    fn relaxed_body_rules() {
        // RFC 6376 3.4.6's example body, relaxed: " C \r\nD E\r\n".
        let body: &[u8] = b" C \r\nD \t E\r\n\r\n\r\n";
        assert_eq!(body_hash(&[body]), b64_sha256(b" C\r\nD E\r\n"));
        // Any split gives the same hash.
        for cut in 0..body.len() {
            assert_eq!(
                body_hash(&[&body[..cut], &body[cut..]]),
                b64_sha256(b" C\r\nD E\r\n"),
                "cut {cut}"
            );
        }
        // An empty body hashes the empty string; a body without a final
        // line end gets one.
        assert_eq!(body_hash(&[b""]), b64_sha256(b""));
        assert_eq!(body_hash(&[b"\r\n\r\n"]), b64_sha256(b""));
        assert_eq!(body_hash(&[b"x"]), b64_sha256(b"x\r\n"));
        // Empty lines inside stay; a lone CR is text.
        assert_eq!(
            body_hash(&[b"a\r\n\r\nb\r\n"]),
            b64_sha256(b"a\r\n\r\nb\r\n")
        );
        assert_eq!(body_hash(&[b"a\rb\r\n"]), b64_sha256(b"a\rb\r\n"));
    }

    #[test]
    fn relaxed_header_rules() {
        // RFC 6376 3.4.6's example header.
        assert_eq!(relaxed_field(b"A", b" X\r\n"), b"a:X\r\n");
        assert_eq!(relaxed_field(b"B ", b" Y\t\r\n\tZ  \r\n"), b"b:Y Z\r\n");
    }

    #[test]
    fn the_signed_data_ends_with_the_signature_field_without_b() {
        let header = b"From: a@example.org\r\nSubject: hi\r\nSubject:  again\r\nX-Other: 1\r\n\r\n";
        let s = Signing::new(header, "BH", "ed25519-sha256", "example.org", "s1", 7);
        assert_eq!(
            s.field_without_b,
            "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org; s=s1; t=7; h=from:from:reply-to:subject:subject:subject:date:message-id:to:cc:mime-version:content-type:content-transfer-encoding:in-reply-to:references; bh=BH; b="
        );
        assert_eq!(
            String::from_utf8_lossy(s.data_to_sign()),
            "from:a@example.org\r\nsubject:again\r\nsubject:hi\r\ndkim-signature:v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org; s=s1; t=7; h=from:from:reply-to:subject:subject:subject:date:message-id:to:cc:mime-version:content-type:content-transfer-encoding:in-reply-to:references; bh=BH; b="
        );
        // Folded after each `;`, and the b= value every 72 characters.
        assert!(s.field(b"sig").ends_with(";\r\n\tb=c2ln\r\n"));
        let long = s.field(&[7u8; 256]);
        assert!(long.lines().all(|l| l.len() <= 998), "{long}");
        assert!(long.lines().count() > 10);
    }
}
