//! The IMAP framer, fed the input in pieces whose sizes the input's first
//! byte chooses; every event is drained after each piece, as the session
//! does, and APPEND message literals are accepted or refused as the first
//! byte's top bit says. What it keeps must stay bounded and nothing may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::framer::{FrameEvent, Framer, MAX_COMMAND_SIZE, MAX_LINE_LENGTH};

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split % 64) + 1;
    let accept = split & 0x80 != 0;
    let mut framer = Framer::new();
    for chunk in input.chunks(piece) {
        framer.feed(chunk);
        while let Some(event) = framer.next_event() {
            match event {
                FrameEvent::Command(c) => assert!(c.len() <= MAX_COMMAND_SIZE),
                FrameEvent::LiteralData(d) => assert!(d.len() <= piece + MAX_LINE_LENGTH),
                FrameEvent::AppendLiteral { head, .. } => {
                    assert!(head.len() <= MAX_COMMAND_SIZE);
                    if accept {
                        framer.accept_literal();
                    } else {
                        framer.refuse_literal();
                    }
                }
                _ => {}
            }
        }
        // What it keeps unframed is at most one unfinished line.
        assert!(framer.pending_bytes() <= MAX_LINE_LENGTH + 1 + piece);
    }
});
