//! SASL message formats (RFC 4422) that the SMTP and IMAP sessions share:
//! base64 framing and the PLAIN mechanism (RFC 4616).
//!
//! Checking the credentials is not done here; the session prepares the
//! name and password with `precis` and asks the account store.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Longest PLAIN field accepted, in octets. RFC 4616 2 requires at least
/// 255 for each; a bound keeps a hostile login cheap to refuse.
pub const MAX_PLAIN_FIELD: usize = 1024;

/// Why a SASL response was refused. Each maps to one reply: SMTP 501 5.5.2
/// for `Base64`, 535 5.7.8 for the rest; IMAP `BAD` and `NO`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("invalid UTF-8")]
    Utf8,
    #[error("malformed PLAIN message")]
    Malformed,
    #[error("empty authentication identity")]
    EmptyAuthcid,
    #[error("empty password")]
    EmptyPassword,
    #[error("field longer than {max} octets")]
    TooLong { max: usize },
}

/// The fields of an RFC 4616 PLAIN message.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Who to act as; `None` when empty (act as `authcid`).
    pub authzid: Option<String>,
    pub authcid: String,
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    /// Never shows the password, so it cannot reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Base64 with padding (RFC 4648 4), as SASL exchanges use it.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict base64 with padding; whitespace is not allowed.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, SaslError> {
    STANDARD.decode(s).map_err(|_| SaslError::Base64)
}

/// RFC 4616 2: `[authzid] NUL authcid NUL passwd`, base64-encoded.
pub fn decode_plain(b64: &str) -> Result<PlainCredentials, SaslError> {
    let raw = decode_base64(b64)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if [authzid, authcid, password]
        .iter()
        .any(|f| f.len() > MAX_PLAIN_FIELD)
    {
        return Err(SaslError::TooLong {
            max: MAX_PLAIN_FIELD,
        });
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Utf8);
    let (authzid, authcid, password) = (text(authzid)?, text(authcid)?, text(password)?);
    if authcid.is_empty() {
        return Err(SaslError::EmptyAuthcid);
    }
    if password.is_empty() {
        return Err(SaslError::EmptyPassword);
    }
    Ok(PlainCredentials {
        authzid: (!authzid.is_empty()).then_some(authzid),
        authcid,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(
            encode_base64(b"\0tim\0tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        assert_eq!(
            decode_base64("AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap(),
            b"\0tim\0tanstaaftanstaaf"
        );
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("AHRp bQ=="), Err(SaslError::Base64));
        assert_eq!(decode_base64("AHRpbQ"), Err(SaslError::Base64));
    }

    #[test]
    fn plain_rfc4616_examples() {
        // RFC 4616 4.
        let c = decode_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        assert_eq!(
            c,
            PlainCredentials {
                authzid: None,
                authcid: "tim".into(),
                password: "tanstaaftanstaaf".into()
            }
        );
        let c = decode_plain(&encode_base64(b"Ursel\0Kurt\0xipj3plmq")).unwrap();
        assert_eq!(c.authzid.as_deref(), Some("Ursel"));
        assert_eq!(c.authcid, "Kurt");
        assert_eq!(c.password, "xipj3plmq");
        assert!(!format!("{c:?}").contains("xipj3plmq"));
    }

    #[test]
    fn plain_errors() {
        let e = |raw: &[u8]| decode_plain(&encode_base64(raw)).unwrap_err();
        assert_eq!(e(b"tim\0pw"), SaslError::Malformed);
        assert_eq!(e(b"\0tim\0pw\0"), SaslError::Malformed);
        assert_eq!(e(b""), SaslError::Malformed);
        assert_eq!(e(b"\0\0pw"), SaslError::EmptyAuthcid);
        assert_eq!(e(b"\0tim\0"), SaslError::EmptyPassword);
        assert_eq!(e(b"\0t\xffm\0pw"), SaslError::Utf8);
        assert_eq!(decode_plain("!!!"), Err(SaslError::Base64));
    }

    #[test]
    fn plain_field_length_edge() {
        let long = "x".repeat(MAX_PLAIN_FIELD);
        for (i, raw) in [
            format!("{long}\0u\0p"),
            format!("\0{long}\0p"),
            format!("\0u\0{long}"),
        ]
        .iter()
        .enumerate()
        {
            assert!(decode_plain(&encode_base64(raw.as_bytes())).is_ok(), "{i}");
            let over = raw.replacen(&long, &format!("{long}x"), 1);
            assert_eq!(
                decode_plain(&encode_base64(over.as_bytes())),
                Err(SaslError::TooLong {
                    max: MAX_PLAIN_FIELD
                }),
                "{i}"
            );
        }
    }
}
