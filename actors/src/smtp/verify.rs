//! The checks of incoming mail: iprev (RFC 8601 3), SPF (RFC 7208), DKIM
//! verification (RFC 6376 6) and DMARC (RFC 7489), and the
//! Authentication-Results field that reports them (RFC 8601), kept in the
//! stored prefix: the sender's bytes are never changed.

use crate::dns::Dns;
use roost_protocols::message::arc::{seal_data, Chain};
use roost_protocols::message::dkim_verify::{
    header_data, parse_key_record, rsa_public_key, Algorithm, Canon, KeyType, Signature,
};
use roost_protocols::smtp::dmarc::{evaluate, Evaluation, Inputs, Verdict};
use roost_protocols::smtp::spf::{
    check_host, comment_text, valid_domain, AuthDns, Query, SpfResult, MAX_PTR_NAMES,
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

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
            let r = comment_text(r);
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
    data_holds(
        &header_data(header, sig),
        sig.algorithm,
        &sig.signature,
        key,
    )
}

/// Whether `signature` signs `data` (the header data of a signature, or
/// what an ARC seal covers) with `key`.
fn data_holds(
    data: &[u8],
    algorithm: Algorithm,
    signature: &[u8],
    key: &roost_protocols::message::dkim_verify::KeyRecord,
) -> Result<bool, &'static str> {
    let sig = Signed {
        algorithm,
        signature,
    };
    Ok(match (sig.algorithm, key.key_type) {
        (Algorithm::Ed25519Sha256, KeyType::Ed25519) => {
            let digest = Sha256::digest(data);
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key.public)
                .verify(&digest, sig.signature)
                .is_ok()
        }
        (Algorithm::RsaSha256, KeyType::Rsa) => match rsa_public_key(&key.public) {
            Some(pkcs1) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                pkcs1,
            )
            .verify(data, sig.signature)
            .is_ok(),
            None => return Err("unreadable RSA key"),
        },
        _ => return Err("key type does not match a="),
    })
}

/// RFC 8601 3: iprev, the client's address named by a PTR record whose
/// name leads back to it.
#[derive(Debug, Clone)]
pub struct Iprev {
    /// pass, fail or temperror.
    pub result: &'static str,
    /// The confirmed name, when it passed.
    pub name: Option<String>,
}

/// The checks of the envelope, made while the message streams in: iprev,
/// and SPF for the HELO and MAIL FROM identities (RFC 7208 2.3, 2.4).
#[derive(Debug, Clone)]
pub struct EnvelopeChecks {
    pub ip: IpAddr,
    pub iprev: Iprev,
    /// `None` when the HELO argument is an address literal or no domain.
    pub helo: Option<SpfResult>,
    pub mail_from: SpfResult,
    pub query: Query,
    /// The reverse-path, `None` for the null sender.
    pub sender: Option<String>,
}

impl EnvelopeChecks {
    /// The domain SPF authenticated for DMARC: MAIL FROM's, or HELO's for
    /// a null sender (RFC 7489 3.1.2).
    pub fn spf_domain(&self) -> &str {
        &self.query.sender_domain
    }
}

/// How long the checks of one message may take, from MAIL for iprev and
/// SPF, and from the end of the data for DKIM, ARC and DMARC: a check not
/// done by then is a temperror. The final reply never waits longer, well
/// inside a client's read timeout (RFC 5321 4.5.3.2.6 gives it 10
/// minutes; impatient clients wait 30 seconds).
pub const CHECKS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs iprev and both SPF checks, within [`CHECKS_DEADLINE`].
pub async fn check_envelope<D: AuthDns>(
    dns: D,
    ip: IpAddr,
    helo: String,
    sender: Option<String>,
) -> EnvelopeChecks {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let checked = tokio::time::timeout(
        CHECKS_DEADLINE,
        envelope_checks(&dns, ip, helo.clone(), sender.clone()),
    )
    .await;
    checked.unwrap_or_else(|_| EnvelopeChecks {
        ip,
        iprev: Iprev {
            result: "temperror",
            name: None,
        },
        helo: valid_domain(&helo).then_some(SpfResult::TempError),
        mail_from: SpfResult::TempError,
        query: Query::mail_from(ip, sender.as_deref(), &helo),
        sender,
    })
}

