//! LOGIN (RFC 9051 6.2.3) and AUTHENTICATE PLAIN (RFC 9051 6.2.2, RFC 4616,
//! with SASL-IR from RFC 4959).

use super::{Done, ImapState};
use crate::auth::{verify_password, AuthError, MAX_AUTH_FAILURES};
use roost_protocols::imap::response::{self, Code, Status};
use roost_protocols::imap::state::SessionState;
use roost_protocols::sasl::decode_plain;

impl ImapState {
    pub(super) async fn login(&mut self, username: &str, password: &str) -> Done {
        if !self.peer.tls_or_local() {
            // RFC 9051 6.2.3: LOGINDISABLED over an unprotected link.
            return Done::no_code(Code::Other("PRIVACYREQUIRED".into()), "Use IMAPS to log in");
        }
        self.check_credentials(username, password).await
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<String>,
    ) -> Done {
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return Done::no_code(Code::Cannot, "Unsupported authentication mechanism");
        }
        if !self.peer.tls_or_local() {
            return Done::no_code(Code::Other("PRIVACYREQUIRED".into()), "Use IMAPS to log in");
        }
        match initial {
            Some(ir) => self.authenticate_plain(&ir).await,
            None => {
                self.authenticating = Some(tag.to_string());
                response::continuation(&mut self.out, "");
                Done::Later
            }
        }
    }

    /// The client's line after the `+` continuation of AUTHENTICATE.
    pub(super) async fn authenticate_response(&mut self, tag: &str, line: &[u8]) {
        let line = String::from_utf8_lossy(line).trim().to_string();
        let done = if line == "*" {
            // RFC 9051 6.2.2: the client cancelled the exchange.
            Done::bad("AUTHENTICATE cancelled")
        } else {
            self.authenticate_plain(&line).await
        };
        if let Done::Tagged(status, code, text) = done {
            if status == Status::Bad {
                self.bad(Some(tag), code, &text);
            } else {
                response::tagged(&mut self.out, tag, status, code, &text);
            }
        }
    }

    async fn authenticate_plain(&mut self, b64: &str) -> Done {
        let b64 = if b64 == "=" { "" } else { b64 };
        match decode_plain(b64) {
            Ok(c)
                if c.authzid
                    .as_deref()
                    .is_some_and(|z| !z.is_empty() && z != c.authcid) =>
            {
                Done::no_code(Code::AuthorizationFailed, "Cannot act as another user")
            }
            Ok(c) => self.check_credentials(&c.authcid, &c.password).await,
            Err(_) => Done::bad("Invalid PLAIN response"),
        }
    }

    async fn check_credentials(&mut self, username: &str, password: &str) -> Done {
        match verify_password(&self.services.store, username, password).await {
            Ok(account) => {
                let id = match self.services.store.account(&account) {
                    Ok(Some(rec)) => rec.id,
                    _ => return Done::no_code(Code::Unavailable, "Account unavailable, try later"),
                };
                self.account = Some((account, id));
                self.state = SessionState::Authenticated;
                let caps = self.capabilities();
                Done::Tagged(Status::Ok, Some(Code::Capability(caps)), "Logged in".into())
            }
            Err(AuthError::Temporary(_)) => {
                Done::no_code(Code::Unavailable, "Temporary failure, try again later")
            }
            Err(AuthError::Disabled(why)) => {
                Done::no_code(Code::ContactAdmin, format!("Login disabled: {why}"))
            }
            Err(AuthError::Invalid) => {
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
