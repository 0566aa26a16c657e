//! LIST patterns against mailbox names: the input is `pattern NUL name`.
//! Matching must answer without panicking, and for inputs small enough
//! for a plain backtracking matcher, agree with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::pattern::MailboxPattern;

/// The definition of `*` and `%` (RFC 9051 6.3.9), by backtracking.
fn reference(p: &[u8], n: &[u8]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => (0..=n.len()).any(|i| reference(&p[1..], &n[i..])),
        Some(b'%') => {
            let stop = n.iter().position(|&b| b == b'/').unwrap_or(n.len());
            (0..=stop).any(|i| reference(&p[1..], &n[i..]))
        }
        Some(&c) => n.first() == Some(&c) && reference(&p[1..], &n[1..]),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\0').unwrap_or((&text, "INBOX"));
    let Ok(p) = MailboxPattern::new(pattern, b'/') else {
        return;
    };
    let found = p.matches(name);
    let wildcards = pattern.bytes().filter(|b| matches!(b, b'*' | b'%')).count();
    let inbox_folded = pattern.len() >= 5 && pattern.as_bytes()[..5].eq_ignore_ascii_case(b"INBOX");
    if wildcards <= 4 && name.len() <= 64 && !inbox_folded {
        assert_eq!(found, reference(pattern.as_bytes(), name.as_bytes()));
    }
});
