//! The IMAP session actor: one per connection on the IMAP and IMAPS
//! listeners.
//!
//! The reader task hands it bytes; the sans-IO [`Framer`] and parser of
//! `roost-protocols` turn them into commands; this actor applies them, one
//! at a time, against the store (reads) and the account actor (every
//! change). While a mailbox is selected the session subscribes to its
//! mailbox actor; change events are written at once while IDLE, and
//! otherwise at the end of the next command that may carry them
//! (RFC 9051 7: no EXPUNGE during FETCH, STORE or SEARCH by sequence number).
//!
//! One file per command family: `auth` (LOGIN, AUTHENTICATE), `mailboxes`
//! (LIST, CREATE, DELETE, RENAME, STATUS, SUBSCRIBE), `select` (SELECT,
//! EXAMINE, CLOSE, UNSELECT and the selected view), `fetch`, `messages`
//! (STORE, EXPUNGE, COPY, MOVE).

mod append;
mod auth;
mod compress;
mod context;
mod fetch;
mod mailboxes;
mod messages;
mod metadata;
mod notify;
mod progress;
mod search;

pub use progress::PROGRESS_INTERVAL;
mod select;
mod view;

use crate::account::MAILBOX_DELIMITER;
use crate::conn::{
    shut_down, spawn_reader, upgrade_to_tls, write_out, BoxStream, Credit, Input, Peer, Reclaim,
    Writer, MAX_PENDING_OUTPUT,
};
use crate::listener::{Protocol, Services};
use crate::mailbox::MailboxNotice;
use fetch::FetchModifiers;
use messages::StoreRequest;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_protocols::imap::command::{Command, CommandBody};
use roost_protocols::imap::framer::{
    FrameEvent, Framer, LiteralLimit, MAX_COMMAND_LITERALS, MAX_COMMAND_LITERAL_BYTES,
    MAX_LINE_LENGTH, MAX_LITERAL_SIZE,
};
use roost_protocols::imap::parser::parse_command;
use roost_protocols::imap::response::{self, Code, Status};
use roost_protocols::imap::state::SessionState;
use roost_store::AccountId;
use select::Selected;
use std::time::Duration;
use tokio::io::ReadHalf;
use tracing::{debug, info_span, Instrument};

/// RFC 9051 5.4: an idle client is logged out after at least 30 minutes.
pub const IMAP_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Commands answered BAD in one session before the server gives up.
pub const MAX_BAD_COMMANDS: u32 = 20;

/// What this server announces (RFC 9051 7.2.2). Only what is implemented.
pub const CAPABILITIES: &[&str] = &[
    "IMAP4rev2",
    "IMAP4rev1",
    "LITERAL+",
    "MULTIAPPEND",
    "CATENATE",
    "REPLACE",
    "IDLE",
    "MOVE",
    "UIDPLUS",
    "ESEARCH",
    "SEARCHRES",
    "WITHIN",
    "SAVEDATE",
    "SORT",
    "SORT=DISPLAY",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "ESORT",
    "CONTEXT=SEARCH",
    "CONTEXT=SORT",
    "MULTISEARCH",
    "NOTIFY",
    "PARTIAL",
    "INPROGRESS",
    "CONDSTORE",
    "QRESYNC",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "CHILDREN",
    "UNSELECT",
    "NAMESPACE",
    "ID",
    "ENABLE",
    "UNAUTHENTICATE",
    "UIDONLY",
    "OBJECTID",
    "PREVIEW",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "METADATA",
    "LIST-METADATA",
    "SASL-IR",
    "COMPRESS=DEFLATE",
];

pub struct ImapSession;

pub struct ImapArgs {
    pub stream: BoxStream,
    pub peer: Peer,
    pub protocol: Protocol,
    pub services: Services,
    pub guard: crate::conn::ConnGuard,
    /// Start logged in to this account (`roost admin imapserve`).
    pub preauth: Option<(String, AccountId)>,
}

