//! `roost serve` and `roost localserve`: start the tree, wait for SIGTERM or
//! Ctrl-C, shut down in order, exit 0.

use crate::config::Config;
use anyhow::{anyhow, Context, Result};
use roost_actors::listener::Protocol;
use roost_actors::system::{self, Settings};
use roost_store::Store;
use roost_webui::HttpSettings;
use std::process::ExitCode;
use tracing::{error, info};

/// What `localserve` creates on first start.
pub const LOCAL_DOMAIN: &str = "localhost";
pub const LOCAL_ACCOUNT: &str = "roost@localhost";
pub const LOCAL_PASSWORD: &str = "roostroost";

/// Allocations at least this large get their own mapping, which goes back
/// to the system when freed. glibc's default threshold rises after the
/// first such free (up to 32 MiB), after which each argon2 verification's
/// ~19 MiB lands in a thread's heap arena and stays resident: 300 idle
/// logins then held ~150 MiB, most of it freed argon2 memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// How often the server looks whether the store has failed a flush.
pub const STORE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves once an index flush has failed, with why: the store takes no
/// more changes until it is opened again, so the server stops.
async fn store_failed(store: &Store) -> String {
    loop {
        if let Some(why) = store.failure() {
            return why;
        }
        tokio::time::sleep(STORE_CHECK_INTERVAL).await;
    }
}

pub fn run(config: Config, log_json: bool, localserve: bool) -> Result<ExitCode> {
    return_large_allocations();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("roost")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, log_json, localserve))
}

async fn serve(config: Config, log_json: bool, localserve: bool) -> Result<ExitCode> {
    let _telemetry = crate::telemetry::init(
        &config.log_level,
        log_json || config.log_json,
        config.otlp_endpoint.as_deref(),
    )?;
    private_files();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let store = Store::open(&config.data_dir).map_err(|e| {
        anyhow!(
            "cannot open the store in {}: {e}",
            config.data_dir.display()
        )
    })?;
    if localserve {
        seed_localserve(&store)?;
    }
    let tls = match &config.tls {
        Some(tls) => Some(crate::tls::setup(tls, &config.data_dir)?),
        None => None,
    };
    let l = &config.listen;
    let mut listeners = Vec::new();
    for (protocol, addrs) in [
        (Protocol::Smtp, &l.smtp),
        (Protocol::Submission, &l.submission),
        (Protocol::Submissions, &l.submissions),
        (Protocol::Imap, &l.imap),
        (Protocol::Imaps, &l.imaps),
        (Protocol::Https, &l.https),
    ] {
        listeners.extend(addrs.iter().map(|a| (protocol, *a)));
    }
    let http = HttpSettings {
        http: l.http.clone(),
    };
    let settings = Settings {
        data_dir: config.data_dir.clone(),
        hostname: config.hostname.clone(),
        listeners,
        tls,
        max_message_size: config.max_message_size,
        max_connections: config.max_connections,
        smtp_max_connections_per_ip: config.smtp_max_connections_per_ip,
        smtp_limit_loopback: config.smtp_limit_loopback,
        dns: config.dns.clone(),
        dnssec: config.dnssec.clone(),
        local_zone: localserve,
        queue_remote_port: config.queue_remote_port,
        queue_retry_after: config.queue_retry_after.clone(),
        queue_keep_retired: config.queue_keep_retired,
        queue_transports: config.queue_transports.clone(),
        queue_mx_roots: config.queue_mx_roots.clone(),
        queue_mta_sts_port: config.queue_mta_sts_port,
        webhook_retry_after: config.webhook_retry_after.clone(),
        dmarc_report_interval: config.dmarc_report_interval,
        tls_report_interval: config.tls_report_interval,
        webhook_roots: config.webhook_roots.clone(),
        imap_progress_interval: config.imap_progress_interval,
    };
    let has_http = !http.http.is_empty() || !l.https.is_empty();
    let watched = store.clone();
    let mut server = system::start(settings, store, move |shared| {
        if has_http {
            vec![roost_webui::child_spec(shared, http)]
        } else {
            Vec::new()
        }
    })
    .await
    .map_err(|e| anyhow!(e))?;
    if localserve {
        print_banner(&config);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let status = tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        _ = term.recv() => ExitCode::SUCCESS,
        _ = server.root_stopped() => {
            error!("the root supervisor stopped: too many failures");
            return Ok(ExitCode::FAILURE);
        }
        why = store_failed(&watched) => {
            // Sessions are told goodbye; nothing more can be made durable
            // until the store is opened again, by the next start.
            error!(error = %why, "the store failed a flush: stopping, to be started again");
            ExitCode::FAILURE
        }
    };
    info!("shutting down");
    server.shutdown().await;
    Ok(status)
}

