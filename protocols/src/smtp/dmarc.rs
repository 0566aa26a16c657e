//! DMARC (RFC 7489): whether a message's From domain is authenticated by
//! an aligned SPF or DKIM pass, and what that domain asks receivers to do
//! when it is not.
//!
//! The Organizational Domain is found by the DNS tree walk of DMARCbis
//! (draft-ietf-dmarc-dmarcbis, section 4.10), which replaces RFC 7489's
//! Public Suffix List with at most [`MAX_TREE_WALK`] TXT queries: roost
//! carries no list that goes stale. Records, alignment, `sp` and `pct`
//! follow RFC 7489 6.3, 3.1 and 6.6.

use super::spf::{AuthDns, DnsFailure, SpfResult};

/// DMARCbis 4.10: a tree walk asks at most 8 names.
pub const MAX_TREE_WALK: usize = 8;
/// The longest DMARC record roost reads; longer ones are ignored.
pub const MAX_RECORD_LEN: usize = 4096;
/// The most report addresses (`rua`) kept from a record.
pub const MAX_REPORT_ADDRESSES: usize = 10;

/// RFC 7489 6.3 `p`/`sp`: what the domain asks for mail that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    fn parse(v: &str) -> Option<Policy> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// RFC 7489 6.6.4: the next policy down when `pct` leaves a message
    /// out of the sample.
    fn softer(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            _ => Policy::None,
        }
    }
}

/// RFC 7489 3.1: relaxed (same Organizational Domain) or strict (same
/// name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Alignment {
    Relaxed,
    Strict,
}

/// A DMARC record (RFC 7489 6.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub p: Policy,
    pub sp: Option<Policy>,
    pub adkim: Alignment,
    pub aspf: Alignment,
    pub pct: u8,
    pub rua: Vec<String>,
    /// DMARCbis `psd`: `Some(true)` for a public suffix's record,
    /// `Some(false)` for an Organizational Domain that says so.
    pub psd: Option<bool>,
}

/// Whether a TXT record claims to be a DMARC record: `v=DMARC1` first.
fn is_dmarc(txt: &str) -> bool {
    let mut first = txt.split(';').next().unwrap_or_default().splitn(2, '=');
    first.next().map(str::trim) == Some("v") && first.next().map(str::trim) == Some("DMARC1")
}

/// Parses a DMARC record; `Err` says why no DMARC applies with it.
/// RFC 7489 6.3: errors in optional tags fall back to their defaults;
/// 6.6.3 step 6: a missing or invalid `p`, or an invalid `sp`, makes the
/// record `p=none` when it has a report address, and no record otherwise.
pub fn parse_record(txt: &str) -> Result<Record, String> {
    if txt.len() > MAX_RECORD_LEN {
        return Err("record too long".into());
    }
    if !is_dmarc(txt) {
        return Err("not a DMARC record".into());
    }
    let mut r = Record {
        p: Policy::None,
        sp: None,
        adkim: Alignment::Relaxed,
        aspf: Alignment::Relaxed,
        pct: 100,
        rua: Vec::new(),
        psd: None,
    };
    let mut p = None;
    let mut policy_invalid = false;
    for tag in txt.split(';').skip(1) {
        let Some((name, value)) = tag.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        match name {
            "p" => match Policy::parse(value) {
                Some(v) => p = Some(v),
                None => policy_invalid = true,
            },
            "sp" => match Policy::parse(value) {
                Some(v) => r.sp = Some(v),
                None => policy_invalid = true,
            },
            "adkim" | "aspf" => {
                let a = match value {
                    "s" => Alignment::Strict,
                    _ => Alignment::Relaxed,
                };
                if name == "adkim" {
                    r.adkim = a;
                } else {
                    r.aspf = a;
                }
            }
            "pct" => {
                if let Some(n) = value.parse::<u8>().ok().filter(|n| *n <= 100) {
                    r.pct = n;
                }
            }
            "rua" => {
                r.rua = value
                    .split(',')
                    .map(|u| u.trim().to_string())
                    // RFC 3986 3.1: schemes are case-insensitive.
                    .filter(|u| {
                        u.get(..7)
                            .is_some_and(|s| s.eq_ignore_ascii_case("mailto:"))
                            && u.contains('@')
                    })
                    .take(MAX_REPORT_ADDRESSES)
                    .collect()
            }
            "psd" => {
                r.psd = match value {
                    "y" => Some(true),
                    "n" => Some(false),
                    _ => None,
                }
            }
            // RFC 7489 6.3: unknown tags are ignored.
            _ => {}
        }
    }
    match p {
        Some(p) if !policy_invalid => r.p = p,
        _ if !r.rua.is_empty() => {
            r.p = Policy::None;
            r.sp = None;
        }
        _ if policy_invalid => return Err("bad p or sp".into()),
        _ => return Err("no p".into()),
    }
    Ok(r)
}

