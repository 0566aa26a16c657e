//! SPF (RFC 7208): whether a client's IP address may send mail for a
//! domain. The record parser and macro expander are plain functions; the
//! evaluation (`check_host`, RFC 7208 4) asks its DNS questions through
//! the [`AuthDns`] trait, so this module touches no socket and tests and
//! fuzzers drive it with answers from a table.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

/// RFC 7208 4.6.4: at most 10 terms that cause DNS lookups (include, a,
/// mx, ptr, exists, redirect) per evaluation, includes counted in.
pub const MAX_DNS_TERMS: usize = 10;
/// RFC 7208 4.6.4: at most 2 lookups that find nothing (no records or
/// NXDOMAIN); past that the evaluation is a permerror.
pub const MAX_VOID_LOOKUPS: usize = 2;
/// RFC 7208 4.6.4: an "mx" mechanism looks at no more than 10 MX names;
/// more is a permerror.
pub const MAX_MX_NAMES: usize = 10;
/// RFC 7208 4.6.4: a "ptr" mechanism looks at no more than 10 PTR names;
/// the rest are ignored.
pub const MAX_PTR_NAMES: usize = 10;
/// The longest SPF record roost reads. RFC 7208 3.4 advises records fit a
/// 512-octet UDP answer; 4 KiB leaves room and bounds the parse.
pub const MAX_RECORD_LEN: usize = 4096;
/// RFC 7208 7.3: an expanded domain longer than 253 octets loses labels
/// on the left until it fits.
pub const MAX_DOMAIN_LEN: usize = 253;
/// The most parts a macro's digit transformer keeps (RFC 7208 7.3 allows
/// up to 128; a larger number keeps the same as 128).
pub const MAX_MACRO_PARTS: usize = 128;

/// RFC 7208 2.6: the results of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The name RFC 7208 8 and RFC 8601 use.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn result(self) -> SpfResult {
        match self {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

/// RFC 7208 5: the mechanisms. Domain specs are kept unexpanded (macro
/// strings); `None` means the current domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mechanism {
    All,
    Include(String),
    A(Option<String>, u8, u8),
    Mx(Option<String>, u8, u8),
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

/// A parsed SPF record (RFC 7208 4.6.1, 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    directives: Vec<(Qualifier, Mechanism)>,
    redirect: Option<String>,
}

