//! DANE for SMTP (RFC 7672), sans-IO: TLSA records (RFC 6698 2.1) and
//! whether a server's certificate matches one.
//!
//! RFC 7672 3.1: SMTP uses DANE-TA(2) and DANE-EE(3); PKIX-TA(0) and
//! PKIX-EE(1) are treated as unusable (3.1.3 leaves them undefined), as
//! is any selector or matching type not known, or a digest of the wrong
//! length (RFC 7671 9).

use sha2::{Digest, Sha256, Sha512};

/// RFC 6698 2.1.1 certificate usages SMTP uses (RFC 7672 3.1).
pub const DANE_TA: u8 = 2;
pub const DANE_EE: u8 = 3;

/// One TLSA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    /// 0: the whole certificate; 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: the data itself; 1: SHA-256; 2: SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// RFC 7672 3.1, RFC 7671 9: a record roost can use.
    pub fn usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE)
            && matches!(self.selector, 0 | 1)
            && match self.matching {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// Whether the certificate (`cert`, DER) whose SubjectPublicKeyInfo
    /// is `spki` (DER) is the one this record names.
    pub fn matches(&self, cert: &[u8], spki: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert,
            1 => spki,
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => Sha256::digest(selected).as_slice() == self.data.as_slice(),
            2 => Sha512::digest(selected).as_slice() == self.data.as_slice(),
            _ => false,
        }
    }

    /// RFC 8460 4.5 `policy-string` entry: the four fields in
    /// presentation format.
    pub fn presentation(&self) -> String {
        let hex: String = self.data.iter().map(|b| format!("{b:02X}")).collect();
        format!("{} {} {} {hex}", self.usage, self.selector, self.matching)
    }
}

/// What the TLSA records of a host say a connection must be (RFC 7672
/// 2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DanePolicy {
    /// Secure records, at least one usable: TLS, authenticated by them.
    Authenticate(Vec<Tlsa>),
    /// Secure records, none usable: TLS, not authenticated.
    TlsOnly(Vec<Tlsa>),
}

impl DanePolicy {
    /// The policy of a secure, non-empty TLSA RRset; `None` for an empty
    /// one. RFC 7671 9 (digest algorithm agility): of the usable records
    /// of one usage and selector, those with a digest weaker than the
    /// strongest there (SHA-256 beside SHA-512) are set aside; whole data
    /// (matching type 0) always counts.
    pub fn from_records(records: Vec<Tlsa>) -> Option<DanePolicy> {
        if records.is_empty() {
            return None;
        }
        let usable: Vec<&Tlsa> = records.iter().filter(|r| r.usable()).collect();
        let strongest = |r: &Tlsa| {
            usable
                .iter()
                .filter(|o| o.usage == r.usage && o.selector == r.selector && o.matching != 0)
                .map(|o| o.matching)
                .max()
                .unwrap_or(0)
        };
        let usable: Vec<Tlsa> = usable
            .iter()
            .filter(|r| r.matching == 0 || r.matching == strongest(r))
            .map(|r| (*r).clone())
            .collect();
        Some(if usable.is_empty() {
            DanePolicy::TlsOnly(records)
        } else {
            DanePolicy::Authenticate(usable)
        })
    }

    /// The records as RFC 8460 reports them.
    pub fn lines(&self) -> Vec<String> {
        match self {
            DanePolicy::Authenticate(r) | DanePolicy::TlsOnly(r) => {
                r.iter().map(Tlsa::presentation).collect()
            }
        }
    }
}

