//! SMTP AUTH (RFC 4954), on the submission listeners only. The
//! mechanisms are roost_protocols' SASL exchanges, driven by `crate::auth`.

use super::SmtpState;
use crate::auth::{
    account_for_key, new_exchange, offered_to, sasl_respond, sasl_start, LoginContext, SaslFailure,
    SaslOutcome, SaslRun, MAX_AUTH_FAILURES,
};
use roost_protocols::sasl::{Mechanism, SaslError};
use roost_protocols::smtp::reply::Reply;

impl SmtpState {
    /// The mechanisms this session offers, for EHLO.
    pub(super) fn mechanisms(&self) -> Vec<Mechanism> {
        offered_to(&self.peer)
    }

    /// On submission, a registered TLS client key logs the session in
    /// without AUTH (unless the account's logins are disabled).
    pub(super) async fn learn_client_key(&mut self) {
        self.key_account = None;
        if !self.protocol.is_submission() {
            return;
        }
        let Some(spki) = self.peer.client_key.clone() else {
            return;
        };
        let Some(key) = account_for_key(&self.services.store, &spki).await else {
            return;
        };
        crate::auth::record_key_login(&self.login_context(), "EXTERNAL", &key);
        if key.disabled.is_none() {
            self.authenticated = Some(key.account.clone());
        }
        self.key_account = Some(key.account);
    }

    /// After [`MAX_AUTH_FAILURES`] failed or refused tries, the session
    /// ends.
    fn close_after_failures(&mut self) {
        if self.auth_failures >= MAX_AUTH_FAILURES {
            self.reply(Reply::new(
                421,
                Some((4, 7, 0)),
                format!("{} Too many failed logins", self.services.hostname),
            ));
            self.closing = true;
        }
    }

    fn login_context(&self) -> LoginContext {
        LoginContext::of(&self.peer, self.protocol)
    }

    pub(super) async fn auth(&mut self, mechanism: &str, initial: Option<String>) {
        if !self.protocol.is_submission() {
            return self.bad_command(Reply::not_implemented("AUTH is offered on submission only"));
        }
        // A session logged in by its client key may still AUTH, to the
        // same account (clients that always do).
        if self.authenticated.is_some() && self.key_account.is_none() {
            return self.bad_command(Reply::bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.bad_command(Reply::bad_sequence(
                "AUTH is not allowed during a transaction",
            ));
        }
        let Some(mechanism) = Mechanism::parse(mechanism).filter(|m| self.mechanisms().contains(m))
        else {
            if Mechanism::parse(mechanism).is_some_and(Mechanism::sends_password) {
                return self.bad_command(Reply::new(
                    538,
                    Some((5, 7, 11)),
                    "Encryption required for requested authentication mechanism",
                ));
            }
            return self.bad_command(Reply::new(
                504,
                Some((5, 5, 4)),
                "Unrecognized authentication type",
            ));
        };
        let exchange = new_exchange(mechanism, &self.peer.binding, &self.services.hostname);
        let mut run = SaslRun::new(exchange, self.login_context(), self.key_account.clone());
        let outcome = sasl_start(&self.services.store, &mut run, initial.as_deref()).await;
        self.auth_outcome(run, outcome)
    }

    /// A line sent in answer to a 334 challenge.
    pub(super) async fn auth_continue(&mut self, mut run: SaslRun, line: &str) {
        let outcome = sasl_respond(&self.services.store, &mut run, line).await;
        self.auth_outcome(run, outcome)
    }

    fn auth_outcome(&mut self, run: SaslRun, outcome: SaslOutcome) {
        match outcome {
            SaslOutcome::Challenge(data) => {
                self.auth_step = Some(run);
                self.reply(Reply::new(334, None, data));
            }
            SaslOutcome::Success(account) => {
                self.authenticated = Some(account);
                self.reply(Reply::new(
                    235,
                    Some((2, 7, 0)),
                    "Authentication successful",
                ));
            }
            SaslOutcome::Failed(failure) => self.auth_failed(failure),
        }
    }

    fn auth_failed(&mut self, failure: SaslFailure) {
        match failure {
            // RFC 4954 4: "*" cancels the exchange.
            SaslFailure::Protocol(SaslError::Cancelled) => {
                self.bad_command(Reply::new(501, Some((5, 0, 0)), "Authentication canceled"))
            }
            SaslFailure::Protocol(_) => {
                self.bad_command(Reply::new(501, Some((5, 5, 2)), "Invalid base64 data"))
            }
            SaslFailure::OtherAccount => self.reply(Reply::new(
                535,
                Some((5, 7, 8)),
                "This connection's client certificate belongs to another account",
            )),
            SaslFailure::Throttled => {
                // Refusals use up the session's tries too.
                self.auth_failures += 1;
                self.reply(Reply::new(
                    454,
                    Some((4, 7, 0)),
                    "Too many failed logins from your address, try again later",
                ));
                self.close_after_failures();
            }
            SaslFailure::Temporary(_) => self.reply(Reply::new(
                454,
                Some((4, 7, 0)),
                "Temporary authentication failure",
            )),
            SaslFailure::NoSecret => self.reply(Reply::new(
                535,
                Some((5, 7, 8)),
                "This mechanism is not available for this account; use another",
            )),
            SaslFailure::Disabled(why) => {
                self.auth_failures += 1;
                self.reply(Reply::new(
                    535,
                    Some((5, 7, 8)),
                    format!("Login disabled: {why}"),
                ))
            }
            SaslFailure::Invalid => {
                self.auth_failures += 1;
                self.reply(Reply::new(
                    535,
                    Some((5, 7, 8)),
                    "Authentication credentials invalid",
                ));
                self.close_after_failures();
            }
        }
    }
}
