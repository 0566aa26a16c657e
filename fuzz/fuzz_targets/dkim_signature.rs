//! DKIM-Signature fields and key records from the network: reading them
//! and building the header data a signature covers never panics, reads at
//! most MAX_SIGNATURES, and gives data that ends with the signature field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::dkim_verify::{
    header_data, parse_key_record, rsa_public_key, signatures, MAX_SIGNATURES,
};

fuzz_target!(|data: &[u8]| {
    let sigs = signatures(data);
    assert!(sigs.len() <= MAX_SIGNATURES);
    for sig in sigs.iter().flatten() {
        let covered = header_data(data, sig);
        assert!(!covered.ends_with(b"\r\n"));
    }
    let _ = parse_key_record(&String::from_utf8_lossy(data));
    let _ = rsa_public_key(data);
});
