//! GETMETADATA, SETMETADATA and LIST's METADATA return option on
//! arbitrary arguments: every entry name accepted is lower-case, under
//! /private or /shared, and passes the name check again; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::command::CommandBody;
use roost_protocols::imap::metadata::{entry_name, MAX_ENTRY_NAME};
use roost_protocols::imap::parser::parse_command;

fn check(name: &str) {
    assert!(name.len() <= MAX_ENTRY_NAME);
    assert_eq!(name, name.to_ascii_lowercase());
    assert!(name.starts_with("/private") || name.starts_with("/shared"));
    assert_eq!(entry_name(name.as_bytes()).as_deref(), Ok(name));
}

fuzz_target!(|data: &[u8]| {
    let _ = entry_name(data);
    for prefix in [
        &b"a GETMETADATA "[..],
        b"a SETMETADATA ",
        b"a LIST \"\" * RETURN (METADATA ",
    ] {
        let line = [prefix, data].concat();
        match parse_command(&line).map(|c| c.body) {
            Ok(CommandBody::GetMetadata(g)) => g.entries.iter().for_each(|e| check(e)),
            Ok(CommandBody::SetMetadata(s)) => s.entries.iter().for_each(|e| check(&e.0)),
            Ok(CommandBody::List(l)) => {
                l.returns.metadata.iter().flatten().for_each(|e| check(e))
            }
            _ => {}
        }
    }
});