pub enum ImapMsg {
    Input(Input),
    Notice(MailboxNotice),
    /// RFC 5465: a change in the session's account, for NOTIFY.
    Account(std::sync::Arc<crate::events::ChangeEvent>),
    /// NOTIFY's events came faster than the session took them.
    AccountLagged,
}

/// How a command ends: the tagged status line, unless the command answers
/// later (IDLE, AUTHENTICATE waiting for its response, LOGOUT).
pub enum Done {
    Tagged(Status, Option<Code>, String),
    Later,
}

impl Done {
    pub fn ok(text: impl Into<String>) -> Done {
        Done::Tagged(Status::Ok, None, text.into())
    }
    pub fn no(text: impl Into<String>) -> Done {
        Done::Tagged(Status::No, None, text.into())
    }
    pub fn no_code(code: Code, text: impl Into<String>) -> Done {
        Done::Tagged(Status::No, Some(code), text.into())
    }
    pub fn bad(text: impl Into<String>) -> Done {
        Done::Tagged(Status::Bad, None, text.into())
    }
}

pub struct ImapState {
    /// `imap` or `imaps`, for the login-attempt records.
    protocol: Protocol,
    /// The account of the client's TLS certificate key, if registered.
    key_account: Option<crate::auth::KeyAccount>,
    myself: ActorRef<ImapMsg>,
    writer: Writer,
    credit: Credit,
    /// Takes the read half back from the reader task, for STARTTLS.
    reclaim: Reclaim<ReadHalf<BoxStream>>,
    framer: Framer,
    peer: Peer,
    services: Services,
    state: SessionState,
    account: Option<(String, AccountId)>,
    selected: Option<Selected>,
    /// The tag of the IDLE command in progress.
    idle: Option<String>,
    /// The tag of an AUTHENTICATE waiting for the client's response.
    authenticating: Option<(String, crate::auth::SaslRun)>,
    /// RFC 7162 3.1: CONDSTORE enabled (by ENABLE or a command that uses
    /// it): flag changes carry MODSEQ.
    condstore: bool,
    /// RFC 7162 3.2.3: QRESYNC enabled: expunges are reported as VANISHED.
    qresync: bool,
    /// RFC 9051 3.1 / RFC 5161: the client enabled IMAP4rev2.
    rev2: bool,
    /// RFC 9586: the client enabled UIDONLY.
    uidonly: bool,
    /// RFC 5182: the UIDs the last SEARCH ... SAVE found, for `$`.
    saved_search: Vec<roost_protocols::imap::types::Uid>,
    /// RFC 5465: what NOTIFY SET asked for.
    notify: Option<notify::Notify>,
    /// RFC 5267 4.3: live searches and sorts of the selected mailbox.
    contexts: Vec<context::LiveContext>,
    context_mark: context::ViewMark,
    /// The APPEND whose message literals are arriving.
    append: Option<append::Append>,
    auth_failures: u32,
    bad_commands: u32,
    /// RFC 4978: set once COMPRESS DEFLATE succeeded.
    deflate: Option<compress::Deflate>,
    /// Bytes that arrived after COMPRESS in the same read: compressed,
    /// waiting to be inflated.
    compressed_backlog: Option<Vec<u8>>,
    out: Vec<u8>,
    closing: bool,
    span: tracing::Span,
    _guard: crate::conn::ConnGuard,
}

