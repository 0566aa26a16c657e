//! TLS for every listener: certificates chosen by the name the client asks
//! for (SNI), session tickets and client-certificate requests set per
//! listener, and what a finished handshake tells a session (channel
//! binding, the client's public key).
//!
//! Certificate choice: a name the client sends picks the certificate whose
//! DNS names cover it (wildcards one label deep). No name (clients that
//! connect by address) gets the first certificate, the MX host's. An
//! unknown name fails the handshake, except on the MX port, where senders
//! often ask for a name the server cannot know (the MX host's name is
//! what they should have asked for) and get the first certificate too.

use crate::listener::Protocol;
use roost_protocols::sasl::ChannelBinding;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use std::sync::Arc;
use webpki::EndEntityCert;

/// Certificates roost serves at most (each costs a comparison per
/// handshake that names an unknown host).
pub const MAX_CERTIFICATES: usize = 100;
/// Session tickets sent after a TLS 1.3 handshake where tickets are on.
pub const TLS13_TICKETS: usize = 2;

/// One certificate and what is known of it.
#[derive(Debug)]
struct Entry {
    key: Arc<CertifiedKey>,
    /// Lower-case DNS names from its subjectAltName.
    names: Vec<String>,
    /// RFC 5929 4.1 `tls-server-end-point` data, where the signature
    /// algorithm defines it.
    end_point: Option<Vec<u8>>,
}

/// The certificates, first one first.
#[derive(Debug)]
pub struct Certificates {
    entries: Vec<Entry>,
}

impl Certificates {
    /// From certificate chains and keys; the first is the MX host's.
    pub fn new(
        pairs: Vec<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        provider: &CryptoProvider,
    ) -> Result<Certificates, String> {
        if pairs.is_empty() {
            return Err("no certificate configured".into());
        }
        if pairs.len() > MAX_CERTIFICATES {
            return Err(format!("more than {MAX_CERTIFICATES} certificates"));
        }
        let mut entries = Vec::new();
        for (n, (chain, key)) in pairs.into_iter().enumerate() {
            let leaf = chain
                .first()
                .cloned()
                .ok_or_else(|| format!("certificate {}: empty chain", n + 1))?;
            let parsed = EndEntityCert::try_from(&leaf)
                .map_err(|e| format!("certificate {}: {e:?}", n + 1))?;
            let names = parsed
                .valid_dns_names()
                .map(|s| s.to_ascii_lowercase())
                .collect();
            let end_point = end_point_hash(&leaf);
            let key = CertifiedKey::from_der(chain, key, provider)
                .map_err(|e| format!("certificate {}: {e}", n + 1))?;
            entries.push(Entry {
                key: Arc::new(key),
                names,
                end_point,
            });
        }
        Ok(Certificates { entries })
    }

    /// The certificate for `sni`; see the module documentation.
    fn find(&self, sni: Option<&str>, fallback: bool) -> Option<&Entry> {
        let Some(name) = sni else {
            return self.entries.first();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let covers = |pattern: &str| match pattern.strip_prefix("*.") {
            Some(parent) => name
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => pattern == name,
        };
        self.entries
            .iter()
            .find(|e| e.names.iter().any(|p| covers(p)))
            .or_else(|| fallback.then(|| self.entries.first()).flatten())
    }

    /// The DNS names of each certificate, first one first.
    pub fn names(&self) -> Vec<Vec<String>> {
        self.entries.iter().map(|e| e.names.clone()).collect()
    }
}

/// RFC 5929 4.1: the hash of the certificate under its signature
/// algorithm's hash (SHA-224 to SHA-512), SHA-256 where that is MD5 or
/// SHA-1; undefined (none) for algorithms without one hash (Ed25519,
/// RSA-PSS, whose hash is in its parameters).
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, ... }
    let (_, cert_body) = der_element(cert, 0x30)?;
    let (rest, _tbs) = der_element(cert_body, 0x30)?;
    let (_, alg) = der_element(rest, 0x30)?;
    let (_, oid) = der_element(alg, 0x06)?;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let hash = match oid {
        // md5, sha1, sha256 WithRSAEncryption; ecdsa-with-SHA1, -SHA256
        [r @ .., 4 | 5 | 11] if r == RSA => 256,
        [e @ .., 1] if e == ECDSA => 256,
        [e @ .., 3, 2] if e == ECDSA => 256,
        [r @ .., 14] if r == RSA => 224,
        [e @ .., 3, 1] if e == ECDSA => 224,
        [r @ .., 12] if r == RSA => 384,
        [e @ .., 3, 3] if e == ECDSA => 384,
        [r @ .., 13] if r == RSA => 512,
        [e @ .., 3, 4] if e == ECDSA => 512,
        _ => return None,
    };
    Some(match hash {
        224 => Sha224::digest(cert).to_vec(),
        256 => Sha256::digest(cert).to_vec(),
        384 => Sha384::digest(cert).to_vec(),
        _ => Sha512::digest(cert).to_vec(),
    })
}