/// Whether a TXT record is an SPF record (RFC 7208 4.5): "v=spf1", any
/// case, alone or followed by a space.
pub fn is_spf_record(txt: &str) -> bool {
    let b = txt.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

/// Parses an SPF record; `Err` names what makes it a permerror.
pub fn parse_record(txt: &str) -> Result<Record, String> {
    if txt.len() > MAX_RECORD_LEN {
        return Err("record too long".into());
    }
    if !is_spf_record(txt) {
        return Err("not an SPF record".into());
    }
    let mut record = Record {
        directives: Vec::new(),
        redirect: None,
    };
    let mut exp_seen = false;
    for term in txt[6..].split(' ').filter(|t| !t.is_empty()) {
        // A modifier is a name, "=", and a macro string (RFC 7208 12).
        if let Some((name, value)) = modifier(term) {
            if name.eq_ignore_ascii_case("redirect") {
                if record.redirect.is_some() {
                    return Err("redirect twice".into());
                }
                check_domain_spec(value)?;
                record.redirect = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("exp") {
                if exp_seen {
                    return Err("exp twice".into());
                }
                exp_seen = true;
                check_domain_spec(value)?;
            } else {
                // RFC 7208 6: unknown modifiers are ignored, but must parse.
                check_macro_string(value, false)?;
            }
            continue;
        }
        let (qualifier, rest) = match term.as_bytes()[0] {
            b'+' => (Qualifier::Pass, &term[1..]),
            b'-' => (Qualifier::Fail, &term[1..]),
            b'~' => (Qualifier::SoftFail, &term[1..]),
            b'?' => (Qualifier::Neutral, &term[1..]),
            _ => (Qualifier::Pass, term),
        };
        record.directives.push((qualifier, mechanism(rest)?));
    }
    Ok(record)
}

/// `name=value` when `term` is a modifier: the name is ALPHA followed by
/// ALPHA, DIGIT, "-", "_" or ".".
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some((name, value))
}

fn mechanism(text: &str) -> Result<Mechanism, String> {
    let split = text.find([':', '/']).unwrap_or(text.len());
    let (name, rest) = text.split_at(split);
    let bad = || format!("bad mechanism {text:?}");
    let name = name.to_ascii_lowercase();
    // ":domain-spec" after a mechanism that takes one.
    let domain = |rest: &str| -> Result<(Option<String>, String), String> {
        match rest.strip_prefix(':') {
            Some(r) => {
                let end = r.find('/').unwrap_or(r.len());
                check_domain_spec(&r[..end])?;
                Ok((Some(r[..end].to_string()), r[end..].to_string()))
            }
            None => Ok((None, rest.to_string())),
        }
    };
    match name.as_str() {
        "all" if rest.is_empty() => Ok(Mechanism::All),
        "include" | "exists" => {
            let spec = rest.strip_prefix(':').ok_or_else(bad)?;
            check_domain_spec(spec)?;
            Ok(if name == "include" {
                Mechanism::Include(spec.to_string())
            } else {
                Mechanism::Exists(spec.to_string())
            })
        }
        "ptr" => {
            let (d, rest) = domain(rest)?;
            if !rest.is_empty() {
                return Err(bad());
            }
            Ok(Mechanism::Ptr(d))
        }
        "a" | "mx" => {
            let (d, rest) = domain(rest)?;
            let (v4, v6) = dual_cidr(&rest).ok_or_else(bad)?;
            Ok(if name == "a" {
                Mechanism::A(d, v4, v6)
            } else {
                Mechanism::Mx(d, v4, v6)
            })
        }
        "ip4" => {
            let r = rest.strip_prefix(':').ok_or_else(bad)?;
            let (addr, len) = r.split_once('/').map_or((r, None), |(a, l)| (a, Some(l)));
            let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
            Ok(Mechanism::Ip4(addr, prefix_len(len, 32).ok_or_else(bad)?))
        }
        "ip6" => {
            let r = rest.strip_prefix(':').ok_or_else(bad)?;
            let (addr, len) = r.split_once('/').map_or((r, None), |(a, l)| (a, Some(l)));
            let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
            Ok(Mechanism::Ip6(addr, prefix_len(len, 128).ok_or_else(bad)?))
        }
        _ => Err(bad()),
    }
}

/// A CIDR length: absent means the whole address; no leading zeros.
fn prefix_len(text: Option<&str>, max: u8) -> Option<u8> {
    let Some(t) = text else { return Some(max) };
    if t.is_empty() || t.len() > 3 || (t.len() > 1 && t.starts_with('0')) {
        return None;
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<u8>().ok().filter(|n| *n <= max)
}

/// RFC 7208 5.6 dual-cidr-length: `[/n][//m]`.
fn dual_cidr(text: &str) -> Option<(u8, u8)> {
    if text.is_empty() {
        return Some((32, 128));
    }
    if let Some(v6) = text.strip_prefix("//") {
        return Some((32, prefix_len(Some(v6), 128)?));
    }
    let t = text.strip_prefix('/')?;
    match t.split_once("//") {
        Some((v4, v6)) => Some((prefix_len(Some(v4), 32)?, prefix_len(Some(v6), 128)?)),
        None => Some((prefix_len(Some(t), 32)?, 128)),
    }
}

/// RFC 7208 7.1 domain-spec: a macro string whose end is a top label (not
/// all digits) or a macro.
fn check_domain_spec(spec: &str) -> Result<(), String> {
    check_macro_string(spec, false)?;
    if spec.is_empty() {
        return Err("empty domain".into());
    }
    if spec.ends_with('}') {
        return Ok(());
    }
    let trimmed = spec.strip_suffix('.').unwrap_or(spec);
    let top = trimmed.rsplit('.').next().unwrap_or_default();
    let ok = !top.is_empty()
        && trimmed.contains('.')
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !top.bytes().all(|b| b.is_ascii_digit())
        && !top.starts_with('-')
        && !top.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("bad domain {spec:?}"))
    }
}

