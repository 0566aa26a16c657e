//! SMTP command lines (RFC 5321 4.1) parsed into typed values.
//!
//! [`parse_command`] takes one command line, with or without its line ending,
//! and returns a [`Command`] or the [`ReplyError`] the server should answer
//! with. Whether a command is allowed at this point of the session, and
//! whether an ESMTP parameter was advertised, is the session's business, not
//! the parser's.

use super::reply::{Reply, ReplyError};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 4.5.3.1.3: a path, angle brackets included, is at most 256
/// octets.
pub const MAX_PATH: usize = 256;
/// RFC 5321 4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 1035 2.3.4: a label is at most 63 octets.
pub const MAX_LABEL: usize = 63;
/// RFC 4422 3.1: a SASL mechanism name is 1 to 20 characters.
pub const MAX_MECHANISM: usize = 20;
/// RFC 1870 3: `size-value ::= 1*20DIGIT`.
pub const MAX_SIZE_DIGITS: usize = 20;

// RFC 5321 4.5.3.1.1 limits the local part to 64 octets, but SRS and VERP
// addresses longer than that are common in real mail, and MAX_PATH already
// bounds it; so the local part has no limit of its own here.

/// A command from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// RFC 5321 4.1.1.1. The argument is kept as the client sent it.
    Ehlo(String),
    Helo(String),
    /// RFC 5321 4.1.1.2.
    Mail {
        from: ReversePath,
        params: Vec<Param>,
    },
    /// RFC 5321 4.1.1.3.
    Rcpt {
        to: ForwardPath,
        params: Vec<Param>,
    },
    /// RFC 5321 4.1.1.4.
    Data,
    /// RFC 3030 2: the chunk's octets follow the line (see `SmtpReader`).
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    /// RFC 5321 4.1.1.9: an argument, if any, is ignored.
    Noop,
    Quit,
    Vrfy(String),
    /// RFC 5321 4.1.1.8: an argument, if any, is ignored.
    Help,
    /// RFC 3207 4.
    StartTls,
    /// RFC 4954 4. `mechanism` is upper-cased. `initial` is the initial
    /// response as sent (still base64); RFC 4954's `=` for an empty initial
    /// response is given as `Some("")`.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// A mailbox `local@domain`.
///
/// `local` holds the local part's meaning: a quoted local part (`"a b"`) is
/// stored unquoted (`a b`) and quoted again by `Display` where RFC 5321
/// 4.1.2 needs it. `domain` is lower-cased; an address literal keeps its
/// brackets (`[192.0.2.1]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

impl Address {
    /// Whether the address is all ASCII (else it needs SMTPUTF8).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

/// RFC 5321 4.1.2 `Reverse-path`: the null path `<>` or a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Address),
}

/// RFC 5321 4.1.1.3 `Forward-path`: a mailbox, or the bare `<Postmaster>`
/// every server must accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Mailbox(Address),
}

/// RFC 5321 4.1.2 `esmtp-param`: `KEYWORD[=value]`, keyword upper-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub keyword: String,
    pub value: Option<String>,
}

/// RFC 6152 and RFC 3030 3: the BODY parameter of MAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// The MAIL parameters roost knows, read from a parameter list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// RFC 1870 3: the client's size estimate.
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    /// RFC 6531 3.4.
    pub smtputf8: bool,
    /// RFC 8689 4.1.
    pub requiretls: bool,
    /// RFC 3461 4.3: what a failure DSN returns.
    pub ret: Option<Ret>,
    /// RFC 3461 4.4: the sender's envelope id, decoded.
    pub envid: Option<String>,
    /// RFC 4865 FUTURERELEASE: hold for this many seconds (HOLDFOR) or
    /// until this time (HOLDUNTIL, unix seconds).
    pub hold_for: Option<u64>,
    pub hold_until: Option<i64>,
    /// Parameters not known here, in order; the session answers 555 if it
    /// did not advertise them (RFC 5321 4.1.1.11).
    pub other: Vec<Param>,
}

/// RFC 3461 4.4: ENVID's xtext is at most 100 characters.
pub const MAX_ENVID: usize = 100;
/// RFC 3461 4.2: ORCPT's value is at most 500 characters.
pub const MAX_ORCPT: usize = 500;

/// RFC 3461 4.3 RET: the whole message or its header in a failure DSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ret {
    Full,
    Hdrs,
}

/// RFC 3461 4.1 NOTIFY: which DSNs the sender wants for a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// NEVER: no DSN at all.
    pub fn never(&self) -> bool {
        !(self.success || self.failure || self.delay)
    }

    /// The parameter as sent on: `NEVER` or a comma list.
    pub fn to_param(self) -> String {
        let mut words = Vec::new();
        for (on, word) in [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ] {
            if on {
                words.push(word);
            }
        }
        if words.is_empty() {
            "NEVER".into()
        } else {
            words.join(",")
        }
    }
}

/// The RCPT parameters roost knows (RFC 3461 4.1, 4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    /// `addr-type;address`, the address decoded from xtext.
    pub orcpt: Option<String>,
    pub other: Vec<Param>,
}

