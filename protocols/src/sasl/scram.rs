//! SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), server side, and
//! the channel bindings of its -PLUS variants: `tls-exporter` (RFC 9266)
//! and `tls-server-end-point` (RFC 5929 4).
//!
//! What a server keeps ([`ScramSecret`]) is derived here too, so the store
//! and the exchange agree on the arithmetic.

use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::KeyInit;
use hmac::{Mac, SimpleHmac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{encode_base64, SaslError};

/// Longest SCRAM client message accepted, in octets. Real ones are well
/// under 300; the bound keeps a hostile exchange cheap to refuse.
pub const MAX_SCRAM_MESSAGE: usize = 4096;

/// RFC 5802 3: what a SCRAM server keeps for a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramSecret {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// The hash a SCRAM mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramSecret {
    /// RFC 5802 3 with SHA-1.
    pub fn sha1(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        derive::<Sha1>(password, salt, iterations)
    }

    /// RFC 7677 3 with SHA-256.
    pub fn sha256(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        derive::<Sha256>(password, salt, iterations)
    }
}

/// The digests SCRAM is used with here.
trait Hash: Digest + BlockSizeUser + Clone + Sync {}
impl<D: Digest + BlockSizeUser + Clone + Sync> Hash for D {}

// RFC 5802 3:
//   SaltedPassword := Hi(Normalize(password), salt, i)
//   ClientKey      := HMAC(SaltedPassword, "Client Key")
//   StoredKey      := H(ClientKey)
//   ServerKey      := HMAC(SaltedPassword, "Server Key")
fn derive<D: Hash>(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
    let mut salted = vec![0u8; <D as Digest>::output_size()];
    // Hi() of RFC 5802 2.2 is PBKDF2 with HMAC as the PRF. It only fails
    // for an HMAC key it cannot take, and HMAC takes any key.
    if pbkdf2::pbkdf2::<SimpleHmac<D>>(password.as_bytes(), salt, iterations, &mut salted).is_err()
    {
        salted.clear();
    }
    let client_key = hmac_of::<D>(&salted, b"Client Key");
    let server_key = hmac_of::<D>(&salted, b"Server Key");
    ScramSecret {
        salt: salt.to_vec(),
        iterations,
        stored_key: D::digest(&client_key).to_vec(),
        server_key,
    }
}

fn hmac_of<D: Hash>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so the error arm is unreachable.
    match <SimpleHmac<D> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            Mac::update(&mut mac, data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => hmac_of::<Sha1>(key, data),
            ScramHash::Sha256 => hmac_of::<Sha256>(key, data),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

/// The channel-binding data a TLS connection offers (RFC 5056). Empty on
/// a plain connection: then no -PLUS mechanism is offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelBinding {
    /// RFC 9266: 32 octets exported with the label
    /// `EXPORTER-Channel-Binding` and no context; TLS 1.3 only.
    pub tls_exporter: Option<Vec<u8>>,
    /// RFC 5929 4.1: the hash of the server's certificate.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBinding {
    /// RFC 9266 2: the exporter label for `tls-exporter`.
    pub const EXPORTER_LABEL: &'static [u8] = b"EXPORTER-Channel-Binding";
    /// RFC 9266 2: the exporter output length.
    pub const EXPORTER_LEN: usize = 32;

    pub fn any(&self) -> bool {
        self.tls_exporter.is_some() || self.tls_server_end_point.is_some()
    }

    fn data(&self, name: &str) -> Option<&[u8]> {
        match name {
            "tls-exporter" => self.tls_exporter.as_deref(),
            "tls-server-end-point" => self.tls_server_end_point.as_deref(),
            _ => None,
        }
    }
}

/// A parsed RFC 5802 7 `client-first-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header as sent (`n,,`, `y,a=x,`, `p=tls-exporter,,`).
    pub gs2_header: String,
    /// `p=` channel-binding name, if the client asked for binding.
    pub binding: Option<String>,
    /// The client believed the server offers no binding (`y`).
    pub binding_supported: bool,
    pub authzid: Option<String>,
    /// `n=`, unescaped (RFC 5802 5.1: `=2C` and `=3D`).
    pub username: String,
    pub nonce: String,
    /// `client-first-message-bare`, as sent.
    pub bare: String,
}

