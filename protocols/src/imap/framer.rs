//! Command framing for the IMAP server (RFC 9051 2.2.1, 4.3; RFC 7888):
//! turns the byte stream a client sends into whole commands, with their
//! literals inlined, and tells the session when a synchronizing literal
//! needs a `+` continuation.
//!
//! APPEND's message literals are the exception: they are streamed, not
//! inlined. The framer reports the text before each one
//! ([`FrameEvent::AppendLiteral`]), waits for the session to accept or
//! refuse it (APPENDLIMIT and quota are checked before the client sends a
//! byte of a synchronizing literal), then hands the data over piece by
//! piece ([`FrameEvent::LiteralData`], [`FrameEvent::LiteralEnd`]) and
//! finally the rest of the line ([`FrameEvent::AppendEnd`]).
//!
//! The framer does not parse commands (that is [`super::parser`]) and writes
//! nothing itself. Its memory stays bounded whatever the client sends: an
//! over-long line or a too-large literal is thrown away as it arrives.
//! Bytes are framed lazily, one event per [`Framer::next_event`] call, so
//! after STARTTLS the session can see (and drop) the bytes the client sent
//! in the clear after the command with [`Framer::take_pending`].
//! Drain the events after every [`Framer::feed`].

/// RFC 9051 4: the longest line segment accepted (bytes before CRLF, not
/// counting literal data).
pub const MAX_LINE_LENGTH: usize = 64 * 1024;
/// The largest literal inlined in a command (a password, a mailbox name,
/// a search string). APPEND's message literals are streamed instead, and
/// the session limits them (APPENDLIMIT).
pub const MAX_LITERAL_SIZE: u64 = 100 * 1024;
/// The most literals in one command, streamed ones included.
pub const MAX_COMMAND_LITERALS: usize = 1000;
/// The most literal data inlined in one command.
pub const MAX_COMMAND_LITERAL_BYTES: u64 = 1024 * 1024;
/// The largest command, all its line segments and inlined literals
/// together.
pub const MAX_COMMAND_SIZE: usize = 2 * 1024 * 1024;

/// Buffer capacity a framer keeps once everything fed is framed; a larger
/// buffer (left by a big command) is given back, so an idle session holds
/// no more than this.
pub const KEEP_CAPACITY: usize = 4 * 1024;

/// How many trailing bytes of a discarded line are kept to notice a
/// non-synchronizing literal announced at its end (`~{18446744073709551615+}`
/// is 25 bytes).
const DISCARD_TAIL: usize = 32;

/// What the framer found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// One whole command: its line(s) with the literals inlined exactly as
    /// received, without the final line ending.
    Command(Vec<u8>),
    /// A synchronizing literal `{n}` was announced and accepted: write
    /// `+ Ready for literal data\r\n` (RFC 9051 7.5).
    ContinuationNeeded,
    /// A line segment was longer than [`MAX_LINE_LENGTH`], or the command
    /// longer than [`MAX_COMMAND_SIZE`]; the line has been thrown away.
    LineTooLong { tag: Option<String> },
    /// A literal was larger than [`MAX_LITERAL_SIZE`] (or would have made
    /// the command too large, or was one too many). A synchronizing one
    /// got no continuation; a non-synchronizing one was skipped. The
    /// command is dropped.
    LiteralTooLarge {
        tag: Option<String>,
        size: u64,
        reason: LiteralLimit,
    },
    /// An APPEND message literal is announced; `head` is the command text
    /// since the last message literal (the whole start of the command for
    /// the first), up to the literal's `{` or `~{`. The framer waits for
    /// [`Framer::accept_literal`] or [`Framer::refuse_literal`].
    AppendLiteral {
        head: Vec<u8>,
        size: u64,
        sync: bool,
        /// literal8 (`~{n}`, RFC 3516).
        binary: bool,
    },
    /// The next bytes of an accepted message literal.
    LiteralData(Vec<u8>),
    /// The accepted message literal is complete.
    LiteralEnd,
    /// The line after the last message literal ended; `tail` is its text
    /// (empty for a well-formed APPEND).
    AppendEnd { tail: Vec<u8> },
}

/// Which limit a refused literal broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralLimit {
    /// [`MAX_LITERAL_SIZE`].
    Size,
    /// [`MAX_COMMAND_LITERAL_BYTES`] or [`MAX_COMMAND_SIZE`].
    CommandBytes,
    /// [`MAX_COMMAND_LITERALS`].
    Count,
}

#[derive(Debug)]
enum State {
    /// Looking for the end of a line segment; `scanned` bytes after `pos`
    /// are already known not to be LF.
    Line { scanned: usize },
    /// Copying the rest of an accepted literal into the command.
    Literal { remaining: u64 },
    /// Dropping the rest of a rejected command's line; `tail` holds its last
    /// bytes so a non-synchronizing literal at the end is skipped too.
    Discard { tail: Vec<u8> },
    /// Dropping the bytes of a rejected non-synchronizing literal, then
    /// reporting `then`, if any.
    SkipLiteral {
        remaining: u64,
        then: Option<FrameEvent>,
    },
    /// An APPEND message literal was announced; the session decides.
    AwaitDecision { size: u64, sync: bool },
    /// Handing an accepted message literal over as it arrives.
    Stream { remaining: u64 },
}

