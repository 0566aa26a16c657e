//! DKIM verification of incoming mail (RFC 6376 6) and the
//! Authentication-Results field that reports it (RFC 8601), kept in the
//! stored prefix: the sender's bytes are never changed.

use crate::dns::Dns;
use roost_protocols::message::dkim_verify::{
    header_data, parse_key_record, rsa_public_key, Algorithm, Canon, KeyType, Signature,
};
use sha2::{Digest, Sha256};

/// The body hashes a message's signatures need, computed as the body
/// streams in.
#[derive(Default)]
pub struct BodyHashes {
    pub simple: Option<roost_protocols::message::dkim_verify::SimpleBodyHasher>,
    pub relaxed: Option<roost_protocols::message::dkim::BodyHasher>,
}

/// One signature's result, as Authentication-Results writes it.
pub struct Outcome {
    /// pass, fail, neutral, temperror or permerror.
    pub result: &'static str,
    pub reason: Option<String>,
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub b: Option<String>,
}

impl Outcome {
    fn of(sig: &Signature, result: &'static str, reason: Option<&str>) -> Outcome {
        Outcome {
            result,
            reason: reason.map(str::to_string),
            domain: Some(sig.domain.clone()),
            selector: Some(sig.selector.clone()),
            b: Some(sig.b_text.chars().take(8).collect()),
        }
    }

    /// `dkim=pass header.d=... header.s=... header.b=...`
    pub fn resinfo(&self) -> String {
        let mut s = format!("dkim={}", self.result);
        if let Some(r) = &self.reason {
            // A comment (RFC 8601 2.2) of plain text only.
            let r: String = r
                .chars()
                .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\') || *c == ' ')
                .collect();
            s.push_str(&format!(" ({r})"));
        }
        if let Some(d) = &self.domain {
            s.push_str(&format!(" header.d={d}"));
        }
        if let Some(sel) = &self.selector {
            s.push_str(&format!(" header.s={sel}"));
        }
        if let Some(b) = &self.b {
            s.push_str(&format!(" header.b={b}"));
        }
        s
    }
}

/// Checks every signature read from the header with the body hashes
/// computed for it and the keys DNS gives.
pub async fn verify(
    dns: &Dns,
    header: &[u8],
    signatures: Vec<Result<Signature, String>>,
    simple: Option<Vec<u8>>,
    relaxed: Option<Vec<u8>>,
    now: i64,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let problem = roost_protocols::message::dkim_verify::header_problem(header);
    for sig in signatures {
        let sig = match sig {
            Ok(s) => s,
            Err(why) => {
                out.push(Outcome {
                    result: "permerror",
                    reason: Some(why),
                    domain: None,
                    selector: None,
                    b: None,
                });
                continue;
            }
        };
        if let Some(why) = problem {
            out.push(Outcome::of(&sig, "permerror", Some(why)));
            continue;
        }
        out.push(check(dns, header, &sig, &simple, &relaxed, now).await);
    }
    out
}

async fn check(
    dns: &Dns,
    header: &[u8],
    sig: &Signature,
    simple: &Option<Vec<u8>>,
    relaxed: &Option<Vec<u8>>,
    now: i64,
) -> Outcome {
    if sig.length.is_some() {
        return Outcome::of(sig, "neutral", Some("l= is not verified"));
    }
    if sig.expires.is_some_and(|x| x < now) {
        return Outcome::of(sig, "fail", Some("signature expired"));
    }
    let body = match sig.body_canon {
        Canon::Simple => simple,
        Canon::Relaxed => relaxed,
    };
    if body.as_deref() != Some(sig.body_hash.as_slice()) {
        return Outcome::of(sig, "fail", Some("body hash did not verify"));
    }
    let name = format!("{}._domainkey.{}", sig.selector, sig.domain);
    let txt = match dns.txt(&name).await {
        Ok(Some(t)) => t,
        Ok(None) => return Outcome::of(sig, "permerror", Some("no key")),
        Err(e) => return Outcome::of(sig, "temperror", Some(&e)),
    };
    let key = match parse_key_record(&txt) {
        Ok(k) => k,
        Err(e) => return Outcome::of(sig, "permerror", Some(&e)),
    };
    if key.public.is_empty() {
        return Outcome::of(sig, "permerror", Some("key revoked"));
    }
    let (header, sig_c) = (header.to_vec(), sig.clone());
    let checked =
        crate::task::blocking(move || Ok::<_, String>(signature_holds(&header, &sig_c, &key)))
            .await;
    match checked {
        Ok(Ok(true)) => Outcome::of(sig, "pass", None),
        Ok(Ok(false)) => Outcome::of(sig, "fail", Some("signature did not verify")),
        Ok(Err(why)) => Outcome::of(sig, "permerror", Some(why)),
        Err(e) => Outcome::of(sig, "temperror", Some(&e)),
    }
}

/// Whether `sig` holds over `header` with `key` (CPU work: run it off the
/// async workers).
fn signature_holds(
    header: &[u8],
    sig: &Signature,
    key: &roost_protocols::message::dkim_verify::KeyRecord,
) -> Result<bool, &'static str> {
    let data = header_data(header, sig);
    Ok(match (sig.algorithm, key.key_type) {
        (Algorithm::Ed25519Sha256, KeyType::Ed25519) => {
            let digest = Sha256::digest(&data);
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key.public)
                .verify(&digest, &sig.signature)
                .is_ok()
        }
        (Algorithm::RsaSha256, KeyType::Rsa) => match rsa_public_key(&key.public) {
            Some(pkcs1) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                pkcs1,
            )
            .verify(&data, &sig.signature)
            .is_ok(),
            None => return Err("unreadable RSA key"),
        },
        _ => return Err("key type does not match a="),
    })
}

/// RFC 8601 2.2: the field, with this server's name as authserv-id.
pub fn authentication_results(hostname: &str, outcomes: &[Outcome]) -> String {
    let mut s = format!("Authentication-Results: {hostname}");
    if outcomes.is_empty() {
        s.push_str(";\r\n\tdkim=none");
    }
    for o in outcomes {
        s.push_str(";\r\n\t");
        s.push_str(&o.resinfo());
    }
    s.push_str("\r\n");
    s
}