impl Actor for ImapSession {
    type Msg = ImapMsg;
    type State = ImapState;
    type Arguments = ImapArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ImapMsg>,
        args: ImapArgs,
    ) -> Result<ImapState, ActorProcessingErr> {
        let span = info_span!("imap", peer = %args.peer.addr, protocol = ?args.protocol);
        let (read, writer) = tokio::io::split(args.stream);
        let me = myself.clone();
        let (credit, reclaim) = spawn_reader(
            read,
            IMAP_IDLE_TIMEOUT,
            args.services.shutdown.clone(),
            move |input| me.send_message(ImapMsg::Input(input)).is_ok(),
        );
        let mut state = ImapState {
            key_account: None,
            protocol: args.protocol,
            myself,
            writer,
            credit,
            reclaim,
            framer: Framer::new(),
            peer: args.peer,
            services: args.services,
            state: SessionState::NotAuthenticated,
            account: None,
            selected: None,
            idle: None,
            authenticating: None,
            append: None,
            saved_search: Vec::new(),
            notify: None,
            contexts: Vec::new(),
            context_mark: context::NO_MARK,
            condstore: false,
            qresync: false,
            rev2: false,
            uidonly: false,
            auth_failures: 0,
            bad_commands: 0,
            deflate: None,
            compressed_backlog: None,
            out: Vec::new(),
            closing: false,
            span,
            _guard: args.guard,
        };
        state.learn_client_key().await;
        // `roost admin imapserve`: the administrator's tunnel starts
        // logged in, whatever the account's login settings (RFC 9051 7.1.4).
        if let Some((account, id)) = args.preauth {
            state.account = Some((account.clone(), id));
            state.state = SessionState::Authenticated;
            let caps = state.capabilities();
            response::preauth(
                &mut state.out,
                Some(Code::Capability(caps)),
                &format!("Logged in as {account} by the administrator"),
            );
            state.flush_out().await?;
            return Ok(state);
        }
        // RFC 9051 7.1.4: a registered client key with preauth on starts
        // the session logged in.
        if let Some(key) = state
            .key_account
            .clone()
            .filter(|k| k.preauth && k.disabled.is_none())
        {
            crate::auth::record_key_login(&state.login_context(), "PREAUTH", &key);
            state.account = Some((key.account.clone(), key.id));
            state.state = SessionState::Authenticated;
            let caps = state.capabilities();
            response::preauth(
                &mut state.out,
                Some(Code::Capability(caps)),
                &format!("Logged in as {}", key.account),
            );
            state.flush_out().await?;
            return Ok(state);
        }
        let caps = state.capabilities();
        response::untagged_status(
            &mut state.out,
            Status::Ok,
            Some(Code::Capability(caps)),
            "roost ready",
        );
        state.flush_out().await?;
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ImapMsg>,
        state: &mut ImapState,
    ) -> Result<(), ActorProcessingErr> {
        state.unselect().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ImapMsg>,
        msg: ImapMsg,
        state: &mut ImapState,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        async {
            match msg {
                ImapMsg::Input(Input::Bytes(bytes)) => {
                    state.input(bytes).await;
                    state.credit.grant();
                }
                ImapMsg::Input(Input::Closed) => state.closing = true,
                ImapMsg::Input(Input::TimedOut) => {
                    response::bye(&mut state.out, None, "Autologout; idle for too long");
                    state.closing = true;
                }
                ImapMsg::Input(Input::Shutdown) => {
                    response::bye(&mut state.out, None, "Server shutting down");
                    state.closing = true;
                }
                ImapMsg::Notice(notice) => state.notice(notice).await,
                ImapMsg::Account(event) => state.account_event(event).await,
                ImapMsg::AccountLagged => state.notify_overflow(),
            }
            state.write_held_events().await;
            let _ = state.flush_out().await;
            if state.closing {
                shut_down(&mut state.writer).await;
                myself.stop(None);
            }
        }
        .instrument(span)
        .await;
        Ok(())
    }
}

impl ImapState {
    fn capabilities(&self) -> Vec<String> {
        let mut caps: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
        caps.push(format!("APPENDLIMIT={}", append::append_limit(self)));
        if self.state == SessionState::NotAuthenticated {
            caps.extend(
                self.mechanisms()
                    .iter()
                    .map(|m| format!("AUTH={}", m.name())),
            );
            // RFC 9051 6.2.3: where passwords may not be sent, say so
            // instead of offering LOGIN only to refuse it.
            if !self.peer.tls_or_local() {
                caps.push("LOGINDISABLED".into());
            }
        }
        // RFC 9051 6.2.1: offered before authentication, on a connection
        // not yet in TLS, where a certificate is configured.
        if self.state == SessionState::NotAuthenticated
            && !self.peer.tls
            && self.services.tls.is_some()
        {
            caps.push("STARTTLS".into());
        }
        caps
    }

