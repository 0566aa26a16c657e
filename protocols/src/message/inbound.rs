//! Reports that come in, read sans-IO: RFC 3464 delivery status
//! notifications about mail roost sent, RFC 7489 (appendix C) DMARC
//! aggregate reports and RFC 8460 (4.4) TLS reports.
//!
//! Every input is bounded before it is read: a delivery-status part is
//! read up to [`MAX_STATUS_PART`] octets, a compressed report is inflated
//! to at most [`MAX_REPORT_BYTES`], the XML tree holds at most
//! [`MAX_XML_NODES`] nodes, and at most [`MAX_ROWS`] rows of a report are
//! kept (the rest counted). Nothing recurses on the input: the MIME walk
//! is iterative, roxmltree builds its tree without recursion (entity
//! references aside, which it bounds at 10 levels, and DTDs are refused),
//! serde_json stops at 128 levels.

use super::decode::TransferEncoding;
use super::header::fields;
use super::mime::MimeTree;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// The most octets of a delivery-status part read.
pub const MAX_STATUS_PART: usize = 1 << 20;
/// The most recipients read from one DSN.
pub const MAX_DSN_RECIPIENTS: usize = 1000;
/// Longer field values are cut to this many characters.
pub const MAX_VALUE_CHARS: usize = 1000;
/// The most octets a compressed report may inflate to.
pub const MAX_REPORT_BYTES: usize = 32 << 20;
/// The most XML nodes (elements, text, attributes) of one DMARC report.
pub const MAX_XML_NODES: u32 = 2_000_000;
/// The most rows (DMARC records, TLS policies) kept of one report; a
/// report with more is kept with its first ones and their total count.
pub const MAX_ROWS: usize = 1000;

/// RFC 3464 2.3.3: what became of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DsnAction {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl DsnAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
            DsnAction::Expanded => "expanded",
        }
    }

    fn parse(value: &str) -> Option<DsnAction> {
        // RFC 3464 2.3.3: the action, then perhaps a comment.
        let word = value
            .split(|c: char| c == '(' || c.is_whitespace())
            .next()?;
        Some(match word.to_ascii_lowercase().as_str() {
            "failed" => DsnAction::Failed,
            "delayed" => DsnAction::Delayed,
            "delivered" => DsnAction::Delivered,
            "relayed" => DsnAction::Relayed,
            "expanded" => DsnAction::Expanded,
            _ => return None,
        })
    }
}

/// One recipient's fields of a DSN (RFC 3464 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnResult {
    /// Final-Recipient's address (without its address type).
    pub recipient: String,
    /// Original-Recipient's address, when given.
    pub original: Option<String>,
    pub action: DsnAction,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// Diagnostic-Code's text (without its type), when given.
    pub diagnostic: Option<String>,
    /// Remote-MTA's name (without its type), when given.
    pub remote_mta: Option<String>,
}

/// A delivery status notification, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// RFC 3464 2.2.1 Original-Envelope-Id.
    pub envelope_id: Option<String>,
    /// RFC 3464 2.2.2 Reporting-MTA, without its type.
    pub reporting_mta: Option<String>,
    pub recipients: Vec<DsnResult>,
}

