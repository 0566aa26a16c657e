//! DKIM verification, the parts that read the message (RFC 6376 3 and
//! 6): DKIM-Signature fields, the simple body canonicalization fed as the
//! body streams in (3.4.3; relaxed is [`super::dkim::BodyHasher`]), the
//! header data a signature covers (5.4.2, 3.7), key records (3.6.1).
//! Sans-IO: DNS and the signature check are the caller's.

use super::dkim::relaxed_field;
use base64::Engine;
use sha2::{Digest, Sha256};

/// DKIM-Signature fields verified per message; later ones are ignored.
pub const MAX_SIGNATURES: usize = 5;
/// Names in one signature's `h=`; more is a permanent error.
pub const MAX_SIGNED_NAMES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    Simple,
    Relaxed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RsaSha256,
    Ed25519Sha256,
}

/// One DKIM-Signature field, read (RFC 6376 3.5).
#[derive(Debug, Clone)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub header_canon: Canon,
    pub body_canon: Canon,
    /// `d=`, lower case.
    pub domain: String,
    pub selector: String,
    /// `h=`, lower case, in order.
    pub headers: Vec<String>,
    pub body_hash: Vec<u8>,
    pub signature: Vec<u8>,
    /// `b=` as written, for `header.b` in Authentication-Results.
    pub b_text: String,
    /// `x=`, unix seconds.
    pub expires: Option<i64>,
    /// `l=`: roost does not verify partial bodies.
    pub length: Option<u64>,
    /// Which field of its name in the header this is (0 = topmost).
    index: usize,
    /// DKIM-Signature, or ARC-Message-Signature (RFC 8617 4.1.2).
    pub(crate) field: SignatureField,
}

/// The fields that carry a DKIM-style signature of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureField {
    Dkim,
    /// ARC-Message-Signature: `i=` is the ARC instance, there is no `v=`.
    ArcMessage,
}

impl SignatureField {
    fn name(self) -> &'static [u8] {
        match self {
            SignatureField::Dkim => b"DKIM-Signature",
            SignatureField::ArcMessage => b"ARC-Message-Signature",
        }
    }
}

/// The raw header fields: name, and the whole field as sent (folded lines
/// and their CRLFs included).
pub(crate) fn raw_fields(header: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut out: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for line in header.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break;
        }
        if bare[0] == b' ' || bare[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.extend_from_slice(line);
            }
            continue;
        }
        let Some(colon) = bare.iter().position(|&b| b == b':') else {
            continue;
        };
        out.push((trim_wsp(&line[..colon]), line.to_vec()));
        if out.len() >= super::header::MAX_HEADER_FIELDS {
            break;
        }
    }
    out
}

fn trim_wsp(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// Why no signature of this header section can be trusted, if so: more
/// fields than are read (a field added past them would go unseen), or
/// other than exactly one From (RFC 6376 8.15, RFC 5322 3.6).
pub fn header_problem(header: &[u8]) -> Option<&'static str> {
    let all = raw_fields(header);
    if all.len() >= super::header::MAX_HEADER_FIELDS {
        return Some("too many header fields to verify");
    }
    let from = all
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"From"))
        .count();
    (from != 1).then_some("not exactly one From field")
}

/// A domain name or selector: dot-separated labels of letters, digits,
/// '-' and '_' (RFC 6376 3.5, 3.1).
pub(crate) fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `tag=value` pairs of a tag list (RFC 6376 3.2), names and values
/// trimmed of surrounding whitespace.
pub fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

pub(crate) fn no_space(v: &str) -> String {
    v.chars().filter(|c| !c.is_whitespace()).collect()
}

pub(crate) fn b64(v: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(no_space(v))
        .map_err(|_| "bad base64".to_string())
}

/// The DKIM-Signature fields of a header section, topmost first, at most
/// [`MAX_SIGNATURES`]; each read or the reason it cannot be (a
/// permanent error, RFC 6376 6.1.1).
pub fn signatures(header: &[u8]) -> Vec<Result<Signature, String>> {
    raw_fields(header)
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"DKIM-Signature"))
        .take(MAX_SIGNATURES)
        .enumerate()
        .map(|(index, (_, raw))| {
            let text = String::from_utf8_lossy(raw);
            let value = text.split_once(':').map_or("", |(_, v)| v);
            parse_signature(value, index, SignatureField::Dkim)
        })
        .collect()
}