/// RFC 7208 7.1 macro-string syntax; `exp` allows the c, r and t letters.
fn check_macro_string(s: &str, exp: bool) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let next = b.get(i + 1).copied();
                match next {
                    Some(b'%' | b'_' | b'-') => i += 2,
                    Some(b'{') => {
                        let end = s[i..].find('}').ok_or("unclosed macro")? + i;
                        parse_macro(&s[i + 2..end], exp)?;
                        i = end + 1;
                    }
                    _ => return Err("bad % in macro string".into()),
                }
            }
            0x21..=0x7e => i += 1,
            _ => return Err("bad character in macro string".into()),
        }
    }
    Ok(())
}

/// One macro's inside: letter, digits, optional "r", delimiters.
struct Macro {
    letter: u8,
    upper: bool,
    keep: Option<usize>,
    reverse: bool,
    delimiters: Vec<u8>,
}

fn parse_macro(inner: &str, exp: bool) -> Result<Macro, String> {
    let b = inner.as_bytes();
    let letter = *b.first().ok_or("empty macro")?;
    let lower = letter.to_ascii_lowercase();
    let allowed = b"slodiphv".contains(&lower) || (exp && b"crt".contains(&lower));
    if !allowed {
        return Err(format!("bad macro letter {:?}", letter as char));
    }
    let mut i = 1;
    let digits_end = b[i..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(b.len(), |p| p + i);
    let keep = if digits_end > i {
        let n: usize = inner[i..digits_end]
            .parse()
            .map_err(|_| "bad macro digits")?;
        if n == 0 {
            return Err("macro keeps zero labels".into());
        }
        Some(n.min(MAX_MACRO_PARTS))
    } else {
        None
    };
    i = digits_end;
    let reverse = b.get(i).is_some_and(|c| c.eq_ignore_ascii_case(&b'r'));
    if reverse {
        i += 1;
    }
    let delimiters = b[i..].to_vec();
    if !delimiters.iter().all(|c| b".-+,/_=".contains(c)) {
        return Err("bad macro delimiter".into());
    }
    Ok(Macro {
        letter: lower,
        upper: letter.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters,
    })
}

/// What an evaluation is about (RFC 7208 4.1).
#[derive(Debug, Clone)]
pub struct Query {
    pub ip: IpAddr,
    /// The MAIL FROM local part; "postmaster" when there is none.
    pub local: String,
    /// The MAIL FROM domain (or the HELO name for the HELO check).
    pub sender_domain: String,
    pub helo: String,
}

impl Query {
    /// The MAIL FROM identity (RFC 7208 2.4): a null reverse-path checks
    /// postmaster at the HELO name.
    pub fn mail_from(ip: IpAddr, sender: Option<&str>, helo: &str) -> Query {
        let (local, domain) = match sender.and_then(|s| s.rsplit_once('@')) {
            Some((l, d)) => (l.to_string(), d.to_string()),
            None => ("postmaster".to_string(), helo.to_string()),
        };
        Query {
            ip: unmap(ip),
            local: if local.is_empty() {
                "postmaster".into()
            } else {
                local
            },
            sender_domain: domain,
            helo: helo.to_string(),
        }
    }

    /// The HELO identity (RFC 7208 2.3).
    pub fn helo(ip: IpAddr, helo: &str) -> Query {
        Query::mail_from(ip, None, helo)
    }

    fn sender(&self) -> String {
        format!("{}@{}", self.local, self.sender_domain)
    }
}

/// An IPv4-mapped IPv6 address is checked as IPv4 (RFC 7208 5).
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Expands a macro string (RFC 7208 7.3) for `domain`, the current domain.
pub fn expand(spec: &str, q: &Query, domain: &str, exp: bool) -> Result<String, String> {
    check_macro_string(spec, exp)?;
    let b = spec.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let next = spec[i..].find('%').map_or(b.len(), |p| p + i);
            out.push_str(&spec[i..next]);
            i = next;
            continue;
        }
        match b[i + 1] {
            b'%' => out.push('%'),
            b'_' => out.push(' '),
            b'-' => out.push_str("%20"),
            _ => {
                let end = spec[i..].find('}').map(|p| p + i).ok_or("unclosed macro")?;
                let m = parse_macro(&spec[i + 2..end], exp)?;
                out.push_str(&macro_value(&m, q, domain));
                i = end + 1;
                continue;
            }
        }
        i += 2;
    }
    Ok(out)
}