async fn envelope_checks<D: AuthDns>(
    dns: &D,
    ip: IpAddr,
    helo: String,
    sender: Option<String>,
) -> EnvelopeChecks {
    let query = Query::mail_from(ip, sender.as_deref(), &helo);
    let helo_query = Query::helo(ip, &helo);
    let iprev = iprev(dns, ip).await;
    let helo_result = if valid_domain(&helo) {
        Some(check_host(dns, &helo_query, &helo).await)
    } else {
        None
    };
    let mail_from = match (&sender, helo_result) {
        // The null sender's identity is the HELO name, already checked.
        (None, Some(r)) => r,
        _ => check_host(dns, &query, &query.sender_domain.clone()).await,
    };
    EnvelopeChecks {
        ip,
        iprev,
        helo: helo_result,
        mail_from,
        query,
        sender,
    }
}

/// RFC 8601 3: at most [`MAX_PTR_NAMES`] names are tried.
async fn iprev<D: AuthDns>(dns: &D, ip: IpAddr) -> Iprev {
    let names = match AuthDns::ptr(dns, ip).await {
        // RFC 8601 2.7.3: no PTR data published is a permerror.
        Ok(n) if n.is_empty() => {
            return Iprev {
                result: "permerror",
                name: None,
            }
        }
        Ok(n) => n,
        Err(_) => {
            return Iprev {
                result: "temperror",
                name: None,
            }
        }
    };
    let mut failed_lookup = false;
    for name in names.into_iter().take(MAX_PTR_NAMES) {
        let found: Result<Vec<IpAddr>, _> = match ip {
            IpAddr::V4(_) => dns
                .a(&name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V4).collect()),
            IpAddr::V6(_) => dns
                .aaaa(&name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V6).collect()),
        };
        match found {
            Ok(addrs) if addrs.contains(&ip) => {
                return Iprev {
                    result: "pass",
                    name: Some(name),
                }
            }
            Ok(_) => {}
            Err(_) => failed_lookup = true,
        }
    }
    Iprev {
        result: if failed_lookup { "temperror" } else { "fail" },
        name: None,
    }
}

/// DMARC for a message whose envelope and signatures were checked.
pub async fn check_dmarc(
    dns: &Dns,
    author_domain: &str,
    envelope: &EnvelopeChecks,
    dkim: &[Outcome],
    sample: u8,
) -> Evaluation {
    let inputs = Inputs {
        author: author_domain.to_string(),
        spf: envelope.mail_from,
        spf_domain: envelope.spf_domain().to_string(),
        dkim: dkim
            .iter()
            .filter_map(|o| {
                let verdict = match o.result {
                    "pass" => Verdict::Pass,
                    "temperror" => Verdict::TempError,
                    _ => Verdict::Other,
                };
                Some((o.domain.clone()?, verdict))
            })
            .collect(),
    };
    evaluate(dns, &inputs, sample).await
}

/// What goes into Authentication-Results besides DKIM.
pub struct Results<'a> {
    pub envelope: Option<&'a EnvelopeChecks>,
    pub dkim: &'a [Outcome],
    /// A DKIM result that stands for all signatures (a header too large
    /// to read).
    pub dkim_instead: Option<&'a str>,
    /// The ARC result and its comment (RFC 8617 10.1).
    pub arc: Option<String>,
    /// Each DMARC result and its resinfo's rest, e.g. `fail (p=reject
    /// dis=reject) header.from=example.org`: one per author domain.
    pub dmarc: Vec<String>,
}

/// RFC 8601 2.2 and 2.7: the field, with this server's name as
/// authserv-id; iprev, SPF, DKIM, ARC and DMARC in that order.
pub fn authentication_results(hostname: &str, r: &Results) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(e) = r.envelope {
        let mut iprev = format!(
            "iprev={} policy.iprev={}",
            e.iprev.result,
            property(&e.ip.to_string())
        );
        if let Some(n) = &e.iprev.name {
            iprev.push_str(&format!(" ({})", comment_text(n)));
        }
        parts.push(iprev);
        // A null sender has no MAIL FROM identity: its SPF result is the
        // HELO one below (RFC 7208 2.4).
        if let Some(s) = &e.sender {
            parts.push(format!(
                "spf={} smtp.mailfrom={}",
                e.mail_from.as_str(),
                property(s)
            ));
        }
        parts.push(match e.helo {
            Some(h) => format!("spf={} smtp.helo={}", h.as_str(), property(&e.query.helo)),
            None => format!("spf=none smtp.helo={}", property(&e.query.helo)),
        });
    }
    match r.dkim_instead {
        Some(d) => parts.push(d.to_string()),
        None if r.dkim.is_empty() => parts.push("dkim=none".into()),
        None => parts.extend(r.dkim.iter().map(Outcome::resinfo)),
    }
    if let Some(a) = &r.arc {
        parts.push(format!("arc={a}"));
    }
    for d in &r.dmarc {
        parts.push(format!("dmarc={d}"));
    }
    let mut s = format!("Authentication-Results: {hostname}");
    for p in parts {
        s.push_str(";\r\n\t");
        s.push_str(&p);
    }
    s.push_str("\r\n");
    s
}

