//! Modified UTF-7 mailbox names (RFC 3501 5.1.3), for IMAP4rev1 sessions;
//! IMAP4rev2 sessions use UTF-8 names (RFC 9051 5.1).
//!
//! Printable ASCII other than `&` stands for itself, `&` is `&-`, and
//! anything else is UTF-16 in a base64 variant (`,` for `/`, no padding)
//! between `&` and `-`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// `name` in modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

fn flush(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out.push('-');
    units.clear();
}

/// The name a modified UTF-7 `wire` name stands for, or `None` when it is
/// not valid modified UTF-7 (a bad shift sequence, or bytes outside
/// printable ASCII).
pub fn decode(wire: &str) -> Option<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(amp) = rest.find('&') {
        let (plain, shifted) = rest.split_at(amp);
        if !plain.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        out.push_str(plain);
        let end = shifted.find('-')?;
        let b64 = &shifted[1..end];
        if b64.is_empty() {
            out.push('&');
        } else {
            out.push_str(&decode_utf16(b64)?);
        }
        rest = &shifted[end + 1..];
    }
    if !rest.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

fn decode_utf16(b64: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut bytes = Vec::with_capacity(b64.len());
    for c in b64.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    // Leftover bits must be zero padding, and the bytes whole UTF-16 units.
    if bits != 0 || nbits >= 6 || bytes.is_empty() || bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    let s = String::from_utf16(&units).ok()?;
    // RFC 3501 5.1.3: printable ASCII must not be shifted.
    if s.chars().any(|c| (' '..='~').contains(&c)) {
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // RFC 3501 5.1.3.
        assert_eq!(
            encode("~peter/mail/\u{65e5}\u{672c}\u{8a9e}/\u{53f0}\u{5317}"),
            "~peter/mail/&ZeVnLIqe-/&U,BTFw-"
        );
        assert_eq!(
            decode("~peter/mail/&ZeVnLIqe-/&U,BTFw-").as_deref(),
            Some("~peter/mail/\u{65e5}\u{672c}\u{8a9e}/\u{53f0}\u{5317}")
        );
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Some("Tom & Jerry"));
    }

    #[test]
    fn round_trips_and_refusals() {
        for name in [
            "Entwürfe",
            "Gesendete Objekte",
            "😀 mail",
            "a&b/ç/d",
            "Ж",
            "",
        ] {
            assert_eq!(decode(&encode(name)).as_deref(), Some(name), "{name}");
        }
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode("&Jjo"), None); // unterminated
        assert_eq!(decode("&AGE-"), None); // shifted ASCII 'a'
        assert_eq!(decode("&A-"), None); // stray bits
        assert_eq!(decode("Entwürfe"), None); // raw 8-bit
        assert_eq!(decode("&!!-"), None);
    }
}
