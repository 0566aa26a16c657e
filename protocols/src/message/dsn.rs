//! Delivery status notifications (RFC 3464): the multipart/report message
//! roost sends the sender of a message it could not deliver (or is still
//! trying to): a note for people, the machine-readable delivery-status
//! part, and the original message's header (RFC 3462
//! text/rfc822-headers).

/// RFC 3464 2.3.3: what happened to a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    /// Delivered into the recipient's mailbox (asked for with NOTIFY=SUCCESS).
    Delivered,
    /// Handed to a server that sends no DSNs itself (RFC 3461 5.2.2).
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient's fields (RFC 3464 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    pub address: String,
    pub action: Action,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply, when one answered.
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
    /// RFC 3461 ORCPT as given, `addr-type;address` (Original-Recipient).
    pub original_recipient: Option<String>,
}

/// A DSN to build.
#[derive(Debug, Clone)]
pub struct Dsn {
    /// This server's name (Reporting-MTA, and the From's domain).
    pub reporting_mta: String,
    /// RFC 5322 dates of now and of the original message's arrival.
    pub date: String,
    pub arrival_date: String,
    /// Who the DSN goes to (the original sender).
    pub to: String,
    pub message_id: String,
    pub recipients: Vec<DsnRecipient>,
    /// RFC 3461 ENVID (Original-Envelope-Id).
    pub envid: Option<String>,
    /// The original message's header section, or the whole message when
    /// `whole` (RET=FULL).
    pub original_header: Vec<u8>,
    pub whole: bool,
    /// A MIME boundary not found in the original header.
    pub boundary: String,
}

/// The status for a reply without an enhanced code (RFC 3463 3.1: the
/// class of the reply, the rest unknown).
pub fn status_of(code: u16, enhanced: Option<&str>) -> String {
    match enhanced {
        Some(e) => e.to_string(),
        None if code >= 500 => "5.0.0".into(),
        None => "4.0.0".into(),
    }
}

/// An address type and address for Final-Recipient (RFC 3464 2.3.2; RFC
/// 6533 3 for non-ASCII addresses, in a message/global-delivery-status).
fn address_field(address: &str) -> String {
    if address.is_ascii() {
        format!("rfc822; {address}")
    } else {
        format!("utf-8; {address}")
    }
}

/// Whether `s` is an SMTP reply: three digits, then a space or nothing.
fn is_smtp_reply(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3
        && b[..3].iter().all(u8::is_ascii_digit)
        && matches!(b[0], b'2'..=b'5')
        && b.get(3).is_none_or(|c| *c == b' ')
}

