//! Connection plumbing shared by the session actors.
//!
//! A session actor owns the write half of its socket. A small reader task owns
//! the read half and turns bytes into actor messages, one chunk at a time: it
//! reads the next chunk only after the actor has handed back a credit, so a
//! fast client can never make the actor's (unbounded) mailbox grow. The reader
//! also watches the server's shutdown signal and the idle timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::listener::TLS_HANDSHAKE_TIMEOUT;
use roost_protocols::sasl::ChannelBinding;

/// The largest chunk the reader hands to a session at once.
pub const READ_CHUNK: usize = 64 * 1024;
/// The read buffer of a quiet connection. Most connections spend their
/// life idle (IMAP IDLE) or exchanging short commands; they read into this
/// small buffer, and a bigger one exists only while reads keep filling it
/// (a client streaming a message), so an idle connection does not pin
/// 64 KiB.
pub const QUIET_READ: usize = 1024;
/// How much bigger the next buffer is after a read filled one, up to
/// [`READ_CHUNK`]: 1 KiB, 16 KiB, 64 KiB. A message of a few KiB (most
/// mail) never makes the reader allocate and free 64 KiB, which in glibc
/// also sets off a consolidation of the whole heap.
pub const READ_GROWTH: usize = 16;

/// The size of the next read buffer after `n` bytes were read into one
/// of `len`; `None` for the quiet buffer.
fn next_read_size(n: usize, len: usize) -> Option<usize> {
    (n == len).then(|| len.saturating_mul(READ_GROWTH).min(READ_CHUNK))
}

/// Output a session gathers before writing it out, between commands and
/// within one. A client that pipelines commands and never reads stalls
/// its session in that write (and so stops its reading): the buffer does
/// not grow past this plus one response item.
pub const MAX_PENDING_OUTPUT: usize = 64 * 1024;
/// How long one write may wait for the client to read. A client that
/// reads nothing for this long is disconnected.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Writes and flushes `bytes`, failing with `TimedOut` after
/// [`WRITE_TIMEOUT`].
pub async fn write_out<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    let write = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Shuts the write side down, within [`WRITE_TIMEOUT`].
pub async fn shut_down<W: AsyncWrite + Unpin>(writer: &mut W) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, writer.shutdown()).await;
}

/// A TCP stream, plain or wrapped in TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> Stream for T {}

pub type BoxStream = Box<dyn Stream>;
pub type Writer = tokio::io::WriteHalf<BoxStream>;

/// What the reader task tells its session.
#[derive(Debug)]
pub enum Input {
    Bytes(Vec<u8>),
    /// The peer closed the connection or the read failed.
    Closed,
    /// No bytes for the idle timeout.
    TimedOut,
    /// The server is shutting down: finish the current command and leave.
    Shutdown,
}

/// The credit a session hands back after each chunk.
#[derive(Clone)]
pub struct Credit(mpsc::Sender<()>);

impl Credit {
    pub fn grant(&self) {
        let _ = self.0.try_send(());
    }
}

/// The way back to a reader task's read half (for STARTTLS, which wraps
/// the whole stream again).
pub struct Reclaim<R>(mpsc::Sender<oneshot::Sender<R>>);

impl<R> Reclaim<R> {
    /// Ends the reader task and returns its read half. The task gives it
    /// back only while it waits for credit, that is between two chunks it
    /// handed over: no byte is read past what the session has seen.
    pub async fn take(&self) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.0.send(tx).await.ok()?;
        rx.await.ok()
    }
}

/// The TLS a STARTTLS upgrade continues in.
pub struct TlsUpgrade<'a> {
    pub acceptor: &'a tokio_rustls::TlsAcceptor,
    pub setup: &'a crate::tls::TlsSetup,
    /// The listener's kind, for the certificate choice.
    pub protocol: crate::listener::Protocol,
}