impl RcptParams {
    /// Reads NOTIFY and ORCPT; a malformed or repeated one is 501 5.5.4.
    pub fn from_params(params: &[Param]) -> Result<RcptParams, ReplyError> {
        let mut out = RcptParams::default();
        for p in params {
            match (p.keyword.as_str(), p.value.as_deref()) {
                ("NOTIFY", Some(v)) if out.notify.is_none() => {
                    out.notify =
                        Some(parse_notify(v).ok_or_else(|| invalid("Invalid NOTIFY parameter"))?)
                }
                ("ORCPT", Some(v)) if out.orcpt.is_none() && v.len() <= MAX_ORCPT => {
                    let (kind, addr) = v
                        .split_once(';')
                        .ok_or_else(|| invalid("Invalid ORCPT parameter"))?;
                    let addr = xtext_decode(addr)
                        .filter(|a| !a.chars().any(char::is_control))
                        .ok_or_else(|| invalid("Invalid ORCPT parameter"))?;
                    let atom = !kind.is_empty()
                        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    if !atom || addr.is_empty() {
                        return Err(invalid("Invalid ORCPT parameter"));
                    }
                    out.orcpt = Some(format!("{kind};{addr}"));
                }
                ("NOTIFY" | "ORCPT", _) => {
                    return Err(invalid(format!(
                        "Invalid or repeated {} parameter",
                        p.keyword
                    )))
                }
                _ => out.other.push(p.clone()),
            }
        }
        Ok(out)
    }
}

/// RFC 3461 4.1: `NEVER`, or one or more of SUCCESS, FAILURE, DELAY.
fn parse_notify(v: &str) -> Option<Notify> {
    let v = v.to_ascii_uppercase();
    if v == "NEVER" {
        return Some(Notify::default());
    }
    let mut n = Notify::default();
    for word in v.split(',') {
        match word {
            "SUCCESS" => n.success = true,
            "FAILURE" => n.failure = true,
            "DELAY" => n.delay = true,
            _ => return None,
        }
    }
    Some(n)
}

/// RFC 3461 4: xtext, `+XX` for each octet outside `!`..`~` and for `+`
/// and `=`; `None` for text that is not xtext or not UTF-8.
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'=' => return None,
            c @ b'!'..=b'~' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The xtext form of `s` (RFC 3461 4).
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

impl MailParams {
    /// Reads SIZE, BODY, SMTPUTF8 and REQUIRETLS; a malformed or repeated
    /// one is 501 5.5.4.
    pub fn from_params(params: &[Param]) -> Result<MailParams, ReplyError> {
        let mut out = MailParams::default();
        let mut seen_smtputf8 = false;
        let mut seen_requiretls = false;
        for p in params {
            match (p.keyword.as_str(), p.value.as_deref()) {
                ("RET", Some(v)) if out.ret.is_none() => {
                    out.ret = Some(match v.to_ascii_uppercase().as_str() {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Hdrs,
                        _ => return Err(invalid("Invalid RET parameter")),
                    })
                }
                ("ENVID", Some(v)) if out.envid.is_none() && v.len() <= MAX_ENVID => {
                    out.envid = Some(
                        xtext_decode(v)
                            .filter(|e| !e.chars().any(char::is_control))
                            .ok_or_else(|| invalid("Invalid ENVID parameter"))?,
                    )
                }
                ("HOLDFOR", Some(v))
                    if out.hold_for.is_none()
                        && out.hold_until.is_none()
                        && !v.is_empty()
                        && v.len() <= 9
                        && v.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    out.hold_for = v.parse().ok();
                }
                ("HOLDUNTIL", Some(v)) if out.hold_for.is_none() && out.hold_until.is_none() => {
                    out.hold_until = Some(
                        crate::message::date::parse_rfc3339(v)
                            .ok_or_else(|| invalid("Invalid HOLDUNTIL parameter"))?,
                    )
                }
                ("HOLDFOR" | "HOLDUNTIL", _) => {
                    return Err(invalid(
                        "Invalid or repeated FUTURERELEASE parameter (HOLDFOR or HOLDUNTIL, once)",
                    ))
                }
                ("RET" | "ENVID", _) => {
                    return Err(invalid(format!(
                        "Invalid or repeated {} parameter",
                        p.keyword
                    )))
                }
                ("SIZE", v) if out.size.is_none() => out.size = Some(parse_size(v)?),
                ("BODY", v) if out.body.is_none() => out.body = Some(parse_body(v)?),
                ("SMTPUTF8", None) if !seen_smtputf8 => {
                    seen_smtputf8 = true;
                    out.smtputf8 = true;
                }
                ("REQUIRETLS", None) if !seen_requiretls => {
                    seen_requiretls = true;
                    out.requiretls = true;
                }
                ("SIZE" | "BODY" | "SMTPUTF8" | "REQUIRETLS", _) => {
                    return Err(invalid(format!(
                        "Invalid or repeated {} parameter",
                        p.keyword
                    )))
                }
                _ => out.other.push(p.clone()),
            }
        }
        Ok(out)
    }
}

