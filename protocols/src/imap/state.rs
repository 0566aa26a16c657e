//! The IMAP connection states (RFC 9051 3) and which commands each allows
//! (RFC 9051 6). A command outside its states gets `BAD`; this module only
//! answers the question, the session actor changes the state.

use super::command::CommandBody;

/// RFC 9051 3: the state of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    NotAuthenticated,
    Authenticated,
    /// `read_only` after EXAMINE (or a SELECT the server made read-only).
    Selected {
        read_only: bool,
    },
    Logout,
}

impl CommandBody {
    /// Whether the command may be issued in `state` (RFC 9051 6.1-6.4).
    /// `DONE` is never a command of its own: the session takes it only while
    /// an IDLE is running, before asking this.
    pub fn allowed_in(&self, state: &SessionState) -> bool {
        use CommandBody as C;
        use SessionState as S;
        match state {
            S::Logout => false,
            S::NotAuthenticated => matches!(
                self,
                // RFC 9051 6.1; RFC 2971 3: ID in any state.
                C::Capability | C::Noop | C::Logout | C::Id(_)
                // RFC 9051 6.2.
                | C::StartTls | C::Login { .. } | C::Authenticate { .. }
            ),
            S::Authenticated => {
                self.is_any_state()
                    || self.is_authenticated_command()
                    || matches!(self, C::Enable(_))
            }
            // RFC 5161 3.1: ENABLE only before a mailbox is selected.
            S::Selected { .. } => {
                self.is_any_state() || self.is_authenticated_command() || self.is_selected_command()
            }
        }
    }

    fn is_any_state(&self) -> bool {
        matches!(
            self,
            CommandBody::Capability | CommandBody::Noop | CommandBody::Logout | CommandBody::Id(_)
        )
    }

    // RFC 9051 6.3, valid in the selected state too.
    fn is_authenticated_command(&self) -> bool {
        use CommandBody as C;
        matches!(
            self,
            C::Select { .. }
                | C::Examine { .. }
                | C::Create { .. }
                | C::Delete { .. }
                | C::Rename { .. }
                | C::Subscribe { .. }
                | C::Unsubscribe { .. }
                | C::List { .. }
                | C::Lsub { .. }
                | C::Namespace
                | C::Status { .. }
                | C::Idle
                // RFC 4978 3: after authentication.
                | C::Compress { .. }
        )
    }

    // RFC 9051 6.4.
    fn is_selected_command(&self) -> bool {
        use CommandBody as C;
        matches!(
            self,
            C::Check
                | C::Close
                | C::Unselect
                | C::Expunge
                | C::UidExpunge(_)
                | C::Fetch { .. }
                | C::Store { .. }
                | C::Copy { .. }
                | C::Move { .. }
                | C::Search { .. }
        )
    }

    /// Whether the command changes the selected mailbox, so a read-only
    /// selection answers `NO [READ-ONLY]` (RFC 9051 6.3.3). FETCH of a
    /// non-PEEK body section sets \Seen but is allowed read-only (the flag
    /// is then simply not set), so it is not counted here.
    pub fn modifies_selected(&self) -> bool {
        matches!(
            self,
            CommandBody::Expunge
                | CommandBody::UidExpunge(_)
                | CommandBody::Store { .. }
                | CommandBody::Move { .. }
        )
    }

