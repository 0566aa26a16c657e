//! The SMTP session actor: one per connection on the MX, submission and
//! submissions listeners.
//!
//! The reader task hands it bytes; the sans-IO [`SmtpReader`] of
//! `roost-protocols` turns them into commands and message data; this actor
//! applies them: recipient lookup, streaming the message into a staged file,
//! and one `Deliver` call per recipient account. `250` is written only after
//! every account actor has made the message durable.

mod auth;
pub mod dkim;
mod inbound;
pub mod inproc;
mod transaction;
mod verify;

use crate::conn::{
    shut_down, spawn_reader, upgrade_to_tls, write_out, BoxStream, Credit, Input, Peer, Reclaim,
    Writer, MAX_PENDING_OUTPUT,
};
use crate::listener::{Protocol, Services};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_protocols::smtp::command::{BodyType, Command};
use roost_protocols::smtp::conn::{DataOutcome, Event, SmtpReader};
use roost_protocols::smtp::reply::Reply;
use std::time::Duration;
use tokio::io::ReadHalf;
use tracing::{debug, info_span, Instrument};
use transaction::Transaction;

/// RFC 5321 4.5.3.2.7: the server waits at least 5 minutes for the next
/// command or data.
pub const SMTP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Bad commands in one session before the server gives up on the client.
pub const MAX_BAD_COMMANDS: u32 = 20;
/// Connections one client address may have open on an SMTP listener, by
/// default (`[smtp] max_connections_per_ip`); loopback clients are exempt
/// unless `[smtp] limit_loopback` is set.
pub const MAX_CONNECTIONS_PER_IP: usize = 20;
/// RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted.
pub const MAX_RECIPIENTS: usize = 100;
/// RFC 4865: the longest a submitted message may be held (30 days).
pub const MAX_FUTURE_RELEASE: i64 = 30 * 86_400;

pub struct SmtpSession;

pub struct SmtpArgs {
    pub stream: BoxStream,
    pub peer: Peer,
    pub protocol: Protocol,
    pub services: Services,
    pub guard: crate::conn::ConnGuard,
    /// Submission logged in to this account from the start (the web
    /// API's Send, see [`inproc`]).
    pub preauth: Option<String>,
}

pub enum SmtpMsg {
    Input(Input),
}

pub struct SmtpState {
    writer: Writer,
    credit: Credit,
    reader: SmtpReader,
    peer: Peer,
    protocol: Protocol,
    services: Services,
    helo: Option<String>,
    /// The client's reverse DNS name, if it has one.
    rdns: Option<String>,
    esmtp: bool,
    authenticated: Option<String>,
    auth_step: Option<crate::auth::SaslRun>,
    /// The account of the client's TLS certificate key, if registered.
    key_account: Option<String>,
    auth_failures: u32,
    tx: Option<Transaction>,
    /// The BDAT chunk being read.
    chunk: Option<Chunk>,
    /// A chunk was refused: the chunks the client pipelined after it are
    /// refused too, but not counted as errors (RFC 3030 2), until RSET,
    /// MAIL or EHLO.
    chunks_failed: bool,
    myself: ActorRef<SmtpMsg>,
    /// Takes the read half back from the reader task, for STARTTLS.
    reclaim: Reclaim<ReadHalf<BoxStream>>,
    bad_commands: u32,
    out: Vec<u8>,
    closing: bool,
    span: tracing::Span,
    _guard: crate::conn::ConnGuard,
}

