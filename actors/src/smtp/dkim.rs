//! DKIM signing of submitted mail (RFC 6376) with a domain's keys:
//! ed25519-sha256 (RFC 8463), made here, and rsa-sha256, imported from a
//! PKCS#8 key (ring signs RSA but cannot make RSA keys). The message
//! parts come from `roost_protocols::message::dkim`; this module holds
//! the keys and signs.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use roost_protocols::message::dkim::Signing;
use roost_store::{DkimAlgorithm, DkimKey};
use sha2::{Digest, Sha256};

/// A new ed25519 key, PKCS#8 DER.
pub fn generate_ed25519() -> Result<Vec<u8>, String> {
    Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| "cannot make an ed25519 key".to_string())
}

/// Checks that `pkcs8` is an RSA key ring can sign with, of at least 1024
/// bits (RFC 8301 3.2: smaller keys are not accepted by verifiers).
pub fn check_rsa(pkcs8: &[u8]) -> Result<(), String> {
    let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| format!("not an RSA PKCS#8 key: {e}"))?;
    if key.public().modulus_len() < 128 {
        return Err("RSA keys for DKIM have at least 1024 bits".into());
    }
    Ok(())
}

/// The TXT record for `selector._domainkey.DOMAIN` (RFC 6376 3.6.1).
pub fn dns_record(key: &DkimKey) -> Result<String, String> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match key.algorithm {
        DkimAlgorithm::Ed25519 => {
            let pair = Ed25519KeyPair::from_pkcs8(&key.pkcs8).map_err(|e| e.to_string())?;
            Ok(format!(
                "v=DKIM1; k=ed25519; p={}",
                b64(pair.public_key().as_ref())
            ))
        }
        DkimAlgorithm::Rsa => {
            let pair = RsaKeyPair::from_pkcs8(&key.pkcs8).map_err(|e| e.to_string())?;
            Ok(format!(
                "v=DKIM1; k=rsa; p={}",
                b64(&rsa_spki(pair.public().as_ref()))
            ))
        }
    }
}

/// A PKCS#1 RSAPublicKey wrapped as a SubjectPublicKeyInfo, the form
/// verifiers read from `p=`.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = body.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let len = n.to_be_bytes();
            let skip = len.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (len.len() - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
        out.extend_from_slice(body);
        out
    }
    // rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
    let algorithm = der(
        0x30,
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ],
    );
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = algorithm;
    body.extend_from_slice(&der(0x03, &bits));
    der(0x30, &body)
}

/// DKIM-Signature fields for a whole message roost made itself (a
/// report), with `domain`'s keys; empty when it has none.
pub fn sign_message(keys: &[DkimKey], message: &[u8], domain: &str, now: i64) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let end = roost_protocols::message::header::header_end(message);
    let mut hasher = roost_protocols::message::dkim::BodyHasher::new();
    hasher.update(&message[end..]);
    sign(keys, &message[..end], &hasher.finish(), domain, now)
}

/// DKIM-Signature fields, one per key, for a message of `domain` with
/// this header section and body hash. A key that cannot sign is skipped.
pub fn sign(keys: &[DkimKey], header: &[u8], body_hash: &str, domain: &str, now: i64) -> String {
    let mut out = String::new();
    for key in keys {
        let algorithm = match key.algorithm {
            DkimAlgorithm::Ed25519 => "ed25519-sha256",
            DkimAlgorithm::Rsa => "rsa-sha256",
        };
        let signing = Signing::new(header, body_hash, algorithm, domain, &key.selector, now);
        let signature = match key.algorithm {
            DkimAlgorithm::Ed25519 => Ed25519KeyPair::from_pkcs8(&key.pkcs8).ok().map(|pair| {
                // RFC 8463 3: Ed25519 signs the SHA-256 of the data.
                let digest = Sha256::digest(signing.data_to_sign());
                pair.sign(&digest).as_ref().to_vec()
            }),
            DkimAlgorithm::Rsa => RsaKeyPair::from_pkcs8(&key.pkcs8).ok().and_then(|pair| {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    signing.data_to_sign(),
                    &mut sig,
                )
                .ok()
                .map(|()| sig)
            }),
        };
        match signature {
            Some(sig) => out.push_str(&signing.field(&sig)),
            None => tracing::warn!(domain, selector = %key.selector, "DKIM key cannot sign"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_key_signs_and_its_record_verifies_the_signature() {
        let key = DkimKey {
            selector: "s1".into(),
            algorithm: DkimAlgorithm::Ed25519,
            pkcs8: generate_ed25519().unwrap(),
            created: 0,
        };
        let record = dns_record(&key).unwrap();
        let p = record.strip_prefix("v=DKIM1; k=ed25519; p=").unwrap();
        let public = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        let header = b"From: a@example.org\r\nSubject: x\r\n\r\n";
        let field = sign(std::slice::from_ref(&key), header, "BH", "example.org", 1);
        // The b= value, folded over lines.
        let b: String = field
            .rsplit_once("b=")
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let sig = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        let signing = Signing::new(header, "BH", "ed25519-sha256", "example.org", "s1", 1);
        let digest = Sha256::digest(signing.data_to_sign());
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
            .verify(&digest, &sig)
            .unwrap();
    }

    #[test]
    fn spki_lengths_use_long_form_past_127() {
        let spki = rsa_spki(&[7u8; 270]);
        // SEQUENCE, two length octets (0x82), then 0x0122 = 290.
        assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
        assert_eq!(spki.len(), 4 + 290);
    }
}
