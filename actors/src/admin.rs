//! The admin socket: `<data dir>/roost.sock`, mode 0600, one JSON request
//! per line and one JSON response per line (`{"ok":true,"result":...}` or
//! `{"ok":false,"error":"..."}`). `events` answers with a stream of change
//! events, one JSON object per line, until the client hangs up.
//!
//! This is how `roost admin` talks to a running server: the live actor tree,
//! accounts and domains, consistency checks, store statistics and chaos
//! (`kill`).

use crate::account::actor_name as account_actor_name;
use crate::account::{AccountMsg, AccountSpecs, TlsKeyChange};
use crate::client::AccountClient;
use crate::events::EventHub;
use crate::queue::webhooks;
use crate::task::blocking;
use crate::task::TaskGuard;
use crate::time::{rfc3339, utc_time};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_protocols::message::inbound::Report;
use roost_protocols::precis::{check_new_password, normalize_username};
use roost_store::{PasswordSecrets, QueueFilter, Store, TlsPublicKey};
use roost_supervisor::{
    fail_child, start_child, terminate_child, ActorKind, Registry, SupervisorMsg,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "roost.sock";
/// The longest request line the admin socket reads.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The most queued messages one admin operation works on (the first,
/// oldest first); the admin repeats it for more.
pub const MAX_CHOSEN: usize = 10_000;
/// How far ahead `queue schedule` may put a message: a year.
pub const MAX_SCHEDULE: i64 = 366 * 86_400;
/// Queued messages `queue list` shows unless asked for another number.
pub const DEFAULT_QUEUE_LIST: usize = 1000;
/// Login attempts `loginattempts` (and DMARC evaluations
/// `dmarcevaluations`) lists unless asked for another number.
pub const DEFAULT_LOGIN_ATTEMPTS: usize = 100;

/// Longest login-disabled message, in bytes: it goes into one IMAP or
/// SMTP reply line (RFC 5321 4.5.3.1.5 allows 512 octets a line).
pub const MAX_DISABLED_MESSAGE: usize = 300;

#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Tree,
    Events {
        account: Option<String>,
    },
    AccountAdd {
        name: String,
        password: String,
        quota: Option<u64>,
    },
    AccountList,
    AccountPasswd {
        name: String,
        password: String,
    },
    AccountRm {
        name: String,
    },
    AccountDisable {
        name: String,
        message: String,
    },
    AccountQuota {
        name: String,
        storage: Option<u64>,
        messages: Option<u64>,
    },
    AccountEnable {
        name: String,
    },
    DomainAdd {
        name: String,
    },
    DomainList,
    DomainDisable {
        name: String,
    },
    DomainEnable {
        name: String,
    },
    DomainRm {
        name: String,
    },
    DomainSet {
        name: String,
        catchall_separator: Option<String>,
        localpart_case_sensitive: Option<bool>,
        #[serde(default)]
        report_only: Option<bool>,
    },
    AddressAdd {
        name: String,
        address: String,
    },
    AddressRm {
        name: String,
        address: String,
    },
    AliasAdd {
        address: String,
        members: Vec<String>,
        #[serde(default)]
        post_public: bool,
        #[serde(default)]
        allow_msg_from: bool,
    },
    AliasList,
    DkimGen {
        domain: String,
        selector: String,
    },
    DkimImport {
        domain: String,
        selector: String,
        /// The private key, PKCS#8 DER in base64.
        key: String,
    },
    DkimList {
        domain: String,
    },
    DkimRm {
        domain: String,
        selector: String,
    },
    RuleAdd {
        name: String,
        rule: roost_store::DeliveryRule,
    },
    RuleList {
        name: String,
    },
    IntroSet {
        name: String,
        mailbox: Option<String>,
    },
    RuleRm {
        name: String,
        index: usize,
    },
    AliasRm {
        address: String,
    },
    /// Makes the named actor fail as if it had panicked; with `panic`, an
    /// account actor really panics inside a handler.
    Kill {
        name: String,
        #[serde(default)]
        panic: bool,
    },
    Check {
        account: String,
    },
    Stats,
    FailFlush,
    LoginAttempts {
        account: Option<String>,
        limit: Option<usize>,
    },
    DmarcEvaluations {
        limit: Option<usize>,
    },
    IncomingReports {
        limit: Option<usize>,
    },
    AccountUniqueMailFrom {
        name: String,
        on: bool,
    },
    MessageInfo {
        account: String,
        mailbox: String,
        uid: u32,
    },
    SuppressionList {
        account: String,
    },
    SuppressionAdd {
        account: String,
        address: String,
    },
    SuppressionRm {
        account: String,
        address: String,
    },
    QueueList {
        #[serde(flatten)]
        filter: QueueFilter,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Sets the next attempt `in_secs` from now (0: now), releasing held
    /// messages.
    QueueSchedule {
        #[serde(flatten)]
        filter: QueueFilter,
        #[serde(default)]
        all: bool,
        #[serde(default)]
        in_secs: i64,
    },
    QueueHold {
        #[serde(flatten)]
        filter: QueueFilter,
        #[serde(default)]
        all: bool,
        hold: bool,
    },
    QueueTransport {
        #[serde(flatten)]
        filter: QueueFilter,
        #[serde(default)]
        all: bool,
        /// `None`: the configured routes choose again.
        transport: Option<String>,
    },
    /// Fails the chosen messages now, with a DSN to each sender.
    QueueFail {
        #[serde(flatten)]
        filter: QueueFilter,
        #[serde(default)]
        all: bool,
    },
    QueueDrop {
        #[serde(flatten)]
        filter: QueueFilter,
        #[serde(default)]
        all: bool,
    },
    QueueRetired {
        #[serde(default)]
        account: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
    },
    WebhookSet {
        account: String,
        url: String,
        #[serde(default)]
        authorization: Option<String>,
    },
    WebhookRm {
        account: String,
    },
    WebhookShow {
        account: String,
    },
    WebhookPending {
        #[serde(default)]
        limit: Option<usize>,
    },
    WebhookHistory {
        #[serde(default)]
        account: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
    },
    HoldRuleList,
    HoldRuleAdd {
        #[serde(default)]
        account: Option<String>,
        #[serde(default)]
        sender_domain: Option<String>,
        #[serde(default)]
        recipient_domain: Option<String>,
    },
    HoldRuleRm {
        id: u64,
    },
    TlsKeyAdd {
        account: String,
        name: String,
        /// The client certificate, DER in base64.
        cert: String,
        #[serde(default = "yes")]
        preauth: bool,
    },
    TlsKeyList {
        account: String,
    },
    TlsKeyRm {
        account: String,
        name: String,
    },
    /// Turns the connection into a pre-authenticated IMAP session.
    ImapServe {
        account: String,
    },
}

fn yes() -> bool {
    true
}

/// What the admin socket needs to act on the running server.
#[derive(Clone)]
pub struct AdminContext {
    pub store: Store,
    pub registry: Registry,
    pub hub: EventHub,
    pub accounts: ActorRef<SupervisorMsg>,
    pub specs: AccountSpecs,
    /// What IMAP sessions started here (`imapserve`) work with.
    pub imap: crate::listener::Services,
    /// The names of the queue's transports, for `queue transport`.
    pub transports: Vec<String>,
}

pub struct AdminActor;

pub struct AdminArgs {
    pub path: PathBuf,
    pub ctx: AdminContext,
}

pub struct AdminState {
    _accept_loop: TaskGuard,
    path: PathBuf,
}

impl Actor for AdminActor {
    type Msg = ();
    type State = AdminState;
    type Arguments = AdminArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: AdminArgs,
    ) -> Result<AdminState, ActorProcessingErr> {
        // A socket file left by a killed server would make bind fail.
        let _ = std::fs::remove_file(&args.path);
        let listener = UnixListener::bind(&args.path)
            .map_err(|e| format!("cannot bind {}: {e}", args.path.display()))?;
        std::fs::set_permissions(&args.path, std::fs::Permissions::from_mode(0o600))?;
        info!(path = %args.path.display(), "admin socket ready");
        let ctx = args.ctx;
        let accept_loop = TaskGuard::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, ctx).await {
                        warn!(error = %e, "admin connection failed");
                    }
                });
            }
        });
        Ok(AdminState {
            _accept_loop: accept_loop,
            path: args.path,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut AdminState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = std::fs::remove_file(&state.path);
        Ok(())
    }
}

