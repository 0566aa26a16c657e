//! The web API: `POST /api/v0/<Method>` with a JSON object in, JSON (or
//! a message's bytes) out, for programs that send and manage an
//! account's mail. HTTP Basic credentials name the account, as for
//! `/events`. Errors are `{"error": "..."}` with a 4xx or 5xx status.
//! The methods are listed in the README ("The web API").

use crate::{login, LoginRefused};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use roost_actors::account::FlagAction;
use roost_actors::client::AccountClient;
use roost_actors::system::Shared;
use roost_protocols::imap::types::{Flag, Flags, Uid};
use roost_protocols::message::compose::{compose, is_address, Attachment, Draft, MAX_RECIPIENTS};
use roost_protocols::message::decode::TransferEncoding;
use roost_store::{AccountId, MailboxRecord, MessageRecord, Store, Suppression};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The largest request body `Send` takes: a message at the server's
/// largest size, base64 in JSON, fits. Read only after the login.
pub const MAX_REQUEST: usize = 96 * 1024 * 1024;
/// The largest request body the other methods take.
pub const MAX_SMALL_REQUEST: usize = 64 * 1024;

/// An API error: its status and text.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn bad(why: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, why.into())
}

fn not_found(why: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, why.into())
}

fn internal(why: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, why.to_string())
}

/// `POST /api/v0/:method`.
pub async fn call(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // JSON only: a browser cannot send it across sites without asking
    // first (CORS), so another site's form cannot call the API with the
    // credentials the browser remembers.
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json".into(),
        )
        .into_response();
    }
    let account = match login(&shared, peer, &headers).await {
        Ok(a) => a,
        Err(LoginRefused(r)) => return r,
    };
    // The body is read only now, after the login, up to the method's
    // limit.
    let limit = if method == "Send" {
        MAX_REQUEST
    } else {
        MAX_SMALL_REQUEST
    };
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        let why = format!("the body is larger than {limit} bytes");
        return ApiError(StatusCode::PAYLOAD_TOO_LARGE, why).into_response();
    };
    let parsed = if body.is_empty() {
        Ok(json!({}))
    } else {
        tokio::task::spawn_blocking(move || {
            serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
    };
    let args = match parsed {
        Ok(v) => v,
        Err(e) => return bad(format!("the body is not JSON: {e}")).into_response(),
    };
    match dispatch(&shared, &account, peer, &method, args).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn args<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| bad(format!("arguments: {e}")))
}

