//! DNS for the sessions, through hickory-resolver. Today: the reverse name
//! (PTR) of an SMTP client, written into the Received line it gets (RFC
//! 5321 4.4: the "from" clause carries the name the address resolves to).
//! The outgoing queue's MX and address lookups, SPF and DMARC's TXT
//! questions, and, with DNSSEC validation on, the validated answers DANE
//! needs (RFC 7672 2.1.1: a security-aware resolver; hickory validates
//! itself, from the root's trust anchors or configured ones).

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use roost_protocols::smtp::spf::{AuthDns, DnsFailure};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long one lookup may take before roost goes on without its answer.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one validated lookup may take: it may first fetch and check
/// the DNSKEY and DS records from the root down (cached afterwards).
pub const DNSSEC_TIMEOUT: Duration = Duration::from_secs(15);

/// Where lookups go.
#[derive(Debug, Clone)]
pub enum DnsSettings {
    /// No lookups (localserve, where every client is on this machine).
    Off,
    /// The servers of /etc/resolv.conf.
    System,
    /// Exactly these servers, over UDP and TCP; /etc/hosts is not read.
    Servers(Vec<SocketAddr>),
}

/// What a domain's MX records say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// Mail servers, most preferred first.
    Hosts(Vec<String>),
    /// No MX: the domain is its own mail host (implicit MX).
    NoMx,
    /// RFC 7505: the domain takes no mail.
    Null,
    /// NXDOMAIN.
    NoDomain,
}

/// Whether answers are checked with DNSSEC, for DANE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnssecSettings {
    Off,
    /// From the root zone's trust anchors, built into hickory.
    Root,
    /// From these DNSKEYs (algorithm, public key), e.g. a test zone's.
    Anchors(Vec<(u8, Vec<u8>)>),
}

/// What DNSSEC says of an answer (RFC 4035 4.3). Bogus and indeterminate
/// answers are lookup failures (RFC 7672 2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Secure,
    Insecure,
}

#[derive(Clone, Default)]
pub struct Dns {
    resolver: Option<Arc<TokioResolver>>,
    /// The same servers, with every answer validated (DNSSEC on).
    validating: Option<Arc<TokioResolver>>,
    /// Answers for names under localserve's own domains.
    local: Option<Arc<LocalZone>>,
}

impl Dns {
    pub fn new(settings: &DnsSettings) -> Dns {
        let Some((builder, opts)) = builder(settings) else {
            return Dns::default();
        };
        Dns {
            resolver: Some(Arc::new(builder.with_options(opts).build())),
            validating: None,
            local: None,
        }
    }

    /// This resolver with DNSSEC validation for the lookups DANE makes.
    pub fn with_dnssec(mut self, settings: &DnsSettings, dnssec: &DnssecSettings) -> Dns {
        use hickory_resolver::proto::dnssec::{Algorithm, PublicKeyBuf, TrustAnchors};
        let anchors = match dnssec {
            DnssecSettings::Off => return self,
            DnssecSettings::Root => TrustAnchors::default(),
            DnssecSettings::Anchors(keys) => {
                let mut anchors = TrustAnchors::empty();
                for (algorithm, key) in keys {
                    anchors.insert(&PublicKeyBuf::new(
                        key.clone(),
                        Algorithm::from_u8(*algorithm),
                    ));
                }
                anchors
            }
        };
        if let Some((builder, mut opts)) = builder(settings) {
            opts.validate = true;
            self.validating = Some(Arc::new(
                builder
                    .with_options(opts)
                    .with_trust_anchor(Arc::new(anchors))
                    .build(),
            ));
        }
        self
    }

    /// Whether DNSSEC answers can be had (DANE is possible).
    pub fn validates(&self) -> bool {
        self.validating.is_some()
    }