fn macro_value(m: &Macro, q: &Query, domain: &str) -> String {
    let raw = match m.letter {
        b's' => q.sender(),
        b'l' => q.local.clone(),
        b'o' => q.sender_domain.clone(),
        b'd' => domain.to_string(),
        b'i' | b'c' => match q.ip {
            IpAddr::V4(v4) if m.letter == b'i' => v4.to_string(),
            IpAddr::V6(v6) if m.letter == b'i' => v6
                .octets()
                .iter()
                .flat_map(|o| [o >> 4, o & 15])
                .map(|n| format!("{n:x}"))
                .collect::<Vec<_>>()
                .join("."),
            ip => ip.to_string(),
        },
        // RFC 7208 7.3 lets the %{p} name be "unknown" when it is not
        // validated; roost does not spend lookups on a macro the RFC says
        // not to use.
        b'p' => "unknown".to_string(),
        b'v' => match q.ip {
            IpAddr::V4(_) => "in-addr".to_string(),
            IpAddr::V6(_) => "ip6".to_string(),
        },
        b'h' => q.helo.clone(),
        b'r' => "unknown".to_string(),
        b't' => "0".to_string(),
        _ => String::new(),
    };
    let delimiters: &[u8] = if m.delimiters.is_empty() {
        b"."
    } else {
        &m.delimiters
    };
    let mut parts: Vec<&str> = raw
        .split(|c: char| c.is_ascii() && delimiters.contains(&(c as u8)))
        .collect();
    if m.reverse {
        parts.reverse();
    }
    if let Some(n) = m.keep {
        let skip = parts.len().saturating_sub(n);
        parts.drain(..skip);
    }
    let joined = parts.join(".");
    if m.upper {
        url_escape(&joined)
    } else {
        joined
    }
}

/// RFC 7208 7.3: uppercase macros are URL-escaped (RFC 3986 unreserved
/// characters stay).
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Drops labels on the left until the name fits (RFC 7208 7.3).
pub fn shorten(domain: &str) -> &str {
    let mut d = domain.trim_end_matches('.');
    while d.len() > MAX_DOMAIN_LEN {
        match d.find('.') {
            Some(p) => d = &d[p + 1..],
            None => break,
        }
    }
    d
}

/// Whether `domain` is a name check_host can look up (RFC 7208 4.3): more
/// than one label, none empty or over 63 octets, each of letters, digits,
/// hyphens and underscores (or a non-ASCII U-label), the last not all
/// digits; so an address literal such as `[192.0.2.1]` is none.
pub fn valid_domain(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
    };
    let top = d.rsplit('.').next().unwrap_or_default();
    !d.is_empty()
        && d.len() <= MAX_DOMAIN_LEN
        && d.contains('.')
        && d.split('.').all(label)
        && !top.bytes().all(|b| b.is_ascii_digit())
}

/// A lookup failed for a reason other than "nothing there".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFailure;