async fn serve(stream: UnixStream, ctx: AdminContext) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut lines)
            .take(MAX_REQUEST_LINE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') && n as usize >= MAX_REQUEST_LINE {
            let r = json!({"ok": false, "error": format!("request longer than {MAX_REQUEST_LINE} bytes")});
            write.write_all(format!("{r}\n").as_bytes()).await?;
            return Ok(());
        }
        let request: Request = match serde_json::from_str(line.trim()) {
            Ok(r) => r,
            Err(e) => {
                let r = json!({"ok": false, "error": format!("bad request: {e}")});
                write.write_all(format!("{r}\n").as_bytes()).await?;
                continue;
            }
        };
        if let Request::Events { account } = request {
            return stream_events(lines, write, ctx.hub.clone(), account).await;
        }
        if let Request::ImapServe { account } = request {
            return imap_serve(lines, write, &ctx, &account).await;
        }
        let response = match handle(request, &ctx).await {
            Ok(result) => json!({"ok": true, "result": result}),
            Err(error) => json!({"ok": false, "error": error}),
        };
        write.write_all(format!("{response}\n").as_bytes()).await?;
    }
}

/// `roost admin imapserve ADDRESS`: after the OK line, the connection is
/// an IMAP session logged in to the account (a `* PREAUTH` greeting),
/// whether or not its logins are disabled: for migrations through mutt's
/// `tunnel` or mbsync's `Tunnel`. The client sends nothing before the OK,
/// so nothing is left in the line buffer.
async fn imap_serve(
    lines: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    ctx: &AdminContext,
    account: &str,
) -> std::io::Result<()> {
    let name = normalize_username(account).unwrap_or_else(|_| account.to_string());
    let store = ctx.store.clone();
    let found = blocking(move || store.account_by_address(&name)).await;
    let record = match found {
        Ok(Some(r)) => r,
        Ok(None) => {
            let r = json!({"ok": false, "error": format!("no account with the address {account}")});
            return write.write_all(format!("{r}\n").as_bytes()).await;
        }
        Err(e) => {
            let r = json!({"ok": false, "error": e});
            return write.write_all(format!("{r}\n").as_bytes()).await;
        }
    };
    write
        .write_all(format!("{}\n", json!({"ok": true, "result": "imap"})).as_bytes())
        .await?;
    let stream = lines
        .into_inner()
        .reunite(write)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let Some(guard) = crate::conn::ConnCounter::default().try_acquire(1) else {
        return Ok(());
    };
    let peer = crate::conn::Peer {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        local: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: false,
        binding: Default::default(),
        client_key: None,
    };
    crate::listener::start_connection(
        Box::new(stream),
        peer,
        crate::listener::Protocol::Imap,
        ctx.imap.clone(),
        guard,
        Some((record.name, record.id)),
    )
    .await
    .map_err(std::io::Error::other)
}

