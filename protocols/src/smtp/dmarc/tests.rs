use super::*;
use crate::smtp::spf::tests::{block_on, Table};

fn inputs(author: &str, spf: SpfResult, spf_domain: &str, dkim: &[(&str, bool)]) -> Inputs {
    Inputs {
        author: author.into(),
        spf,
        spf_domain: spf_domain.into(),
        dkim: dkim
            .iter()
            .map(|(d, p)| {
                (
                    d.to_string(),
                    if *p { Verdict::Pass } else { Verdict::Other },
                )
            })
            .collect(),
    }
}

fn eval(dns: &Table, i: &Inputs) -> (DmarcResult, Policy, Policy, bool, bool) {
    let e = block_on(evaluate(dns, i, 0));
    (
        e.result,
        e.policy,
        e.disposition,
        e.spf_aligned,
        e.dkim_aligned,
    )
}

#[test]
fn records_parse_as_section_6_3_says() {
    let r = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=50; rua=mailto:a@example.com,mailto:b@example.com; ruf=mailto:x@example.com; fo=1").unwrap();
    assert_eq!(
        r,
        Record {
            p: Policy::Reject,
            sp: Some(Policy::Quarantine),
            adkim: Alignment::Strict,
            aspf: Alignment::Relaxed,
            pct: 50,
            rua: vec!["mailto:a@example.com".into(), "mailto:b@example.com".into()],
            psd: None,
        }
    );
    assert_eq!(parse_record("v=DMARC1;p=none").unwrap().p, Policy::None);
    // Errors in optional tags fall back to the defaults (RFC 7489 6.3).
    let lenient = parse_record("v=DMARC1; rua=x; p=reject; pct=101; adkim=x; nonsense").unwrap();
    assert_eq!(
        (lenient.p, lenient.pct, lenient.adkim, lenient.rua.len()),
        (Policy::Reject, 100, Alignment::Relaxed, 0)
    );
    // The URI scheme in any case (RFC 3986 3.1).
    assert_eq!(
        parse_record("v=DMARC1; p=none; rua=MAILTO:r@example.com")
            .unwrap()
            .rua,
        ["MAILTO:r@example.com"]
    );
    // An invalid sp with a report address: p=none (6.6.3 step 6).
    let r = parse_record("v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.com").unwrap();
    assert_eq!((r.p, r.sp), (Policy::None, None));
    assert_eq!(
        parse_record("v=DMARC1 ; p = Quarantine ;").unwrap().p,
        Policy::Quarantine
    );
    // No valid p but a report address: none (RFC 7489 6.6.3).
    assert_eq!(
        parse_record("v=DMARC1; rua=mailto:r@example.com")
            .unwrap()
            .p,
        Policy::None
    );
    for bad in [
        "v=DMARC1",
        "v=DMARC1; p=bogus",
        "v=DMARC1; p=reject; sp=bogus",
        "v=dmarc1; p=reject",
        "p=reject; v=DMARC1",
        "v=spf1 -all",
    ] {
        assert!(parse_record(bad).is_err(), "{bad}");
    }
    let at_edge = format!("v=DMARC1; p=none; x={}", "y".repeat(MAX_RECORD_LEN - 20));
    assert_eq!(at_edge.len(), MAX_RECORD_LEN);
    assert!(parse_record(&at_edge).is_ok());
    assert!(parse_record(&format!("{at_edge}y")).is_err());
    let rua = |n: usize| {
        let all: Vec<String> = (0..n).map(|i| format!("mailto:r{i}@example.com")).collect();
        let r = parse_record(&format!("v=DMARC1; p=none; rua={}", all.join(","))).unwrap();
        r.rua
    };
    assert_eq!(rua(MAX_REPORT_ADDRESSES).len(), MAX_REPORT_ADDRESSES);
    let past = rua(MAX_REPORT_ADDRESSES + 1);
    assert_eq!(past.len(), MAX_REPORT_ADDRESSES);
    assert_eq!(past.last().unwrap(), "mailto:r9@example.com");
}

