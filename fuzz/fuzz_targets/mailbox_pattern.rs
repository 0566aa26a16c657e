//! LIST patterns against mailbox names: the input is `pattern NUL name`.
//! Matching must answer (linear time) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::pattern::MailboxPattern;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\0').unwrap_or((&text, "INBOX"));
    if let Ok(p) = MailboxPattern::new(pattern, b'/') {
        let _ = p.matches(name);
    }
});
