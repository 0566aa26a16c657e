//! Submission without a socket: a message composed inside roost (the web
//! API's Send) goes through a real submission session, logged in to the
//! account from the start, over an in-memory pipe. Everything a client's
//! submission gets applies unchanged: the From checks, the suppression
//! list, extra data, DKIM signing, local delivery and the queue.

use crate::conn::{ConnCounter, Peer};
use crate::listener::{start_connection, Protocol, Services};
use roost_protocols::smtp::client::{ReplyReader, ServerReply};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, DuplexStream};

/// How long the session may take for each reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);
/// The in-memory pipe's buffer, each way.
const PIPE: usize = 64 * 1024;

/// What the session said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Each recipient's RCPT reply, in order.
    pub recipients: Vec<(String, String)>,
    /// The reply to the message (or to MAIL when that failed); `None`
    /// when no recipient was taken, so no message was sent.
    pub reply: Option<String>,
    /// The message was taken (a 2xx to the data).
    pub accepted: bool,
}

/// Submits `message` from `from` to `to` as `account` (already
/// authenticated by the caller), for a client at `client`.
pub async fn submit(
    services: Services,
    account: &str,
    client: SocketAddr,
    from: &str,
    to: &[String],
    message: &[u8],
) -> Result<Submitted, String> {
    // Nothing that could end a command line or a path.
    let unsafe_path =
        |a: &str| a.contains(['\r', '\n', '<', '>']) || a.chars().any(char::is_control);
    if unsafe_path(from) || to.iter().any(|t| unsafe_path(t)) {
        return Err("an address with a line break or angle bracket".into());
    }
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let guard = ConnCounter::default()
        .try_acquire(1)
        .ok_or("no connection slot")?;
    let peer = Peer {
        addr: client,
        local: SocketAddr::from(([127, 0, 0, 1], 0)),
        // The caller's own connection carried the credentials; the pipe
        // never leaves the process.
        tls: true,
        binding: Default::default(),
        client_key: None,
    };
    let store = services.store.clone();
    let name = account.to_string();
    let id = crate::task::blocking(move || {
        store
            .account(&name)?
            .map(|a| a.id)
            .ok_or_else(|| roost_store::StoreError::NotFound(name))
    })
    .await?;
    start_connection(
        Box::new(theirs),
        peer,
        Protocol::Submission,
        services,
        guard,
        Some((account.to_string(), id)),
    )
    .await?;
    let mut c = Client {
        io: ours,
        reader: ReplyReader::new(),
    };
    c.expect(220).await?;
    c.send("EHLO roost.api\r\n").await?;
    c.expect(250).await?;
    let utf8 = if from.is_ascii() && to.iter().all(|t| t.is_ascii()) {
        ""
    } else {
        " SMTPUTF8"
    };
    // The composer writes 7-bit content (RFC 2045); only raw UTF-8 (in
    // addresses, RFC 6532) makes it 8-bit. Marked 8BITMIME otherwise, it
    // could not go to a server that lacks the extension.
    let body = if message.is_ascii() {
        ""
    } else {
        " BODY=8BITMIME"
    };
    c.send(&format!(
        "MAIL FROM:<{from}>{body}{utf8} SIZE={}\r\n",
        message.len()
    ))
    .await?;
    let mail = c.reply().await?;
    if mail.code / 100 != 2 {
        c.quit().await;
        return Ok(Submitted {
            recipients: Vec::new(),
            reply: Some(mail.text()),
            accepted: false,
        });
    }
    let mut recipients = Vec::new();
    for t in to {
        c.send(&format!("RCPT TO:<{t}>\r\n")).await?;
        let r = c.reply().await?;
        recipients.push((t.clone(), r.text()));
    }
    let any = recipients.iter().any(|(_, r)| r.starts_with('2'));
    if !any {
        c.quit().await;
        return Ok(Submitted {
            recipients,
            reply: None,
            accepted: false,
        });
    }
    // BDAT (RFC 3030): the bytes as they are, no dot-stuffing.
    c.send(&format!("BDAT {} LAST\r\n", message.len())).await?;
    c.io.write_all(message)
        .await
        .map_err(|e| format!("submission: {e}"))?;
    let data = c.reply().await?;
    c.quit().await;
    Ok(Submitted {
        recipients,
        accepted: data.code / 100 == 2,
        reply: Some(data.text()),
    })
}

struct Client {
    io: DuplexStream,
    reader: ReplyReader,
}

impl Client {
    async fn send(&mut self, line: &str) -> Result<(), String> {
        self.io
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("submission: {e}"))
    }

    async fn reply(&mut self) -> Result<ServerReply, String> {
        crate::queue::delivery::read_reply(&mut self.io, &mut self.reader, REPLY_TIMEOUT)
            .await
            .map_err(|e| format!("submission: {e}"))
    }

    async fn expect(&mut self, code: u16) -> Result<(), String> {
        let r = self.reply().await?;
        if r.code == code {
            Ok(())
        } else {
            Err(format!("submission: {}", r.text()))
        }
    }

    async fn quit(mut self) {
        if self.send("QUIT\r\n").await.is_ok() {
            let _ = self.reply().await;
        }
    }
}