async fn stream_events(
    mut read: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    hub: EventHub,
    account: Option<String>,
) -> std::io::Result<()> {
    let mut rx = hub.subscribe();
    write
        .write_all(format!("{}\n", json!({"ok": true, "result": "streaming"})).as_bytes())
        .await?;
    let mut sink = String::new();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => {
                    if account.as_ref().is_some_and(|a| *a != ev.account) {
                        continue;
                    }
                    let line = serde_json::to_string(&*ev).unwrap_or_default();
                    write.write_all(format!("{line}\n").as_bytes()).await?;
                }
                Err(RecvError::Lagged(n)) => {
                    write.write_all(format!("{}\n", json!({"lagged": n})).as_bytes()).await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            n = read.read_line(&mut sink) => {
                if n? == 0 { return Ok(()) }
                sink.clear();
            }
        }
    }
}

async fn handle(request: Request, ctx: &AdminContext) -> Result<Value, String> {
    let store = ctx.store.clone();
    match request {
        Request::Tree => Ok(json!(ctx.registry.snapshot())),
        Request::Events { .. } => Err("events is a stream".into()),
        Request::ImapServe { .. } => Err("imapserve is a session".into()),
        Request::AccountAdd {
            name,
            password,
            quota,
        } => {
            let name = normalize_username(&name).map_err(|e| e.to_string())?;
            let password =
                check_new_password(&password).map_err(|e| format!("password refused: {e}"))?;
            let domain = name
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .ok_or("an account name is an address: user@domain")?;
            if !store.has_domain(&domain).map_err(|e| e.to_string())? {
                return Err(format!(
                    "domain {domain} is not configured; add it first with `roost admin domain add {domain}`"
                ));
            }
            let n = name.clone();
            let record = blocking(move || store.create_account(&n, &password, quota)).await?;
            start_child(&ctx.accounts, ctx.specs.spec(&name)).await?;
            Ok(json!({"name": record.name, "id": record.id}))
        }
        Request::AccountList => {
            let accounts = blocking(move || store.accounts()).await?;
            Ok(json!(accounts
                .iter()
                .map(|a| json!({
                    "name": a.name,
                    "addresses": a.addresses,
                    "quota": a.quota_bytes,
                    "quota_messages": a.quota_messages,
                    "disabled": a.disabled,
                }))
                .collect::<Vec<_>>()))
        }
        Request::AccountPasswd { name, password } => {
            let password =
                check_new_password(&password).map_err(|e| format!("password refused: {e}"))?;
            let secrets = blocking(move || PasswordSecrets::derive(&password)).await?;
            AccountClient::new(&name)
                .set_password(secrets)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"name": name}))
        }
        Request::AccountDisable { name, message } => {
            let message = message.trim().to_string();
            // The message goes into one protocol reply line.
            if message.is_empty() || message.chars().any(char::is_control) {
                return Err("the message must be one line of text".into());
            }
            if message.len() > MAX_DISABLED_MESSAGE {
                return Err(format!(
                    "the message is longer than {MAX_DISABLED_MESSAGE} bytes"
                ));
            }
            AccountClient::new(&name)
                .set_disabled(Some(message.clone()))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"name": name, "disabled": message}))
        }
        Request::AccountQuota {
            name,
            storage,
            messages,
        } => {
            AccountClient::new(&name)
                .set_quota(storage, messages)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"name": name, "storage": storage, "messages": messages}))
        }
        Request::AccountEnable { name } => {
            AccountClient::new(&name)
                .set_disabled(None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"name": name, "disabled": null}))
        }
        Request::AccountRm { name } => {
            let (s, n) = (store.clone(), name.clone());
            let record = blocking(move || s.account(&n))
                .await?
                .ok_or_else(|| format!("no account named {name}"))?;
            terminate_child(&ctx.accounts, &account_actor_name(&record.name)).await?;
            let (s, n) = (store.clone(), record.name.clone());
            blocking(move || s.delete_account(&n)).await?;
            // Whoever gets these addresses next inherits no memberships.
            let gone: Vec<String> = std::iter::once(record.name.clone())
                .chain(record.addresses.iter().cloned())
                .collect();
            blocking(move || store.drop_alias_members(&gone)).await?;
            Ok(json!({"name": record.name}))
        }
        Request::DomainAdd { name } => {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || name.contains(['@', ' ', '/']) {
                return Err(format!("{name:?} is not a domain name"));
            }
            let n = name.clone();
            blocking(move || store.add_domain(&n)).await?;
            Ok(json!({"name": name}))
        }
        Request::DomainDisable { name } => {
            let rec = blocking(move || store.set_domain_disabled(&name, true)).await?;
            Ok(json!({"name": rec.name, "disabled": rec.disabled}))
        }
        Request::DomainEnable { name } => {
            let rec = blocking(move || store.set_domain_disabled(&name, false)).await?;
            Ok(json!({"name": rec.name, "disabled": rec.disabled}))
        }
        Request::DomainSet {
            name,
            catchall_separator,
            localpart_case_sensitive,
            report_only,
        } => {
            let rec = blocking(move || {
                store.set_domain_matching(
                    &name,
                    catchall_separator,
                    localpart_case_sensitive,
                    report_only,
                )
            })
            .await?;
            Ok(
                json!({"name": rec.name, "catchall_separator": rec.catchall_separator,
                "localpart_case_sensitive": rec.localpart_case_sensitive,
                "report_only": rec.report_only}),
            )
        }
        Request::AddressAdd { name, address } => {
            let name = account_name(&store, name).await?;
            let s = store.clone();
            let shown = blocking(move || s.check_new_address(&address)).await?;
            AccountClient::new(&name)
                .address(crate::account::AddressChange::Add(shown))
                .await
                .map_err(|e| e.to_string())?;
            let rec = blocking(move || store.account(&name))
                .await?
                .ok_or("the account is gone")?;
            Ok(json!({"name": rec.name, "addresses": rec.addresses}))
        }
        Request::AddressRm { name, address } => {
            let name = account_name(&store, name).await?;
            AccountClient::new(&name)
                .address(crate::account::AddressChange::Remove(address.clone()))
                .await
                .map_err(|e| e.to_string())?;
            let s = store.clone();
            blocking(move || s.drop_alias_members(&[address])).await?;
            let rec = blocking(move || store.account(&name))
                .await?
                .ok_or("the account is gone")?;
            Ok(json!({"name": rec.name, "addresses": rec.addresses}))
        }
        Request::AliasAdd {
            address,
            members,
            post_public,
            allow_msg_from,
        } => {
            let rec =
                blocking(move || store.add_alias(&address, &members, post_public, allow_msg_from))
                    .await?;
            Ok(json!({"address": rec.address, "members": rec.members,
                "post_public": rec.post_public, "allow_msg_from": rec.allow_msg_from}))
        }
        Request::RuleAdd { name, rule } => {
            let rules = blocking(move || store.add_rule(&name, rule)).await?;
            Ok(json!(rules))
        }
        Request::RuleList { name } => {
            let rules = blocking(move || {
                let account = store
                    .account(&name)?
                    .ok_or_else(|| roost_store::StoreError::NotFound(format!("account {name}")))?;
                store.rules(account.id)
            })
            .await?;
            Ok(json!(rules))
        }
        Request::IntroSet { name, mailbox } => {
            let m = mailbox.clone();
            blocking(move || store.set_intro_mailbox(&name, m)).await?;
            Ok(json!({"intro": mailbox}))
        }
        Request::RuleRm { name, index } => {
            let rules = blocking(move || store.remove_rule(&name, index)).await?;
            Ok(json!(rules))
        }
        Request::DkimGen { domain, selector } => {
            let pkcs8 = crate::smtp::dkim::generate_ed25519()?;
            add_dkim(
                &store,
                domain,
                selector,
                roost_store::DkimAlgorithm::Ed25519,
                pkcs8,
            )
            .await
        }
        Request::DkimImport {
            domain,
            selector,
            key,
        } => {
            let pkcs8 = roost_protocols::sasl::decode_base64(&key)
                .map_err(|_| "the key is not base64".to_string())?;
            crate::smtp::dkim::check_rsa(&pkcs8)?;
            add_dkim(
                &store,
                domain,
                selector,
                roost_store::DkimAlgorithm::Rsa,
                pkcs8,
            )
            .await
        }
        Request::DkimList { domain } => {
            let d = domain.clone();
            let keys = blocking(move || store.dkim_keys(&d)).await?;
            let mut out = Vec::new();
            for k in &keys {
                out.push(json!({"selector": k.selector, "algorithm": format!("{:?}", k.algorithm).to_lowercase(),
                    "name": format!("{}._domainkey.{}", k.selector, domain.to_lowercase()),
                    "txt": crate::smtp::dkim::dns_record(k)?}));
            }
            Ok(json!(out))
        }
        Request::DkimRm { domain, selector } => {
            blocking(move || store.remove_dkim_key(&domain, &selector)).await?;
            Ok(json!({}))
        }
        Request::AliasList => {
            let aliases = blocking(move || store.aliases()).await?;
            Ok(json!(aliases
                .iter()
                .map(|a| json!({"address": a.address, "members": a.members,
                    "post_public": a.post_public, "allow_msg_from": a.allow_msg_from}))
                .collect::<Vec<_>>()))
        }
        Request::AliasRm { address } => {
            let a = address.clone();
            blocking(move || store.remove_alias(&a)).await?;
            Ok(json!({"address": address}))
        }
        Request::DomainList => {
            let domains = blocking(move || store.domains()).await?;
            Ok(json!(domains.iter().map(|d| &d.name).collect::<Vec<_>>()))
        }
        Request::DomainRm { name } => {
            let n = name.clone();
            let accounts = blocking(move || store.accounts()).await?;
            let suffix = format!("@{}", name.to_ascii_lowercase());
            if accounts.iter().any(|a| a.name.ends_with(&suffix)) {
                return Err(format!(
                    "domain {name} still has accounts; remove them first"
                ));
            }
            let store = ctx.store.clone();
            blocking(move || store.remove_domain(&n)).await?;
            Ok(json!({"name": name}))
        }
        Request::Kill { name, panic } => kill(ctx, &name, panic).await,
        Request::Check { account } => {
            let problems = blocking(move || store.check_consistency(&account)).await?;
            Ok(json!(problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()))
        }
        Request::Stats => Ok(json!(store.stats())),
        Request::FailFlush => {
            store.fail_next_flush();
            tracing::warn!("chaos: the next index flush fails");
            Ok(json!({"next_flush": "fails"}))
        }
        Request::TlsKeyAdd {
            account,
            name,
            cert,
            preauth,
        } => {
            let name = name.trim().to_string();
            if name.is_empty()
                || name.len() > TlsPublicKey::MAX_NAME
                || name.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(format!(
                    "a key name is one word of at most {} bytes",
                    TlsPublicKey::MAX_NAME
                ));
            }
            let der = roost_protocols::sasl::decode_base64(&cert)
                .map_err(|_| "the certificate is not base64".to_string())?;
            let spki =
                crate::tls::public_key_of(&der).ok_or("not an X.509 certificate roost can read")?;
            let fingerprint = TlsPublicKey::fingerprint(&spki);
            let s = spki.clone();
            if let Some((owner, key)) = blocking(move || store.account_by_tls_key(&s)).await? {
                return Err(format!(
                    "this key is already registered to {} as {:?}",
                    owner.name, key.name
                ));
            }
            let key = TlsPublicKey {
                name: name.clone(),
                spki,
                preauth,
                added: crate::time::now_unix(),
            };
            AccountClient::new(&account)
                .tls_key(TlsKeyChange::Add(Box::new(key)))
                .await
                .map_err(|e| e.to_string())?;
            Ok(
                json!({"account": account, "name": name, "sha256": hex(&fingerprint), "preauth": preauth}),
            )
        }
        Request::TlsKeyList { account } => {
            let a = account.clone();
            let record = blocking(move || store.account(&a))
                .await?
                .ok_or_else(|| format!("no account named {account}"))?;
            Ok(json!(record
                .tls_public_keys
                .iter()
                .map(|k| json!({
                    "name": k.name,
                    "sha256": hex(&TlsPublicKey::fingerprint(&k.spki)),
                    "preauth": k.preauth,
                    "added": k.added,
                }))
                .collect::<Vec<_>>()))
        }
        Request::TlsKeyRm { account, name } => {
            AccountClient::new(&account)
                .tls_key(TlsKeyChange::Remove(name.clone()))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"account": account, "name": name}))
        }
        Request::SuppressionList { account } => {
            let list = blocking(move || {
                let a = account_id(&store, &account)?;
                store.suppressions(a)
            })
            .await?;
            Ok(json!(list
                .iter()
                .map(
                    |s| json!({"address": s.address, "since": rfc3339(s.since), "reason": s.reason})
                )
                .collect::<Vec<_>>()))
        }
        Request::SuppressionAdd { account, address } => {
            let shown = address.clone();
            blocking(move || {
                let a = account_id(&store, &account)?;
                store.suppress(
                    a,
                    &roost_store::Suppression {
                        address,
                        since: crate::time::now_unix(),
                        reason: "added by the admin".into(),
                    },
                )
            })
            .await?;
            Ok(json!({"address": shown, "suppressed": true}))
        }
        Request::SuppressionRm { account, address } => {
            let shown = address.clone();
            let was = blocking(move || {
                let a = account_id(&store, &account)?;
                store.unsuppress(a, &address)
            })
            .await?;
            Ok(json!({"address": shown, "suppressed": false, "was": was}))
        }
        Request::QueueList { filter, limit } => {
            let limit = limit.unwrap_or(DEFAULT_QUEUE_LIST);
            let list = blocking(move || store.queue_select(&filter, limit)).await?;
            Ok(json!(list.iter().map(queued_json).collect::<Vec<_>>()))
        }
        Request::QueueSchedule {
            filter,
            all,
            in_secs,
        } => {
            if !(0..=MAX_SCHEDULE).contains(&in_secs) {
                return Err(format!(
                    "a message is scheduled 0 to {MAX_SCHEDULE} seconds (a year) ahead"
                ));
            }
            let at = crate::time::now_unix().saturating_add(in_secs);
            let n = change_chosen(&store, filter, all, move |m| {
                // One in a worker's hands now gets its outcome there.
                if !m.in_flight {
                    m.next_attempt = at;
                }
                m.hold = false;
            })
            .await?;
            crate::queue::kick();
            Ok(json!({"messages": n, "next_attempt": rfc3339(at)}))
        }
        Request::QueueHold { filter, all, hold } => {
            let n = change_chosen(&store, filter, all, move |m| m.hold = hold).await?;
            if !hold {
                crate::queue::kick();
            }
            Ok(json!({"messages": n, "hold": hold}))
        }
        Request::QueueTransport {
            filter,
            all,
            transport,
        } => {
            if let Some(t) = &transport {
                if !ctx.transports.iter().any(|known| known == t) {
                    return Err(format!(
                        "no transport {t:?}; configured: {}",
                        ctx.transports.join(", ")
                    ));
                }
            }
            let chosen = transport.clone();
            let n =
                change_chosen(&store, filter, all, move |m| m.transport = chosen.clone()).await?;
            Ok(json!({"messages": n, "transport": transport}))
        }
        Request::QueueFail { filter, all } => {
            let ids = chosen_ids(&store, filter, all).await?;
            let (failed, busy) = crate::queue::fail(ids, "failed by the admin".into()).await?;
            Ok(json!({"messages": failed, "in_flight": busy}))
        }
        Request::QueueDrop { filter, all } => {
            let ids = chosen_ids(&store, filter, all).await?;
            // One a delivery worker has is left to it (as `fail` does):
            // it may be on its way already.
            let (n, busy) = blocking(move || {
                let (mut n, mut busy) = (0, 0);
                let why = "removed from the queue by the admin";
                for id in ids {
                    let dropped = store.queue_change(id, |m| {
                        if m.in_flight {
                            return (roost_store::QueueChange::Keep, None);
                        }
                        let before = m.clone();
                        let now = crate::time::now_unix();
                        roost_store::finish_waiting(m, roost_store::FinishedAs::Dropped, why, now);
                        (roost_store::QueueChange::Remove, Some(before))
                    })?;
                    match dropped {
                        Some(Some(m)) => {
                            n += 1;
                            if let Some(account) = m.account.as_deref() {
                                for r in &m.recipients {
                                    let event = webhooks::about(&m, &r.address, Some(why), None);
                                    webhooks::emit(&store, account, "canceled", event);
                                }
                            }
                        }
                        Some(None) => busy += 1,
                        None => {}
                    }
                }
                Ok::<_, roost_store::StoreError>((n, busy))
            })
            .await?;
            Ok(json!({"messages": n, "dropped": true, "in_flight": busy}))
        }
        Request::QueueRetired { account, limit } => {
            let limit = limit.unwrap_or(DEFAULT_QUEUE_LIST);
            let list = blocking(move || store.retired(account.as_deref(), limit)).await?;
            Ok(json!(list.iter().map(retired_json).collect::<Vec<_>>()))
        }
        Request::WebhookSet {
            account,
            url,
            authorization,
        } => {
            webhooks::check_url(&url)?;
            if authorization.as_ref().is_some_and(|a| {
                a.len() > roost_store::WebhookConfig::MAX_LEN || a.contains(['\r', '\n'])
            }) {
                return Err(format!(
                    "the authorization header must be one line of at most {} bytes",
                    roost_store::WebhookConfig::MAX_LEN
                ));
            }
            let config = roost_store::WebhookConfig { url, authorization };
            let shown = json!({"account": account, "url": config.url, "authorization": config.authorization.is_some()});
            blocking(move || {
                let a = account_id(&store, &account)?;
                store.set_webhook(a, Some(&config))
            })
            .await?;
            Ok(shown)
        }
        Request::WebhookRm { account } => {
            let shown = account.clone();
            blocking(move || {
                let a = account_id(&store, &account)?;
                store.set_webhook(a, None)
            })
            .await?;
            Ok(json!({"account": shown, "url": null}))
        }
        Request::WebhookShow { account } => {
            let shown = account.clone();
            let config = blocking(move || {
                let a = account_id(&store, &account)?;
                store.webhook_config(a)
            })
            .await?;
            Ok(
                json!({"account": shown, "url": config.as_ref().map(|c| &c.url),
                "authorization": config.is_some_and(|c| c.authorization.is_some())}),
            )
        }
        Request::WebhookPending { limit } => {
            let limit = limit.unwrap_or(DEFAULT_QUEUE_LIST);
            let calls = blocking(move || store.webhooks_pending(limit)).await?;
            Ok(json!(calls.iter().map(call_json).collect::<Vec<_>>()))
        }
        Request::WebhookHistory { account, limit } => {
            let limit = limit.unwrap_or(DEFAULT_QUEUE_LIST);
            let calls = blocking(move || store.webhook_history(account.as_deref(), limit)).await?;
            Ok(json!(calls.iter().map(call_json).collect::<Vec<_>>()))
        }
        Request::HoldRuleList => {
            let rules = blocking(move || store.hold_rules()).await?;
            Ok(json!(rules))
        }
        Request::HoldRuleAdd {
            account,
            sender_domain,
            recipient_domain,
        } => {
            let lower = |d: Option<String>| d.map(|d| d.to_ascii_lowercase());
            let rule = roost_store::HoldRule {
                id: 0,
                account,
                sender_domain: lower(sender_domain),
                recipient_domain: lower(recipient_domain),
            };
            let (rule, held) = blocking(move || store.hold_rule_add(rule)).await?;
            Ok(json!({"rule": rule, "held": held}))
        }
        Request::HoldRuleRm { id } => {
            let was = blocking(move || store.hold_rule_rm(id)).await?;
            if !was {
                return Err(format!("no hold rule {id}"));
            }
            Ok(json!({"id": id, "removed": true}))
        }
        Request::MessageInfo {
            account,
            mailbox,
            uid,
        } => {
            let found = blocking(move || {
                let not_found = |what: String| roost_store::StoreError::NotFound(what);
                let a = store
                    .account(&account)?
                    .ok_or_else(|| not_found(format!("account {account}")))?;
                let m = store
                    .mailboxes(a.id)?
                    .into_iter()
                    .find(|m| m.name == mailbox)
                    .ok_or_else(|| not_found(format!("mailbox {mailbox}")))?;
                store
                    .message(a.id, m.id, roost_protocols::imap::types::Uid(uid))?
                    .ok_or_else(|| not_found(format!("message {uid} in {mailbox}")))
            })
            .await?;
            Ok(json!({
                "uid": found.uid.0,
                "size": found.size,
                "internal_date": found.internal_date,
                "save_date": found.save_date,
                "message_id": found.message_id,
                "extra": found.extra.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            }))
        }
        Request::DmarcEvaluations { limit } => {
            let limit = limit
                .unwrap_or(DEFAULT_LOGIN_ATTEMPTS)
                .min(roost_store::DmarcEvaluation::MAX_KEPT);
            let evaluations = blocking(move || store.dmarc_evaluations(limit)).await?;
            Ok(json!(evaluations
                .iter()
                .map(|e| json!({
                    "time": utc_time(e.time_us),
                    "source_ip": e.source_ip,
                    "header_from": e.header_from,
                    "policy_domain": e.policy_domain,
                    "published": e.published,
                    "rua": e.rua,
                    "result": e.result,
                    "disposition": e.disposition,
                    "dkim_aligned": e.dkim_aligned,
                    "spf_aligned": e.spf_aligned,
                    "dkim": e.dkim.iter().map(|(d, s, r)| json!({"domain": d, "selector": s, "result": r})).collect::<Vec<_>>(),
                    "spf_domain": e.spf_domain,
                    "spf_result": e.spf_result,
                }))
                .collect::<Vec<_>>()))
        }
        Request::IncomingReports { limit } => {
            let limit = limit
                .unwrap_or(DEFAULT_LOGIN_ATTEMPTS)
                .min(roost_store::MAX_INBOUND_REPORTS);
            let reports = blocking(move || store.inbound_reports(limit)).await?;
            Ok(json!(reports
                .iter()
                .map(|r| {
                    let (kind, report) = match &r.report {
                        Report::Dmarc(d) => {
                            let mut v = json!(d);
                            v["begin"] = json!(rfc3339(d.begin));
                            v["end"] = json!(rfc3339(d.end));
                            ("dmarc", v)
                        }
                        Report::Tls(t) => ("tls", json!(t)),
                    };
                    json!({
                        "id": r.id,
                        "received": rfc3339(r.received),
                        "account": r.account,
                        "from": r.from,
                        "kind": kind,
                        "report": report,
                    })
                })
                .collect::<Vec<_>>()))
        }
        Request::AccountUniqueMailFrom { name, on } => {
            AccountClient::new(&name)
                .set_unique_mail_from(on)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"name": name, "unique_mail_from": on}))
        }
        Request::LoginAttempts { account, limit } => {
            let limit = limit
                .unwrap_or(DEFAULT_LOGIN_ATTEMPTS)
                .min(crate::logins::MAX_LOGIN_ATTEMPTS);
            let attempts =
                blocking(move || store.login_attempts(account.as_deref(), limit)).await?;
            Ok(json!(attempts
                .iter()
                .map(|a| json!({
                    "time": utc_time(a.time_us),
                    "remote": a.remote,
                    "protocol": a.protocol,
                    "mechanism": a.mechanism,
                    "username": a.username,
                    "account": a.account,
                    "result": a.result,
                }))
                .collect::<Vec<_>>()))
        }
    }
}