/// A property value (RFC 8601 2.2 pvalue): a domain name, or an address
/// whose local part is a dot-atom, as is; anything else (an IPv6 address,
/// a HELO argument that is no name) quoted.
fn property(s: &str) -> String {
    let domain = |d: &str| {
        !d.is_empty()
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    let atom = |l: &str| {
        !l.is_empty()
            && l.split('.').all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
            })
    };
    let plain = match s.rsplit_once('@') {
        Some((local, d)) => atom(local) && domain(d),
        None => domain(s),
    };
    if plain {
        s.to_string()
    } else {
        let inner: String = s
            .chars()
            .filter(|c| (c.is_ascii_graphic() && !matches!(c, '"' | '\\')) || *c == ' ')
            .collect();
        format!("\"{inner}\"")
    }
}

/// Keeps an evaluation whose domain publishes a record, for the DMARC
/// aggregate reports (RFC 7489 7.2), off the async workers.
pub async fn record_dmarc(
    session: &super::SmtpState,
    e: &Evaluation,
    env: &EnvelopeChecks,
    dkim: &[Outcome],
    header_from: &str,
    now: i64,
) {
    let Some(found) = &e.found else { return };
    let r = &found.record;
    let align = |a| match a {
        roost_protocols::smtp::dmarc::Alignment::Relaxed => "r",
        roost_protocols::smtp::dmarc::Alignment::Strict => "s",
    };
    let record = roost_store::DmarcEvaluation {
        time_us: u64::try_from(now).unwrap_or(0) * 1_000_000,
        source_ip: env.ip.to_string(),
        header_from: header_from.to_string(),
        policy_domain: found.domain.clone(),
        published: format!(
            "p={} sp={} pct={} adkim={} aspf={}",
            r.p.as_str(),
            r.sp.unwrap_or(r.p).as_str(),
            r.pct,
            align(r.adkim),
            align(r.aspf)
        ),
        rua: r.rua.clone(),
        result: e.result.as_str().to_string(),
        disposition: e.disposition.as_str().to_string(),
        dkim_aligned: e.dkim_aligned,
        spf_aligned: e.spf_aligned,
        dkim: dkim
            .iter()
            .filter_map(|o| {
                Some((
                    o.domain.clone()?,
                    o.selector.clone().unwrap_or_default(),
                    o.result.to_string(),
                ))
            })
            .collect(),
        spf_domain: env.spf_domain().to_string(),
        spf_result: env.mail_from.as_str().to_string(),
    };
    let store = session.services.store.clone();
    let stored = crate::task::blocking(move || store.add_dmarc_evaluation(&record)).await;
    if let Err(err) = stored {
        tracing::warn!(error = %err, "recording a DMARC evaluation failed");
    }
}

struct Signed<'a> {
    algorithm: Algorithm,
    signature: &'a [u8],
}

/// Every signature of a header whose checks ran out of time.
pub fn timed_out(head: &[u8]) -> Vec<Outcome> {
    let end = roost_protocols::message::header::header_end(head);
    roost_protocols::message::dkim_verify::signatures(&head[..end])
        .into_iter()
        .map(|sig| match sig {
            Ok(sig) => Outcome::of(&sig, "temperror", Some("timed out")),
            Err(why) => Outcome {
                result: "permerror",
                reason: Some(why),
                domain: None,
                selector: None,
                b: None,
            },
        })
        .collect()
}