/// Text that goes into a field: one line, printable.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Dsn {
    /// The whole message, CRLF line ends.
    pub fn build(&self) -> Vec<u8> {
        let failed = self.recipients.iter().any(|r| r.action == Action::Failed);
        let delayed = self.recipients.iter().any(|r| r.action == Action::Delayed);
        // RFC 6533: non-ASCII addresses or header fields travel in the
        // "global" report types.
        let global = !self.to.is_ascii()
            || self.envid.as_ref().is_some_and(|e| !e.is_ascii())
            || self.recipients.iter().any(|r| {
                !r.address.is_ascii()
                    || r.original_recipient.as_ref().is_some_and(|o| !o.is_ascii())
            })
            || !self.original_header.is_ascii();
        let (status_type, headers_type) = match (global, self.whole) {
            (true, true) => ("message/global-delivery-status", "message/global"),
            (true, false) => ("message/global-delivery-status", "message/global-headers"),
            (false, true) => ("message/delivery-status", "message/rfc822"),
            (false, false) => ("message/delivery-status", "text/rfc822-headers"),
        };
        let subject = if failed {
            "Undelivered mail returned to sender"
        } else if delayed {
            "Delayed mail (still being retried)"
        } else {
            "Successful mail delivery report"
        };
        let b = &self.boundary;
        let mut m = String::new();
        m.push_str(&format!(
            "From: Mail Delivery System <postmaster@{mta}>\r\n\
             To: <{to}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <{id}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"{b}\"\r\n\
             \r\n\
             This is a delivery status notification (RFC 3464).\r\n\
             \r\n\
             --{b}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n",
            mta = self.reporting_mta,
            to = one_line(&self.to),
            date = self.date,
            id = self.message_id,
        ));
        if failed {
            m.push_str("Your message could not be delivered to these recipients:\r\n\r\n");
        } else if delayed {
            m.push_str(
                "Your message has not been delivered to these recipients yet.\r\n\
                 Delivery is being retried; you need not send it again.\r\n\r\n",
            );
        } else {
            m.push_str(
                "Your message was delivered to these recipients (or handed on\r\n\
                 to a server that sends no reports):\r\n\r\n",
            );
        }
        for r in &self.recipients {
            m.push_str(&format!("<{}>", one_line(&r.address)));
            if let Some(d) = &r.diagnostic {
                m.push_str(&format!(": {}", one_line(d)));
            }
            m.push_str("\r\n");
        }
        m.push_str(&format!(
            "\r\n--{b}\r\n\
             Content-Type: {status_type}\r\n\
             \r\n\
             {envid}Reporting-MTA: dns; {mta}\r\n\
             Arrival-Date: {arrival}\r\n",
            envid = self
                .envid
                .as_ref()
                .map(|e| format!("Original-Envelope-Id: {}\r\n", one_line(e)))
                .unwrap_or_default(),
            mta = self.reporting_mta,
            arrival = self.arrival_date,
        ));
        for r in &self.recipients {
            m.push_str("\r\n");
            if let Some(o) = &r.original_recipient {
                m.push_str(&format!("Original-Recipient: {}\r\n", one_line(o)));
            }
            m.push_str(&format!(
                "Final-Recipient: {}\r\nAction: {}\r\nStatus: {}\r\n",
                address_field(&one_line(&r.address)),
                r.action.as_str(),
                r.status
            ));
            if let Some(mta) = &r.remote_mta {
                m.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(mta)));
            }
            // RFC 3464 2.3.6: the smtp type is for a server's reply.
            if let Some(d) = r.diagnostic.as_ref().filter(|d| is_smtp_reply(d)) {
                m.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(d)));
            }
        }
        m.push_str(&format!(
            "\r\n--{b}\r\nContent-Type: {headers_type}\r\n\r\n"
        ));
        let mut out = m.into_bytes();
        let header = &self.original_header;
        out.extend_from_slice(header);
        if !header.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_report_has_its_three_parts() {
        let dsn = Dsn {
            reporting_mta: "mx.example.org".into(),
            date: "Tue, 1 Dec 2026 12:00:00 +0000".into(),
            arrival_date: "Tue, 1 Dec 2026 11:00:00 +0000".into(),
            to: "alice@example.org".into(),
            message_id: "dsn.1@mx.example.org".into(),
            recipients: vec![DsnRecipient {
                address: "bob@remote.example".into(),
                action: Action::Failed,
                status: status_of(550, Some("5.1.1")),
                diagnostic: Some("550 5.1.1 No such user".into()),
                remote_mta: Some("mx.remote.example".into()),
                original_recipient: None,
            }],
            envid: None,
            whole: false,
            original_header: b"From: alice@example.org\r\nSubject: hi\r\n".to_vec(),
            boundary: "b1".into(),
        };
        assert_eq!(
            String::from_utf8(dsn.build()).unwrap(),
            "From: Mail Delivery System <postmaster@mx.example.org>\r\n\
             To: <alice@example.org>\r\n\
             Subject: Undelivered mail returned to sender\r\n\
             Date: Tue, 1 Dec 2026 12:00:00 +0000\r\n\
             Message-ID: <dsn.1@mx.example.org>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"b1\"\r\n\
             \r\n\
             This is a delivery status notification (RFC 3464).\r\n\
             \r\n\
             --b1\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n\
             Your message could not be delivered to these recipients:\r\n\
             \r\n\
             <bob@remote.example>: 550 5.1.1 No such user\r\n\
             \r\n\
             --b1\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; mx.example.org\r\n\
             Arrival-Date: Tue, 1 Dec 2026 11:00:00 +0000\r\n\
             \r\n\
             Final-Recipient: rfc822; bob@remote.example\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; mx.remote.example\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n\
             \r\n\
             --b1\r\n\
             Content-Type: text/rfc822-headers\r\n\
             \r\n\
             From: alice@example.org\r\n\
             Subject: hi\r\n\
             \r\n\
             --b1--\r\n"
        );
        assert_eq!(status_of(451, None), "4.0.0");
        // A reason that is no server's reply has no Diagnostic-Code; a
        // non-ASCII recipient makes the report global (RFC 6533).
        let mut other = dsn.clone();
        other.recipients[0].address = "b\u{f6}b@remote.example".into();
        other.recipients[0].diagnostic = Some("MX lookup of remote.example failed".into());
        let text = String::from_utf8(other.build()).unwrap();
        assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(text.contains("Content-Type: message/global-headers\r\n"));
        assert!(text.contains("Final-Recipient: utf-8; b\u{f6}b@remote.example\r\n"));
        assert!(!text.contains("Diagnostic-Code"));
        assert_eq!(status_of(554, None), "5.0.0");
    }
}