/// Chaos: make an actor fail as if it had panicked, so its supervisor's
/// policy is seen at work.
async fn kill(ctx: &AdminContext, name: &str, panic: bool) -> Result<Value, String> {
    let entry = ctx
        .registry
        .entries()
        .into_iter()
        .find(|e| e.name == name && e.is_alive())
        .ok_or_else(|| format!("no live actor named {name}"))?;
    if panic {
        if entry.kind != ActorKind::Account {
            return Err("--panic works on account actors only".into());
        }
        let actor: ActorRef<AccountMsg> = entry.cell.clone().into();
        actor
            .cast(AccountMsg::Panic)
            .map_err(|e| format!("cannot reach {name}: {e}"))?;
        return Ok(json!({"name": name, "how": "panic"}));
    }
    let parent = entry
        .parent
        .and_then(|p| ctx.registry.entry(p))
        .filter(|p| p.kind == ActorKind::Supervisor);
    match parent {
        Some(sup) => {
            let sup: ActorRef<SupervisorMsg> = sup.cell.into();
            fail_child(&sup, name).await?;
            Ok(json!({"name": name, "how": "failed by its supervisor"}))
        }
        None => {
            entry.cell.kill();
            Ok(json!({"name": name, "how": "killed"}))
        }
    }
}

/// An account's name as its record has it (its actor's name), from the
/// name an administrator typed.
async fn account_name(store: &Store, name: String) -> Result<String, String> {
    let s = store.clone();
    blocking(move || s.account(&name).map(|r| r.map(|r| r.name).ok_or(name)))
        .await?
        .map_err(|name| format!("no account named {name}"))
}

