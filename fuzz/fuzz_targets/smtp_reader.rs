//! The SMTP input reader (command lines, the DATA reader and BDAT chunks), fed in
//! pieces, answering DATA the way the session does (accept or reject by
//! the input's first byte). What it buffers must stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::smtp::command::Command;
use roost_protocols::smtp::conn::{Event, SmtpReader, DATA_CHUNK, MAX_BUFFERED};

fuzz_target!(|data: &[u8]| {
    let Some((&choices, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(choices % 32) + 1;
    let accept = choices & 0x80 != 0;
    let mut reader = SmtpReader::new(4096);
    for chunk in input.chunks(piece) {
        reader.feed(chunk);
        loop {
            if reader.awaiting_data() {
                if accept {
                    reader.begin_data();
                } else {
                    reader.reject_data();
                }
            }
            match reader.next_event() {
                Some(Event::Data(d)) => assert!(d.len() <= DATA_CHUNK),
                Some(Event::Command(Command::Quit)) => return,
                Some(_) => {}
                None => break,
            }
        }
        if !reader.awaiting_data() {
            assert!(reader.buffered() <= MAX_BUFFERED);
        }
    }
});
