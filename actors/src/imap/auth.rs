//! LOGIN (RFC 9051 6.2.3) and AUTHENTICATE (RFC 9051 6.2.2) with SASL-IR
//! (RFC 4959). The mechanisms are roost_protocols' SASL exchanges, driven
//! by `crate::auth`.

use super::{Done, ImapState};
use crate::auth::{
    account_for_key, new_exchange, offered_to, sasl_respond, sasl_start, verify_password,
    LoginContext, SaslFailure, SaslOutcome, SaslRun, MAX_AUTH_FAILURES,
};
use roost_protocols::imap::response::{self, Code, Status};
use roost_protocols::imap::state::SessionState;
use roost_protocols::sasl::Mechanism;

impl ImapState {
    pub(super) async fn login(&mut self, username: &str, password: &str) -> Done {
        if !self.peer.tls_or_local() {
            // RFC 9051 6.2.3: LOGINDISABLED over an unprotected link.
            return Done::no_code(Code::Other("PRIVACYREQUIRED".into()), "Use IMAPS to log in");
        }
        let ctx = self.login_context();
        let outcome =
            match verify_password(&self.services.store, &ctx, "LOGIN", username, password).await {
                // A registered client key allows only its own account.
                Ok(account)
                    if self
                        .key_account
                        .as_ref()
                        .is_some_and(|k| k.account != account) =>
                {
                    SaslOutcome::Failed(SaslFailure::OtherAccount)
                }
                Ok(account) => SaslOutcome::Success(account),
                Err(e) => SaslOutcome::Failed(e.into()),
            };
        self.finish_login(outcome).await
    }

    pub(super) fn login_context(&self) -> LoginContext {
        LoginContext::of(&self.peer, self.protocol)
    }

    /// RFC 8437 3 and 4.1: UNAUTHENTICATE resets everything but TLS: the
    /// mailbox is left without expunging, the account and ENABLEd
    /// extensions (CONDSTORE, QRESYNC, IMAP4rev2) and the saved search
    /// result are forgotten. A NO is not allowed; where the state cannot
    /// be reset (a COMPRESS layer, which would have to end mid-stream) the
    /// session ends with BYE instead, as 3 allows.
    pub(super) async fn unauthenticate(&mut self) -> Done {
        if self.deflate.is_some() {
            response::bye(
                &mut self.out,
                None,
                "UNAUTHENTICATE with COMPRESS active: connect again to log in",
            );
            self.closing = true;
            return Done::Later;
        }
        self.unselect().await;
        self.account = None;
        self.state = SessionState::NotAuthenticated;
        self.condstore = false;
        self.qresync = false;
        self.rev2 = false;
        self.uidonly = false;
        self.saved_search.clear();
        self.notify = None;
        self.auth_failures = 0;
        Done::ok("Completed, now in not authenticated state")
    }

    /// The mechanisms this session offers, for CAPABILITY.
    pub(super) fn mechanisms(&self) -> Vec<Mechanism> {
        offered_to(&self.peer)
    }

    /// Which account the client's TLS key belongs to, if any.
    pub(super) async fn learn_client_key(&mut self) {
        self.key_account = match &self.peer.client_key {
            Some(spki) => account_for_key(&self.services.store, spki).await,
            None => None,
        };
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<String>,
    ) -> Done {
        let Some(mechanism) = Mechanism::parse(mechanism).filter(|m| self.mechanisms().contains(m))
        else {
            if Mechanism::parse(mechanism).is_some_and(Mechanism::sends_password) {
                return Done::no_code(Code::Other("PRIVACYREQUIRED".into()), "Use IMAPS to log in");
            }
            return Done::no_code(Code::Cannot, "Unsupported authentication mechanism");
        };
        let exchange = new_exchange(mechanism, &self.peer.binding, &self.services.hostname);
        let key = self.key_account.as_ref().map(|k| k.account.clone());
        let mut run = SaslRun::new(exchange, self.login_context(), key);
        let outcome = sasl_start(&self.services.store, &mut run, initial.as_deref()).await;
        self.sasl_outcome(tag, run, outcome).await
    }

    /// The client's line after a `+` continuation of AUTHENTICATE.
    pub(super) async fn authenticate_response(&mut self, tag: &str, mut run: SaslRun, line: &[u8]) {
        let line = String::from_utf8_lossy(line).trim().to_string();
        let outcome = sasl_respond(&self.services.store, &mut run, &line).await;
        if let Done::Tagged(status, code, text) = self.sasl_outcome(tag, run, outcome).await {
            if status == Status::Bad {
                self.bad(Some(tag), code, &text);
            } else {
                response::tagged(&mut self.out, tag, status, code, &text);
            }
        }
    }

    async fn sasl_outcome(&mut self, tag: &str, run: SaslRun, outcome: SaslOutcome) -> Done {
        match outcome {
            SaslOutcome::Challenge(data) => {
                self.authenticating = Some((tag.to_string(), run));
                self.framer.expect_response();
                response::continuation(&mut self.out, &data);
                Done::Later
            }
            SaslOutcome::Failed(SaslFailure::Protocol(e)) => {
                Done::bad(format!("AUTHENTICATE failed: {e}"))
            }
            outcome => self.finish_login(outcome).await,
        }
    }

    async fn finish_login(&mut self, outcome: SaslOutcome) -> Done {
        let failure = match outcome {
            SaslOutcome::Success(account) => {
                let id = match self.services.store.account(&account) {
                    Ok(Some(rec)) => rec.id,
                    _ => return Done::no_code(Code::Unavailable, "Account unavailable, try later"),
                };
                self.account = Some((account, id));
                self.state = SessionState::Authenticated;
                let caps = self.capabilities();
                return Done::Tagged(Status::Ok, Some(Code::Capability(caps)), "Logged in".into());
            }
            SaslOutcome::Challenge(_) => return Done::bad("Unexpected challenge"),
            SaslOutcome::Failed(f) => f,
        };
        match failure {
            SaslFailure::Temporary(_) => {
                Done::no_code(Code::Unavailable, "Temporary failure, try again later")
            }
            SaslFailure::OtherAccount => Done::no_code(
                Code::AuthorizationFailed,
                "This connection's client certificate belongs to another account",
            ),
            SaslFailure::Throttled => {
                // Refusals use up the session's tries too: a refused
                // client cannot keep one connection open to guess on.
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    response::bye(&mut self.out, None, "Too many failed logins");
                    self.closing = true;
                }
                Done::no_code(
                    Code::Unavailable,
                    "Too many failed logins from your address, try again later",
                )
            }
            SaslFailure::Disabled(why) => {
                Done::no_code(Code::ContactAdmin, format!("Login disabled: {why}"))
            }
            SaslFailure::NoSecret => Done::no_code(
                Code::AuthenticationFailed,
                "This mechanism is not available for this account; use another",
            ),
            SaslFailure::Protocol(e) => Done::bad(format!("AUTHENTICATE failed: {e}")),
            SaslFailure::Invalid => {
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    response::bye(&mut self.out, None, "Too many failed logins");
                    self.closing = true;
                }
                Done::no_code(Code::AuthenticationFailed, "Invalid credentials")
            }
        }
    }
}
