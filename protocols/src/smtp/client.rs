//! SMTP as a client reads and writes it (RFC 5321 4.2, 4.5.2), sans-IO:
//! replies assembled from the bytes a server sends (one or several
//! lines), the EHLO keywords, and dot-stuffing of the message as it is
//! sent. The outgoing queue's delivery workers own the sockets.

/// The longest reply line read (RFC 5321 4.5.3.1.5 says 512 octets;
/// servers write longer ones, so roost allows more, but not without end).
pub const MAX_REPLY_LINE: usize = 4096;
/// The most lines of one reply (an EHLO answer has one per keyword).
pub const MAX_REPLY_LINES: usize = 128;

/// A server's reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl ServerReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply as one line, for logs and DSNs: `550 5.1.1 text ...`.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    /// The enhanced status code at the start of the first line (RFC
    /// 3463), when there is one.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?.split(' ').next()?;
        let parts: Vec<&str> = first.split('.').collect();
        let ok = parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| first.to_string())
    }

    /// The EHLO keywords (RFC 5321 4.1.1.1): every line after the first,
    /// upper case, with their parameters.
    pub fn keywords(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .map(|l| l.trim().to_ascii_uppercase())
            .collect()
    }

    /// Whether the EHLO reply offers `keyword` (with any parameters).
    pub fn offers(&self, keyword: &str) -> bool {
        self.keywords()
            .iter()
            .any(|k| k == keyword || k.starts_with(&format!("{keyword} ")))
    }

    /// The parameter of a `LIMITS` keyword (RFC 9422), e.g. RCPTMAX.
    pub fn limit(&self, name: &str) -> Option<usize> {
        let limits = self
            .keywords()
            .into_iter()
            .find(|k| k.starts_with("LIMITS "))?;
        limits.split(' ').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| v.parse().ok()).flatten()
        })
    }
}

/// Reads replies from the bytes a server sends.
#[derive(Debug, Default)]
pub struct ReplyReader {
    buf: Vec<u8>,
    lines: Vec<String>,
    code: Option<u16>,
}

impl ReplyReader {
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Adds bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole reply, `Ok(None)` when more bytes are needed, `Err`
    /// for a reply no server should send (the connection is given up).
    pub fn next_reply(&mut self) -> Result<Option<ServerReply>, String> {
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() >= MAX_REPLY_LINE {
                    return Err("reply line too long".into());
                }
                return Ok(None);
            };
            // A line with its CRLF is at most MAX_REPLY_LINE octets.
            if nl + 1 > MAX_REPLY_LINE {
                return Err("reply line too long".into());
            }
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let b = line.as_bytes();
            if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
                return Err(format!("not a reply line: {line:?}"));
            }
            let code: u16 = line[..3].parse().map_err(|_| "bad reply code")?;
            if !(200..600).contains(&code) {
                return Err(format!("reply code {code} out of range"));
            }
            if self.code.is_some_and(|c| c != code) {
                return Err("reply lines with different codes".into());
            }
            self.code = Some(code);
            let more = b.get(3) == Some(&b'-');
            if !more && b.len() > 3 && b[3] != b' ' {
                return Err(format!("not a reply line: {line:?}"));
            }
            self.lines.push(line.get(4..).unwrap_or("").to_string());
            if self.lines.len() > MAX_REPLY_LINES {
                return Err("reply has too many lines".into());
            }
            if !more {
                self.code = None;
                return Ok(Some(ServerReply {
                    code,
                    lines: std::mem::take(&mut self.lines),
                }));
            }
        }
    }
}

/// Dot-stuffs message bytes for DATA (RFC 5321 4.5.2) as they stream:
/// a line that starts with "." gets another one. `line_start` carries
/// whether the next byte starts a line from one call to the next (true
/// at the start of a message).
pub fn dot_stuff(bytes: &[u8], line_start: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 64);
    for &b in bytes {
        if *line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        *line_start = b == b'\n';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Vec<ServerReply>, String> {
        let mut r = ReplyReader::new();
        r.feed(bytes);
        let mut out = Vec::new();
        while let Some(reply) = r.next_reply()? {
            out.push(reply);
        }
        Ok(out)
    }

    #[test]
    fn replies_of_one_and_several_lines_in_pieces() {
        let mut r = ReplyReader::new();
        r.feed(b"250-mx.example.org greets you\r\n250-PIPE");
        assert_eq!(r.next_reply(), Ok(None));
        r.feed(b"LINING\r\n250-LIMITS RCPTMAX=50 MAILMAX=10\r\n250 STARTTLS\r\n");
        let ehlo = r.next_reply().unwrap().unwrap();
        assert_eq!(ehlo.code, 250);
        assert_eq!(
            ehlo.keywords(),
            ["PIPELINING", "LIMITS RCPTMAX=50 MAILMAX=10", "STARTTLS"]
        );
        assert!(ehlo.offers("PIPELINING") && ehlo.offers("STARTTLS") && !ehlo.offers("CHUNKING"));
        assert_eq!(ehlo.limit("RCPTMAX"), Some(50));
        assert_eq!(ehlo.limit("RCPTDOMAINMAX"), None);
        let replies = read(b"550 5.1.1 No such user\r\n451 try later\r\n250\r\n").unwrap();
        assert_eq!(replies[0].enhanced().as_deref(), Some("5.1.1"));
        assert_eq!(replies[0].text(), "550 5.1.1 No such user");
        assert_eq!(replies[1].enhanced(), None);
        assert!(replies[1].is_transient() && replies[0].is_permanent());
        assert_eq!(replies[2].lines, [""]);
    }

    #[test]
    fn replies_no_server_should_send() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"999 no\r\n",
            b"250-one\r\n354 two\r\n",
            b"250xno space\r\n",
        ] {
            assert!(read(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // A line at the limit, and one past it.
        let at = format!("250 {}\r\n", "a".repeat(MAX_REPLY_LINE - 6));
        assert_eq!(at.len(), MAX_REPLY_LINE);
        assert!(read(at.as_bytes()).is_ok());
        let past = format!("250 {}\r\n", "a".repeat(MAX_REPLY_LINE - 5));
        assert_eq!(past.len(), MAX_REPLY_LINE + 1);
        assert_eq!(read(past.as_bytes()), Err("reply line too long".into()));
        // In pieces: an unfinished line as long as a whole one is too long.
        let mut r = ReplyReader::new();
        r.feed(&at.as_bytes()[..MAX_REPLY_LINE - 1]);
        assert_eq!(r.next_reply(), Ok(None));
        r.feed(b"a");
        assert_eq!(r.next_reply(), Err("reply line too long".into()));
        let lines = |n: usize| {
            let mut s = "250-x\r\n".repeat(n - 1);
            s.push_str("250 x\r\n");
            read(s.as_bytes()).map(|r| r.len())
        };
        assert_eq!(lines(MAX_REPLY_LINES), Ok(1));
        assert_eq!(
            lines(MAX_REPLY_LINES + 1),
            Err("reply has too many lines".into())
        );
    }

    #[test]
    fn dots_are_stuffed_across_pieces() {
        let mut start = true;
        let mut out = dot_stuff(b".first\r\nsecond\r", &mut start);
        out.extend(dot_stuff(b"\n.third\r\n..", &mut start));
        assert_eq!(out, b"..first\r\nsecond\r\n..third\r\n...");
    }
}