/// Assembles IMAP commands from bytes. See the module documentation.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the bytes not yet framed in `buf`.
    pos: usize,
    /// The command being assembled (segments and literals so far).
    cmd: Vec<u8>,
    state: State,
    /// The command in progress is an APPEND whose messages are streamed.
    streaming: bool,
    /// The streamed APPEND's tag, for an answer once its text is gone.
    stream_tag: Option<String>,
    /// Literals of the command in progress, and their inlined bytes.
    literals: usize,
    literal_bytes: u64,
    /// The next line answers a continuation (an AUTHENTICATE response),
    /// where an empty line means something.
    response_next: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new()
    }
}

/// What one step of the state machine achieved.
enum Step {
    Emit(FrameEvent),
    /// The state changed; step again.
    Continue,
    /// Every fed byte is used up for now.
    NeedMore,
}

/// A literal announcement at the end of a line segment.
struct LiteralSpec {
    size: u64,
    sync: bool,
    binary: bool,
    /// Where the announcement (`{` or `~{`) starts in the segment.
    start: usize,
}

impl Framer {
    pub fn new() -> Framer {
        Framer {
            buf: Vec::new(),
            pos: 0,
            cmd: Vec::new(),
            state: State::Line { scanned: 0 },
            streaming: false,
            stream_tag: None,
            literals: 0,
            literal_bytes: 0,
            response_next: false,
        }
    }

    /// Accepts the APPEND message literal just announced: its bytes follow
    /// as [`FrameEvent::LiteralData`]. True when the literal is
    /// synchronizing and the client waits for `+` before sending it.
    pub fn accept_literal(&mut self) -> bool {
        match self.state {
            State::AwaitDecision { size, sync } => {
                self.state = State::Stream { remaining: size };
                sync
            }
            _ => false,
        }
    }

    /// Refuses the APPEND message literal just announced: a synchronizing
    /// one is never sent; a non-synchronizing one is skipped with the rest
    /// of its command. Either way the command is over.
    pub fn refuse_literal(&mut self) {
        if let State::AwaitDecision { size, sync } = self.state {
            self.end_command();
            self.state = if sync {
                State::Line { scanned: 0 }
            } else {
                State::SkipLiteral {
                    remaining: size,
                    then: None,
                }
            };
        }
    }

    /// Forgets the per-command state once a command is over.
    fn end_command(&mut self) {
        self.cmd.clear();
        self.streaming = false;
        self.stream_tag = None;
        self.literals = 0;
        self.literal_bytes = 0;
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos >= 4096) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed but not framed yet.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Says that the next line answers a continuation request: it is
    /// emitted even when empty (RFC 9051 6.2.2: an empty SASL response).
    pub fn expect_response(&mut self) {
        self.response_next = true;
    }