pub(crate) fn parse_signature(
    value: &str,
    index: usize,
    field: SignatureField,
) -> Result<Signature, String> {
    let tags = tags(value);
    // RFC 6376 3.2: a tag appears once.
    for (i, (name, _)) in tags.iter().enumerate() {
        if tags[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("{name}= appears twice"));
        }
    }
    let get = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if field == SignatureField::Dkim && get("v") != Some("1") {
        return Err("v= is not 1".into());
    }
    let algorithm = match get("a") {
        Some("rsa-sha256") => Algorithm::RsaSha256,
        Some("ed25519-sha256") => Algorithm::Ed25519Sha256,
        Some("rsa-sha1") => return Err("rsa-sha1 is not accepted (RFC 8301)".into()),
        _ => return Err("unknown algorithm".into()),
    };
    let (header_canon, body_canon) = {
        let c = get("c").unwrap_or("simple/simple");
        let (h, b) = c.split_once('/').unwrap_or((c, "simple"));
        let canon = |s: &str| match s {
            "simple" => Ok(Canon::Simple),
            "relaxed" => Ok(Canon::Relaxed),
            _ => Err(format!("unknown canonicalization {s}")),
        };
        (canon(h)?, canon(b)?)
    };
    let domain = get("d").ok_or("no d=")?.to_lowercase();
    let selector = get("s").ok_or("no s=")?.to_string();
    if !is_dns_name(&domain) || !is_dns_name(&selector) {
        return Err("d= or s= is not a domain name".into());
    }
    let headers: Vec<String> = get("h")
        .ok_or("no h=")?
        .split(':')
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if !headers.iter().any(|h| h == "from") {
        return Err("From is not signed".into());
    }
    if headers.len() > MAX_SIGNED_NAMES {
        return Err("too many names in h=".into());
    }
    // RFC 8617 4.1.2: a message signature never covers the seals.
    if field == SignatureField::ArcMessage && headers.iter().any(|h| h == "arc-seal") {
        return Err("h= names ARC-Seal".into());
    }
    // RFC 6376 3.5: i= is in d= or a subdomain of it.
    if let Some(i) = get("i").filter(|_| field == SignatureField::Dkim) {
        let host = i.rsplit_once('@').map_or("", |(_, h)| h).to_lowercase();
        if host != domain && !host.ends_with(&format!(".{domain}")) {
            return Err("i= is not within d=".into());
        }
    }
    let number = |k: &str| -> Result<Option<i64>, String> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{k}= is not a number"))
            })
            .transpose()
    };
    let (signed_at, expires) = (number("t")?, number("x")?);
    if let (Some(t), Some(x)) = (signed_at, expires) {
        if x < t {
            return Err("x= is before t=".into());
        }
    }
    let b_text = no_space(get("b").ok_or("no b=")?);
    Ok(Signature {
        algorithm,
        header_canon,
        body_canon,
        domain,
        selector,
        headers,
        body_hash: b64(get("bh").ok_or("no bh=")?)?,
        signature: b64(&b_text)?,
        b_text,
        expires,
        length: get("l").and_then(|l| l.parse().ok()),
        index,
        field,
    })
}

/// The field with its `b=` value removed (RFC 6376 3.7), as sent.
pub(crate) fn without_b(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let (name, value) = text.split_once(':').unwrap_or((&text, ""));
    let parts: Vec<String> = value
        .split(';')
        .map(|part| {
            let trimmed = part.trim_start();
            let is_b = trimmed.starts_with('b')
                && trimmed[1..]
                    .trim_start_matches([' ', '\t', '\r', '\n'])
                    .starts_with('=');
            match (is_b, part.find('=')) {
                (true, Some(eq)) => part[..=eq].to_string(),
                _ => part.to_string(),
            }
        })
        .collect();
    format!("{name}:{}", parts.join(";")).into_bytes()
}

pub(crate) fn canonical(canon: Canon, raw: &[u8]) -> Vec<u8> {
    match canon {
        Canon::Simple => {
            let mut v = raw.to_vec();
            if !v.ends_with(b"\r\n") {
                if v.ends_with(b"\n") {
                    v.pop();
                }
                v.extend_from_slice(b"\r\n");
            }
            v
        }
        Canon::Relaxed => {
            let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
            let value = raw.get(colon + 1..).unwrap_or(&[]);
            relaxed_field(&raw[..colon], value)
        }
    }
}

