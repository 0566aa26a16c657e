//! Assembly of the actor tree, and its orderly shutdown.
//!
//! ```text
//! root                 one-for-one
//! ├── accounts         dynamic; account:<name>, permanent
//! ├── connections      dynamic; imap:<peer>, smtp:<peer>, ..., temporary
//! ├── listeners        one per address and protocol
//! ├── logins           records login attempts
//! ├── (extra children: http from roost-webui)
//! └── admin            the admin socket
//! ```
//!
//! The binary builds [`Settings`] from its config and calls [`start`];
//! nothing here reads a config file.

use crate::account::AccountSpecs;
use crate::admin::{AdminActor, AdminArgs, AdminContext, SOCKET_NAME};
use crate::events::EventHub;
use crate::listener::{Listener, ListenerArgs, Protocol, Services};
use ractor::ActorRef;
use roost_store::Store;
use roost_supervisor::{
    ActorKind, ChildSpec, Registry, Restart, Supervisor, SupervisorArgs, SupervisorMsg,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How long shutdown waits for sessions to finish their current command.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Account actor restarts allowed within [`RESTART_WINDOW`] before the
/// accounts supervisor gives up and escalates.
pub const ACCOUNT_RESTARTS: u32 = 20;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

pub struct Settings {
    pub data_dir: PathBuf,
    pub hostname: String,
    pub listeners: Vec<(Protocol, SocketAddr)>,
    pub tls: Option<Arc<crate::tls::TlsSetup>>,
    pub max_message_size: u64,
    pub max_connections: usize,
    /// Connections one address may have open on each SMTP listener.
    pub smtp_max_connections_per_ip: usize,
    /// That limit applies to loopback clients too (by default they are
    /// exempt, so local tools and localserve are not throttled).
    pub smtp_limit_loopback: bool,
    pub dns: crate::dns::DnsSettings,
    /// DNSSEC validation, for DANE.
    pub dnssec: crate::dns::DnssecSettings,
    /// localserve: names under the local domains are answered from the
    /// store (SPF, DMARC, DKIM keys), not looked up, and queued mail never
    /// leaves the machine.
    pub local_zone: bool,
    /// The port the outgoing queue connects to on remote servers (25).
    pub queue_remote_port: u16,
    /// Seconds to wait after each failed delivery attempt.
    pub queue_retry_after: Vec<i64>,
    /// The authorities MX certificates are checked against under
    /// MTA-STS, and MTA-STS policy servers' are.
    pub queue_mx_roots: Arc<rustls::RootCertStore>,
    /// The HTTPS port of MTA-STS policy servers (443).
    pub queue_mta_sts_port: u16,
    /// The queue's transports and the routes to them.
    pub queue_transports: crate::queue::transport::Transports,
    /// Seconds messages that left the queue are kept (0: none).
    pub queue_keep_retired: i64,
    /// Seconds to wait after each failed webhook call.
    pub webhook_retry_after: Vec<i64>,
    /// How often DMARC aggregate reports go out.
    pub dmarc_report_interval: Duration,
    /// How often TLS reports go out.
    pub tls_report_interval: Duration,
    /// Certificate authorities for `https://` webhook URLs.
    pub webhook_roots: Arc<rustls::RootCertStore>,
    /// RFC 9585: how often a long IMAP command reports progress.
    pub imap_progress_interval: Duration,
}

/// What an extra child (the HTTP server) gets to work with.
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub registry: Registry,
    pub hub: EventHub,
    pub shutdown: watch::Receiver<bool>,
    /// What an in-process submission session works with (the web API's
    /// Send); `None` while the connections supervisor is not running.
    pub submission: Arc<dyn Fn() -> Option<Services> + Send + Sync>,
}

/// The running server.
pub struct Server {
    pub root: ActorRef<SupervisorMsg>,
    pub shared: Shared,
    shutdown: watch::Sender<bool>,
    root_done: tokio::task::JoinHandle<()>,
}