fn parse_size(v: Option<&str>) -> Result<u64, ReplyError> {
    match v {
        Some(v)
            if !v.is_empty()
                && v.len() <= MAX_SIZE_DIGITS
                && v.bytes().all(|b| b.is_ascii_digit()) =>
        {
            v.parse().map_err(|_| invalid("SIZE value out of range"))
        }
        _ => Err(invalid("Invalid SIZE parameter")),
    }
}

fn parse_body(v: Option<&str>) -> Result<BodyType, ReplyError> {
    match v.map(str::to_ascii_uppercase).as_deref() {
        Some("7BIT") => Ok(BodyType::SevenBit),
        Some("8BITMIME") => Ok(BodyType::EightBitMime),
        Some("BINARYMIME") => Ok(BodyType::BinaryMime),
        _ => Err(invalid("Invalid BODY parameter")),
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            write!(f, "{}@{}", self.local, self.domain)
        } else {
            // RFC 5321 4.1.2: Quoted-string, escaping `"` and `\`.
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            write!(f, "\"@{}", self.domain)
        }
    }
}

impl fmt::Display for ReversePath {
    /// As it appears inside the angle brackets: empty for the null path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(a) => a.fmt(f),
        }
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("Postmaster"),
            ForwardPath::Mailbox(a) => a.fmt(f),
        }
    }
}

/// Verbs RFC 5321 knows that roost does not implement: 502 (4.2.4), not 500.
const UNIMPLEMENTED_VERBS: &[&str] = &["EXPN", "TURN", "SEND", "SOML", "SAML", "ETRN"];

/// Parses one command line. A trailing CRLF or LF is optional; trailing
/// spaces are ignored.
pub fn parse_command(line: &[u8]) -> Result<Command, ReplyError> {
    let line = line
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(line);
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let line = &line[..end];
    if line.is_empty() {
        return Err(ReplyError::new(
            500,
            (5, 5, 2),
            "Syntax error: empty command",
        ));
    }
    let (verb, args) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[][..]),
    };
    if !verb.iter().all(u8::is_ascii_alphabetic) {
        return Err(ReplyError(Reply::unknown_command()));
    }
    let verb = String::from_utf8_lossy(verb).to_ascii_uppercase();
    let args = std::str::from_utf8(args)
        .map_err(|_| ReplyError(Reply::syntax_error("Invalid UTF-8 in command")))?
        .trim_start_matches(' ');
    if args.chars().any(char::is_control) {
        return Err(ReplyError(Reply::syntax_error(
            "Control character in command",
        )));
    }
    match verb.as_str() {
        "EHLO" => Ok(Command::Ehlo(client_name(args, "EHLO")?)),
        "HELO" => Ok(Command::Helo(client_name(args, "HELO")?)),
        "MAIL" => parse_mail(args),
        "RCPT" => parse_rcpt(args),
        "DATA" => no_args(args, "DATA", Command::Data),
        "BDAT" => parse_bdat(args),
        "RSET" => no_args(args, "RSET", Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(args, "QUIT", Command::Quit),
        "VRFY" if !args.is_empty() => Ok(Command::Vrfy(args.to_string())),
        "VRFY" => Err(ReplyError(Reply::syntax_error("Syntax: VRFY <string>"))),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(args, "STARTTLS", Command::StartTls),
        "AUTH" => parse_auth(args),
        v if UNIMPLEMENTED_VERBS.contains(&v) => {
            Err(ReplyError::new(502, (5, 5, 1), "Command not implemented"))
        }
        _ => Err(ReplyError(Reply::unknown_command())),
    }
}

fn invalid(text: impl Into<String>) -> ReplyError {
    ReplyError(Reply::invalid_arguments(text))
}

fn no_args(args: &str, verb: &str, cmd: Command) -> Result<Command, ReplyError> {
    if args.is_empty() {
        Ok(cmd)
    } else {
        Err(invalid(format!("Syntax: {verb} takes no arguments")))
    }
}

/// RFC 5321 4.1.1.1: `Domain / address-literal`. Real clients send
/// hostnames with underscores and worse, so any single printable token is
/// taken; the session may judge it further.
fn client_name(args: &str, verb: &str) -> Result<String, ReplyError> {
    if args.is_empty() {
        return Err(ReplyError(Reply::syntax_error(format!(
            "Syntax: {verb} hostname"
        ))));
    }
    if args.contains(' ') {
        return Err(invalid(format!("Syntax: {verb} hostname")));
    }
    Ok(args.to_string())
}

/// Which path is being parsed, for the enhanced code of a syntax error
/// (RFC 3463 3.2: X.1.7 sender, X.1.3 recipient).
#[derive(Clone, Copy)]
enum PathRole {
    Sender,
    Recipient,
}

