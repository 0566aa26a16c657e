//! One HTTP/1.1 request (hyper's client) over TCP or TLS with a checked
//! certificate: webhook calls and MTA-STS policy fetches.

use crate::task::TaskGuard;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::sync::Arc;

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Where a request goes.
pub struct Target<'a> {
    /// A name or an address (IPv6 in brackets or not).
    pub host: &'a str,
    pub port: u16,
    /// TLS, its certificate checked against these roots and `host`.
    pub tls: Option<&'a Arc<rustls::RootCertStore>>,
    /// Connect here instead of resolving `host` (the name still checked).
    pub address: Option<std::net::IpAddr>,
}

/// An answer: status, Content-Type, and the body up to the limit given
/// (`Err` past it).
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Sends one request and reads the answer's body, at most `max_body`
/// bytes; `body_over` says whether more is an error (a policy) or is
/// left unread (a webhook's answer).
pub async fn request(
    to: &Target<'_>,
    request: hyper::http::request::Builder,
    body: Vec<u8>,
    max_body: usize,
    body_over: bool,
) -> Result<Answer, String> {
    let bare = to.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = match to.address {
        Some(ip) => tokio::net::TcpStream::connect((ip, to.port)).await,
        None => tokio::net::TcpStream::connect((bare, to.port)).await,
    }
    .map_err(|e| format!("connect to {}:{}: {e}", to.host, to.port))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match to.tls {
        Some(roots) => {
            let config = crate::queue::delivery::verified_tls(roots);
            let name = rustls::pki_types::ServerName::try_from(bare.to_string())
                .map_err(|_| format!("{} is no server name", to.host))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Box::new(tls)
        }
        None => Box::new(tcp),
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    let _conn = TaskGuard::spawn(async move {
        let _ = conn.await;
    });
    let request = request
        .header(hyper::header::USER_AGENT, "roost")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("HTTP request: {e}"))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut stream = answer.into_body();
    let mut body = Vec::new();
    while let Some(frame) = stream.frame().await {
        let frame = frame.map_err(|e| format!("HTTP: {e}"))?;
        if let Some(d) = frame.data_ref() {
            if body.len() + d.len() > max_body {
                if body_over {
                    return Err(format!("an answer longer than {max_body} bytes"));
                }
                break;
            }
            body.extend_from_slice(d);
        }
    }
    Ok(Answer {
        status,
        content_type,
        body,
    })
}