/// A DNSKEY record in presentation format (RFC 4034 2.2), as a trust
/// anchor file holds them (`dig DNSKEY zone` output): its algorithm and
/// public key. `None` for a line that is no DNSKEY record, or one whose
/// flags lack the zone-key bit (RFC 4034 2.1.1).
pub fn parse_dnskey(line: &str) -> Option<(u8, Vec<u8>)> {
    use base64::Engine as _;
    let line = line.split(';').next()?;
    let mut words = line.split_whitespace();
    words.by_ref().find(|w| w.eq_ignore_ascii_case("DNSKEY"))?;
    let flags: u16 = words.next()?.parse().ok()?;
    let protocol: u8 = words.next()?.parse().ok()?;
    let algorithm: u8 = words.next()?.parse().ok()?;
    let key: String = words.collect();
    if flags & 0x0100 == 0 || protocol != 3 || key.is_empty() {
        return None;
    }
    let key = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
    Some((algorithm, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlsa(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    #[test]
    fn usable_records_follow_rfc_7672_and_7671() {
        assert!(tlsa(3, 1, 1, vec![0; 32]).usable());
        assert!(tlsa(2, 0, 2, vec![0; 64]).usable());
        assert!(tlsa(3, 0, 0, vec![1, 2]).usable());
        // PKIX usages, unknown selector or matching, wrong digest length.
        assert!(!tlsa(1, 1, 1, vec![0; 32]).usable());
        assert!(!tlsa(0, 1, 1, vec![0; 32]).usable());
        assert!(!tlsa(3, 2, 1, vec![0; 32]).usable());
        assert!(!tlsa(3, 1, 3, vec![0; 32]).usable());
        assert!(!tlsa(3, 1, 1, vec![0; 31]).usable());
        assert!(!tlsa(3, 1, 2, vec![0; 32]).usable());
        assert!(!tlsa(3, 0, 0, Vec::new()).usable());
    }

    #[test]
    fn records_match_by_selector_and_digest() {
        let (cert, spki) = (b"certificate".as_slice(), b"public key".as_slice());
        let sha256 = Sha256::digest(spki).to_vec();
        assert!(tlsa(3, 1, 1, sha256.clone()).matches(cert, spki));
        assert!(!tlsa(3, 0, 1, sha256).matches(cert, spki));
        assert!(tlsa(3, 0, 2, Sha512::digest(cert).to_vec()).matches(cert, spki));
        assert!(tlsa(3, 0, 0, cert.to_vec()).matches(cert, spki));
        assert!(!tlsa(3, 0, 0, spki.to_vec()).matches(cert, spki));
    }

    #[test]
    fn dnskey_lines_are_read() {
        assert_eq!(
            parse_dnskey("dane.test. 300 IN DNSKEY 257 3 13 AAEC Aw== ; KSK"),
            Some((13, vec![0, 1, 2, 3]))
        );
        assert_eq!(parse_dnskey("257 3 13 AAEC"), None);
        assert_eq!(parse_dnskey("x. IN DNSKEY 0 3 13 AAEC"), None);
        assert_eq!(parse_dnskey("x. IN DNSKEY 257 2 13 AAEC"), None);
        assert_eq!(parse_dnskey("x. IN DNSKEY 257 3 13"), None);
        assert_eq!(parse_dnskey("x. IN DNSKEY 257 3 13 !!"), None);
    }

    #[test]
    fn policies_from_secure_rrsets() {
        let good = tlsa(3, 1, 1, vec![0xab; 32]);
        let pkix = tlsa(1, 1, 1, vec![0xab; 32]);
        assert_eq!(DanePolicy::from_records(Vec::new()), None);
        assert_eq!(
            DanePolicy::from_records(vec![pkix.clone(), good.clone()]),
            Some(DanePolicy::Authenticate(vec![good.clone()]))
        );
        assert_eq!(
            DanePolicy::from_records(vec![pkix.clone()]),
            Some(DanePolicy::TlsOnly(vec![pkix]))
        );
        // A SHA-512 record sets aside the SHA-256 one of the same usage
        // and selector, not another usage's, nor whole data.
        let strong = tlsa(3, 1, 2, vec![0xcd; 64]);
        let other_usage = tlsa(2, 1, 1, vec![0xef; 32]);
        let whole = tlsa(3, 1, 0, vec![1, 2, 3]);
        assert_eq!(
            DanePolicy::from_records(vec![
                good.clone(),
                strong.clone(),
                other_usage.clone(),
                whole.clone()
            ]),
            Some(DanePolicy::Authenticate(vec![strong, other_usage, whole]))
        );
        assert_eq!(
            DanePolicy::Authenticate(vec![good]).lines(),
            [format!("3 1 1 {}", "AB".repeat(32))]
        );
    }
}
