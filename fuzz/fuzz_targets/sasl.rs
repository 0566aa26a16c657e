//! SASL messages a client sends: base64, PLAIN credentials, the PRECIS
//! preparation of names and passwords, and whole exchanges of every
//! mechanism (SCRAM and CRAM-MD5 parsing and proof checks included).
//!
//! Input: the first byte picks the mechanism and whether the first
//! message is an initial response; the rest is the client's messages,
//! one per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::precis::{normalize_username, prepare_password};
use roost_protocols::sasl::{
    decode_base64, decode_plain, ChannelBinding, CramMd5Secret, Exchange, Mechanism, ScramHash,
    ScramSecret, Secret, SecretKind, Step,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decode_base64(&text);
    if let Ok(creds) = decode_plain(&text) {
        let _ = format!("{creds:?}");
    }
    let _ = normalize_username(&text);
    let _ = prepare_password(&text);

    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mechanism = Mechanism::ALL[usize::from(pick) % Mechanism::ALL.len()];
    let binding = ChannelBinding {
        tls_exporter: (pick & 0x10 != 0).then(|| vec![7; 32]),
        tls_server_end_point: None,
    };
    let mut exchange = Exchange::new(mechanism, binding, vec![1; 18], "fuzz.example");
    let mut messages = rest.split(|&b| b == b'\n');
    let mut step = if pick & 0x80 != 0 {
        exchange.start(messages.next().map(<[u8]>::to_vec))
    } else {
        exchange.start(None)
    };
    // Every step either asks for more or ends; a bounded number of rounds.
    for _ in 0..16 {
        step = match step {
            Step::Challenge(_) => match messages.next() {
                Some(m) if pick & 0x20 != 0 => exchange.respond_line(&String::from_utf8_lossy(m)),
                Some(m) => exchange.respond(m),
                None => return,
            },
            Step::NeedSecret { kind, .. } => exchange.secret(Some(match kind {
                // One iteration: the arithmetic is the same, and fast.
                SecretKind::Scram(ScramHash::Sha1) => {
                    Secret::Scram(ScramSecret::sha1("pw", b"salt", 1))
                }
                SecretKind::Scram(ScramHash::Sha256) => {
                    Secret::Scram(ScramSecret::sha256("pw", b"salt", 1))
                }
                SecretKind::CramMd5 => Secret::CramMd5(CramMd5Secret::derive("pw")),
            })),
            _ => return,
        };
    }
});
