//! The parts of an APPEND around its message literals: the first head,
//! MULTIAPPEND's later heads, CATENATE segments and URLs, and date-times,
//! on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::append::{
    is_message_position, parse_date_time, parse_first_head, parse_next_head, parse_whole,
};
use roost_protocols::imap::catenate::{parse_url, AppendItem, AppendState};
use roost_protocols::message::date::days_from_civil;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = parse_first_head(data) {
        assert!(is_message_position(data));
        assert!(!head.tag.is_empty());
    }
    // CATENATE (RFC 4469): segments from each state, as heads and as
    // the last segment; URLs on their own.
    for state in [
        AppendState::Between,
        AppendState::InParts {
            first: true,
            parts: 0,
        },
        AppendState::InParts {
            first: false,
            parts: 1,
        },
    ] {
        for head in [true, false] {
            if let Ok((items, _)) = parse_next_head(data, state, head) {
                let last = items.last();
                if head {
                    assert!(matches!(last, Some(AppendItem::Text | AppendItem::Literal)));
                }
            }
        }
    }
    let _ = parse_whole(data);
    let _ = parse_url(&String::from_utf8_lossy(data));
    if let Some(t) = parse_date_time(data) {
        // Years are four digits and zones at most 99:59: the time stays
        // within those years, give or take a zone.
        let slack = 100 * 3600;
        let first = days_from_civil(0, 1, 1) * 86_400 - slack;
        let last = days_from_civil(10_000, 1, 1) * 86_400 + slack;
        assert!((first..last).contains(&t));
    }
});
