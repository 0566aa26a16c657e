//! Password checks shared by the IMAP and SMTP sessions.
//!
//! Usernames are normalised (RFC 8265 via `roost_protocols::precis`) and
//! looked up by primary or extra address; the argon2id check runs on the
//! blocking pool so a login never stalls other sessions. A failed attempt
//! costs the client [`AUTH_FAILURE_DELAY`], and a session gets
//! [`MAX_AUTH_FAILURES`] tries before it is closed. Across sessions,
//! failures are counted per source address ([`Throttle`]): the delay grows,
//! then the source is refused for a while; good logins are never slowed.
//! Every attempt is recorded (`crate::logins`).
//!
//! Repeat logins are cheap: a successful verification is remembered in
//! memory (never on disk), under a key hashed from a per-process random
//! secret, the username, the account's stored argon2 string and the
//! password, for at most [`LOGIN_CACHE_AGE`] and [`LOGIN_CACHE_ENTRIES`]
//! entries. A changed password changes the stored string, so its old
//! entries never match again; a disabled account is refused from its
//! record, read at every login; failures are never remembered.
//!
//! SASL exchanges ([`roost_protocols::sasl::Exchange`]) are driven here
//! too, for both protocols: [`sasl_start`] and [`sasl_respond`] run the
//! exchange until it needs the client again, looking up stored secrets
//! off the async workers.

use roost_protocols::precis::{normalize_username, prepare_password};
use roost_protocols::sasl::{
    decode_initial, encode_base64, ChannelBinding, Exchange, Mechanism, SaslError, ScramHash,
    ScramSecret, Secret, SecretKind, Step,
};
use roost_store::{LoginAttempt, Store, SCRAM_ITERATIONS};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Failed authentications one session may make before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;
/// The pause after a failed authentication, to slow password guessing.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Successful verifications remembered at most.
pub const LOGIN_CACHE_ENTRIES: usize = 10_000;
/// How long a remembered verification stands.
pub const LOGIN_CACHE_AGE: Duration = Duration::from_secs(15 * 60);

/// Remembered successful verifications; see the module documentation.
struct LoginCache {
    secret: Vec<u8>,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    hits: AtomicU64,
}

fn cache() -> &'static LoginCache {
    static CACHE: OnceLock<LoginCache> = OnceLock::new();
    CACHE.get_or_init(|| LoginCache {
        // Without the system's random source, a fresh secret per process
        // from the clock and address space is still unguessable enough for
        // an in-memory key; it is never stored or sent.
        secret: roost_store::random_bytes(32).unwrap_or_else(|_| {
            let mut h = Sha256::new();
            h.update(format!("{:?}{:p}", Instant::now(), &h).as_bytes());
            h.finalize().to_vec()
        }),
        entries: Mutex::new(HashMap::new()),
        hits: AtomicU64::new(0),
    })
}

impl LoginCache {
    fn key(&self, username: &str, stored: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            self.secret.as_slice(),
            username.as_bytes(),
            stored.as_bytes(),
            password.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn knows(&self, key: &[u8; 32], now: Instant) -> bool {
        let known = self
            .entries()
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < LOGIN_CACHE_AGE);
        if known {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        known
    }

    fn remember(&self, key: [u8; 32], now: Instant) {
        let mut entries = self.entries();
        if entries.len() >= LOGIN_CACHE_ENTRIES {
            entries.retain(|_, at| now.duration_since(*at) < LOGIN_CACHE_AGE);
        }
        if entries.len() >= LOGIN_CACHE_ENTRIES {
            // Still full of fresh entries: the oldest goes.
            if let Some(oldest) = entries.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, now);
    }
}

/// How many logins were answered from remembered verifications since the
/// process started.
pub fn login_cache_hits() -> u64 {
    cache().hits.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("invalid credentials")]
    Invalid,
    #[error("login disabled: {0}")]
    Disabled(String),
    #[error("too many failed logins from this address")]
    Throttled,
    #[error("temporary failure: {0}")]
    Temporary(String),
}

impl AuthError {
    /// The word a login-attempt record uses for this outcome.
    fn record_word(&self) -> &'static str {
        match self {
            AuthError::Invalid => "invalid",
            AuthError::Disabled(_) => "disabled",
            AuthError::Throttled => "throttled",
            AuthError::Temporary(_) => "temporary",
        }
    }
}

/// Who is logging in, and over what: for throttling and for the
/// login-attempt records.
#[derive(Debug, Clone, Copy)]
pub struct LoginContext {
    pub remote: SocketAddr,
    /// `imap`, `submission`, `http`, ...
    pub protocol: &'static str,
}

impl LoginContext {
    pub fn of(peer: &crate::conn::Peer, protocol: crate::listener::Protocol) -> LoginContext {
        LoginContext {
            remote: peer.addr,
            protocol: protocol.name(),
        }
    }

    fn source(&self) -> Source {
        Source::of(self.remote.ip())
    }