/// STARTTLS (RFC 9051 6.2.1, RFC 3207): takes the read half back from the
/// reader task, joins it with `writer`, continues the same stream in TLS
/// and starts a new reader task on it (as [`spawn_reader`] does), putting
/// its credit and reclaim in place of the old ones. Returns what the
/// handshake tells the session, or `None` when it failed or timed out;
/// the connection is then done.
pub async fn upgrade_to_tls<F>(
    reclaim: &mut Reclaim<tokio::io::ReadHalf<BoxStream>>,
    credit: &mut Credit,
    writer: &mut Writer,
    tls: TlsUpgrade<'_>,
    idle: Duration,
    shutdown: watch::Receiver<bool>,
    deliver: F,
) -> Option<crate::tls::TlsFacts>
where
    F: Fn(Input) -> bool + Send + 'static,
{
    let read = reclaim.take().await?;
    // The write half moves into the TLS stream; a stand-in keeps its
    // place meanwhile.
    let (_, stand_in) = tokio::io::split(Box::new(tokio::io::duplex(1).0) as BoxStream);
    let stream = read.unsplit(std::mem::replace(writer, stand_in));
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await;
    let Ok(Ok(handshake_done)) = handshake else {
        return None;
    };
    let facts = tls.setup.facts(handshake_done.get_ref().1, tls.protocol);
    let (read, write) = tokio::io::split(Box::new(handshake_done) as BoxStream);
    *writer = write;
    (*credit, *reclaim) = spawn_reader(read, idle, shutdown, deliver);
    Some(facts)
}

/// Starts the reader task for `read`; `deliver` hands each input to the
/// session actor and returns false once the actor is gone.
pub fn spawn_reader<R, F>(
    mut read: R,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
    deliver: F,
) -> (Credit, Reclaim<R>)
where
    R: AsyncRead + Unpin + Send + 'static,
    F: Fn(Input) -> bool + Send + 'static,
{
    let (tx, mut credits) = mpsc::channel::<()>(1);
    let (back, mut reclaims) = mpsc::channel::<oneshot::Sender<R>>(1);
    tokio::spawn(async move {
        let mut quiet = [0u8; QUIET_READ];
        let mut busy: Option<Vec<u8>> = None;
        // A session that will never reclaim (dropped its handle) closes
        // the channel; that is not a request.
        let mut reclaimable = true;
        loop {
            tokio::select! {
                c = credits.recv() => if c.is_none() { return },
                r = reclaims.recv(), if reclaimable => match r {
                    Some(to) => {
                        let _ = to.send(read);
                        return;
                    }
                    None => {
                        reclaimable = false;
                        continue;
                    }
                },
                _ = shutdown.wait_for(|s| *s) => { deliver(Input::Shutdown); return }
            }
            let buf: &mut [u8] = match &mut busy {
                Some(b) => b,
                None => &mut quiet,
            };
            let reading = tokio::time::timeout(idle, read.read(buf));
            tokio::pin!(reading);
            let input = loop {
                tokio::select! {
                    // The session is gone (killed): the socket must close
                    // rather than wait for the client. A credit granted
                    // meanwhile is one too many: the read goes on, never
                    // abandoned (that would leave the reader waiting for a
                    // credit the session already gave).
                    c = credits.recv() => match c {
                        None => return,
                        Some(()) => continue,
                    },
                    r = &mut reading => break match r {
                        Ok(Ok(0)) | Ok(Err(_)) => Input::Closed,
                        Ok(Ok(n)) => Input::Bytes(buf[..n].to_vec()),
                        Err(_) => Input::TimedOut,
                    },
                    _ = shutdown.wait_for(|s| *s) => break Input::Shutdown,
                }
            };
            // A full read means more is waiting (see `READ_GROWTH`).
            if let Input::Bytes(b) = &input {
                let len = busy.as_ref().map_or(QUIET_READ, Vec::len);
                match next_read_size(b.len(), len) {
                    Some(size) if size != len => busy = Some(vec![0u8; size]),
                    Some(_) => {}
                    None => busy = None,
                }
            }
            let last = !matches!(input, Input::Bytes(_));
            if !deliver(input) || last {
                return;
            }
        }
    });
    let credit = Credit(tx);
    credit.grant();
    (credit, Reclaim(back))
}

/// Counts a listener's open connections; the guard gives its place back when
/// the session ends, however it ends.
#[derive(Clone, Default)]
pub struct ConnCounter(Arc<AtomicUsize>);

pub struct ConnGuard(Arc<AtomicUsize>, Option<PerIpGuard>);

impl ConnGuard {
    /// Holds the client address's place too, for as long as this guard.
    pub fn with_per_ip(mut self, per_ip: PerIpGuard) -> ConnGuard {
        self.1 = Some(per_ip);
        self
    }
}