/// RFC 8617 5.2: the chain's result, as Authentication-Results writes it
/// after `arc=`: the newest message signature must verify (step 5), and
/// every seal, newest first (step 7).
pub async fn verify_arc(
    dns: &Dns,
    header: &[u8],
    chain: Chain,
    simple: Option<Vec<u8>>,
    relaxed: Option<Vec<u8>>,
    now: i64,
) -> String {
    let sets = match chain {
        Chain::None => return "none".into(),
        Chain::Broken(why) => return format!("fail ({})", comment_text(&why)),
        Chain::Sets(sets) => sets,
    };
    let Some(newest) = sets.last() else {
        return "none".into();
    };
    let ams = check(
        dns,
        header,
        &newest.message_signature,
        &simple,
        &relaxed,
        now,
    )
    .await;
    match ams.result {
        "pass" => {}
        "temperror" => return "temperror (message signature key not found in time)".into(),
        _ => {
            let why = ams.reason.unwrap_or_default();
            return format!(
                "fail (message signature {}: {})",
                newest.instance,
                comment_text(&why)
            );
        }
    }
    for n in (0..sets.len()).rev() {
        let seal = &sets[n].seal;
        let name = format!("{}._domainkey.{}", seal.selector, seal.domain);
        let key = match dns.txt(&name).await {
            Ok(Some(t)) => t,
            Ok(None) => return format!("fail (no key for seal {})", n + 1),
            Err(_) => return format!("temperror (key for seal {} not found)", n + 1),
        };
        let key = match parse_key_record(&key) {
            Ok(k) if !k.public.is_empty() => k,
            _ => return format!("fail (unusable key for seal {})", n + 1),
        };
        let data = seal_data(&sets, n);
        let (algorithm, signature) = (seal.algorithm, seal.signature.clone());
        let holds = crate::task::blocking(move || {
            Ok::<_, String>(data_holds(&data, algorithm, &signature, &key))
        })
        .await;
        if !matches!(holds, Ok(Ok(true))) {
            return format!("fail (seal {} did not verify)", n + 1);
        }
    }
    format!("pass (i={})", sets.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_protocols::smtp::spf::DnsFailure;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    /// Every TXT lookup takes `delay` and finds nothing; the rest find
    /// nothing at once.
    struct Slow(Duration);

    impl AuthDns for Slow {
        async fn txt(&self, _: &str) -> Result<Vec<String>, DnsFailure> {
            tokio::time::sleep(self.0).await;
            Ok(Vec::new())
        }
        async fn a(&self, _: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
            Ok(Vec::new())
        }
        async fn aaaa(&self, _: &str) -> Result<Vec<Ipv6Addr>, DnsFailure> {
            Ok(Vec::new())
        }
        async fn mx(&self, _: &str) -> Result<Vec<String>, DnsFailure> {
            Ok(Vec::new())
        }
        async fn ptr(&self, _: IpAddr) -> Result<Vec<String>, DnsFailure> {
            Ok(Vec::new())
        }
    }

    async fn results(delay: Duration) -> (Option<SpfResult>, SpfResult, &'static str) {
        let c = check_envelope(
            Slow(delay),
            "192.0.2.1".parse().unwrap(),
            "mx.example.org".into(),
            Some("a@example.org".into()),
        )
        .await;
        (c.helo, c.mail_from, c.iprev.result)
    }

    /// Two TXT lookups (HELO, MAIL FROM) that together take just under
    /// the deadline finish; just over it, everything is a temperror.
    #[tokio::test(start_paused = true)]
    async fn envelope_checks_end_at_the_deadline() {
        let half = CHECKS_DEADLINE / 2;
        let step = Duration::from_millis(1);
        assert_eq!(
            results(half - step).await,
            (Some(SpfResult::None), SpfResult::None, "permerror")
        );
        assert_eq!(
            results(half + step).await,
            (
                Some(SpfResult::TempError),
                SpfResult::TempError,
                "temperror"
            )
        );
    }

    #[test]
    fn authentication_results_in_order_with_quoted_values() {
        let env = EnvelopeChecks {
            ip: "192.0.2.1".parse().unwrap(),
            iprev: Iprev {
                result: "pass",
                name: Some("mx.example.org".into()),
            },
            helo: None,
            mail_from: SpfResult::SoftFail,
            query: Query::mail_from(
                "192.0.2.1".parse().unwrap(),
                Some("a b@example.org"),
                "[192.0.2.1]",
            ),
            sender: Some("\"a b\"@example.org".into()),
        };
        let field = authentication_results(
            "mx.test",
            &Results {
                envelope: Some(&env),
                dkim: &[],
                dkim_instead: None,
                arc: Some("pass (i=1)".into()),
                dmarc: vec!["none header.from=example.org".into()],
            },
        );
        assert_eq!(
            field,
            "Authentication-Results: mx.test;\r\n\
             \tiprev=pass policy.iprev=192.0.2.1 (mx.example.org);\r\n\
             \tspf=softfail smtp.mailfrom=\"a b@example.org\";\r\n\
             \tspf=none smtp.helo=\"[192.0.2.1]\";\r\n\
             \tdkim=none;\r\n\
             \tarc=pass (i=1);\r\n\
             \tdmarc=none header.from=example.org\r\n"
        );
    }
}