async fn dispatch(
    shared: &Shared,
    account: &str,
    peer: SocketAddr,
    method: &str,
    v: Value,
) -> Result<Response, ApiError> {
    let store = shared.store.clone();
    let ok = |v: Value| Ok(Json(v).into_response());
    match method {
        "Send" => send(shared, account, peer, args(v)?).await,
        "SuppressionList" => {
            let account = account.to_string();
            let list = run(move || {
                let a = account_id(&store, &account)?;
                Ok(store.suppressions(a)?)
            })
            .await?;
            ok(json!(list.iter().map(suppression_json).collect::<Vec<_>>()))
        }
        "SuppressionAdd" | "SuppressionRemove" | "SuppressionPresent" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct A {
                address: String,
                #[serde(default)]
                reason: Option<String>,
            }
            let A { address, reason } = args(v)?;
            let (account, method) = (account.to_string(), method.to_string());
            run(move || {
                let a = account_id(&store, &account)?;
                Ok(match method.as_str() {
                    "SuppressionAdd" => {
                        let s = Suppression {
                            address,
                            since: roost_actors::time::now_unix(),
                            reason: reason.unwrap_or_else(|| "added through the web API".into()),
                        };
                        store.suppress(a, &s).map_err(|e| bad(e.to_string()))?;
                        json!({"address": s.address, "suppressed": true})
                    }
                    "SuppressionRemove" => {
                        let was = store.unsuppress(a, &address)?;
                        json!({"address": address, "suppressed": false, "was": was})
                    }
                    _ => match store.suppressed(a, &address)? {
                        Some(s) => json!({"address": address, "present": true, "reason": s.reason}),
                        None => json!({"address": address, "present": false}),
                    },
                })
            })
            .await
            .map(|v| Json(v).into_response())
        }
        "MessageGet" => {
            let (rec, summary) = message(&store, account, args(v)?).await?;
            ok(message_json(&rec.1, &rec.0, summary.as_ref()))
        }
        "MessageRawGet" => {
            let ((_, m), _) = message(&store, account, args(v)?).await?;
            let bytes = run(move || Ok(store.open_message(&m)?.read_all()?)).await?;
            Ok((
                [
                    (header::CONTENT_TYPE, "message/rfc822"),
                    (header::CONTENT_DISPOSITION, "attachment"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                bytes,
            )
                .into_response())
        }
        "MessagePartGet" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct A {
                mailbox: String,
                uid: u32,
                /// `1`, `1.2`, ...
                part: String,
            }
            let a: A = args(v)?;
            let path: Vec<u32> = a
                .part
                .split('.')
                .map(|n| n.parse().ok().filter(|n| *n > 0))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(format!("{:?} is not a part (1, 1.2, ...)", a.part)))?;
            let at = At {
                mailbox: a.mailbox,
                uid: a.uid,
            };
            let ((_, m), summary) = message(&store, account, at).await?;
            let summary = summary.ok_or_else(|| internal("the message has no structure"))?;
            let p = summary
                .body
                .find(&path)
                .and_then(|i| summary.body.part(i))
                .ok_or_else(|| not_found(format!("no part {}", a.part)))?
                .clone();
            let encoding = TransferEncoding::from_name(&p.encoding).ok_or_else(|| {
                bad(format!(
                    "part {} has an encoding roost cannot undo: {}",
                    a.part,
                    String::from_utf8_lossy(&p.encoding)
                ))
            })?;
            let start = m.header_prefix.len() as u64 + p.body_start;
            let len = p.end.saturating_sub(p.body_start) as usize;
            let data =
                run(move || Ok(encoding.decode(&store.open_message(&m)?.read_at(start, len)?)))
                    .await?;
            let content_type = format!(
                "{}/{}",
                String::from_utf8_lossy(&p.media_type).to_ascii_lowercase(),
                String::from_utf8_lossy(&p.media_subtype).to_ascii_lowercase()
            );
            // A message's content is someone else's: a download, never
            // sniffed, never run here.
            Ok((
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CONTENT_DISPOSITION, "attachment".into()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "sandbox; default-src 'none'".into(),
                    ),
                ],
                data,
            )
                .into_response())
        }
        "MessageDelete" => {
            let ((mb, m), _) = message(&store, account, args(v)?).await?;
            // As IMAP's UID EXPUNGE: marked \Deleted, then expunged.
            let client = AccountClient::new(account);
            let deleted: Flags = std::iter::once(Flag::Deleted).collect();
            client
                .set_flags(mb.id, vec![m.uid], FlagAction::Add, deleted, None)
                .await
                .map_err(internal)?;
            let gone = client
                .expunge(mb.id, Some(vec![m.uid]))
                .await
                .map_err(internal)?;
            ok(json!({"deleted": gone.contains(&m.uid)}))
        }
        "MessageFlagsAdd" | "MessageFlagsRemove" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct A {
                mailbox: String,
                uid: u32,
                flags: Vec<String>,
            }
            let a: A = args(v)?;
            let flags: Flags = a
                .flags
                .iter()
                .map(|f| Flag::parse(f).ok_or_else(|| bad(format!("{f:?} is not a flag"))))
                .collect::<Result<_, _>>()?;
            let at = At {
                mailbox: a.mailbox,
                uid: a.uid,
            };
            let ((mb, m), _) = message(&store, account, at).await?;
            let action = if method == "MessageFlagsAdd" {
                FlagAction::Add
            } else {
                FlagAction::Remove
            };
            let set = AccountClient::new(account)
                .set_flags(mb.id, vec![m.uid], action, flags, None)
                .await
                .map_err(internal)?;
            let now = set
                .changed
                .first()
                .map(|s| s.flags.clone())
                .unwrap_or(m.flags);
            ok(json!({"flags": now.iter().map(|f| f.to_string()).collect::<Vec<_>>()}))
        }
        "MessageMove" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct A {
                mailbox: String,
                uid: u32,
                to: String,
            }
            let a: A = args(v)?;
            let at = At {
                mailbox: a.mailbox,
                uid: a.uid,
            };
            let ((mb, m), _) = message(&store, account, at).await?;
            let moved = AccountClient::new(account)
                .copy(mb.id, vec![m.uid], &a.to, true)
                .await
                .map_err(|e| bad(e.to_string()))?;
            let uid = moved.pairs.first().map(|(_, new)| new.0);
            ok(json!({"mailbox": a.to, "uid": uid}))
        }
        _ => Err(not_found(format!("no method {method}"))),
    }
}

/// Runs store work off the async workers.
async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

impl From<roost_store::StoreError> for ApiError {
    fn from(e: roost_store::StoreError) -> ApiError {
        match e {
            roost_store::StoreError::NotFound(what) => not_found(format!("not found: {what}")),
            roost_store::StoreError::Invalid(why) => bad(why),
            e => internal(e),
        }
    }
}

fn account_id(store: &Store, name: &str) -> Result<AccountId, ApiError> {
    Ok(store
        .account(name)?
        .ok_or_else(|| not_found(format!("no account {name}")))?
        .id)
}

fn suppression_json(s: &Suppression) -> Value {
    json!({"address": s.address, "since": roost_actors::time::rfc3339(s.since), "reason": s.reason})
}

/// A message named by mailbox and UID.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct At {
    mailbox: String,
    uid: u32,
}

type Found = (
    (MailboxRecord, MessageRecord),
    Option<roost_protocols::message::summary::Summary>,
);