    /// Reports one attempt to the recorder (`crate::logins`), never the
    /// password.
    fn record(&self, mechanism: &str, username: &str, account: Option<String>, result: &str) {
        crate::logins::record(LoginAttempt {
            time_us: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            remote: self.remote.to_string(),
            protocol: self.protocol.to_string(),
            mechanism: mechanism.to_string(),
            username: username.chars().take(LoginAttempt::MAX_USERNAME).collect(),
            account,
            result: result.to_string(),
        });
    }
}

/// Checks `username`/`password` (IMAP LOGIN, PLAIN, LOGIN, the web); on
/// success returns the account's name. Failures are throttled per source
/// ([`Throttle`]); from a source that is refused, only a remembered
/// verification passes. Every attempt is recorded as `mechanism`.
pub async fn verify_password(
    store: &Store,
    ctx: &LoginContext,
    mechanism: &str,
    username: &str,
    password: &str,
) -> Result<String, AuthError> {
    let source = ctx.source();
    let (account, result) = match throttle().admit_waiting(source, true).await {
        Admission::Refused | Admission::Wait => (None, Err(AuthError::Throttled)),
        Admission::CachedOnly => check(store, username, password, true).await,
        Admission::Check => {
            let (account, result) = check(store, username, password, false).await;
            if result == Err(AuthError::Invalid) {
                tokio::time::sleep(throttle().failed(source, true, Instant::now())).await;
            } else {
                throttle().succeeded(source);
            }
            (account, result)
        }
    };
    if result == Err(AuthError::Throttled) {
        // A refused source waits too, so a session cannot make refusals
        // a fast oracle.
        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
    }
    let word = result
        .as_ref()
        .map_or_else(AuthError::record_word, |_| "ok");
    ctx.record(mechanism, username, account, word);
    result
}

/// The account a username names (if any) and the outcome. With
/// `cached_only`, a password is accepted only from the login cache.
/// argon2id runs on the blocking pool, at most
/// [`MAX_CONCURRENT_VERIFICATIONS`] at once.
async fn check(
    store: &Store,
    username: &str,
    password: &str,
    cached_only: bool,
) -> (Option<String>, Result<String, AuthError>) {
    let Ok(username) = normalize_username(username) else {
        return (None, Err(AuthError::Invalid));
    };
    let Ok(password) = prepare_password(password) else {
        return (None, Err(AuthError::Invalid));
    };
    let temporary = |e: String| (None, Err(AuthError::Temporary(e)));
    let s = store.clone();
    let (u, p) = (username.clone(), password.clone());
    let found = tokio::task::spawn_blocking(move || {
        let record = s.account_by_address(&u)?;
        Ok::<_, roost_store::StoreError>(record.map(|r| {
            let key = cache().key(&u, &r.password.argon2id, &p);
            let known = cache().knows(&key, Instant::now());
            (r, key, known)
        }))
    })
    .await;
    let (record, key, known) = match found {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) if cached_only => return (None, Err(AuthError::Throttled)),
        Ok(Ok(None)) => return (None, Err(AuthError::Invalid)),
        Ok(Err(e)) => return temporary(e.to_string()),
        Err(e) => return temporary(e.to_string()),
    };
    let name = Some(record.name.clone());
    if !known {
        if cached_only {
            return (name, Err(AuthError::Throttled));
        }
        let Ok(_permit) = verifications().acquire().await else {
            return temporary("verifications closed".into());
        };
        let secrets = record.password.clone();
        let verified =
            tokio::task::spawn_blocking(move || secrets.verify_password(&password)).await;
        match verified {
            Ok(true) => cache().remember(key, Instant::now()),
            Ok(false) => return (name, Err(AuthError::Invalid)),
            Err(e) => return temporary(e.to_string()),
        }
    }
    if let Some(why) = record.disabled {
        return (name, Err(AuthError::Disabled(why)));
    }
    (name, Ok(record.name))
}

/// argon2id verifications running at once, at most: each takes a core
/// and 19 MiB for about 10 ms; more would only queue on the blocking pool
/// and hold its memory.
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 4;

fn verifications() -> &'static tokio::sync::Semaphore {
    static PERMITS: tokio::sync::Semaphore =
        tokio::sync::Semaphore::const_new(MAX_CONCURRENT_VERIFICATIONS);
    &PERMITS
}

/// Failed authentications from one source answered with the plain
/// [`AUTH_FAILURE_DELAY`]; each one after doubles the delay.
pub const FREE_FAILURES: u32 = 5;
/// The longest delay after a failure: well inside a client's 30-second
/// read timeout.
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(8);
/// Failures from one source after which its further attempts are refused
/// until [`FAILURE_WINDOW`] has passed since its last failure. Attempts in
/// progress hold a place too: while recent failures and attempts in
/// progress fill this number, a new attempt waits for one to end (up to
/// [`ADMISSION_WAIT`]), so parallel connections get no more tries than
/// one, and a burst of good logins from one address (a NAT, a client
/// opening its connections at once) waits instead of being refused.
pub const REFUSE_AFTER_FAILURES: u32 = 10;
/// Longest an attempt waits for a place among its source's attempts in
/// progress before it is refused as throttled.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(20);
/// While a source is refused, this many of its logins may still be
/// checked against remembered good logins (so a user behind the same
/// address whose client logged in lately still gets in); past it, every
/// attempt is refused unchecked until the window ends.
pub const REFUSED_CACHED_CHECKS: u32 = 5;
/// How long a source's failures count against it.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Sources whose failures are tracked at most.
pub const MAX_TRACKED_SOURCES: usize = 100_000;
/// How often, at most, a full table is swept for sources whose window
/// has passed; between sweeps a new source takes an arbitrary one's
/// place, so a flood of new addresses costs O(1) each.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Where failures are counted: an IPv4 address, or an IPv6 /64 (one
/// site's or one host's share of addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    V6(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