impl Actor for SmtpSession {
    type Msg = SmtpMsg;
    type State = SmtpState;
    type Arguments = SmtpArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SmtpMsg>,
        args: SmtpArgs,
    ) -> Result<SmtpState, ActorProcessingErr> {
        let span = info_span!("smtp", peer = %args.peer.addr, protocol = ?args.protocol);
        // Before the greeting, as MTAs do: the Received line needs it.
        let rdns = args.services.dns.reverse(args.peer.addr.ip()).await;
        let (read, writer) = tokio::io::split(args.stream);
        let me = myself.clone();
        let (credit, reclaim) = spawn_reader(
            read,
            SMTP_IDLE_TIMEOUT,
            args.services.shutdown.clone(),
            move |input| me.send_message(SmtpMsg::Input(input)).is_ok(),
        );
        let mut state = SmtpState {
            myself: myself.clone(),
            writer,
            credit,
            reclaim,
            reader: SmtpReader::new(args.services.max_message_size),
            peer: args.peer,
            protocol: args.protocol,
            services: args.services,
            helo: None,
            rdns,
            esmtp: false,
            authenticated: args.preauth.filter(|_| args.protocol.is_submission()),
            auth_step: None,
            key_account: None,
            auth_failures: 0,
            tx: None,
            chunk: None,
            chunks_failed: false,
            bad_commands: 0,
            out: Vec::new(),
            closing: false,
            span,
            _guard: args.guard,
        };
        state.learn_client_key().await;
        state.reply(Reply::greeting(&state.services.hostname));
        state.flush_out().await?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SmtpMsg>,
        msg: SmtpMsg,
        state: &mut SmtpState,
    ) -> Result<(), ActorProcessingErr> {
        let SmtpMsg::Input(input) = msg;
        let span = state.span.clone();
        async {
            match input {
                Input::Bytes(bytes) => {
                    state.reader.feed(&bytes);
                    state.drain_events().await;
                }
                Input::Closed => state.closing = true,
                Input::TimedOut => {
                    state.reply(Reply::new(
                        421,
                        Some((4, 4, 2)),
                        format!("{} Timeout, closing connection", state.services.hostname),
                    ));
                    state.closing = true;
                }
                Input::Shutdown => {
                    state.reply(Reply::shutting_down(&state.services.hostname));
                    state.closing = true;
                }
            }
            let _ = state.flush_out().await;
            if state.closing {
                shut_down(&mut state.writer).await;
                myself.stop(None);
            } else {
                state.credit.grant();
            }
        }
        .instrument(span)
        .await;
        Ok(())
    }
}

impl SmtpState {
    fn reply(&mut self, reply: Reply) {
        self.out.extend_from_slice(&reply.to_bytes());
    }