/// One DER element with the tag `tag` at the start of `input`: the bytes
/// after it, and its contents. Lengths up to four octets; nothing else is
/// needed for certificates.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (&rest[len..], &rest[..len]))
}

/// Picks a certificate by SNI for one listener.
#[derive(Debug)]
struct Resolver {
    certs: Arc<Certificates>,
    /// The MX port: an unknown name gets the first certificate.
    fallback: bool,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certs
            .find(hello.server_name(), self.fallback)
            .map(|e| e.key.clone())
    }
}

/// Asks for a client certificate without requiring one, and accepts any:
/// only its public key matters, matched against the keys accounts
/// registered (no CA, no expiry). The handshake still proves the client
/// holds the private key.
#[derive(Debug)]
struct AnyClientKey {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientKey {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // It must at least parse: the key is read from it later.
        EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// How one kind of listener does TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerTls {
    /// Resume sessions with TLS 1.3 tickets (and TLS 1.2 session ids).
    pub session_tickets: bool,
    /// Ask clients for a certificate (EXTERNAL, PREAUTH).
    pub client_certificates: bool,
}

impl ListenerTls {
    /// The defaults: tickets everywhere but the MX port, where some large
    /// senders fail with them; client certificates asked for nowhere.
    pub fn default_for(protocol: Protocol) -> ListenerTls {
        ListenerTls {
            session_tickets: protocol != Protocol::Smtp,
            client_certificates: false,
        }
    }
}

/// Every listener's TLS: the certificates and each listener kind's
/// settings.
#[derive(Debug)]
pub struct TlsSetup {
    certs: Arc<Certificates>,
    provider: Arc<CryptoProvider>,
    listeners: Vec<(Protocol, ListenerTls)>,
}

impl TlsSetup {
    pub fn new(
        certs: Certificates,
        provider: Arc<CryptoProvider>,
        listeners: Vec<(Protocol, ListenerTls)>,
    ) -> TlsSetup {
        TlsSetup {
            certs: Arc::new(certs),
            provider,
            listeners,
        }
    }

    pub fn certificates(&self) -> &Certificates {
        &self.certs
    }

    pub fn listener(&self, protocol: Protocol) -> ListenerTls {
        self.listeners
            .iter()
            .find(|(p, _)| *p == protocol)
            .map_or(ListenerTls::default_for(protocol), |(_, l)| *l)
    }

