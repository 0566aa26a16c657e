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

/// Which states a command is valid in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    /// RFC 9051 6.1: any state (but logout).
    Any,
    /// RFC 9051 6.2: not authenticated only.
    NotAuthenticated,
    /// RFC 9051 6.3: authenticated or selected.
    Authenticated,
    /// RFC 5161 3.1: authenticated, before a mailbox is selected (ENABLE).
    AuthenticatedOnly,
    /// RFC 9051 6.4: selected.
    Selected,
    /// Never on its own (`DONE` ends IDLE, which the session handles).
    Never,
}

/// What roost knows about one command, in one table ([`CommandBody::facts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandFacts {
    /// The name for logs and metrics (`UID FETCH`, `SELECT`).
    pub name: &'static str,
    pub valid: Valid,
    /// RFC 9051 7.5.2: whether EXPUNGE (or VANISHED) responses may follow
    /// it. Not after FETCH, STORE, SEARCH or COPY by sequence number: the
    /// client counts on the numbers staying put.
    pub may_expunge: bool,
    /// The command changes the selected mailbox, so a read-only selection
    /// refuses it (RFC 9051 6.3.3). A non-PEEK FETCH sets \Seen but is
    /// allowed read-only (the flag is then not set), so it is not counted.
    pub modifies_selected: bool,
    /// The capability that announces the command, beyond IMAP4rev2's base.
    pub capability: Option<&'static str>,
}

