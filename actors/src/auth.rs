//! Password checks shared by the IMAP and SMTP sessions.
//!
//! Usernames are normalised (RFC 8265 via `roost_protocols::precis`) and
//! looked up by primary or extra address; the argon2id check runs on the
//! blocking pool so a login never stalls other sessions. A failed attempt
//! costs the client [`AUTH_FAILURE_DELAY`], and a session gets
//! [`MAX_AUTH_FAILURES`] tries before it is closed.

use roost_protocols::precis::{normalize_username, prepare_password};
use roost_store::Store;
use std::time::Duration;

/// Failed authentications one session may make before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;
/// The pause after a failed authentication, to slow password guessing.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(500);

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
        if !record.password.verify_password(&password) {
            return Err(AuthError::Invalid);
        }
        if let Some(why) = record.disabled {
            return Err(AuthError::Disabled(why));
        }
        Ok(record.name)
    })
    .await
    .map_err(|e| AuthError::Temporary(e.to_string()))?
}