/// The one valid DMARC record at `_dmarc.<domain>`: `Ok(None)` when
/// there is none or more than one (RFC 7489 6.6.3).
async fn record_at<D: AuthDns>(dns: &D, domain: &str) -> Result<Option<Record>, DnsFailure> {
    let texts = dns.txt(&format!("_dmarc.{domain}")).await?;
    let mut claimed = texts.iter().filter(|t| is_dmarc(t));
    match (claimed.next(), claimed.next()) {
        (Some(one), None) => Ok(parse_record(one).ok()),
        _ => Ok(None),
    }
}

/// The names a tree walk asks about after `domain` itself, longest first:
/// from at most 7 labels down to the top-level domain (DMARCbis 4.10.1).
fn ancestors(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let start = labels.len().saturating_sub(MAX_TREE_WALK - 1).max(1);
    (start..labels.len())
        .map(|i| labels[i..].join("."))
        .collect()
}

/// A record found by policy discovery, and the domain it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub record: Record,
    pub domain: String,
}

/// RFC 7489 6.6.3 policy discovery: the author domain's record, or else
/// its Organizational Domain's (never a record in between). A failed
/// lookup of the author domain's record is a temperror.
pub async fn discover<D: AuthDns>(
    dns: &D,
    author: &str,
    orgs: &mut OrgCache,
) -> Result<Option<Found>, DnsFailure> {
    if let Some(record) = record_at(dns, author).await? {
        return Ok(Some(Found {
            record,
            domain: author.to_string(),
        }));
    }
    let org = orgs.of(dns, author).await;
    if org != author {
        if let Ok(Some(record)) = record_at(dns, &org).await {
            return Ok(Some(Found {
                record,
                domain: org,
            }));
        }
    }
    Ok(None)
}

/// Organizational Domains found during one evaluation, so a name is
/// walked once.
#[derive(Default)]
pub struct OrgCache(Vec<(String, String)>);

impl OrgCache {
    async fn of<D: AuthDns>(&mut self, dns: &D, domain: &str) -> String {
        if let Some((_, org)) = self.0.iter().find(|(d, _)| d == domain) {
            return org.clone();
        }
        let org = organizational_domain(dns, domain).await;
        self.0.push((domain.to_string(), org.clone()));
        org
    }
}

/// DMARCbis 4.10.2: the Organizational Domain of `domain`. Walking up
/// from `domain` (at most [`MAX_TREE_WALK`] names): a record with psd=n
/// marks its name; a record with psd=y marks the name one label below
/// it (a psd=y at `domain` itself is ignored); otherwise it is the
/// shortest name with a record, or `domain` itself when none has one.
pub async fn organizational_domain<D: AuthDns>(dns: &D, domain: &str) -> String {
    let labels: Vec<&str> = domain.split('.').collect();
    let mut names = vec![domain.to_string()];
    names.extend(ancestors(domain));
    let mut shortest = None;
    for (n, name) in names.into_iter().enumerate() {
        if let Ok(Some(r)) = record_at(dns, &name).await {
            match r.psd {
                Some(false) => return name,
                Some(true) if n > 0 => {
                    // The name with one label more than this one.
                    let count = name.split('.').count() + 1;
                    return labels[labels.len().saturating_sub(count)..].join(".");
                }
                _ => shortest = Some(name),
            }
        }
    }
    shortest.unwrap_or_else(|| domain.to_string())
}

/// RFC 7489 3.1: whether `id` (an SPF or DKIM domain) aligns with the
/// author domain.
async fn aligned<D: AuthDns>(
    dns: &D,
    orgs: &mut OrgCache,
    mode: Alignment,
    author: &str,
    author_org: &str,
    id: &str,
) -> bool {
    let id = a_label(id);
    if id == author {
        return true;
    }
    mode == Alignment::Relaxed && orgs.of(dns, &id).await == author_org
}

