use super::*;
use std::collections::HashMap;
use std::task::{Context, Poll, Waker};

/// Answers from a table; a name mapped to "SERVFAIL" fails every lookup.
#[derive(Default)]
pub(crate) struct Table {
    txt: HashMap<String, Vec<String>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    aaaa: HashMap<String, Vec<Ipv6Addr>>,
    mx: HashMap<String, Vec<String>>,
    ptr: HashMap<IpAddr, Vec<String>>,
    failing: Vec<String>,
    /// The TXT names asked for, in order.
    asked: std::sync::Mutex<Vec<String>>,
}

impl Table {
    pub(crate) fn txt(mut self, name: &str, record: &str) -> Self {
        self.txt.entry(name.into()).or_default().push(record.into());
        self
    }
    pub(crate) fn a(mut self, name: &str, ip: &str) -> Self {
        self.a
            .entry(name.into())
            .or_default()
            .push(ip.parse().unwrap());
        self
    }
    pub(crate) fn aaaa(mut self, name: &str, ip: &str) -> Self {
        self.aaaa
            .entry(name.into())
            .or_default()
            .push(ip.parse().unwrap());
        self
    }
    pub(crate) fn mx(mut self, name: &str, host: &str) -> Self {
        self.mx.entry(name.into()).or_default().push(host.into());
        self
    }
    pub(crate) fn ptr(mut self, ip: &str, name: &str) -> Self {
        self.ptr
            .entry(ip.parse().unwrap())
            .or_default()
            .push(name.into());
        self
    }
    pub(crate) fn failing(mut self, name: &str) -> Self {
        self.failing.push(name.into());
        self
    }
    /// The TXT names asked for so far.
    pub(crate) fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
    fn get<T: Clone>(
        &self,
        map: &HashMap<String, Vec<T>>,
        name: &str,
    ) -> Result<Vec<T>, DnsFailure> {
        if self.failing.iter().any(|f| f == name) {
            return Err(DnsFailure);
        }
        Ok(map.get(name).cloned().unwrap_or_default())
    }
}

impl AuthDns for Table {
    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        self.asked.lock().unwrap().push(name.to_string());
        self.get(&self.txt, name)
    }
    async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
        self.get(&self.a, name)
    }
    async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsFailure> {
        self.get(&self.aaaa, name)
    }
    async fn mx(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        self.get(&self.mx, name)
    }
    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsFailure> {
        Ok(self.ptr.get(&ip).cloned().unwrap_or_default())
    }
}

/// Runs a future whose lookups are all ready at once.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn check(dns: &Table, ip: &str, sender: &str) -> SpfResult {
    let q = Query::mail_from(ip.parse().unwrap(), Some(sender), "helo.example.net");
    block_on(check_host(dns, &q, &q.sender_domain.clone()))
}

/// The zone RFC 7208 Appendix A describes, near enough.
fn zone() -> Table {
    Table::default()
        .a("example.com", "192.0.2.10")
        .a("example.com", "192.0.2.11")
        .a("amy.example.com", "192.0.2.65")
        .a("bob.example.com", "192.0.2.66")
        .a("mail-a.example.com", "192.0.2.129")
        .a("mail-b.example.com", "192.0.2.130")
        .a("www.example.com", "192.0.2.10")
        .aaaa("example.com", "2001:db8::10")
        .mx("example.com", "mail-a.example.com")
        .mx("example.com", "mail-b.example.com")
        .mx("example.org", "mail-c.example.org")
        .a("mail-c.example.org", "192.0.2.140")
        .ptr("192.0.2.10", "example.com")
        .ptr("192.0.2.11", "example.com")
        .ptr("192.0.2.65", "amy.example.com")
        .ptr("192.0.2.66", "bob.example.com")
        .ptr("192.0.2.140", "mail-c.example.org")
        .ptr("10.0.0.4", "bob.example.com")
}

