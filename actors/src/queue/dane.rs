//! DANE for outgoing mail (RFC 7672): which MX hosts of a destination
//! must be reached over TLS, and how their certificates are checked
//! against the hosts' TLSA records. Only answers DNSSEC proved count
//! (the resolver validates itself, `[dns] dnssec`).
//!
//! - The MX lookup failing or bogus delays delivery (2.1.2); an insecure
//!   MX RRset (or no DNSSEC at all) leaves the destination to
//!   opportunistic TLS and MTA-STS (2.2.1).
//! - With a secure MX RRset (or none, the domain then being its own
//!   host, 2.2.2), each host whose address records are secure has its
//!   `_25._tcp.<host>` TLSA records looked up (2.2.2, 2.2.3): a failed
//!   lookup makes the host unusable (2.1.2); secure records, at least one
//!   usable, require TLS authenticated by them; secure records none of
//!   which is usable require TLS without authentication (2.2); none, or
//!   insecure ones, leave the host to opportunistic TLS.
//! - A host that must use TLS and does not offer STARTTLS is skipped
//!   (2.2.3); nothing falls back to plain text.
//! - DANE-EE(3) records match the server's certificate or key, with no
//!   name or date checks (3.1.1, 3.2.1); DANE-TA(2) records match a
//!   certificate of the chain the server sent (3.1.2), which is then the
//!   trust anchor of a PKIX check of the chain, dates included, and of
//!   the names: the host (the TLSA base domain) and the destination domain
//!   (3.2.2). SNI names the host (8.1).
//! - A CNAME at a host is not followed to another TLSA base domain: the
//!   MX host's own name is the base domain.

use super::QueueSettings;
use crate::dns::{MxAnswer, Security};
use roost_protocols::smtp::dane::{DanePolicy, DANE_EE, DANE_TA};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use tracing::info;

/// What DANE asks of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTls {
    /// No secure TLSA records: as without DANE.
    Opportunistic,
    /// TLS, checked (or not) as the policy says.
    Required(DanePolicy),
    /// Not to be used: its DNSSEC answers could not be had.
    Unusable(String),
}

/// The port whose TLSA records are looked up (RFC 7672 2.2.3).
const SMTP_PORT: u16 = 25;

/// The MX hosts of `domain` DNSSEC proved (at most `max`, most
/// preferred first; the domain itself when it has no MX) and what DANE
/// asks of each: `Ok(None)` when DANE does not apply (no validation, an
/// address literal, an insecure MX RRset, a null MX), and the hosts are
/// those of the ordinary lookup; `Err` (delay) when the validated MX
/// lookup failed or is bogus. The secure MX RRset's own hosts are used,
/// never another lookup's (RFC 7672 2.2.1).
pub async fn plan(
    s: &QueueSettings,
    domain: &str,
    max: usize,
) -> Result<Option<Vec<(String, HostTls)>>, String> {
    if !s.dns.validates() || domain.starts_with('[') {
        return Ok(None);
    }
    let hosts = match s.dns.mx_dnssec(domain).await {
        Err(_) => {
            return Err(format!(
                "DNSSEC: the MX lookup of {domain} failed or is bogus (RFC 7672 2.1.2)"
            ))
        }
        Ok((_, Security::Insecure)) | Ok((MxAnswer::Null | MxAnswer::NoDomain, _)) => {
            return Ok(None)
        }
        // No MX: the domain is its own host; its address records say
        // whether DANE applies (2.2.2).
        Ok((MxAnswer::NoMx, Security::Secure)) => vec![domain.to_string()],
        Ok((MxAnswer::Hosts(h), Security::Secure)) => h.into_iter().take(max).collect(),
    };
    let mut out = Vec::with_capacity(hosts.len());
    for host in hosts {
        let tls = host_tls(s, &host).await;
        out.push((host, tls));
    }
    if out.iter().any(|(_, h)| *h != HostTls::Opportunistic) {
        info!(%domain, ?out, "DANE applies");
    }
    Ok(Some(out))
}

async fn host_tls(s: &QueueSettings, host: &str) -> HostTls {
    match s.dns.address_security(host).await {
        Err(_) => return HostTls::Unusable(format!("DNSSEC: the address lookup of {host} failed")),
        Ok(Some(Security::Secure)) => {}
        Ok(_) => return HostTls::Opportunistic,
    }
    match s.dns.tlsa(host, SMTP_PORT).await {
        Err(_) => HostTls::Unusable(format!(
            "DNSSEC: the TLSA lookup of _{SMTP_PORT}._tcp.{host} failed"
        )),
        Ok(Some((records, Security::Secure))) => {
            DanePolicy::from_records(records).map_or(HostTls::Opportunistic, HostTls::Required)
        }
        Ok(_) => HostTls::Opportunistic,
    }
}

/// A TLS client configuration for a host under `policy`: its certificate
/// checked against the TLSA records (names: the host, then `domain`), or
/// not checked at all when none is usable.
pub fn tls_config(policy: &DanePolicy, host: &str, domain: &str) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(DaneVerifier {
        records: match policy {
            DanePolicy::Authenticate(r) => Some(r.clone()),
            DanePolicy::TlsOnly(_) => None,
        },
        names: vec![host.to_string(), domain.to_string()],
        signatures: super::delivery::AnyCertificate(provider.clone()),
    });
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => Arc::new(
            b.dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
        ),
        Err(e) => super::delivery::no_tls(e),
    }
}

#[derive(Debug)]
struct DaneVerifier {
    /// The usable records; `None`: TLS without authentication.
    records: Option<Vec<roost_protocols::smtp::dane::Tlsa>>,
    /// Reference identifiers for DANE-TA(2), in order (RFC 7672 3.2.2).
    names: Vec<String>,
    /// The handshake's signatures are checked as always.
    signatures: super::delivery::AnyCertificate,
}

fn dane_error(why: &str) -> rustls::Error {
    rustls::Error::General(format!("DANE: {why}"))
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(records) = &self.records else {
            return Ok(ServerCertVerified::assertion());
        };
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| dane_error(&format!("the certificate cannot be read: {e}")))?;
        // DANE-EE(3): the server's own certificate or key; no names, no
        // dates (RFC 7672 3.1.1).
        let spki = ee.subject_public_key_info();
        if records
            .iter()
            .any(|r| r.usage == DANE_EE && r.matches(end_entity.as_ref(), spki.as_ref()))
        {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA(2): a certificate the server sent is the anchor (3.1.2).
        for (i, ca) in intermediates.iter().enumerate() {
            let Ok(parsed) = webpki::EndEntityCert::try_from(ca) else {
                continue;
            };
            let ca_spki = parsed.subject_public_key_info();
            if !records
                .iter()
                .any(|r| r.usage == DANE_TA && r.matches(ca.as_ref(), ca_spki.as_ref()))
            {
                continue;
            }
            let anchor = webpki::anchor_from_trusted_cert(ca)
                .map_err(|e| dane_error(&format!("the trust anchor cannot be used: {e}")))?;
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &intermediates[..i],
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map_err(|e| dane_error(&format!("the chain to the TLSA trust anchor: {e}")))?;
            let named = self.names.iter().any(|n| {
                ServerName::try_from(n.as_str())
                    .is_ok_and(|name| ee.verify_is_valid_for_subject_name(&name).is_ok())
            });
            return if named {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(dane_error(
                    "the certificate is not valid for the host's name",
                ))
            };
        }
        Err(dane_error(
            "no TLSA record matches the server's certificate",
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}