/// The delay after a source's `n`th recent failure.
pub fn failure_delay(n: u32) -> Duration {
    if n <= FREE_FAILURES {
        return AUTH_FAILURE_DELAY;
    }
    let doublings = (n - FREE_FAILURES).min(16);
    (AUTH_FAILURE_DELAY * 2u32.pow(doublings)).min(MAX_FAILURE_DELAY)
}

/// What a source may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the credentials; the attempt holds a place until
    /// [`Throttle::succeeded`] or [`Throttle::failed`] ends it.
    Check,
    /// Refused, but a remembered good login may pass.
    CachedOnly,
    /// Recent failures and attempts in progress leave no place now: wait
    /// for one to end and ask again.
    Wait,
    Refused,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Failures within the window.
    count: u32,
    /// Admitted attempts not yet ended.
    inflight: u32,
    last: Instant,
    cached_checks: u32,
}

/// Recent failures per source; see the constants above. Successful
/// logins are never delayed and never counted.
pub struct Throttle {
    state: Mutex<ThrottleState>,
    /// Woken whenever an admitted attempt ends.
    ended: tokio::sync::Notify,
}

struct ThrottleState {
    sources: HashMap<Source, Failures>,
    swept: Option<Instant>,
}

fn throttle() -> &'static Throttle {
    static THROTTLE: OnceLock<Throttle> = OnceLock::new();
    THROTTLE.get_or_init(Throttle::new)
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            state: Mutex::new(ThrottleState {
                sources: HashMap::new(),
                swept: None,
            }),
            ended: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An attempt from `source` begins. `cached` says whether the
    /// mechanism can be answered from remembered good logins (password
    /// mechanisms); SCRAM and CRAM-MD5 cannot.
    pub fn admit(&self, source: Source, cached: bool, now: Instant) -> Admission {
        let mut state = self.state();
        let entry = state.entry(source, now);
        if entry.count >= REFUSE_AFTER_FAILURES {
            if cached && entry.cached_checks < REFUSED_CACHED_CHECKS {
                entry.cached_checks += 1;
                return Admission::CachedOnly;
            }
            return Admission::Refused;
        }
        if entry.count + entry.inflight >= REFUSE_AFTER_FAILURES {
            return Admission::Wait;
        }
        entry.inflight += 1;
        Admission::Check
    }

    /// [`Throttle::admit`], waiting (up to [`ADMISSION_WAIT`]) while the
    /// source has no place; never answers [`Admission::Wait`].
    pub async fn admit_waiting(&self, source: Source, cached: bool) -> Admission {
        let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
        loop {
            // Made before asking, so an attempt ending in between still
            // wakes this one.
            let ended = self.ended.notified();
            match self.admit(source, cached, Instant::now()) {
                Admission::Wait => {
                    if tokio::time::timeout_at(deadline, ended).await.is_err() {
                        return Admission::Refused;
                    }
                }
                other => return other,
            }
        }
    }

    /// An admitted attempt succeeded (or failed for a reason other than
    /// its credentials): its place is free and nothing is counted.
    pub fn succeeded(&self, source: Source) {
        if let Some(e) = self.state().sources.get_mut(&source) {
            e.inflight = e.inflight.saturating_sub(1);
        }
        self.ended.notify_waiters();
    }

    /// An attempt failed on its credentials (`admitted` if it held a
    /// place): one more failure; the delay it earns.
    pub fn failed(&self, source: Source, admitted: bool, now: Instant) -> Duration {
        let count = {
            let mut state = self.state();
            let e = state.entry(source, now);
            if admitted {
                e.inflight = e.inflight.saturating_sub(1);
            }
            e.count = e.count.saturating_add(1);
            e.last = now;
            e.count
        };
        self.ended.notify_waiters();
        failure_delay(count)
    }

    pub fn tracked(&self) -> usize {
        self.state().sources.len()
    }
}

