//! Finding an account's actor by its registered name.
//!
//! Sessions never keep an account actor's reference for long: a restarted
//! account actor is a new actor under the same name, so each call looks the
//! name up again. While a restart is pending (backoff), the lookup waits a
//! little before it gives up with `Unavailable`.

use crate::account::AccountMsg;
use ractor::{ActorRef, RpcReplyPort};
use std::time::Duration;

/// How long a caller waits for a restarting account actor to reappear.
pub const ACCOUNT_LOOKUP_WAIT: Duration = Duration::from_secs(5);
/// How long one call to an account actor may take before the caller gives
/// up (a group commit under heavy load stays far below this).
pub const ACCOUNT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub fn account_actor_name(account: &str) -> String {
    format!("account:{account}")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("account {0} is not available right now")]
    Unavailable(String),
    #[error("account {0} did not answer in time")]
    Timeout(String),
}

/// The live actor of `account`, waiting up to [`ACCOUNT_LOOKUP_WAIT`].
pub async fn account_ref(account: &str) -> Result<ActorRef<AccountMsg>, CallError> {
    let name = account_actor_name(account);
    let deadline = tokio::time::Instant::now() + ACCOUNT_LOOKUP_WAIT;
    loop {
        if let Some(cell) = ractor::registry::where_is(name.clone()) {
            return Ok(cell.into());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CallError::Unavailable(account.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls the account's actor with a message built around a reply port.
/// A call that finds no live actor, or whose actor dies before it answers,
/// fails with `Unavailable`: nothing was acknowledged, so the client may
/// simply try again.
pub async fn call_account<R, F>(account: &str, build: F) -> Result<R, CallError>
where
    R: Send + 'static,
    F: FnOnce(RpcReplyPort<R>) -> AccountMsg,
{
    let actor = account_ref(account).await?;
    match actor.call(build, Some(ACCOUNT_CALL_TIMEOUT)).await {
        Ok(ractor::rpc::CallResult::Success(r)) => Ok(r),
        Ok(ractor::rpc::CallResult::Timeout) => Err(CallError::Timeout(account.to_string())),
        Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
            Err(CallError::Unavailable(account.to_string()))
        }
    }
}