/// RFC 5802 5.1: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_saslname(s: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::Malformed),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 5802 7: `printable = %x21-2B / %x2D-7E` (no comma).
fn printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parses a `client-first-message` (RFC 5802 7).
pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, SaslError> {
    if msg.len() > MAX_SCRAM_MESSAGE {
        return Err(SaslError::TooLong {
            max: MAX_SCRAM_MESSAGE,
        });
    }
    let msg = std::str::from_utf8(msg).map_err(|_| SaslError::Utf8)?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = msg.split_once(',').ok_or(SaslError::Malformed)?;
    let (authzid, bare) = rest.split_once(',').ok_or(SaslError::Malformed)?;
    let gs2_header = msg[..flag.len() + authzid.len() + 2].to_string();
    let (binding, binding_supported) = match flag {
        "n" => (None, false),
        "y" => (None, true),
        _ => match flag.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                (Some(name.to_string()), true)
            }
            _ => return Err(SaslError::Malformed),
        },
    };
    let authzid = match authzid {
        "" => None,
        a => Some(unescape_saslname(
            a.strip_prefix("a=").ok_or(SaslError::Malformed)?,
        )?),
    };
    let mut attrs = bare.split(',');
    // RFC 5802 7: reserved-mext ("m=") must make the exchange fail.
    let user = attrs.next().ok_or(SaslError::Malformed)?;
    let username = unescape_saslname(user.strip_prefix("n=").ok_or(SaslError::Malformed)?)?;
    if username.is_empty() {
        return Err(SaslError::EmptyAuthcid);
    }
    let nonce = attrs
        .next()
        .and_then(|r| r.strip_prefix("r="))
        .filter(|r| printable(r))
        .ok_or(SaslError::Malformed)?
        .to_string();
    // extensions = attr-val *("," attr-val), ignored when well formed.
    let attr_val = |a: &str| {
        let b = a.as_bytes();
        b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'='
    };
    if !attrs.all(attr_val) {
        return Err(SaslError::Malformed);
    }
    Ok(ClientFirst {
        gs2_header,
        binding,
        binding_supported,
        authzid,
        username,
        nonce,
        bare: bare.to_string(),
    })
}

/// The server's side of one SCRAM exchange after the client's first
/// message and the account's secret are known.
#[derive(Debug, Clone)]
pub struct ScramServer {
    hash: ScramHash,
    first: ClientFirst,
    server_first: String,
    nonce: String,
    secret: ScramSecret,
    cbind_data: Vec<u8>,
}

impl ScramServer {
    /// Checks the client's binding request against the mechanism and the
    /// connection (RFC 5802 6), and makes the `server-first-message`.
    /// `server_nonce` must be fresh, unpredictable and printable (the
    /// exchange uses base64 of random bytes).
    pub fn new(
        hash: ScramHash,
        plus: bool,
        first: ClientFirst,
        binding: &ChannelBinding,
        server_nonce: &str,
        secret: ScramSecret,
    ) -> Result<ScramServer, SaslError> {
        let cbind_data = match (&first.binding, plus) {
            (Some(name), true) => binding
                .data(name)
                .ok_or(SaslError::UnsupportedBinding)?
                .to_vec(),
            // Binding asked for on a mechanism without it, or the other
            // way round.
            (Some(_), false) | (None, true) => return Err(SaslError::BindingMismatch),
            // RFC 5802 6: "y" means the client could bind but thought we
            // could not; we offer -PLUS here, so a middlebox removed it.
            (None, false) if first.binding_supported && binding.any() => {
                return Err(SaslError::Downgrade)
            }
            (None, false) => Vec::new(),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            encode_base64(&secret.salt),
            secret.iterations
        );
        Ok(ScramServer {
            hash,
            first,
            server_first,
            nonce,
            secret,
            cbind_data,
        })
    }

    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks a `client-final-message` (RFC 5802 7) and returns the
    /// `server-final-message` (`v=...`) when the proof is right.
    pub fn client_final(&self, msg: &[u8]) -> Result<String, SaslError> {
        if msg.len() > MAX_SCRAM_MESSAGE {
            return Err(SaslError::TooLong {
                max: MAX_SCRAM_MESSAGE,
            });
        }
        let msg = std::str::from_utf8(msg).map_err(|_| SaslError::Utf8)?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(SaslError::Malformed)?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|c| c.strip_prefix("c="))
            .ok_or(SaslError::Malformed)?;
        let nonce = attrs
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .ok_or(SaslError::Malformed)?;
        let mut expected = self.first.gs2_header.as_bytes().to_vec();
        expected.extend_from_slice(&self.cbind_data);
        if super::decode_base64(cbind)? != expected {
            return Err(SaslError::BindingMismatch);
        }
        if nonce != self.nonce {
            return Err(SaslError::Malformed);
        }
        let proof = super::decode_base64(proof)?;
        let auth_message = format!("{},{},{without_proof}", self.first.bare, self.server_first);
        let client_sig = self
            .hash
            .hmac(&self.secret.stored_key, auth_message.as_bytes());
        if proof.len() != client_sig.len() {
            return Err(SaslError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_sig).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&self.hash.digest(&client_key), &self.secret.stored_key) {
            return Err(SaslError::InvalidCredentials);
        }
        let server_sig = self
            .hash
            .hmac(&self.secret.server_key, auth_message.as_bytes());
        Ok(format!("v={}", encode_base64(&server_sig)))
    }

    /// Who the client authenticated as (before normalisation).
    pub fn username(&self) -> &str {
        &self.first.username
    }
}