/// The id of the account named `name`, or an error naming it.
fn account_id(
    store: &Store,
    name: &str,
) -> Result<roost_store::AccountId, roost_store::StoreError> {
    store
        .account(name)?
        .map(|a| a.id)
        .ok_or_else(|| roost_store::StoreError::NotFound(format!("account {name}")))
}

fn queued_json(m: &roost_store::QueuedMessage) -> Value {
    json!({
        "id": m.id.0,
        "domain": m.domain,
        "sender": m.sender,
        "account": m.account,
        "recipients": m.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
        "attempts": m.attempts,
        "next_attempt": rfc3339(m.next_attempt),
        "last_error": m.last_error,
        "hold": m.hold,
        "transport": m.transport,
    })
}

/// A webhook call as the admin sees it (without its authorization).
fn call_json(c: &roost_store::WebhookCall) -> Value {
    json!({
        "id": c.id,
        "account": c.account,
        "event": c.event,
        "url": c.url,
        "created": rfc3339(c.created),
        "attempts": c.attempts,
        "next_attempt": rfc3339(c.next_attempt),
        "delivered": c.delivered,
        "payload": serde_json::from_str::<Value>(&c.payload).unwrap_or(Value::Null),
        "results": c.attempt_log.iter().map(|a| json!({"at": rfc3339(a.at), "result": a.result})).collect::<Vec<_>>(),
    })
}

