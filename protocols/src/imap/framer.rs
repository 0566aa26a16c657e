//! Command framing for the IMAP server (RFC 9051 2.2.1, 4.3; RFC 7888):
//! turns the byte stream a client sends into whole commands, with their
//! literals inlined, and tells the session when a synchronizing literal
//! needs a `+` continuation.
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
/// The largest literal accepted in a command. APPEND will stream its
/// message literal instead, with its own limit.
pub const MAX_LITERAL_SIZE: u64 = 1024 * 1024;
/// The largest command, all its line segments and literals together.
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
    /// the command too large). A synchronizing one got no continuation; a
    /// non-synchronizing one was skipped. The command is dropped.
    LiteralTooLarge { tag: Option<String>, size: u64 },
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
}

impl Framer {
    pub fn new() -> Framer {
        Framer {
            buf: Vec::new(),
            pos: 0,
            cmd: Vec::new(),
            state: State::Line { scanned: 0 },
        }
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

    /// Takes the bytes fed but not framed yet, and forgets any partial
    /// command. After STARTTLS the session drops these: they arrived in the
    /// clear (RFC 9051 6.2.1) and must not be taken as commands.
    pub fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos);
        self.buf.clear();
        self.pos = 0;
        self.cmd.clear();
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
            self.cmd.clear();
            self.after_discarded_line(&tail);
            return Step::Emit(FrameEvent::LineTooLong { tag });
        }
        match literal_spec(content) {
            None => {
                if self.cmd.is_empty() && content.is_empty() {
                    // An empty line is not a command; some clients send
                    // a stray CRLF after a literal. Ignore it.
                    return Step::Continue;
                }
                self.cmd.extend_from_slice(content);
                Step::Emit(FrameEvent::Command(std::mem::take(&mut self.cmd)))
            }
            Some(spec) => self.start_literal(line_start, lf, spec),
        }
    }

    fn start_literal(&mut self, line_start: usize, lf: usize, spec: LiteralSpec) -> Step {
        let total = (self.cmd.len() + (lf + 1 - line_start)) as u64;
        let fits = spec.size <= MAX_LITERAL_SIZE
            && total.saturating_add(spec.size) <= MAX_COMMAND_SIZE as u64;
        if !fits {
            let tag = self.command_tag(line_start, lf);
            self.cmd.clear();
            let event = FrameEvent::LiteralTooLarge {
                tag,
                size: spec.size,
            };
            if spec.sync {
                // RFC 9051 7.5: no continuation, so the client sends no data.
                return Step::Emit(event);
            }
            // RFC 7888 4: the client sends the data regardless; skip it.
            self.state = State::SkipLiteral {
                remaining: spec.size,
                then: Some(event),
            };
            return Step::Continue;
        }
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
        self.cmd.clear();
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
            Some(LiteralSpec { size, sync: false }) => State::SkipLiteral {
                remaining: size,
                then: None,
            },
            _ => State::Line { scanned: 0 },
        };
    }

    /// The tag of the command being framed, if it starts with a valid one:
    /// from the command so far, or else from `buf[start..end]`.
    fn command_tag(&self, start: usize, end: usize) -> Option<String> {
        if self.cmd.is_empty() {
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
fn literal_spec(content: &[u8]) -> Option<LiteralSpec> {
    let inner = content.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
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

    #[test]
    fn sync_literal_one_past_max_size_gets_no_continuation() {
        let size = MAX_LITERAL_SIZE + 1;
        let input = format!("a1 APPEND INBOX {{{size}}}\r\na2 NOOP\r\n");
        assert_eq!(
            frame_bytewise(input.as_bytes()),
            vec![
                FrameEvent::LiteralTooLarge {
                    tag: Some("a1".into()),
                    size
                },
                cmd(b"a2 NOOP")
            ]
        );
    }

    #[test]
    fn non_sync_literal_one_past_max_size_is_skipped_unbuffered() {
        let size = MAX_LITERAL_SIZE + 1;
        let mut f = Framer::new();
        f.feed(format!("a1 APPEND INBOX {{{size}+}}\r\n").as_bytes());
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
            vec![
                FrameEvent::LiteralTooLarge {
                    tag: Some("a1".into()),
                    size
                },
                cmd(b"a2 NOOP")
            ]
        );
    }

    #[test]
    fn absurd_literal_sizes() {
        assert_eq!(
            frame_all(b"t {99999999999999999999999999}\r\n"),
            vec![FrameEvent::LiteralTooLarge {
                tag: Some("t".into()),
                size: u64::MAX
            }]
        );
    }

    /// Feeds two literals of `MAX_LITERAL_SIZE - 512` bytes, then announces
    /// a third that brings the command to `MAX_COMMAND_SIZE + extra`.
    fn command_near_limit(extra: u64) -> (Framer, u64) {
        let mut f = Framer::new();
        let size = MAX_LITERAL_SIZE - 512;
        let lit = vec![b'q'; size as usize];
        f.feed(format!("a1 X {{{size}+}}\r\n").as_bytes());
        f.feed(&lit);
        f.feed(format!(" {{{size}+}}\r\n").as_bytes());
        f.feed(&lit);
        assert_eq!(f.next_event(), None);
        let so_far = f.cmd.len() as u64;
        // " {n}\r\n" with a 3-digit n is 8 bytes.
        let third = MAX_COMMAND_SIZE as u64 + extra - so_far - 8;
        assert!((100..1000).contains(&third));
        f.feed(format!(" {{{third}}}\r\n").as_bytes());
        (f, third)
    }

    #[test]
    fn command_of_exactly_max_size_is_accepted() {
        let (mut f, third) = command_near_limit(0);
        assert_eq!(f.next_event(), Some(FrameEvent::ContinuationNeeded));
        f.feed(&vec![b'r'; third as usize]);
        f.feed(b"\r\n");
        match f.next_event() {
            Some(FrameEvent::Command(c)) => assert_eq!(c.len(), MAX_COMMAND_SIZE),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn command_one_past_max_size_is_rejected() {
        let (mut f, third) = command_near_limit(1);
        assert_eq!(
            f.next_event(),
            Some(FrameEvent::LiteralTooLarge {
                tag: Some("a1".into()),
                size: third
            })
        );
        f.feed(b"a2 NOOP\r\n");
        assert_eq!(f.next_event(), Some(cmd(b"a2 NOOP")));
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
}
