//! DKIM-Signature fields, ARC Sets and key records from the network:
//! reading them and building the header data a signature or seal covers
//! never panics, reads at most MAX_SIGNATURES signatures and MAX_ARC_SETS
//! sets, and gives data that ends with the signature field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::arc::{chain, seal_data, Chain, MAX_ARC_SETS};
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
    if let Chain::Sets(sets) = chain(data) {
        assert!(sets.len() <= MAX_ARC_SETS);
        for n in 0..sets.len() {
            assert!(!seal_data(&sets, n).ends_with(b"\r\n"));
        }
        if let Some(newest) = sets.last() {
            let _ = header_data(data, &newest.message_signature);
        }
    }
    let _ = parse_key_record(&String::from_utf8_lossy(data));
    let _ = rsa_public_key(data);
});