fn retired_json(r: &roost_store::RetiredMessage) -> Value {
    json!({
        "id": r.id.0,
        "created": rfc3339(r.created),
        "retired": rfc3339(r.retired),
        "account": r.account,
        "sender": r.sender,
        "domain": r.domain,
        "transport": r.transport,
        "recipients": r.recipients.iter().map(|f| json!({
            "address": f.address,
            "result": f.how.as_str(),
            "at": rfc3339(f.at),
            "detail": f.detail,
        })).collect::<Vec<_>>(),
        "attempts": r.attempts.iter().map(|a| json!({
            "at": rfc3339(a.at),
            "host": a.host,
            "result": a.result,
        })).collect::<Vec<_>>(),
    })
}

/// The ids of the queued messages `filter` chooses. An operation on
/// every message needs `all`, so a forgotten option cannot drop a queue.
async fn chosen_ids(
    store: &Store,
    filter: QueueFilter,
    all: bool,
) -> Result<Vec<roost_store::QueueId>, String> {
    if filter.is_empty() && !all {
        return Err("no messages chosen: give ids or options, or --all for every message".into());
    }
    let store = store.clone();
    let chosen = blocking(move || store.queue_select(&filter, MAX_CHOSEN)).await?;
    if chosen.is_empty() {
        return Err("no queued message matches".into());
    }
    Ok(chosen.into_iter().map(|m| m.id).collect())
}