/// RFC 7208 Appendix A.1's examples, each as the only record of
/// example.com.
#[test]
fn mechanisms_match_as_appendix_a_describes() {
    let cases: &[(&str, &str, SpfResult)] = &[
        ("v=spf1 +all", "192.0.2.200", SpfResult::Pass),
        ("v=spf1 a -all", "192.0.2.10", SpfResult::Pass),
        ("v=spf1 a -all", "192.0.2.65", SpfResult::Fail),
        ("v=spf1 a:example.org -all", "192.0.2.10", SpfResult::Fail),
        ("v=spf1 mx -all", "192.0.2.129", SpfResult::Pass),
        ("v=spf1 mx -all", "192.0.2.10", SpfResult::Fail),
        ("v=spf1 mx:example.org -all", "192.0.2.140", SpfResult::Pass),
        (
            "v=spf1 mx mx:example.org -all",
            "192.0.2.130",
            SpfResult::Pass,
        ),
        (
            "v=spf1 mx/30 mx:example.org/30 -all",
            "192.0.2.131",
            SpfResult::Pass,
        ),
        (
            "v=spf1 mx/30 mx:example.org/30 -all",
            "192.0.2.143",
            SpfResult::Pass,
        ),
        ("v=spf1 mx/30 -all", "192.0.2.133", SpfResult::Fail),
        ("v=spf1 ptr -all", "192.0.2.65", SpfResult::Pass),
        ("v=spf1 ptr -all", "192.0.2.140", SpfResult::Fail),
        // The PTR name is not confirmed by its A record.
        ("v=spf1 ptr -all", "10.0.0.4", SpfResult::Fail),
        (
            "v=spf1 ip4:192.0.2.128/28 -all",
            "192.0.2.129",
            SpfResult::Pass,
        ),
        (
            "v=spf1 ip4:192.0.2.128/28 -all",
            "192.0.2.65",
            SpfResult::Fail,
        ),
        ("v=spf1 ~all", "192.0.2.1", SpfResult::SoftFail),
        ("v=spf1 ?all", "192.0.2.1", SpfResult::Neutral),
        ("v=spf1 a", "192.0.2.1", SpfResult::Neutral),
        ("v=spf1 -ip4:192.0.2.1 +all", "192.0.2.1", SpfResult::Fail),
        // An IPv4-mapped IPv6 client is checked as IPv4.
        (
            "v=spf1 ip4:192.0.2.0/24 -all",
            "::ffff:192.0.2.9",
            SpfResult::Pass,
        ),
        ("v=spf1 a//64 -all", "2001:db8::1", SpfResult::Pass),
        ("v=spf1 a -all", "2001:db8::1", SpfResult::Fail),
        (
            "v=spf1 ip6:2001:db8::/32 -all",
            "2001:db8:1::1",
            SpfResult::Pass,
        ),
        (
            "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all",
            "192.0.2.3",
            SpfResult::Pass,
        ),
        (
            "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all",
            "192.0.2.4",
            SpfResult::Fail,
        ),
    ];
    for (record, ip, want) in cases {
        let dns = zone()
            .txt("example.com", record)
            .a("3.2.0.192.joe._spf.example.com", "127.0.0.2");
        assert_eq!(
            check(&dns, ip, "joe@example.com"),
            *want,
            "{record} from {ip}"
        );
    }
}

#[test]
fn includes_and_redirects_follow_the_table_of_5_2() {
    let dns = zone()
        .txt("example.com", "v=spf1 include:a.example.net -all")
        .txt("a.example.net", "v=spf1 ip4:192.0.2.1 -all")
        .txt("example.org", "v=spf1 include:none.example.net -all")
        .txt("example.edu", "v=spf1 include:broken.example.net -all")
        .txt("broken.example.net", "v=spf1 bogus")
        .txt("example.info", "v=spf1 include:fail.example.net ~all")
        .failing("fail.example.net")
        .txt("r.example.com", "v=spf1 redirect=a.example.net")
        .txt(
            "s.example.com",
            "v=spf1 -ip4:192.0.2.1 redirect=a.example.net",
        )
        .txt("t.example.com", "v=spf1 redirect=none.example.net")
        .txt("u.example.com", "v=spf1 ?all redirect=a.example.net");
    assert_eq!(check(&dns, "192.0.2.1", "x@example.com"), SpfResult::Pass);
    assert_eq!(check(&dns, "192.0.2.2", "x@example.com"), SpfResult::Fail);
    // An include of a domain without a record is a permerror.
    assert_eq!(
        check(&dns, "192.0.2.1", "x@example.org"),
        SpfResult::PermError
    );
    assert_eq!(
        check(&dns, "192.0.2.1", "x@example.edu"),
        SpfResult::PermError
    );
    assert_eq!(
        check(&dns, "192.0.2.1", "x@example.info"),
        SpfResult::TempError
    );
    assert_eq!(check(&dns, "192.0.2.1", "x@r.example.com"), SpfResult::Pass);
    assert_eq!(check(&dns, "192.0.2.2", "x@r.example.com"), SpfResult::Fail);
    // A matching mechanism wins over redirect.
    assert_eq!(check(&dns, "192.0.2.1", "x@s.example.com"), SpfResult::Fail);
    assert_eq!(
        check(&dns, "192.0.2.1", "x@t.example.com"),
        SpfResult::PermError
    );
    // "all" makes redirect unused.
    assert_eq!(
        check(&dns, "192.0.2.1", "x@u.example.com"),
        SpfResult::Neutral
    );
}