/// What `sig` signs in `header` (RFC 6376 5.4.2: for each name in h=,
/// the last instance not used yet; then the signature field itself
/// without its b= value and CRLF).
pub fn header_data(header: &[u8], sig: &Signature) -> Vec<u8> {
    let all = raw_fields(header);
    let mut used = vec![false; all.len()];
    let mut data = Vec::new();
    for name in &sig.headers {
        let found = (0..all.len())
            .rev()
            .find(|&i| !used[i] && all[i].0.eq_ignore_ascii_case(name.as_bytes()));
        if let Some(i) = found {
            used[i] = true;
            data.extend_from_slice(&canonical(sig.header_canon, &all[i].1));
        }
    }
    let own = all
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(sig.field.name()))
        .nth(sig.index)
        .map(|(_, raw)| without_b(raw))
        .unwrap_or_default();
    let mut own = canonical(sig.header_canon, &own);
    own.truncate(own.len().saturating_sub(2));
    data.extend_from_slice(&own);
    data
}

/// RFC 6376 3.4.3 simple body canonicalization and its SHA-256, fed the
/// body in pieces: everything as sent, but empty lines at the end go and
/// the body ends in exactly one CRLF.
#[derive(Default)]
pub struct SimpleBodyHasher {
    hash: Sha256,
    pending_cr: bool,
    pending_line_ends: usize,
}

impl SimpleBodyHasher {
    pub fn new() -> SimpleBodyHasher {
        SimpleBodyHasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.pending_line_ends += 1;
                    continue;
                }
                self.text(b'\r');
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                self.text(b);
            }
        }
    }

    fn text(&mut self, b: u8) {
        for _ in 0..self.pending_line_ends {
            self.hash.update(b"\r\n");
        }
        self.pending_line_ends = 0;
        self.hash.update([b]);
    }

    /// The body hash.
    pub fn finish(mut self) -> Vec<u8> {
        if self.pending_cr {
            self.pending_cr = false;
            self.text(b'\r');
        }
        self.hash.update(b"\r\n");
        self.hash.finalize().to_vec()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

/// A DKIM key record (RFC 6376 3.6.1).
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_type: KeyType,
    /// Empty: the key was revoked.
    pub public: Vec<u8>,
}

pub fn parse_key_record(txt: &str) -> Result<KeyRecord, String> {
    let tags = tags(txt);
    if let Some((k, v)) = tags.first() {
        if k == "v" && v != "DKIM1" {
            return Err("v= is not DKIM1".into());
        }
    }
    let get = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let key_type = match get("k").unwrap_or("rsa") {
        "rsa" => KeyType::Rsa,
        "ed25519" => KeyType::Ed25519,
        other => return Err(format!("unknown key type {other}")),
    };
    // RFC 6376 3.6.1: a key for other services, or for other hashes, is
    // not for these signatures.
    if let Some(services) = get("s") {
        if !services
            .split(':')
            .any(|s| matches!(s.trim(), "email" | "*"))
        {
            return Err("the key is not for email".into());
        }
    }
    if let Some(hashes) = get("h") {
        if !hashes.split(':').any(|h| h.trim() == "sha256") {
            return Err("the key does not allow sha256".into());
        }
    }
    let public = b64(get("p").ok_or("no p=")?)?;
    Ok(KeyRecord { key_type, public })
}

