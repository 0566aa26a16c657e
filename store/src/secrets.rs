//! Password secrets: an argon2id PHC string for plain logins (IMAP LOGIN,
//! SASL PLAIN, the web pages) and the SCRAM keys of RFC 5802 for
//! SCRAM-SHA-1 and RFC 7677 SCRAM-SHA-256. The password itself is never
//! stored. The SASL exchange lives in roost-protocols; this module only
//! derives and checks what is kept at rest.
//!
//! Callers pass the password already prepared (RFC 5802 2.2 SASLprep /
//! RFC 8265 OpaqueString); both argon2 and SCRAM use the same bytes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::KeyInit;
use hmac::{Mac, SimpleHmac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

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
}

/// RFC 5802 3: what a SCRAM server keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramSecret {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
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
        Ok(PasswordSecrets {
            argon2id,
            scram_sha1: ScramSecret::sha1(password, &random_bytes(SALT_LEN)?, SCRAM_ITERATIONS),
            scram_sha256: ScramSecret::sha256(password, &random_bytes(SALT_LEN)?, SCRAM_ITERATIONS),
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

impl ScramSecret {
    /// RFC 5802 3 with SHA-1.
    pub fn sha1(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        derive_scram::<Sha1>(password, salt, iterations)
    }

    /// RFC 7677 3 with SHA-256.
    pub fn sha256(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        derive_scram::<Sha256>(password, salt, iterations)
    }
}

// RFC 5802 3:
//   SaltedPassword := Hi(Normalize(password), salt, i)
//   ClientKey      := HMAC(SaltedPassword, "Client Key")
//   StoredKey      := H(ClientKey)
//   ServerKey      := HMAC(SaltedPassword, "Server Key")
fn derive_scram<D>(password: &str, salt: &[u8], iterations: u32) -> ScramSecret
where
    D: ScramHash,
{
    let mut salted = vec![0u8; <D as Digest>::output_size()];
    // Hi() of RFC 5802 2.2 is PBKDF2 with HMAC as the PRF. It only fails
    // for an HMAC key it cannot take, and HMAC takes any key.
    if pbkdf2::pbkdf2::<SimpleHmac<D>>(password.as_bytes(), salt, iterations, &mut salted).is_err()
    {
        salted.clear();
    }
    let client_key = hmac_of::<D>(&salted, b"Client Key");
    let server_key = hmac_of::<D>(&salted, b"Server Key");
    ScramSecret {
        salt: salt.to_vec(),
        iterations,
        stored_key: D::digest(&client_key).to_vec(),
        server_key,
    }
}

/// The hash functions SCRAM is used with here (SHA-1, SHA-256).
pub(crate) trait ScramHash: Digest + BlockSizeUser + Clone + Sync {}
impl<D: Digest + BlockSizeUser + Clone + Sync> ScramHash for D {}

fn hmac_of<D: ScramHash>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so the error arm is unreachable.
    match <SimpleHmac<D> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            Mac::update(&mut mac, data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
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
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    fn b64(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap_or_default()
    }

    /// Checks a stored secret against a published exchange: the ServerKey
    /// must reproduce the server signature and the StoredKey must accept the
    /// client proof (RFC 5802 3, server side).
    fn check_exchange<D: ScramHash>(
        secret: &ScramSecret,
        auth_message: &str,
        proof: &str,
        server_sig: &str,
    ) {
        let sig = hmac_of::<D>(&secret.server_key, auth_message.as_bytes());
        assert_eq!(B64.encode(sig), server_sig);
        let client_sig = hmac_of::<D>(&secret.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = b64(proof)
            .iter()
            .zip(&client_sig)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(D::digest(&client_key).to_vec(), secret.stored_key);
    }

    #[test]
    fn scram_sha256_matches_rfc7677_example() {
        // RFC 7677 3.
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let secret = ScramSecret::sha256("pencil", &b64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
        let auth = format!(
            "n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
        );
        check_exchange::<Sha256>(
            &secret,
            &auth,
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    #[test]
    fn scram_sha1_matches_rfc5802_example() {
        // RFC 5802 5.
        let nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let secret = ScramSecret::sha1("pencil", &b64("QSXCR+Q6sek8bf92"), 4096);
        let auth = format!(
            "n=user,r=fyko+d2lbbFgONRv9qkxdawL,r={nonce},s=QSXCR+Q6sek8bf92,i=4096,c=biws,r={nonce}"
        );
        check_exchange::<Sha1>(
            &secret,
            &auth,
            "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

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