#[test]
fn record_selection_none_several_and_failures() {
    let dns = Table::default()
        .txt("one.example", "google-site-verification=x")
        .txt("two.example", "v=spf1 -all")
        .txt("two.example", "v=spf1 +all")
        .txt("case.example", "V=SPF1 -all")
        .txt("spf10.example", "v=spf10 +all")
        .failing("down.example");
    assert_eq!(check(&dns, "192.0.2.1", "x@one.example"), SpfResult::None);
    assert_eq!(
        check(&dns, "192.0.2.1", "x@two.example"),
        SpfResult::PermError
    );
    assert_eq!(check(&dns, "192.0.2.1", "x@case.example"), SpfResult::Fail);
    assert_eq!(check(&dns, "192.0.2.1", "x@spf10.example"), SpfResult::None);
    assert_eq!(
        check(&dns, "192.0.2.1", "x@down.example"),
        SpfResult::TempError
    );
    // Not a usable domain name (RFC 7208 4.3).
    assert_eq!(check(&dns, "192.0.2.1", "x@localhost"), SpfResult::None);
    assert_eq!(check(&dns, "192.0.2.1", "x@a..example"), SpfResult::None);
}

/// RFC 7208 4.6.4: ten DNS terms are allowed, the eleventh is a
/// permerror; two void lookups are allowed, the third is one.
#[test]
fn lookup_limits_at_the_edge_and_one_past() {
    let chain = |n: usize| {
        let mut dns = Table::default();
        // example.com includes i1, i1 includes i2, ... the last passes.
        let mut from = "example.com".to_string();
        for i in 1..=n {
            let to = format!("i{i}.example.com");
            dns = dns.txt(&from, &format!("v=spf1 include:{to} -all"));
            from = to;
        }
        dns.txt(&from, "v=spf1 +all")
    };
    assert_eq!(
        check(&chain(MAX_DNS_TERMS), "192.0.2.1", "x@example.com"),
        SpfResult::Pass
    );
    assert_eq!(
        check(&chain(MAX_DNS_TERMS + 1), "192.0.2.1", "x@example.com"),
        SpfResult::PermError
    );
    // An include of itself ends at the limit.
    let looped = Table::default().txt("example.com", "v=spf1 include:example.com -all");
    assert_eq!(
        check(&looped, "192.0.2.1", "x@example.com"),
        SpfResult::PermError
    );
    let voids = |n: usize| {
        let terms: Vec<String> = (0..n).map(|i| format!("a:v{i}.example.com")).collect();
        Table::default().txt("example.com", &format!("v=spf1 {} +all", terms.join(" ")))
    };
    assert_eq!(
        check(&voids(MAX_VOID_LOOKUPS), "192.0.2.1", "x@example.com"),
        SpfResult::Pass
    );
    assert_eq!(
        check(&voids(MAX_VOID_LOOKUPS + 1), "192.0.2.1", "x@example.com"),
        SpfResult::PermError
    );
    let mx = |n: usize| {
        let mut dns = Table::default().txt("example.com", "v=spf1 mx +all");
        for i in 0..n {
            dns = dns.mx("example.com", &format!("mx{i}.example.com"));
        }
        dns
    };
    assert_eq!(
        check(&mx(MAX_MX_NAMES), "192.0.2.1", "x@example.com"),
        SpfResult::Pass
    );
    assert_eq!(
        check(&mx(MAX_MX_NAMES + 1), "192.0.2.1", "x@example.com"),
        SpfResult::PermError
    );
}

#[test]
fn records_that_do_not_parse() {
    for bad in [
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 exp=a.example exp=b.example",
        "v=spf1 ip4:192.0.2.1/33",
        "v=spf1 ip4:192.0.2.1/08",
        "v=spf1 ip6:2001:db8::/129",
        "v=spf1 ip4:2001:db8::1",
        "v=spf1 a:example.123",
        "v=spf1 include",
        "v=spf1 all:example.com",
        "v=spf1 frobnicate",
        "v=spf1 a:%{x}.example.com",
        "v=spf1 a:%{d0}.example.com",
        "v=spf1 a:%{d",
        "v=spf1 a:50%.example.com",
        "v=spf1 exists:%{c}.example.com",
        "v=spf1 -",
    ] {
        assert!(parse_record(bad).is_err(), "{bad}");
    }
    let edge = format!("v=spf1{}", " ".repeat(MAX_RECORD_LEN - 6));
    assert!(parse_record(&edge).is_ok());
    assert_eq!(
        parse_record(&format!("{edge} ")),
        Err("record too long".to_string())
    );
    for good in [
        "v=spf1",
        "v=spf1 ",
        "v=spf1 a/24//64 mx:example.com//48 ptr:example.com ~all",
        "v=spf1 unknown-mod=%{d}.x exp=explain.%{d} -all",
    ] {
        assert!(parse_record(good).is_ok(), "{good}");
    }
}