/// The PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (or the input, when
/// it already is one).
pub fn rsa_public_key(der: &[u8]) -> Option<&[u8]> {
    /// One TLV: (tag, contents, rest).
    fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, d) = d.split_first()?;
        let (&first, d) = d.split_first()?;
        let (len, d) = if first < 0x80 {
            (first as usize, d)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || d.len() < n {
                return None;
            }
            let len = d[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            (len, &d[n..])
        };
        (d.len() >= len).then(|| (tag, &d[..len], &d[len..]))
    }
    let (tag, outer, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (first_tag, _, rest) = tlv(outer)?;
    match first_tag {
        // SEQUENCE { INTEGER n, INTEGER e }: already PKCS#1.
        0x02 => Some(der),
        // SEQUENCE { AlgorithmIdentifier, BIT STRING { 0, RSAPublicKey } }
        0x30 => {
            let (bit_tag, bits, _) = tlv(rest)?;
            (bit_tag == 0x03 && bits.first() == Some(&0)).then(|| &bits[1..])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::dkim::Signing;

    #[test]
    fn our_own_signature_field_reads_back_and_covers_the_same_data() {
        let header = b"From: a@example.org\r\nSubject: hi\r\n\r\n";
        let s = Signing::new(header, "AAAA", "ed25519-sha256", "Example.org", "s1", 7);
        let field = s.field(b"sig");
        let signed = [field.as_bytes(), header].concat();
        let sigs = signatures(&signed);
        let sig = sigs[0].as_ref().unwrap();
        assert_eq!(sig.domain, "example.org");
        // Every instance signed, and From and Subject once more (so a field
        // added later breaks the signature).
        assert_eq!(sig.headers.join(":"), "from:from:reply-to:subject:subject:date:message-id:to:cc:mime-version:content-type:content-transfer-encoding:in-reply-to:references");
        assert_eq!(sig.signature, b"sig");
        assert_eq!(header_data(&signed, sig), s.data_to_sign());
    }

    #[test]
    fn simple_canonicalization_keeps_fields_as_sent() {
        let header = b"From: a@example.org\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s;\r\n\th=From; bh=AAAA; b=c2ln\r\n ZXh0cmE=\r\n\r\n";
        let sig = signatures(header).remove(0).unwrap();
        assert_eq!(sig.header_canon, Canon::Simple);
        assert_eq!(sig.signature, b"sigextra");
        assert_eq!(
            String::from_utf8_lossy(&header_data(header, &sig)),
            "From: a@example.org\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s;\r\n\th=From; bh=AAAA; b="
        );
    }

    #[test]
    fn bad_signatures_say_why() {
        let one = |v: &str| {
            signatures(format!("DKIM-Signature:{v}\r\n\r\n").as_bytes())
                .remove(0)
                .unwrap_err()
        };
        assert_eq!(
            one(" v=1; a=rsa-sha1; d=x; s=y; h=from; bh=; b="),
            "rsa-sha1 is not accepted (RFC 8301)"
        );
        assert_eq!(
            one(" v=1; a=rsa-sha256; d=x; s=y; h=to; bh=; b="),
            "From is not signed"
        );
        assert_eq!(one(" v=2"), "v= is not 1");
        let base = " v=1; a=rsa-sha256; d=example.org; s=y; h=from; bh=; b=";
        assert_eq!(one(&format!("{base}; d=example.org")), "d= appears twice");
        assert_eq!(
            one(&format!("{base}; i=@evil.example")),
            "i= is not within d="
        );
        assert!(signatures(
            format!("DKIM-Signature:{base}; i=a@sub.example.org\r\n\r\n").as_bytes()
        )[0]
        .is_ok());
        assert_eq!(one(&format!("{base}; x=soon")), "x= is not a number");
        assert_eq!(one(&format!("{base}; t=10; x=9")), "x= is before t=");
        // Only the first MAX_SIGNATURES are read.
        let many = "DKIM-Signature: v=2\r\n".repeat(MAX_SIGNATURES + 1) + "\r\n";
        assert_eq!(signatures(many.as_bytes()).len(), MAX_SIGNATURES);
    }

    #[test]
    fn simple_body_rules() {
        let hash = |pieces: &[&[u8]]| {
            let mut h = SimpleBodyHasher::new();
            for p in pieces {
                h.update(p);
            }
            h.finish()
        };
        let sha = |b: &[u8]| Sha256::digest(b).to_vec();
        // RFC 6376 3.4.6's example body, simple: " C \r\nD \t E\r\n".
        assert_eq!(
            hash(&[b" C \r\nD \t E\r\n\r\n\r\n"]),
            sha(b" C \r\nD \t E\r\n")
        );
        assert_eq!(
            hash(&[b" C \r\nD \t E\r", b"\n\r", b"\n"]),
            sha(b" C \r\nD \t E\r\n")
        );
        assert_eq!(hash(&[b""]), sha(b"\r\n"));
        assert_eq!(hash(&[b"x"]), sha(b"x\r\n"));
    }

    #[test]
    fn key_records_and_spki() {
        let k = parse_key_record("v=DKIM1; k=ed25519; p=AAAA").unwrap();
        assert_eq!((k.key_type, k.public.len()), (KeyType::Ed25519, 3));
        assert!(parse_key_record("v=DKIM1; p=").unwrap().public.is_empty());
        assert!(parse_key_record("v=DKIM2; p=AAAA").is_err());
        assert!(parse_key_record("v=DKIM1; s=email:other; h=sha1:sha256; p=AAAA").is_ok());
        assert!(parse_key_record("v=DKIM1; s=other; p=AAAA").is_err());
        assert!(parse_key_record("v=DKIM1; h=sha1; p=AAAA").is_err());
        let pkcs1 = [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03];
        assert_eq!(rsa_public_key(&pkcs1), Some(&pkcs1[..]));
        let mut spki = vec![0x30, 0x1a, 0x30, 0x0d];
        spki.extend_from_slice(&[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ]);
        spki.extend_from_slice(&[0x03, 0x09, 0x00]);
        spki.extend_from_slice(&pkcs1);
        assert_eq!(rsa_public_key(&spki), Some(&pkcs1[..]));
        assert_eq!(rsa_public_key(&[0x30, 0x80]), None);
    }
}
