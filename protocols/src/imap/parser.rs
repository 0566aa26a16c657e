//! The IMAP command parser (RFC 9051 9, formal syntax): one framed command
//! from [`super::framer`] in, a [`Command`] or a [`ParseError`] out.
//!
//! It checks syntax only. Whether a command is allowed in the session's
//! state is [`super::state`]'s business, and whether a mailbox exists is
//! the store's.

use super::command::{Command, CommandBody, ParseError};
use super::framer::tag_of;
use super::seqset::SeqSet;
use super::types::{is_atom_char, ModSeq};

/// RFC 2971 3.3: at most 30 field-value pairs in an ID command.
pub const MAX_ID_PAIRS: usize = 30;

/// Most elements of one parenthesised list (FETCH items, header field
/// names, flags, ENABLE's capabilities). Real clients send a few dozen;
/// the bound keeps per-message work of one command proportionate.
pub const MAX_LIST_ITEMS: usize = 1000;
/// Most numbers in one section part (`1.2.3`): deeper than the MIME walker
/// splits (`MAX_MIME_DEPTH`) can name nothing.
pub const MAX_SECTION_PARTS: usize = 100;

/// Adds `item` to a parenthesised list unless it already holds
/// [`MAX_LIST_ITEMS`].
pub(super) fn push_item<T>(list: &mut Vec<T>, item: T, what: &str) -> PResult<()> {
    if list.len() == MAX_LIST_ITEMS {
        return Err(format!("Too many {what} (at most {MAX_LIST_ITEMS})"));
    }
    list.push(item);
    Ok(())
}

/// RFC 7162 7: mod-sequence-value is at most 2^63 - 1.
const MAX_MODSEQ: u64 = i64::MAX as u64;

/// Whether `frame` is the `DONE` line that ends IDLE (RFC 9051 6.3.13).
pub fn is_idle_done(frame: &[u8]) -> bool {
    frame.eq_ignore_ascii_case(b"DONE")
}

/// Parses one framed command (without its final CRLF).
pub fn parse_command(frame: &[u8]) -> Result<Command, ParseError> {
    if is_idle_done(frame) {
        return Ok(Command {
            tag: String::new(),
            body: CommandBody::Done,
        });
    }
    let Some(tag) = tag_of(frame) else {
        return Err(ParseError {
            tag: None,
            message: "Missing or invalid command tag".into(),
        });
    };
    let mut p = Parser {
        s: frame,
        i: tag.len() + 1,
    };
    match p.command_body() {
        Ok(body) => Ok(Command { tag, body }),
        Err(message) => Err(ParseError {
            tag: Some(tag),
            message,
        }),
    }
}

pub(super) type PResult<T> = Result<T, String>;

pub(super) struct Parser<'a> {
    pub(super) s: &'a [u8],
    pub(super) i: usize,
}