    async fn flush_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        write_out(&mut self.writer, &out).await
    }

    async fn drain_events(&mut self) {
        while !self.closing {
            if let Some(step) = self.auth_step.take() {
                match self.reader.next_line() {
                    Some(Ok(line)) => {
                        let line = String::from_utf8_lossy(&line).trim().to_string();
                        self.auth_continue(step, &line).await;
                        continue;
                    }
                    Some(Err(reply)) => {
                        self.bad_command(reply);
                        continue;
                    }
                    None => {
                        self.auth_step = Some(step);
                        break;
                    }
                }
            }
            let Some(event) = self.reader.next_event() else {
                break;
            };
            match event {
                Event::Command(cmd) => {
                    let span = tracing::debug_span!("command", verb = verb(&cmd));
                    self.command(cmd).instrument(span).await
                }
                Event::CommandError(reply) => self.bad_command(reply),
                Event::Data(chunk) => {
                    // A refused BDAT chunk is read and dropped.
                    let refused = self.chunk.as_ref().is_some_and(|c| c.refusal.is_some());
                    if let Some(tx) = self.tx.as_mut().filter(|_| !refused) {
                        tx.write(chunk).await;
                    }
                }
                Event::ChunkEnd {
                    bare_line_ending,
                    trailing_cr,
                } => self.chunk_end(bare_line_ending, trailing_cr).await,
                Event::Unrecoverable(reply) => {
                    self.reply(reply);
                    self.reply(Reply::new(
                        421,
                        Some((4, 5, 0)),
                        format!(
                            "{} Cannot tell where that chunk ends, closing connection",
                            self.services.hostname
                        ),
                    ));
                    self.closing = true;
                }
                Event::DataEnd(outcome) => {
                    let reply = match self.tx.take() {
                        Some(tx) => tx.finish(outcome, self).await,
                        None => Reply::bad_sequence("no transaction"),
                    };
                    self.reply(reply);
                }
            }
            // Replies to pipelined commands go out as they pile up: a
            // client that never reads stalls this write, not our memory.
            if self.out.len() >= MAX_PENDING_OUTPUT && self.flush_out().await.is_err() {
                self.closing = true;
            }
        }
    }

    fn bad_command(&mut self, reply: Reply) {
        self.bad_commands += 1;
        self.reply(reply);
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.reply(Reply::new(
                421,
                Some((4, 7, 0)),
                format!(
                    "{} Too many errors, closing connection",
                    self.services.hostname
                ),
            ));
            self.closing = true;
        }
    }

    async fn command(&mut self, cmd: Command) {
        // AUTH carries credentials: never log its arguments.
        if !matches!(cmd, Command::Auth { .. }) {
            debug!(command = ?cmd, "smtp command");
        }
        match cmd {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Mail { from, params } => self.mail(from, &params),
            Command::Rcpt { to, params } => self.rcpt(to, &params).await,
            Command::Data => self.data().await,
            Command::Rset => {
                self.tx = None;
                self.chunks_failed = false;
                self.reply(Reply::ok());
            }
            Command::Noop => self.reply(Reply::ok()),
            Command::Quit => {
                self.reply(Reply::closing(&self.services.hostname));
                self.closing = true;
            }
            Command::Vrfy(_) => self.reply(Reply::new(
                252,
                Some((2, 5, 2)),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Help => self.reply(Reply::new(
                214,
                Some((2, 0, 0)),
                "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            )),
            Command::StartTls => self.starttls().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial).await,
        }
    }

    fn hello(&mut self, name: String, esmtp: bool) {
        // RFC 5321 4.1.4: EHLO/HELO also resets any transaction.
        self.tx = None;
        self.chunks_failed = false;
        self.helo = Some(name.clone());
        self.esmtp = esmtp;
        let host = &self.services.hostname;
        if !esmtp {
            self.reply(Reply::new(250, None, format!("{host} greets {name}")));
            return;
        }
        let mut lines = vec![
            format!("{host} greets {name}"),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.services.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
            "BINARYMIME".to_string(),
            // RFC 3461.
            "DSN".to_string(),
            // RFC 9422 4.2.
            format!("LIMITS RCPTMAX={MAX_RECIPIENTS}"),
        ];
        // RFC 4865 3: submission holds messages for later release.
        if self.protocol.is_submission() {
            let until = roost_protocols::message::date::rfc3339(
                crate::time::now_unix() + MAX_FUTURE_RELEASE,
            );
            lines.push(format!("FUTURERELEASE {MAX_FUTURE_RELEASE} {until}"));
        }
        // RFC 8689 4.1: offered once the connection is in TLS.
        if self.peer.tls {
            lines.push("REQUIRETLS".to_string());
        }
        if self.protocol.is_submission() && self.authenticated.is_none() {
            let names: Vec<&str> = self.mechanisms().iter().map(|m| m.name()).collect();
            if !names.is_empty() {
                lines.push(format!("AUTH {}", names.join(" ")));
            }
        }
        // RFC 3207 4: offered on a connection not yet in TLS, where a
        // certificate is configured.
        if !self.peer.tls && self.services.tls.is_some() {
            lines.push("STARTTLS".to_string());
        }
        self.reply(Reply::multiline(250, None, lines));
    }

    /// RFC 3207: STARTTLS. The 220 goes out in the clear; whatever the
    /// client pipelined after the command is dropped, never read as if it
    /// came over TLS (RFC 3207 6); the same stream continues in TLS and
    /// the session starts over, expecting EHLO (RFC 3207 4.2).
    async fn starttls(&mut self) {
        if self.peer.tls {
            return self.bad_command(Reply::bad_sequence("TLS is already active"));
        }
        let (Some(acceptor), Some(setup)) =
            (self.services.tls.clone(), self.services.tls_setup.clone())
        else {
            return self.reply(Reply::new(
                454,
                Some((4, 7, 0)),
                "TLS not available: no certificate is configured",
            ));
        };
        self.reply(Reply::new(220, Some((2, 0, 0)), "Ready to start TLS"));
        if self.flush_out().await.is_err() {
            self.closing = true;
            return;
        }
        let dropped = self.reader.discard_buffered();
        if dropped > 0 {
            debug!(bytes = dropped, "dropped input pipelined after STARTTLS");
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
            SMTP_IDLE_TIMEOUT,
            self.services.shutdown.clone(),
            move |input| me.send_message(SmtpMsg::Input(input)).is_ok(),
        )
        .await;
        let Some(facts) = upgraded else {
            self.closing = true;
            return;
        };
        self.peer.tls = true;
        self.peer.binding = facts.binding;
        self.peer.client_key = facts.client_key;
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.authenticated = None;
        self.learn_client_key().await;
    }

    async fn data(&mut self) {
        let ready = match &mut self.tx {
            None => Err(Reply::bad_sequence("MAIL first")),
            // RFC 3030 2 and 3: no DATA after BDAT, nor for BINARYMIME.
            Some(tx) if tx.chunked => Err(Reply::bad_sequence(
                "DATA cannot follow BDAT in one transaction",
            )),
            Some(tx) if tx.body == Some(BodyType::BinaryMime) => {
                Err(Reply::bad_sequence("BODY=BINARYMIME needs BDAT, not DATA"))
            }
            Some(tx) if tx.recipients.is_empty() && tx.remote.is_empty() => {
                Err(Reply::new(554, Some((5, 5, 1)), "No valid recipients"))
            }
            Some(tx) => tx.open_file(&self.services.store),
        };
        match ready {
            Ok(()) => {
                self.reader.begin_data();
                self.reply(Reply::start_mail_input());
            }
            Err(reply) => {
                self.reader.reject_data();
                self.reply(reply);
            }
        }
    }
}

/// RFC 3030 2: a BDAT chunk on its way in.
struct Chunk {
    size: u64,
    last: bool,
    /// The reply when the chunk is refused (read and dropped).
    refusal: Option<Reply>,
}

impl SmtpState {
    /// RFC 3030 2: BDAT. The reader takes the chunk's octets whatever
    /// this decides; the reply goes out when they have all come.
    async fn bdat(&mut self, size: u64, last: bool) {
        let max = self.services.max_message_size;
        let refusal = match &mut self.tx {
            None => Some(Reply::bad_sequence("MAIL first")),
            Some(tx) if tx.recipients.is_empty() && tx.remote.is_empty() => {
                Some(Reply::new(554, Some((5, 5, 1)), "No valid recipients"))
            }
            Some(tx) if tx.received.saturating_add(size) > max => Some(Reply::message_too_large()),
            Some(tx) => {
                tx.chunked = true;
                tx.open_file(&self.services.store).err()
            }
        };
        self.chunk = Some(Chunk {
            size,
            last,
            refusal,
        });
    }

    /// All of a BDAT chunk has come: 250 for a middle chunk, the
    /// delivery's answer for the last; a refused chunk ends the
    /// transaction (RFC 3030 2: after a failed chunk the client sends
    /// RSET, and the chunks it pipelined meanwhile are dropped).
    async fn chunk_end(&mut self, bare_line_ending: bool, trailing_cr: bool) {
        let Some(chunk) = self.chunk.take() else {
            return;
        };
        if let Some(reply) = chunk.refusal {
            self.tx = None;
            if std::mem::replace(&mut self.chunks_failed, true) {
                return self.reply(reply);
            }
            return self.bad_command(reply);
        }
        let Some(tx) = &mut self.tx else {
            return;
        };
        tx.received += chunk.size;
        tx.bare_line_ending |= bare_line_ending || (chunk.last && trailing_cr);
        if !chunk.last {
            let size = chunk.size;
            return self.reply(Reply::new(
                250,
                Some((2, 0, 0)),
                format!("{size} octets received"),
            ));
        }
        let Some(tx) = self.tx.take() else {
            return;
        };
        // Length-delimited chunks cannot smuggle an end marker here, but a
        // bare line end would reach the next hop inside DATA; binary MIME
        // is the one body that may carry them (RFC 3030 3).
        let binary = tx.body == Some(BodyType::BinaryMime);
        let outcome = if tx.bare_line_ending && (!binary || tx.bare_in_header()) {
            DataOutcome::BareLineEnding
        } else {
            DataOutcome::Ok
        };
        let reply = tx.finish(outcome, self).await;
        self.reply(reply);
    }
}

/// The command's verb, for its tracing span.
fn verb(cmd: &Command) -> &'static str {
    match cmd {
        Command::Ehlo(_) => "EHLO",
        Command::Helo(_) => "HELO",
        Command::Mail { .. } => "MAIL",
        Command::Rcpt { .. } => "RCPT",
        Command::Data => "DATA",
        Command::Bdat { .. } => "BDAT",
        Command::Rset => "RSET",
        Command::Noop => "NOOP",
        Command::Quit => "QUIT",
        Command::Vrfy(_) => "VRFY",
        Command::Help => "HELP",
        Command::StartTls => "STARTTLS",
        Command::Auth { .. } => "AUTH",
    }
}

impl Peer {
    /// Plaintext passwords are accepted over TLS, or from this machine.
    pub fn tls_or_local(&self) -> bool {
        self.tls || self.addr.ip().is_loopback()
    }
}
