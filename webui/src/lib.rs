//! roost's HTTP side: pages, the web API and SSE event streams.
//!
//! Today it serves a status page, a health endpoint and `/events`: the
//! change events of the account named by HTTP Basic credentials, as
//! Server-Sent Events. Webmail, account and admin pages build on these
//! (they arrive with their own issues). The same router is served over
//! plain HTTP and over HTTPS.
#![forbid(unsafe_code)]

mod api;
mod sse;

use axum::extract::ConnectInfo;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ractor::SpawnErr;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_actors::auth::{verify_password, AuthError, LoginContext};
use roost_actors::system::Shared;
use roost_actors::task::TaskGuard;
use roost_supervisor::{start_child, ActorKind, ChildSpec, Restart};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info};

/// How often an idle SSE stream sends a keep-alive comment.
pub const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// Where the HTTP side listens.
#[derive(Clone)]
/// Plain HTTP listeners; HTTPS connections come from the `https`
/// listener of roost-actors (which also routes ALPN `imap` and `smtp`),
/// through [`roost_actors::listener::set_https_handler`].
pub struct HttpSettings {
    pub http: Vec<SocketAddr>,
}

/// The `http` child of the root supervisor.
pub fn child_spec(shared: Shared, settings: HttpSettings) -> ChildSpec {
    ChildSpec::linked("http", ActorKind::Http, Restart::Permanent, move || {
        (
            HttpActor,
            HttpArgs {
                shared: shared.clone(),
                settings: settings.clone(),
            },
        )
    })
}

pub struct HttpActor;

pub struct HttpArgs {
    shared: Shared,
    settings: HttpSettings,
}

pub struct HttpState {
    _servers: Vec<TaskGuard>,
}

impl Actor for HttpActor {
    type Msg = ();
    type State = HttpState;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: HttpArgs,
    ) -> Result<HttpState, ActorProcessingErr> {
        let router = router(args.shared.clone());
        let mut servers = Vec::new();
        for addr in args.settings.http.iter().copied() {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            info!(%addr, "http listening");
            servers.push(TaskGuard::spawn(serve(
                listener,
                router.clone(),
                args.shared.clone(),
            )));
        }
        let https_router = router.clone();
        roost_actors::listener::set_https_handler(Some(Arc::new(move |stream, peer| {
            tokio::spawn(serve_connection(https_router.clone(), stream, peer));
        })));
        Ok(HttpState { _servers: servers })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        _state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        roost_actors::listener::set_https_handler(None);
        Ok(())
    }
}

async fn serve(listener: TcpListener, router: Router, shared: Shared) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(_) => {
                // Out of descriptors and the like: back off a moment.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(router.clone(), tcp, peer));
    }
}

/// One HTTP/1.1 connection, plain or already in TLS.
async fn serve_connection<S>(router: Router, stream: S, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Handlers that name the connection (SSE) read the peer here.
    let router = router.layer(axum::Extension(ConnectInfo(peer)));
    let service = TowerToHyperService::new(router);
    let result = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        debug!(%peer, error = %e, "http connection ended");
    }
}

/// The routes. Public so tests can serve them without the actor tree.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/health", get(health))
        .route("/events", get(events))
        .route("/api/v0/{method}", axum::routing::post(api::call))
        .with_state(shared)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

async fn health(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let accounts = shared.store.accounts().map(|a| a.len()).unwrap_or(0);
    Json(serde_json::json!({"ok": true, "accounts": accounts}))
}

/// `/events`: the account's change events as SSE, `event: change` with the
/// JSON event as data. HTTP Basic credentials name the account.
async fn events(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let account = match login(&shared, peer, &headers).await {
        Ok(a) => a,
        Err(LoginRefused(r)) => return r,
    };
    let (feed, stream) = mpsc::channel(sse::SSE_BUFFER);
    let Some(connections) = ractor::registry::where_is("connections") else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let (hub, name) = (shared.hub.clone(), format!("sse:{peer}"));
    let slot = std::sync::Mutex::new(Some(sse::SseArgs { account, hub, feed }));
    let spec = ChildSpec::new(name, ActorKind::Session, Restart::Temporary, move |sup| {
        let args = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            let args =
                args.ok_or_else(|| SpawnErr::StartupFailed("stream already taken".into()))?;
            let (actor, _) =
                sse::SseSession::spawn_linked(None, sse::SseSession, args, sup).await?;
            Ok(actor.get_cell())
        }
    });
    if let Err(e) = start_child(&connections.into(), spec).await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
    }
    Sse::new(ReceiverStream::new(stream))
        .keep_alive(KeepAlive::new().interval(SSE_KEEPALIVE))
        .into_response()
}

/// Why a request's credentials were not taken: the response to send.
pub(crate) struct LoginRefused(Response);

/// The account HTTP Basic credentials name, checked as IMAP and SMTP
/// logins are (throttling, disabled logins).
pub(crate) async fn login(
    shared: &Shared,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<String, LoginRefused> {
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(LoginRefused(unauthorized()));
    };
    let ctx = LoginContext {
        remote: peer,
        protocol: "http",
    };
    match verify_password(&shared.store, &ctx, "BASIC", &user, &password).await {
        Ok(a) => Ok(a),
        // The administrator's message, as IMAP and SMTP show it.
        Err(AuthError::Disabled(why)) => Err(LoginRefused(
            (StatusCode::FORBIDDEN, format!("Login disabled: {why}\n")).into_response(),
        )),
        Err(AuthError::Throttled) => Err(LoginRefused(
            (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed logins from your address, try again later\n",
            )
                .into_response(),
        )),
        Err(_) => Err(LoginRefused(unauthorized())),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"roost\"")],
        "authentication required\n",
    )
        .into_response()
}
