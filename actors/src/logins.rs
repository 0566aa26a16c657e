//! The login-attempt recorder: one actor (`logins`, under root) that
//! gathers the attempts sessions report and writes them to the store in
//! batches, off the async workers, keeping the newest
//! [`MAX_LOGIN_ATTEMPTS`].
//!
//! Sessions never wait for it: [`record`] hands an attempt over and
//! returns. What is waiting to be written is bounded by
//! [`MAX_RECORD_BACKLOG`]; past it, attempts are counted and dropped.

use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_store::{LoginAttempt, Store};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tracing::warn;

/// The registered name of the recorder actor.
pub const LOGINS_ACTOR: &str = "logins";
/// Login attempts kept in the store; older ones are pruned.
pub const MAX_LOGIN_ATTEMPTS: usize = 10_000;
/// Attempts handed to the recorder and not yet written, at most.
pub const MAX_RECORD_BACKLOG: usize = 10_000;
/// How long the recorder gathers attempts before writing a batch.
pub const RECORD_BATCH_DELAY: Duration = Duration::from_millis(100);

static BACKLOG: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Hands `attempt` to the recorder without waiting. Dropped (and
/// counted) when the recorder is not running or is too far behind.
pub fn record(attempt: LoginAttempt) {
    let Some(cell) = ractor::registry::where_is(LOGINS_ACTOR) else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if BACKLOG.fetch_add(1, Ordering::AcqRel) >= MAX_RECORD_BACKLOG {
        BACKLOG.fetch_sub(1, Ordering::AcqRel);
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let actor: ActorRef<LoginsMsg> = cell.into();
    if actor.cast(LoginsMsg::Record(Box::new(attempt))).is_err() {
        BACKLOG.fetch_sub(1, Ordering::AcqRel);
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Attempts dropped since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

pub enum LoginsMsg {
    Record(Box<LoginAttempt>),
    /// Internal: write what has gathered.
    Flush,
}

pub struct Logins;

pub struct LoginsState {
    store: Store,
    pending: Vec<LoginAttempt>,
    /// Attempts in the store, as far as this actor knows.
    kept: usize,
    seq: u32,
}

impl Actor for Logins {
    type Msg = LoginsMsg;
    type State = LoginsState;
    type Arguments = Store;

    async fn pre_start(
        &self,
        _myself: ActorRef<LoginsMsg>,
        store: Store,
    ) -> Result<LoginsState, ActorProcessingErr> {
        let s = store.clone();
        let kept = tokio::task::spawn_blocking(move || s.login_attempt_count()).await?;
        Ok(LoginsState {
            store,
            pending: Vec::new(),
            kept,
            seq: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LoginsMsg>,
        msg: LoginsMsg,
        state: &mut LoginsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LoginsMsg::Record(attempt) => {
                BACKLOG.fetch_sub(1, Ordering::AcqRel);
                if state.pending.is_empty() {
                    myself.send_after(RECORD_BATCH_DELAY, || LoginsMsg::Flush);
                }
                state.pending.push(*attempt);
            }
            LoginsMsg::Flush => {
                let batch = std::mem::take(&mut state.pending);
                let (store, mut seq, kept) = (state.store.clone(), state.seq, state.kept);
                let written = tokio::task::spawn_blocking(move || {
                    store.add_login_attempts(&batch, &mut seq)?;
                    let mut kept = kept + batch.len();
                    // Pruning scans the records: only once a tenth more
                    // than the limit has gathered.
                    if kept > MAX_LOGIN_ATTEMPTS + MAX_LOGIN_ATTEMPTS / 10 {
                        store.prune_login_attempts(MAX_LOGIN_ATTEMPTS)?;
                        kept = MAX_LOGIN_ATTEMPTS;
                    }
                    Ok::<_, roost_store::StoreError>((seq, kept))
                })
                .await?;
                match written {
                    Ok((seq, kept)) => (state.seq, state.kept) = (seq, kept),
                    Err(e) => warn!(error = %e, "cannot record login attempts"),
                }
            }
        }
        Ok(())
    }
}