impl ThrottleState {
    /// The entry of `source`, made (within the table's bound) or reset
    /// when its window has passed.
    fn entry(&mut self, source: Source, now: Instant) -> &mut Failures {
        if self.sources.len() >= MAX_TRACKED_SOURCES && !self.sources.contains_key(&source) {
            if self
                .swept
                .is_none_or(|t| now.duration_since(t) >= SWEEP_INTERVAL)
            {
                self.swept = Some(now);
                self.sources
                    .retain(|_, e| now.duration_since(e.last) < FAILURE_WINDOW);
            }
            if self.sources.len() >= MAX_TRACKED_SOURCES {
                if let Some(k) = self.sources.keys().next().copied() {
                    self.sources.remove(&k);
                }
            }
        }
        let entry = self.sources.entry(source).or_insert(Failures {
            count: 0,
            inflight: 0,
            last: now,
            cached_checks: 0,
        });
        if now.duration_since(entry.last) >= FAILURE_WINDOW {
            *entry = Failures {
                count: 0,
                last: now,
                cached_checks: 0,
                ..*entry
            };
        }
        entry
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

/// Random octets in a SCRAM server nonce or CRAM-MD5 challenge; 18 make
/// 24 base64 characters without padding.
pub const SASL_NONCE_LEN: usize = 18;

/// The mechanisms a connection offers: those sending the password only
/// under TLS or from this machine, -PLUS only where TLS offers channel
/// binding, EXTERNAL only where the client sent a certificate.
pub fn offered_mechanisms(
    tls_or_local: bool,
    binding: &ChannelBinding,
    client_key: bool,
) -> Vec<Mechanism> {
    Mechanism::ALL
        .into_iter()
        .filter(|m| match m {
            Mechanism::Plain | Mechanism::Login => tls_or_local,
            Mechanism::Scram { plus, .. } => !plus || binding.any(),
            Mechanism::CramMd5 => true,
            Mechanism::External => client_key,
        })
        .collect()
}

/// The mechanisms `peer`'s connection offers (see [`offered_mechanisms`]).
pub fn offered_to(peer: &crate::conn::Peer) -> Vec<Mechanism> {
    offered_mechanisms(
        peer.tls_or_local(),
        &peer.binding,
        peer.client_key.is_some(),
    )
}

/// The account a TLS client key is registered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAccount {
    pub account: String,
    pub id: roost_store::AccountId,
    /// IMAP sessions start logged in.
    pub preauth: bool,
    /// The account's logins are disabled, with this message.
    pub disabled: Option<String>,
}

/// Looks up the account of a client's TLS key, off the async workers.
pub async fn account_for_key(store: &Store, spki: &[u8]) -> Option<KeyAccount> {
    let (store, spki) = (store.clone(), spki.to_vec());
    let found = tokio::task::spawn_blocking(move || store.account_by_tls_key(&spki)).await;
    match found {
        Ok(Ok(Some((account, key)))) => Some(KeyAccount {
            account: account.name,
            id: account.id,
            preauth: key.preauth,
            disabled: account.disabled,
        }),
        _ => None,
    }
}

/// Records a login made by a TLS client key alone (IMAP PREAUTH, a
/// submission session that needs no AUTH).
pub fn record_key_login(ctx: &LoginContext, how: &str, key: &KeyAccount) {
    let result = if key.disabled.is_some() {
        "disabled"
    } else {
        "ok"
    };
    ctx.record(how, &key.account, Some(key.account.clone()), result);
}

/// A new exchange for `mechanism` on a connection offering `binding`.
pub fn new_exchange(mechanism: Mechanism, binding: &ChannelBinding, hostname: &str) -> Exchange {
    let nonce = roost_store::random_bytes(SASL_NONCE_LEN).unwrap_or_else(|_| {
        // Without the system's random source: a one-off hash of the
        // process secret and the moment, unpredictable from outside.
        let mut h = Sha256::new();
        h.update(&cache().secret);
        h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        h.finalize()[..SASL_NONCE_LEN].to_vec()
    });
    Exchange::new(mechanism, binding.clone(), nonce, hostname)
}

/// Where a SASL exchange stands after the session's last input.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslOutcome {
    /// Send this base64 challenge; the answer goes to [`sasl_respond`].
    Challenge(String),
    /// Authenticated as this account.
    Success(String),
    Failed(SaslFailure),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SaslFailure {
    /// The connection's client certificate belongs to another account.
    OtherAccount,
    /// Too many failures from this source lately.
    Throttled,
    /// Broken framing or a cancelled exchange: IMAP `BAD`, SMTP 501.
    Protocol(SaslError),
    /// Wrong credentials or a malformed message, after
    /// [`AUTH_FAILURE_DELAY`].
    Invalid,
    /// The account has no stored secret for this mechanism (its password
    /// predates it): refused at once, without the delay.
    NoSecret,
    Disabled(String),
    Temporary(String),
}

/// One SASL exchange of a session, with what its records need.
pub struct SaslRun {
    pub exchange: Exchange,
    ctx: LoginContext,
    /// The account of the connection's TLS client key: EXTERNAL logs in
    /// to it, and any other mechanism must name it too.
    key_account: Option<String>,
    /// The identity the client gave, once it has.
    username: String,
    /// The account that identity names, once looked up.
    account: Option<String>,
    /// The throttle admitted this exchange's attempt (it holds a place
    /// until it ends).
    admitted: bool,
}

impl Drop for SaslRun {
    /// An exchange given up after its secret was looked up (cancelled,
    /// or the connection gone) counts as a failure.
    fn drop(&mut self) {
        if self.admitted {
            throttle().failed(self.ctx.source(), true, Instant::now());
        }
    }
}

impl SaslRun {
    pub fn new(exchange: Exchange, ctx: LoginContext, key_account: Option<String>) -> SaslRun {
        SaslRun {
            exchange,
            ctx,
            key_account,
            username: String::new(),
            account: None,
            admitted: false,
        }
    }
}

/// Starts the exchange with the client's initial response, if it sent one.
pub async fn sasl_start(store: &Store, run: &mut SaslRun, initial: Option<&str>) -> SaslOutcome {
    let step = match initial.map(decode_initial) {
        None => run.exchange.start(None),
        Some(Ok(data)) => run.exchange.start(Some(data)),
        Some(Err(e)) => Step::Failure(e),
    };
    sasl_run(store, run, step).await
}

/// Continues the exchange with a line the client sent after a challenge.
pub async fn sasl_respond(store: &Store, run: &mut SaslRun, line: &str) -> SaslOutcome {
    let step = run.exchange.respond_line(line);
    sasl_run(store, run, step).await
}

async fn sasl_run(store: &Store, run: &mut SaslRun, step: Step) -> SaslOutcome {
    let (mut outcome, mut recorded) = sasl_steps(store, run, step).await;
    // An admitted attempt that did not fail on its credentials no longer
    // counts against the address.
    if run.admitted && !matches!(outcome, SaslOutcome::Challenge(_)) {
        run.admitted = false;
        throttle().succeeded(run.ctx.source());
    }
    // With a registered client key, only its own account.
    if let (SaslOutcome::Success(name), Some(key)) = (&outcome, &run.key_account) {
        if name != key {
            outcome = SaslOutcome::Failed(SaslFailure::OtherAccount);
            recorded = false;
        }
    }
    let word = match &outcome {
        SaslOutcome::Challenge(_) => return outcome,
        SaslOutcome::Success(_) => "ok",
        SaslOutcome::Failed(f) => f.record_word(),
    };
    if !recorded {
        if let SaslOutcome::Success(name) = &outcome {
            run.account = Some(name.clone());
        }
        let mechanism = run.exchange.mechanism().name();
        run.ctx
            .record(mechanism, &run.username, run.account.take(), word);
    }
    outcome
}

/// Runs the exchange until it needs the client or ends; true beside an
/// end that verify_password has already recorded.
async fn sasl_steps(store: &Store, run: &mut SaslRun, mut step: Step) -> (SaslOutcome, bool) {
    let source = run.ctx.source();
    loop {
        step = match step {
            Step::Challenge(data) => return (SaslOutcome::Challenge(encode_base64(&data)), false),
            Step::CheckPassword {
                authcid, password, ..
            } => {
                let mechanism = run.exchange.mechanism().name();
                let outcome =
                    match verify_password(store, &run.ctx, mechanism, &authcid, &password).await {
                        Ok(name) => SaslOutcome::Success(name),
                        Err(e) => SaslOutcome::Failed(e.into()),
                    };
                return (outcome, true);
            }
            Step::NeedSecret { authcid, kind } => {
                run.username = authcid.clone();
                if throttle().admit_waiting(source, false).await != Admission::Check {
                    return (SaslOutcome::Failed(SaslFailure::Throttled), false);
                }
                run.admitted = true;
                match stored_secret(store, &authcid, kind).await {
                    Ok((name, Lookup::Found(secret))) => {
                        run.account = Some(name);
                        run.exchange.secret(Some(secret))
                    }
                    Ok((_, Lookup::Unknown(secret))) => run.exchange.secret(secret),
                    Ok((name, Lookup::Missing)) => {
                        run.account = Some(name);
                        return (SaslOutcome::Failed(SaslFailure::NoSecret), false);
                    }
                    Err(e) => return (SaslOutcome::Failed(e.into()), false),
                }
            }
            // RFC 4422 appendix A: the TLS client key is the credential;
            // an authorization identity, if given, must be its account.
            Step::External { authzid } => {
                let Some(account) = run.key_account.clone() else {
                    return (SaslOutcome::Failed(SaslFailure::Invalid), false);
                };
                run.username = authzid.clone().unwrap_or_else(|| account.clone());
                let wanted = authzid.map(|z| normalize_username(&z).unwrap_or(z));
                if wanted.is_some_and(|z| z != account) {
                    return (SaslOutcome::Failed(SaslFailure::OtherAccount), false);
                }
                Step::Success { authcid: account }
            }
            Step::Success { authcid } => {
                let outcome = match account_for_login(store, &authcid).await {
                    Ok(name) => SaslOutcome::Success(name),
                    Err(e) => SaslOutcome::Failed(e.into()),
                };
                return (outcome, false);
            }
            Step::Failure(e) if e.is_protocol_error() => {
                return (SaslOutcome::Failed(SaslFailure::Protocol(e)), false)
            }
            Step::Failure(_) => {
                // A message that failed before any lookup counts too.
                let admitted = std::mem::take(&mut run.admitted);
                tokio::time::sleep(throttle().failed(source, admitted, Instant::now())).await;
                return (SaslOutcome::Failed(SaslFailure::Invalid), false);
            }
        }
    }
}

impl SaslFailure {
    fn record_word(&self) -> &'static str {
        match self {
            SaslFailure::Throttled => "throttled",
            SaslFailure::OtherAccount => "otheraccount",
            SaslFailure::Protocol(_) => "aborted",
            SaslFailure::Invalid => "invalid",
            SaslFailure::NoSecret => "nosecret",
            SaslFailure::Disabled(_) => "disabled",
            SaslFailure::Temporary(_) => "temporary",
        }
    }
}

