//! DMARC aggregate reports (RFC 7489 7.2 and appendix C): the XML a
//! receiver sends to a domain's `rua` addresses, and the `rua` URIs
//! themselves (7.1: `mailto:` with an optional `!size` limit).

/// The policy a domain published, as the report repeats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub domain: String,
    pub adkim: String,
    pub aspf: String,
    pub p: String,
    pub sp: String,
    pub pct: u8,
    /// Failure reporting options (`fo`, default `0`).
    pub fo: String,
}

impl Published {
    /// From the tags roost records (`p=none sp=none pct=100 adkim=r
    /// aspf=r`); missing tags take RFC 7489's defaults.
    pub fn from_tags(domain: &str, tags: &str) -> Published {
        let get = |name: &str| {
            tags.split_ascii_whitespace()
                .find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let p = get("p").unwrap_or_else(|| "none".into());
        Published {
            domain: domain.to_string(),
            adkim: get("adkim").unwrap_or_else(|| "r".into()),
            aspf: get("aspf").unwrap_or_else(|| "r".into()),
            sp: get("sp").unwrap_or_else(|| p.clone()),
            pct: get("pct").and_then(|v| v.parse().ok()).unwrap_or(100),
            fo: get("fo").unwrap_or_else(|| "0".into()),
            p,
        }
    }
}

/// One row: messages from one source with the same results.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub source_ip: String,
    pub header_from: String,
    pub disposition: String,
    /// The DMARC-aligned results: `pass` or `fail`.
    pub dkim: String,
    pub spf: String,
    /// (domain, selector, result) of each DKIM signature.
    pub dkim_results: Vec<(String, String, String)>,
    /// The SPF-checked domain and its result.
    pub spf_domain: String,
    pub spf_result: String,
}

/// Who reports, about when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub org_name: String,
    pub email: String,
    pub report_id: String,
    /// Unix seconds.
    pub begin: i64,
    pub end: i64,
}

/// The report's XML (appendix C): rows with equal contents counted
/// together.
pub fn aggregate_xml(meta: &Metadata, published: &Published, rows: &[Row]) -> String {
    let mut counted: Vec<(Row, u64)> = Vec::new();
    let mut sorted = rows.to_vec();
    sorted.sort();
    for r in sorted {
        match counted.last_mut() {
            Some((last, n)) if *last == r => *n += 1,
            _ => counted.push((r, 1)),
        }
    }
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n",
    );
    x.push_str("  <report_metadata>\n");
    x.push_str(&format!(
        "    <org_name>{}</org_name>\n",
        escape(&meta.org_name)
    ));
    x.push_str(&format!("    <email>{}</email>\n", escape(&meta.email)));
    x.push_str(&format!(
        "    <report_id>{}</report_id>\n",
        escape(&meta.report_id)
    ));
    x.push_str(&format!(
        "    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>\n",
        meta.begin, meta.end
    ));
    x.push_str("  </report_metadata>\n  <policy_published>\n");
    let p = published;
    for (tag, value) in [
        ("domain", p.domain.as_str()),
        ("adkim", p.adkim.as_str()),
        ("aspf", p.aspf.as_str()),
        ("p", p.p.as_str()),
        ("sp", p.sp.as_str()),
    ] {
        x.push_str(&format!("    <{tag}>{}</{tag}>\n", escape(value)));
    }
    x.push_str(&format!(
        "    <pct>{}</pct>\n    <fo>{}</fo>\n  </policy_published>\n",
        p.pct,
        escape(&p.fo)
    ));
    for (r, n) in counted {
        x.push_str("  <record>\n    <row>\n");
        x.push_str(&format!(
            "      <source_ip>{}</source_ip>\n",
            escape(&r.source_ip)
        ));
        x.push_str(&format!("      <count>{n}</count>\n"));
        x.push_str(&format!(
            "      <policy_evaluated>\n        <disposition>{}</disposition>\n        <dkim>{}</dkim>\n        <spf>{}</spf>\n      </policy_evaluated>\n",
            escape(&r.disposition),
            escape(&r.dkim),
            escape(&r.spf)
        ));
        x.push_str("    </row>\n");
        x.push_str(&format!(
            "    <identifiers>\n      <header_from>{}</header_from>\n    </identifiers>\n",
            escape(&r.header_from)
        ));
        x.push_str("    <auth_results>\n");
        for (domain, selector, result) in &r.dkim_results {
            x.push_str(&format!(
                "      <dkim>\n        <domain>{}</domain>\n        <selector>{}</selector>\n        <result>{}</result>\n      </dkim>\n",
                escape(domain),
                escape(selector),
                escape(result)
            ));
        }
        x.push_str(&format!(
            "      <spf>\n        <domain>{}</domain>\n        <result>{}</result>\n      </spf>\n",
            escape(&r.spf_domain),
            escape(&r.spf_result)
        ));
        x.push_str("    </auth_results>\n  </record>\n");
    }
    x.push_str("</feedback>\n");
    x
}