/// Reads `msg` as a DSN: a `multipart/report` (RFC 6522) whose
/// `message/delivery-status` part (or RFC 6533's
/// `message/global-delivery-status`) names at least one recipient with a
/// known action and a status. `Err` says what is missing.
pub fn parse_dsn(msg: &[u8]) -> Result<Dsn, String> {
    let tree = MimeTree::parse(msg);
    let root = tree.part(MimeTree::ROOT);
    if !(root.media_type == "multipart" && root.media_subtype == "report") {
        return Err("not a multipart/report".into());
    }
    let status = root
        .children
        .iter()
        .map(|&c| tree.part(c))
        .find(|p| {
            p.media_type == "message"
                && (p.media_subtype == "delivery-status"
                    || p.media_subtype == "global-delivery-status")
        })
        .ok_or("no delivery-status part")?;
    let body = &msg[status.body()];
    let body = &body[..body.len().min(MAX_STATUS_PART)];
    let body = TransferEncoding::from_name(status.encoding.as_bytes())
        .ok_or("unknown transfer encoding")?
        .decode(body);
    let body = String::from_utf8_lossy(&body).replace("\r\n", "\n");
    // RFC 3464 2.1: the per-message fields, then one group per recipient,
    // each group's fields ending at a blank line.
    let mut groups = body
        .split("\n\n")
        .map(|g| g.trim_start_matches('\n'))
        .filter(|g| !g.trim().is_empty());
    let per_message = groups.next().ok_or("an empty delivery-status part")?;
    // A field's value (cut to MAX_VALUE_CHARS), and one without its type.
    let value = |group: &[(String, String)], name: &str| -> Option<String> {
        group
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| cut(v.clone()))
    };
    let typed = |group: &[(String, String)], name: &str| -> Option<String> {
        group
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| cut(after_type(v)))
    };
    let message_fields = group_fields(per_message);
    let mut dsn = Dsn {
        envelope_id: value(&message_fields, "Original-Envelope-Id"),
        reporting_mta: typed(&message_fields, "Reporting-MTA"),
        recipients: Vec::new(),
    };
    for group in groups.take(MAX_DSN_RECIPIENTS) {
        let f = group_fields(group);
        let (Some(recipient), Some(action), Some(status)) = (
            typed(&f, "Final-Recipient"),
            value(&f, "Action"),
            value(&f, "Status"),
        ) else {
            continue;
        };
        let Some(action) = DsnAction::parse(&action) else {
            continue;
        };
        let Some(status) = status_code(&status) else {
            continue;
        };
        dsn.recipients.push(DsnResult {
            recipient,
            original: typed(&f, "Original-Recipient"),
            action,
            status,
            diagnostic: typed(&f, "Diagnostic-Code"),
            remote_mta: typed(&f, "Remote-MTA"),
        });
    }
    if dsn.recipients.is_empty() {
        return Err("no recipient with an action and a status".into());
    }
    Ok(dsn)
}

/// The fields of one group, unfolded, values trimmed.
fn group_fields(group: &str) -> Vec<(String, String)> {
    fields(group.as_bytes())
        .into_iter()
        .map(|f| {
            let value = String::from_utf8_lossy(&f.value).trim().to_string();
            (String::from_utf8_lossy(f.name).into_owned(), value)
        })
        .collect()
}

/// `type; value` (RFC 3464 2.1.2 address-type, diagnostic-type, mta-name
/// type) without its type: what follows the first `;`, trimmed.
fn after_type(v: &str) -> String {
    match v.split_once(';') {
        Some((_, rest)) => rest.trim().to_string(),
        None => v.trim().to_string(),
    }
}

/// RFC 3464 2.3.4: `class "." subject "." detail`, digits, the class 2, 4
/// or 5; a comment after it is dropped.
fn status_code(v: &str) -> Option<String> {
    let code = v.split(|c: char| c == '(' || c.is_whitespace()).next()?;
    let mut parts = code.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    (parts.next().is_none()
        && matches!(class, "2" | "4" | "5")
        && digits(subject, 3)
        && digits(detail, 3))
    .then(|| code.to_string())
}

/// A DMARC aggregate report (RFC 7489 appendix C), as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcAggregate {
    pub org_name: String,
    pub email: String,
    pub report_id: String,
    /// Unix seconds.
    pub begin: i64,
    pub end: i64,
    /// The policy domain and its published `p`.
    pub domain: String,
    pub policy: String,
    /// The first [`MAX_ROWS`] records.
    pub records: Vec<DmarcRecord>,
    /// Records in the report, kept or not.
    pub total_records: usize,
}

/// One `<record>` of a DMARC aggregate report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcRecord {
    pub source_ip: String,
    pub count: u64,
    /// The policy applied: `none`, `quarantine` or `reject`.
    pub disposition: String,
    /// The DMARC-aligned results, `pass` or `fail`.
    pub dkim: String,
    pub spf: String,
    pub header_from: String,
}

