//! The SMTP command-line parser: a command or a reply, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::smtp::command::parse_command;

fuzz_target!(|data: &[u8]| {
    let _ = parse_command(data);
});