/// RFC 7208 7.4's examples.
#[test]
fn macros_expand_as_section_7_4_shows() {
    let q = Query::mail_from(
        "192.0.2.3".parse().unwrap(),
        Some("strong-bad@email.example.com"),
        "mx.example.org",
    );
    let d = "email.example.com";
    for (spec, want) in [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        (
            "%{ir}.%{v}._spf.%{d2}",
            "3.2.0.192.in-addr._spf.example.com",
        ),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        (
            "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
        ),
        (
            "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
            "3.2.0.192.in-addr.strong.lp._spf.example.com",
        ),
        (
            "%{d2}.trusted-domains.example.net",
            "example.com.trusted-domains.example.net",
        ),
        ("%%%_%-", "% %20"),
        ("%{h}", "mx.example.org"),
        ("%{S}", "strong-bad%40email.example.com"),
    ] {
        assert_eq!(expand(spec, &q, d, false).unwrap(), want, "{spec}");
    }
    let q6 = Query::mail_from(
        "2001:db8::cb01".parse().unwrap(),
        Some("strong-bad@email.example.com"),
        "mx.example.org",
    );
    assert_eq!(
        expand("%{ir}.%{v}._spf.%{d2}", &q6, d, false).unwrap(),
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    );
}

#[test]
fn received_spf_names_the_result_the_client_and_the_identity() {
    let q = Query::mail_from(
        "192.0.2.3".parse().unwrap(),
        Some("a@example.com"),
        "mx.example.com",
    );
    assert_eq!(
        received_spf(SpfResult::Pass, "mx.test", &q, "mailfrom", Some("a@example.com")),
        "Received-SPF: pass (mx.test: domain of a@example.com designates 192.0.2.3 as permitted sender) client-ip=192.0.2.3;\r\n\tenvelope-from=\"a@example.com\"; helo=mx.example.com; identity=mailfrom;\r\n"
    );
    let q = Query::helo("192.0.2.3".parse().unwrap(), "not a (name)");
    assert_eq!(
        received_spf(SpfResult::None, "mx.test", &q, "helo", None),
        "Received-SPF: none (mx.test: HELO name not a name does not publish SPF) client-ip=192.0.2.3;\r\n\tenvelope-from=\"<>\"; helo=\"not a (name)\"; identity=helo;\r\n"
    );
}

/// RFC 7208 4.6.4: the first 10 PTR names are looked at, the 11th not.
#[test]
fn ptr_looks_at_ten_names() {
    let with = |n: usize| {
        let mut dns = Table::default().txt("example.com", "v=spf1 ptr -all");
        for i in 0..n {
            dns = dns.ptr("192.0.2.9", &format!("h{i}.other.example"));
        }
        // Only the last name is under example.com and leads back.
        dns.ptr("192.0.2.9", "mail.example.com")
            .a("mail.example.com", "192.0.2.9")
    };
    assert_eq!(
        check(&with(MAX_PTR_NAMES - 1), "192.0.2.9", "x@example.com"),
        SpfResult::Pass
    );
    assert_eq!(
        check(&with(MAX_PTR_NAMES), "192.0.2.9", "x@example.com"),
        SpfResult::Fail
    );
}

/// RFC 7208 7.3: an expansion over 253 octets loses labels on the left;
/// 4.3: names check_host does not look up.
#[test]
fn long_expansions_are_shortened_and_odd_names_are_none() {
    let label = "a".repeat(63);
    let at_edge = format!("{label}.{label}.{label}.{}.example", "b".repeat(53));
    assert_eq!(at_edge.len(), MAX_DOMAIN_LEN);
    assert_eq!(shorten(&at_edge), at_edge);
    let past = format!("c.{at_edge}");
    assert_eq!(shorten(&past), at_edge);
    let longer = format!("cc{at_edge}");
    assert_eq!(shorten(&longer), &at_edge[64..]);
    for odd in [
        "[192.0.2.1]",
        "localhost",
        "example.123",
        "a b.example",
        "-",
    ] {
        assert!(!valid_domain(odd), "{odd}");
    }
    for fine in ["_spf.example.com", "b\u{fc}cher.example", "example.com."] {
        assert!(valid_domain(fine), "{fine}");
    }
}

/// A macro keeps at most MAX_MACRO_PARTS parts; more is the same.
#[test]
fn macro_digits_are_capped() {
    let sender = format!("{}@example.com", vec!["p"; MAX_MACRO_PARTS + 2].join("."));
    let q = Query::mail_from("192.0.2.3".parse().unwrap(), Some(&sender), "h.example");
    let keep = |n: usize| expand(&format!("%{{l{n}}}"), &q, "example.com", false).unwrap();
    let all = vec!["p"; MAX_MACRO_PARTS].join(".");
    assert_eq!(keep(MAX_MACRO_PARTS), all);
    assert_eq!(keep(MAX_MACRO_PARTS + 1), all);
    assert_eq!(keep(1), "p");
}