impl PathRole {
    fn error(self, text: &str) -> ReplyError {
        match self {
            PathRole::Sender => ReplyError::new(501, (5, 1, 7), text),
            PathRole::Recipient => ReplyError::new(501, (5, 1, 3), text),
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// RFC 5321 4.1.1.2: `MAIL FROM:<reverse-path> [SP params]`.
fn parse_mail(args: &str) -> Result<Command, ReplyError> {
    let rest = strip_prefix_ci(args, "FROM:")
        .ok_or_else(|| ReplyError(Reply::syntax_error("Syntax: MAIL FROM:<address>")))?;
    let (inner, params) = split_path(rest, PathRole::Sender)?;
    let from = if inner.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(parse_mailbox(inner, PathRole::Sender)?)
    };
    Ok(Command::Mail {
        from,
        params: parse_params(params)?,
    })
}

/// RFC 5321 4.1.1.3: `RCPT TO:<forward-path> [SP params]`.
fn parse_rcpt(args: &str) -> Result<Command, ReplyError> {
    let rest = strip_prefix_ci(args, "TO:")
        .ok_or_else(|| ReplyError(Reply::syntax_error("Syntax: RCPT TO:<address>")))?;
    let (inner, params) = split_path(rest, PathRole::Recipient)?;
    let to = if inner.eq_ignore_ascii_case("postmaster") {
        ForwardPath::Postmaster
    } else if inner.is_empty() {
        return Err(PathRole::Recipient.error("Null recipient not allowed"));
    } else {
        ForwardPath::Mailbox(parse_mailbox(inner, PathRole::Recipient)?)
    };
    Ok(Command::Rcpt {
        to,
        params: parse_params(params)?,
    })
}

/// Splits `<path> params` into the text inside the brackets and the
/// parameter text. A space after the colon is a common violation and is
/// tolerated; missing brackets are not.
fn split_path(s: &str, role: PathRole) -> Result<(&str, &str), ReplyError> {
    let s = s.trim_start_matches(' ');
    if !s.starts_with('<') {
        return Err(role.error("Syntax: address must be in angle brackets"));
    }
    let bytes = s.as_bytes();
    let mut in_quote = false;
    let mut i = 1;
    let close = loop {
        match bytes.get(i) {
            None => return Err(role.error("Syntax: missing '>'")),
            Some(b'\\') if in_quote => i += 1,
            Some(b'"') => in_quote = !in_quote,
            Some(b'>') if !in_quote => break i,
            Some(_) => {}
        }
        i += 1;
    };
    if close + 1 > MAX_PATH {
        return Err(role.error("Path too long"));
    }
    let rest = &s[close + 1..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(role.error("Syntax: unexpected text after '>'"));
    }
    Ok((&s[1..close], rest))
}

/// RFC 5321 4.1.2: `[A-d-l ":"] Mailbox`. The source route is checked and
/// dropped (RFC 5321 4.1.1.3, C).
fn parse_mailbox(inner: &str, role: PathRole) -> Result<Address, ReplyError> {
    let mailbox = if inner.starts_with('@') {
        let colon = inner
            .find(':')
            .ok_or_else(|| role.error("Syntax: bad source route"))?;
        for hop in inner[..colon].split(',') {
            let ok = hop
                .strip_prefix('@')
                .is_some_and(|d| parse_domain(d).is_some());
            if !ok {
                return Err(role.error("Syntax: bad source route"));
            }
        }
        &inner[colon + 1..]
    } else {
        inner
    };
    let (local, domain) =
        split_local(mailbox).ok_or_else(|| role.error("Syntax: bad local part"))?;
    let domain = parse_domain(domain).ok_or_else(|| role.error("Syntax: bad domain"))?;
    Ok(Address { local, domain })
}

/// Splits `local@domain`, returning the local part's meaning (unquoted) and
/// the domain text.
fn split_local(s: &str) -> Option<(String, &str)> {
    if let Some(quoted) = s.strip_prefix('"') {
        // RFC 5321 4.1.2 Quoted-string: qtextSMTP and quoted-pairSMTP, with
        // UTF-8 allowed by RFC 6531 3.3.
        let mut local = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let after = &quoted[i + 1..];
                    return after.strip_prefix('@').map(|d| (local, d));
                }
                '\\' => match chars.next() {
                    Some((_, e)) if (' '..='~').contains(&e) => local.push(e),
                    _ => return None,
                },
                c if c == ' ' || c == '!' || ('#'..='~').contains(&c) || !c.is_ascii() => {
                    local.push(c)
                }
                _ => return None,
            }
        }
        None
    } else {
        let at = s.find('@')?;
        let local = &s[..at];
        is_dot_string(local).then(|| (local.to_string(), &s[at + 1..]))
    }
}

