//! Threading keys (Message-ID, In-Reply-To, References, base subject)
//! from arbitrary headers: bounded lists, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::thread::{base_subject, ThreadKeys, MAX_REFERENCES};

fuzz_target!(|data: &[u8]| {
    let keys = ThreadKeys::from_header(data);
    assert!(keys.references.len() <= MAX_REFERENCES);
    let _ = base_subject(&String::from_utf8_lossy(data));
});
