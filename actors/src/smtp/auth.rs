//! SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, on the
//! submission listeners only.

use super::SmtpState;
use crate::auth::{verify_password, AuthError, MAX_AUTH_FAILURES};
use roost_protocols::sasl::{decode_base64, decode_plain};
use roost_protocols::smtp::reply::Reply;

/// Where a multi-step AUTH exchange stands.
pub enum AuthStep {
    /// PLAIN sent without an initial response: waiting for it.
    Plain,
    /// LOGIN: waiting for the username.
    LoginUser,
    /// LOGIN: waiting for the password.
    LoginPassword(String),
}

impl SmtpState {
    pub(super) async fn auth(&mut self, mechanism: &str, initial: Option<String>) {
        if !self.protocol.is_submission() {
            return self.bad_command(Reply::not_implemented("AUTH is offered on submission only"));
        }
        if self.authenticated.is_some() {
            return self.bad_command(Reply::bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.bad_command(Reply::bad_sequence(
                "AUTH is not allowed during a transaction",
            ));
        }
        if !self.peer.tls_or_local() {
            return self.bad_command(Reply::new(
                538,
                Some((5, 7, 11)),
                "Encryption required for requested authentication mechanism",
            ));
        }
        match (mechanism, initial) {
            ("PLAIN", Some(ir)) => self.auth_plain(&ir).await,
            ("PLAIN", None) => {
                self.auth_step = Some(AuthStep::Plain);
                self.reply(Reply::new(334, None, ""));
            }
            ("LOGIN", None) => {
                self.auth_step = Some(AuthStep::LoginUser);
                self.reply(Reply::new(334, None, "VXNlcm5hbWU6"));
            }
            ("LOGIN", Some(user)) => match decode_text(&user) {
                Some(user) => {
                    self.auth_step = Some(AuthStep::LoginPassword(user));
                    self.reply(Reply::new(334, None, "UGFzc3dvcmQ6"));
                }
                None => self.bad_command(bad_base64()),
            },
            _ => self.bad_command(Reply::new(
                504,
                Some((5, 5, 4)),
                "Unrecognized authentication type",
            )),
        }
    }

    /// A line sent in answer to a 334 challenge.
    pub(super) async fn auth_continue(&mut self, step: AuthStep, line: &str) {
        // RFC 4954 4: "*" cancels the exchange.
        if line == "*" {
            return self.bad_command(Reply::new(501, Some((5, 0, 0)), "Authentication canceled"));
        }
        match step {
            AuthStep::Plain => self.auth_plain(line).await,
            AuthStep::LoginUser => match decode_text(line) {
                Some(user) => {
                    self.auth_step = Some(AuthStep::LoginPassword(user));
                    self.reply(Reply::new(334, None, "UGFzc3dvcmQ6"));
                }
                None => self.bad_command(bad_base64()),
            },
            AuthStep::LoginPassword(user) => match decode_text(line) {
                Some(password) => self.auth_check(&user, &password).await,
                None => self.bad_command(bad_base64()),
            },
        }
    }

    async fn auth_plain(&mut self, b64: &str) {
        match decode_plain(b64) {
            // RFC 4616 2: an authzid other than the authcid is not allowed here.
            Ok(c)
                if c.authzid
                    .as_deref()
                    .is_some_and(|z| !z.is_empty() && z != c.authcid) =>
            {
                self.bad_command(Reply::new(
                    535,
                    Some((5, 7, 8)),
                    "Authentication credentials invalid",
                ))
            }
            Ok(c) => self.auth_check(&c.authcid, &c.password).await,
            Err(_) => self.bad_command(bad_base64()),
        }
    }

    async fn auth_check(&mut self, user: &str, password: &str) {
        match verify_password(&self.services.store, user, password).await {
            Ok(account) => {
                self.authenticated = Some(account);
                self.reply(Reply::new(
                    235,
                    Some((2, 7, 0)),
                    "Authentication successful",
                ));
            }
            Err(AuthError::Temporary(_)) => self.reply(Reply::new(
                454,
                Some((4, 7, 0)),
                "Temporary authentication failure",
            )),
            Err(AuthError::Disabled(why)) => {
                self.auth_failures += 1;
                self.reply(Reply::new(
                    535,
                    Some((5, 7, 8)),
                    format!("Login disabled: {why}"),
                ))
            }
            Err(AuthError::Invalid) => {
                self.auth_failures += 1;
                self.reply(Reply::new(
                    535,
                    Some((5, 7, 8)),
                    "Authentication credentials invalid",
                ));
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.reply(Reply::new(
                        421,
                        Some((4, 7, 0)),
                        format!("{} Too many failed logins", self.services.hostname),
                    ));
                    self.closing = true;
                }
            }
        }
    }
}

fn decode_text(b64: &str) -> Option<String> {
    decode_base64(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

fn bad_base64() -> Reply {
    Reply::new(501, Some((5, 5, 2)), "Invalid base64 data")
}
