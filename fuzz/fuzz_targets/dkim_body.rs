//! The DKIM relaxed body canonicalizer (message bytes from the network):
//! fed in pieces of any size, it gives the hash it gives fed whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::dkim::BodyHasher;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let mut whole = BodyHasher::new();
    whole.update(body);
    let mut pieces = BodyHasher::new();
    for chunk in body.chunks(usize::from(piece) + 1) {
        pieces.update(chunk);
    }
    assert_eq!(whole.finish(), pieces.finish());
});
