//! What comes back to roost: DSNs (RFC 3464), DMARC aggregate reports
//! (XML, gzipped or zipped) and TLS reports (JSON). Whatever the bytes,
//! the readers end without panicking, inflate no more than their limit,
//! and what they read keeps within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::inbound::{
    find_report, inflate, looks_like_report, parse_dmarc_xml, parse_dsn, parse_tls_json,
    unzip_first, Report, MAX_DSN_RECIPIENTS, MAX_REPORT_BYTES, MAX_ROWS, MAX_VALUE_CHARS,
};

const SMALL: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_report(data);
    if let Ok(dsn) = parse_dsn(data) {
        assert!(!dsn.recipients.is_empty() && dsn.recipients.len() <= MAX_DSN_RECIPIENTS);
        for r in &dsn.recipients {
            assert!(r.recipient.chars().count() <= MAX_VALUE_CHARS);
            let class = r.status.as_bytes()[0];
            assert!(matches!(class, b'2' | b'4' | b'5'), "{}", r.status);
        }
    }
    if let Ok(out) = unzip_first(data, SMALL) {
        assert!(out.len() <= SMALL);
    }
    if let Ok(out) = inflate(data) {
        assert!(out.len() <= MAX_REPORT_BYTES);
    }
    if let Ok(r) = parse_dmarc_xml(data) {
        assert!(r.records.len() <= MAX_ROWS && r.records.len() <= r.total_records);
    }
    if let Ok(r) = parse_tls_json(data) {
        assert!(r.policies.len() <= MAX_ROWS && r.policies.len() <= r.total_policies);
    }
    match find_report(data) {
        Some(Ok(Report::Dmarc(r))) => assert!(r.records.len() <= MAX_ROWS),
        Some(Ok(Report::Tls(r))) => assert!(r.policies.len() <= MAX_ROWS),
        _ => {}
    }
});