    /// The command's name for logs and metrics (`UID FETCH`, `SELECT`).
    pub fn name(&self) -> &'static str {
        use CommandBody as C;
        match self {
            C::Capability => "CAPABILITY",
            C::Noop => "NOOP",
            C::Logout => "LOGOUT",
            C::Id(_) => "ID",
            C::StartTls => "STARTTLS",
            C::Login { .. } => "LOGIN",
            C::Authenticate { .. } => "AUTHENTICATE",
            C::Enable(_) => "ENABLE",
            C::Select { .. } => "SELECT",
            C::Examine { .. } => "EXAMINE",
            C::Create { .. } => "CREATE",
            C::Delete { .. } => "DELETE",
            C::Rename { .. } => "RENAME",
            C::Subscribe { .. } => "SUBSCRIBE",
            C::Unsubscribe { .. } => "UNSUBSCRIBE",
            C::List { .. } => "LIST",
            C::Lsub { .. } => "LSUB",
            C::Namespace => "NAMESPACE",
            C::Status { .. } => "STATUS",
            C::Idle => "IDLE",
            C::Compress { .. } => "COMPRESS",
            C::Done => "DONE",
            C::Check => "CHECK",
            C::Close => "CLOSE",
            C::Unselect => "UNSELECT",
            C::Expunge => "EXPUNGE",
            C::UidExpunge(_) => "UID EXPUNGE",
            C::Fetch { uid: false, .. } => "FETCH",
            C::Fetch { uid: true, .. } => "UID FETCH",
            C::Store { uid: false, .. } => "STORE",
            C::Store { uid: true, .. } => "UID STORE",
            C::Copy { uid: false, .. } => "COPY",
            C::Copy { uid: true, .. } => "UID COPY",
            C::Move { uid: false, .. } => "MOVE",
            C::Move { uid: true, .. } => "UID MOVE",
            C::Search { uid: false, .. } => "SEARCH",
            C::Search { uid: true, .. } => "UID SEARCH",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::parser::parse_command;

    fn body(line: &str) -> CommandBody {
        parse_command(line.as_bytes()).unwrap().body
    }

    const NOT_AUTH: SessionState = SessionState::NotAuthenticated;
    const AUTH: SessionState = SessionState::Authenticated;
    const SELECTED: SessionState = SessionState::Selected { read_only: false };
    const EXAMINED: SessionState = SessionState::Selected { read_only: true };
    const LOGOUT: SessionState = SessionState::Logout;

    fn states(line: &str) -> [bool; 5] {
        let b = body(line);
        [NOT_AUTH, AUTH, SELECTED, EXAMINED, LOGOUT].map(|s| b.allowed_in(&s))
    }

    #[test]
    fn any_state_commands() {
        for line in ["a CAPABILITY", "a NOOP", "a LOGOUT", "a ID NIL"] {
            assert_eq!(states(line), [true, true, true, true, false], "{line}");
        }
    }

    #[test]
    fn not_authenticated_commands() {
        for line in ["a STARTTLS", "a LOGIN u p", "a AUTHENTICATE PLAIN"] {
            assert_eq!(states(line), [true, false, false, false, false], "{line}");
        }
    }

    #[test]
    fn authenticated_commands() {
        for line in [
            "a SELECT INBOX",
            "a EXAMINE INBOX",
            "a CREATE x",
            "a DELETE x",
            "a RENAME x y",
            "a SUBSCRIBE x",
            "a UNSUBSCRIBE x",
            "a LIST \"\" *",
            "a NAMESPACE",
            "a STATUS x (MESSAGES)",
            "a IDLE",
        ] {
            assert_eq!(states(line), [false, true, true, true, false], "{line}");
        }
        assert_eq!(
            states("a ENABLE CONDSTORE"),
            [false, true, false, false, false]
        );
    }

    #[test]
    fn selected_commands() {
        for line in [
            "a CHECK",
            "a CLOSE",
            "a UNSELECT",
            "a EXPUNGE",
            "a UID EXPUNGE 1",
            "a FETCH 1 FLAGS",
            "a UID FETCH 1 FLAGS",
            "a STORE 1 FLAGS ()",
            "a COPY 1 x",
            "a MOVE 1 x",
            "a SEARCH ALL",
        ] {
            assert_eq!(states(line), [false, false, true, true, false], "{line}");
        }
        assert_eq!(states("DONE"), [false; 5]);
    }

    #[test]
    fn read_only_and_names() {
        assert!(body("a STORE 1 +FLAGS (\\Seen)").modifies_selected());
        assert!(body("a UID MOVE 1 x").modifies_selected());
        assert!(!body("a FETCH 1 BODY[]").modifies_selected());
        assert_eq!(body("a UID FETCH 1 FLAGS").name(), "UID FETCH");
        assert_eq!(body("a uid store 1 flags x").name(), "UID STORE");
        assert_eq!(body("done").name(), "DONE");
        assert_eq!(body("a select inbox").name(), "SELECT");
    }
}
