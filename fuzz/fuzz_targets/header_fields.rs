//! Header reading: where the header ends, its fields, decoded values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::header::{fields, header_end, header_value, MAX_HEADER_FIELDS};

fuzz_target!(|data: &[u8]| {
    let end = header_end(data);
    assert!(end <= data.len());
    assert!(fields(data).len() <= MAX_HEADER_FIELDS);
    let _ = header_value(data, "Subject");
    let _ = header_value(data, "Content-Type");
});