/// Compares secrets without stopping at the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::decode_base64;

    /// RFC 7677 3 and RFC 5802 5: the published exchanges, replayed
    /// against a server holding only the derived secret.
    fn replay(
        hash: ScramHash,
        secret: ScramSecret,
        client_first: &str,
        server_nonce: &str,
        client_final: &str,
        server_final: &str,
    ) {
        let first = parse_client_first(client_first.as_bytes()).unwrap();
        let server = ScramServer::new(
            hash,
            false,
            first,
            &ChannelBinding::default(),
            server_nonce,
            secret,
        )
        .unwrap();
        assert_eq!(
            server.client_final(client_final.as_bytes()).unwrap(),
            server_final
        );
        // One bit off in the proof fails.
        let (head, proof) = client_final.rsplit_once(",p=").unwrap();
        let mut bad = decode_base64(proof).unwrap();
        bad[0] ^= 1;
        let bad = format!("{head},p={}", encode_base64(&bad));
        assert_eq!(
            server.client_final(bad.as_bytes()),
            Err(SaslError::InvalidCredentials)
        );
    }

    #[test]
    fn rfc7677_sha256_exchange() {
        replay(
            ScramHash::Sha256,
            ScramSecret::sha256(
                "pencil",
                &decode_base64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
                4096,
            ),
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    #[test]
    fn rfc5802_sha1_exchange() {
        // RFC 5802 5; the server nonce part "3rfcNHYJY1ZVvWVs7j" is base64.
        replay(
            ScramHash::Sha1,
            ScramSecret::sha1("pencil", &decode_base64("QSXCR+Q6sek8bf92").unwrap(), 4096),
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn client_first_forms() {
        let f = parse_client_first(b"n,,n=user,r=abc").unwrap();
        assert_eq!(
            (f.gs2_header.as_str(), f.binding, f.binding_supported),
            ("n,,", None, false)
        );
        assert_eq!((f.username.as_str(), f.nonce.as_str()), ("user", "abc"));
        assert_eq!(f.bare, "n=user,r=abc");
        let f = parse_client_first(b"p=tls-exporter,a=u=2Cx,n=u=3D=2C,r=x,e=ext").unwrap();
        assert_eq!(f.gs2_header, "p=tls-exporter,a=u=2Cx,");
        assert_eq!(f.binding.as_deref(), Some("tls-exporter"));
        assert_eq!(f.authzid.as_deref(), Some("u,x"));
        assert_eq!(f.username, "u=,");
        let f = parse_client_first(b"y,,n=u,r=x").unwrap();
        assert!(f.binding_supported && f.binding.is_none());
        for bad in [
            &b"n,,m=ext,n=u,r=x"[..],
            b"q,,n=u,r=x",
            b"n,u,n=u,r=x",
            b"n,,n=u=2X,r=x",
            b"n,,n=u",
            b"n,,n=u,r=a,b",
            b"n,,n=u,r=",
            b"p=,,n=u,r=x",
            b"n,,",
            b"n",
        ] {
            assert!(
                parse_client_first(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_client_first(b"n,,n=,r=x"),
            Err(SaslError::EmptyAuthcid)
        );
    }

    #[test]
    fn message_length_edge() {
        let base = "n,,n=u,r=";
        let at = format!("{base}{}", "x".repeat(MAX_SCRAM_MESSAGE - base.len()));
        assert!(parse_client_first(at.as_bytes()).is_ok());
        let over = format!("{at}x");
        assert_eq!(
            parse_client_first(over.as_bytes()),
            Err(SaslError::TooLong {
                max: MAX_SCRAM_MESSAGE
            })
        );
    }

    #[test]
    fn binding_rules() {
        let secret = ScramSecret::sha256("pw", b"salt", 4096);
        let tls = ChannelBinding {
            tls_exporter: Some(vec![7; 32]),
            tls_server_end_point: None,
        };
        let new = |first: &str, plus: bool, b: &ChannelBinding| {
            ScramServer::new(
                ScramHash::Sha256,
                plus,
                parse_client_first(first.as_bytes()).unwrap(),
                b,
                "nonce",
                secret.clone(),
            )
            .map(|_| ())
        };
        assert_eq!(new("n,,n=u,r=x", false, &tls), Ok(()));
        assert_eq!(new("y,,n=u,r=x", false, &tls), Err(SaslError::Downgrade));
        assert_eq!(new("y,,n=u,r=x", false, &ChannelBinding::default()), Ok(()));
        assert_eq!(new("p=tls-exporter,,n=u,r=x", true, &tls), Ok(()));
        assert_eq!(
            new("p=tls-server-end-point,,n=u,r=x", true, &tls),
            Err(SaslError::UnsupportedBinding)
        );
        assert_eq!(
            new("p=tls-unique,,n=u,r=x", true, &tls),
            Err(SaslError::UnsupportedBinding)
        );
        assert_eq!(
            new("p=tls-exporter,,n=u,r=x", false, &tls),
            Err(SaslError::BindingMismatch)
        );
        assert_eq!(
            new("n,,n=u,r=x", true, &tls),
            Err(SaslError::BindingMismatch)
        );
    }

    /// A -PLUS exchange computed from the client's side, as a client would.
    #[test]
    fn plus_exchange_checks_the_binding_data() {
        let secret = ScramSecret::sha256("pencil", b"0123456789abcdef", 4096);
        let cb = vec![42u8; 32];
        let tls = ChannelBinding {
            tls_exporter: Some(cb.clone()),
            tls_server_end_point: None,
        };
        let first = parse_client_first(b"p=tls-exporter,,n=user,r=clientnonce").unwrap();
        let server =
            ScramServer::new(ScramHash::Sha256, true, first, &tls, "srv", secret.clone()).unwrap();
        let final_for = |data: &[u8]| {
            let mut c = b"p=tls-exporter,,".to_vec();
            c.extend_from_slice(data);
            let without = format!("c={},r=clientnoncesrv", encode_base64(&c));
            let auth = format!("n=user,r=clientnonce,{},{without}", server.server_first());
            // The client side of RFC 5802 3.
            let mut salted = vec![0u8; 32];
            pbkdf2::pbkdf2::<SimpleHmac<Sha256>>(b"pencil", &secret.salt, 4096, &mut salted)
                .unwrap();
            let client_key = hmac_of::<Sha256>(&salted, b"Client Key");
            let stored = Sha256::digest(&client_key);
            let sig = hmac_of::<Sha256>(&stored, auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(k, s)| k ^ s).collect();
            format!("{without},p={}", encode_base64(&proof))
        };
        assert!(server.client_final(final_for(&cb).as_bytes()).is_ok());
        assert_eq!(
            server.client_final(final_for(&[0u8; 32]).as_bytes()),
            Err(SaslError::BindingMismatch)
        );
    }
}