#[test]
fn alignment_relaxed_and_strict() {
    let dns = Table::default()
        .txt("_dmarc.example.com", "v=DMARC1; p=reject")
        .txt(
            "_dmarc.strict.example",
            "v=DMARC1; p=reject; adkim=s; aspf=s",
        )
        .txt("_dmarc.other.example", "v=DMARC1; p=quarantine");
    // SPF pass for a subdomain of the author's Organizational Domain.
    let i = inputs("example.com", SpfResult::Pass, "bounce.example.com", &[]);
    assert_eq!(
        eval(&dns, &i),
        (DmarcResult::Pass, Policy::Reject, Policy::None, true, false)
    );
    // DKIM pass for the parent of the author domain.
    let i = inputs(
        "news.example.com",
        SpfResult::Fail,
        "x.example.net",
        &[("example.com", true)],
    );
    assert_eq!(
        eval(&dns, &i),
        (DmarcResult::Pass, Policy::Reject, Policy::None, false, true)
    );
    // A failed signature does not count, nor an SPF pass of another domain.
    let i = inputs(
        "example.com",
        SpfResult::Pass,
        "example.net",
        &[("example.com", false), ("example.net", true)],
    );
    assert_eq!(
        eval(&dns, &i),
        (
            DmarcResult::Fail,
            Policy::Reject,
            Policy::Reject,
            false,
            false
        )
    );
    // Strict: only the same name aligns.
    let i = inputs(
        "strict.example",
        SpfResult::Pass,
        "a.strict.example",
        &[("a.strict.example", true)],
    );
    assert_eq!(
        eval(&dns, &i),
        (
            DmarcResult::Fail,
            Policy::Reject,
            Policy::Reject,
            false,
            false
        )
    );
    let i = inputs("strict.example", SpfResult::Pass, "STRICT.example.", &[]);
    assert_eq!(
        eval(&dns, &i),
        (DmarcResult::Pass, Policy::Reject, Policy::None, true, false)
    );
    // No record anywhere: none.
    let i = inputs("nodmarc.example", SpfResult::Fail, "x.example", &[]);
    assert_eq!(
        eval(&dns, &i),
        (DmarcResult::None, Policy::None, Policy::None, false, false)
    );
}

#[test]
fn subdomains_use_sp_and_pct_softens() {
    let dns = Table::default()
        .txt(
            "_dmarc.example.com",
            "v=DMARC1; p=reject; sp=quarantine; pct=30",
        )
        .txt("_dmarc.example.org", "v=DMARC1; p=quarantine")
        .failing("_dmarc.down.example");
    let sub = inputs("a.b.example.com", SpfResult::None, "x.example", &[]);
    let e = block_on(evaluate(&dns, &sub, 0));
    assert_eq!(
        (e.policy, e.disposition),
        (Policy::Quarantine, Policy::Quarantine)
    );
    assert_eq!(e.found.unwrap().domain, "example.com");
    // pct=30: samples 0..29 apply the policy, the rest get the next one down.
    let top = inputs("example.com", SpfResult::None, "x.example", &[]);
    let at = |s| block_on(evaluate(&dns, &top, s)).disposition;
    assert_eq!((at(29), at(30)), (Policy::Reject, Policy::Quarantine));
    let org = inputs("example.org", SpfResult::None, "x.example", &[]);
    assert_eq!(
        block_on(evaluate(&dns, &org, 99)).disposition,
        Policy::Quarantine
    );
    let down = inputs("down.example", SpfResult::Pass, "down.example", &[]);
    assert_eq!(
        block_on(evaluate(&dns, &down, 0)).result,
        DmarcResult::TempError
    );
}

/// A temporary failure of an aligned identifier's check applies no
/// policy; one of an identifier that does not align changes nothing.
#[test]
fn unfinished_checks_of_aligned_identifiers_are_temperror() {
    let dns = Table::default().txt("_dmarc.example.com", "v=DMARC1; p=reject");
    let at = |spf, spf_domain: &str, dkim: Vec<(String, Verdict)>| {
        let mut i = inputs("example.com", spf, spf_domain, &[]);
        i.dkim = dkim;
        let e = block_on(evaluate(&dns, &i, 0));
        (e.result, e.disposition)
    };
    let temp = (DmarcResult::TempError, Policy::None);
    let rejected = (DmarcResult::Fail, Policy::Reject);
    assert_eq!(at(SpfResult::TempError, "example.com", vec![]), temp);
    assert_eq!(at(SpfResult::TempError, "example.net", vec![]), rejected);
    let dkim = |d: &str, v| vec![(d.to_string(), v)];
    assert_eq!(
        at(
            SpfResult::Fail,
            "x.example",
            dkim("mail.example.com", Verdict::TempError)
        ),
        temp
    );
    assert_eq!(
        at(
            SpfResult::Fail,
            "x.example",
            dkim("example.net", Verdict::TempError)
        ),
        rejected
    );
    // An aligned pass wins over an unfinished check.
    let both = vec![
        ("example.com".to_string(), Verdict::TempError),
        ("example.com".to_string(), Verdict::Pass),
    ];
    assert_eq!(
        at(SpfResult::Fail, "x.example", both),
        (DmarcResult::Pass, Policy::None)
    );
}