/// Changes each queued message `filter` chooses, written lazily and
/// flushed once; how many.
async fn change_chosen(
    store: &Store,
    filter: QueueFilter,
    all: bool,
    change: impl Fn(&mut roost_store::QueuedMessage) + Send + 'static,
) -> Result<usize, String> {
    let ids = chosen_ids(store, filter, all).await?;
    let store = store.clone();
    blocking(move || {
        let mut n = 0;
        for id in ids {
            let changed = store.queue_change_lazily(id, |m| {
                change(m);
                (roost_store::QueueChange::Write, ())
            })?;
            n += usize::from(changed.is_some());
        }
        store.flush()?;
        Ok::<_, roost_store::StoreError>(n)
    })
    .await
}

/// Stores a domain's new DKIM key and answers its DNS record.
async fn add_dkim(
    store: &Store,
    domain: String,
    selector: String,
    algorithm: roost_store::DkimAlgorithm,
    pkcs8: Vec<u8>,
) -> Result<Value, String> {
    let key = roost_store::DkimKey {
        selector: selector.clone(),
        algorithm,
        pkcs8,
        created: crate::time::now_unix(),
    };
    let txt = crate::smtp::dkim::dns_record(&key)?;
    let (s, d) = (store.clone(), domain.clone());
    blocking(move || s.add_dkim_key(&d, key)).await?;
    Ok(json!({"name": format!("{selector}._domainkey.{}", domain.to_lowercase()), "txt": txt}))
}