/// The DNS questions SPF and DMARC ask. An empty answer means no records or
/// NXDOMAIN; `Err` means the lookup failed (RFC 7208 2.6.6 temperror).
pub trait AuthDns: Sync {
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, DnsFailure>> + Send;
    fn a(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv4Addr>, DnsFailure>> + Send;
    fn aaaa(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv6Addr>, DnsFailure>> + Send;
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<String>, DnsFailure>> + Send;
    fn ptr(&self, ip: IpAddr) -> impl Future<Output = Result<Vec<String>, DnsFailure>> + Send;
}

/// One evaluation's counters (RFC 7208 4.6.4), shared by its includes.
struct Eval<'a, D> {
    dns: &'a D,
    q: &'a Query,
    terms: usize,
    voids: usize,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// RFC 7208 4: `check_host(ip, domain, sender)`.
pub async fn check_host<D: AuthDns>(dns: &D, q: &Query, domain: &str) -> SpfResult {
    let mut eval = Eval {
        dns,
        q,
        terms: 0,
        voids: 0,
    };
    eval.check(domain.to_string()).await
}

/// Why a term stopped the evaluation.
enum Stop {
    Temp,
    Perm,
}

impl<D: AuthDns> Eval<'_, D> {
    fn check(&mut self, domain: String) -> Boxed<'_, SpfResult> {
        Box::pin(async move {
            if !valid_domain(&domain) {
                return SpfResult::None;
            }
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            let records = match self.dns.txt(&domain).await {
                Ok(r) => r,
                Err(_) => return SpfResult::TempError,
            };
            let mut spf = records.iter().filter(|t| is_spf_record(t));
            let (Some(text), None) = (spf.next(), spf.next()) else {
                // None at all, or several (RFC 7208 4.5).
                return if records.iter().any(|t| is_spf_record(t)) {
                    SpfResult::PermError
                } else {
                    SpfResult::None
                };
            };
            let Ok(record) = parse_record(text) else {
                return SpfResult::PermError;
            };
            for (qualifier, mechanism) in &record.directives {
                match self.matches(mechanism, &domain).await {
                    Ok(true) => return qualifier.result(),
                    Ok(false) => {}
                    Err(Stop::Temp) => return SpfResult::TempError,
                    Err(Stop::Perm) => return SpfResult::PermError,
                }
            }
            // RFC 7208 6.1: redirect when no mechanism matched.
            if let Some(spec) = &record.redirect {
                if let Err(s) = self.count_term() {
                    return stop_result(s);
                }
                let target = match expand(spec, self.q, &domain, false) {
                    Ok(t) => shorten(&t).to_string(),
                    Err(_) => return SpfResult::PermError,
                };
                return match self.check(target).await {
                    SpfResult::None => SpfResult::PermError,
                    r => r,
                };
            }
            SpfResult::Neutral
        })
    }

    fn count_term(&mut self) -> Result<(), Stop> {
        self.terms += 1;
        if self.terms > MAX_DNS_TERMS {
            Err(Stop::Perm)
        } else {
            Ok(())
        }
    }

    /// Counts a lookup that found nothing.
    fn void(&mut self, empty: bool) -> Result<(), Stop> {
        if empty {
            self.voids += 1;
            if self.voids > MAX_VOID_LOOKUPS {
                return Err(Stop::Perm);
            }
        }
        Ok(())
    }

    fn target(&self, spec: &Option<String>, domain: &str) -> Result<String, Stop> {
        match spec {
            None => Ok(domain.to_string()),
            Some(s) => expand(s, self.q, domain, false)
                .map(|t| shorten(&t).to_ascii_lowercase())
                .map_err(|_| Stop::Perm),
        }
    }

    /// The addresses of `name` in the client's family.
    async fn addresses(&mut self, name: &str) -> Result<Vec<IpAddr>, Stop> {
        Ok(match self.q.ip {
            IpAddr::V4(_) => self
                .dns
                .a(name)
                .await
                .map_err(|_| Stop::Temp)?
                .into_iter()
                .map(IpAddr::V4)
                .collect(),
            IpAddr::V6(_) => self
                .dns
                .aaaa(name)
                .await
                .map_err(|_| Stop::Temp)?
                .into_iter()
                .map(IpAddr::V6)
                .collect(),
        })
    }

