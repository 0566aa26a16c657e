//! `AccountClient`: how everything outside the account actor reaches an
//! account. It is the one place that knows the actor's registered name and
//! message enum; sessions, the admin socket and delivery call typed methods.
//!
//! A client never keeps the actor's reference: a restarted account actor is
//! a new actor under the same name, so each call looks the name up again.
//! While a restart is pending (backoff), the lookup waits a little before
//! it gives up with [`CallError::Unavailable`]. This is also the seam where
//! an account living on another node would be reached.

use crate::account::{
    actor_name, AccountError, AccountMsg, CopyResult, Delivered, FlagAction, FlagsSet, NewMessage,
    OpenedMailbox,
};
use crate::mailbox::Subscriber;
use ractor::{ActorRef, RpcReplyPort};
use roost_protocols::imap::types::{Flags, ModSeq, Uid};
use roost_protocols::message::summary::Summary;
use roost_store::{FileId, MailboxId, PasswordSecrets, SpecialUse};
use std::sync::Arc;
use std::time::Duration;

/// How long a caller waits for a restarting account actor to reappear.
pub const ACCOUNT_LOOKUP_WAIT: Duration = Duration::from_secs(5);
/// How long one call to an account actor may take before the caller gives
/// up (a group commit under heavy load stays far below this).
pub const ACCOUNT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call reached no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("account {0} is not available right now")]
    Unavailable(String),
    #[error("account {0} did not answer in time")]
    Timeout(String),
}

/// Why a call failed: the account refused, or no answer came.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// The typed calls of one account.
#[derive(Debug, Clone)]
pub struct AccountClient {
    account: String,
}

impl AccountClient {
    pub fn new(account: &str) -> AccountClient {
        AccountClient {
            account: account.to_string(),
        }
    }