impl From<AuthError> for SaslFailure {
    fn from(e: AuthError) -> SaslFailure {
        match e {
            AuthError::Invalid => SaslFailure::Invalid,
            AuthError::Disabled(why) => SaslFailure::Disabled(why),
            AuthError::Throttled => SaslFailure::Throttled,
            AuthError::Temporary(why) => SaslFailure::Temporary(why),
        }
    }
}

/// What a secret lookup found.
enum Lookup {
    Found(Secret),
    /// No such account: SCRAM goes on with a made-up secret (stable per
    /// name, so repeated tries look alike) that no proof matches, so the
    /// exchange does not tell which accounts exist.
    Unknown(Option<Secret>),
    /// The account exists without this kind of secret.
    Missing,
}

/// The account `authcid` names (empty when none) and its secret of `kind`.
async fn stored_secret(
    store: &Store,
    authcid: &str,
    kind: SecretKind,
) -> Result<(String, Lookup), AuthError> {
    let username = normalize_username(authcid).unwrap_or_default();
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let Some(record) = store
            .account_by_address(&username)
            .map_err(|e| AuthError::Temporary(e.to_string()))?
        else {
            let made_up = match kind {
                SecretKind::CramMd5 => None,
                SecretKind::Scram(hash) => Some(Secret::Scram(made_up_scram(&username, hash))),
            };
            return Ok((String::new(), Lookup::Unknown(made_up)));
        };
        let p = record.password;
        let secret = match kind {
            SecretKind::CramMd5 => p.cram_md5.map(Secret::CramMd5),
            SecretKind::Scram(ScramHash::Sha1) => Some(Secret::Scram(p.scram_sha1)),
            SecretKind::Scram(ScramHash::Sha256) => Some(Secret::Scram(p.scram_sha256)),
        };
        Ok((record.name, secret.map_or(Lookup::Missing, Lookup::Found)))
    })
    .await
    .map_err(|e| AuthError::Temporary(e.to_string()))?
}