/// The records of the local domains and their DKIM keys, as localserve
/// answers them.
fn local_zone(store: &Store, hostname: &str) -> Result<crate::dns::LocalZone, String> {
    let domains: Vec<String> = store
        .domains()
        .map_err(|e| format!("cannot read domains: {e}"))?
        .into_iter()
        .map(|d| d.name)
        .collect();
    let mut keys = Vec::new();
    for d in &domains {
        for k in store
            .dkim_keys(d)
            .map_err(|e| format!("cannot read DKIM keys: {e}"))?
        {
            keys.push((
                d.clone(),
                k.selector.clone(),
                crate::smtp::dkim::dns_record(&k)?,
            ));
        }
    }
    Ok(crate::dns::LocalZone::new(hostname, &domains, &keys))
}

fn lookup_supervisor(name: &str) -> Result<ActorRef<SupervisorMsg>, ractor::SpawnErr> {
    ractor::registry::where_is(name)
        .map(Into::into)
        .ok_or_else(|| ractor::SpawnErr::StartupFailed(format!("{name} is not running").into()))
}

/// Starts the whole tree over an opened store. `extra` children start after
/// the listeners and before the admin socket.
pub async fn start(
    settings: Settings,
    store: Store,
    extra: impl FnOnce(Shared) -> Vec<ChildSpec>,
) -> Result<Server, String> {
    let registry = Registry::new();
    let hub = EventHub::new();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let accounts = store
        .accounts()
        .map_err(|e| format!("cannot read accounts: {e}"))?;
    let tls = settings.tls.clone();
    // One rustls configuration per kind of listener: tickets, client
    // certificates and ALPN differ between them.
    let mut acceptors = std::collections::HashMap::new();
    if let Some(setup) = &tls {
        for (protocol, _) in &settings.listeners {
            if !acceptors.contains_key(protocol) {
                let config = setup.server_config(*protocol, protocol.alpn())?;
                acceptors.insert(*protocol, tokio_rustls::TlsAcceptor::from(config));
            }
        }
    }
    let mut dns = crate::dns::Dns::new(&settings.dns).with_dnssec(&settings.dns, &settings.dnssec);
    if settings.local_zone {
        dns = dns.with_local_zone(local_zone(&store, &settings.hostname)?);
    }
    let queue_dns = dns.clone();
    let services_for = {
        let (store, hostname, shutdown, hub) = (
            store.clone(),
            settings.hostname.clone(),
            shutdown.clone(),
            hub.clone(),
        );
        let (max_message_size, max_connections, progress_interval) = (
            settings.max_message_size,
            settings.max_connections,
            settings.imap_progress_interval,
        );
        let (per_ip, limit_loopback) = (
            settings.smtp_max_connections_per_ip,
            settings.smtp_limit_loopback,
        );
        move |connections: ActorRef<SupervisorMsg>, protocol: Protocol| Services {
            store: store.clone(),
            hostname: hostname.clone(),
            max_message_size,
            max_connections,
            max_connections_per_ip: protocol.is_smtp().then_some(per_ip),
            limit_loopback,
            progress_interval,
            shutdown: shutdown.clone(),
            tls: acceptors.get(&protocol).cloned(),
            tls_setup: tls.clone(),
            connections,
            dns: dns.clone(),
            hub: hub.clone(),
        }
    };
    let specs = AccountSpecs::new(store.clone(), registry.clone(), hub.clone());
    store.set_keep_retired(settings.queue_keep_retired);
    let admin_ctx_for = {
        let (store, registry, hub, specs) =
            (store.clone(), registry.clone(), hub.clone(), specs.clone());
        let transport_names = settings.queue_transports.names();
        move |accounts: ActorRef<SupervisorMsg>, imap: Services| AdminContext {
            store: store.clone(),
            registry: registry.clone(),
            hub: hub.clone(),
            accounts,
            specs: specs.clone(),
            imap,
            transports: transport_names.clone(),
        }
    };

    // The accounts supervisor starts one permanent child per account, read
    // from the store on every (re)start, so it always knows them all.
    let (reg2, specs2) = (registry.clone(), specs.clone());
    let accounts_spec = ChildSpec::supervisor("accounts", Restart::Permanent, move || {
        let mut args = SupervisorArgs::new("accounts", reg2.clone())
            .intensity(ACCOUNT_RESTARTS, RESTART_WINDOW)
            .backoff(Duration::from_millis(50), Duration::from_secs(5));
        match specs2.all() {
            Ok(children) => args.children = children,
            Err(e) => warn!(error = %e, "cannot read accounts; starting none"),
        }
        args
    });

    let reg3 = registry.clone();
    let connections_spec = ChildSpec::supervisor("connections", Restart::Permanent, move || {
        SupervisorArgs::new("connections", reg3.clone()).intensity(1000, Duration::from_secs(1))
    });

    let mut listener_children = Vec::new();
    for (protocol, addr) in settings.listeners.iter().copied() {
        let services_for = services_for.clone();
        listener_children.push(ChildSpec::new(
            format!("{}:{addr}", protocol.name()),
            ActorKind::Listener,
            Restart::Permanent,
            move |sup| {
                let services_for = services_for.clone();
                async move {
                    let connections = lookup_supervisor("connections")?;
                    let args = ListenerArgs {
                        protocol,
                        addr,
                        services: services_for(connections, protocol),
                    };
                    let name = format!("listener:{}:{addr}", protocol.name());
                    let (r, _) =
                        ractor::Actor::spawn_linked(Some(name), Listener, args, sup).await?;
                    Ok(r.get_cell())
                }
            },
        ));
    }
    let reg4 = registry.clone();
    let listeners_args = std::sync::Mutex::new(listener_children);
    let listeners_spec = ChildSpec::supervisor("listeners", Restart::Permanent, move || {
        let mut args = SupervisorArgs::new("listeners", reg4.clone())
            .intensity(5, Duration::from_secs(10))
            .backoff(Duration::from_millis(100), Duration::from_secs(2));
        if let Ok(children) = listeners_args.lock() {
            for c in children.iter() {
                args = args.child(c.clone());
            }
        }
        args
    });

    let socket = settings.data_dir.join(SOCKET_NAME);
    let submission_services = services_for.clone();
    let shared = Shared {
        store: store.clone(),
        registry: registry.clone(),
        hub: hub.clone(),
        shutdown: shutdown.clone(),
        submission: Arc::new(move || {
            let connections = lookup_supervisor("connections").ok()?;
            Some(submission_services(connections, Protocol::Submission))
        }),
    };
    let admin_services = services_for.clone();
    let admin_spec = ChildSpec::new("admin", ActorKind::Admin, Restart::Permanent, move |sup| {
        let (socket, admin_ctx_for) = (socket.clone(), admin_ctx_for.clone());
        let services_for = admin_services.clone();
        async move {
            let accounts = lookup_supervisor("accounts")?;
            let connections = lookup_supervisor("connections")?;
            let args = AdminArgs {
                path: socket,
                ctx: admin_ctx_for(accounts, services_for(connections, Protocol::Imap)),
            };
            let (r, _) =
                ractor::Actor::spawn_linked(Some("admin".into()), AdminActor, args, sup).await?;
            Ok(r.get_cell())
        }
    });

    let logins_store = store.clone();
    let logins_spec = ChildSpec::new(
        crate::logins::LOGINS_ACTOR,
        ActorKind::Other,
        Restart::Permanent,
        move |sup| {
            let store = logins_store.clone();
            async move {
                let (r, _) = ractor::Actor::spawn_linked(
                    Some(crate::logins::LOGINS_ACTOR.into()),
                    crate::logins::Logins,
                    store,
                    sup,
                )
                .await?;
                Ok(r.get_cell())
            }
        },
    );

    let queue_settings = crate::queue::QueueSettings {
        store: store.clone(),
        dns: queue_dns.clone(),
        registry: registry.clone(),
        hostname: settings.hostname.clone(),
        remote_port: settings.queue_remote_port,
        localserve: settings.local_zone,
        retry_after: Arc::new(settings.queue_retry_after.clone()),
        transports: Arc::new(settings.queue_transports.clone()),
        mx_roots: settings.queue_mx_roots.clone(),
        mta_sts_port: settings.queue_mta_sts_port,
    };
    let queue_spec = ChildSpec::new(
        crate::queue::QUEUE_ACTOR,
        ActorKind::Queue,
        Restart::Permanent,
        move |sup| {
            let settings = queue_settings.clone();
            async move {
                let (r, _) = ractor::Actor::spawn_linked(
                    Some(crate::queue::QUEUE_ACTOR.into()),
                    crate::queue::Scheduler,
                    settings,
                    sup,
                )
                .await?;
                Ok(r.get_cell())
            }
        },
    );

    let webhook_settings = crate::queue::webhooks::WebhookSettings {
        store: store.clone(),
        retry_after: Arc::new(settings.webhook_retry_after.clone()),
        roots: settings.webhook_roots.clone(),
    };
    let webhooks_spec = ChildSpec::new(
        crate::queue::webhooks::WEBHOOKS_ACTOR,
        ActorKind::Queue,
        Restart::Permanent,
        move |sup| {
            let settings = webhook_settings.clone();
            async move {
                let (r, _) = ractor::Actor::spawn_linked(
                    Some(crate::queue::webhooks::WEBHOOKS_ACTOR.into()),
                    crate::queue::webhooks::Webhooks,
                    settings,
                    sup,
                )
                .await?;
                Ok(r.get_cell())
            }
        },
    );

    let report_settings = crate::reports::ReportSettings {
        store: store.clone(),
        dns: queue_dns,
        hostname: settings.hostname.clone(),
        dmarc_interval: settings.dmarc_report_interval,
        tls_interval: settings.tls_report_interval,
        roots: settings.queue_mx_roots.clone(),
    };
    let reporter = |name: &'static str, kind: roost_store::ReportData| {
        let report_settings = report_settings.clone();
        ChildSpec::new(name, ActorKind::Other, Restart::Permanent, move |sup| {
            let settings = report_settings.clone();
            async move {
                let (r, _) = ractor::Actor::spawn_linked(
                    Some(name.into()),
                    crate::reports::Reporter,
                    (settings, kind),
                    sup,
                )
                .await?;
                Ok(r.get_cell())
            }
        })
    };
    let dmarc_reports = reporter(
        crate::reports::DMARC_REPORTER,
        roost_store::ReportData::Dmarc,
    );
    let tls_reports = reporter(crate::reports::TLS_REPORTER, roost_store::ReportData::Tls);

    let mut root = SupervisorArgs::new("root", registry.clone())
        .intensity(5, Duration::from_secs(30))
        .backoff(Duration::from_millis(100), Duration::from_secs(5))
        .child(accounts_spec)
        .child(connections_spec)
        .child(logins_spec)
        .child(queue_spec)
        .child(webhooks_spec)
        .child(dmarc_reports)
        .child(tls_reports)
        .child(listeners_spec);
    for c in extra(shared.clone()) {
        root = root.child(c);
    }
    root = root.child(admin_spec);
    let (root, root_done) = Supervisor::start(root, None)
        .await
        .map_err(|e| format!("the actor tree did not start: {e}"))?;
    info!(accounts = accounts.len(), "roost is up");
    Ok(Server {
        root,
        shared,
        shutdown: shutdown_tx,
        root_done,
    })
}

impl Server {
    /// Listeners stop accepting, sessions finish their current command and
    /// say goodbye (bounded by [`SHUTDOWN_GRACE`]), the tree stops, and the
    /// store is flushed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        loop {
            let open = self
                .shared
                .registry
                .entries()
                .iter()
                .filter(|e| e.kind == ActorKind::Session && e.is_alive())
                .count();
            if open == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(open, "sessions still open after the grace period");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.root.stop(Some("shutdown".into()));
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.root_done).await;
        if let Err(e) = self.shared.store.flush() {
            warn!(error = %e, "final store flush failed");
        }
        info!("roost stopped");
    }

    /// Resolves when the root supervisor has stopped by itself (escalation
    /// past its own restart intensity): the process should exit non-zero.
    pub fn root_stopped(&mut self) -> &mut tokio::task::JoinHandle<()> {
        &mut self.root_done
    }
}