    /// The live actor, waiting up to [`ACCOUNT_LOOKUP_WAIT`].
    async fn actor(&self) -> Result<ActorRef<AccountMsg>, CallError> {
        let name = actor_name(&self.account);
        let deadline = tokio::time::Instant::now() + ACCOUNT_LOOKUP_WAIT;
        loop {
            if let Some(cell) = ractor::registry::where_is(name.clone()) {
                return Ok(cell.into());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CallError::Unavailable(self.account.clone()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A call whose message is built around a reply port. One that finds
    /// no live actor, or whose actor dies before it answers, fails with
    /// `Unavailable`: nothing was acknowledged, so the caller may try again.
    async fn call<R: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<Result<R, AccountError>>) -> AccountMsg,
    ) -> Result<R, ClientError> {
        let actor = self.actor().await?;
        match actor.call(build, Some(ACCOUNT_CALL_TIMEOUT)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => Ok(r?),
            Ok(ractor::rpc::CallResult::Timeout) => {
                Err(CallError::Timeout(self.account.clone()).into())
            }
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                Err(CallError::Unavailable(self.account.clone()).into())
            }
        }
    }

    /// A message that needs no answer; lost if the actor is gone.
    async fn cast(&self, msg: AccountMsg) {
        if let Ok(actor) = self.actor().await {
            let _ = actor.cast(msg);
        }
    }

    /// Adds messages, all or none (delivery, APPEND, MULTIAPPEND).
    pub async fn deliver(&self, messages: Vec<NewMessage>) -> Result<Vec<Delivered>, ClientError> {
        self.call(|reply| AccountMsg::Deliver { messages, reply })
            .await
    }

    /// RFC 5464 4.3: sets or removes METADATA entries, all or none.
    pub async fn set_metadata(
        &self,
        mailbox: Option<String>,
        entries: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), ClientError> {
        self.call(|reply| AccountMsg::SetMetadata {
            mailbox,
            entries,
            reply,
        })
        .await
    }

    /// RFC 8508: adds `message` and expunges `uid` of `mailbox`, both or
    /// neither.
    pub async fn replace(
        &self,
        message: NewMessage,
        mailbox: MailboxId,
        uid: Uid,
    ) -> Result<Delivered, ClientError> {
        let message = Box::new(message);
        self.call(|reply| AccountMsg::Replace {
            message,
            mailbox,
            uid,
            reply,
        })
        .await
    }

    pub async fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        action: FlagAction,
        flags: Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagsSet, ClientError> {
        self.call(|reply| AccountMsg::SetFlags {
            mailbox,
            uids,
            action,
            flags,
            unchanged_since,
            reply,
        })
        .await
    }

    /// Expunges the given UIDs, or every `\Deleted` message when `None`.
    pub async fn expunge(
        &self,
        mailbox: MailboxId,
        uids: Option<Vec<Uid>>,
    ) -> Result<Vec<Uid>, ClientError> {
        self.call(|reply| AccountMsg::Expunge {
            mailbox,
            uids,
            reply,
        })
        .await
    }

    /// Copies messages, or with `remove` moves them.
    pub async fn copy(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: &str,
        remove: bool,
    ) -> Result<CopyResult, ClientError> {
        let to = to.to_string();
        self.call(|reply| AccountMsg::Copy {
            from,
            uids,
            to,
            remove,
            reply,
        })
        .await
    }

    pub async fn create_mailbox(
        &self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxId, ClientError> {
        let name = name.to_string();
        self.call(|reply| AccountMsg::CreateMailbox {
            name,
            special_use,
            reply,
        })
        .await
    }

    pub async fn rename_mailbox(&self, from: &str, to: &str) -> Result<(), ClientError> {
        let (from, to) = (from.to_string(), to.to_string());
        self.call(|reply| AccountMsg::RenameMailbox { from, to, reply })
            .await
    }

    pub async fn delete_mailbox(&self, name: &str) -> Result<(), ClientError> {
        let name = name.to_string();
        self.call(|reply| AccountMsg::DeleteMailbox { name, reply })
            .await
    }

    pub async fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<(), ClientError> {
        let name = name.to_string();
        self.call(|reply| AccountMsg::SetSubscribed {
            name,
            subscribed,
            reply,
        })
        .await
    }

    /// Opens a mailbox for `subscriber`, who hears its events from then on.
    pub async fn open_mailbox(
        &self,
        name: &str,
        subscriber: Subscriber,
    ) -> Result<OpenedMailbox, ClientError> {
        let name = name.to_string();
        self.call(|reply| AccountMsg::OpenMailbox {
            name,
            subscriber,
            reply,
        })
        .await
    }

    pub async fn close_mailbox(&self, mailbox: MailboxId, subscriber: u64) {
        self.cast(AccountMsg::CloseMailbox {
            mailbox,
            subscriber,
        })
        .await;
    }

    /// Whether `bytes` more could be appended to `mailbox` now.
    pub async fn can_append(&self, mailbox: &str, bytes: u64) -> Result<(), ClientError> {
        let mailbox = mailbox.to_string();
        self.call(|reply| AccountMsg::CanAppend {
            mailbox,
            bytes,
            reply,
        })
        .await
    }

    /// Keeps a summary made for a message stored without one.
    pub async fn store_summary(&self, file: FileId, summary: Arc<Summary>) {
        self.cast(AccountMsg::StoreSummary { file, summary }).await;
    }

    /// RFC 9208: what the account holds and its limits.
    pub async fn usage(&self) -> Result<crate::account::Usage, ClientError> {
        self.call(AccountMsg::Usage).await
    }

    /// Sets the storage (bytes) and message limits; `None` removes one.
    pub async fn set_quota(
        &self,
        bytes: Option<u64>,
        messages: Option<u64>,
    ) -> Result<(), ClientError> {
        self.call(|reply| AccountMsg::SetQuota {
            bytes,
            messages,
            reply,
        })
        .await
    }

    /// Registers or removes a TLS client key.
    pub async fn tls_key(&self, change: crate::account::TlsKeyChange) -> Result<(), ClientError> {
        self.call(|reply| AccountMsg::TlsKey { change, reply })
            .await
    }

    /// Adds or removes one of the account's extra addresses.
    pub async fn address(&self, change: crate::account::AddressChange) -> Result<(), ClientError> {
        self.call(|reply| AccountMsg::Address { change, reply })
            .await
    }

    /// Disables the account's logins with this message, or enables them.
    pub async fn set_disabled(&self, why: Option<String>) -> Result<(), ClientError> {
        self.call(|reply| AccountMsg::SetDisabled { why, reply })
            .await
    }

    /// Queued messages go out with unique envelope senders, or not.
    pub async fn set_unique_mail_from(&self, on: bool) -> Result<(), ClientError> {
        self.call(|reply| AccountMsg::SetUniqueMailFrom { on, reply })
            .await
    }

    pub async fn set_password(&self, secrets: PasswordSecrets) -> Result<(), ClientError> {
        let secrets = Box::new(secrets);
        self.call(|reply| AccountMsg::SetPassword { secrets, reply })
            .await
    }
}