impl Parser<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    pub(super) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, b: u8, what: &str) -> PResult<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("Expected {what}"))
        }
    }

    pub(super) fn sp(&mut self) -> PResult<()> {
        self.expect(b' ', "a space")
    }

    /// Takes `word` if it comes next, case-insensitively.
    pub(super) fn eat_word(&mut self, word: &str) -> bool {
        let end = self.i + word.len();
        match self.s.get(self.i..end) {
            Some(w) if w.eq_ignore_ascii_case(word.as_bytes()) => {
                self.i = end;
                true
            }
            _ => false,
        }
    }

    pub(super) fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err("Unexpected characters at end of command".into())
        }
    }

    pub(super) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &[u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// RFC 9051 9: atom = 1*ATOM-CHAR, upper-cased.
    pub(super) fn atom_upper(&mut self, what: &str) -> PResult<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(format!("Expected {what}"));
        }
        Ok(String::from_utf8_lossy(a).to_ascii_uppercase())
    }

    pub(super) fn number(&mut self) -> PResult<u32> {
        let d = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(d)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| "Expected a number".to_string())
    }

    pub(super) fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => Err("Expected a non-zero number".into()),
            n => Ok(n),
        }
    }

    /// RFC 7162 7: mod-sequence-value / mod-sequence-valzer.
    pub(super) fn modseq(&mut self, allow_zero: bool) -> PResult<ModSeq> {
        let d = self.take_while(|b| b.is_ascii_digit());
        let n: u64 = std::str::from_utf8(d)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| "Expected a mod-sequence value".to_string())?;
        if n > MAX_MODSEQ || (n == 0 && !allow_zero) {
            return Err("Mod-sequence value out of range".into());
        }
        Ok(ModSeq(n))
    }

    // --- strings -------------------------------------------------------

    /// RFC 9051 9: astring = 1*ASTRING-CHAR / string.
    pub(super) fn astring_bytes(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b == b']');
                if a.is_empty() {
                    return Err("Expected a string".into());
                }
                Ok(a.to_vec())
            }
        }
    }

    pub(super) fn astring(&mut self) -> PResult<String> {
        utf8(self.astring_bytes()?)
    }

    /// RFC 9051 9: string = quoted / literal.
    pub(super) fn string(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"') => utf8(self.quoted()?),
            Some(b'{') => utf8(self.literal()?),
            _ => Err("Expected a quoted string or literal".into()),
        }
    }

    /// RFC 9051 9: nstring = string / nil.
    pub(super) fn nstring(&mut self) -> PResult<Option<String>> {
        if self.eat_word("NIL") {
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// RFC 9051 9: quoted = DQUOTE *QUOTED-CHAR DQUOTE, where a backslash
    /// escapes only `"` and `\`, and CR, LF and NUL may not appear.
    pub(super) fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"', "a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("Unterminated quoted string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err("Invalid escape in quoted string".into()),
                    }
                }
                Some(b'\r' | b'\n' | 0) => return Err("Invalid character in quoted string".into()),
                Some(c) => out.push(c),
            }
            self.i += 1;
        }
    }

    /// RFC 9051 9: literal = "{" number64 ["+"] "}" CRLF *CHAR8, with the
    /// RFC 7888 non-synchronizing form. The framer has already checked the
    /// size; here the data just has to be present and free of NUL.
    pub(super) fn literal(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'{', "a literal")?;
        let size = self.number()? as usize;
        self.eat(b'+');
        self.expect(b'}', "'}' after literal size")?;
        self.eat(b'\r');
        self.expect(b'\n', "a line end after literal size")?;
        let data = self
            .s
            .get(self.i..self.i.saturating_add(size))
            .ok_or_else(|| "Literal data is missing".to_string())?;
        if data.contains(&0) {
            return Err("NUL in literal; use literal8 for binary data".into());
        }
        self.i += size;
        Ok(data.to_vec())
    }

    /// RFC 9051 9: mailbox = "INBOX" / astring, INBOX case-insensitive.
    pub(super) fn mailbox(&mut self) -> PResult<String> {
        let name = self.astring()?;
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        Ok(name)
    }

    /// RFC 9051 9: list-mailbox = 1*list-char / string.
    pub(super) fn list_mailbox(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || matches!(b, b']' | b'%' | b'*'));
                if a.is_empty() {
                    return Err("Expected a mailbox pattern".into());
                }
                utf8(a.to_vec())
            }
        }
    }

    pub(super) fn seq_set(&mut self) -> PResult<SeqSet> {
        let raw = self.take_while(|b| b.is_ascii_digit() || matches!(b, b':' | b',' | b'*' | b'$'));
        let raw = std::str::from_utf8(raw).map_err(|e| e.to_string())?;
        SeqSet::parse(raw).map_err(|e| format!("Invalid sequence set: {e}"))
    }

    // --- commands ------------------------------------------------------

    fn command_body(&mut self) -> PResult<CommandBody> {
        let name = self.atom_upper("a command name")?;
        let body = match name.as_str() {
            "CAPABILITY" => CommandBody::Capability,
            "NOOP" => CommandBody::Noop,
            "LOGOUT" => CommandBody::Logout,
            "STARTTLS" => CommandBody::StartTls,
            "NAMESPACE" => CommandBody::Namespace,
            "UNAUTHENTICATE" => CommandBody::Unauthenticate,
            "GETQUOTA" => CommandBody::GetQuota {
                root: self.sp_astring_quota()?,
            },
            "GETQUOTAROOT" => CommandBody::GetQuotaRoot {
                mailbox: self.sp_mailbox()?,
            },
            "SETQUOTA" => self.setquota()?,
            "IDLE" => CommandBody::Idle,
            "CHECK" => CommandBody::Check,
            "CLOSE" => CommandBody::Close,
            "UNSELECT" => CommandBody::Unselect,
            "EXPUNGE" => CommandBody::Expunge,
            "LOGIN" => self.login()?,
            "AUTHENTICATE" => self.authenticate()?,
            "ENABLE" => self.enable()?,
            "COMPRESS" => {
                self.sp()?;
                CommandBody::Compress {
                    mechanism: self.atom_upper("a compression mechanism")?,
                }
            }
            "SELECT" => {
                let (mailbox, params) = self.select()?;
                CommandBody::Select { mailbox, params }
            }
            "EXAMINE" => {
                let (mailbox, params) = self.select()?;
                CommandBody::Examine { mailbox, params }
            }
            "CREATE" => self.create()?,
            "DELETE" => CommandBody::Delete {
                mailbox: self.sp_mailbox()?,
            },
            "SUBSCRIBE" => CommandBody::Subscribe {
                mailbox: self.sp_mailbox()?,
            },
            "UNSUBSCRIBE" => CommandBody::Unsubscribe {
                mailbox: self.sp_mailbox()?,
            },
            "RENAME" => CommandBody::Rename {
                from: self.sp_mailbox()?,
                to: self.sp_mailbox()?,
            },
            "LIST" => self.list()?,
            "LSUB" => {
                self.sp()?;
                let reference = self.astring()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                CommandBody::Lsub { reference, pattern }
            }
            "STATUS" => self.status()?,
            "ID" => self.id()?,
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" => self.copy_move(false, false)?,
            "MOVE" => self.copy_move(true, false)?,
            "SEARCH" => self.search(false)?,
            "SORT" => CommandBody::Sort {
                uid: false,
                sort: self.sort()?,
            },
            "THREAD" => CommandBody::Thread {
                uid: false,
                thread: self.thread()?,
            },
            "ESEARCH" => CommandBody::Esearch(self.multisearch()?),
            "UID" => return self.uid(),
            // The framer streams APPEND's message literal; an APPEND that
            // reaches the parser has none.
            "GETMETADATA" => CommandBody::GetMetadata(self.getmetadata()?),
            "NOTIFY" => CommandBody::Notify(self.notify()?),
            // RFC 5267 5: "CANCELUPDATE" 1*(SP quoted).
            "CANCELUPDATE" => {
                let mut tags = Vec::new();
                while self.eat(b' ') {
                    if tags.len() == MAX_LIST_ITEMS {
                        return Err(format!("Too many tags (at most {MAX_LIST_ITEMS})"));
                    }
                    tags.push(String::from_utf8_lossy(&self.quoted()?).into_owned());
                }
                if tags.is_empty() {
                    return Err("CANCELUPDATE needs the tag of a search".into());
                }
                CommandBody::CancelUpdate(tags)
            }
            "SETMETADATA" => CommandBody::SetMetadata(self.setmetadata()?),
            // The framer streams message literals; an APPEND that reaches
            // the parser has none, which only CATENATE of URLs can do.
            "APPEND" | "REPLACE" => return self.append_without_literal(&name),
            _ => return Err(format!("Unknown or unsupported command {name}")),
        };
        self.end()?;
        Ok(body)
    }

    // RFC 9051 6.4.9: UID COPY / MOVE / FETCH / SEARCH / STORE / EXPUNGE.
    fn uid(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let name = self.atom_upper("a command after UID")?;
        let body = match name.as_str() {
            "FETCH" => self.fetch(true)?,
            "STORE" => self.store(true)?,
            "COPY" => self.copy_move(false, true)?,
            "MOVE" => self.copy_move(true, true)?,
            "SEARCH" => self.search(true)?,
            "SORT" => CommandBody::Sort {
                uid: true,
                sort: self.sort()?,
            },
            "THREAD" => CommandBody::Thread {
                uid: true,
                thread: self.thread()?,
            },
            "EXPUNGE" => {
                self.sp()?;
                CommandBody::UidExpunge(self.seq_set()?)
            }
            "REPLACE" => return self.append_without_literal("UID REPLACE"),
            _ => return Err(format!("UID {name} is not a valid command")),
        };
        self.end()?;
        Ok(body)
    }

    /// RFC 4469: an APPEND (or REPLACE) whose messages are all CATENATE
    /// URL parts; without CATENATE, the literal is missing.
    fn append_without_literal(&mut self, name: &str) -> PResult<CommandBody> {
        let upper = self.s.to_ascii_uppercase();
        if !upper.windows(10).any(|w| w == b"CATENATE (") {
            return Err(format!("{name} needs a message literal"));
        }
        let head = super::append::parse_whole(self.s).map_err(|e| e.message)?;
        self.i = self.s.len();
        Ok(CommandBody::Append(Box::new(head)))
    }

    pub(super) fn sp_mailbox(&mut self) -> PResult<String> {
        self.sp()?;
        self.mailbox()
    }

    // RFC 9051 6.2.3: LOGIN SP userid SP password.
    fn login(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let username = self.astring()?;
        self.sp()?;
        let password = self.astring()?;
        Ok(CommandBody::Login { username, password })
    }

    // RFC 9051 6.2.2: AUTHENTICATE SP auth-type [SP (base64 / "=")].
    fn authenticate(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let mechanism = self.atom_upper("an authentication mechanism")?;
        let initial_response = if self.eat(b' ') {
            let r =
                self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            if r.is_empty() {
                return Err("Expected a base64 initial response".into());
            }
            Some(String::from_utf8_lossy(r).into_owned())
        } else {
            None
        };
        Ok(CommandBody::Authenticate {
            mechanism,
            initial_response,
        })
    }

    // RFC 5161 3.1: ENABLE 1*(SP capability).
    fn enable(&mut self) -> PResult<CommandBody> {
        let mut caps = Vec::new();
        while self.eat(b' ') {
            let cap = self.atom_upper("a capability name")?;
            push_item(&mut caps, cap, "capabilities")?;
        }
        if caps.is_empty() {
            return Err("ENABLE needs at least one capability".into());
        }
        Ok(CommandBody::Enable(caps))
    }

    // RFC 2971 3.1: ID SP ("(" string SP nstring *(SP string SP nstring) ")" / NIL).
    fn id(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        if self.eat_word("NIL") {
            return Ok(CommandBody::Id(None));
        }
        self.expect(b'(', "'(' or NIL")?;
        let mut pairs = Vec::new();
        if !self.eat(b')') {
            loop {
                let field = self.string()?;
                self.sp()?;
                let value = self.nstring()?;
                if pairs.len() == MAX_ID_PAIRS {
                    return Err(format!("ID takes at most {MAX_ID_PAIRS} field-value pairs"));
                }
                pairs.push((field, value));
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        Ok(CommandBody::Id(Some(pairs)))
    }

    // RFC 9051 6.4.4: SEARCH; the criteria are `search.rs`'s.
    fn search(&mut self, uid: bool) -> PResult<CommandBody> {
        let program = self.search_program()?;
        Ok(CommandBody::Search { uid, program })
    }
}

fn utf8(bytes: Vec<u8>) -> PResult<String> {
    String::from_utf8(bytes).map_err(|_| "String is not valid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::*;
    use crate::imap::framer::{FrameEvent, Framer};
    use crate::imap::search::SearchKey;
    use crate::imap::seqset::SeqSet;
    use crate::imap::types::Flag;

    fn ok(line: &str) -> CommandBody {
        match parse_command(line.as_bytes()) {
            Ok(c) => c.body,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    fn err(line: &[u8]) -> ParseError {
        match parse_command(line) {
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
            Err(e) => e,
        }
    }

    fn set(s: &str) -> SeqSet {
        SeqSet::parse(s).unwrap()
    }

    #[test]
    fn simple_commands_any_case() {
        let c = parse_command(b"a001 capability").unwrap();
        assert_eq!(c.tag, "a001");
        assert_eq!(c.body, CommandBody::Capability);
        assert_eq!(ok("t NoOp"), CommandBody::Noop);
        assert_eq!(ok("t LOGOUT"), CommandBody::Logout);
        assert_eq!(ok("t STARTTLS"), CommandBody::StartTls);
        assert_eq!(ok("t NAMESPACE"), CommandBody::Namespace);
        assert_eq!(ok("t IDLE"), CommandBody::Idle);
        assert_eq!(ok("t CHECK"), CommandBody::Check);
        assert_eq!(ok("t CLOSE"), CommandBody::Close);
        assert_eq!(ok("t UNSELECT"), CommandBody::Unselect);
        assert_eq!(ok("t EXPUNGE"), CommandBody::Expunge);
        assert_eq!(err(b"t NOOP extra").tag.as_deref(), Some("t"));
        assert_eq!(
            err(b"t NOOP ").message,
            "Unexpected characters at end of command"
        );
    }

    #[test]
    fn lsub_takes_a_reference_and_a_pattern() {
        assert_eq!(
            ok("t LSUB \"\" *"),
            CommandBody::Lsub {
                reference: "".into(),
                pattern: "*".into()
            }
        );
        assert!(err(b"t LSUB \"\"").message.contains("Expected"));
    }

    #[test]
    fn compress_names_its_mechanism() {
        assert_eq!(
            ok("t COMPRESS deflate"),
            CommandBody::Compress {
                mechanism: "DEFLATE".into()
            }
        );
        assert!(err(b"t COMPRESS").message.contains("Expected"));
        assert_eq!(
            err(b"t COMPRESS DEFLATE x").message,
            "Unexpected characters at end of command"
        );
    }

    #[test]
    fn done_is_special() {
        for line in ["DONE", "done", "Done"] {
            assert!(is_idle_done(line.as_bytes()));
            let c = parse_command(line.as_bytes()).unwrap();
            assert_eq!((c.tag.as_str(), c.body), ("", CommandBody::Done));
        }
        assert!(!is_idle_done(b"DONE "));
        assert!(!is_idle_done(b"a DONE"));
        assert_eq!(
            err(b"a DONE").message,
            "Unknown or unsupported command DONE"
        );
    }

    #[test]
    fn tags_and_garbage() {
        assert_eq!(
            err(b""),
            ParseError {
                tag: None,
                message: "Missing or invalid command tag".into()
            }
        );
        assert_eq!(err(b"onlytag").tag, None);
        assert_eq!(err(b"onlytag ").tag.as_deref(), Some("onlytag"));
        assert_eq!(err(b"onlytag ").message, "Expected a command name");
        assert_eq!(err(b"\0 NOOP").tag, None);
        assert_eq!(err(b"\xff\xfe NOOP").tag, None);
        assert_eq!(err(b"a+ NOOP").tag, None);
        assert_eq!(err(b"a NO\0OP").tag.as_deref(), Some("a"));
        assert_eq!(err(b"a \xffNOOP").tag.as_deref(), Some("a"));
        assert_eq!(err(b"a  NOOP").tag.as_deref(), Some("a"));
        assert_eq!(err(b"* NOOP").tag, None);
        assert_eq!(
            err(b"a APPEND INBOX {1+}\r\nx").message,
            "APPEND needs a message literal"
        );
    }

    #[test]
    fn login_with_atoms_quoted_and_literals() {
        let expect = |u: &str, p: &str| CommandBody::Login {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(ok("a LOGIN alice secret"), expect("alice", "secret"));
        assert_eq!(
            ok(r#"a LOGIN "alice" "se\"cr\\et""#),
            expect("alice", r#"se"cr\et"#)
        );
        assert_eq!(
            ok("a LOGIN {5}\r\nalice {6+}\r\nsecret"),
            expect("alice", "secret")
        );
        assert_eq!(ok("a LOGIN {5}\nalice \"\""), expect("alice", ""));
        assert_eq!(
            ok("a login \"j\u{f6}rg\" {4}\r\np w\r"),
            expect("j\u{f6}rg", "p w\r")
        );
        assert_eq!(ok("a LOGIN a]b c"), expect("a]b", "c"));
        assert_eq!(err(b"a LOGIN alice").message, "Expected a space");
        assert_eq!(
            err(br#"a LOGIN "al\ice" x"#).message,
            "Invalid escape in quoted string"
        );
        assert_eq!(
            err(br#"a LOGIN "alice x"#).message,
            "Unterminated quoted string"
        );
        assert_eq!(
            err(b"a LOGIN {9}\r\nabc x").message,
            "Literal data is missing"
        );
        assert_eq!(
            err(b"a LOGIN {3}\r\na\0c x").message,
            "NUL in literal; use literal8 for binary data"
        );
        // literal8 is for APPEND only; `~` reads as an atom here.
        assert_eq!(err(b"a LOGIN ~{3}\r\nabc x").message, "Expected a space");
        assert_eq!(
            err(b"a LOGIN \"\xff\" x").message,
            "String is not valid UTF-8"
        );
        assert_eq!(err(b"a LOGIN (x) y").message, "Expected a string");
    }

    #[test]
    fn authenticate_and_enable() {
        assert_eq!(
            ok("a authenticate plain"),
            CommandBody::Authenticate {
                mechanism: "PLAIN".into(),
                initial_response: None
            }
        );
        assert_eq!(
            ok("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=="),
            CommandBody::Authenticate {
                mechanism: "PLAIN".into(),
                initial_response: Some("AGFsaWNlAHNlY3JldA==".into())
            }
        );
        assert_eq!(
            ok("a AUTHENTICATE SCRAM-SHA-256 ="),
            CommandBody::Authenticate {
                mechanism: "SCRAM-SHA-256".into(),
                initial_response: Some("=".into())
            }
        );
        assert!(err(b"a AUTHENTICATE PLAIN !!")
            .message
            .starts_with("Expected a base64"));
        assert_eq!(
            ok("a ENABLE condstore UTF8=ACCEPT"),
            CommandBody::Enable(vec!["CONDSTORE".into(), "UTF8=ACCEPT".into()])
        );
        assert_eq!(
            err(b"a ENABLE").message,
            "ENABLE needs at least one capability"
        );
    }

    #[test]
    fn mailbox_commands_normalise_inbox() {
        assert_eq!(
            ok("a SELECT inbox"),
            CommandBody::Select {
                mailbox: "INBOX".into(),
                params: SelectParams::default()
            }
        );
        assert_eq!(
            ok("a SELECT \"InBoX\" (CONDSTORE)"),
            CommandBody::Select {
                mailbox: "INBOX".into(),
                params: SelectParams {
                    condstore: true,
                    qresync: None
                }
            }
        );
        assert_eq!(
            ok("a EXAMINE Archive/2024"),
            CommandBody::Examine {
                mailbox: "Archive/2024".into(),
                params: SelectParams::default()
            }
        );
        let qresync = |line: &str| match ok(line) {
            CommandBody::Select { params, .. } => params.qresync.unwrap(),
            other => panic!("not a select: {other:?}"),
        };
        let q = qresync("a SELECT INBOX (QRESYNC (67 90060))");
        assert_eq!((q.uid_validity, q.modseq), (67, ModSeq(90060)));
        assert_eq!((q.known_uids, q.seq_match), (None, None));
        let q = qresync("a SELECT INBOX (QRESYNC (67 90060 41:211,214:541))");
        assert_eq!(q.known_uids, Some(set("41:211,214:541")));
        let q = qresync("a SELECT INBOX (CONDSTORE QRESYNC (67 1 1:* (1:3 5:7)))");
        assert_eq!(q.seq_match, Some((set("1:3"), set("5:7"))));
        let q = qresync("a SELECT INBOX (QRESYNC (67 1 (1 5)))");
        assert_eq!(
            (q.known_uids, q.seq_match),
            (None, Some((set("1"), set("5"))))
        );
        assert!(parse_command(b"a SELECT INBOX (QRESYNC (0 1))").is_err());
        assert!(parse_command(b"a SELECT INBOX (QRESYNC (1))").is_err());
        assert!(parse_command(b"a SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))").is_err());
        assert_eq!(
            err(b"a SELECT INBOX ()").message,
            "Expected a select parameter"
        );
        assert_eq!(
            ok("a CREATE \"Sent Items\""),
            CommandBody::Create {
                mailbox: "Sent Items".into(),
                special_use: Vec::new(),
            }
        );
        assert_eq!(
            ok("a DELETE {4}\r\nJunk"),
            CommandBody::Delete {
                mailbox: "Junk".into()
            }
        );
        assert_eq!(
            ok("a RENAME inbox Old"),
            CommandBody::Rename {
                from: "INBOX".into(),
                to: "Old".into()
            }
        );
        assert_eq!(
            ok("a SUBSCRIBE INBOX.x"),
            CommandBody::Subscribe {
                mailbox: "INBOX.x".into()
            }
        );
        assert_eq!(
            ok("a UNSUBSCRIBE \"Entw\u{fc}rfe\""),
            CommandBody::Unsubscribe {
                mailbox: "Entw\u{fc}rfe".into()
            }
        );
        assert_eq!(err(b"a CREATE").message, "Expected a space");
        assert_eq!(
            err(b"a CREATE foo%").message,
            "Unexpected characters at end of command"
        );
    }

    fn list(reference: &str, patterns: &[&str]) -> ListCommand {
        ListCommand {
            reference: reference.into(),
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..ListCommand::default()
        }
    }

    #[test]
    fn list_basic_form() {
        assert_eq!(ok("a LIST \"\" *"), CommandBody::List(list("", &["*"])));
        assert_eq!(
            ok("a list ~/Mail/ %"),
            CommandBody::List(list("~/Mail/", &["%"]))
        );
        assert_eq!(
            ok("a LIST \"\" \"Sent *\""),
            CommandBody::List(list("", &["Sent *"]))
        );
        assert_eq!(
            ok("a LIST inbox Ar]%"),
            CommandBody::List(list("inbox", &["Ar]%"]))
        );
    }

    #[test]
    fn list_extended_forms() {
        let CommandBody::List(l) = ok(
            "a LIST (SUBSCRIBED RECURSIVEMATCH remote) \"\" (INBOX \"Sent*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN) SPECIAL-USE)",
        ) else {
            panic!("not a LIST");
        };
        assert!(l.extended && l.select.subscribed && l.select.recursive_match && l.select.remote);
        assert_eq!(l.patterns, vec!["INBOX".to_string(), "Sent*".to_string()]);
        assert!(l.returns.children && l.returns.special_use && !l.returns.subscribed);
        assert_eq!(
            l.returns.status,
            Some(vec![StatusItem::Messages, StatusItem::Unseen])
        );
        let CommandBody::List(l) = ok("a LIST () \"\" % RETURN ()") else {
            panic!("not a LIST");
        };
        assert!(l.extended);
        assert_eq!(l.returns, ListReturn::default());
        assert_eq!(
            err(b"a LIST (RECURSIVEMATCH) \"\" *").message,
            "RECURSIVEMATCH needs another selection option"
        );
        assert_eq!(
            err(b"a LIST (BOGUS) \"\" *").message,
            "Unknown LIST selection option BOGUS"
        );
        assert_eq!(
            err(b"a LIST \"\" * RETURN (BOGUS)").message,
            "Unknown LIST return option BOGUS"
        );
        assert_eq!(err(b"a LIST \"\" * RETURNS ()").message, "Expected RETURN");
    }

    #[test]
    fn create_with_use() {
        assert_eq!(
            ok("a CREATE Stuff (USE (\\Drafts \\Archive))"),
            CommandBody::Create {
                mailbox: "Stuff".into(),
                special_use: vec!["\\Drafts".into(), "\\Archive".into()],
            }
        );
        assert!(parse_command(b"a CREATE Stuff (USE (Drafts))").is_err());
        assert!(parse_command(b"a CREATE Stuff (OTHER (x))").is_err());
    }

    #[test]
    fn status_items() {
        assert_eq!(
            ok("a STATUS inbox (messages UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ RECENT MESSAGES)"),
            CommandBody::Status {
                mailbox: "INBOX".into(),
                items: vec![
                    StatusItem::Messages,
                    StatusItem::UidNext,
                    StatusItem::UidValidity,
                    StatusItem::Unseen,
                    StatusItem::Deleted,
                    StatusItem::Size,
                    StatusItem::HighestModSeq,
                    StatusItem::Recent,
                ]
            }
        );
        assert_eq!(
            err(b"a STATUS INBOX (FOO)").message,
            "Unknown status item FOO"
        );
        assert_eq!(err(b"a STATUS INBOX ()").message, "Expected a status item");
        assert_eq!(
            err(b"a STATUS INBOX MESSAGES").message,
            "Expected '(' before status items"
        );
    }

    #[test]
    fn id_command() {
        assert_eq!(ok("a ID NIL"), CommandBody::Id(None));
        assert_eq!(ok("a ID ()"), CommandBody::Id(Some(vec![])));
        assert_eq!(
            ok("a ID (\"name\" \"Thunderbird\" \"version\" NIL)"),
            CommandBody::Id(Some(vec![
                ("name".into(), Some("Thunderbird".into())),
                ("version".into(), None)
            ]))
        );
        let pairs = |n: usize| {
            let inner: Vec<String> = (0..n).map(|i| format!("\"f{i}\" \"v\"")).collect();
            format!("a ID ({})", inner.join(" "))
        };
        assert!(
            matches!(ok(&pairs(MAX_ID_PAIRS)), CommandBody::Id(Some(p)) if p.len() == MAX_ID_PAIRS)
        );
        assert_eq!(
            err(pairs(MAX_ID_PAIRS + 1).as_bytes()).message,
            "ID takes at most 30 field-value pairs"
        );
    }

    #[test]
    fn fetch_macros() {
        let fetch = |line: &str| match ok(line) {
            CommandBody::Fetch { items, .. } => items,
            other => panic!("{other:?}"),
        };
        use FetchAttr::*;
        assert_eq!(
            fetch("a FETCH 1 all"),
            vec![Flags, InternalDate, Rfc822Size, Envelope]
        );
        assert_eq!(
            fetch("a FETCH 1 FAST"),
            vec![Flags, InternalDate, Rfc822Size]
        );
        assert_eq!(
            fetch("a FETCH 1 FULL"),
            vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
        );
        assert_eq!(fetch("a FETCH 1 flags"), vec![Flags]);
        assert_eq!(
            fetch("a FETCH 1 (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY MODSEQ RFC822 RFC822.HEADER RFC822.TEXT)"),
            vec![Uid, Rfc822Size, InternalDate, Envelope, BodyStructure, Body, ModSeq, Rfc822, Rfc822Header, Rfc822Text]
        );
        assert_eq!(
            err(b"a FETCH 1 (ALL)").message,
            "Unknown FETCH attribute ALL"
        );
        assert_eq!(err(b"a FETCH 1 ()").message, "Expected a FETCH attribute");
        assert_eq!(err(b"a FETCH 1 (FLAGS").message, "Expected a space");
        assert_eq!(
            err(b"a FETCH 0 FLAGS").message,
            "Invalid sequence set: 0 is not a valid message number or UID"
        );
    }

    #[test]
    fn list_item_limit_edge() {
        let fetch = |n: usize| format!("a FETCH 1 ({})", vec!["UID"; n].join(" "));
        assert!(
            matches!(ok(&fetch(MAX_LIST_ITEMS)), CommandBody::Fetch { items, .. } if items.len() == MAX_LIST_ITEMS)
        );
        assert_eq!(
            err(fetch(MAX_LIST_ITEMS + 1).as_bytes()).message,
            "Too many FETCH items (at most 1000)"
        );
        let fields = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!("X{i}")).collect();
            format!("a FETCH 1 BODY[HEADER.FIELDS ({})]", names.join(" "))
        };
        assert!(matches!(
            ok(&fields(MAX_LIST_ITEMS)),
            CommandBody::Fetch { .. }
        ));
        assert_eq!(
            err(fields(MAX_LIST_ITEMS + 1).as_bytes()).message,
            "Too many header field names (at most 1000)"
        );
        let flags = |n: usize| format!("a STORE 1 +FLAGS ({})", vec!["\\Seen"; n].join(" "));
        assert!(matches!(
            ok(&flags(MAX_LIST_ITEMS)),
            CommandBody::Store { .. }
        ));
        assert_eq!(
            err(flags(MAX_LIST_ITEMS + 1).as_bytes()).message,
            "Too many flags (at most 1000)"
        );
        let enable = |n: usize| format!("a ENABLE{}", " X".repeat(n));
        assert!(
            matches!(ok(&enable(MAX_LIST_ITEMS)), CommandBody::Enable(c) if c.len() == MAX_LIST_ITEMS)
        );
        assert_eq!(
            err(enable(MAX_LIST_ITEMS + 1).as_bytes()).message,
            "Too many capabilities (at most 1000)"
        );
    }

    #[test]
    fn section_part_depth_edge() {
        let body = |n: usize| format!("a FETCH 1 BODY[{}]", vec!["1"; n].join("."));
        assert!(matches!(
            ok(&body(MAX_SECTION_PARTS)),
            CommandBody::Fetch { .. }
        ));
        assert_eq!(
            err(body(MAX_SECTION_PARTS + 1).as_bytes()).message,
            "Section part too deep (at most 100 numbers)"
        );
    }

    #[test]
    fn fetch_sections() {
        let one = |line: &str| match ok(line) {
            CommandBody::Fetch { mut items, .. } if items.len() == 1 => items.remove(0),
            other => panic!("{other:?}"),
        };
        let section = |part: Vec<u32>, text: Option<SectionText>| Section { part, text };
        assert_eq!(
            one("a FETCH 1 BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100>"),
            FetchAttr::BodySection {
                peek: true,
                section: section(
                    vec![],
                    Some(SectionText::HeaderFields(vec![
                        "From".into(),
                        "Subject".into()
                    ]))
                ),
                partial: Some((0, 100)),
            }
        );
        assert_eq!(
            one("a FETCH 1 body[]"),
            FetchAttr::BodySection {
                peek: false,
                section: Section::default(),
                partial: None
            }
        );
        assert_eq!(
            one("a FETCH 1 BODY[1.2.MIME]"),
            FetchAttr::BodySection {
                peek: false,
                section: section(vec![1, 2], Some(SectionText::Mime)),
                partial: None
            }
        );
        assert_eq!(
            one("a FETCH 1 BODY[2.HEADER.FIELDS.NOT (\"X-Spam\" received)]"),
            FetchAttr::BodySection {
                peek: false,
                section: section(
                    vec![2],
                    Some(SectionText::HeaderFieldsNot(vec![
                        "X-Spam".into(),
                        "received".into()
                    ]))
                ),
                partial: None
            }
        );
        assert_eq!(
            one("a FETCH 1 BODY[3]<5.10>"),
            FetchAttr::BodySection {
                peek: false,
                section: section(vec![3], None),
                partial: Some((5, 10))
            }
        );
        assert_eq!(
            one("a FETCH 1 BODY.PEEK[TEXT]"),
            FetchAttr::BodySection {
                peek: true,
                section: section(vec![], Some(SectionText::Text)),
                partial: None
            }
        );
        assert_eq!(
            one("a FETCH 1 BODY[4.1.HEADER]"),
            FetchAttr::BodySection {
                peek: false,
                section: section(vec![4, 1], Some(SectionText::Header)),
                partial: None
            }
        );
        assert_eq!(
            one("a FETCH 1 BINARY.PEEK[1]<0.5>"),
            FetchAttr::Binary {
                peek: true,
                part: vec![1],
                partial: Some((0, 5))
            }
        );
        assert_eq!(
            one("a FETCH 1 BINARY[]"),
            FetchAttr::Binary {
                peek: false,
                part: vec![],
                partial: None
            }
        );
        assert_eq!(
            one("a FETCH 1 BINARY.SIZE[2.1]"),
            FetchAttr::BinarySize { part: vec![2, 1] }
        );
        for bad in [
            "a FETCH 1 BODY[MIME]",
            "a FETCH 1 BODY[0]",
            "a FETCH 1 BODY[1.]",
            "a FETCH 1 BODY[HEADER.FIELDS ()]",
            "a FETCH 1 BODY[HEADER.FIELDS]",
            "a FETCH 1 BODY[HEADER]<1.0>",
            "a FETCH 1 BODY[HEADER]<1>",
            "a FETCH 1 BODY[TEXT",
            "a FETCH 1 BODY.PEEK",
            "a FETCH 1 BINARY[TEXT]",
            "a FETCH 1 BODY[]<4294967296.1>",
        ] {
            assert!(parse_command(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn fetch_changedsince_and_uid() {
        use crate::imap::search::PartialRange;
        assert_eq!(
            ok("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)"),
            CommandBody::Fetch {
                set: set("1:*"),
                items: vec![FetchAttr::Flags],
                uid: true,
                changed_since: Some(ModSeq(12345)),
                vanished: false,
                partial: None,
            }
        );
        // RFC 9394 3.2: PARTIAL, from either end, reversed ranges read
        // in order.
        assert!(matches!(
            ok("a UID FETCH 1:* FLAGS (PARTIAL -1:-30)"),
            CommandBody::Fetch {
                partial: Some(PartialRange {
                    from_end: true,
                    first: 1,
                    last: 30
                }),
                ..
            }
        ));
        assert!(matches!(
            ok("a FETCH 1:* FLAGS (CHANGEDSINCE 4 PARTIAL 30:11)"),
            CommandBody::Fetch {
                partial: Some(PartialRange {
                    from_end: false,
                    first: 11,
                    last: 30
                }),
                changed_since: Some(ModSeq(4)),
                ..
            }
        ));
        assert_eq!(
            err(b"a FETCH 1 FLAGS (PARTIAL 0:5)").message,
            "Expected a non-zero number"
        );
        assert_eq!(
            err(b"a FETCH 1 FLAGS (PARTIAL -1:5)").message,
            "Expected '-' in a PARTIAL range counted from the end"
        );
        assert!(ok("a FETCH 1 FLAGS (changedsince 9223372036854775807)") != CommandBody::Noop);
        assert_eq!(
            err(b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)").message,
            "Mod-sequence value out of range"
        );
        assert_eq!(
            err(b"a FETCH 1 FLAGS (CHANGEDSINCE 0)").message,
            "Mod-sequence value out of range"
        );
        assert_eq!(
            err(b"a FETCH 1 FLAGS (VANISHED)").message,
            "Unsupported FETCH modifier VANISHED"
        );
        assert_eq!(
            err(b"a UID FETCH 1 FLAGS (VANISHED)").message,
            "VANISHED needs CHANGEDSINCE"
        );
        assert!(matches!(
            ok("a UID FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)"),
            CommandBody::Fetch {
                vanished: true,
                changed_since: Some(ModSeq(5)),
                ..
            }
        ));
    }

    #[test]
    fn store_forms() {
        assert_eq!(
            ok("a STORE 2:4 +FLAGS.SILENT (\\Deleted $Junk)"),
            CommandBody::Store {
                set: set("2:4"),
                uid: false,
                action: StoreAction::Add,
                silent: true,
                flags: vec![Flag::Deleted, Flag::Keyword("$Junk".into())],
                unchanged_since: None,
            }
        );
        assert_eq!(
            ok("a uid store 7 (UNCHANGEDSINCE 0) -flags \\seen \\Answered"),
            CommandBody::Store {
                set: set("7"),
                uid: true,
                action: StoreAction::Remove,
                silent: false,
                flags: vec![Flag::Seen, Flag::Answered],
                unchanged_since: Some(ModSeq(0)),
            }
        );
        assert_eq!(
            ok("a STORE * FLAGS ()"),
            CommandBody::Store {
                set: set("*"),
                uid: false,
                action: StoreAction::Replace,
                silent: false,
                flags: vec![],
                unchanged_since: None,
            }
        );
        assert_eq!(
            err(b"a STORE 1 +FLAGS (\\Recent)").message,
            "\\Recent cannot be stored"
        );
        assert_eq!(
            err(b"a STORE 1 +FLAGS \\Bogus").message,
            "\\Bogus is not a flag that can be stored"
        );
        assert_eq!(err(b"a STORE 1 +FLAGS (\\*)").message, "Expected a flag");
        assert_eq!(err(b"a STORE 1 +FLAGS").message, "Expected a space");
        assert_eq!(
            err(b"a STORE 1 FLAGSX (x)").message,
            "Unknown STORE item FLAGSX"
        );
        assert_eq!(err(b"a STORE 1 +FLAGS (a").message, "Expected a space");
    }

    #[test]
    fn copy_move_expunge_search() {
        assert_eq!(
            ok("a COPY 1:3,5 inbox"),
            CommandBody::Copy {
                set: set("1:3,5"),
                mailbox: "INBOX".into(),
                uid: false
            }
        );
        assert_eq!(
            ok("a UID COPY 9 Trash"),
            CommandBody::Copy {
                set: set("9"),
                mailbox: "Trash".into(),
                uid: true
            }
        );
        assert_eq!(
            ok("a MOVE $ Trash"),
            CommandBody::Move {
                set: SeqSet::SearchResult,
                mailbox: "Trash".into(),
                uid: false
            }
        );
        assert_eq!(
            ok("a uid move 4294967295 \"A B\""),
            CommandBody::Move {
                set: set("4294967295"),
                mailbox: "A B".into(),
                uid: true
            }
        );
        assert_eq!(ok("a UID EXPUNGE 3:1"), CommandBody::UidExpunge(set("3:1")));
        assert!(matches!(
            ok("a UID SEARCH SUBJECT {3}\r\nabc"),
            CommandBody::Search { uid: true, program } if program.keys == vec![SearchKey::Subject("abc".into())]
        ));
        assert_eq!(err(b"a SEARCH").message, "Expected a space");
        assert_eq!(err(b"a SEARCH ").message, "Expected a search key");
        assert_eq!(
            err(b"a UID FOO 1").message,
            "UID FOO is not a valid command"
        );
        assert_eq!(err(b"a UID").message, "Expected a space");
        assert_eq!(
            err(b"a COPY 1:0 x").message,
            "Invalid sequence set: 0 is not a valid message number or UID"
        );
        assert_eq!(
            err(b"a COPY x y").message,
            "Invalid sequence set: empty sequence set"
        );
    }

    /// Deterministic xorshift64, so the test needs no rand crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // Pieces that steer the generator into interesting corners.
        const PIECES: &[&[u8]] = &[
            b"a1 ",
            b"UID ",
            b"FETCH ",
            b"STORE ",
            b"LOGIN ",
            b"SELECT ",
            b"ID (",
            b"BODY.PEEK[",
            b"HEADER.FIELDS (",
            b"]<",
            b"{3}\r\n",
            b"{2+}\r\n",
            b"~{1}\r\n",
            b"{99999999}\r\n",
            b"{4294967296+}\r\n",
            b"\"",
            b"\\",
            b"(",
            b")",
            b" ",
            b"\r\n",
            b"\n",
            b"*",
            b":",
            b",",
            b"1",
            b"0",
            b"+FLAGS",
            b"\\Seen",
            b"\0",
            b"\xff",
            b"DONE\r\n",
            b"$",
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..rng.next() % 40 {
                if rng.next() % 3 == 0 {
                    input.push(rng.next() as u8);
                } else {
                    input.extend_from_slice(PIECES[(rng.next() as usize) % PIECES.len()]);
                }
            }
            let mut framer = Framer::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let n = ((rng.next() % 7) as usize + 1).min(rest.len());
                framer.feed(&rest[..n]);
                rest = &rest[n..];
                while let Some(event) = framer.next_event() {
                    if let FrameEvent::Command(frame) = event {
                        let _ = parse_command(&frame);
                    }
                }
            }
            // And the whole input as one frame, straight to the parser.
            let _ = parse_command(&input);
        }
    }
}
