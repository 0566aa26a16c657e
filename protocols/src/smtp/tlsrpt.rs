//! SMTP TLS Reporting (RFC 8460) records: `_smtp._tls.<domain>` TXT,
//! `v=TLSRPTv1; rua=<uri>[,<uri>]` (3). Sans-IO.

/// The longest record read.
pub const MAX_RECORD_LEN: usize = 4096;
/// Report URIs read from one record, at most.
pub const MAX_RUA: usize = 10;

/// The `rua` URIs of a TLSRPT record (RFC 8460 3), or why it is none.
/// The version comes first; unknown fields are ignored (3, "ext").
pub fn parse_record(txt: &str) -> Result<Vec<String>, String> {
    if txt.len() > MAX_RECORD_LEN {
        return Err(format!("longer than {MAX_RECORD_LEN} bytes"));
    }
    let mut fields = txt.split(';').map(str::trim);
    let version = fields.next().unwrap_or("");
    if version != "v=TLSRPTv1" {
        return Err("not a TLSRPTv1 record".into());
    }
    let mut rua = None;
    for field in fields.filter(|f| !f.is_empty()) {
        let Some((name, value)) = field.split_once('=') else {
            return Err(format!("{field:?} is not name=value"));
        };
        if name.trim() == "rua" {
            if rua.is_some() {
                return Err("rua given twice".into());
            }
            let uris: Vec<String> = value
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .take(MAX_RUA)
                .collect();
            rua = Some(uris);
        }
    }
    match rua {
        Some(u) if !u.is_empty() => Ok(u),
        _ => Err("no rua".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlsrpt_records() {
        assert_eq!(
            parse_record("v=TLSRPTv1; rua=mailto:tls@example.org"),
            Ok(vec!["mailto:tls@example.org".to_string()])
        );
        assert_eq!(
            parse_record("v=TLSRPTv1;rua=mailto:a@example.org, https://r.example/tls;ext=1;"),
            Ok(vec![
                "mailto:a@example.org".to_string(),
                "https://r.example/tls".to_string()
            ])
        );
        for bad in [
            "v=TLSRPTv2; rua=mailto:a@b",
            "rua=mailto:a@b; v=TLSRPTv1",
            "v=TLSRPTv1",
            "v=TLSRPTv1; rua=",
            "v=TLSRPTv1; rua=mailto:a@b; rua=mailto:c@d",
            "v=TLSRPTv1; junk",
        ] {
            assert!(parse_record(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..MAX_RUA + 1)
            .map(|i| format!("mailto:r{i}@x.example"))
            .collect();
        let rec = format!("v=TLSRPTv1; rua={}", many.join(","));
        assert_eq!(parse_record(&rec).unwrap().len(), MAX_RUA);
        let long = format!(
            "v=TLSRPTv1; rua=mailto:a@b; x={}",
            "y".repeat(MAX_RECORD_LEN)
        );
        assert!(parse_record(&long).is_err());
    }
}
