//! RFC 5322 3.4 address lists, read the way IMAP's ENVELOPE needs them
//! (RFC 9051 7.5.2): each mailbox as display name, source route, local
//! part and domain, and groups as start and end markers.
//!
//! Values stay as they are in the header: encoded-words are not decoded
//! (ENVELOPE carries them raw) and quoted display names lose only their
//! quoting. The reader is one pass over a token list with no recursion;
//! comments nest by a counter, and at most [`MAX_ADDRESSES`] addresses of
//! one field are kept.

/// Addresses kept from one header field; the rest stay in the header.
pub const MAX_ADDRESSES: usize = 1000;

/// Stands in for a missing local part or domain, so an address is never
/// mistaken for a group marker (whose domain is NIL).
pub const MISSING_MAILBOX: &str = "MISSING_MAILBOX";
pub const MISSING_DOMAIN: &str = "MISSING_DOMAIN";

/// One element of an ENVELOPE address list. A group start has only
/// `mailbox` (the group's name); a group end has nothing at all.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    /// The obsolete source route (`@a,@b`), without the final colon.
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

impl Address {
    fn group_start(name: Vec<u8>) -> Address {
        Address {
            mailbox: Some(name),
            ..Address::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Atom text, dots included (`John`, `Q.`, `a.b`), or a domain literal.
    Word(Vec<u8>),
    /// A quoted string: its content with the escapes removed, and the raw
    /// form, quotes and all, for local parts.
    Quoted(Vec<u8>, Vec<u8>),
    Special(u8),
}

fn lex(value: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                // A comment, nested comments within it counted, not followed.
                let mut depth = 0usize;
                while i < value.len() {
                    match value[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'"' => {
                let start = i;
                let mut content = Vec::new();
                i += 1;
                while i < value.len() && value[i] != b'"' {
                    if value[i] == b'\\' && i + 1 < value.len() {
                        i += 1;
                    }
                    content.push(value[i]);
                    i += 1;
                }
                i = (i + 1).min(value.len());
                out.push(Token::Quoted(content, value[start..i].to_vec()));
            }
            b'[' => {
                let start = i;
                while i < value.len() && value[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(value.len());
                out.push(Token::Word(value[start..i].to_vec()));
            }
            b'<' | b'>' | b':' | b';' | b',' | b'@' => {
                out.push(Token::Special(b));
                i += 1;
            }
            _ => {
                let start = i;
                while i < value.len()
                    && !matches!(
                        value[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'('
                            | b'"'
                            | b'['
                            | b'<'
                            | b'>'
                            | b':'
                            | b';'
                            | b','
                            | b'@'
                    )
                {
                    i += 1;
                }
                out.push(Token::Word(value[start..i].to_vec()));
            }
        }
    }
    out
}

/// The mailbox being read: words before `<` (or all of an addr-spec).
#[derive(Default)]
struct Pending {
    words: Vec<Token>,
    /// Inside `<...>`: the route and the addr-spec tokens.
    angle: Option<(Vec<u8>, Vec<Token>)>,
}

/// Reads an address-list field value (unfolded, undecoded).
pub fn parse_address_list(value: &[u8]) -> Vec<Address> {
    let tokens = lex(value);
    let mut out = Vec::new();
    let mut cur = Pending::default();
    let mut in_angle = false;
    let mut in_group = false;
    for tok in tokens {
        if out.len() >= MAX_ADDRESSES {
            break;
        }
        if in_angle {
            let (route, spec) = cur.angle.get_or_insert_with(Default::default);
            match tok {
                Token::Special(b'>') => in_angle = false,
                // obs-route: everything before the colon is the route.
                Token::Special(b':') => {
                    for t in spec.drain(..) {
                        push_raw(route, &t);
                    }
                }
                t => spec.push(t),
            }
            continue;
        }
        match tok {
            Token::Special(b'<') => {
                in_angle = true;
                cur.angle = Some(Default::default());
            }
            Token::Special(b':') if !in_group && cur.angle.is_none() => {
                out.push(Address::group_start(phrase(&cur.words)));
                cur = Pending::default();
                in_group = true;
            }
            Token::Special(b',') => finish(&mut cur, &mut out),
            Token::Special(b';') if in_group => {
                finish(&mut cur, &mut out);
                out.push(Address::default());
                in_group = false;
            }
            t => cur.words.push(t),
        }
    }
    finish(&mut cur, &mut out);
    if in_group && out.len() < MAX_ADDRESSES {
        out.push(Address::default());
    }
    out.truncate(MAX_ADDRESSES);
    out
}

fn finish(cur: &mut Pending, out: &mut Vec<Address>) {
    let p = std::mem::take(cur);
    let (name, route, spec) = match p.angle {
        Some((route, spec)) => (Some(phrase(&p.words)), route, spec),
        None => (None, Vec::new(), p.words),
    };
    if spec.is_empty() && name.as_ref().is_none_or(|n| n.is_empty()) {
        return;
    }
    let at = spec.iter().rposition(|t| matches!(t, Token::Special(b'@')));
    let (local, domain) = match at {
        Some(at) => (&spec[..at], &spec[at + 1..]),
        None => (&spec[..], &spec[..0]),
    };
    let raw = |ts: &[Token]| {
        let mut v = Vec::new();
        for t in ts {
            push_raw(&mut v, t);
        }
        v
    };
    let local = raw(local);
    let domain = raw(domain);
    out.push(Address {
        name: name.filter(|n| !n.is_empty()),
        adl: (!route.is_empty()).then_some(route),
        mailbox: Some(if local.is_empty() {
            MISSING_MAILBOX.as_bytes().to_vec()
        } else {
            local
        }),
        host: Some(if domain.is_empty() {
            MISSING_DOMAIN.as_bytes().to_vec()
        } else {
            domain
        }),
    });
}

/// A token as it was written (quoted strings with their quotes).
fn push_raw(v: &mut Vec<u8>, t: &Token) {
    match t {
        Token::Word(w) => v.extend_from_slice(w),
        Token::Quoted(_, raw) => v.extend_from_slice(raw),
        Token::Special(b) => v.push(*b),
    }
}

/// A display name: its words joined by single spaces, quoting removed.
fn phrase(words: &[Token]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, t) in words.iter().enumerate() {
        if i > 0 {
            v.push(b' ');
        }
        match t {
            Token::Word(w) => v.extend_from_slice(w),
            Token::Quoted(content, _) => v.extend_from_slice(content),
            Token::Special(b) => v.push(*b),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address {
            name: name.map(|n| n.as_bytes().to_vec()),
            adl: None,
            mailbox: Some(mailbox.as_bytes().to_vec()),
            host: Some(host.as_bytes().to_vec()),
        }
    }

    #[test]
    fn plain_and_named_addresses() {
        assert_eq!(
            parse_address_list(b"alice@example.com"),
            vec![a(None, "alice", "example.com")]
        );
        assert_eq!(
            parse_address_list(b"\"Doe, John\" <john.doe@x.org>, Q. Public <q@y> (comment)"),
            vec![
                a(Some("Doe, John"), "john.doe", "x.org"),
                a(Some("Q. Public"), "q", "y")
            ]
        );
        assert_eq!(
            parse_address_list(b"=?UTF-8?Q?J=C3=B6rg?= <j@z>"),
            vec![a(Some("=?UTF-8?Q?J=C3=B6rg?="), "j", "z")]
        );
    }

    #[test]
    fn groups_routes_and_oddities() {
        assert_eq!(
            parse_address_list(b"Team: a@b, <c@d>; e@f"),
            vec![
                Address::group_start(b"Team".to_vec()),
                a(None, "a", "b"),
                a(None, "c", "d"),
                Address::default(),
                a(None, "e", "f"),
            ]
        );
        assert_eq!(
            parse_address_list(b"undisclosed-recipients:;"),
            vec![
                Address::group_start(b"undisclosed-recipients".to_vec()),
                Address::default()
            ]
        );
        let routed = parse_address_list(b"<@r1,@r2:x@y>");
        assert_eq!(routed[0].adl.as_deref(), Some(&b"@r1,@r2"[..]));
        assert_eq!(routed[0].mailbox.as_deref(), Some(&b"x"[..]));
        assert_eq!(
            parse_address_list(b"\"odd local\"@h"),
            vec![a(None, "\"odd local\"", "h")]
        );
        assert_eq!(
            parse_address_list(b"nobody"),
            vec![a(None, "nobody", MISSING_DOMAIN)]
        );
        assert_eq!(parse_address_list(b" , ,"), vec![]);
        assert_eq!(
            parse_address_list(b"x@[127.0.0.1]"),
            vec![a(None, "x", "[127.0.0.1]")]
        );
    }

    #[test]
    fn deep_comments_and_unclosed_things_end() {
        let mut v = vec![b'('; 100_000];
        v.extend_from_slice(b"a@b");
        assert_eq!(parse_address_list(&v), vec![]);
        assert_eq!(
            parse_address_list(b"\"unterminated <x@y>"),
            vec![a(None, "\"unterminated <x@y>", MISSING_DOMAIN)]
        );
        assert_eq!(parse_address_list(b"<a@b"), vec![a(None, "a", "b")]);
    }

    #[test]
    fn address_limit_edge() {
        let list = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| format!("u{i}@h"))
                .collect::<Vec<_>>()
                .join(", ")
                .into_bytes()
        };
        assert_eq!(
            parse_address_list(&list(MAX_ADDRESSES)).len(),
            MAX_ADDRESSES
        );
        assert_eq!(
            parse_address_list(&list(MAX_ADDRESSES + 1)).len(),
            MAX_ADDRESSES
        );
    }
}
