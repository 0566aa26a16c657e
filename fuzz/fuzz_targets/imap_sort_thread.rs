//! SORT and THREAD criteria (RFC 5256, 5957, ESORT's RETURN, PARTIAL
//! ranges) on arbitrary arguments: a command or a protocol error, never a
//! panic; a PARTIAL range accepted is ordered and starts at 1 or more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::command::CommandBody;
use roost_protocols::imap::parser::parse_command;
use roost_protocols::imap::search::SearchReturn;

fuzz_target!(|data: &[u8]| {
    for prefix in [
        &b"a SORT "[..],
        b"a UID SORT RETURN (",
        b"a THREAD ",
        b"a SEARCH RETURN (",
    ] {
        let line = [prefix, data].concat();
        let returns = match parse_command(&line).map(|c| c.body) {
            Ok(CommandBody::Sort { sort, .. }) => {
                assert!(!sort.criteria.is_empty());
                sort.returns
            }
            Ok(CommandBody::Search { program, .. }) => program.returns,
            _ => None,
        };
        if let Some(r) = returns.as_deref().and_then(SearchReturn::partial) {
            assert!(r.first >= 1 && r.first <= r.last);
        }
    }
});
