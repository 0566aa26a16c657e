//! SMTP MTA Strict Transport Security (RFC 8461): the `_mta-sts` TXT
//! record (3.1), the policy file (3.2) and MX host matching (4.1).
//! Sans-IO: fetching and caching are the queue's.

/// The longest policy file read (RFC 8461 3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// `mx` patterns read from one policy, at most.
pub const MAX_MX_PATTERNS: usize = 100;
/// The longest `max_age` a policy may ask (3.2: 31557600, a year).
pub const MAX_MAX_AGE: u64 = 31_557_600;

/// The policy id of an `_mta-sts` record (3.1): `v=STSv1; id=...`, the id
/// 1 to 32 letters and digits.
pub fn parse_record(txt: &str) -> Result<String, String> {
    let mut fields = txt.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next() != Some("v=STSv1") {
        return Err("not an STSv1 record".into());
    }
    let mut id = None;
    for f in fields {
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| format!("{f:?} is not name=value"))?;
        if name.trim() == "id" {
            let value = value.trim();
            let ok =
                (1..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok || id.is_some() {
                return Err(format!("bad id {value:?}"));
            }
            id = Some(value.to_string());
        }
    }
    id.ok_or_else(|| "no id".into())
}

/// What a policy asks (3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Deliver only to matching MX hosts over validated TLS.
    Enforce,
    /// Report failures, deliver anyway.
    Testing,
    /// No policy.
    None,
}

/// A policy file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// Host patterns: a name, or `*.` and a name (one leftmost label).
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

impl Policy {
    /// RFC 8461 3.2: `key: value` lines ending in CRLF or LF; `version`
    /// STSv1, `mode`, `max_age` and (but for mode none) at least one `mx`
    /// are required; unknown keys are ignored.
    pub fn parse(text: &str) -> Result<Policy, String> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(format!("longer than {MAX_POLICY_BYTES} bytes"));
        }
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("{line:?} is not key: value"));
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_string()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("mode {other:?}")),
                    })
                }
                "max_age" => {
                    let n: u64 = value.parse().map_err(|_| format!("max_age {value:?}"))?;
                    max_age = Some(n.min(MAX_MAX_AGE));
                }
                "mx" => {
                    if mx.len() >= MAX_MX_PATTERNS {
                        return Err(format!("more than {MAX_MX_PATTERNS} mx patterns"));
                    }
                    mx.push(value.trim_end_matches('.').to_ascii_lowercase());
                }
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("not an STSv1 policy".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx".into());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether `host` matches one of the policy's patterns (4.1): the
    /// name itself, or `*.` standing for exactly one leftmost label.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(rest) => host
                .split_once('.')
                .is_some_and(|(label, parent)| !label.is_empty() && parent == rest),
            None => *p == host,
        })
    }

    /// The policy as RFC 8460's `policy-string`: its lines.
    pub fn lines(&self) -> Vec<String> {
        let mode = match self.mode {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        };
        let mut out = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
        out.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        out.push(format!("max_age: {}", self.max_age));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        assert_eq!(
            parse_record("v=STSv1; id=20160831085700Z;"),
            Ok("20160831085700Z".into())
        );
        assert_eq!(parse_record("v=STSv1;id=a1"), Ok("a1".into()));
        for bad in [
            "v=STSv2; id=1",
            "id=1; v=STSv1",
            "v=STSv1",
            "v=STSv1; id=",
            "v=STSv1; id=a-b",
            &format!("v=STSv1; id={}", "a".repeat(33)),
        ] {
            assert!(parse_record(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policies_and_mx_matching() {
        let p = Policy::parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 86400);
        assert!(p.matches("mail.example.com"));
        assert!(p.matches("MAIL.example.com."));
        assert!(p.matches("mx1.example.net"));
        assert!(!p.matches("example.net"));
        assert!(!p.matches("a.b.example.net"));
        assert!(!p.matches("other.example.com"));
        assert_eq!(
            p.lines(),
            [
                "version: STSv1",
                "mode: enforce",
                "mx: mail.example.com",
                "mx: *.example.net",
                "max_age: 86400"
            ]
        );
        let long_age =
            Policy::parse("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 99999999999\n")
                .unwrap();
        assert_eq!(long_age.max_age, MAX_MAX_AGE);
        assert_eq!(
            Policy::parse("version: STSv1\nmode: none\nmax_age: 1\n")
                .unwrap()
                .mx
                .len(),
            0
        );
        for bad in [
            "mode: enforce\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a\n",
            "version: STSv1\nmode: enforce\nmx a\nmax_age: 1\n",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        let many: String = (0..=MAX_MX_PATTERNS)
            .map(|i| format!("mx: m{i}.example\n"))
            .collect();
        assert!(Policy::parse(&format!(
            "version: STSv1\nmode: enforce\nmax_age: 1\n{many}"
        ))
        .is_err());
        let most: String = (0..MAX_MX_PATTERNS)
            .map(|i| format!("mx: m{i}.example\n"))
            .collect();
        assert!(Policy::parse(&format!(
            "version: STSv1\nmode: enforce\nmax_age: 1\n{most}"
        ))
        .is_ok());
    }
}