/// The first child element of `node` called `name`.
fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// Reads the XML of a DMARC aggregate report.
pub fn parse_dmarc_xml(xml: &[u8]) -> Result<DmarcAggregate, String> {
    parse_dmarc_xml_within(xml, MAX_XML_NODES)
}

fn parse_dmarc_xml_within(xml: &[u8], nodes_limit: u32) -> Result<DmarcAggregate, String> {
    let text = std::str::from_utf8(xml).map_err(|_| "the report is not UTF-8")?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit,
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| format!("bad XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "feedback" {
        return Err("the XML is not a <feedback> report".into());
    }
    let text_of = |node: Option<roxmltree::Node<'_, '_>>| -> String {
        node.and_then(|n| n.text())
            .unwrap_or_default()
            .trim()
            .chars()
            .take(MAX_VALUE_CHARS)
            .collect()
    };
    let meta = child(root, "report_metadata").ok_or("no <report_metadata>")?;
    let published = child(root, "policy_published").ok_or("no <policy_published>")?;
    let range = child(meta, "date_range").ok_or("no <date_range>")?;
    let number = |s: String| -> Result<i64, String> {
        s.parse::<i64>().map_err(|_| format!("bad date {s:?}"))
    };
    let mut report = DmarcAggregate {
        org_name: text_of(child(meta, "org_name")),
        email: text_of(child(meta, "email")),
        report_id: text_of(child(meta, "report_id")),
        begin: number(text_of(child(range, "begin")))?,
        end: number(text_of(child(range, "end")))?,
        domain: text_of(child(published, "domain")),
        policy: text_of(child(published, "p")),
        records: Vec::new(),
        total_records: 0,
    };
    if report.report_id.is_empty() || report.domain.is_empty() {
        return Err("no <report_id> or no <domain>".into());
    }
    for record in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "record")
    {
        report.total_records += 1;
        if report.records.len() == MAX_ROWS {
            continue;
        }
        let row = child(record, "row");
        let evaluated = row.and_then(|r| child(r, "policy_evaluated"));
        let ids = child(record, "identifiers");
        report.records.push(DmarcRecord {
            source_ip: text_of(row.and_then(|r| child(r, "source_ip"))),
            count: text_of(row.and_then(|r| child(r, "count")))
                .parse()
                .unwrap_or(0),
            disposition: text_of(evaluated.and_then(|e| child(e, "disposition"))),
            dkim: text_of(evaluated.and_then(|e| child(e, "dkim"))),
            spf: text_of(evaluated.and_then(|e| child(e, "spf"))),
            header_from: text_of(ids.and_then(|i| child(i, "header_from"))),
        });
    }
    Ok(report)
}

/// A TLS report (RFC 8460 4.4), as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsReport {
    pub org_name: String,
    pub report_id: String,
    pub contact: String,
    /// RFC 3339 date-times, as given.
    pub begin: String,
    pub end: String,
    /// The first [`MAX_ROWS`] policies.
    pub policies: Vec<TlsPolicyResult>,
    pub total_policies: usize,
}

/// One policy's results in a TLS report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPolicyResult {
    /// `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: String,
    pub policy_domain: String,
    pub successful: u64,
    pub failed: u64,
    /// Each failure kind (`result-type`) and its session count, in order.
    pub failures: Vec<(String, u64)>,
}