/// Counts a listener's open connections per client address. It holds an
/// entry only for addresses with a connection open, so it never holds
/// more than the listener's connections.
#[derive(Clone, Default)]
pub struct PerIpCounter(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

pub struct PerIpGuard {
    counts: PerIpCounter,
    ip: std::net::IpAddr,
}

impl PerIpCounter {
    /// Takes a place for `ip` if it has fewer than `max` open.
    pub fn try_acquire(&self, ip: std::net::IpAddr, max: usize) -> Option<PerIpGuard> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(PerIpGuard {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for PerIpGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl ConnCounter {
    /// Takes a place if fewer than `max` are open.
    pub fn try_acquire(&self, max: usize) -> Option<ConnGuard> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur >= max {
                return None;
            }
            match self
                .0
                .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(ConnGuard(self.0.clone(), None)),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Who is on the other end, for logs and Received lines.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// Channel-binding data of the TLS connection, for SCRAM -PLUS.
    pub binding: ChannelBinding,
    /// The public key (SubjectPublicKeyInfo DER) of the client's TLS
    /// certificate, if it sent one.
    pub client_key: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credit granted while a read waits (STARTTLS: the new reader
    /// starts with a credit, and the session grants one after the
    /// command) must not abandon that read: the bytes still arrive.
    #[tokio::test]
    async fn an_extra_credit_during_a_read_loses_nothing() {
        let (client, server) = tokio::io::duplex(64);
        let (read, _write) = tokio::io::split(server);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop, shutdown) = watch::channel(false);
        let (credit, _reclaim) = spawn_reader(read, Duration::from_secs(30), shutdown, move |i| {
            tx.send(i).is_ok()
        });
        // The reader now waits in its read; a second credit arrives.
        tokio::time::sleep(Duration::from_millis(20)).await;
        credit.grant();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, mut write) = tokio::io::split(client);
        write.write_all(b"a1 NOOP\r\n").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(&got, Ok(Some(Input::Bytes(b))) if b == b"a1 NOOP\r\n"),
            "{got:?}"
        );
    }

    const GROWN: usize = QUIET_READ * READ_GROWTH;

    #[test]
    fn read_buffers_grow_while_reads_fill_them() {
        assert_eq!(GROWN, 16 * 1024);
        assert_eq!(next_read_size(QUIET_READ, QUIET_READ), Some(GROWN));
        assert_eq!(next_read_size(QUIET_READ - 1, QUIET_READ), None);
        assert_eq!(next_read_size(GROWN, GROWN), Some(READ_CHUNK));
        assert_eq!(next_read_size(READ_CHUNK, READ_CHUNK), Some(READ_CHUNK));
        assert_eq!(next_read_size(READ_CHUNK - 1, READ_CHUNK), None);
        assert_eq!(next_read_size(0, READ_CHUNK), None);
    }

    /// A client streaming more than the reader takes at once: the chunks
    /// handed over are 1 KiB, 16 KiB, then at most [`READ_CHUNK`], and
    /// together exactly what was sent; after the short read that ends the
    /// stream, the reader is back to the quiet buffer.
    #[tokio::test]
    async fn chunks_follow_the_growing_buffer() {
        let sent: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
        let (client, server) = tokio::io::duplex(sent.len() + 1);
        let (read, _write) = tokio::io::split(server);
        let (_, mut write) = tokio::io::split(client);
        write.write_all(&sent).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop, shutdown) = watch::channel(false);
        let (credit, _reclaim) = spawn_reader(read, Duration::from_secs(30), shutdown, move |i| {
            tx.send(i).is_ok()
        });
        let mut chunks = Vec::new();
        let mut got = 0;
        while got < sent.len() + 2 * QUIET_READ {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(Input::Bytes(b))) => {
                    got += b.len();
                    chunks.push(b);
                    credit.grant();
                }
                other => panic!("{other:?}"),
            }
            // The stream read whole: two more KiB, which the quiet buffer
            // takes one at a time.
            if got == sent.len() {
                write.write_all(&sent[..2 * QUIET_READ]).await.unwrap();
            }
        }
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        let last = sent.len() - QUIET_READ - GROWN - 2 * READ_CHUNK;
        let quiet = QUIET_READ;
        assert_eq!(
            sizes,
            [quiet, GROWN, READ_CHUNK, READ_CHUNK, last, quiet, quiet]
        );
        assert_eq!(chunks[..5].concat(), sent);
        assert_eq!(chunks[5..].concat(), &sent[..2 * QUIET_READ]);
    }
}