    /// The records of `rtype` at `name`, validated: `Ok(None)` for none
    /// (NXDOMAIN or no data, proven or in an unsigned zone), `Err` when
    /// the lookup failed or an answer is bogus or indeterminate.
    async fn validated(
        &self,
        name: &str,
        rtype: hickory_resolver::proto::rr::RecordType,
    ) -> Result<Option<(Vec<hickory_resolver::proto::rr::RData>, Security)>, DnsFailure> {
        use hickory_resolver::proto::dnssec::Proof;
        let resolver = self.validating.as_ref().ok_or(DnsFailure)?;
        let Some(name) = fqdn(name) else {
            return Ok(None);
        };
        let Some(lookup) =
            classify(tokio::time::timeout(DNSSEC_TIMEOUT, resolver.lookup(name, rtype)).await)?
        else {
            return Ok(None);
        };
        let mut secure = true;
        let mut out = Vec::new();
        for r in lookup.dnssec_record_iter() {
            match r.proof() {
                Proof::Secure => {}
                Proof::Insecure => secure = false,
                Proof::Bogus | Proof::Indeterminate => return Err(DnsFailure),
            }
            let record = r
                .require(Proof::Secure | Proof::Insecure)
                .map_err(|_| DnsFailure)?;
            if record.record_type() == rtype {
                out.push(record.data().clone());
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        let security = if secure {
            Security::Secure
        } else {
            Security::Insecure
        };
        Ok(Some((out, security)))
    }

    /// A domain's MX hosts, most preferred first, and whether DNSSEC
    /// proved them (RFC 7672 2.2.1); `NoMx` with `Secure` when no MX
    /// record exists (the domain itself is then looked at, 2.2.2).
    pub async fn mx_dnssec(&self, domain: &str) -> Result<(MxAnswer, Security), DnsFailure> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        let Some((records, security)) = self.validated(domain, RecordType::MX).await? else {
            return Ok((MxAnswer::NoMx, Security::Secure));
        };
        let mut hosts: Vec<(u16, String)> = records
            .iter()
            .filter_map(|r| match r {
                RData::MX(mx) if !mx.exchange().is_root() => Some((
                    mx.preference(),
                    mx.exchange()
                        .to_utf8()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect();
        if hosts.is_empty() {
            return Ok((MxAnswer::Null, security));
        }
        hosts.sort();
        Ok((
            MxAnswer::Hosts(hosts.into_iter().map(|(_, h)| h).collect()),
            security,
        ))
    }

    /// Whether a host's address records are proven (RFC 7672 2.2.2: TLSA
    /// records are looked up only then); `None` when it has none.
    pub async fn address_security(&self, host: &str) -> Result<Option<Security>, DnsFailure> {
        use hickory_resolver::proto::rr::RecordType;
        let v6 = self.validated(host, RecordType::AAAA).await?;
        let v4 = self.validated(host, RecordType::A).await?;
        Ok(match (v6, v4) {
            (None, None) => None,
            (a, b) => Some(
                if a.iter()
                    .chain(b.iter())
                    .all(|(_, s)| *s == Security::Secure)
                {
                    Security::Secure
                } else {
                    Security::Insecure
                },
            ),
        })
    }

    /// The TLSA records at `_<port>._tcp.<host>` (RFC 7672 2.2.3), with
    /// their security; `None` when there are none.
    pub async fn tlsa(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Option<(Vec<roost_protocols::smtp::dane::Tlsa>, Security)>, DnsFailure> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        let name = format!("_{port}._tcp.{host}");
        let Some((records, security)) = self.validated(&name, RecordType::TLSA).await? else {
            return Ok(None);
        };
        let tlsa = records
            .iter()
            .filter_map(|r| match r {
                RData::TLSA(t) => Some(roost_protocols::smtp::dane::Tlsa {
                    usage: u8::from(t.cert_usage()),
                    selector: u8::from(t.selector()),
                    matching: u8::from(t.matching()),
                    data: t.cert_data().to_vec(),
                }),
                _ => None,
            })
            .collect();
        Ok(Some((tlsa, security)))
    }

    /// This resolver, answering names under the zone's domains itself.
    pub fn with_local_zone(mut self, zone: LocalZone) -> Dns {
        self.local = Some(Arc::new(zone));
        self
    }

    /// The TXT record at `name`, its strings joined (the first record, if
    /// several); `Ok(None)` when there is none, `Err` when the lookup
    /// failed or timed out (or lookups are off).
    pub async fn txt(&self, name: &str) -> Result<Option<String>, String> {
        match AuthDns::txt(self, name).await {
            Ok(records) => Ok(records.into_iter().next()),
            Err(DnsFailure) if self.resolver.is_none() && self.local.is_none() => {
                Err("DNS lookups are off".into())
            }
            Err(DnsFailure) => Err("DNS lookup failed".into()),
        }
    }

    /// Every TXT record at `name`, each one's strings joined; empty when
    /// there is none, `Err` when the lookup failed.
    pub async fn txt_records(&self, name: &str) -> Result<Vec<String>, String> {
        AuthDns::txt(self, name)
            .await
            .map_err(|DnsFailure| "DNS lookup failed".to_string())
    }

    /// Where mail for `domain` goes (RFC 5321 5.1): its MX hosts by
    /// preference, a null MX (RFC 7505), no MX (the domain itself is the
    /// host), or no such domain.
    pub async fn mail_exchangers(&self, domain: &str) -> Result<MxAnswer, DnsFailure> {
        if let Some(zone) = self.local.as_ref().filter(|z| z.covers(domain)) {
            let hosts = zone.mx(domain);
            return Ok(if hosts.is_empty() {
                MxAnswer::NoMx
            } else {
                MxAnswer::Hosts(hosts)
            });
        }
        let resolver = self.resolver.as_ref().ok_or(DnsFailure)?;
        let Some(name) = fqdn(domain) else {
            return Ok(MxAnswer::NoDomain);
        };
        match tokio::time::timeout(DNS_TIMEOUT, resolver.mx_lookup(name)).await {
            Err(_) => Err(DnsFailure),
            Ok(Err(e)) if e.is_nx_domain() => Ok(MxAnswer::NoDomain),
            Ok(Err(e)) if e.is_no_records_found() => Ok(MxAnswer::NoMx),
            Ok(Err(_)) => Err(DnsFailure),
            Ok(Ok(l)) => {
                let mut hosts: Vec<(u16, String)> = Vec::new();
                let mut null = false;
                for mx in l.iter() {
                    if mx.exchange().is_root() {
                        null = true;
                        continue;
                    }
                    let host = mx.exchange().to_utf8();
                    hosts.push((
                        mx.preference(),
                        host.trim_end_matches('.').to_ascii_lowercase(),
                    ));
                }
                if null && hosts.is_empty() {
                    return Ok(MxAnswer::Null);
                }
                hosts.sort();
                Ok(MxAnswer::Hosts(hosts.into_iter().map(|(_, h)| h).collect()))
            }
        }
    }

    /// Every PTR name of `ip`, lowercase, without the trailing dot.
    pub async fn reverse_all(&self, ip: IpAddr) -> Result<Vec<String>, DnsFailure> {
        let resolver = self.resolver.as_ref().ok_or(DnsFailure)?;
        Ok(
            classify(tokio::time::timeout(DNS_TIMEOUT, resolver.reverse_lookup(ip)).await)?
                .map(|l| {
                    l.iter()
                        .map(|n| n.to_utf8().trim_end_matches('.').to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// The first PTR name of `ip`, without the trailing dot; `None` when
    /// lookups are off, fail, time out or find nothing.
    pub async fn reverse(&self, ip: IpAddr) -> Option<String> {
        let resolver = self.resolver.as_ref()?;
        let lookup = tokio::time::timeout(DNS_TIMEOUT, resolver.reverse_lookup(ip))
            .await
            .ok()?
            .ok()?;
        let name = lookup.iter().next()?.to_utf8();
        Some(name.trim_end_matches('.').to_ascii_lowercase())
    }
}

/// A resolver builder and options for `settings`; `None` when lookups
/// are off or the system has no usable configuration.
fn builder(
    settings: &DnsSettings,
) -> Option<(
    hickory_resolver::ResolverBuilder<TokioConnectionProvider>,
    ResolverOpts,
)> {
    let mut opts = ResolverOpts::default();
    opts.timeout = DNS_TIMEOUT;
    opts.attempts = 1;
    let builder = match settings {
        DnsSettings::Off => return None,
        DnsSettings::System => match TokioResolver::builder_tokio() {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "no usable DNS configuration; reverse lookups are off");
                return None;
            }
        },
        DnsSettings::Servers(servers) => {
            opts.use_hosts_file = ResolveHosts::Never;
            let mut group = NameServerConfigGroup::new();
            for s in servers {
                group.merge(NameServerConfigGroup::from_ips_clear(
                    &[s.ip()],
                    s.port(),
                    true,
                ));
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
        }
    };
    Some((builder, opts))
}

/// A lookup's outcome: `Ok(None)` for no records or NXDOMAIN, `Err` for
/// anything else (a server failure, a timeout).
fn classify<L>(
    r: Result<Result<L, hickory_resolver::ResolveError>, tokio::time::error::Elapsed>,
) -> Result<Option<L>, DnsFailure> {
    match r {
        Err(_) => Err(DnsFailure),
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
        Ok(Err(_)) => Err(DnsFailure),
        Ok(Ok(l)) => Ok(Some(l)),
    }
}

/// The name to ask about, fully qualified (never with the search domains
/// appended): ASCII names as they are (underscores and all, as in
/// `_dmarc.` and `_domainkey.`), others through IDNA. `None` for a name
/// DNS cannot carry (over-long labels, bytes no label may hold): such a
/// name has no records, which is not a lookup failure.
fn fqdn(name: &str) -> Option<hickory_resolver::Name> {
    let name = format!("{}.", name.trim_end_matches('.'));
    let parsed = if name.is_ascii() {
        hickory_resolver::Name::from_ascii(&name)
    } else {
        hickory_resolver::Name::from_utf8(&name)
    };
    let parsed = parsed.ok()?;
    let plain = parsed.iter().all(|label| {
        !label.is_empty()
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    });
    plain.then_some(parsed)
}

/// The questions SPF and DMARC ask (`roost_protocols::smtp::spf`). Names
/// under the local zone's domains are answered from it.
impl AuthDns for Dns {
    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        if let Some(answer) = self.local.as_ref().and_then(|z| z.txt(name)) {
            return Ok(answer);
        }
        let resolver = self.resolver.as_ref().ok_or(DnsFailure)?;
        let Some(name) = fqdn(name) else {
            return Ok(Vec::new());
        };
        Ok(
            classify(tokio::time::timeout(DNS_TIMEOUT, resolver.txt_lookup(name)).await)?
                .map(|l| {
                    l.iter()
                        .map(|txt| {
                            txt.txt_data()
                                .iter()
                                .map(|part| String::from_utf8_lossy(part).into_owned())
                                .collect::<String>()
                        })
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
        if let Some(answer) = self.local.as_ref().and_then(|z| z.addresses(name)) {
            return Ok(answer
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .collect());
        }
        let resolver = self.resolver.as_ref().ok_or(DnsFailure)?;
        let Some(name) = fqdn(name) else {
            return Ok(Vec::new());
        };
        Ok(
            classify(tokio::time::timeout(DNS_TIMEOUT, resolver.ipv4_lookup(name)).await)?
                .map(|l| l.iter().map(|a| a.0).collect())
                .unwrap_or_default(),
        )
    }

    async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsFailure> {
        if let Some(answer) = self.local.as_ref().and_then(|z| z.addresses(name)) {
            return Ok(answer
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(v6),
                    IpAddr::V4(_) => None,
                })
                .collect());
        }
        let resolver = self.resolver.as_ref().ok_or(DnsFailure)?;
        let Some(name) = fqdn(name) else {
            return Ok(Vec::new());
        };
        Ok(
            classify(tokio::time::timeout(DNS_TIMEOUT, resolver.ipv6_lookup(name)).await)?
                .map(|l| l.iter().map(|a| a.0).collect())
                .unwrap_or_default(),
        )
    }

    async fn mx(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        if let Some(zone) = self.local.as_ref().filter(|z| z.covers(name)) {
            return Ok(zone.mx(name));
        }
        let resolver = self.resolver.as_ref().ok_or(DnsFailure)?;
        let Some(name) = fqdn(name) else {
            return Ok(Vec::new());
        };
        let found = classify(tokio::time::timeout(DNS_TIMEOUT, resolver.mx_lookup(name)).await)?;
        let mut hosts: Vec<(u16, String)> = found
            .map(|l| {
                l.iter()
                    .map(|mx| {
                        let host = mx.exchange().to_utf8();
                        (
                            mx.preference(),
                            host.trim_end_matches('.').to_ascii_lowercase(),
                        )
                    })
                    // A null MX (RFC 7505) names no host.
                    .filter(|(_, h)| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        hosts.sort();
        Ok(hosts.into_iter().map(|(_, h)| h).collect())
    }

    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsFailure> {
        if let Some(zone) = &self.local {
            if let Some(names) = zone.ptr(ip) {
                return Ok(names);
            }
        }
        self.reverse_all(ip).await
    }
}

/// The records localserve answers itself for its own domains, so its SPF,
/// DKIM and DMARC checks of its own mail pass without a network: every
/// domain's mail comes from loopback and is signed with the keys roost
/// holds. DMARC is p=none: mail that fails is reported in
/// Authentication-Results, never refused, so local tools always get in.
#[derive(Debug, Default)]
pub struct LocalZone {
    domains: Vec<String>,
    txt: std::collections::HashMap<String, Vec<String>>,
    hostname: String,
}

impl LocalZone {
    /// `keys`: each domain's DKIM selectors and their DNS records.
    pub fn new(hostname: &str, domains: &[String], keys: &[(String, String, String)]) -> LocalZone {
        let mut zone = LocalZone {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            txt: Default::default(),
            hostname: hostname.to_ascii_lowercase(),
        };
        if !zone.domains.contains(&zone.hostname) {
            zone.domains.push(zone.hostname.clone());
        }
        for d in zone.domains.clone() {
            zone.txt.insert(
                d.clone(),
                vec!["v=spf1 ip4:127.0.0.0/8 ip6:::1 -all".into()],
            );
            zone.txt
                .insert(format!("_dmarc.{d}"), vec!["v=DMARC1; p=none".into()]);
        }
        for (domain, selector, record) in keys {
            zone.txt
                .entry(format!(
                    "{selector}._domainkey.{}",
                    domain.to_ascii_lowercase()
                ))
                .or_default()
                .push(record.clone());
        }
        zone
    }

    fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .iter()
            .any(|d| name == *d || name.ends_with(&format!(".{d}")))
    }

    fn txt(&self, name: &str) -> Option<Vec<String>> {
        self.covers(name).then(|| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.txt.get(&name).cloned().unwrap_or_default()
        })
    }

    /// Every local domain and the host name are at loopback.
    fn addresses(&self, name: &str) -> Option<Vec<IpAddr>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.covers(&name).then(|| {
            if self.domains.contains(&name) {
                vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
            } else {
                Vec::new()
            }
        })
    }

    fn mx(&self, name: &str) -> Vec<String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.domains.contains(&name) {
            vec![self.hostname.clone()]
        } else {
            Vec::new()
        }
    }

    /// Loopback addresses are named by the host name.
    fn ptr(&self, ip: IpAddr) -> Option<Vec<String>> {
        ip.is_loopback().then(|| vec![self.hostname.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS server on loopback that answers one PTR question and refuses the
    /// rest (RFC 1035 4.1), so the test needs no network.
    fn fake_dns(ptr_of_192_0_2_7: &'static str) -> std::net::SocketAddr {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let q = &buf[..n];
                // The question: labels up to a zero byte, then type and class.
                let mut i = 12;
                let mut labels = Vec::new();
                while i < n && q[i] != 0 {
                    let len = q[i] as usize;
                    labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_lowercase());
                    i += 1 + len;
                }
                let question_end = i + 5;
                let name = labels.join(".");
                let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
                let mut r = Vec::new();
                r.extend_from_slice(&q[..2]);
                let found = name == "7.2.0.192.in-addr.arpa" && qtype == 12;
                // QR, RD, RA; rcode 0 or NXDOMAIN (3).
                r.extend_from_slice(&[0x81, if found { 0x80 } else { 0x83 }]);
                r.extend_from_slice(&[0, 1, 0, u8::from(found), 0, 0, 0, 0]);
                r.extend_from_slice(&q[12..question_end]);
                if found {
                    let mut rdata = Vec::new();
                    for label in ptr_of_192_0_2_7.trim_end_matches('.').split('.') {
                        rdata.push(label.len() as u8);
                        rdata.extend_from_slice(label.as_bytes());
                    }
                    rdata.push(0);
                    r.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60]);
                    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                    r.extend_from_slice(&rdata);
                }
                let _ = sock.send_to(&r, from);
            }
        });
        addr
    }

    /// Names DNS can carry are asked as they are (underscores too); names
    /// it cannot are no name at all, never a lookup failure.
    #[test]
    fn names_to_ask() {
        let asked = |n: &str| fqdn(n).map(|n| n.to_ascii());
        assert_eq!(
            asked("_dmarc.example.com").as_deref(),
            Some("_dmarc.example.com.")
        );
        assert_eq!(
            asked("s_1._domainkey.Example.com.").as_deref(),
            Some("s_1._domainkey.Example.com.")
        );
        assert_eq!(
            asked("b\u{fc}cher.example").as_deref(),
            Some("xn--bcher-kva.example.")
        );
        assert_eq!(
            asked(&format!("{}.example", "a".repeat(63))).map(|n| n.len()),
            Some(72)
        );
        assert_eq!(asked(&format!("{}.example", "a".repeat(64))), None);
        assert_eq!(asked("a/b.example"), None);
        assert_eq!(asked("[192.0.2.1]"), None);
        assert_eq!(asked("a..example"), None);
    }

    #[tokio::test]
    async fn reverse_names_come_from_the_configured_server() {
        let server = fake_dns("Client.Example.NET.");
        let dns = Dns::new(&DnsSettings::Servers(vec![server]));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(dns.reverse(ip).await.as_deref(), Some("client.example.net"));
        // NXDOMAIN: no name, and no error either.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(dns.reverse(other).await, None);
    }

    #[tokio::test]
    async fn lookups_off_answer_nothing() {
        let dns = Dns::new(&DnsSettings::Off);
        assert_eq!(dns.reverse("192.0.2.7".parse().unwrap()).await, None);
    }
}