    async fn flush_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        if let Some(d) = &mut self.deflate {
            out = d.deflate(&out).map_err(std::io::Error::other)?;
        }
        write_out(&mut self.writer, &out).await
    }

    /// Writes the output out once it passes [`MAX_PENDING_OUTPUT`]; a
    /// failed write ends the session.
    async fn write_out_if_full(&mut self) -> std::io::Result<()> {
        if self.out.len() < MAX_PENDING_OUTPUT {
            return Ok(());
        }
        let r = self.flush_out().await;
        if r.is_err() {
            self.closing = true;
        }
        r
    }

    /// Bytes from the client: inflated piece by piece when COMPRESS is on,
    /// each piece framed and its commands run before the next is made.
    async fn input(&mut self, bytes: Vec<u8>) {
        let mut bytes = bytes;
        loop {
            if self.deflate.is_none() {
                self.framer.feed(&bytes);
                self.drain_frames().await;
            } else {
                let mut pos = 0;
                while !self.closing {
                    let Some(d) = &mut self.deflate else { break };
                    match d.inflate_piece(&bytes, &mut pos) {
                        Ok(Some(piece)) => {
                            let piece = piece.to_vec();
                            self.framer.feed(&piece);
                            self.drain_frames().await;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            response::bye(&mut self.out, None, &e);
                            self.closing = true;
                        }
                    }
                }
            }
            match self.compressed_backlog.take() {
                Some(rest) if !rest.is_empty() && !self.closing => bytes = rest,
                _ => return,
            }
        }
    }

    /// RFC 9051 6.2.1: STARTTLS. The OK goes out in the clear; whatever the
    /// client sent after the command in the clear is thrown away, never
    /// run after the handshake; then the same stream continues in TLS.
    async fn starttls(&mut self, tag: &str) -> Done {
        if self.peer.tls {
            return Done::bad("TLS is already active");
        }
        let (Some(acceptor), Some(setup)) =
            (self.services.tls.clone(), self.services.tls_setup.clone())
        else {
            return Done::no("STARTTLS is not available: no certificate is configured");
        };
        response::tagged(
            &mut self.out,
            tag,
            Status::Ok,
            None,
            "Begin TLS negotiation now",
        );
        if self.flush_out().await.is_err() {
            self.closing = true;
            return Done::Later;
        }
        let discarded = self.framer.take_pending();
        if !discarded.is_empty() {
            debug!(
                bytes = discarded.len(),
                "dropped input pipelined after STARTTLS"
            );
        }
        let me = self.myself.clone();
        let upgraded = upgrade_to_tls(
            &mut self.reclaim,
            &mut self.credit,
            &mut self.writer,
            crate::conn::TlsUpgrade {
                acceptor: &acceptor,
                setup: &setup,
                protocol: self.protocol,
            },
            IMAP_IDLE_TIMEOUT,
            self.services.shutdown.clone(),
            move |input| me.send_message(ImapMsg::Input(input)).is_ok(),
        )
        .await;
        let Some(facts) = upgraded else {
            debug!("STARTTLS handshake failed");
            self.closing = true;
            return Done::Later;
        };
        self.peer.tls = true;
        self.peer.binding = facts.binding;
        self.peer.client_key = facts.client_key;
        self.learn_client_key().await;
        Done::Later
    }

    /// RFC 4978 3: the OK goes out uncompressed; everything after it, both
    /// ways, is compressed.
    async fn compress(&mut self, tag: &str, mechanism: &str) -> Done {
        if self.deflate.is_some() {
            return Done::no_code(
                Code::Other("COMPRESSIONACTIVE".into()),
                "DEFLATE is already active",
            );
        }
        if mechanism != "DEFLATE" {
            return Done::bad(format!("Unknown compression mechanism {mechanism}"));
        }
        response::tagged(&mut self.out, tag, Status::Ok, None, "DEFLATE active");
        if self.flush_out().await.is_err() {
            self.closing = true;
            return Done::Later;
        }
        self.deflate = Some(compress::Deflate::new());
        // What the client sent after COMPRESS is already compressed.
        self.compressed_backlog = Some(self.framer.take_pending());
        Done::Later
    }

    async fn drain_frames(&mut self) {
        while !self.closing {
            let Some(event) = self.framer.next_event() else {
                break;
            };
            match event {
                FrameEvent::Command(frame) => {
                    self.frame(frame).await;
                    let _ = self.write_out_if_full().await;
                }
                FrameEvent::ContinuationNeeded => {
                    response::continuation(&mut self.out, "Ready for literal data");
                    // The client waits for this before sending the literal.
                    let _ = self.flush_out().await;
                }
                FrameEvent::LineTooLong { tag } => {
                    // A streamed APPEND is over; its staged files go.
                    self.append = None;
                    self.bad(
                        tag.as_deref(),
                        Some(Code::TooBig),
                        &format!("Command line too long (at most {MAX_LINE_LENGTH} bytes)"),
                    )
                }
                FrameEvent::LiteralTooLarge { tag, size, reason } => {
                    self.append = None;
                    self.literal_too_large(tag.as_deref(), size, reason);
                }
                FrameEvent::AppendLiteral { head, size, .. } => {
                    self.append_literal(&head, size).await
                }
                FrameEvent::LiteralData(data) => self.append_data(data).await,
                FrameEvent::LiteralEnd => self.append_end_literal().await,
                FrameEvent::AppendEnd { tail } => {
                    self.append_end(&tail).await;
                    let _ = self.write_out_if_full().await;
                }
            }
        }
    }

    /// A literal past a limit: `NO [TOOBIG]`, and the session goes on.
    fn literal_too_large(&mut self, tag: Option<&str>, size: u64, reason: LiteralLimit) {
        let text = match reason {
            LiteralLimit::Size => {
                format!("Literal of {size} bytes is too large (at most {MAX_LITERAL_SIZE})")
            }
            LiteralLimit::CommandBytes => format!(
                "Too much literal data in one command (at most {MAX_COMMAND_LITERAL_BYTES} bytes)"
            ),
            LiteralLimit::Count => {
                format!("Too many literals in one command (at most {MAX_COMMAND_LITERALS})")
            }
        };
        match tag {
            Some(tag) => {
                response::tagged(&mut self.out, tag, Status::No, Some(Code::TooBig), &text)
            }
            None => self.bad(None, Some(Code::TooBig), &text),
        }
    }

    /// A BAD answer, counted towards [`MAX_BAD_COMMANDS`].
    fn bad(&mut self, tag: Option<&str>, code: Option<Code>, text: &str) {
        // DONE outside IDLE has no tag: its answer is untagged.
        match tag.filter(|t| !t.is_empty()) {
            Some(tag) => response::tagged(&mut self.out, tag, Status::Bad, code, text),
            None => response::untagged_status(&mut self.out, Status::Bad, code, text),
        }
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            response::bye(&mut self.out, None, "Too many invalid commands");
            self.closing = true;
        }
    }

    async fn frame(&mut self, frame: Vec<u8>) {
        if let Some((tag, exchange)) = self.authenticating.take() {
            return self.authenticate_response(&tag, exchange, &frame).await;
        }
        if let Some(tag) = self.idle.clone() {
            // RFC 9051 6.3.13: only DONE ends IDLE.
            if roost_protocols::imap::parser::is_idle_done(&frame) {
                self.idle = None;
                self.sync_view().await;
                response::tagged(&mut self.out, &tag, Status::Ok, None, "IDLE terminated");
            } else {
                self.idle = None;
                self.bad(Some(&tag), None, "Expected DONE to end IDLE");
            }
            return;
        }
        match parse_command(&frame) {
            Ok(cmd) => self.command(cmd).await,
            Err(e) => self.bad(e.tag.as_deref(), None, &e.message),
        }
    }

    async fn command(&mut self, cmd: Command) {
        let Command { tag, body } = cmd;
        let name = body.name();
        if !body.allowed_in(&self.state) {
            let text = match self.state {
                SessionState::NotAuthenticated => format!("{name} requires authentication"),
                // LOGIN or AUTHENTICATE again is not helped by a selection.
                SessionState::Authenticated
                    if body.allowed_in(&SessionState::Selected { read_only: false }) =>
                {
                    format!("{name} requires a selected mailbox")
                }
                _ => format!("{name} is not allowed now"),
            };
            return self.bad(Some(&tag), None, &text);
        }
        // RFC 9586 3: once UIDONLY is on, no message numbers.
        if self.uidonly && body.uses_sequence_numbers() {
            return self.bad(
                Some(&tag),
                Some(Code::UidRequired),
                "Message numbers are not allowed once UIDONLY is enabled",
            );
        }
        // RFC 9051 7.5.2: no EXPUNGE while a client counts on sequence
        // numbers staying put.
        let may_expunge = body.facts().may_expunge;
        let span = tracing::debug_span!("command", %tag, name);
        let done = self.run(&tag, body).instrument(span).await;
        match done {
            Done::Later => {}
            Done::Tagged(status, code, text) => {
                if self.selected.is_some() && may_expunge {
                    self.sync_view().await;
                }
                if status == Status::Bad {
                    self.bad(Some(&tag), code, &text);
                } else {
                    response::tagged(&mut self.out, &tag, status, code, &text);
                }
            }
        }
    }

    async fn run(&mut self, tag: &str, body: CommandBody) -> Done {
        debug!(command = body.name(), "imap command");
        let body = match self.names_in(body) {
            Ok(b) => b,
            Err(e) => return Done::bad(e),
        };
        match body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
                response::capability(&mut self.out, &caps);
                Done::ok("CAPABILITY completed")
            }
            CommandBody::Noop | CommandBody::Check => Done::ok("NOOP completed"),
            CommandBody::Logout => {
                response::bye(&mut self.out, None, "roost logging out");
                response::tagged(&mut self.out, tag, Status::Ok, None, "LOGOUT completed");
                self.unselect().await;
                self.state = SessionState::Logout;
                self.closing = true;
                Done::Later
            }
            CommandBody::Id(_) => {
                response::id(
                    &mut self.out,
                    Some(&[("name", Some("roost")), ("vendor", Some("roost"))]),
                );
                Done::ok("ID completed")
            }
            CommandBody::Enable(caps) => self.enable(&caps),
            CommandBody::Namespace => {
                response::namespace(&mut self.out, Some(("", Some(MAILBOX_DELIMITER))));
                Done::ok("NAMESPACE completed")
            }
            CommandBody::StartTls => self.starttls(tag).await,
            CommandBody::Login { username, password } => self.login(&username, &password).await,
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => self.authenticate(tag, &mechanism, initial_response).await,
            CommandBody::Select { mailbox, params } => self.select(&mailbox, false, params).await,
            CommandBody::Examine { mailbox, params } => self.select(&mailbox, true, params).await,
            CommandBody::Close => self.close(true).await,
            CommandBody::Unselect => self.close(false).await,
            CommandBody::Unauthenticate => self.unauthenticate().await,
            CommandBody::GetQuota { root } => self.get_quota(&root).await,
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(&mailbox).await,
            // RFC 9208 4.1.3: limits are the administrator's (`roost admin
            // account quota`); QUOTASET is not offered.
            CommandBody::Append(head) => {
                self.append_whole(*head).await;
                Done::Later
            }
            CommandBody::Notify(cmd) => self.notify(cmd).await,
            CommandBody::CancelUpdate(tags) => self.cancel_update(&tags),
            CommandBody::GetMetadata(get) => self.getmetadata(get).await,
            CommandBody::SetMetadata(set) => self.setmetadata(set).await,
            CommandBody::SetQuota { .. } => {
                Done::no_code(Code::NoPerm, "Quotas are set by the administrator")
            }
            CommandBody::Idle => {
                self.idle = Some(tag.to_string());
                self.sync_view().await;
                response::continuation(&mut self.out, "idling");
                Done::Later
            }
            CommandBody::Done => Done::bad("DONE without IDLE"),
            CommandBody::Compress { mechanism } => self.compress(tag, &mechanism).await,
            CommandBody::List(cmd) => self.list(cmd).await,
            CommandBody::Lsub { reference, pattern } => self.lsub(&reference, &pattern).await,
            CommandBody::Create {
                mailbox,
                special_use,
            } => self.create(&mailbox, &special_use).await,
            CommandBody::Delete { mailbox } => self.delete(&mailbox).await,
            CommandBody::Rename { from, to } => self.rename(&from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(&mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&mailbox, false).await,
            CommandBody::Status { mailbox, items } => self.status(&mailbox, &items).await,
            CommandBody::Fetch {
                set,
                items,
                uid,
                changed_since,
                vanished,
                partial,
            } => {
                let modifiers = FetchModifiers {
                    changed_since,
                    vanished,
                    partial,
                };
                self.fetch(&set, &items, uid, modifiers).await
            }
            CommandBody::Store {
                set,
                uid,
                action,
                silent,
                flags,
                unchanged_since,
            } => {
                let store = StoreRequest {
                    action,
                    silent,
                    flags,
                    unchanged_since,
                };
                self.store_flags(&set, uid, store).await
            }
            CommandBody::Expunge => self.expunge(None).await,
            CommandBody::UidExpunge(set) => self.expunge(Some(&set)).await,
            CommandBody::Copy { set, mailbox, uid } => self.copy(&set, &mailbox, uid, false).await,
            CommandBody::Move { set, mailbox, uid } => self.copy(&set, &mailbox, uid, true).await,
            CommandBody::Search { uid, program } => self.search(tag, uid, program).await,
            CommandBody::Sort { uid, sort } => self.sort(tag, uid, sort).await,
            CommandBody::Thread { uid, thread } => self.thread(tag, uid, thread).await,
            CommandBody::Esearch(ms) => self.multisearch(tag, ms).await,
        }
    }

    /// The mailbox names of a command as roost keeps them: IMAP4rev1
    /// sessions write them in modified UTF-7 (RFC 3501 5.1.3), IMAP4rev2
    /// sessions in UTF-8 (RFC 9051 5.1).
    fn names_in(&self, body: CommandBody) -> Result<CommandBody, String> {
        let n = |s: String| self.mailbox_in(&s);
        Ok(match body {
            CommandBody::Select { mailbox, params } => CommandBody::Select {
                mailbox: n(mailbox)?,
                params,
            },
            CommandBody::Examine { mailbox, params } => CommandBody::Examine {
                mailbox: n(mailbox)?,
                params,
            },
            CommandBody::Create {
                mailbox,
                special_use,
            } => CommandBody::Create {
                mailbox: n(mailbox)?,
                special_use,
            },
            CommandBody::Delete { mailbox } => CommandBody::Delete {
                mailbox: n(mailbox)?,
            },
            CommandBody::Rename { from, to } => CommandBody::Rename {
                from: n(from)?,
                to: n(to)?,
            },
            CommandBody::Subscribe { mailbox } => CommandBody::Subscribe {
                mailbox: n(mailbox)?,
            },
            CommandBody::Unsubscribe { mailbox } => CommandBody::Unsubscribe {
                mailbox: n(mailbox)?,
            },
            CommandBody::Status { mailbox, items } => CommandBody::Status {
                mailbox: n(mailbox)?,
                items,
            },
            CommandBody::Copy { set, mailbox, uid } => CommandBody::Copy {
                set,
                mailbox: n(mailbox)?,
                uid,
            },
            CommandBody::Move { set, mailbox, uid } => CommandBody::Move {
                set,
                mailbox: n(mailbox)?,
                uid,
            },
            CommandBody::Lsub { reference, pattern } => CommandBody::Lsub {
                reference: n(reference)?,
                pattern: n(pattern)?,
            },
            CommandBody::Esearch(mut ms) => {
                for name in ms.names_mut() {
                    *name = crate::account::normalize_name(&n(std::mem::take(name))?);
                }
                CommandBody::Esearch(ms)
            }
            CommandBody::GetQuotaRoot { mailbox } => CommandBody::GetQuotaRoot {
                mailbox: n(mailbox)?,
            },
            CommandBody::List(mut cmd) => {
                cmd.reference = n(std::mem::take(&mut cmd.reference))?;
                for p in &mut cmd.patterns {
                    *p = n(std::mem::take(p))?;
                }
                CommandBody::List(cmd)
            }
            other => other,
        })
    }

    /// One mailbox name from the client, made internal.
    pub(super) fn mailbox_in(&self, wire: &str) -> Result<String, String> {
        if self.rev2 || !wire.is_ascii() {
            // Raw UTF-8 from a rev1 client is taken as meant.
            return Ok(wire.to_string());
        }
        roost_protocols::imap::utf7::decode(wire)
            .ok_or_else(|| format!("{wire:?} is not a valid modified UTF-7 mailbox name"))
    }

    /// One mailbox name as this session writes it.
    pub(super) fn mailbox_out(&self, name: &str) -> String {
        if self.rev2 {
            name.to_string()
        } else {
            roost_protocols::imap::utf7::encode(name)
        }
    }

    /// RFC 5161 ENABLE: CONDSTORE, QRESYNC (which implies CONDSTORE) and
    /// IMAP4rev2; `* ENABLED` lists what this command turned on.
    fn enable(&mut self, caps: &[String]) -> Done {
        let mut enabled = Vec::new();
        // QRESYNC turns CONDSTORE on too; named as well, it is listed.
        let had_condstore = self.condstore;
        for cap in caps {
            let on = match cap.as_str() {
                "CONDSTORE" => {
                    self.condstore = true;
                    !had_condstore && !enabled.contains(&"CONDSTORE")
                }
                "QRESYNC" => {
                    self.use_condstore();
                    !std::mem::replace(&mut self.qresync, true)
                }
                "IMAP4REV2" => !std::mem::replace(&mut self.rev2, true),
                "UIDONLY" => !std::mem::replace(&mut self.uidonly, true),
                _ => false,
            };
            if on {
                enabled.push(if cap == "IMAP4REV2" {
                    "IMAP4rev2"
                } else {
                    cap.as_str()
                });
            }
        }
        self.use_condstore_if(self.condstore);
        if let Some(sel) = &mut self.selected {
            sel.vanished = self.qresync || self.uidonly;
            sel.uidonly = self.uidonly;
        }
        response::enabled(&mut self.out, &enabled);
        Done::ok("ENABLE completed")
    }

    /// RFC 7162 3.1: a command that uses CONDSTORE turns it on.
    pub(super) fn use_condstore(&mut self) {
        self.use_condstore_if(true);
    }

    fn use_condstore_if(&mut self, on: bool) {
        if on {
            self.condstore = true;
            if let Some(sel) = &mut self.selected {
                sel.modseqs = true;
            }
        }
    }

    /// The account this session is logged in to. Callers run only in
    /// authenticated states, which the state check guarantees.
    fn account(&self) -> Option<(&str, AccountId)> {
        self.account.as_ref().map(|(n, id)| (n.as_str(), *id))
    }
}
