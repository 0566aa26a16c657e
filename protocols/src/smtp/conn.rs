//! The server side of an SMTP connection's input, sans-IO: bytes in,
//! [`Event`]s out.
//!
//! [`SmtpReader`] frames command lines and the message after DATA. It does
//! not know the session's state (whether MAIL came before RCPT, whether the
//! client authenticated); it only keeps the byte stream in sync. The session
//! loop is: read from the socket, [`SmtpReader::feed`], then call
//! [`SmtpReader::next_event`] until it returns `None`.
//!
//! After DATA the reader stops until the session has answered: it calls
//! [`SmtpReader::begin_data`] after writing 354, or
//! [`SmtpReader::reject_data`] after writing an error, and what follows is
//! read as the message or as commands accordingly.
//!
//! BDAT (RFC 3030 2) needs no answer first: the chunk's octets follow
//! the command line at once, and the reader always consumes exactly as
//! many as the command names, as [`Event::Data`] pieces and then
//! [`Event::ChunkEnd`], whatever the session makes of them. So a refused
//! BDAT never lets its chunk be read as commands.

use super::command::{parse_command, Command};
use super::reply::Reply;

/// RFC 5321 4.5.3.1.4: a command line is at most 512 octets, CRLF
/// included; RFC 3461 4 adds up to 500 for RCPT's NOTIFY and ORCPT (and
/// 100 for MAIL's RET and ENVID), so roost reads lines of up to 1012.
pub const MAX_COMMAND_LINE: usize = 512 + 500;

/// RFC 4954 4: the longest line answering a 334 challenge a server must
/// take, CRLF included (12288 octets): SASL responses are not commands.
pub const MAX_AUTH_RESPONSE_LINE: usize = 12288;

/// Largest message chunk one [`Event::Data`] carries.
pub const DATA_CHUNK: usize = 64 * 1024;

/// The most input the reader keeps once `next_event` has returned `None`
/// (except while it waits for `begin_data` or `reject_data`): a partial
/// command line, which is shorter than [`MAX_COMMAND_LINE`]. In data mode it
/// keeps nothing; the bytes held back at a possible end marker live in its
/// state, not in a buffer.
pub const MAX_BUFFERED: usize = MAX_COMMAND_LINE;

/// What the reader found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A well-formed command. After `Command::Data` nothing more comes until
    /// the session calls `begin_data` or `reject_data`.
    Command(Command),
    /// A line that is not a valid command, or is too long. The session
    /// writes this reply and goes on.
    CommandError(Reply),
    /// A piece of the message: dot-unstuffed, line ends as sent.
    Data(Vec<u8>),
    /// The end marker was read; the reader is back to commands.
    DataEnd(DataOutcome),
    /// The octets of the last BDAT chunk have all come (as `Data`, not
    /// unstuffed); the reader is back to commands. `bare_line_ending`:
    /// the chunk had a CR not followed by LF, or an LF not preceded by
    /// CR; a CR as its last octet is `trailing_cr` instead, bare only if
    /// this was the last chunk or the next does not start with LF.
    ChunkEnd {
        bare_line_ending: bool,
        trailing_cr: bool,
    },
    /// A BDAT line that cannot be read: how many octets follow is
    /// unknown, so the stream cannot be kept in sync. The session writes
    /// this reply and closes the connection.
    Unrecoverable(Reply),
}

/// How the message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOutcome {
    Ok,
    /// Longer than the maximum size; the bytes past it were dropped. The
    /// session answers `Reply::message_too_large()`.
    TooLarge,
    /// A bare CR or LF was in the message. The session answers
    /// `Reply::bare_line_ending()`: accepting such messages is what makes
    /// SMTP smuggling possible.
    BareLineEnding,
}

/// Where the data-mode state machine stands. The bytes it holds back (a
/// leading dot, a CR) are implied by the state, so no input is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// At the start of a line (after CRLF, or at the start of the message:
    /// RFC 5321 4.1.1.4 reads the data as if preceded by CRLF).
    LineStart,
    /// A `.` at the start of a line, held back.
    Dot,
    /// `.` CR at the start of a line, held back.
    DotCr,
    /// Inside a line.
    Middle,
    /// A CR held back, waiting to see whether LF follows.
    Cr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Commands,
    /// Discarding an over-long command line up to its LF.
    Discarding,
    /// DATA was read; waiting for `begin_data` or `reject_data`.
    AwaitingData,
    Data(DataState),
    /// Inside a BDAT chunk: the octets still to come.
    Chunk(u64),
}

