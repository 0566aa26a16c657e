//! DNS for the sessions, through hickory-resolver. Today: the reverse name
//! (PTR) of an SMTP client, written into the Received line it gets (RFC
//! 5321 4.4: the "from" clause carries the name the address resolves to).
//! The outgoing queue will add MX, MTA-STS and DANE lookups here.

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long one lookup may take before roost goes on without its answer.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(3);

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

#[derive(Clone, Default)]
pub struct Dns {
    resolver: Option<Arc<TokioResolver>>,
}

impl Dns {
    pub fn new(settings: &DnsSettings) -> Dns {
        let mut opts = ResolverOpts::default();
        opts.timeout = DNS_TIMEOUT;
        opts.attempts = 1;
        let builder = match settings {
            DnsSettings::Off => return Dns::default(),
            DnsSettings::System => match TokioResolver::builder_tokio() {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "no usable DNS configuration; reverse lookups are off");
                    return Dns::default();
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
        Dns {
            resolver: Some(Arc::new(builder.with_options(opts).build())),
        }
    }

    /// The TXT record at `name`, its strings joined (the first record, if
    /// several); `Ok(None)` when there is none, `Err` when the lookup
    /// failed or timed out (or lookups are off).
    pub async fn txt(&self, name: &str) -> Result<Option<String>, String> {
        let resolver = self.resolver.as_ref().ok_or("DNS lookups are off")?;
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match tokio::time::timeout(DNS_TIMEOUT, resolver.txt_lookup(fqdn)).await {
            Err(_) => Err("DNS timed out".into()),
            Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
            Ok(Err(e)) => Err(format!("DNS: {e}")),
            Ok(Ok(lookup)) => Ok(lookup.iter().next().map(|txt| {
                txt.txt_data()
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>()
            })),
        }
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