/// RFC 5322 3.2.3 atext, extended with UTF-8 by RFC 6531 3.3.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// RFC 5321 4.1.2 `Dot-string = Atom *("." Atom)`.
fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// RFC 5321 4.1.2 `Domain / address-literal`, lower-cased. U-labels
/// (RFC 6531) are allowed as non-ASCII label characters.
fn parse_domain(s: &str) -> Option<String> {
    if let Some(lit) = s.strip_prefix('[') {
        // RFC 5321 4.1.3: IPv4 and IPv6 address literals.
        let lit = lit.strip_suffix(']')?;
        let ok = match strip_prefix_ci(lit, "IPv6:") {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => lit.parse::<Ipv4Addr>().is_ok(),
        };
        return ok.then(|| s.to_ascii_lowercase());
    }
    if s.is_empty() || s.len() > MAX_DOMAIN {
        return None;
    }
    let labels_ok = s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
    });
    labels_ok.then(|| s.to_lowercase())
}

/// RFC 5321 4.1.2 `Mail-parameters = esmtp-param *(SP esmtp-param)`;
/// runs of spaces are tolerated.
fn parse_params(s: &str) -> Result<Vec<Param>, ReplyError> {
    s.split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (keyword, value) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
            let keyword_ok = keyword.starts_with(|c: char| c.is_ascii_alphanumeric())
                && keyword
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-');
            // esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 by RFC 6531 3.3
            let value_ok = value.is_none_or(|v| {
                !v.is_empty()
                    && v.chars()
                        .all(|c| ('!'..='~').contains(&c) && c != '=' || !c.is_ascii())
            });
            if keyword_ok && value_ok {
                Ok(Param {
                    keyword: keyword.to_ascii_uppercase(),
                    value: value.map(str::to_string),
                })
            } else {
                Err(invalid(format!("Invalid parameter: {p}")))
            }
        })
        .collect()
}

/// RFC 3030 2: `BDAT SP chunk-size [SP end-marker]`.
fn parse_bdat(args: &str) -> Result<Command, ReplyError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or_else(|| invalid("Syntax: BDAT size [LAST]"))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(invalid("Syntax: BDAT size [LAST]")),
    };
    if words.next().is_some() {
        return Err(invalid("Syntax: BDAT size [LAST]"));
    }
    Ok(Command::Bdat { size, last })
}