async fn message(store: &Store, account: &str, at: At) -> Result<Found, ApiError> {
    let (store, account) = (store.clone(), account.to_string());
    run(move || {
        let a = account_id(&store, &account)?;
        let mb = store
            .mailboxes(a)?
            .into_iter()
            .find(|m| m.name == roost_actors::account::normalize_name(&at.mailbox))
            .ok_or_else(|| not_found(format!("no mailbox {}", at.mailbox)))?;
        let m = store
            .message(a, mb.id, Uid(at.uid))?
            .ok_or_else(|| not_found(format!("no message {} in {}", at.uid, at.mailbox)))?;
        let summary = match store.summary(m.file)? {
            Some(s) => Some(s),
            None => roost_actors::summaries::of_stored(&store, m.file).ok(),
        };
        Ok(((mb, m), summary))
    })
    .await
}

fn message_json(
    m: &MessageRecord,
    mb: &MailboxRecord,
    summary: Option<&roost_protocols::message::summary::Summary>,
) -> Value {
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
    let addresses = |list: &[roost_protocols::message::address::Address]| -> Vec<Value> {
        list.iter()
            .map(|a| {
                json!({
                    "name": text(&a.name),
                    "address": match (&a.mailbox, &a.host) {
                        (Some(l), Some(h)) => Some(format!("{}@{}", String::from_utf8_lossy(l), String::from_utf8_lossy(h))),
                        _ => None,
                    },
                })
            })
            .collect()
    };
    let envelope = summary.map(|s| {
        let e = &s.envelope;
        json!({
            "date": text(&e.date),
            "subject": text(&e.subject),
            "from": addresses(&e.from),
            "to": addresses(&e.to),
            "cc": addresses(&e.cc),
            "message_id": text(&e.message_id),
        })
    });
    json!({
        "mailbox": mb.name,
        "uid": m.uid.0,
        "size": m.size,
        "flags": m.flags.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        "received": roost_actors::time::rfc3339(m.internal_date),
        "extra": m.extra.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "envelope": envelope,
        "preview": summary.and_then(|s| s.preview.clone()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    /// The account's address when left out.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_name: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    /// Recipients not named in the header.
    #[serde(default)]
    bcc: Vec<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    attachments: Vec<AttachmentArg>,
    #[serde(default)]
    extra: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentArg {
    filename: String,
    #[serde(default)]
    content_type: String,
    /// base64.
    data: String,
}

/// `Send`: composes the message and submits it as the account, through
/// a submission session (the same checks, signing and delivery as any
/// client's submission).
async fn send(
    shared: &Shared,
    account: &str,
    peer: SocketAddr,
    a: SendArgs,
) -> Result<Response, ApiError> {
    let from = a.from.unwrap_or_else(|| account.to_string());
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let id = roost_store::random_bytes(12)
        .map_err(internal)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let message_id = format!("{id}@{domain}");
    // Bcc recipients are checked as To and Cc are (the composer sees
    // those), within the same limit.
    if a.to.len() + a.cc.len() + a.bcc.len() > MAX_RECIPIENTS {
        return Err(bad(format!("at most {MAX_RECIPIENTS} recipients")));
    }
    if let Some(b) = a.bcc.iter().find(|b| !is_address(b)) {
        return Err(bad(format!("{b:?} is not an address")));
    }
    let extra = a
        .extra
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(bad(format!("extra {k:?}: a string, not {other}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut draft = Draft {
        from: from.clone(),
        from_name: a.from_name,
        to: a.to.clone(),
        cc: a.cc.clone(),
        subject: a.subject,
        text: a.text,
        html: a.html,
        extra,
        date: roost_actors::time::rfc5322_date(roost_actors::time::now_unix()),
        message_id: message_id.clone(),
        ..Draft::default()
    };
    // Decoding and composing are CPU work on up to MAX_REQUEST bytes.
    let attachments = a.attachments;
    let bytes = run(move || {
        for at in attachments {
            let data = base64::engine::general_purpose::STANDARD
                .decode(at.data.as_bytes())
                .map_err(|e| bad(format!("attachment {:?}: not base64: {e}", at.filename)))?;
            draft.attachments.push(Attachment {
                filename: at.filename,
                content_type: at.content_type,
                data,
            });
        }
        compose(&draft).map_err(bad)
    })
    .await?;
    let rcpts: Vec<String> = a.to.into_iter().chain(a.cc).chain(a.bcc).collect();
    if rcpts.is_empty() {
        return Err(bad("no recipients"));
    }
    let services = (shared.submission)()
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    let done = roost_actors::smtp::inproc::submit(services, account, peer, &from, &rcpts, &bytes)
        .await
        .map_err(internal)?;
    let status = if done.accepted {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = json!({
        "message_id": message_id,
        "accepted": done.accepted,
        "reply": done.reply,
        "recipients": done.recipients.iter().map(|(address, reply)| json!({"address": address, "reply": reply})).collect::<Vec<_>>(),
    });
    Ok((status, Json(body)).into_response())
}