/// A domain in lower-case A-label form (DMARCbis: the author domain is
/// compared as A-labels); as given, lower case, when it does not convert.
pub fn a_label(domain: &str) -> String {
    let d = domain.trim_end_matches('.');
    idna::domain_to_ascii(d).unwrap_or_else(|_| d.to_ascii_lowercase())
}

/// RFC 7489 11.2's dmarc result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DmarcResult {
    None,
    Pass,
    Fail,
    TempError,
    PermError,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::None => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

/// What a message brings to its DMARC evaluation.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The domain of the message's one From address.
    pub author: String,
    /// The SPF result for the MAIL FROM identity and its domain (the
    /// HELO name for a null sender).
    pub spf: SpfResult,
    pub spf_domain: String,
    /// Each DKIM signature's d= and its result.
    pub dkim: Vec<(String, Verdict)>,
}

/// What DMARC needs of a DKIM result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The key could not be looked up now.
    TempError,
    Other,
}

/// An evaluation's outcome (RFC 7489 6.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub result: DmarcResult,
    /// The record that applied, and where it was found.
    pub found: Option<Found>,
    /// The policy the record asks for this message (p, or sp for a
    /// subdomain).
    pub policy: Policy,
    /// What to do: `policy` unless `pct` left the message out of the
    /// sample (RFC 7489 6.6.4), `None` when the message passes.
    pub disposition: Policy,
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
}

impl Evaluation {
    /// An evaluation that could not finish in time: temperror, no policy.
    pub fn unfinished() -> Evaluation {
        Evaluation {
            result: DmarcResult::TempError,
            found: None,
            policy: Policy::None,
            disposition: Policy::None,
            spf_aligned: false,
            dkim_aligned: false,
        }
    }
}

/// Evaluates DMARC for a message. `sample` is a number from 0 to 99
/// chosen at random by the caller, for the `pct` tag.
pub async fn evaluate<D: AuthDns>(dns: &D, inputs: &Inputs, sample: u8) -> Evaluation {
    let author = a_label(&inputs.author);
    let mut orgs = OrgCache::default();
    let none = |result| Evaluation {
        result,
        found: None,
        policy: Policy::None,
        disposition: Policy::None,
        spf_aligned: false,
        dkim_aligned: false,
    };
    let found = match discover(dns, &author, &mut orgs).await {
        Ok(Some(f)) => f,
        Ok(None) => return none(DmarcResult::None),
        Err(_) => return none(DmarcResult::TempError),
    };
    let r = &found.record;
    let author_org = orgs.of(dns, &author).await;
    let spf_counts = matches!(inputs.spf, SpfResult::Pass | SpfResult::TempError)
        && aligned(
            dns,
            &mut orgs,
            r.aspf,
            &author,
            &author_org,
            &inputs.spf_domain,
        )
        .await;
    let spf_aligned = spf_counts && inputs.spf == SpfResult::Pass;
    let mut dkim_aligned = false;
    // A check of an aligned identifier that could not finish: without
    // an aligned pass, the outcome is not known yet.
    let mut unfinished = spf_counts && inputs.spf == SpfResult::TempError;
    for (d, verdict) in &inputs.dkim {
        if *verdict == Verdict::Other
            || !aligned(dns, &mut orgs, r.adkim, &author, &author_org, d).await
        {
            continue;
        }
        match verdict {
            Verdict::Pass => {
                dkim_aligned = true;
                break;
            }
            _ => unfinished = true,
        }
    }
    let policy = if found.domain == author {
        r.p
    } else {
        r.sp.unwrap_or(r.p)
    };
    let pass = spf_aligned || dkim_aligned;
    if !pass && unfinished {
        // RFC 7489 6.6.2 leaves temporary failures to the receiver:
        // roost applies no policy on a result it could not finish, so a
        // DNS outage never rejects mail that would have passed.
        return Evaluation {
            result: DmarcResult::TempError,
            found: Some(found),
            policy,
            disposition: Policy::None,
            spf_aligned,
            dkim_aligned,
        };
    }
    let disposition = if pass {
        Policy::None
    } else if sample < r.pct {
        policy
    } else {
        policy.softer()
    };
    Evaluation {
        result: if pass {
            DmarcResult::Pass
        } else {
            DmarcResult::Fail
        },
        found: Some(found),
        policy,
        disposition,
        spf_aligned,
        dkim_aligned,
    }
}

#[cfg(test)]
mod tests;