    /// Takes the bytes fed but not framed yet, and forgets any partial
    /// command. After STARTTLS the session drops these: they arrived in the
    /// clear (RFC 9051 6.2.1) and must not be taken as commands.
    pub fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos);
        self.buf.clear();
        self.pos = 0;
        self.end_command();
        self.state = State::Line { scanned: 0 };
        rest
    }

    /// The next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<FrameEvent> {
        loop {
            let step = match &self.state {
                State::Line { .. } => self.step_line(),
                State::Literal { .. } => self.step_literal(),
                State::Discard { .. } => self.step_discard(),
                State::SkipLiteral { .. } => self.step_skip(),
                State::AwaitDecision { .. } => Step::NeedMore,
                State::Stream { .. } => self.step_stream(),
            };
            match step {
                Step::Emit(event) => return Some(event),
                Step::Continue => {}
                Step::NeedMore => {
                    self.release_spent();
                    return None;
                }
            }
        }
    }

    /// Forgets fed bytes that are all framed, and large buffers with them.
    fn release_spent(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
        if self.cmd.is_empty() && self.cmd.capacity() > KEEP_CAPACITY {
            self.cmd = Vec::new();
        }
    }

    fn step_line(&mut self) -> Step {
        let State::Line { scanned } = &mut self.state else {
            return Step::Continue;
        };
        let from = self.pos + *scanned;
        let Some(lf) = self.buf[from..].iter().position(|&b| b == b'\n') else {
            *scanned = self.buf.len() - self.pos;
            // One byte of slack: it may be the CR of a line of exactly
            // MAX_LINE_LENGTH.
            if *scanned > MAX_LINE_LENGTH + 1 {
                return Step::Emit(self.reject_partial_line());
            }
            return Step::NeedMore;
        };
        let lf = from + lf;
        let line_start = self.pos;
        let content_end = if lf > line_start && self.buf[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        self.pos = lf + 1;
        self.state = State::Line { scanned: 0 };
        let content = &self.buf[line_start..content_end];
        if content.len() > MAX_LINE_LENGTH || self.cmd.len() + content.len() > MAX_COMMAND_SIZE {
            let tag = self.command_tag(line_start, content_end);
            let tail = tail_of(content);
            self.end_command();
            self.after_discarded_line(&tail);
            return Step::Emit(FrameEvent::LineTooLong { tag });
        }
        match literal_spec(content) {
            None if self.streaming => {
                let tail = content.to_vec();
                self.end_command();
                Step::Emit(FrameEvent::AppendEnd { tail })
            }
            None => {
                let response = std::mem::take(&mut self.response_next);
                if self.cmd.is_empty() && content.is_empty() && !response {
                    // An empty line is not a command; some clients send
                    // a stray CRLF after a literal. Ignore it.
                    return Step::Continue;
                }
                self.cmd.extend_from_slice(content);
                let cmd = std::mem::take(&mut self.cmd);
                self.end_command();
                Step::Emit(FrameEvent::Command(cmd))
            }
            Some(spec) if self.streaming || self.starts_message(line_start, &spec) => {
                self.announce_message(line_start, lf, spec)
            }
            Some(spec) => self.start_literal(line_start, lf, spec),
        }
    }

    /// Whether the literal `spec` at the end of the segment starting at
    /// `line_start` is an APPEND's first message. Only the first two
    /// literals can be: the mailbox name may be one, and the message comes
    /// right after it (flags and date are never literals), so a command
    /// whose first two literals were not messages is no APPEND anyone can
    /// mean, and its prefix is not parsed again at each further literal.
    fn starts_message(&self, line_start: usize, spec: &LiteralSpec) -> bool {
        if self.literals > 1 {
            return false;
        }
        let segment = &self.buf[line_start..line_start + spec.start];
        let command_start = if self.cmd.is_empty() {
            segment
        } else {
            &self.cmd
        };
        if !is_append(command_start) {
            return false;
        }
        let mut prefix = Vec::with_capacity(self.cmd.len() + segment.len());
        prefix.extend_from_slice(&self.cmd);
        prefix.extend_from_slice(segment);
        super::append::is_message_position(&prefix)
    }

    /// Reports an APPEND message literal and waits for the session.
    fn announce_message(&mut self, line_start: usize, lf: usize, spec: LiteralSpec) -> Step {
        if self.literals == MAX_COMMAND_LITERALS {
            return self.refuse(line_start, lf, &spec, LiteralLimit::Count);
        }
        self.literals += 1;
        let mut head = std::mem::take(&mut self.cmd);
        head.extend_from_slice(&self.buf[line_start..line_start + spec.start]);
        if !self.streaming {
            self.stream_tag = tag_of(&head);
        }
        self.streaming = true;
        self.state = State::AwaitDecision {
            size: spec.size,
            sync: spec.sync,
        };
        Step::Emit(FrameEvent::AppendLiteral {
            head,
            size: spec.size,
            sync: spec.sync,
            binary: spec.binary,
        })
    }

    fn step_stream(&mut self) -> Step {
        let State::Stream { remaining } = &mut self.state else {
            return Step::Continue;
        };
        if *remaining == 0 {
            self.state = State::Line { scanned: 0 };
            return Step::Emit(FrameEvent::LiteralEnd);
        }
        let available = (self.buf.len() - self.pos) as u64;
        if available == 0 {
            return Step::NeedMore;
        }
        let take = (*remaining).min(available) as usize;
        *remaining -= take as u64;
        let data = self.buf[self.pos..self.pos + take].to_vec();
        self.pos += take;
        Step::Emit(FrameEvent::LiteralData(data))
    }

    /// Drops the command whose literal broke `limit`.
    fn refuse(
        &mut self,
        line_start: usize,
        lf: usize,
        spec: &LiteralSpec,
        limit: LiteralLimit,
    ) -> Step {
        let tag = self.command_tag(line_start, lf);
        self.end_command();
        let event = FrameEvent::LiteralTooLarge {
            tag,
            size: spec.size,
            reason: limit,
        };
        if spec.sync {
            return Step::Emit(event);
        }
        self.state = State::SkipLiteral {
            remaining: spec.size,
            then: Some(event),
        };
        Step::Continue
    }

    fn start_literal(&mut self, line_start: usize, lf: usize, spec: LiteralSpec) -> Step {
        let total = (self.cmd.len() + (lf + 1 - line_start)) as u64;
        let limit = if self.literals == MAX_COMMAND_LITERALS {
            Some(LiteralLimit::Count)
        } else if spec.size > MAX_LITERAL_SIZE {
            Some(LiteralLimit::Size)
        } else if self.literal_bytes + spec.size > MAX_COMMAND_LITERAL_BYTES
            || total.saturating_add(spec.size) > MAX_COMMAND_SIZE as u64
        {
            Some(LiteralLimit::CommandBytes)
        } else {
            None
        };
        if let Some(limit) = limit {
            return self.refuse(line_start, lf, &spec, limit);
        }
        self.literals += 1;
        self.literal_bytes += spec.size;
        self.cmd.extend_from_slice(&self.buf[line_start..=lf]);
        self.state = State::Literal {
            remaining: spec.size,
        };
        if spec.sync {
            Step::Emit(FrameEvent::ContinuationNeeded)
        } else {
            Step::Continue
        }
    }

    fn step_literal(&mut self) -> Step {
        let State::Literal { remaining } = &mut self.state else {
            return Step::Continue;
        };
        let available = (self.buf.len() - self.pos) as u64;
        let take = (*remaining).min(available) as usize;
        self.cmd
            .extend_from_slice(&self.buf[self.pos..self.pos + take]);
        self.pos += take;
        *remaining -= take as u64;
        if *remaining > 0 {
            return Step::NeedMore;
        }
        self.state = State::Line { scanned: 0 };
        Step::Continue
    }

    fn step_discard(&mut self) -> Step {
        let State::Discard { tail } = &mut self.state else {
            return Step::Continue;
        };
        let rest = &self.buf[self.pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            push_tail(tail, rest);
            self.pos = self.buf.len();
            return Step::NeedMore;
        };
        push_tail(tail, &rest[..lf]);
        let tail = std::mem::take(tail);
        self.pos += lf + 1;
        self.after_discarded_line(&tail);
        Step::Continue
    }

    fn step_skip(&mut self) -> Step {
        let State::SkipLiteral { remaining, then } = &mut self.state else {
            return Step::Continue;
        };
        let available = (self.buf.len() - self.pos) as u64;
        let skip = (*remaining).min(available);
        self.pos += skip as usize;
        *remaining -= skip;
        if *remaining > 0 {
            return Step::NeedMore;
        }
        let then = then.take();
        // The rest of the command's line follows the literal; drop it too.
        self.state = State::Discard { tail: Vec::new() };
        match then {
            Some(event) => Step::Emit(event),
            None => Step::Continue,
        }
    }

    /// A line segment grew past the limit before its LF arrived.
    fn reject_partial_line(&mut self) -> FrameEvent {
        let tag = self.command_tag(self.pos, self.buf.len());
        let tail = tail_of(&self.buf[self.pos..]);
        self.end_command();
        self.pos = self.buf.len();
        self.state = State::Discard { tail };
        FrameEvent::LineTooLong { tag }
    }

    /// After a thrown-away line ending in `tail`: skip the data of a
    /// non-synchronizing literal it announced (a synchronizing one gets no
    /// continuation, so no data follows).
    fn after_discarded_line(&mut self, tail: &[u8]) {
        let tail = tail.strip_suffix(b"\r").unwrap_or(tail);
        self.state = match literal_spec(tail) {
            Some(LiteralSpec {
                size, sync: false, ..
            }) => State::SkipLiteral {
                remaining: size,
                then: None,
            },
            _ => State::Line { scanned: 0 },
        };
    }

    /// The tag of the command being framed, if it starts with a valid one:
    /// from the command so far, or else from `buf[start..end]`.
    fn command_tag(&self, start: usize, end: usize) -> Option<String> {
        if self.streaming {
            self.stream_tag.clone()
        } else if self.cmd.is_empty() {
            tag_of(&self.buf[start..end])
        } else {
            tag_of(&self.cmd)
        }
    }
}