/// DMARCbis 4.10: at most 8 names, the Organizational Domain found by
/// psd tags or the shortest name with a record.
#[test]
fn the_tree_walk() {
    assert_eq!(ancestors("a.b.c"), ["b.c", "c"]);
    assert_eq!(ancestors("com"), Vec::<String>::new());
    let long = "1.2.3.4.5.6.7.8.9.example.com";
    let walked = ancestors(long);
    assert_eq!(walked.len() + 1, MAX_TREE_WALK);
    assert_eq!(walked[0], "5.6.7.8.9.example.com");
    let dns = Table::default()
        .txt("_dmarc.example.com", "v=DMARC1; p=none")
        .txt("_dmarc.co.example", "v=DMARC1; p=none; psd=y")
        .txt("_dmarc.shop.co.example", "v=DMARC1; p=reject")
        .txt("_dmarc.own.example", "v=DMARC1; p=none")
        .txt("_dmarc.x.own.example", "v=DMARC1; p=none; psd=n");
    let org = |d: &str| block_on(organizational_domain(&dns, d));
    assert_eq!(org("mail.example.com"), "example.com");
    assert_eq!(org("a.b.shop.co.example"), "shop.co.example");
    assert_eq!(org("y.x.own.example"), "x.own.example");
    assert_eq!(org("nothing.example.net"), "nothing.example.net");
    // psd=y at the starting name itself is ignored.
    assert_eq!(org("co.example"), "co.example");
    // After the jump from 11 labels to 7, "one below" is counted in the
    // name, not taken from the previous question.
    let deep = Table::default().txt("_dmarc.co.example", "v=DMARC1; p=none; psd=y");
    assert_eq!(
        block_on(organizational_domain(&deep, "1.2.3.4.5.6.7.8.9.co.example")),
        "9.co.example"
    );
    // At most MAX_TREE_WALK names are asked about: all of them for 8
    // labels, and still 8 for 9 labels.
    for (labels, asked) in [
        (MAX_TREE_WALK, MAX_TREE_WALK),
        (MAX_TREE_WALK + 1, MAX_TREE_WALK),
    ] {
        let quiet = Table::default();
        let name: Vec<String> = (0..labels).map(|i| format!("l{i}")).collect();
        block_on(organizational_domain(&quiet, &name.join(".")));
        assert_eq!(quiet.asked().len(), asked, "{labels} labels");
    }
    // Two records at one name: none applies.
    let two = Table::default()
        .txt("_dmarc.example.com", "v=DMARC1; p=reject")
        .txt("_dmarc.example.com", "v=DMARC1; p=none");
    let i = inputs("example.com", SpfResult::Fail, "x.example", &[]);
    assert_eq!(block_on(evaluate(&two, &i, 0)).result, DmarcResult::None);
}

/// RFC 7489 6.6.3: without a record of its own, the author domain takes
/// its Organizational Domain's, not one in between.
#[test]
fn policy_comes_from_the_author_or_the_organizational_domain() {
    let dns = Table::default()
        .txt("_dmarc.b.example.com", "v=DMARC1; p=none")
        .txt("_dmarc.example.com", "v=DMARC1; p=reject");
    let i = inputs("a.b.example.com", SpfResult::None, "x.example", &[]);
    let e = block_on(evaluate(&dns, &i, 0));
    assert_eq!(
        (e.result, e.disposition),
        (DmarcResult::Fail, Policy::Reject)
    );
    assert_eq!(e.found.unwrap().domain, "example.com");
}

/// DMARCbis: the author domain is compared in A-label form.
#[test]
fn non_ascii_author_domains_align_as_a_labels() {
    let dns = Table::default().txt("_dmarc.xn--bcher-kva.example", "v=DMARC1; p=reject");
    let i = inputs(
        "B\u{fc}cher.example",
        SpfResult::None,
        "x.example",
        &[("xn--bcher-kva.example", true)],
    );
    assert_eq!(
        eval(&dns, &i),
        (DmarcResult::Pass, Policy::Reject, Policy::None, false, true)
    );
}