/// The selector of the DKIM key localserve makes for its domain.
pub const LOCAL_DKIM_SELECTOR: &str = "roost";

fn seed_localserve(store: &Store) -> Result<()> {
    let fresh = store.domains().map_err(|e| anyhow!("{e}"))?.is_empty();
    if fresh {
        seed_local_account(store)?;
    }
    // Mail submitted here is signed, and the MX port's checks find the
    // key in localserve's own DNS answers.
    let has_domain = store
        .domains()
        .map_err(|e| anyhow!("{e}"))?
        .iter()
        .any(|d| d.name == LOCAL_DOMAIN);
    if has_domain
        && store
            .dkim_keys(LOCAL_DOMAIN)
            .map_err(|e| anyhow!("{e}"))?
            .is_empty()
    {
        let pkcs8 = roost_actors::smtp::dkim::generate_ed25519().map_err(|e| anyhow!(e))?;
        store
            .add_dkim_key(
                LOCAL_DOMAIN,
                roost_store::DkimKey {
                    selector: LOCAL_DKIM_SELECTOR.into(),
                    algorithm: roost_store::DkimAlgorithm::Ed25519,
                    pkcs8,
                    created: roost_actors::time::now_unix(),
                },
            )
            .map_err(|e| anyhow!("making the DKIM key of {LOCAL_DOMAIN}: {e}"))?;
    }
    Ok(())
}

fn seed_local_account(store: &Store) -> Result<()> {
    store
        .add_domain(LOCAL_DOMAIN)
        .map_err(|e| anyhow!("creating domain {LOCAL_DOMAIN}: {e}"))?;
    if store
        .account(LOCAL_ACCOUNT)
        .map_err(|e| anyhow!("{e}"))?
        .is_none()
    {
        store
            .create_account(LOCAL_ACCOUNT, LOCAL_PASSWORD, None)
            .map_err(|e| anyhow!("creating account {LOCAL_ACCOUNT}: {e}"))?;
    }
    Ok(())
}

fn print_banner(config: &Config) {
    let l = &config.listen;
    let first =
        |v: &Vec<std::net::SocketAddr>| v.first().map(|a| a.to_string()).unwrap_or_default();
    println!(
        "roost localserve is running; data in {}",
        config.data_dir.display()
    );
    println!("  SMTP          {}", first(&l.smtp));
    println!("  submission    {}", first(&l.submission));
    println!(
        "  submissions   {}  (TLS, self-signed)",
        first(&l.submissions)
    );
    println!("  IMAP          {}", first(&l.imap));
    println!("  IMAPS         {}  (TLS, self-signed)", first(&l.imaps));
    println!("  HTTP          http://{}/", first(&l.http));
    println!("  HTTPS         https://{}/", first(&l.https));
    println!("  account       {LOCAL_ACCOUNT}  password {LOCAL_PASSWORD}");
    println!(
        "  actor tree    roost admin --dir {} tree",
        config.data_dir.display()
    );
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (mallopt(3)); a
/// fixed value also turns off the dynamic raising described there.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn return_large_allocations() {
    // SAFETY: mallopt(3) only changes allocator tunables; it takes plain
    // integers and is called before any thread of ours exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Other allocators return large frees on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_allocations() {}

/// Everything roost creates (message files, the index, the admin socket) is
/// for its own user only: with umask 077 the admin socket is never, even
/// for a moment before its chmod, open to other local users.
#[allow(unsafe_code)]
fn private_files() {
    // SAFETY: umask(2) only sets the process's file mode mask; it takes
    // and returns plain integers and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}