    /// The rustls configuration of a `protocol` listener, offering `alpn`.
    pub fn server_config(
        &self,
        protocol: Protocol,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, String> {
        let settings = self.listener(protocol);
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if settings.client_certificates {
            builder.with_client_cert_verifier(Arc::new(AnyClientKey {
                algorithms: self.provider.signature_verification_algorithms,
            }))
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(Arc::new(Resolver {
            certs: self.certs.clone(),
            fallback: protocol == Protocol::Smtp,
        }));
        if settings.session_tickets {
            config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
            config.send_tls13_tickets = TLS13_TICKETS;
        } else {
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// What a finished handshake offers the session.
    pub fn facts(&self, conn: &rustls::ServerConnection, protocol: Protocol) -> TlsFacts {
        let tls13 = conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        // RFC 9266 2: tls-exporter is defined for TLS 1.3.
        let tls_exporter = tls13
            .then(|| {
                conn.export_keying_material(
                    [0u8; ChannelBinding::EXPORTER_LEN],
                    ChannelBinding::EXPORTER_LABEL,
                    None,
                )
                .ok()
                .map(|out| out.to_vec())
            })
            .flatten();
        let tls_server_end_point = self
            .certs
            .find(conn.server_name(), protocol == Protocol::Smtp)
            .and_then(|e| e.end_point.clone());
        let client_key = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| EndEntityCert::try_from(leaf).ok())
            .map(|c| c.subject_public_key_info().as_ref().to_vec());
        TlsFacts {
            binding: ChannelBinding {
                tls_exporter,
                tls_server_end_point,
            },
            client_key,
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        }
    }
}

/// The SubjectPublicKeyInfo (DER) of a certificate (DER), if it parses.
pub fn public_key_of(cert: &[u8]) -> Option<Vec<u8>> {
    let der = CertificateDer::from(cert);
    let parsed = EndEntityCert::try_from(&der).ok()?;
    Some(parsed.subject_public_key_info().as_ref().to_vec())
}

/// What a session learns from its TLS handshake.
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    pub binding: ChannelBinding,
    /// The client certificate's SubjectPublicKeyInfo (DER), if it sent one.
    pub client_key: Option<Vec<u8>>,
    /// The ALPN protocol agreed on.
    pub alpn: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        (
            vec![ck.cert.der().clone()],
            PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap(),
        )
    }

    fn certs() -> Certificates {
        Certificates::new(
            vec![
                self_signed(&["mx.example.org"]),
                self_signed(&["imap.example.net", "*.example.com"]),
            ],
            &rustls::crypto::ring::default_provider(),
        )
        .unwrap()
    }

    #[test]
    fn names_pick_certificates() {
        let c = certs();
        let names = |e: Option<&Entry>| e.map(|e| e.names.clone());
        let mx = Some(vec!["mx.example.org".to_string()]);
        let other = Some(vec![
            "imap.example.net".to_string(),
            "*.example.com".to_string(),
        ]);
        assert_eq!(names(c.find(None, false)), mx);
        assert_eq!(names(c.find(Some("MX.Example.org."), false)), mx);
        assert_eq!(names(c.find(Some("imap.example.net"), false)), other);
        assert_eq!(names(c.find(Some("mail.example.com"), false)), other);
        // Wildcards cover one label, not the parent or two labels.
        assert_eq!(names(c.find(Some("example.com"), false)), None);
        assert_eq!(names(c.find(Some("a.b.example.com"), false)), None);
        // Unknown: refused, except with the MX port's fallback.
        assert_eq!(names(c.find(Some("unknown.test"), false)), None);
        assert_eq!(names(c.find(Some("unknown.test"), true)), mx);
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        // rcgen signs with ECDSA P-256 SHA-256 by default.
        let (chain, _) = self_signed(&["a.test"]);
        assert_eq!(
            end_point_hash(&chain[0]),
            Some(Sha256::digest(&chain[0]).to_vec())
        );
        assert_eq!(end_point_hash(b"\x30\x00"), None);
        assert_eq!(end_point_hash(b""), None);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der_element(b"\x06\x01\x2a\xff", 6),
            Some((&b"\xff"[..], &b"\x2a"[..]))
        );
        assert_eq!(der_element(b"\x06\x02\x2a", 6), None);
        assert_eq!(
            der_element(b"\x06\x81\x01\x2a", 6),
            Some((&b""[..], &b"\x2a"[..]))
        );
        assert_eq!(der_element(b"\x06\x85\x00\x00\x00\x00\x01", 6), None);
        assert_eq!(der_element(b"\x05\x00", 6), None);
    }

    #[test]
    fn too_many_or_no_certificates_are_refused() {
        let provider = rustls::crypto::ring::default_provider();
        assert!(Certificates::new(vec![], &provider).is_err());
        let many = (0..=MAX_CERTIFICATES)
            .map(|_| self_signed(&["x.test"]))
            .collect();
        assert_eq!(
            Certificates::new(many, &provider).unwrap_err(),
            format!("more than {MAX_CERTIFICATES} certificates")
        );
    }
}
