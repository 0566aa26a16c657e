//! SMTP replies as the server writes them (RFC 5321 4.2), with enhanced
//! status codes (RFC 2034, RFC 3463).
//!
//! A [`Reply`] is a value; [`Reply::to_bytes`] renders the exact octets for
//! the wire. Reading replies as a client is not done here.

use std::fmt;

/// RFC 3463 2: an enhanced status code `class.subject.detail`.
pub type EnhancedCode = (u8, u16, u16);

/// One SMTP reply: a three-digit code, an optional enhanced status code and
/// one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// RFC 2034 3: present on every 2xx, 4xx and 5xx reply once
    /// ENHANCEDSTATUSCODES is advertised, except the greeting and the replies
    /// to HELO and EHLO.
    pub enhanced: Option<EnhancedCode>,
    pub lines: Vec<String>,
}

/// A reply that reports an error; what the parsers return so that the
/// session can write it as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReplyError(pub Reply);

impl ReplyError {
    /// A one-line error reply.
    pub fn new(code: u16, enhanced: EnhancedCode, text: impl Into<String>) -> Self {
        ReplyError(Reply::new(code, Some(enhanced), text))
    }

    /// The reply to write.
    pub fn reply(&self) -> &Reply {
        &self.0
    }
}

impl From<ReplyError> for Reply {
    fn from(e: ReplyError) -> Reply {
        e.0
    }
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (RFC 5321 4.2.1), such as the answer to EHLO.
    pub fn multiline(code: u16, enhanced: Option<EnhancedCode>, lines: Vec<String>) -> Self {
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// RFC 5321 4.2.1: `2yz` replies are positive completions.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// RFC 5321 4.2.1: `4yz` replies are transient failures.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// RFC 5321 4.2.1: `5yz` replies are permanent failures.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The octets for the wire: every line but the last is `code-text`, the
    /// last is `code text` (RFC 5321 4.2.1), each ending in CRLF. The
    /// enhanced code follows the reply code on every line (RFC 2034 4).
    /// CR and LF inside a line's text are written as spaces, so no text can
    /// forge an extra reply line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.lines.len().max(1));
        let last = self.lines.len().saturating_sub(1);
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let mut head = format!("{:03}{sep}", self.code);
            if let Some((c, s, d)) = self.enhanced {
                head.push_str(&format!("{c}.{s}.{d}"));
                if !line.is_empty() {
                    head.push(' ');
                }
            }
            out.extend_from_slice(head.as_bytes());
            out.extend(
                line.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    // Common replies. Codes from RFC 5321 4.2.2 and 4.2.3, enhanced codes
    // from RFC 3463 and its registry.

    /// 220: the greeting (no enhanced code, RFC 2034 3).
    pub fn greeting(hostname: &str) -> Self {
        Reply::new(220, None, format!("{hostname} ESMTP roost"))
    }

    /// 221 2.0.0: the answer to QUIT.
    pub fn closing(hostname: &str) -> Self {
        Reply::new(
            221,
            Some((2, 0, 0)),
            format!("{hostname} closing connection"),
        )
    }

    /// 250 2.0.0 OK.
    pub fn ok() -> Self {
        Reply::new(250, Some((2, 0, 0)), "OK")
    }

    /// 250 2.1.0: sender accepted.
    pub fn sender_ok() -> Self {
        Reply::new(250, Some((2, 1, 0)), "Sender OK")
    }

    /// 250 2.1.5: recipient accepted.
    pub fn recipient_ok() -> Self {
        Reply::new(250, Some((2, 1, 5)), "Recipient OK")
    }

    /// 354: go ahead with the message (intermediate; no enhanced code).
    pub fn start_mail_input() -> Self {
        Reply::new(354, None, "Start mail input; end with <CRLF>.<CRLF>")
    }

    /// 220 2.0.0: go ahead with the TLS handshake (RFC 3207 4).
    pub fn ready_to_start_tls() -> Self {
        Reply::new(220, Some((2, 0, 0)), "Ready to start TLS")
    }

    /// 421 4.3.2: the server is going away; the session closes after it.
    pub fn shutting_down(hostname: &str) -> Self {
        Reply::new(
            421,
            Some((4, 3, 2)),
            format!("{hostname} service not available, closing connection"),
        )
    }

    /// 500 5.5.1: the verb is not known.
    pub fn unknown_command() -> Self {
        Reply::new(500, Some((5, 5, 1)), "Command not recognized")
    }

    /// 500 5.5.2: the command line is longer than RFC 5321 4.5.3.1.4 allows.
    pub fn line_too_long() -> Self {
        Reply::new(500, Some((5, 5, 2)), "Line too long")
    }

    /// 501 5.5.2: the command's syntax is wrong.
    pub fn syntax_error(text: impl Into<String>) -> Self {
        Reply::new(501, Some((5, 5, 2)), text)
    }

    /// 501 5.5.4: the command's arguments are not valid.
    pub fn invalid_arguments(text: impl Into<String>) -> Self {
        Reply::new(501, Some((5, 5, 4)), text)
    }

    /// 503 5.5.1: the command is not valid at this point of the session.
    pub fn bad_sequence(text: impl Into<String>) -> Self {
        Reply::new(503, Some((5, 5, 1)), text)
    }

    /// 504 5.5.4: a parameter is recognised but not implemented.
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Reply::new(504, Some((5, 5, 4)), text)
    }

    /// 555 5.5.4: MAIL or RCPT parameter not recognised (RFC 5321 4.1.1.11).
    pub fn parameter_not_recognized(text: impl Into<String>) -> Self {
        Reply::new(555, Some((5, 5, 4)), text)
    }

    /// 553 5.6.7: a non-ASCII address without SMTPUTF8 (RFC 6531 3.5).
    pub fn non_ascii_address(text: impl Into<String>) -> Self {
        Reply::new(553, Some((5, 6, 7)), text)
    }

    /// 552 5.3.4: the message is larger than the server accepts (RFC 1870).
    pub fn message_too_large() -> Self {
        Reply::new(552, Some((5, 3, 4)), "Message size exceeds fixed maximum")
    }

    /// 500 5.5.2: a bare CR or LF inside the message, refused as SMTP
    /// smuggling (RFC 5321 2.3.8: lines end with CRLF, and CR and LF
    /// appear only together; 4.1.1.4: the end marker is CRLF.CRLF only).
    pub fn bare_line_ending() -> Self {
        Reply::new(
            500,
            Some((5, 5, 2)),
            "Bare CR or LF in message refused (SMTP smuggling); lines must end with CRLF",
        )
    }
}

impl fmt::Display for Reply {
    /// One line for logs: `550 5.1.1 text` (multi-line replies joined by
    /// " / ").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.code)?;
        if let Some((c, s, d)) = self.enhanced {
            write!(f, " {c}.{s}.{d}")?;
        }
        if !self.lines.is_empty() {
            write!(f, " {}", self.lines.join(" / "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_enhanced_code() {
        assert_eq!(Reply::ok().to_bytes(), b"250 2.0.0 OK\r\n");
    }

    #[test]
    fn one_line_without_enhanced_code() {
        assert_eq!(
            Reply::start_mail_input().to_bytes(),
            b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"
        );
    }

    #[test]
    fn multiline_puts_the_enhanced_code_on_every_line() {
        let r = Reply::multiline(
            550,
            Some((5, 1, 1)),
            vec!["No such user".into(), "Try again".into()],
        );
        assert_eq!(
            r.to_bytes(),
            b"550-5.1.1 No such user\r\n550 5.1.1 Try again\r\n"
        );
    }

    #[test]
    fn ehlo_style_multiline() {
        let r = Reply::multiline(
            250,
            None,
            vec!["mx.example".into(), "PIPELINING".into(), "8BITMIME".into()],
        );
        assert_eq!(
            r.to_bytes(),
            b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
    }

    #[test]
    fn empty_reply_still_renders_one_line() {
        let r = Reply::multiline(250, Some((2, 0, 0)), vec![]);
        assert_eq!(r.to_bytes(), b"250 2.0.0\r\n");
        let r = Reply::multiline(250, None, vec![]);
        assert_eq!(r.to_bytes(), b"250 \r\n");
    }

    #[test]
    fn line_breaks_in_text_cannot_forge_lines() {
        let r = Reply::new(250, None, "a\r\n250 b");
        assert_eq!(r.to_bytes(), b"250 a  250 b\r\n");
    }

    #[test]
    fn classes_and_display() {
        assert!(Reply::ok().is_positive());
        assert!(Reply::shutting_down("x").is_transient());
        assert!(Reply::bare_line_ending().is_permanent());
        assert_eq!(
            Reply::bare_line_ending().to_string(),
            "500 5.5.2 Bare CR or LF in message refused (SMTP smuggling); lines must end with CRLF"
        );
        assert_eq!(
            Reply::message_too_large().to_bytes(),
            b"552 5.3.4 Message size exceeds fixed maximum\r\n"
        );
        let e = ReplyError::new(501, (5, 5, 4), "bad");
        assert_eq!(e.to_string(), "501 5.5.4 bad");
        assert_eq!(Reply::from(e).code, 501);
    }
}
