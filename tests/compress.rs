//! COMPRESS=DEFLATE (RFC 4978) over a real socket: after the uncompressed
//! OK, both directions are raw DEFLATE streams, commands pipelined behind
//! COMPRESS count as compressed, and bad compressed data ends the session
//! with a BYE.

mod common;
use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::io::{Read, Write};
use std::net::TcpStream;

struct Zipped {
    tcp: TcpStream,
    out: Compress,
    inp: Decompress,
    buf: Vec<u8>,
}

impl Zipped {
    fn send(&mut self, text: &[u8]) {
        self.send_flushed(text, FlushCompress::Sync);
    }

    /// Compresses `text` and ends the write with `flush`, as clients do:
    /// sync flushes mostly, partial flushes (an empty fixed block) in
    /// some, full flushes in others, none at all within a burst.
    fn send_flushed(&mut self, text: &[u8], flush: FlushCompress) {
        let mut wire = Vec::with_capacity(text.len() + 128);
        self.out.compress_vec(text, &mut wire, flush).unwrap();
        self.tcp.write_all(&wire).unwrap();
    }

    /// Reads and inflates until the inflated text contains `until`.
    fn read_until(&mut self, until: &str) -> String {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            if let Some(i) = text.find(until) {
                let end = i + until.len();
                self.buf.drain(..end);
                return text[..end].to_string();
            }
            let n = self.tcp.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed; got {text:?}");
            let mut pos = 0;
            while pos < n {
                let mut out = vec![0u8; 64 * 1024];
                let (i, o) = (self.inp.total_in(), self.inp.total_out());
                self.inp
                    .decompress(&chunk[pos..n], &mut out, FlushDecompress::None)
                    .unwrap();
                pos += (self.inp.total_in() - i) as usize;
                self.buf
                    .extend_from_slice(&out[..(self.inp.total_out() - o) as usize]);
            }
        }
    }
}

fn login_plain(server: &Server) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", server.port(IMAP))).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp
}