/// The JSON as RFC 8460 4.4 names it; unknown members are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TlsJson {
    organization_name: String,
    date_range: TlsJsonRange,
    #[serde(default)]
    contact_info: String,
    report_id: String,
    #[serde(default)]
    policies: Vec<TlsJsonPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TlsJsonRange {
    start_datetime: String,
    end_datetime: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TlsJsonPolicy {
    policy: TlsJsonPolicyName,
    summary: TlsJsonSummary,
    #[serde(default)]
    failure_details: Vec<TlsJsonFailure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TlsJsonPolicyName {
    policy_type: String,
    #[serde(default)]
    policy_domain: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TlsJsonSummary {
    total_successful_session_count: u64,
    total_failure_session_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TlsJsonFailure {
    result_type: String,
    #[serde(default)]
    failed_session_count: u64,
}

fn cut(s: String) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        s
    } else {
        s.chars().take(MAX_VALUE_CHARS).collect()
    }
}

/// Reads the JSON of a TLS report.
pub fn parse_tls_json(json: &[u8]) -> Result<TlsReport, String> {
    let j: TlsJson = serde_json::from_slice(json).map_err(|e| format!("bad JSON: {e}"))?;
    let total_policies = j.policies.len();
    Ok(TlsReport {
        org_name: cut(j.organization_name),
        report_id: cut(j.report_id),
        contact: cut(j.contact_info),
        begin: cut(j.date_range.start_datetime),
        end: cut(j.date_range.end_datetime),
        policies: j
            .policies
            .into_iter()
            .take(MAX_ROWS)
            .map(|p| TlsPolicyResult {
                policy_type: cut(p.policy.policy_type),
                policy_domain: cut(p.policy.policy_domain),
                successful: p.summary.total_successful_session_count,
                failed: p.summary.total_failure_session_count,
                failures: p
                    .failure_details
                    .into_iter()
                    .take(MAX_ROWS)
                    .map(|f| (cut(f.result_type), f.failed_session_count))
                    .collect(),
            })
            .collect(),
        total_policies,
    })
}

/// A report that came in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    Dmarc(DmarcAggregate),
    Tls(TlsReport),
}

/// Whether a header says its message is a report, cheaply, before the
/// body is read: a DMARC report's subject (RFC 7489 7.2.1.1 `Report
/// Domain:`), or RFC 8460 5.3's `TLS-Report-Domain` field.
pub fn looks_like_report(header: &[u8]) -> bool {
    fields(header).iter().any(|f| {
        f.name.eq_ignore_ascii_case(b"TLS-Report-Domain")
            || (f.name.eq_ignore_ascii_case(b"Subject")
                && f.value.trim_ascii_start().len() >= 14
                && f.value.trim_ascii_start()[..14].eq_ignore_ascii_case(b"Report Domain:"))
    })
}

/// Finds and reads the report in `msg`: the first part (not inside an
/// attached message) that is a TLS report (`application/tlsrpt+gzip` or
/// `+json`) or a DMARC report (gzip, zip or plain XML, by its leading
/// octets whatever its declared type). `None` when no part is one; `Err`
/// when a part is one but cannot be read.
pub fn find_report(msg: &[u8]) -> Option<Result<Report, String>> {
    let tree = MimeTree::parse(msg);
    let mut todo = vec![MimeTree::ROOT];
    while let Some(id) = todo.pop() {
        let part = tree.part(id);
        if part.is_multipart() {
            todo.extend(part.children.iter().rev());
            continue;
        }
        let Some(encoding) = TransferEncoding::from_name(part.encoding.as_bytes()) else {
            continue;
        };
        let tls = part.media_type == "application"
            && (part.media_subtype == "tlsrpt+gzip" || part.media_subtype == "tlsrpt+json");
        if !tls && !matches!(part.media_type.as_str(), "application" | "text") {
            continue;
        }
        let data = encoding.decode(&msg[part.body()]);
        if tls {
            return Some(inflate(&data).and_then(|json| parse_tls_json(&json).map(Report::Tls)));
        }
        let looks_xml = |d: &[u8]| {
            let d = d
                .strip_prefix(b"\xef\xbb\xbf")
                .unwrap_or(d)
                .trim_ascii_start();
            d.starts_with(b"<?xml") || d.starts_with(b"<feedback")
        };
        if data.starts_with(&GZIP_MAGIC) || data.starts_with(&ZIP_MAGIC) || looks_xml(&data) {
            return Some(inflate(&data).and_then(|xml| parse_dmarc_xml(&xml).map(Report::Dmarc)));
        }
    }
    None
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// Gzip or zip data inflated (at most [`MAX_REPORT_BYTES`]); anything
/// else as it is.
pub fn inflate(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.starts_with(&GZIP_MAGIC) {
        bounded_read(flate2::read::GzDecoder::new(data), MAX_REPORT_BYTES)
    } else if data.starts_with(&ZIP_MAGIC) {
        unzip_first(data, MAX_REPORT_BYTES)
    } else if data.len() > MAX_REPORT_BYTES {
        Err(format!("a report larger than {MAX_REPORT_BYTES} octets"))
    } else {
        Ok(data.to_vec())
    }
}

fn bounded_read(r: impl Read, max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot inflate: {e}"))?;
    if out.len() > max {
        return Err(format!("a report larger than {max} octets"));
    }
    Ok(out)
}

/// The first member of a zip archive (PKWARE APPNOTE 4.3): found through
/// the central directory (whose sizes are right even when the local
/// header defers them to a data descriptor), stored or deflated, its
/// CRC-32 checked, at most `max` octets. Zip64, encryption and other
/// methods are refused: reports need none of them. roost reads one member
/// of small archives only, which is why this is not a crate.
pub fn unzip_first(data: &[u8], max: usize) -> Result<Vec<u8>, String> {
    const EOCD: u32 = 0x0605_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const LOCAL: u32 = 0x0403_4b50;
    let u16_at = |at: usize| -> Result<usize, String> {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .ok_or_else(|| "a truncated zip archive".to_string())
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "a truncated zip archive".to_string())
    };
    // The end of central directory record: 22 octets and a comment of at
    // most 65,535, so it starts within the last 65,557.
    let last = data
        .len()
        .checked_sub(22)
        .ok_or("a truncated zip archive")?;
    let first = last.saturating_sub(65_535);
    let eocd = (first..=last)
        .rev()
        .find(|&at| u32_at(at) == Ok(EOCD))
        .ok_or("no end of central directory in the zip archive")?;
    if u16_at(eocd + 10)? == 0 {
        return Err("an empty zip archive".into());
    }
    let central = u32_at(eocd + 16)? as usize;
    if u32_at(central)? != CENTRAL {
        return Err("no central directory in the zip archive".into());
    }
    let flags = u16_at(central + 8)?;
    let method = u16_at(central + 10)?;
    let crc = u32_at(central + 16)?;
    let (size, full_size) = (u32_at(central + 20)?, u32_at(central + 24)?);
    let local = u32_at(central + 42)?;
    if [size, full_size, local].contains(&u32::MAX) {
        return Err("zip64 archives are not read".into());
    }
    if flags & 1 != 0 {
        return Err("an encrypted zip archive".into());
    }
    let local = local as usize;
    if u32_at(local)? != LOCAL {
        return Err("no local header in the zip archive".into());
    }
    let start = local + 30 + u16_at(local + 26)? + u16_at(local + 28)?;
    let packed = data
        .get(start..start.saturating_add(size as usize))
        .ok_or("a truncated zip archive")?;
    let out = match method {
        0 if packed.len() <= max => packed.to_vec(),
        0 => return Err(format!("a report larger than {max} octets")),
        8 => bounded_read(flate2::read::DeflateDecoder::new(packed), max)?,
        _ => return Err(format!("zip compression method {method} is not read")),
    };
    let mut check = flate2::Crc::new();
    check.update(&out);
    if check.sum() != crc {
        return Err("the zip member's CRC-32 does not match".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dsn_message(status_part: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@b.example\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n\
             --b1\r\nContent-Type: message/delivery-status\r\n\r\n{status_part}\r\n\
             --b1\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n\r\n--b1--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_dsn_is_read_per_recipient() {
        let msg = dsn_message(
            "Reporting-MTA: dns; mx.b.example\r\nOriginal-Envelope-Id: env1\r\n\r\n\
             Final-Recipient: rfc822; bob@b.example\r\nAction: failed (gone)\r\n\
             Status: 5.1.1 (no such user)\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n  no such user\r\n\
             Remote-MTA: dns; mx.b.example\r\n\r\n\
             Final-Recipient: rfc822;carol@b.example\r\nOriginal-Recipient: rfc822;Carol@b.example\r\n\
             Action: expanded\r\nStatus: 2.0.0\r\n\r\n\
             Final-Recipient: rfc822; dave@b.example\r\nAction: exploded\r\nStatus: 2.0.0\r\n",
        );
        let dsn = parse_dsn(&msg).unwrap();
        assert_eq!(dsn.envelope_id.as_deref(), Some("env1"));
        assert_eq!(dsn.reporting_mta.as_deref(), Some("mx.b.example"));
        assert_eq!(
            dsn.recipients,
            [
                DsnResult {
                    recipient: "bob@b.example".into(),
                    original: None,
                    action: DsnAction::Failed,
                    status: "5.1.1".into(),
                    diagnostic: Some("550 5.1.1  no such user".into()),
                    remote_mta: Some("mx.b.example".into()),
                },
                DsnResult {
                    recipient: "carol@b.example".into(),
                    original: Some("Carol@b.example".into()),
                    action: DsnAction::Expanded,
                    status: "2.0.0".into(),
                    diagnostic: None,
                    remote_mta: None,
                },
            ]
        );
    }

    #[test]
    fn what_is_not_a_dsn_says_why() {
        assert_eq!(
            parse_dsn(b"Subject: x\r\n\r\nhello\r\n"),
            Err("not a multipart/report".into())
        );
        let no_status =
            b"Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(parse_dsn(no_status), Err("no delivery-status part".into()));
        let bad = dsn_message("Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 6.1.1\r\n");
        assert_eq!(
            parse_dsn(&bad),
            Err("no recipient with an action and a status".into())
        );
    }

    #[test]
    fn dsn_recipients_are_read_up_to_the_limit() {
        let group =
            "Final-Recipient: rfc822; a@b.example\r\nAction: delayed\r\nStatus: 4.0.0\r\n\r\n";
        let at =
            |n: usize| dsn_message(&format!("Reporting-MTA: dns; x\r\n\r\n{}", group.repeat(n)));
        assert_eq!(
            parse_dsn(&at(MAX_DSN_RECIPIENTS)).unwrap().recipients.len(),
            MAX_DSN_RECIPIENTS
        );
        assert_eq!(
            parse_dsn(&at(MAX_DSN_RECIPIENTS + 1))
                .unwrap()
                .recipients
                .len(),
            MAX_DSN_RECIPIENTS
        );
    }

    #[test]
    fn the_status_part_is_read_up_to_its_limit() {
        // The part's body ends with the status code's last digit, at
        // exactly MAX_STATUS_PART octets; one more octet of padding
        // before it pushes that digit past the limit.
        let at = |pad: usize| {
            let head = "Reporting-MTA: dns; x\r\nX-Pad: ";
            let group =
                "\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1";
            let fill = MAX_STATUS_PART - head.len() - group.len() + pad;
            let part = format!("{head}{}{group}", "p".repeat(fill));
            parse_dsn(&dsn_message(&part)).map(|d| d.recipients[0].status.clone())
        };
        assert_eq!(at(0), Ok("5.1.1".into()));
        assert_eq!(
            at(1),
            Err("no recipient with an action and a status".into())
        );
    }

    #[test]
    fn long_values_are_cut() {
        let at = |n: usize| {
            let local = "l".repeat(n - "@b".len());
            let part = format!(
                "Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; {local}@b\r\n\
                 Action: failed\r\nStatus: 5.1.1\r\n"
            );
            parse_dsn(&dsn_message(&part)).unwrap().recipients[0]
                .recipient
                .clone()
        };
        assert_eq!(at(MAX_VALUE_CHARS).len(), MAX_VALUE_CHARS);
        assert!(at(MAX_VALUE_CHARS).ends_with("@b"));
        let cut = at(MAX_VALUE_CHARS + 1);
        assert_eq!(cut.len(), MAX_VALUE_CHARS);
        assert!(cut.ends_with("@"));
    }

    #[test]
    fn xml_nodes_are_counted_up_to_the_limit() {
        let nodes = roxmltree::Document::parse(XML)
            .unwrap()
            .descendants()
            .count() as u32;
        assert_eq!(parse_dmarc_xml_within(XML.as_bytes(), nodes), Ok(parsed()));
        assert!(parse_dmarc_xml_within(XML.as_bytes(), nodes - 1)
            .unwrap_err()
            .starts_with("bad XML: "));
    }

    #[test]
    fn status_codes_follow_rfc_3464() {
        assert_eq!(status_code("5.1.1"), Some("5.1.1".into()));
        assert_eq!(status_code("4.123.456 (x)"), Some("4.123.456".into()));
        assert_eq!(status_code("3.1.1"), None);
        assert_eq!(status_code("5.1234.1"), None);
        assert_eq!(status_code("5.1"), None);
        assert_eq!(status_code("5.1.1.1"), None);
    }

    const XML: &str = "<?xml version=\"1.0\"?>\n<feedback><report_metadata>\
        <org_name>b.example</org_name><email>dmarc@b.example</email>\
        <report_id>r-1</report_id><date_range><begin>1700000000</begin>\
        <end>1700003600</end></date_range></report_metadata>\
        <policy_published><domain>a.example</domain><p>reject</p></policy_published>\
        <record><row><source_ip>192.0.2.1</source_ip><count>3</count>\
        <policy_evaluated><disposition>none</disposition><dkim>pass</dkim>\
        <spf>fail</spf></policy_evaluated></row><identifiers>\
        <header_from>a.example</header_from></identifiers></record></feedback>";

    fn parsed() -> DmarcAggregate {
        DmarcAggregate {
            org_name: "b.example".into(),
            email: "dmarc@b.example".into(),
            report_id: "r-1".into(),
            begin: 1_700_000_000,
            end: 1_700_003_600,
            domain: "a.example".into(),
            policy: "reject".into(),
            records: vec![DmarcRecord {
                source_ip: "192.0.2.1".into(),
                count: 3,
                disposition: "none".into(),
                dkim: "pass".into(),
                spf: "fail".into(),
                header_from: "a.example".into(),
            }],
            total_records: 1,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A one-member zip archive, deflated, its sizes only in the central
    /// directory (the local header defers them, flag bit 3).
    pub(crate) fn zip(name: &str, data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        let packed = e.finish().unwrap();
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let mut z = Vec::new();
        z.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        z.extend_from_slice(&[20, 0, 8, 0, 8, 0, 0, 0, 0, 0]);
        z.extend_from_slice(&[0; 12]);
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&[0, 0]);
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(&packed);
        let central = z.len() as u32;
        z.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        z.extend_from_slice(&[20, 0, 20, 0, 8, 0, 8, 0, 0, 0, 0, 0]);
        z.extend_from_slice(&crc.sum().to_le_bytes());
        z.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&[0; 12]);
        z.extend_from_slice(&0u32.to_le_bytes());
        z.extend_from_slice(name.as_bytes());
        let central_len = z.len() as u32 - central;
        z.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
        z.extend_from_slice(&central_len.to_le_bytes());
        z.extend_from_slice(&central.to_le_bytes());
        z.extend_from_slice(&[0, 0]);
        z
    }

    fn mail_with(ctype: &str, data: &[u8]) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        format!(
            "Subject: Report Domain: a.example Submitter: b.example Report-ID: r-1\r\n\
             Content-Type: multipart/mixed; boundary=x\r\n\r\n\
             --x\r\nContent-Type: text/plain\r\n\r\nA report.\r\n\
             --x\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--x--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn dmarc_reports_are_read_plain_gzipped_or_zipped() {
        assert_eq!(parse_dmarc_xml(XML.as_bytes()), Ok(parsed()));
        for (ctype, data) in [
            ("application/gzip", gzip(XML.as_bytes())),
            ("application/zip", zip("b!a!1!2.xml", XML.as_bytes())),
            ("application/octet-stream", zip("r.xml", XML.as_bytes())),
            ("text/xml", XML.as_bytes().to_vec()),
        ] {
            let mail = mail_with(ctype, &data);
            assert!(looks_like_report(&mail));
            assert_eq!(
                find_report(&mail),
                Some(Ok(Report::Dmarc(parsed()))),
                "{ctype}"
            );
        }
        assert_eq!(find_report(&mail_with("application/pdf", b"%PDF")), None);
    }

    #[test]
    fn bad_reports_say_why() {
        assert_eq!(
            parse_dmarc_xml(b"<other/>"),
            Err("the XML is not a <feedback> report".into())
        );
        assert!(parse_dmarc_xml(b"<!DOCTYPE x [<!ENTITY a \"b\">]><feedback/>").is_err());
        let mut broken = zip("r.xml", XML.as_bytes());
        // The central directory's CRC-32: 22 + 46 + 5 octets from the end,
        // 16 into its header.
        let at = broken.len() - 73 + 16;
        broken[at] ^= 0xff;
        assert_eq!(
            unzip_first(&broken, MAX_REPORT_BYTES),
            Err("the zip member's CRC-32 does not match".into())
        );
        assert_eq!(
            unzip_first(b"PK\x03\x04", MAX_REPORT_BYTES),
            Err("a truncated zip archive".into())
        );
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        let big = vec![b'a'; 1000];
        let gz = gzip(&big);
        assert_eq!(
            bounded_read(flate2::read::GzDecoder::new(&gz[..]), 1000).map(|v| v.len()),
            Ok(1000)
        );
        assert_eq!(
            bounded_read(flate2::read::GzDecoder::new(&gz[..]), 999),
            Err("a report larger than 999 octets".into())
        );
        let z = zip("r.xml", &big);
        assert_eq!(unzip_first(&z, 1000).map(|v| v.len()), Ok(1000));
        assert_eq!(
            unzip_first(&z, 999),
            Err("a report larger than 999 octets".into())
        );
    }

    #[test]
    fn dmarc_records_are_kept_up_to_the_limit() {
        let record = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>";
        let at = |n: usize| {
            let xml = XML.replace(
                "</feedback>",
                &format!("{}</feedback>", record.repeat(n - 1)),
            );
            parse_dmarc_xml(xml.as_bytes()).unwrap()
        };
        let edge = at(MAX_ROWS);
        assert_eq!(
            (edge.records.len(), edge.total_records),
            (MAX_ROWS, MAX_ROWS)
        );
        let past = at(MAX_ROWS + 1);
        assert_eq!(
            (past.records.len(), past.total_records),
            (MAX_ROWS, MAX_ROWS + 1)
        );
    }

    #[test]
    fn tls_reports_are_read() {
        let json = r#"{"organization-name":"b.example","date-range":{"start-datetime":"2026-12-01T00:00:00Z","end-datetime":"2026-12-01T23:59:59Z"},"contact-info":"tls@b.example","report-id":"t-1","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1"],"policy-domain":"a.example","mx-host":["mx.a.example"]},"summary":{"total-successful-session-count":5,"total-failure-session-count":2},"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","failed-session-count":2}]}]}"#;
        let want = TlsReport {
            org_name: "b.example".into(),
            report_id: "t-1".into(),
            contact: "tls@b.example".into(),
            begin: "2026-12-01T00:00:00Z".into(),
            end: "2026-12-01T23:59:59Z".into(),
            policies: vec![TlsPolicyResult {
                policy_type: "sts".into(),
                policy_domain: "a.example".into(),
                successful: 5,
                failed: 2,
                failures: vec![("certificate-expired".into(), 2)],
            }],
            total_policies: 1,
        };
        assert_eq!(parse_tls_json(json.as_bytes()), Ok(want.clone()));
        let mail = format!(
            "TLS-Report-Domain: a.example\r\n\
             Content-Type: multipart/report; report-type=tlsrpt; boundary=x\r\n\r\n\
             --x\r\nContent-Type: text/plain\r\n\r\nA report.\r\n\
             --x\r\nContent-Type: application/tlsrpt+json\r\n\r\n{json}\r\n--x--\r\n"
        );
        assert!(looks_like_report(mail.as_bytes()));
        assert_eq!(find_report(mail.as_bytes()), Some(Ok(Report::Tls(want))));
        assert!(parse_tls_json(b"{\"report-id\":1}").is_err());
    }
}