/// RFC 9051 9: tag = 1*<any ASTRING-CHAR except "+">, followed by SP.
pub(crate) fn tag_of(line: &[u8]) -> Option<String> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let tag = &line[..sp];
    if tag.is_empty() || !tag.iter().all(|&b| is_tag_char(b)) {
        return None;
    }
    // Only ASCII bytes pass is_tag_char.
    String::from_utf8(tag.to_vec()).ok()
}

fn is_tag_char(b: u8) -> bool {
    (super::types::is_atom_char(b) || b == b']') && b != b'+'
}

/// RFC 9051 9 `literal` / `literal8`, RFC 7888 `literal+`: a line segment
/// ending in `{n}`, `{n+}`, `~{n}` or `~{n+}` announces n bytes of data.
/// Whether a command starts `tag APPEND `, `tag REPLACE ` or
/// `tag UID REPLACE ` (any case): the commands whose messages stream.
fn is_append(command: &[u8]) -> bool {
    let Some(sp) = command.iter().position(|&b| b == b' ') else {
        return false;
    };
    let rest = &command[sp + 1..];
    ["APPEND ", "REPLACE ", "UID REPLACE "].iter().any(|w| {
        rest.get(..w.len())
            .is_some_and(|r| r.eq_ignore_ascii_case(w.as_bytes()))
    })
}