/// A SCRAM secret for a name with no account: salt and keys from the
/// process secret, so they are the same on every try and match nothing.
fn made_up_scram(username: &str, hash: ScramHash) -> ScramSecret {
    let part = |label: &[u8]| {
        let mut h = Sha256::new();
        h.update(&cache().secret);
        h.update(label);
        h.update(username.as_bytes());
        h.finalize().to_vec()
    };
    let len = match hash {
        ScramHash::Sha1 => 20,
        ScramHash::Sha256 => 32,
    };
    ScramSecret {
        salt: part(b"salt")[..roost_store::SALT_LEN].to_vec(),
        iterations: SCRAM_ITERATIONS,
        stored_key: part(b"stored")[..len].to_vec(),
        server_key: part(b"server")[..len].to_vec(),
    }
}

/// The account a proven identity logs in to, unless its logins are
/// disabled.
async fn account_for_login(store: &Store, authcid: &str) -> Result<String, AuthError> {
    let username = normalize_username(authcid).map_err(|_| AuthError::Invalid)?;
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let record = store
            .account_by_address(&username)
            .map_err(|e| AuthError::Temporary(e.to_string()))?
            .ok_or(AuthError::Invalid)?;
        match record.disabled {
            Some(why) => Err(AuthError::Disabled(why)),
            None => Ok(record.name),
        }
    })
    .await
    .map_err(|e| AuthError::Temporary(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV4};

    /// A documentation address (RFC 5737), apart from any real client.
    const CTX: LoginContext = LoginContext {
        remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 1)),
        protocol: "test",
    };

    /// What a connection offers: without TLS and from elsewhere than
    /// loopback, no mechanism that sends the password (IMAP then says
    /// LOGINDISABLED); -PLUS only with binding data; EXTERNAL only with a
    /// client certificate.
    #[test]
    fn offered_mechanisms_follow_the_connection() {
        let names = |tls_or_local, binding: &ChannelBinding, key| {
            offered_mechanisms(tls_or_local, binding, key)
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
        };
        let none = ChannelBinding::default();
        assert_eq!(
            names(false, &none, false),
            ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"]
        );
        assert_eq!(
            names(true, &none, false),
            ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"]
        );
        let tls = ChannelBinding {
            tls_exporter: Some(vec![1; 32]),
            tls_server_end_point: None,
        };
        assert_eq!(
            names(true, &tls, true),
            [
                "SCRAM-SHA-256-PLUS",
                "SCRAM-SHA-1-PLUS",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "CRAM-MD5",
                "PLAIN",
                "LOGIN",
                "EXTERNAL"
            ]
        );
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_64s() {
        let v6 = |s: &str| Source::of(IpAddr::V6(s.parse::<Ipv6Addr>().unwrap()));
        assert_eq!(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff::9"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_eq!(
            v6("::ffff:192.0.2.7"),
            Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
        );
        assert_ne!(
            Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8)))
        );
    }

    #[test]
    fn delays_grow_then_the_source_is_refused() {
        assert_eq!(failure_delay(1), AUTH_FAILURE_DELAY);
        assert_eq!(failure_delay(FREE_FAILURES), AUTH_FAILURE_DELAY);
        assert_eq!(failure_delay(FREE_FAILURES + 1), AUTH_FAILURE_DELAY * 2);
        assert_eq!(failure_delay(FREE_FAILURES + 2), AUTH_FAILURE_DELAY * 4);
        assert_eq!(failure_delay(u32::MAX), MAX_FAILURE_DELAY);
        let t = Throttle::new();
        let (a, b) = (
            Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
        );
        let t0 = Instant::now();
        for n in 1..=REFUSE_AFTER_FAILURES {
            assert_eq!(t.admit(a, true, t0), Admission::Check, "{n}");
            assert_eq!(t.failed(a, true, t0), failure_delay(n));
        }
        // Refused: remembered logins are checked a few times, then none.
        for _ in 0..REFUSED_CACHED_CHECKS {
            assert_eq!(t.admit(a, true, t0), Admission::CachedOnly);
        }
        assert_eq!(t.admit(a, true, t0), Admission::Refused);
        assert_eq!(t.admit(a, false, t0), Admission::Refused);
        assert_eq!(t.admit(b, true, t0), Admission::Check, "another source");
        // The refusal ends a window after the last failure, and the count
        // starts over.
        let later = t0 + FAILURE_WINDOW;
        assert_eq!(t.admit(a, true, later), Admission::Check);
        assert_eq!(t.failed(a, true, later), failure_delay(1));
    }

    /// Attempts in progress hold places: ten parallel attempts leave none
    /// for an eleventh, which waits (it is not refused); a good one gives
    /// its place back, a failed one turns it into a failure.
    #[test]
    fn attempts_in_progress_hold_places() {
        let t = Throttle::new();
        let a = Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)));
        let t0 = Instant::now();
        for _ in 0..REFUSE_AFTER_FAILURES {
            assert_eq!(t.admit(a, false, t0), Admission::Check);
        }
        assert_eq!(t.admit(a, false, t0), Admission::Wait);
        t.succeeded(a);
        assert_eq!(t.admit(a, false, t0), Admission::Check);
        assert_eq!(t.admit(a, false, t0), Admission::Wait);
        // Nine fail: one place is left for the tenth failure.
        for _ in 0..REFUSE_AFTER_FAILURES - 1 {
            t.failed(a, true, t0);
        }
        assert_eq!(t.admit(a, false, t0), Admission::Wait);
        t.succeeded(a);
        assert_eq!(t.admit(a, false, t0), Admission::Check);
        t.failed(a, true, t0);
        assert_eq!(t.admit(a, false, t0), Admission::Refused);
        // A success never frees more than was held.
        let c = Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4)));
        t.succeeded(c);
        t.succeeded(c);
        for _ in 0..REFUSE_AFTER_FAILURES {
            assert_eq!(t.admit(c, false, t0), Admission::Check);
        }
        assert_eq!(t.admit(c, false, t0), Admission::Wait);
    }

    /// A waiting attempt goes on when a place frees, and is refused as
    /// throttled when none does within ADMISSION_WAIT.
    #[tokio::test(start_paused = true)]
    async fn waiting_attempts_go_on_or_give_up() {
        let t = std::sync::Arc::new(Throttle::new());
        let a = Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5)));
        for _ in 0..REFUSE_AFTER_FAILURES {
            assert_eq!(t.admit(a, false, Instant::now()), Admission::Check);
        }
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.admit_waiting(a, false).await })
        };
        tokio::time::sleep(ADMISSION_WAIT / 2).await;
        t.succeeded(a);
        assert_eq!(waiter.await.unwrap(), Admission::Check);
        assert_eq!(t.admit_waiting(a, false).await, Admission::Refused);
    }

    #[test]
    fn tracked_sources_are_bounded() {
        let t = Throttle::new();
        let t0 = Instant::now();
        for n in 0..MAX_TRACKED_SOURCES as u32 {
            t.admit(Source::V4(Ipv4Addr::from(n)), false, t0);
        }
        assert_eq!(t.tracked(), MAX_TRACKED_SOURCES);
        // One past the limit: another takes its place.
        let last = Source::V4(Ipv4Addr::from(u32::MAX));
        t.admit(last, false, t0 + Duration::from_secs(1));
        assert_eq!(t.tracked(), MAX_TRACKED_SOURCES);
        assert!(t.state().sources.contains_key(&last));
    }

    fn key(n: usize) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(n as u64).to_be_bytes());
        k
    }

    #[test]
    fn keys_depend_on_every_part() {
        let c = cache();
        let base = c.key("a@b", "$argon2id$x", "pw");
        assert_ne!(base, c.key("a@b", "$argon2id$y", "pw"));
        assert_ne!(base, c.key("a@c", "$argon2id$x", "pw"));
        assert_ne!(base, c.key("a@b", "$argon2id$x", "pw2"));
        // Lengths are hashed too: parts cannot slide into one another.
        assert_ne!(c.key("ab", "", "c"), c.key("a", "b", "c"));
    }

    #[test]
    fn entries_are_bounded_and_age_out() {
        let c = LoginCache {
            secret: vec![1; 32],
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
        };
        let t0 = Instant::now();
        for n in 0..LOGIN_CACHE_ENTRIES {
            c.remember(key(n), t0 + Duration::from_nanos(n as u64));
        }
        assert_eq!(c.entries().len(), LOGIN_CACHE_ENTRIES);
        assert!(c.knows(&key(0), t0));
        // One past the limit: the oldest goes.
        c.remember(key(LOGIN_CACHE_ENTRIES), t0 + Duration::from_secs(1));
        assert_eq!(c.entries().len(), LOGIN_CACHE_ENTRIES);
        assert!(!c.knows(&key(0), t0 + Duration::from_secs(1)));
        assert!(c.knows(&key(1), t0 + Duration::from_secs(1)));
        // At the age limit an entry no longer stands.
        assert!(!c.knows(&key(1), t0 + LOGIN_CACHE_AGE + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn repeat_logins_are_remembered_until_the_password_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .create_account("cache@example.org", "first-secret", None)
            .unwrap();
        let hits = login_cache_hits();
        let ok = |r: Result<String, AuthError>| r.unwrap();
        ok(verify_password(&store, &CTX, "PLAIN", "cache@example.org", "first-secret").await);
        assert_eq!(login_cache_hits(), hits);
        ok(verify_password(&store, &CTX, "PLAIN", "cache@example.org", "first-secret").await);
        assert_eq!(login_cache_hits(), hits + 1);
        // A wrong password is never remembered, and still fails.
        for _ in 0..2 {
            assert_eq!(
                verify_password(&store, &CTX, "PLAIN", "cache@example.org", "wrong").await,
                Err(AuthError::Invalid)
            );
        }
        assert_eq!(login_cache_hits(), hits + 1);
        // A new password: the old one fails at once, and is not a hit.
        store
            .set_password("cache@example.org", "second-secret")
            .unwrap();
        assert_eq!(
            verify_password(&store, &CTX, "PLAIN", "cache@example.org", "first-secret").await,
            Err(AuthError::Invalid)
        );
        assert_eq!(login_cache_hits(), hits + 1);
        ok(verify_password(&store, &CTX, "PLAIN", "cache@example.org", "second-secret").await);
        ok(verify_password(&store, &CTX, "PLAIN", "cache@example.org", "second-secret").await);
        assert_eq!(login_cache_hits(), hits + 2);
    }

    /// An account whose password predates CRAM-MD5 secrets: CRAM-MD5 is
    /// refused as `NoSecret` (no failure delay, not counted against the
    /// address), while SCRAM, whose secret it has, still works.
    #[tokio::test]
    async fn a_missing_secret_fails_that_mechanism_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut rec = store.create_account("old@example.org", "pw", None).unwrap();
        rec.password.cram_md5 = None;
        store
            .commit(roost_store::Commit {
                puts: vec![roost_store::Record::Account(Box::new(rec))],
                ..Default::default()
            })
            .unwrap();
        let ctx = LoginContext {
            remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 1)),
            protocol: "test",
        };
        let exchange = new_exchange(Mechanism::CramMd5, &ChannelBinding::default(), "h");
        let mut run = SaslRun::new(exchange, ctx, None);
        let SaslOutcome::Challenge(challenge) = sasl_start(&store, &mut run, None).await else {
            panic!("no challenge")
        };
        let challenge = roost_protocols::sasl::decode_base64(&challenge).unwrap();
        let digest: String = roost_protocols::sasl::CramMd5Secret::derive("pw")
            .hmac(&challenge)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let answer = encode_base64(format!("old@example.org {digest}").as_bytes());
        assert_eq!(
            sasl_respond(&store, &mut run, &answer).await,
            SaslOutcome::Failed(SaslFailure::NoSecret)
        );
        assert_eq!(
            throttle()
                .state()
                .sources
                .get(&ctx.source())
                .map(|e| e.count),
            Some(0)
        );
        // PLAIN (argon2id) still logs in.
        let exchange = new_exchange(Mechanism::Plain, &ChannelBinding::default(), "h");
        let mut run = SaslRun::new(exchange, ctx, None);
        let ir = encode_base64(b"\0old@example.org\0pw");
        assert_eq!(
            sasl_start(&store, &mut run, Some(&ir)).await,
            SaslOutcome::Success("old@example.org".into())
        );
    }
}