    async fn matches(&mut self, m: &Mechanism, domain: &str) -> Result<bool, Stop> {
        let ip = self.q.ip;
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => Ok(in_net(ip, IpAddr::V4(*net), *len)),
            Mechanism::Ip6(net, len) => Ok(in_net(ip, IpAddr::V6(*net), *len)),
            Mechanism::Include(spec) => {
                self.count_term()?;
                let target = self.target(&Some(spec.clone()), domain)?;
                // RFC 7208 5.2's table.
                match self.check(target).await {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(Stop::Temp),
                    SpfResult::PermError | SpfResult::None => Err(Stop::Perm),
                }
            }
            Mechanism::A(spec, v4, v6) => {
                self.count_term()?;
                let target = self.target(spec, domain)?;
                let found = self.addresses(&target).await?;
                self.void(found.is_empty())?;
                Ok(found.iter().any(|a| in_net(ip, *a, cidr(ip, *v4, *v6))))
            }
            Mechanism::Mx(spec, v4, v6) => {
                self.count_term()?;
                let target = self.target(spec, domain)?;
                let names = self.dns.mx(&target).await.map_err(|_| Stop::Temp)?;
                self.void(names.is_empty())?;
                if names.len() > MAX_MX_NAMES {
                    return Err(Stop::Perm);
                }
                for name in names {
                    let found = self.addresses(&name).await?;
                    if found.iter().any(|a| in_net(ip, *a, cidr(ip, *v4, *v6))) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_term()?;
                let target = self.target(spec, domain)?;
                // RFC 7208 5.5: a failed PTR lookup is no match; only an
                // answer with nothing in it is a void lookup (4.6.4).
                let names = match self.dns.ptr(ip).await {
                    Ok(names) => {
                        self.void(names.is_empty())?;
                        names
                    }
                    Err(_) => Vec::new(),
                };
                for name in names.into_iter().take(MAX_PTR_NAMES) {
                    let name = name.trim_end_matches('.').to_ascii_lowercase();
                    let under = name == target || name.ends_with(&format!(".{target}"));
                    if under
                        && self
                            .addresses(&name)
                            .await
                            .unwrap_or_default()
                            .contains(&ip)
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Exists(spec) => {
                self.count_term()?;
                let target = self.target(&Some(spec.clone()), domain)?;
                // Always an A lookup, whatever the client's family (5.7).
                let found = self.dns.a(&target).await.map_err(|_| Stop::Temp)?;
                self.void(found.is_empty())?;
                Ok(!found.is_empty())
            }
        }
    }
}

fn stop_result(s: Stop) -> SpfResult {
    match s {
        Stop::Temp => SpfResult::TempError,
        Stop::Perm => SpfResult::PermError,
    }
}

fn cidr(ip: IpAddr, v4: u8, v6: u8) -> u8 {
    if ip.is_ipv4() {
        v4
    } else {
        v6
    }
}

/// Whether `ip` is in `net`/`len` (same family only).
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// RFC 7208 9.1: the Received-SPF field for a result, with the comment
/// and key-value pairs a reader (or a later filter) needs.
pub fn received_spf(
    result: SpfResult,
    hostname: &str,
    q: &Query,
    identity: &str,
    mail_from: Option<&str>,
) -> String {
    let ip = q.ip;
    let who = match mail_from {
        Some(s) => format!("domain of {s}"),
        None => format!("HELO name {}", q.helo),
    };
    let comment = match result {
        SpfResult::Pass => format!("{hostname}: {who} designates {ip} as permitted sender"),
        SpfResult::Fail => format!("{hostname}: {who} does not designate {ip} as permitted sender"),
        SpfResult::SoftFail => {
            format!("{hostname}: {who} discourages use of {ip} as permitted sender")
        }
        SpfResult::Neutral => format!("{hostname}: {ip} is neither permitted nor denied by {who}"),
        SpfResult::None => format!("{hostname}: {who} does not publish SPF"),
        SpfResult::TempError => format!("{hostname}: error in processing during lookup of {who}"),
        SpfResult::PermError => format!("{hostname}: {who} has a broken SPF record"),
    };
    let envelope = mail_from.map_or_else(|| "<>".to_string(), str::to_string);
    format!(
        "Received-SPF: {} ({}) client-ip={};\r\n\tenvelope-from=\"{}\"; helo={}; identity={identity};\r\n",
        result.as_str(),
        comment_text(&comment),
        quote_if_needed(&ip.to_string()),
        envelope.replace(['"', '\\', '\r', '\n'], ""),
        quote_if_needed(&q.helo),
    )
}

/// A header comment's text (RFC 5322 3.2.2 ctext, as Received-SPF and
/// Authentication-Results write it): printable ASCII and spaces, without
/// parentheses or backslashes.
pub fn comment_text(s: &str) -> String {
    s.chars()
        .filter(|c| (c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\')) || *c == ' ')
        .collect()
}

/// A HELO name goes in as a dot-atom, or quoted when it is not one.
fn quote_if_needed(s: &str) -> String {
    let atom = !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        });
    if atom {
        s.to_string()
    } else {
        let inner: String = s
            .chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\') || *c == ' ')
            .collect();
        format!("\"{inner}\"")
    }
}

#[cfg(test)]
pub(crate) mod tests;