fn literal_spec(content: &[u8]) -> Option<LiteralSpec> {
    let inner = content.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let binary = open > 0 && inner[open - 1] == b'~';
    let start = if binary { open - 1 } else { open };
    let digits = &inner[open + 1..];
    let (digits, sync) = match digits.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (digits, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // A number too large for u64 is certainly too large to accept.
    let size = digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(LiteralSpec {
        size: size.unwrap_or(u64::MAX),
        sync,
        binary,
        start,
    })
}

fn tail_of(bytes: &[u8]) -> Vec<u8> {
    bytes[bytes.len().saturating_sub(DISCARD_TAIL)..].to_vec()
}

fn push_tail(tail: &mut Vec<u8>, more: &[u8]) {
    tail.extend_from_slice(&more[more.len().saturating_sub(DISCARD_TAIL)..]);
    let excess = tail.len().saturating_sub(DISCARD_TAIL);
    tail.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(f: &mut Framer) -> Vec<FrameEvent> {
        std::iter::from_fn(|| f.next_event()).collect()
    }

    fn frame_all(input: &[u8]) -> Vec<FrameEvent> {
        let mut f = Framer::new();
        f.feed(input);
        events(&mut f)
    }

    fn frame_bytewise(input: &[u8]) -> Vec<FrameEvent> {
        let mut f = Framer::new();
        let mut out = Vec::new();
        for b in input {
            f.feed(std::slice::from_ref(b));
            out.extend(events(&mut f));
        }
        out
    }

    fn cmd(s: &[u8]) -> FrameEvent {
        FrameEvent::Command(s.to_vec())
    }

    #[test]
    fn simple_lines_crlf_and_bare_lf() {
        assert_eq!(
            frame_all(b"a1 NOOP\r\na2 CAPABILITY\nDONE\r\n"),
            vec![cmd(b"a1 NOOP"), cmd(b"a2 CAPABILITY"), cmd(b"DONE")]
        );
    }

    #[test]
    fn incomplete_line_waits() {
        let mut f = Framer::new();
        f.feed(b"a1 NOOP\r");
        assert_eq!(f.next_event(), None);
        assert_eq!(f.pending_bytes(), 8);
        f.feed(b"\n");
        assert_eq!(f.next_event(), Some(cmd(b"a1 NOOP")));
        assert_eq!(f.pending_bytes(), 0);
    }

    #[test]
    fn sync_literal_byte_by_byte() {
        let input = b"a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n";
        let expected = vec![
            FrameEvent::ContinuationNeeded,
            FrameEvent::ContinuationNeeded,
            cmd(b"a1 LOGIN {5}\r\nalice {6}\r\nsecret"),
        ];
        assert_eq!(frame_bytewise(input), expected);
        assert_eq!(frame_all(input), expected);
    }

    #[test]
    fn non_sync_and_binary_literals_need_no_continuation() {
        let input = b"a1 LOGIN {5+}\r\nalice ~{2+}\r\n\0x\r\n";
        let expected = vec![cmd(b"a1 LOGIN {5+}\r\nalice ~{2+}\r\n\0x")];
        assert_eq!(frame_bytewise(input), expected);
        assert_eq!(frame_all(input), expected);
        assert_eq!(
            frame_all(b"a ~{1}\r\nz\r\n"),
            vec![FrameEvent::ContinuationNeeded, cmd(b"a ~{1}\r\nz")]
        );
    }

    #[test]
    fn literal_may_contain_crlf_and_braces() {
        assert_eq!(
            frame_all(b"a1 X {7+}\r\n{3}\r\n\r\n\r\n"),
            vec![cmd(b"a1 X {7+}\r\n{3}\r\n\r\n")]
        );
    }

    #[test]
    fn zero_length_literals() {
        assert_eq!(
            frame_all(b"a LOGIN {0}\r\n {0+}\r\n\r\n"),
            vec![
                FrameEvent::ContinuationNeeded,
                cmd(b"a LOGIN {0}\r\n {0+}\r\n")
            ]
        );
    }

    #[test]
    fn line_of_exactly_max_length_is_accepted() {
        let mut line = b"a1 X ".to_vec();
        line.resize(MAX_LINE_LENGTH, b'x');
        let mut input = line.clone();
        input.extend_from_slice(b"\r\n");
        assert_eq!(frame_all(&input), vec![cmd(&line)]);
        // Fed in pieces, the CR alone must not trip the limit.
        let mut f = Framer::new();
        f.feed(&input[..input.len() - 1]);
        assert_eq!(f.next_event(), None);
        f.feed(b"\n");
        assert_eq!(f.next_event(), Some(cmd(&line)));
    }

    #[test]
    fn line_one_past_max_length_is_rejected_with_tag() {
        let mut line = b"a1 X ".to_vec();
        line.resize(MAX_LINE_LENGTH + 1, b'x');
        let mut input = line.clone();
        input.extend_from_slice(b"\r\na2 NOOP\r\n");
        let too_long = FrameEvent::LineTooLong {
            tag: Some("a1".into()),
        };
        assert_eq!(frame_all(&input), vec![too_long.clone(), cmd(b"a2 NOOP")]);
        // Before its end arrives, too.
        let mut f = Framer::new();
        f.feed(&line);
        f.feed(b"yy");
        assert_eq!(f.next_event(), Some(too_long));
        f.feed(b"more junk\r\na2 NOOP\r\n");
        assert_eq!(events(&mut f), vec![cmd(b"a2 NOOP")]);
    }

    #[test]
    fn discarding_stays_bounded() {
        let mut f = Framer::new();
        f.feed(b"a1 ");
        let chunk = vec![b'x'; 64 * 1024];
        let mut seen = Vec::new();
        for _ in 0..64 {
            f.feed(&chunk);
            seen.extend(events(&mut f));
            assert!(f.buf.capacity() <= 4 * chunk.len());
            assert!(f.cmd.is_empty());
        }
        assert_eq!(
            seen,
            vec![FrameEvent::LineTooLong {
                tag: Some("a1".into())
            }]
        );
    }

    #[test]
    fn long_line_without_valid_tag() {
        let mut input = vec![b'x'; MAX_LINE_LENGTH + 5];
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            frame_all(&input),
            vec![FrameEvent::LineTooLong { tag: None }]
        );
        let mut input = b"a+b ".to_vec();
        input.resize(MAX_LINE_LENGTH + 5, b'x');
        input.push(b'\n');
        assert_eq!(
            frame_all(&input),
            vec![FrameEvent::LineTooLong { tag: None }]
        );
    }

    #[test]
    fn discarded_long_line_skips_its_non_sync_literal() {
        let mut input = b"a1 X ".to_vec();
        input.resize(MAX_LINE_LENGTH + 10, b'x');
        input.extend_from_slice(b" {9+}\r\na2 NOOP\r\n\r\na3 NOOP\r\n");
        assert_eq!(
            frame_bytewise(&input),
            vec![
                FrameEvent::LineTooLong {
                    tag: Some("a1".into())
                },
                cmd(b"a3 NOOP")
            ]
        );
    }

    #[test]
    fn literal_of_exactly_max_size_is_accepted() {
        let mut input = format!("a1 X {{{MAX_LITERAL_SIZE}+}}\r\n").into_bytes();
        let head = input.clone();
        input.resize(input.len() + MAX_LITERAL_SIZE as usize, b'z');
        input.extend_from_slice(b"\r\n");
        let events = frame_all(&input);
        assert_eq!(events.len(), 1);
        let FrameEvent::Command(c) = &events[0] else {
            panic!("expected a command, got {events:?}")
        };
        assert_eq!(c.len(), head.len() + MAX_LITERAL_SIZE as usize);
        assert_eq!(
            frame_all(format!("a1 X {{{MAX_LITERAL_SIZE}}}\r\n").as_bytes()),
            vec![FrameEvent::ContinuationNeeded]
        );
    }

    fn too_large(tag: &str, size: u64, reason: LiteralLimit) -> FrameEvent {
        FrameEvent::LiteralTooLarge {
            tag: Some(tag.into()),
            size,
            reason,
        }
    }

    #[test]
    fn sync_literal_one_past_max_size_gets_no_continuation() {
        let size = MAX_LITERAL_SIZE + 1;
        let input = format!("a1 LOGIN x {{{size}}}\r\na2 NOOP\r\n");
        assert_eq!(
            frame_bytewise(input.as_bytes()),
            vec![too_large("a1", size, LiteralLimit::Size), cmd(b"a2 NOOP")]
        );
    }

    #[test]
    fn non_sync_literal_one_past_max_size_is_skipped_unbuffered() {
        let size = MAX_LITERAL_SIZE + 1;
        let mut f = Framer::new();
        f.feed(format!("a1 LOGIN x {{{size}+}}\r\n").as_bytes());
        assert_eq!(f.next_event(), None);
        let chunk = vec![b'\n'; 4096];
        let mut sent = 0u64;
        while sent + 4096 <= size {
            f.feed(&chunk);
            assert_eq!(f.next_event(), None);
            assert!(f.cmd.is_empty() && f.buf.capacity() <= 3 * 4096);
            sent += 4096;
        }
        let mut last = vec![b'x'; (size - sent) as usize];
        last.extend_from_slice(b" trailing\r\na2 NOOP\r\n");
        f.feed(&last);
        assert_eq!(
            events(&mut f),
            vec![too_large("a1", size, LiteralLimit::Size), cmd(b"a2 NOOP")]
        );
    }

    #[test]
    fn absurd_literal_sizes() {
        assert_eq!(
            frame_all(b"t {99999999999999999999999999}\r\n"),
            vec![too_large("t", u64::MAX, LiteralLimit::Size)]
        );
    }

    /// Ten literals of `MAX_LITERAL_SIZE`, then one that brings the
    /// command's literal data to `MAX_COMMAND_LITERAL_BYTES + extra`.
    fn literal_bytes_near_limit(extra: u64) -> (Framer, u64) {
        let mut f = Framer::new();
        let lit = vec![b'q'; MAX_LITERAL_SIZE as usize];
        f.feed(b"a1 X");
        for _ in 0..10 {
            f.feed(format!(" {{{MAX_LITERAL_SIZE}+}}\r\n").as_bytes());
            f.feed(&lit);
        }
        assert_eq!(f.next_event(), None);
        let last = MAX_COMMAND_LITERAL_BYTES + extra - 10 * MAX_LITERAL_SIZE;
        f.feed(format!(" {{{last}}}\r\n").as_bytes());
        (f, last)
    }

    #[test]
    fn literal_bytes_at_the_limit_are_accepted() {
        let (mut f, last) = literal_bytes_near_limit(0);
        assert_eq!(f.next_event(), Some(FrameEvent::ContinuationNeeded));
        f.feed(&vec![b'r'; last as usize]);
        f.feed(b"\r\n");
        assert!(matches!(f.next_event(), Some(FrameEvent::Command(_))));
    }

    #[test]
    fn literal_bytes_one_past_the_limit_are_refused() {
        let (mut f, last) = literal_bytes_near_limit(1);
        assert_eq!(
            f.next_event(),
            Some(too_large("a1", last, LiteralLimit::CommandBytes))
        );
        f.feed(b"a2 NOOP\r\n");
        assert_eq!(f.next_event(), Some(cmd(b"a2 NOOP")));
    }

    #[test]
    fn literal_count_edge() {
        let command = |n: usize| {
            let mut v = b"a1 X".to_vec();
            for _ in 0..n {
                v.extend_from_slice(b" {0+}\r\n");
            }
            v.extend_from_slice(b"\r\na2 NOOP\r\n");
            v
        };
        let at = frame_all(&command(MAX_COMMAND_LITERALS));
        assert_eq!(at.len(), 2);
        assert!(
            matches!(&at[0], FrameEvent::Command(c) if c.len() == 4 + 7 * MAX_COMMAND_LITERALS)
        );
        assert_eq!(
            frame_all(&command(MAX_COMMAND_LITERALS + 1)),
            vec![too_large("a1", 0, LiteralLimit::Count), cmd(b"a2 NOOP")]
        );
    }

    /// 31 full-length segments joined by empty literals, then a last line
    /// that brings the command to `MAX_COMMAND_SIZE + extra` bytes.
    fn command_near_limit(extra: usize) -> Vec<u8> {
        let mut input = Vec::new();
        let mut segment = b"a1 X ".to_vec();
        segment.resize(MAX_LINE_LENGTH - 4, b's');
        segment.extend_from_slice(b"{0}\r\n");
        let mut size = 0;
        for _ in 0..31 {
            input.extend_from_slice(&segment);
            size += segment.len();
            segment = vec![b' '; MAX_LINE_LENGTH - 4];
            segment.extend_from_slice(b"{0}\r\n");
        }
        input.resize(input.len() + MAX_COMMAND_SIZE + extra - size, b'e');
        input.extend_from_slice(b"\r\na2 NOOP\r\n");
        input
    }

    #[test]
    fn command_of_exactly_max_size_is_accepted() {
        let events = frame_all(&command_near_limit(0));
        assert!(events[..31]
            .iter()
            .all(|e| *e == FrameEvent::ContinuationNeeded));
        match &events[31] {
            FrameEvent::Command(c) => assert_eq!(c.len(), MAX_COMMAND_SIZE),
            other => panic!("expected a command, got {other:?}"),
        }
        assert_eq!(events[32..], [cmd(b"a2 NOOP")]);
    }

    #[test]
    fn command_one_past_max_size_is_rejected() {
        let events = frame_all(&command_near_limit(1));
        assert_eq!(
            events[31..],
            [
                FrameEvent::LineTooLong {
                    tag: Some("a1".into())
                },
                cmd(b"a2 NOOP")
            ]
        );
    }

    fn append_events(f: &mut Framer, accept: bool) -> Vec<FrameEvent> {
        let mut out = Vec::new();
        while let Some(e) = f.next_event() {
            let announced = matches!(e, FrameEvent::AppendLiteral { .. });
            out.push(e);
            if announced {
                if accept {
                    f.accept_literal();
                } else {
                    f.refuse_literal();
                }
            }
        }
        out
    }

    #[test]
    fn append_messages_stream() {
        let mut f = Framer::new();
        f.feed(b"a1 APPEND {5}\r\nINBOX (\\Seen) {3}\r\nabc ~{2+}\r\nde\r\na2 NOOP\r\n");
        assert_eq!(
            append_events(&mut f, true),
            vec![
                FrameEvent::ContinuationNeeded,
                FrameEvent::AppendLiteral {
                    head: b"a1 APPEND {5}\r\nINBOX (\\Seen) ".to_vec(),
                    size: 3,
                    sync: true,
                    binary: false
                },
                FrameEvent::LiteralData(b"abc".to_vec()),
                FrameEvent::LiteralEnd,
                FrameEvent::AppendLiteral {
                    head: b" ".to_vec(),
                    size: 2,
                    sync: false,
                    binary: true
                },
                FrameEvent::LiteralData(b"de".to_vec()),
                FrameEvent::LiteralEnd,
                FrameEvent::AppendEnd { tail: Vec::new() },
                cmd(b"a2 NOOP"),
            ]
        );
        // Byte by byte, the data comes in pieces of what arrived.
        let mut f = Framer::new();
        let mut got = Vec::new();
        for b in b"a1 APPEND x {3+}\r\nxyz\r\n" {
            f.feed(std::slice::from_ref(b));
            got.extend(append_events(&mut f, true));
        }
        assert_eq!(got.len(), 6);
        assert_eq!(
            got[1..4],
            [b'x', b'y', b'z'].map(|b| FrameEvent::LiteralData(vec![b]))
        );
    }

    #[test]
    fn refused_append_literals() {
        // A synchronizing literal is never sent: the next line is a command.
        let mut f = Framer::new();
        f.feed(b"a1 APPEND x {3}\r\na2 NOOP\r\n");
        let ev = append_events(&mut f, false);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1], cmd(b"a2 NOOP"));
        // A non-synchronizing one is skipped with the rest of its command.
        let mut f = Framer::new();
        f.feed(b"a1 APPEND x {3+}\r\nabc (\\Seen) {2+}\r\nde\r\na2 NOOP\r\n");
        let ev = append_events(&mut f, false);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1], cmd(b"a2 NOOP"));
    }

    #[test]
    fn append_literals_past_the_second_are_never_messages() {
        // Mailbox and flag list as literals: neither is a message, so the
        // command is read whole (and the parser answers BAD), with no
        // message announced for its third literal either.
        let input = b"a1 APPEND {1+}\r\nx ({2+}\r\n\\S {3+}\r\nabc)\r\na2 NOOP\r\n";
        let mut f = Framer::new();
        f.feed(input);
        assert_eq!(
            append_events(&mut f, true),
            [
                cmd(b"a1 APPEND {1+}\r\nx ({2+}\r\n\\S {3+}\r\nabc)"),
                cmd(b"a2 NOOP")
            ]
        );
    }

    #[test]
    fn append_literal_count_limit() {
        let mut input = b"a1 APPEND x".to_vec();
        for _ in 0..=MAX_COMMAND_LITERALS {
            input.extend_from_slice(b" {1+}\r\nm");
        }
        input.extend_from_slice(b"\r\na2 NOOP\r\n");
        let mut f = Framer::new();
        f.feed(&input);
        let ev = append_events(&mut f, true);
        let announced = ev
            .iter()
            .filter(|e| matches!(e, FrameEvent::AppendLiteral { .. }))
            .count();
        assert_eq!(announced, MAX_COMMAND_LITERALS);
        assert_eq!(
            ev[ev.len() - 2..],
            [too_large("a1", 1, LiteralLimit::Count), cmd(b"a2 NOOP")]
        );
    }

    #[test]
    fn big_commands_leave_no_big_buffers_behind() {
        let mut f = Framer::new();
        let mut input = b"a1 X ".to_vec();
        input.resize(MAX_LINE_LENGTH, b'x');
        input.extend_from_slice(b"\r\n");
        f.feed(&input);
        assert!(matches!(f.next_event(), Some(FrameEvent::Command(_))));
        assert_eq!(f.next_event(), None);
        assert!(f.buf.capacity() <= KEEP_CAPACITY && f.cmd.capacity() <= KEEP_CAPACITY);
        // A partial command keeps its bytes.
        f.feed(b"a2 NO");
        assert_eq!(f.next_event(), None);
        f.feed(b"OP\r\n");
        assert_eq!(f.next_event(), Some(cmd(b"a2 NOOP")));
    }

    #[test]
    fn garbage_bytes_are_framed_not_judged() {
        assert_eq!(
            frame_all(b"\0\xff\xfe\r\n\r\n\n\ra1\r\nonly-tag \r\n"),
            vec![cmd(b"\0\xff\xfe"), cmd(b"\ra1"), cmd(b"only-tag ")]
        );
        assert_eq!(frame_all(b"{}\r\n{x}\r\n"), vec![cmd(b"{}"), cmd(b"{x}")]);
    }

    #[test]
    fn take_pending_returns_unframed_bytes() {
        let mut f = Framer::new();
        f.feed(b"a1 STARTTLS\r\na2 LOGIN x y\r\n");
        assert_eq!(f.next_event(), Some(cmd(b"a1 STARTTLS")));
        assert_eq!(f.pending_bytes(), 14);
        assert_eq!(f.take_pending(), b"a2 LOGIN x y\r\n".to_vec());
        assert_eq!(f.pending_bytes(), 0);
        assert_eq!(f.next_event(), None);
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of(b"a1 NOOP"), Some("a1".into()));
        assert_eq!(tag_of(b"a]1 NOOP"), Some("a]1".into()));
        assert_eq!(tag_of(b"a1"), None);
        assert_eq!(tag_of(b" NOOP"), None);
        assert_eq!(tag_of(b"a+ NOOP"), None);
        assert_eq!(tag_of(b"a* NOOP"), None);
        assert_eq!(tag_of(b"\xc3\xa9 NOOP"), None);
    }

    #[test]
    fn an_expected_response_may_be_empty() {
        let mut f = Framer::new();
        f.feed(b"\r\n");
        assert_eq!(f.next_event(), None);
        f.expect_response();
        f.feed(b"\r\n\r\na NOOP\r\n");
        assert_eq!(f.next_event(), Some(FrameEvent::Command(Vec::new())));
        // Only the one line: the next empty line is skipped again.
        assert_eq!(
            f.next_event(),
            Some(FrameEvent::Command(b"a NOOP".to_vec()))
        );
    }
}
