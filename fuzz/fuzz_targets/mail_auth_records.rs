//! SPF and DMARC records from DNS: parsing never panics; an SPF
//! evaluation where every name publishes the fuzzed record (includes and
//! redirects of themselves, macros of every kind) ends within the lookup
//! limits of RFC 7208 4.6.4; DMARC evaluation over the fuzzed record
//! never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::dmarc_report;
use roost_protocols::smtp::dmarc::{self, Inputs, Verdict};
use roost_protocols::smtp::{mta_sts, tlsrpt};
use roost_protocols::smtp::spf::{self, AuthDns, DnsFailure, Query, SpfResult, MAX_DNS_TERMS};
use std::cell::Cell;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

/// Every name has the fuzzed TXT record and one address of each family.
struct Echo {
    record: String,
    lookups: AtomicUsize,
}

impl AuthDns for Echo {
    async fn txt(&self, _: &str) -> Result<Vec<String>, DnsFailure> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(vec![self.record.clone()])
    }
    async fn a(&self, _: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
        Ok(vec![Ipv4Addr::new(192, 0, 2, 1)])
    }
    async fn aaaa(&self, _: &str) -> Result<Vec<Ipv6Addr>, DnsFailure> {
        Ok(vec![Ipv6Addr::LOCALHOST])
    }
    async fn mx(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        Ok(vec![format!("mx.{name}")])
    }
    async fn ptr(&self, _: IpAddr) -> Result<Vec<String>, DnsFailure> {
        Ok(vec!["host.example.com".into()])
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    let polls = Cell::new(0u32);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        polls.set(polls.get() + 1);
        assert!(polls.get() < 1_000, "an always-ready lookup kept the future pending");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = spf::parse_record(&text);
    let q = Query::mail_from(
        "192.0.2.3".parse().unwrap(),
        Some("strong-bad@email.example.com"),
        "mx.example.org",
    );
    let _ = spf::expand(&text, &q, "email.example.com", true);
    let dns = Echo {
        record: text.clone(),
        lookups: AtomicUsize::new(0),
    };
    let result = block_on(spf::check_host(&dns, &q, "example.com"));
    // The first TXT lookup, then at most one per counted term.
    assert!(dns.lookups.load(Ordering::Relaxed) <= MAX_DNS_TERMS + 1);
    let _ = result == SpfResult::Pass;
    // TLS reporting records (RFC 8460), read as the TLS report scheduler
    // reads them.
    // MTA-STS records and policy files (RFC 8461), and MX matching.
    if let Ok(id) = mta_sts::parse_record(&text) {
        assert!(!id.is_empty() && id.len() <= 32);
    }
    if let Ok(policy) = mta_sts::Policy::parse(&text) {
        assert!(policy.mx.len() <= mta_sts::MAX_MX_PATTERNS);
        for line in text.lines().take(4) {
            let _ = policy.matches(line);
        }
    }
    if let Ok(rua) = tlsrpt::parse_record(&text) {
        assert!(!rua.is_empty() && rua.len() <= tlsrpt::MAX_RUA);
    }
    if let Ok(record) = dmarc::parse_record(&text) {
        // Report addresses, as the DMARC report scheduler reads them.
        for uri in &record.rua {
            if let Some((address, _)) = dmarc_report::mailto(uri) {
                assert!(address.contains('@'));
            }
        }
    }
    let inputs = Inputs {
        author: "a.b.c.d.e.f.g.h.i.example.com".into(),
        spf: SpfResult::Pass,
        spf_domain: "x.example.com".into(),
        dkim: vec![("y.example.com".into(), Verdict::Pass)],
    };
    let _ = block_on(dmarc::evaluate(&dns, &inputs, 50));
});
