//! The IMAP framer, fed the input in pieces whose sizes the input's first
//! byte chooses; every event is drained after each piece, as the session
//! does. What it keeps must stay bounded and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::framer::{FrameEvent, Framer, MAX_COMMAND_SIZE, MAX_LINE_LENGTH};

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split % 64) + 1;
    let mut framer = Framer::new();
    for chunk in input.chunks(piece) {
        framer.feed(chunk);
        while let Some(event) = framer.next_event() {
            if let FrameEvent::Command(c) = event {
                assert!(c.len() <= MAX_COMMAND_SIZE);
            }
        }
        // What it keeps unframed is at most one unfinished line.
        assert!(framer.pending_bytes() <= MAX_LINE_LENGTH + 1 + piece);
    }
});