/// XML character data and attribute text.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A `rua` URI (RFC 7489 6.2, 7.1): `mailto:ADDRESS` with an optional
/// `!SIZE[kmgt]` limit; the address and the limit in bytes. Other
/// schemes (roost sends mail only) give `None`.
pub fn mailto(uri: &str) -> Option<(String, Option<u64>)> {
    let rest = uri.trim();
    let scheme = rest.get(..7)?;
    if !scheme.eq_ignore_ascii_case("mailto:") {
        return None;
    }
    let rest = &rest[7..];
    let (address, limit) = match rest.rsplit_once('!') {
        Some((a, size)) => {
            let (digits, unit) = size.split_at(
                size.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(size.len()),
            );
            let n: u64 = digits.parse().ok()?;
            let scale: u64 = match unit.to_ascii_lowercase().as_str() {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return None,
            };
            (a, Some(n.saturating_mul(scale)))
        }
        None => (rest, None),
    };
    // RFC 7489 6.2: commas and exclamation points in the address are
    // percent-encoded; the rest of a mailto URI's syntax is not used.
    let address = address
        .replace("%21", "!")
        .replace("%2C", ",")
        .replace("%2c", ",");
    let (local, domain) = address.split_once('@')?;
    if local.is_empty() || domain.is_empty() || address.contains(['?', ' ', '<', '>']) {
        return None;
    }
    Some((address, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ip: &str, dkim: &str) -> Row {
        Row {
            source_ip: ip.into(),
            header_from: "example.org".into(),
            disposition: "none".into(),
            dkim: dkim.into(),
            spf: "pass".into(),
            dkim_results: vec![("example.org".into(), "s1".into(), dkim.into())],
            spf_domain: "example.org".into(),
            spf_result: "pass".into(),
        }
    }

    /// Appendix C's shape: metadata, the published policy, one record per
    /// distinct row with its count, text escaped.
    #[test]
    fn an_aggregate_report() {
        let meta = Metadata {
            org_name: "mx.example.net".into(),
            email: "postmaster@mx.example.net".into(),
            report_id: "r<1>".into(),
            begin: 1000,
            end: 4600,
        };
        let published = Published::from_tags("example.org", "p=reject pct=50 aspf=s");
        let xml = aggregate_xml(
            &meta,
            &published,
            &[
                row("192.0.2.1", "pass"),
                row("192.0.2.2", "fail"),
                row("192.0.2.1", "pass"),
            ],
        );
        let record = |ip: &str, n: u32, dkim: &str| {
            format!(
                "  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{n}</count>\n\
                 \x20     <policy_evaluated>\n        <disposition>none</disposition>\n        <dkim>{dkim}</dkim>\n        <spf>pass</spf>\n      </policy_evaluated>\n\
                 \x20   </row>\n    <identifiers>\n      <header_from>example.org</header_from>\n    </identifiers>\n\
                 \x20   <auth_results>\n      <dkim>\n        <domain>example.org</domain>\n        <selector>s1</selector>\n        <result>{dkim}</result>\n      </dkim>\n\
                 \x20     <spf>\n        <domain>example.org</domain>\n        <result>pass</result>\n      </spf>\n    </auth_results>\n  </record>\n"
            )
        };
        let want = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n  <report_metadata>\n\
             \x20   <org_name>mx.example.net</org_name>\n    <email>postmaster@mx.example.net</email>\n\
             \x20   <report_id>r&lt;1&gt;</report_id>\n    <date_range>\n      <begin>1000</begin>\n      <end>4600</end>\n    </date_range>\n\
             \x20 </report_metadata>\n  <policy_published>\n    <domain>example.org</domain>\n    <adkim>r</adkim>\n    <aspf>s</aspf>\n\
             \x20   <p>reject</p>\n    <sp>reject</sp>\n    <pct>50</pct>\n    <fo>0</fo>\n  </policy_published>\n{}{}</feedback>\n",
            record("192.0.2.1", 2, "pass"),
            record("192.0.2.2", 1, "fail")
        );
        assert_eq!(xml, want);
    }

    #[test]
    fn rua_uris() {
        assert_eq!(
            mailto("mailto:dmarc@example.org"),
            Some(("dmarc@example.org".into(), None))
        );
        assert_eq!(
            mailto("MAILTO:d@example.org!10m"),
            Some(("d@example.org".into(), Some(10 << 20)))
        );
        assert_eq!(
            mailto("mailto:d@example.org!500"),
            Some(("d@example.org".into(), Some(500)))
        );
        for bad in [
            "https://example.org/r",
            "mailto:",
            "mailto:nobody",
            "mailto:d@example.org!5x",
            "mailto:a b@c",
        ] {
            assert_eq!(mailto(bad), None, "{bad}");
        }
    }
}