impl CommandBody {
    /// The facts of this command: one match for every command.
    pub fn facts(&self) -> CommandFacts {
        use CommandBody as C;
        use Valid as V;
        let f = |name, valid, may_expunge, modifies_selected, capability| CommandFacts {
            name,
            valid,
            may_expunge,
            modifies_selected,
            capability,
        };
        match self {
            C::Capability => f("CAPABILITY", V::Any, true, false, None),
            C::Noop => f("NOOP", V::Any, true, false, None),
            C::Logout => f("LOGOUT", V::Any, true, false, None),
            C::Id(_) => f("ID", V::Any, true, false, Some("ID")),
            C::StartTls => f("STARTTLS", V::NotAuthenticated, true, false, None),
            C::Login { .. } => f("LOGIN", V::NotAuthenticated, true, false, None),
            C::Authenticate { .. } => f("AUTHENTICATE", V::NotAuthenticated, true, false, None),
            C::Enable(_) => f("ENABLE", V::AuthenticatedOnly, true, false, Some("ENABLE")),
            C::Select { .. } => f("SELECT", V::Authenticated, true, false, None),
            C::Examine { .. } => f("EXAMINE", V::Authenticated, true, false, None),
            C::Create { .. } => f("CREATE", V::Authenticated, true, false, None),
            C::Delete { .. } => f("DELETE", V::Authenticated, true, false, None),
            C::Rename { .. } => f("RENAME", V::Authenticated, true, false, None),
            C::Subscribe { .. } => f("SUBSCRIBE", V::Authenticated, true, false, None),
            C::Unsubscribe { .. } => f("UNSUBSCRIBE", V::Authenticated, true, false, None),
            C::List(_) => f("LIST", V::Authenticated, true, false, None),
            C::Lsub { .. } => f("LSUB", V::Authenticated, true, false, None),
            C::Namespace => f(
                "NAMESPACE",
                V::Authenticated,
                true,
                false,
                Some("NAMESPACE"),
            ),
            C::Status { .. } => f("STATUS", V::Authenticated, true, false, None),
            C::Idle => f("IDLE", V::Authenticated, true, false, Some("IDLE")),
            C::Compress { .. } => f(
                "COMPRESS",
                V::Authenticated,
                true,
                false,
                Some("COMPRESS=DEFLATE"),
            ),
            C::Done => f("DONE", V::Never, true, false, Some("IDLE")),
            C::GetQuota { .. } => f("GETQUOTA", V::Authenticated, true, false, Some("QUOTA")),
            C::GetQuotaRoot { .. } => {
                f("GETQUOTAROOT", V::Authenticated, true, false, Some("QUOTA"))
            }
            C::SetQuota { .. } => f("SETQUOTA", V::Authenticated, true, false, Some("QUOTA")),
            C::Append(head) if head.replace.is_some() => {
                f("REPLACE", V::Selected, true, true, Some("REPLACE"))
            }
            C::Append(_) => f("APPEND", V::Authenticated, true, false, None),
            C::CancelUpdate(_) => f(
                "CANCELUPDATE",
                V::Selected,
                true,
                false,
                Some("CONTEXT=SEARCH"),
            ),
            C::Notify(_) => f("NOTIFY", V::Authenticated, true, false, Some("NOTIFY")),
            C::GetMetadata(_) => f(
                "GETMETADATA",
                V::Authenticated,
                true,
                false,
                Some("METADATA"),
            ),
            C::SetMetadata(_) => f(
                "SETMETADATA",
                V::Authenticated,
                true,
                false,
                Some("METADATA"),
            ),
            C::Unauthenticate => f(
                "UNAUTHENTICATE",
                V::Authenticated,
                false,
                false,
                Some("UNAUTHENTICATE"),
            ),
            C::Check => f("CHECK", V::Selected, true, false, None),
            C::Close => f("CLOSE", V::Selected, true, false, None),
            C::Unselect => f("UNSELECT", V::Selected, true, false, Some("UNSELECT")),
            C::Expunge => f("EXPUNGE", V::Selected, true, true, None),
            C::UidExpunge(_) => f("UID EXPUNGE", V::Selected, true, true, Some("UIDPLUS")),
            C::Fetch { uid, .. } => f(
                if *uid { "UID FETCH" } else { "FETCH" },
                V::Selected,
                *uid,
                false,
                None,
            ),
            C::Store { uid, .. } => f(
                if *uid { "UID STORE" } else { "STORE" },
                V::Selected,
                *uid,
                true,
                None,
            ),
            C::Copy { uid, .. } => f(
                if *uid { "UID COPY" } else { "COPY" },
                V::Selected,
                *uid,
                false,
                None,
            ),
            C::Move { uid, .. } => f(
                if *uid { "UID MOVE" } else { "MOVE" },
                V::Selected,
                true,
                true,
                Some("MOVE"),
            ),
            C::Search { uid, .. } => f(
                if *uid { "UID SEARCH" } else { "SEARCH" },
                V::Selected,
                *uid,
                false,
                None,
            ),
            // RFC 7377 2.2: the selected state is checked by the session
            // when `selected` is among the sources.
            C::Esearch(_) => f(
                "ESEARCH",
                V::Authenticated,
                true,
                false,
                Some("MULTISEARCH"),
            ),
            C::Thread { uid, .. } => f(
                if *uid { "UID THREAD" } else { "THREAD" },
                V::Selected,
                *uid,
                false,
                Some("THREAD=ORDEREDSUBJECT"),
            ),
            C::Sort { uid, .. } => f(
                if *uid { "UID SORT" } else { "SORT" },
                V::Selected,
                *uid,
                false,
                Some("SORT"),
            ),
        }
    }

    /// Whether the command may be issued in `state` (RFC 9051 6.1-6.4).
    /// `DONE` is never a command of its own: the session takes it only while
    /// an IDLE is running, before asking this.
    pub fn allowed_in(&self, state: &SessionState) -> bool {
        use SessionState as S;
        use Valid as V;
        match (self.facts().valid, state) {
            (_, S::Logout) | (V::Never, _) => false,
            (V::Any, _) => true,
            (V::NotAuthenticated, s) => *s == S::NotAuthenticated,
            (V::Authenticated, s) => matches!(s, S::Authenticated | S::Selected { .. }),
            (V::AuthenticatedOnly, s) => *s == S::Authenticated,
            (V::Selected, s) => matches!(s, S::Selected { .. }),
        }
    }

    /// See [`CommandFacts::modifies_selected`].
    pub fn modifies_selected(&self) -> bool {
        self.facts().modifies_selected
    }

    /// See [`CommandFacts::name`].
    pub fn name(&self) -> &'static str {
        self.facts().name
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