/// The reader. See the module docs for the loop that drives it.
#[derive(Debug)]
pub struct SmtpReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    mode: Mode,
    max_message_size: u64,
    /// Message octets seen so far, after unstuffing.
    message_size: u64,
    bare_line_ending: bool,
    /// A DataEnd to yield once the last chunk has gone out.
    pending_end: Option<DataOutcome>,
    /// BDAT: the previous octet was a CR (across chunk boundaries).
    chunk_cr: bool,
    /// BDAT: a bare CR or LF in the chunk being read.
    chunk_bare: bool,
}

impl SmtpReader {
    /// A reader that accepts messages of up to `max_message_size` octets.
    pub fn new(max_message_size: u64) -> Self {
        SmtpReader {
            buf: Vec::new(),
            pos: 0,
            mode: Mode::Commands,
            max_message_size,
            message_size: 0,
            bare_line_ending: false,
            pending_end: None,
            chunk_cr: false,
            chunk_bare: false,
        }
    }

    /// A new message starts (MAIL): line-end tracking across BDAT chunks
    /// starts over.
    pub fn new_message(&mut self) {
        self.chunk_cr = false;
    }

    /// Changes the limit for the next message (for example per sender).
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max_message_size = max;
    }

    /// Appends input from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Input held and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Drops input held and not yet consumed, returning how much. After
    /// STARTTLS the session calls this so nothing sent in plaintext is read
    /// as if it came over TLS (RFC 3207 6, the STARTTLS command injection).
    pub fn discard_buffered(&mut self) -> usize {
        let n = self.buffered();
        self.buf.clear();
        self.pos = 0;
        n
    }

    /// Whether the reader waits for `begin_data` or `reject_data`.
    pub fn awaiting_data(&self) -> bool {
        self.mode == Mode::AwaitingData
    }

    /// The session sent 354: what follows is the message. Ignored unless the
    /// reader is waiting after DATA.
    pub fn begin_data(&mut self) {
        if self.mode == Mode::AwaitingData {
            self.mode = Mode::Data(DataState::LineStart);
            self.message_size = 0;
            self.bare_line_ending = false;
        }
    }

    /// The session refused DATA: what follows is read as commands. Ignored
    /// unless the reader is waiting after DATA.
    pub fn reject_data(&mut self) {
        if self.mode == Mode::AwaitingData {
            self.mode = Mode::Commands;
        }
    }

    /// The next event, or `None` when more input is needed (or the reader
    /// waits for `begin_data` / `reject_data`).
    pub fn next_event(&mut self) -> Option<Event> {
        if let Some(outcome) = self.pending_end.take() {
            return Some(Event::DataEnd(outcome));
        }
        match self.mode {
            Mode::AwaitingData => None,
            Mode::Commands | Mode::Discarding => self.next_command(),
            Mode::Data(state) => self.next_data(state),
            Mode::Chunk(left) => self.next_chunk(left),
        }
    }

    /// RFC 3030 2: up to [`DATA_CHUNK`] octets of the chunk, as sent;
    /// `ChunkEnd` once all have come.
    fn next_chunk(&mut self, left: u64) -> Option<Event> {
        if left == 0 {
            self.mode = Mode::Commands;
            let bare_line_ending = std::mem::take(&mut self.chunk_bare);
            return Some(Event::ChunkEnd {
                bare_line_ending,
                trailing_cr: self.chunk_cr,
            });
        }
        let available = self.buf.len() - self.pos;
        if available == 0 {
            return None;
        }
        let n = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(available)
            .min(DATA_CHUNK);
        let piece = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        self.mode = Mode::Chunk(left - n as u64);
        for &b in &piece {
            if (self.chunk_cr && b != b'\n') || (!self.chunk_cr && b == b'\n') {
                self.chunk_bare = true;
            }
            self.chunk_cr = b == b'\r';
        }
        Some(Event::Data(piece))
    }

    /// The next raw line, without its line end, for exchanges that are not
    /// commands (RFC 4954 4: the client's answers to a 334 challenge), up
    /// to [`MAX_AUTH_RESPONSE_LINE`].
    /// `None` when no whole line is buffered yet; an over-long line is an
    /// error reply, and is dropped like an over-long command.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, Reply>> {
        if self.mode != Mode::Commands {
            return match self.next_command()? {
                Event::CommandError(r) => Some(Err(r)),
                _ => None,
            };
        }
        let rest = &self.buf[self.pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() >= MAX_AUTH_RESPONSE_LINE {
                self.mode = Mode::Discarding;
                self.pos = self.buf.len();
            }
            return None;
        };
        let mut line = rest[..lf].to_vec();
        self.pos += lf + 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > MAX_AUTH_RESPONSE_LINE - 2 {
            return Some(Err(Reply::line_too_long()));
        }
        Some(Ok(line))
    }

    fn next_command(&mut self) -> Option<Event> {
        let rest = &self.buf[self.pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            // No line end yet. A line that already cannot fit is dropped as
            // it comes, so memory stays bounded.
            if self.mode == Mode::Discarding || rest.len() >= MAX_COMMAND_LINE {
                // A BDAT line too long to read: its chunk would be read as
                // commands.
                if self.mode == Mode::Commands && is_bdat(rest) {
                    self.pos = self.buf.len();
                    return Some(Event::Unrecoverable(Reply::line_too_long()));
                }
                self.mode = Mode::Discarding;
                self.pos = self.buf.len();
            }
            return None;
        };
        let line = &rest[..lf + 1];
        self.pos += lf + 1;
        if self.mode == Mode::Discarding {
            self.mode = Mode::Commands;
            return Some(Event::CommandError(Reply::line_too_long()));
        }
        // Bare LF is accepted for commands; the limit is on the text without
        // its line end, as if it ended in CRLF.
        let text_len = line.len() - 1 - usize::from(line.ends_with(b"\r\n"));
        if text_len > MAX_COMMAND_LINE - 2 {
            if is_bdat(line) {
                return Some(Event::Unrecoverable(Reply::line_too_long()));
            }
            return Some(Event::CommandError(Reply::line_too_long()));
        }
        Some(match parse_command(line) {
            Ok(Command::Data) => {
                self.mode = Mode::AwaitingData;
                Event::Command(Command::Data)
            }
            Ok(Command::Bdat { size, last }) => {
                self.mode = Mode::Chunk(size);
                self.chunk_bare = false;
                Event::Command(Command::Bdat { size, last })
            }
            Err(e) if is_bdat(line) => Event::Unrecoverable(e.0),
            Ok(cmd) => Event::Command(cmd),
            Err(e) => Event::CommandError(e.0),
        })
    }

    fn next_data(&mut self, mut state: DataState) -> Option<Event> {
        let mut chunk = Vec::new();
        let mut ended = false;
        // A step emits at most two octets, so stop two short of the chunk size.
        while self.pos < self.buf.len() && chunk.len() + 2 <= DATA_CHUNK {
            if state == DataState::Middle {
                // Fast path: copy up to the next CR or LF in one go.
                let rest = &self.buf[self.pos..];
                let room = DATA_CHUNK - chunk.len();
                let n = rest
                    .iter()
                    .take(room)
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len().min(room));
                if n > 0 {
                    let end = self.pos + n;
                    let (buf, size, max) =
                        (&self.buf, &mut self.message_size, self.max_message_size);
                    push_limited(&mut chunk, size, max, &buf[self.pos..end]);
                    self.pos = end;
                    continue;
                }
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            match self.step(state, b, &mut chunk) {
                Some(next) => state = next,
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            self.mode = Mode::Commands;
            let outcome = if self.message_size > self.max_message_size {
                DataOutcome::TooLarge
            } else if self.bare_line_ending {
                DataOutcome::BareLineEnding
            } else {
                DataOutcome::Ok
            };
            if chunk.is_empty() {
                return Some(Event::DataEnd(outcome));
            }
            self.pending_end = Some(outcome);
        } else {
            self.mode = Mode::Data(state);
        }
        (!chunk.is_empty()).then_some(Event::Data(chunk))
    }

    /// One input byte through the data state machine; `None` at the end
    /// marker.
    // RFC 5321 4.1.1.4: the end marker is CRLF "." CRLF, and nothing else.
    // RFC 5321 4.5.2: a line's leading "." is removed (dot-unstuffing).
    // A lone CR or LF never starts or ends a line here, so `\n.\n`,
    // `\r.\r`, `\n.\r\n` and `\r\n.\n` are message text, not the end; and
    // any of them marks the message BareLineEnding (SMTP smuggling).
    fn step(&mut self, state: DataState, b: u8, out: &mut Vec<u8>) -> Option<DataState> {
        use DataState::*;
        Some(match (state, b) {
            (LineStart, b'.') => Dot,
            (Dot, b'\r') => DotCr,
            (LineStart | Middle, b'\r') => Cr,
            (DotCr, b'\n') => return None,
            (DotCr, _) => {
                // ".\r" then not LF: the dot is stuffing; the CR is bare.
                self.bare_line_ending = true;
                self.emit(out, b"\r");
                self.step(Middle, b, out)?
            }
            (Cr, b'\n') => {
                self.emit(out, b"\r\n");
                LineStart
            }
            (Cr, _) => {
                self.bare_line_ending = true;
                self.emit(out, b"\r");
                self.step(Middle, b, out)?
            }
            (_, b'\n') => {
                self.bare_line_ending = true;
                self.emit(out, b"\n");
                Middle
            }
            (Dot, _) | (LineStart | Middle, _) => {
                self.emit(out, &[b]);
                Middle
            }
        })
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        push_limited(out, &mut self.message_size, self.max_message_size, bytes);
    }
}

