//! NOTIFY (RFC 5465) on arbitrary arguments: a command or a protocol
//! error, never a panic; a NOTIFY SET has at least one event group, and
//! checking its groups never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::command::CommandBody;
use roost_protocols::imap::notify::{check_group, NotifyCommand};
use roost_protocols::imap::parser::parse_command;

fuzz_target!(|data: &[u8]| {
    let line = [&b"a NOTIFY "[..], data].concat();
    if let Ok(CommandBody::Notify(NotifyCommand::Set { groups, .. })) =
        parse_command(&line).map(|c| c.body)
    {
        assert!(!groups.is_empty());
        for g in &groups {
            let _ = check_group(g);
        }
    }
});
