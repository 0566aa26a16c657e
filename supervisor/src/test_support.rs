//! Test-only helpers: a worker actor that panics, fails or stops on command and
//! logs its starts and graceful stops, and a polling wait with a deadline.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::{ActorKind, ChildSpec, Restart};

/// Generous: tests wait for conditions, never for fixed times.
pub const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(5);

/// An ordered record of `start:<name>` and `stop:<name>` events.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, event: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    pub fn events(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }

    pub fn starts(&self, name: &str) -> usize {
        self.count(&format!("start:{name}"))
    }
}

pub struct Worker;

pub struct WorkerArgs {
    name: String,
    log: Log,
    stop_delay: Duration,
}

impl WorkerArgs {
    pub fn new(name: &str, log: &Log) -> Self {
        Self {
            name: name.to_owned(),
            log: log.clone(),
            stop_delay: Duration::ZERO,
        }
    }

    pub fn slow_stop(mut self, delay: Duration) -> Self {
        self.stop_delay = delay;
        self
    }
}

pub enum WorkerMsg {
    Panic,
    Fail,
    Stop,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerArgs, ActorProcessingErr> {
        args.log.push(format!("start:{}", args.name));
        Ok(args)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        if !state.stop_delay.is_zero() {
            tokio::time::sleep(state.stop_delay).await;
        }
        state.log.push(format!("stop:{}", state.name));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Panic => panic!("worker {} told to panic", state.name),
            WorkerMsg::Fail => return Err(format!("worker {} told to fail", state.name).into()),
            WorkerMsg::Stop => myself.stop(None),
        }
        Ok(())
    }
}

/// A worker child; its ractor name is `name`.
pub fn worker(name: &str, restart: Restart, log: &Log) -> ChildSpec {
    let (owned, log) = (name.to_owned(), log.clone());
    ChildSpec::linked(name, ActorKind::Other, restart, move || {
        (Worker, WorkerArgs::new(&owned, &log))
    })
}

/// A worker child whose graceful stop takes `delay`.
pub fn slow_worker(name: &str, restart: Restart, log: &Log, delay: Duration) -> ChildSpec {
    let (owned, log) = (name.to_owned(), log.clone());
    ChildSpec::linked(name, ActorKind::Other, restart, move || {
        (Worker, WorkerArgs::new(&owned, &log).slow_stop(delay))
    })
}

/// Polls `condition` until it holds; panics with `what` after [`DEADLINE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
