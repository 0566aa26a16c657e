//! The IMAP command parser on arbitrary framed commands: a command or a
//! protocol error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::parser::parse_command;

fuzz_target!(|data: &[u8]| {
    let _ = parse_command(data);
});
