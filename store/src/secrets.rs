//! Password secrets: an argon2id PHC string for plain logins (IMAP LOGIN,
//! SASL PLAIN, the web pages) and the SCRAM keys of RFC 5802 for
//! SCRAM-SHA-1 and RFC 7677 SCRAM-SHA-256, and the HMAC states of RFC 2195
//! CRAM-MD5. The password itself is never stored. The SASL exchange and
//! the SCRAM and CRAM-MD5 arithmetic live in roost-protocols; this module
//! only derives what is kept at rest and checks the argon2id hash.
//!
//! Callers pass the password already prepared (RFC 5802 2.2 SASLprep /
//! RFC 8265 OpaqueString); both argon2 and SCRAM use the same bytes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use roost_protocols::sasl::{CramMd5Secret, ScramSecret};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// RFC 7677 4: at least 4096 PBKDF2 iterations.
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Bytes of random salt for SCRAM and argon2.
pub const SALT_LEN: usize = 16;

/// Where salts come from.
const RANDOM_SOURCE: &str = "/dev/urandom";

/// What is stored for a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordSecrets {
    /// The argon2id PHC string (`$argon2id$v=19$m=...`).
    pub argon2id: String,
    pub scram_sha1: ScramSecret,
    pub scram_sha256: ScramSecret,
    /// RFC 2195 CRAM-MD5's HMAC states; absent for passwords set before
    /// roost kept them (CRAM-MD5 then fails at once for the account).
    #[serde(default)]
    pub cram_md5: Option<CramMd5Secret>,
}

impl PasswordSecrets {
    /// Derives every secret from `password` with fresh random salts.
    pub fn derive(password: &str) -> Result<PasswordSecrets> {
        let argon_salt = random_bytes(SALT_LEN)?;
        let salt = SaltString::encode_b64(&argon_salt)
            .map_err(|e| StoreError::Invalid(format!("argon2 salt: {e}")))?;
        let argon2id = hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| StoreError::Invalid(format!("argon2: {e}")))?
            .to_string();
        // RFC 5802 2.2: SCRAM clients hash the SASLprep form.
        let scram = roost_protocols::precis::scram_password(password);
        Ok(PasswordSecrets {
            argon2id,
            scram_sha1: ScramSecret::sha1(&scram, &random_bytes(SALT_LEN)?, SCRAM_ITERATIONS),
            scram_sha256: ScramSecret::sha256(&scram, &random_bytes(SALT_LEN)?, SCRAM_ITERATIONS),
            cram_md5: Some(CramMd5Secret::derive(password)),
        })
    }

    /// Checks `password` against the argon2id hash. The parameters come
    /// from the PHC string, so hashes made with other costs still verify.
    pub fn verify_password(&self, password: &str) -> bool {
        let Ok(hash) = PasswordHash::new(&self.argon2id) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    }
}

/// The argon2id hasher: the crate's default cost in production, the
/// smallest cost the algorithm allows in unit tests.
fn hasher() -> Result<Argon2<'static>> {
    let params = if cfg!(test) {
        Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None)
    } else {
        Ok(Params::default())
    }
    .map_err(|e| StoreError::Invalid(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// `n` bytes from the system's random source.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open(RANDOM_SOURCE)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| StoreError::io(RANDOM_SOURCE, e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_then_verify() {
        let s = PasswordSecrets::derive("correct horse").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.argon2id.starts_with("$argon2id$"));
        assert!(s.verify_password("correct horse"));
        assert!(!s.verify_password("correct horsE"));
        assert!(!s.verify_password(""));
        assert_eq!(s.scram_sha1.iterations, SCRAM_ITERATIONS);
        assert_eq!(s.scram_sha1.salt.len(), SALT_LEN);
        assert_eq!(s.scram_sha1.stored_key.len(), 20);
        assert_eq!(s.scram_sha256.stored_key.len(), 32);
        assert_ne!(s.scram_sha1.salt, s.scram_sha256.salt);
        assert_eq!(s.cram_md5, Some(CramMd5Secret::derive("correct horse")));
        let again = PasswordSecrets::derive("correct horse").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(s.argon2id, again.argon2id, "salts are fresh");
    }

    #[test]
    fn garbage_hash_never_verifies() {
        let mut s = PasswordSecrets::derive("x").unwrap_or_else(|e| panic!("{e}"));
        s.argon2id = "not a phc string".into();
        assert!(!s.verify_password("x"));
    }
}