/// Whether a command line's verb is BDAT (followed by whitespace, a
/// control character or the line's end), so that a line that fails as
/// BDAT is never taken for another command while its chunk follows.
fn is_bdat(line: &[u8]) -> bool {
    line.len() >= 4
        && line[..4].eq_ignore_ascii_case(b"BDAT")
        && line
            .get(4)
            .is_none_or(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

/// Appends what still fits under `max` and counts everything, so the size
/// keeps growing past the limit while memory does not.
fn push_limited(out: &mut Vec<u8>, size: &mut u64, max: u64, bytes: &[u8]) {
    let room = max.saturating_sub(*size);
    let keep = usize::try_from(room).map_or(bytes.len(), |r| r.min(bytes.len()));
    out.extend_from_slice(&bytes[..keep]);
    *size = size.saturating_add(bytes.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::command::{Address, ForwardPath, ReversePath};

    /// xorshift64: deterministic pseudo-random numbers for the tests.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn drain(r: &mut SmtpReader) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = r.next_event() {
            out.push(e);
        }
        out
    }

    /// Feeds `input` in pieces of `piece` bytes, draining after each feed;
    /// calls `begin_data` whenever DATA was read. Returns the events with
    /// adjacent Data chunks merged, and checks the buffer bound as it goes.
    fn run(input: &[u8], piece: usize, max: u64) -> Vec<Event> {
        let mut r = SmtpReader::new(max);
        let mut events: Vec<Event> = Vec::new();
        for part in input.chunks(piece.max(1)) {
            r.feed(part);
            loop {
                let Some(e) = r.next_event() else {
                    if r.awaiting_data() {
                        r.begin_data();
                        continue;
                    }
                    break;
                };
                if let Event::Data(d) = &e {
                    assert!(!d.is_empty() && d.len() <= DATA_CHUNK, "chunk {}", d.len());
                }
                match (events.last_mut(), e) {
                    (Some(Event::Data(prev)), Event::Data(more)) => {
                        prev.extend_from_slice(&more);
                    }
                    (_, e) => events.push(e),
                }
            }
            assert!(r.buffered() <= MAX_BUFFERED, "buffered {}", r.buffered());
        }
        events
    }

    fn data_events(body: &[u8]) -> Vec<Event> {
        let mut input = b"DATA\r\n".to_vec();
        input.extend_from_slice(body);
        let mut ev = run(&input, input.len(), 1 << 30);
        assert_eq!(ev.remove(0), Event::Command(Command::Data));
        ev
    }

    #[test]
    fn pipelined_session() {
        let input =
            b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n\
Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n";
        let ev = run(input, input.len(), 1000);
        assert_eq!(
            ev,
            vec![
                Event::Command(Command::Ehlo("c.example".into())),
                Event::Command(Command::Mail {
                    from: ReversePath::Mailbox(Address {
                        local: "a".into(),
                        domain: "b.example".into()
                    }),
                    params: vec![]
                }),
                Event::Command(Command::Rcpt {
                    to: ForwardPath::Mailbox(Address {
                        local: "c".into(),
                        domain: "d.example".into()
                    }),
                    params: vec![]
                }),
                Event::Command(Command::Data),
                Event::Data(b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n".to_vec()),
                Event::DataEnd(DataOutcome::Ok),
                Event::Command(Command::Quit),
            ]
        );
    }

    #[test]
    fn waits_after_data_until_the_session_decides() {
        let mut r = SmtpReader::new(100);
        r.feed(b"DATA\r\nRSET\r\n");
        assert_eq!(r.next_event(), Some(Event::Command(Command::Data)));
        assert_eq!(r.next_event(), None);
        assert!(r.awaiting_data());
        r.reject_data();
        assert_eq!(r.next_event(), Some(Event::Command(Command::Rset)));
        assert_eq!(r.next_event(), None);
        // begin_data and reject_data outside the wait change nothing.
        r.begin_data();
        r.feed(b"NOOP\r\n");
        assert_eq!(r.next_event(), Some(Event::Command(Command::Noop)));
    }

    #[test]
    fn command_errors_keep_the_session_going() {
        let mut r = SmtpReader::new(100);
        r.feed(b"FOO\r\nMAIL FROM:x\r\nNOOP\n");
        assert_eq!(
            drain(&mut r),
            vec![
                Event::CommandError(Reply::unknown_command()),
                Event::CommandError(Reply::new(
                    501,
                    Some((5, 1, 7)),
                    "Syntax: address must be in angle brackets"
                )),
                Event::Command(Command::Noop),
            ]
        );
    }

    #[test]
    fn empty_message_and_leading_dot() {
        assert_eq!(data_events(b".\r\n"), vec![Event::DataEnd(DataOutcome::Ok)]);
        assert_eq!(
            data_events(b".x\r\n.\r\n"),
            vec![
                Event::Data(b"x\r\n".to_vec()),
                Event::DataEnd(DataOutcome::Ok)
            ]
        );
        assert_eq!(
            data_events(b"..\r\n.\r\n"),
            vec![
                Event::Data(b".\r\n".to_vec()),
                Event::DataEnd(DataOutcome::Ok)
            ]
        );
        assert_eq!(
            data_events(b"\r\n.\r\n"),
            vec![
                Event::Data(b"\r\n".to_vec()),
                Event::DataEnd(DataOutcome::Ok)
            ]
        );
    }

    #[test]
    fn smuggling_sequences_are_not_end_markers() {
        for fake in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\n.\r",
        ] {
            let mut body = b"a".to_vec();
            body.extend_from_slice(fake);
            body.extend_from_slice(b"MAIL FROM:<evil@x>\r\n.\r\nNOOP\r\n");
            let ev = data_events(&body);
            assert_eq!(ev.len(), 3, "{fake:?}: {ev:?}");
            let Event::Data(d) = &ev[0] else {
                panic!("{ev:?}")
            };
            assert!(d.ends_with(b"MAIL FROM:<evil@x>\r\n"), "{fake:?}: {d:?}");
            assert_eq!(
                ev[1],
                Event::DataEnd(DataOutcome::BareLineEnding),
                "{fake:?}"
            );
            assert_eq!(ev[2], Event::Command(Command::Noop), "{fake:?}");
        }
    }

    #[test]
    fn bare_line_endings_are_flagged_with_exact_bytes() {
        assert_eq!(
            data_events(b"a\nb\r\n.\r\n"),
            vec![
                Event::Data(b"a\nb\r\n".to_vec()),
                Event::DataEnd(DataOutcome::BareLineEnding)
            ]
        );
        assert_eq!(
            data_events(b"a\r\r\n.\r\n"),
            vec![
                Event::Data(b"a\r\r\n".to_vec()),
                Event::DataEnd(DataOutcome::BareLineEnding)
            ]
        );
        assert_eq!(
            data_events(b"a\r\n.\rb\r\n.\r\n"),
            vec![
                Event::Data(b"a\r\n\rb\r\n".to_vec()),
                Event::DataEnd(DataOutcome::BareLineEnding)
            ]
        );
    }

    #[test]
    fn end_marker_split_at_every_position() {
        let input: &[u8] = b"DATA\r\nSubject: x\r\n\r\n..a\r\nb\r\n.\r\nQUIT\r\n";
        let whole = run(input, input.len(), 1000);
        assert_eq!(
            whole[1..],
            [
                Event::Data(b"Subject: x\r\n\r\n.a\r\nb\r\n".to_vec()),
                Event::DataEnd(DataOutcome::Ok),
                Event::Command(Command::Quit)
            ]
        );
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut r = SmtpReader::new(1000);
                let mut events = Vec::new();
                for part in [&input[..i], &input[i..j], &input[j..]] {
                    r.feed(part);
                    loop {
                        match r.next_event() {
                            Some(Event::Data(d)) => match events.last_mut() {
                                Some(Event::Data(prev)) => prev.extend_from_slice(&d),
                                _ => events.push(Event::Data(d)),
                            },
                            Some(e) => events.push(e),
                            None if r.awaiting_data() => r.begin_data(),
                            None => break,
                        }
                    }
                }
                assert_eq!(events, whole, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn message_size_edge() {
        // Exactly the limit, counted after unstuffing: ".abc\r\n" is 6.
        let ev = run(b"DATA\r\n..abc\r\n.\r\n", 64, 6);
        assert_eq!(ev[1], Event::Data(b".abc\r\n".to_vec()));
        assert_eq!(ev[2], Event::DataEnd(DataOutcome::Ok));
        // One past: the excess is dropped, the outcome says so.
        let ev = run(b"DATA\r\n..abcd\r\n.\r\nNOOP\r\n", 64, 6);
        assert_eq!(ev[1], Event::Data(b".abcd\r".to_vec()));
        assert_eq!(ev[2], Event::DataEnd(DataOutcome::TooLarge));
        assert_eq!(ev[3], Event::Command(Command::Noop));
        // TooLarge wins over a bare line ending.
        let ev = run(b"DATA\r\na\nbcdefgh\r\n.\r\n", 3, 6);
        assert_eq!(ev.last(), Some(&Event::DataEnd(DataOutcome::TooLarge)));
    }

    #[test]
    fn too_large_stays_bounded() {
        let mut input = b"DATA\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1 << 20));
        input.extend_from_slice(b"\r\n.\r\n");
        let ev = run(&input, 4096, 1000);
        assert_eq!(ev[1], Event::Data(vec![b'x'; 1000]));
        assert_eq!(ev[2], Event::DataEnd(DataOutcome::TooLarge));
    }

    fn noop_line(total: usize, ending: &[u8]) -> Vec<u8> {
        let mut line = b"NOOP ".to_vec();
        line.resize(total - ending.len(), b'a');
        line.extend_from_slice(ending);
        line
    }

    #[test]
    fn auth_response_line_length_edge() {
        let mut r = SmtpReader::new(1000);
        let at = [vec![b'A'; MAX_AUTH_RESPONSE_LINE - 2], b"\r\n".to_vec()].concat();
        r.feed(&at);
        assert_eq!(
            r.next_line(),
            Some(Ok(vec![b'A'; MAX_AUTH_RESPONSE_LINE - 2]))
        );
        let over = [vec![b'A'; MAX_AUTH_RESPONSE_LINE - 1], b"\r\n".to_vec()].concat();
        r.feed(&over);
        assert_eq!(r.next_line(), Some(Err(Reply::line_too_long())));
        // Without a line end, no more than the limit is kept.
        r.feed(&vec![b'A'; MAX_AUTH_RESPONSE_LINE]);
        assert_eq!(r.next_line(), None);
        assert_eq!(r.buffered(), 0);
        r.feed(b"AAAA\r\nNOOP\r\n");
        assert_eq!(r.next_line(), Some(Err(Reply::line_too_long())));
        assert!(matches!(r.next_event(), Some(Event::Command(_))));
    }

    #[test]
    fn command_line_length_edge() {
        for piece in [1, 7, 4096] {
            let mut input = noop_line(MAX_COMMAND_LINE, b"\r\n");
            input.extend(noop_line(MAX_COMMAND_LINE + 1, b"\r\n"));
            input.extend(noop_line(MAX_COMMAND_LINE - 1, b"\n"));
            input.extend(noop_line(MAX_COMMAND_LINE, b"\n"));
            input.extend_from_slice(b"QUIT\r\n");
            assert_eq!(
                run(&input, piece, 10),
                vec![
                    Event::Command(Command::Noop),
                    Event::CommandError(Reply::line_too_long()),
                    Event::Command(Command::Noop),
                    Event::CommandError(Reply::line_too_long()),
                    Event::Command(Command::Quit),
                ],
                "piece {piece}"
            );
        }
        assert_eq!(
            Reply::line_too_long().to_bytes(),
            b"500 5.5.2 Line too long\r\n"
        );
    }

    #[test]
    fn endless_line_is_discarded_as_it_comes() {
        let mut r = SmtpReader::new(10);
        for _ in 0..1000 {
            r.feed(&[b'z'; 1000]);
            assert_eq!(r.next_event(), None);
            assert!(r.buffered() <= MAX_BUFFERED);
        }
        r.feed(b"\r\nQUIT\r\n");
        assert_eq!(
            drain(&mut r),
            vec![
                Event::CommandError(Reply::line_too_long()),
                Event::Command(Command::Quit)
            ]
        );
    }

    #[test]
    fn discard_buffered_after_starttls() {
        let mut r = SmtpReader::new(10);
        r.feed(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n");
        assert_eq!(r.next_event(), Some(Event::Command(Command::StartTls)));
        assert_eq!(r.discard_buffered(), 24);
        assert_eq!(r.next_event(), None);
        r.feed(b"EHLO x\r\n");
        assert_eq!(
            r.next_event(),
            Some(Event::Command(Command::Ehlo("x".into())))
        );
    }

    /// A 5 MiB message of mixed lines, some needing dot-stuffing.
    fn big_message(rng: &mut XorShift) -> Vec<u8> {
        let mut msg = Vec::with_capacity(5 << 20);
        while msg.len() < 5 << 20 {
            let len = rng.below(200);
            if rng.below(10) == 0 {
                msg.push(b'.');
            }
            for _ in 0..len {
                msg.push(b' ' + (rng.below(95) as u8));
            }
            msg.extend_from_slice(b"\r\n");
        }
        msg
    }

    fn dot_stuff(msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(msg.len() + msg.len() / 50);
        let mut at_line_start = true;
        for &b in msg {
            if at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            at_line_start = b == b'\n';
        }
        out
    }

    #[test]
    fn five_mib_message_in_any_pieces() {
        let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
        let msg = big_message(&mut rng);
        let mut input = b"DATA\r\n".to_vec();
        input.extend(dot_stuff(&msg));
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let want = vec![
            Event::Command(Command::Data),
            Event::Data(msg.clone()),
            Event::DataEnd(DataOutcome::Ok),
            Event::Command(Command::Quit),
        ];
        assert!(run(&input, 64 * 1024, 6 << 20) == want);
        assert!(run(&input, 1, 6 << 20) == want);
        assert!(run(&input, 1000, 6 << 20) == want);
    }

    #[test]
    fn bdat_chunks_are_read_whole_whatever_they_hold() {
        let input = b"BDAT 12\r\nQUIT\r\n.\r\nab\rBDAT 3 LAST\r\n\nx\nNOOP\r\n";
        for piece in [1, 2, 5, input.len()] {
            assert_eq!(
                run(input, piece, 100),
                vec![
                    Event::Command(Command::Bdat {
                        size: 12,
                        last: false
                    }),
                    Event::Data(b"QUIT\r\n.\r\nab\r".to_vec()),
                    Event::ChunkEnd {
                        bare_line_ending: false,
                        trailing_cr: true
                    },
                    Event::Command(Command::Bdat {
                        size: 3,
                        last: true
                    }),
                    Event::Data(b"\nx\n".to_vec()),
                    // The CR that ended the first chunk meets its LF.
                    Event::ChunkEnd {
                        bare_line_ending: true,
                        trailing_cr: false
                    },
                    Event::Command(Command::Noop),
                ],
                "piece {piece}"
            );
        }
        let mut r = SmtpReader::new(100);
        r.feed(b"BDAT 0 LAST\r\nBDAT 2\r\n\r\n");
        assert_eq!(
            drain(&mut r),
            vec![
                Event::Command(Command::Bdat {
                    size: 0,
                    last: true
                }),
                Event::ChunkEnd {
                    bare_line_ending: false,
                    trailing_cr: false
                },
                Event::Command(Command::Bdat {
                    size: 2,
                    last: false
                }),
                Event::Data(b"\r\n".to_vec()),
                Event::ChunkEnd {
                    bare_line_ending: false,
                    trailing_cr: false
                },
            ]
        );
    }

    #[test]
    fn a_big_chunk_comes_in_bounded_pieces() {
        let mut r = SmtpReader::new(0);
        let size = 3 * DATA_CHUNK + 7;
        r.feed(format!("BDAT {size} LAST\r\n").as_bytes());
        r.feed(&vec![b'z'; size + 4]);
        let events = drain(&mut r);
        let pieces: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.len()),
                _ => None,
            })
            .collect();
        assert_eq!(pieces, vec![DATA_CHUNK, DATA_CHUNK, DATA_CHUNK, 7]);
        // The 4 octets after the chunk are a command line in the making.
        assert_eq!(r.buffered(), 4);
    }

    #[test]
    fn an_unreadable_bdat_line_cannot_be_recovered() {
        for line in [
            "BDAT\r\n",
            "BDAT x\r\n",
            "bdat 5 NOTLAST\r\n",
            "BDAT -1\r\n",
        ] {
            let mut r = SmtpReader::new(100);
            r.feed(line.as_bytes());
            assert!(
                matches!(drain(&mut r).as_slice(), [Event::Unrecoverable(rep)] if rep.code == 501),
                "{line}"
            );
        }
        // A tab, or a line too long to read, cannot hide a BDAT either.
        let mut long = b"BDAT 5".to_vec();
        long.extend(std::iter::repeat_n(b' ', MAX_COMMAND_LINE));
        long.extend_from_slice(b"\r\n");
        let unfinished = long[..MAX_COMMAND_LINE].to_vec();
        for line in [long, unfinished, b"BDAT\t5\r\n".to_vec()] {
            let mut r = SmtpReader::new(100);
            r.feed(&line);
            assert!(
                matches!(drain(&mut r).as_slice(), [Event::Unrecoverable(rep)] if rep.code == 500 || rep.code == 501),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
        // Other verbs that start alike are ordinary unknown commands.
        let mut r = SmtpReader::new(100);
        r.feed(b"BDATX 5\r\n");
        assert_eq!(
            drain(&mut r),
            vec![Event::CommandError(Reply::unknown_command())]
        );
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let alphabet: &[u8] = b"\r\n.:<>@\" MAILFROMRCPTTODATAQUITBDAT0123=";
        for _ in 0..300 {
            let mut r = SmtpReader::new(rng.below(2000) as u64);
            for _ in 0..50 {
                let len = rng.below(700);
                let piece: Vec<u8> = (0..len)
                    .map(|_| match rng.below(3) {
                        0 => rng.next() as u8,
                        _ => alphabet[rng.below(alphabet.len())],
                    })
                    .collect();
                r.feed(&piece);
                while let Some(e) = r.next_event() {
                    if let Event::Data(d) = e {
                        assert!(d.len() <= DATA_CHUNK);
                    }
                }
                match (r.awaiting_data(), rng.below(2)) {
                    (true, 0) => r.begin_data(),
                    (true, _) => r.reject_data(),
                    (false, _) => assert!(r.buffered() <= MAX_BUFFERED),
                }
            }
        }
    }
}
