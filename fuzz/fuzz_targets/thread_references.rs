//! THREAD=REFERENCES over arbitrary headers (one message per NUL-separated
//! piece): every message appears exactly once, the lists balance, and
//! nothing loops, recurses without bound or panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::references::{references, ThreadInput};
use roost_protocols::message::thread::ThreadKeys;

fuzz_target!(|data: &[u8]| {
    let messages: Vec<ThreadInput> = data
        .split(|&b| b == 0)
        .take(500)
        .enumerate()
        .map(|(i, header)| ThreadInput {
            number: i as u32 + 1,
            keys: ThreadKeys::from_header(header),
            date: i64::from(header.first().copied().unwrap_or(0)),
        })
        .collect();
    let text = references(&messages).response();
    let mut depth = 0i64;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0, "{text}");
    }
    assert_eq!(depth, 0, "{text}");
    let mut seen: Vec<u32> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("number"))
        .collect();
    seen.sort_unstable();
    let all: Vec<u32> = (1..=messages.len() as u32).collect();
    assert_eq!(seen, all, "{text}");
});