fn read_plain_line(tcp: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        assert_eq!(tcp.read(&mut b).unwrap(), 1, "closed after {line:?}");
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn deflate_both_ways_with_pipelined_commands() {
    let server = Server::start();
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO x");
    let original = message(7, 500);
    assert!(smtp
        .send_mail("s@example.org", &[ACCOUNT], &original)
        .starts_with("250"));

    let mut tcp = login_plain(&server);
    let greeting = read_plain_line(&mut tcp);
    assert!(greeting.contains(" COMPRESS=DEFLATE"), "{greeting}");
    tcp.write_all(format!("a1 LOGIN {ACCOUNT} {PASSWORD}\r\n").as_bytes())
        .unwrap();
    assert!(read_plain_line(&mut tcp).starts_with("a1 OK"));

    // COMPRESS and, in the same write, a compressed SELECT behind it.
    let mut out = Compress::new(Compression::default(), false);
    let mut first = b"a2 COMPRESS DEFLATE\r\n".to_vec();
    let mut select = Vec::with_capacity(256);
    out.compress_vec(b"a3 SELECT INBOX\r\n", &mut select, FlushCompress::Sync)
        .unwrap();
    first.extend_from_slice(&select);
    tcp.write_all(&first).unwrap();
    assert_eq!(read_plain_line(&mut tcp), "a2 OK DEFLATE active\r\n");

    let mut z = Zipped {
        tcp,
        out,
        inp: Decompress::new(false),
        buf: Vec::new(),
    };
    let r = z.read_until("a3 OK [READ-WRITE] SELECT completed\r\n");
    assert!(r.contains("* 1 EXISTS\r\n"), "{r}");

    z.send(b"a4 FETCH 1 BODY.PEEK[]\r\n");
    let r = z.read_until("a4 OK FETCH completed\r\n");
    let start = r.find("}\r\n").unwrap() + 3;
    let body = &r.as_bytes()[start..r.len() - "\r\n)\r\na4 OK FETCH completed\r\n".len() + 2];
    assert!(body.ends_with(&original), "fetched body differs");

    z.send(b"a5 COMPRESS DEFLATE\r\n");
    assert_eq!(
        z.read_until("\r\n"),
        "a5 NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n"
    );
    z.send(b"a6 LOGOUT\r\n");
    let r = z.read_until("a6 OK LOGOUT completed\r\n");
    assert_eq!(r, "* BYE roost logging out\r\na6 OK LOGOUT completed\r\n");
}

/// RFC 4978 4 leaves the flush to the sender: commands flushed with a
/// partial flush, a full flush, several commands in one flushed burst and
/// one command split over two flushes are all read as written.
#[test]
fn every_client_flush_style_is_understood() {
    let server = Server::start();
    let mut tcp = login_plain(&server);
    read_plain_line(&mut tcp);
    tcp.write_all(format!("a1 LOGIN {ACCOUNT} {PASSWORD}\r\n").as_bytes())
        .unwrap();
    assert!(read_plain_line(&mut tcp).starts_with("a1 OK"));
    tcp.write_all(b"a2 COMPRESS DEFLATE\r\n").unwrap();
    assert_eq!(read_plain_line(&mut tcp), "a2 OK DEFLATE active\r\n");
    let mut z = Zipped {
        tcp,
        out: Compress::new(Compression::default(), false),
        inp: Decompress::new(false),
        buf: Vec::new(),
    };
    z.send_flushed(b"a3 NOOP\r\n", FlushCompress::Partial);
    assert_eq!(z.read_until("\r\n"), "a3 OK NOOP completed\r\n");
    z.send_flushed(b"a4 NOOP\r\n", FlushCompress::Full);
    assert_eq!(z.read_until("\r\n"), "a4 OK NOOP completed\r\n");
    z.send_flushed(b"a5 NOOP\r\na6 CHECK\r\n", FlushCompress::None);
    z.send_flushed(b"a7 NOOP\r\n", FlushCompress::Partial);
    assert_eq!(
        z.read_until("a7 OK NOOP completed\r\n"),
        "a5 OK NOOP completed\r\na6 BAD CHECK requires a selected mailbox\r\na7 OK NOOP completed\r\n"
    );
    z.send_flushed(b"a8 NO", FlushCompress::Partial);
    z.send_flushed(b"OP\r\n", FlushCompress::Sync);
    assert_eq!(z.read_until("\r\n"), "a8 OK NOOP completed\r\n");
    z.send_flushed(b"a9 LOGOUT\r\n", FlushCompress::Partial);
    assert_eq!(
        z.read_until("a9 OK LOGOUT completed\r\n"),
        "* BYE roost logging out\r\na9 OK LOGOUT completed\r\n"
    );
}

#[test]
fn garbage_after_compress_ends_the_session_with_bye() {
    let server = Server::start();
    let mut tcp = login_plain(&server);
    read_plain_line(&mut tcp);
    tcp.write_all(format!("a1 LOGIN {ACCOUNT} {PASSWORD}\r\n").as_bytes())
        .unwrap();
    read_plain_line(&mut tcp);
    tcp.write_all(b"a2 COMPRESS DEFLATE\r\n").unwrap();
    assert_eq!(read_plain_line(&mut tcp), "a2 OK DEFLATE active\r\n");
    tcp.write_all(&[0xff; 32]).unwrap();
    let mut z = Zipped {
        tcp,
        out: Compress::new(Compression::default(), false),
        inp: Decompress::new(false),
        buf: Vec::new(),
    };
    let r = z.read_until("\r\n");
    assert!(r.starts_with("* BYE invalid DEFLATE data"), "{r}");
    // Other clients are unaffected.
    let mut other = Imap::login(server.port(IMAP));
    assert!(other.cmd("NOOP").ends_with("OK NOOP completed\r\n"));
    let mut bad = Imap::login(server.port(IMAP));
    assert!(bad
        .cmd("COMPRESS GZIP")
        .contains("BAD Unknown compression mechanism GZIP"));
}

/// RFC 8437 3: UNAUTHENTICATE may not be refused; where the state cannot
/// be reset (ending the DEFLATE layer mid-stream), the server says BYE and
/// closes instead.
#[test]
fn unauthenticate_under_compress_ends_the_session_with_bye() {
    let server = Server::start();
    let mut tcp = login_plain(&server);
    read_plain_line(&mut tcp);
    tcp.write_all(format!("a1 LOGIN {ACCOUNT} {PASSWORD}\r\n").as_bytes())
        .unwrap();
    read_plain_line(&mut tcp);
    tcp.write_all(b"a2 COMPRESS DEFLATE\r\n").unwrap();
    assert_eq!(read_plain_line(&mut tcp), "a2 OK DEFLATE active\r\n");
    let mut z = Zipped {
        tcp,
        out: Compress::new(Compression::default(), false),
        inp: Decompress::new(false),
        buf: Vec::new(),
    };
    z.send(b"a3 UNAUTHENTICATE\r\n");
    assert_eq!(
        z.read_until("\r\n"),
        "* BYE UNAUTHENTICATE with COMPRESS active: connect again to log in\r\n"
    );
    // Closed: end of stream, not a read that timed out.
    let mut rest = [0u8; 64];
    assert!(matches!(z.tcp.read(&mut rest), Ok(0)), "still open");
}
