//! Password checks shared by the IMAP and SMTP sessions.
//!
//! Usernames are normalised (RFC 8265 via `roost_protocols::precis`) and
//! looked up by primary or extra address; the argon2id check runs on the
//! blocking pool so a login never stalls other sessions. A failed attempt
//! costs the client [`AUTH_FAILURE_DELAY`], and a session gets
//! [`MAX_AUTH_FAILURES`] tries before it is closed.
//!
//! Repeat logins are cheap: a successful verification is remembered in
//! memory (never on disk), under a key hashed from a per-process random
//! secret, the username, the account's stored argon2 string and the
//! password, for at most [`LOGIN_CACHE_AGE`] and [`LOGIN_CACHE_ENTRIES`]
//! entries. A changed password changes the stored string, so its old
//! entries never match again; a disabled account is refused from its
//! record, read at every login; failures are never remembered.

use roost_protocols::precis::{normalize_username, prepare_password};
use roost_store::Store;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Failed authentications one session may make before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;
/// The pause after a failed authentication, to slow password guessing.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Successful verifications remembered at most.
pub const LOGIN_CACHE_ENTRIES: usize = 10_000;
/// How long a remembered verification stands.
pub const LOGIN_CACHE_AGE: Duration = Duration::from_secs(15 * 60);

/// Remembered successful verifications; see the module documentation.
struct LoginCache {
    secret: Vec<u8>,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    hits: AtomicU64,
}

fn cache() -> &'static LoginCache {
    static CACHE: OnceLock<LoginCache> = OnceLock::new();
    CACHE.get_or_init(|| LoginCache {
        // Without the system's random source, a fresh secret per process
        // from the clock and address space is still unguessable enough for
        // an in-memory key; it is never stored or sent.
        secret: roost_store::random_bytes(32).unwrap_or_else(|_| {
            let mut h = Sha256::new();
            h.update(format!("{:?}{:p}", Instant::now(), &h).as_bytes());
            h.finalize().to_vec()
        }),
        entries: Mutex::new(HashMap::new()),
        hits: AtomicU64::new(0),
    })
}

impl LoginCache {
    fn key(&self, username: &str, stored: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            self.secret.as_slice(),
            username.as_bytes(),
            stored.as_bytes(),
            password.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn knows(&self, key: &[u8; 32], now: Instant) -> bool {
        let known = self
            .entries()
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < LOGIN_CACHE_AGE);
        if known {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        known
    }

    fn remember(&self, key: [u8; 32], now: Instant) {
        let mut entries = self.entries();
        if entries.len() >= LOGIN_CACHE_ENTRIES {
            entries.retain(|_, at| now.duration_since(*at) < LOGIN_CACHE_AGE);
        }
        if entries.len() >= LOGIN_CACHE_ENTRIES {
            // Still full of fresh entries: the oldest goes.
            if let Some(oldest) = entries.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, now);
    }
}

/// How many logins were answered from remembered verifications since the
/// process started.
pub fn login_cache_hits() -> u64 {
    cache().hits.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("invalid credentials")]
    Invalid,
    #[error("login disabled: {0}")]
    Disabled(String),
    #[error("temporary failure: {0}")]
    Temporary(String),
}

/// Checks `username`/`password`; on success returns the account's name.
pub async fn verify_password(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<String, AuthError> {
    let result = check(store, username, password).await;
    if result == Err(AuthError::Invalid) {
        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
    }
    result
}

async fn check(store: &Store, username: &str, password: &str) -> Result<String, AuthError> {
    let username = normalize_username(username).map_err(|_| AuthError::Invalid)?;
    let password = prepare_password(password).map_err(|_| AuthError::Invalid)?;
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let record = store
            .account_by_address(&username)
            .map_err(|e| AuthError::Temporary(e.to_string()))?
            .ok_or(AuthError::Invalid)?;
        let cache = cache();
        let key = cache.key(&username, &record.password.argon2id, &password);
        let now = Instant::now();
        if !cache.knows(&key, now) {
            if !record.password.verify_password(&password) {
                return Err(AuthError::Invalid);
            }
            cache.remember(key, now);
        }
        if let Some(why) = record.disabled {
            return Err(AuthError::Disabled(why));
        }
        Ok(record.name)
    })
    .await
    .map_err(|e| AuthError::Temporary(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(n as u64).to_be_bytes());
        k
    }

    #[test]
    fn keys_depend_on_every_part() {
        let c = cache();
        let base = c.key("a@b", "$argon2id$x", "pw");
        assert_ne!(base, c.key("a@b", "$argon2id$y", "pw"));
        assert_ne!(base, c.key("a@c", "$argon2id$x", "pw"));
        assert_ne!(base, c.key("a@b", "$argon2id$x", "pw2"));
        // Lengths are hashed too: parts cannot slide into one another.
        assert_ne!(c.key("ab", "", "c"), c.key("a", "b", "c"));
    }

    #[test]
    fn entries_are_bounded_and_age_out() {
        let c = LoginCache {
            secret: vec![1; 32],
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
        };
        let t0 = Instant::now();
        for n in 0..LOGIN_CACHE_ENTRIES {
            c.remember(key(n), t0 + Duration::from_nanos(n as u64));
        }
        assert_eq!(c.entries().len(), LOGIN_CACHE_ENTRIES);
        assert!(c.knows(&key(0), t0));
        // One past the limit: the oldest goes.
        c.remember(key(LOGIN_CACHE_ENTRIES), t0 + Duration::from_secs(1));
        assert_eq!(c.entries().len(), LOGIN_CACHE_ENTRIES);
        assert!(!c.knows(&key(0), t0 + Duration::from_secs(1)));
        assert!(c.knows(&key(1), t0 + Duration::from_secs(1)));
        // At the age limit an entry no longer stands.
        assert!(!c.knows(&key(1), t0 + LOGIN_CACHE_AGE + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn repeat_logins_are_remembered_until_the_password_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .create_account("cache@example.org", "first-secret", None)
            .unwrap();
        let hits = login_cache_hits();
        let ok = |r: Result<String, AuthError>| r.unwrap();
        ok(verify_password(&store, "cache@example.org", "first-secret").await);
        assert_eq!(login_cache_hits(), hits);
        ok(verify_password(&store, "cache@example.org", "first-secret").await);
        assert_eq!(login_cache_hits(), hits + 1);
        // A wrong password is never remembered, and still fails.
        for _ in 0..2 {
            assert_eq!(
                verify_password(&store, "cache@example.org", "wrong").await,
                Err(AuthError::Invalid)
            );
        }
        assert_eq!(login_cache_hits(), hits + 1);
        // A new password: the old one fails at once, and is not a hit.
        store
            .set_password("cache@example.org", "second-secret")
            .unwrap();
        assert_eq!(
            verify_password(&store, "cache@example.org", "first-secret").await,
            Err(AuthError::Invalid)
        );
        assert_eq!(login_cache_hits(), hits + 1);
        ok(verify_password(&store, "cache@example.org", "second-secret").await);
        ok(verify_password(&store, "cache@example.org", "second-secret").await);
        assert_eq!(login_cache_hits(), hits + 2);
    }
}