/// RFC 4954 4: `AUTH mechanism [initial-response]`.
fn parse_auth(args: &str) -> Result<Command, ReplyError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let mechanism = words
        .next()
        .map(str::to_ascii_uppercase)
        .filter(|m| {
            m.len() <= MAX_MECHANISM
                && m.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| invalid("Syntax: AUTH mechanism [initial-response]"))?;
    let initial = words.next().map(|w| match w {
        "=" => String::new(),
        w => w.to_string(),
    });
    if words.next().is_some() {
        return Err(invalid("Syntax: AUTH mechanism [initial-response]"));
    }
    Ok(Command::Auth { mechanism, initial })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local: local.into(),
            domain: domain.into(),
        }
    }

    fn err(line: &str) -> Reply {
        match parse_command(line.as_bytes()) {
            Err(e) => e.0,
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
        }
    }

    fn ok(line: &str) -> Command {
        match parse_command(line.as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("{line:?} failed: {e}"),
        }
    }

    fn mail_from(line: &str) -> ReversePath {
        match ok(line) {
            Command::Mail { from, .. } => from,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn simple_verbs_any_case() {
        assert_eq!(
            ok("EHLO mx.example\r\n"),
            Command::Ehlo("mx.example".into())
        );
        assert_eq!(ok("ehlo [192.0.2.1]"), Command::Ehlo("[192.0.2.1]".into()));
        assert_eq!(ok("HeLo a\n"), Command::Helo("a".into()));
        assert_eq!(ok("DATA\r\n"), Command::Data);
        assert_eq!(ok("rset"), Command::Rset);
        assert_eq!(ok("NOOP"), Command::Noop);
        assert_eq!(ok("NOOP anything at all"), Command::Noop);
        assert_eq!(ok("quit \r\n"), Command::Quit);
        assert_eq!(ok("HELP MAIL"), Command::Help);
        assert_eq!(ok("StartTLS"), Command::StartTls);
        assert_eq!(ok("VRFY Smith"), Command::Vrfy("Smith".into()));
    }

    #[test]
    fn errors_map_to_replies() {
        assert_eq!(
            err("FOO").to_bytes(),
            b"500 5.5.1 Command not recognized\r\n"
        );
        assert_eq!(err("\r\n").code, 500);
        assert_eq!(err("M@IL FROM:<>").enhanced, Some((5, 5, 1)));
        assert_eq!(
            err("EXPN list").to_bytes(),
            b"502 5.5.1 Command not implemented\r\n"
        );
        assert_eq!(
            err("DATA now").to_bytes(),
            b"501 5.5.4 Syntax: DATA takes no arguments\r\n"
        );
        assert_eq!(
            err("EHLO").to_bytes(),
            b"501 5.5.2 Syntax: EHLO hostname\r\n"
        );
        assert_eq!(err("EHLO a b").enhanced, Some((5, 5, 4)));
        assert_eq!(err("VRFY").code, 501);
        assert_eq!(
            err("MAIL <a@b.c>").to_bytes(),
            b"501 5.5.2 Syntax: MAIL FROM:<address>\r\n"
        );
        assert_eq!(err("RCPT <a@b.c>").code, 501);
        assert_eq!(err("NOOP \x01").code, 501);
        assert_eq!(
            parse_command(b"MAIL FROM:<\xff@x>").unwrap_err().0.code,
            501
        );
    }

    #[test]
    fn mail_paths() {
        assert_eq!(mail_from("MAIL FROM:<>"), ReversePath::Null);
        assert_eq!(
            mail_from("mail from:<Joe.Q@Example.COM>"),
            ReversePath::Mailbox(addr("Joe.Q", "example.com"))
        );
        // A space after the colon is tolerated.
        assert_eq!(
            mail_from("MAIL FROM: <a@b.c>"),
            ReversePath::Mailbox(addr("a", "b.c"))
        );
        assert_eq!(mail_from("MAIL FROM: <>"), ReversePath::Null);
        // Source routes are accepted and dropped.
        assert_eq!(
            mail_from("MAIL FROM:<@a.example,@b.example:u@d.example>"),
            ReversePath::Mailbox(addr("u", "d.example"))
        );
        // Quoted local parts keep their meaning.
        let from = mail_from(r#"MAIL FROM:<"a b"@x.example>"#);
        assert_eq!(from, ReversePath::Mailbox(addr("a b", "x.example")));
        assert_eq!(from.to_string(), r#""a b"@x.example"#);
        let from = mail_from(r#"MAIL FROM:<"q\"t>\\"@x>"#);
        assert_eq!(from, ReversePath::Mailbox(addr("q\"t>\\", "x")));
        assert_eq!(from.to_string(), r#""q\"t>\\"@x"#);
        // A quoted local part that is a plain dot-string prints unquoted.
        assert_eq!(mail_from(r#"MAIL FROM:<"joe"@x>"#).to_string(), "joe@x");
        // Address literals and UTF-8 (RFC 6531).
        assert_eq!(
            mail_from("MAIL FROM:<a@[IPv6:2001:DB8::1]>"),
            ReversePath::Mailbox(addr("a", "[ipv6:2001:db8::1]"))
        );
        assert_eq!(
            mail_from("MAIL FROM:<Jörg@Bücher.Example>"),
            ReversePath::Mailbox(addr("Jörg", "bücher.example"))
        );
    }

    #[test]
    fn bad_paths() {
        let e = err("MAIL FROM:a@b.c");
        assert_eq!(
            e.to_bytes(),
            b"501 5.1.7 Syntax: address must be in angle brackets\r\n"
        );
        assert_eq!(err("RCPT TO:a@b.c").enhanced, Some((5, 1, 3)));
        for bad in [
            "MAIL FROM:<a@b.c",
            "MAIL FROM:<a@b.c>x",
            "MAIL FROM:<a>",
            "MAIL FROM:<@b.c>",
            "MAIL FROM:<a@>",
            "MAIL FROM:<a..b@c>",
            "MAIL FROM:<.a@c>",
            "MAIL FROM:<a b@c>",
            "MAIL FROM:<a@-b.c>",
            "MAIL FROM:<a@b..c>",
            "MAIL FROM:<a@b.c.>",
            "MAIL FROM:<a@b_c>",
            "MAIL FROM:<a@[300.1.1.1]>",
            "MAIL FROM:<a@[1.2.3.4>",
            "MAIL FROM:<\"a@b>",
            "MAIL FROM:<\"a\"b@c>",
            "MAIL FROM:<@a.example:u>",
            "MAIL FROM:<@a.example,b:u@d>",
            "RCPT TO:<>",
        ] {
            assert_eq!(err(bad).code, 501, "{bad}");
        }
    }

    #[test]
    fn rcpt_paths_and_postmaster() {
        assert_eq!(
            ok("RCPT TO:<PostMaster>"),
            Command::Rcpt {
                to: ForwardPath::Postmaster,
                params: vec![]
            }
        );
        assert_eq!(
            ok("RCPT TO:<postmaster@Example.org> NOTIFY=NEVER"),
            Command::Rcpt {
                to: ForwardPath::Mailbox(addr("postmaster", "example.org")),
                params: vec![Param {
                    keyword: "NOTIFY".into(),
                    value: Some("NEVER".into())
                }]
            }
        );
    }

    #[test]
    fn params_and_typed_helpers() {
        let Command::Mail { params, .. } =
            ok("MAIL FROM:<a@b.c> size=1000  BODY=8bitmime SMTPUTF8 X-Y=z")
        else {
            panic!()
        };
        assert_eq!(params.len(), 4);
        assert_eq!(params[0].keyword, "SIZE");
        let mp = MailParams::from_params(&params).unwrap();
        assert_eq!(mp.size, Some(1000));
        assert_eq!(mp.body, Some(BodyType::EightBitMime));
        assert!(mp.smtputf8);
        assert_eq!(
            mp.other,
            vec![Param {
                keyword: "X-Y".into(),
                value: Some("z".into())
            }]
        );
        for (p, want) in [
            ("BODY=7BIT", BodyType::SevenBit),
            ("BODY=BINARYMIME", BodyType::BinaryMime),
        ] {
            let Command::Mail { params, .. } = ok(&format!("MAIL FROM:<> {p}")) else {
                panic!()
            };
            assert_eq!(MailParams::from_params(&params).unwrap().body, Some(want));
        }
        for bad in [
            "SIZE=abc",
            "SIZE",
            "SIZE=1 SIZE=2",
            "BODY=9BIT",
            "SMTPUTF8=yes",
            "SMTPUTF8 SMTPUTF8",
            "SIZE=99999999999999999999",
        ] {
            let Command::Mail { params, .. } = ok(&format!("MAIL FROM:<> {bad}")) else {
                panic!()
            };
            let e = MailParams::from_params(&params).unwrap_err().0;
            assert_eq!((e.code, e.enhanced), (501, Some((5, 5, 4))), "{bad}");
        }
        for bad in [
            "MAIL FROM:<> =x",
            "MAIL FROM:<> A=",
            "MAIL FROM:<> -A",
            "MAIL FROM:<> A=b=c",
        ] {
            assert_eq!(err(bad).enhanced, Some((5, 5, 4)), "{bad}");
        }
    }

    #[test]
    fn size_digits_edge() {
        let ok_size = "9".repeat(MAX_SIZE_DIGITS - 1);
        assert_eq!(
            parse_size(Some(&ok_size)).unwrap(),
            ok_size.parse::<u64>().unwrap()
        );
        assert_eq!(parse_size(Some("18446744073709551615")).unwrap(), u64::MAX);
        assert!(parse_size(Some(&"1".repeat(MAX_SIZE_DIGITS + 1))).is_err());
    }

    #[test]
    fn path_length_edge() {
        // `<` + local + `@` + domain + `>` == MAX_PATH octets.
        let domain = format!("{}.{}", "d".repeat(60), "e".repeat(60));
        let local_len = MAX_PATH - 3 - domain.len();
        let line = format!("MAIL FROM:<{}@{domain}>", "l".repeat(local_len));
        assert!(matches!(ok(&line), Command::Mail { .. }));
        let line = format!("MAIL FROM:<{}@{domain}>", "l".repeat(local_len + 1));
        assert_eq!(err(&line).to_bytes(), b"501 5.1.7 Path too long\r\n");
    }

    #[test]
    fn domain_and_label_length_edges() {
        let label = "a".repeat(MAX_LABEL);
        assert_eq!(parse_domain(&label), Some(label.clone()));
        assert_eq!(parse_domain(&format!("{label}a")), None);
        // Four labels of 63 + 3 dots = 255.
        let long = [label.as_str(); 4].join(".");
        assert_eq!(long.len(), MAX_DOMAIN);
        assert_eq!(parse_domain(&long), Some(long.clone()));
        let too_long = format!("b{long}");
        assert_eq!(parse_domain(&too_long), None);
    }

    #[test]
    fn bdat() {
        assert_eq!(
            ok("BDAT 1000"),
            Command::Bdat {
                size: 1000,
                last: false
            }
        );
        assert_eq!(
            ok("bdat 0 last"),
            Command::Bdat {
                size: 0,
                last: true
            }
        );
        assert_eq!(
            ok("BDAT 18446744073709551615 LAST"),
            Command::Bdat {
                size: u64::MAX,
                last: true
            }
        );
        for bad in [
            "BDAT",
            "BDAT x",
            "BDAT -1",
            "BDAT 1 FIRST",
            "BDAT 1 LAST x",
            "BDAT 18446744073709551616",
        ] {
            assert_eq!(err(bad).enhanced, Some((5, 5, 4)), "{bad}");
        }
    }

    #[test]
    fn auth() {
        assert_eq!(
            ok("AUTH plain AGZvbwBiYXI="),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGZvbwBiYXI=".into())
            }
        );
        assert_eq!(
            ok("AUTH LOGIN"),
            Command::Auth {
                mechanism: "LOGIN".into(),
                initial: None
            }
        );
        assert_eq!(
            ok("AUTH PLAIN ="),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some(String::new())
            }
        );
        let mech = "M".repeat(MAX_MECHANISM);
        assert!(matches!(ok(&format!("AUTH {mech}")), Command::Auth { .. }));
        assert_eq!(err(&format!("AUTH {mech}M")).code, 501);
        assert_eq!(err("AUTH").code, 501);
        assert_eq!(err("AUTH PL@IN").code, 501);
        assert_eq!(err("AUTH PLAIN a b").code, 501);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0xdead_beef_1234_5678;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let heads: [&[u8]; 8] = [
            b"MAIL FROM:<",
            b"RCPT TO:<",
            b"MAIL FROM:<\"",
            b"RCPT TO:<@",
            b"AUTH ",
            b"BDAT ",
            b"EHLO ",
            b"",
        ];
        let alphabet = "<>@\"\\.,:[]= -_aZ09\r\nIPv6é".as_bytes();
        for _ in 0..20_000 {
            let mut line = heads[(next() % 8) as usize].to_vec();
            for _ in 0..next() % 80 {
                let r = next();
                line.push(if r % 4 == 0 {
                    r as u8
                } else {
                    alphabet[(r as usize >> 3) % alphabet.len()]
                });
            }
            if let Ok(Command::Mail { params, .. }) = parse_command(&line) {
                let _ = MailParams::from_params(&params);
            }
        }
    }

    fn param(keyword: &str, value: Option<&str>) -> Param {
        Param {
            keyword: keyword.into(),
            value: value.map(str::to_string),
        }
    }

    /// RFC 3461 4.3 and 4.4: RET and ENVID (xtext, at most 100).
    #[test]
    fn mail_dsn_parameters() {
        let p = MailParams::from_params(&[
            param("RET", Some("hdrs")),
            param("ENVID", Some("QQ+2B314159")),
        ])
        .unwrap();
        assert_eq!(
            (p.ret, p.envid.as_deref()),
            (Some(Ret::Hdrs), Some("QQ+314159"))
        );
        let envid = |n: usize| MailParams::from_params(&[param("ENVID", Some(&"e".repeat(n)))]);
        assert!(envid(MAX_ENVID).is_ok());
        assert!(envid(MAX_ENVID + 1).is_err());
        for bad in [
            vec![param("RET", Some("ALL"))],
            vec![param("RET", None)],
            vec![param("RET", Some("FULL")), param("RET", Some("HDRS"))],
            vec![param("ENVID", Some("a=b"))],
            vec![param("ENVID", Some("a+zz"))],
            vec![param("ENVID", Some("a+0D+0Ab"))],
        ] {
            assert!(MailParams::from_params(&bad).is_err(), "{bad:?}");
        }
    }

    /// RFC 4865: HOLDFOR (up to 9 digits) or HOLDUNTIL (RFC 3339), once.
    #[test]
    fn futurerelease_parameters() {
        let p = MailParams::from_params(&[param("HOLDFOR", Some("999999999"))]).unwrap();
        assert_eq!(p.hold_for, Some(999_999_999));
        assert!(MailParams::from_params(&[param("HOLDFOR", Some("1000000000"))]).is_err());
        assert!(MailParams::from_params(&[param("HOLDFOR", Some("-1"))]).is_err());
        let p =
            MailParams::from_params(&[param("HOLDUNTIL", Some("2026-12-02T00:00:00Z"))]).unwrap();
        assert_eq!(p.hold_until, Some(1_796_169_600));
        assert!(MailParams::from_params(&[
            param("HOLDUNTIL", Some("2026-12-02T00:00:00Z")),
            param("HOLDFOR", Some("5")),
        ])
        .is_err());
    }

    /// RFC 3461 4.1 and 4.2: NOTIFY and ORCPT (at most 500).
    #[test]
    fn rcpt_dsn_parameters() {
        let p = RcptParams::from_params(&[
            param("NOTIFY", Some("success,Delay")),
            param("ORCPT", Some("rfc822;Bob+2Bx@example.org")),
        ])
        .unwrap();
        let n = p.notify.unwrap();
        assert!(n.success && n.delay && !n.failure && !n.never());
        assert_eq!(n.to_param(), "SUCCESS,DELAY");
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;Bob+x@example.org"));
        let never = RcptParams::from_params(&[param("NOTIFY", Some("NEVER"))]).unwrap();
        assert!(never.notify.unwrap().never());
        assert_eq!(never.notify.unwrap().to_param(), "NEVER");
        let orcpt = |n: usize| {
            let v = format!("rfc822;{}", "a".repeat(n - 7));
            RcptParams::from_params(&[param("ORCPT", Some(&v))])
        };
        assert!(orcpt(MAX_ORCPT).is_ok());
        assert!(orcpt(MAX_ORCPT + 1).is_err());
        for bad in [
            vec![param("NOTIFY", Some("NEVER,SUCCESS"))],
            vec![param("NOTIFY", Some("SOMETIMES"))],
            vec![param("NOTIFY", None)],
            vec![param("ORCPT", Some("noaddrtype"))],
            vec![param("ORCPT", Some("rfc822;"))],
            vec![param("ORCPT", Some("rfc822;a+0Ab@example.org"))],
            vec![
                param("NOTIFY", Some("SUCCESS")),
                param("NOTIFY", Some("FAILURE")),
            ],
        ] {
            assert!(RcptParams::from_params(&bad).is_err(), "{bad:?}");
        }
        let other = RcptParams::from_params(&[param("XFOO", None)]).unwrap();
        assert_eq!(other.other.len(), 1);
        assert_eq!(xtext_encode("a+b=c d\u{e9}"), "a+2Bb+3Dc+20d+C3+A9");
        assert_eq!(
            xtext_decode("a+2Bb+3Dc+20d+C3+A9").as_deref(),
            Some("a+b=c d\u{e9}")
        );
    }
}
