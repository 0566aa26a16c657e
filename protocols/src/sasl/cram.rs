//! CRAM-MD5 (RFC 2195) without the password: the server keeps the MD5
//! states after HMAC's inner and outer key blocks (RFC 2104 2), and
//! finishes both hashes from there for each challenge.
//!
//! The MD5 compression function comes from the md-5 crate; only the
//! resumption (RFC 1321 3.1-3.2 padding after a known prefix) is here.

use md5::block_api::compress;
use serde::{Deserialize, Serialize};

use super::scram::constant_time_eq;
use super::SaslError;

/// RFC 1321 3.3: MD5's initial state.
const MD5_INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
/// HMAC's block size for MD5 (RFC 2104 2).
const BLOCK: usize = 64;
/// Longest CRAM-MD5 response (`user SP 32 hex digits`) accepted.
pub const MAX_CRAM_RESPONSE: usize = 1024;

/// The MD5 states after `K XOR ipad` and `K XOR opad` (RFC 2104 2), the
/// only thing kept for CRAM-MD5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CramMd5Secret {
    pub inner: [u32; 4],
    pub outer: [u32; 4],
}

impl CramMd5Secret {
    pub fn derive(password: &str) -> CramMd5Secret {
        CramMd5Secret::from_key(password.as_bytes())
    }

    fn from_key(key: &[u8]) -> CramMd5Secret {
        // RFC 2104 2: a key longer than the block is hashed first.
        let key: Vec<u8> = if key.len() > BLOCK {
            md5_from(MD5_INIT, 0, key).to_vec()
        } else {
            key.to_vec()
        };
        let pad = |byte: u8| {
            let mut block = [byte; BLOCK];
            for (b, k) in block.iter_mut().zip(&key) {
                *b ^= k;
            }
            let mut state = MD5_INIT;
            compress(&mut state, &[block]);
            state
        };
        CramMd5Secret {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC-MD5 of `data` under the password this secret came from.
    pub fn hmac(&self, data: &[u8]) -> [u8; 16] {
        let inner = md5_from(self.inner, BLOCK as u64, data);
        md5_from(self.outer, BLOCK as u64, &inner)
    }
}

/// Finishes an MD5 whose first `done` octets (a multiple of 64) left
/// `state`, over `data` (RFC 1321 3.1-3.5).
fn md5_from(mut state: [u32; 4], done: u64, data: &[u8]) -> [u8; 16] {
    let mut blocks = data.chunks_exact(BLOCK);
    for block in blocks.by_ref() {
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(block);
        compress(&mut state, &[b]);
    }
    let rest = blocks.remainder();
    let bits = (done + data.len() as u64).wrapping_mul(8);
    let mut tail = [0u8; 2 * BLOCK];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < BLOCK - 8 {
        BLOCK
    } else {
        2 * BLOCK
    };
    tail[len - 8..len].copy_from_slice(&bits.to_le_bytes());
    for block in tail[..len].chunks_exact(BLOCK) {
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(block);
        compress(&mut state, &[b]);
    }
    let mut out = [0u8; 16];
    for (o, word) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// RFC 2195 2: the client's answer, `username SP digest` with the digest
/// in 32 lowercase hex digits.
pub fn parse_response(msg: &[u8]) -> Result<(String, [u8; 16]), SaslError> {
    if msg.len() > MAX_CRAM_RESPONSE {
        return Err(SaslError::TooLong {
            max: MAX_CRAM_RESPONSE,
        });
    }
    let msg = std::str::from_utf8(msg).map_err(|_| SaslError::Utf8)?;
    let (user, hex) = msg.rsplit_once(' ').ok_or(SaslError::Malformed)?;
    if user.is_empty() {
        return Err(SaslError::EmptyAuthcid);
    }
    if hex.len() != 32 {
        return Err(SaslError::Malformed);
    }
    let mut digest = [0u8; 16];
    for (d, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| SaslError::Malformed)?;
        *d = u8::from_str_radix(s, 16).map_err(|_| SaslError::Malformed)?;
    }
    Ok((user.to_string(), digest))
}

/// Checks a client's digest of `challenge`.
pub fn verify(secret: &CramMd5Secret, challenge: &[u8], digest: &[u8; 16]) -> bool {
    constant_time_eq(&secret.hmac(challenge), digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 16]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc2195_example() {
        let secret = CramMd5Secret::derive("tanstaaftanstaaf");
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            hex(secret.hmac(challenge)),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        let (user, digest) = parse_response(b"tim b913a602c7eda7a495b4e6e7334d3890").unwrap();
        assert_eq!(user, "tim");
        assert!(verify(&secret, challenge, &digest));
        assert!(!verify(
            &CramMd5Secret::derive("tanstaaf"),
            challenge,
            &digest
        ));
    }

    #[test]
    fn rfc2202_hmac_md5_vectors() {
        // RFC 2202 2, test cases 2 and 6 (a key longer than the block),
        // and data long enough to need a second padding block.
        let s = CramMd5Secret::derive("Jefe");
        assert_eq!(
            hex(s.hmac(b"what do ya want for nothing?")),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        let s = CramMd5Secret::from_key(&[0xaa; 80]);
        assert_eq!(
            hex(s.hmac(b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
        );
        // A key of exactly one block is used as it is; 119 octets of data
        // end one short of a block boundary after the key block.
        let s = CramMd5Secret::derive(&"k".repeat(64));
        assert_eq!(
            hex(s.hmac(&[b'x'; 119])),
            "168c8b33ae2d424cf2d5aea6b155030d"
        );
    }

    #[test]
    fn md5_known_values() {
        // RFC 1321 A.5.
        assert_eq!(
            hex(md5_from(MD5_INIT, 0, b"")),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            hex(md5_from(MD5_INIT, 0, b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex(md5_from(
                MD5_INIT,
                0,
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        // 56 octets: the length no longer fits, a second block is needed.
        assert_eq!(
            hex(md5_from(MD5_INIT, 0, &[b'a'; 56])),
            "3b0c8ac703f828b04c6c197006d17218"
        );
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(b"a b c 00000000000000000000000000000000")
                .unwrap()
                .0,
            "a b c"
        );
        for bad in [
            &b"tim"[..],
            b"tim b913a602c7eda7a495b4e6e7334d389",
            b"tim b913a602c7eda7a495b4e6e7334d38zz",
            b" b913a602c7eda7a495b4e6e7334d3890",
        ] {
            assert!(parse_response(bad).is_err());
        }
        let at = format!("{} {}", "u".repeat(MAX_CRAM_RESPONSE - 33), "0".repeat(32));
        assert!(parse_response(at.as_bytes()).is_ok());
        let over = format!("u{at}");
        assert_eq!(
            parse_response(over.as_bytes()),
            Err(SaslError::TooLong {
                max: MAX_CRAM_RESPONSE
            })
        );
    }
}
