//! SASL messages a client sends: base64, PLAIN credentials, and the
//! PRECIS preparation of the names and passwords in them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::precis::{normalize_username, prepare_password};
use roost_protocols::sasl::{decode_base64, decode_plain};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decode_base64(&text);
    if let Ok(creds) = decode_plain(&text) {
        let _ = format!("{creds:?}");
    }
    let _ = normalize_username(&text);
    let _ = prepare_password(&text);
});
