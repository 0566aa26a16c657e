//! The supervisor actor: starts its children, watches them through ractor's
//! links, and restarts them by strategy and restart policy, within an intensity
//! limit and after an exponential backoff.
//!
//! It replaces ractor's default reaction (stop the parent when a child ends)
//! with OTP's: a child's end never stops the supervisor by itself; only more
//! than `max_restarts` restarts within `within` make the supervisor fail, so its
//! own parent sees `ActorFailed` and applies its policy (escalation). Backoff
//! delays are scheduled messages, so the supervisor keeps answering while a
//! restart waits. It does not decide what the children do, and it keeps no
//! state of theirs: a restarted child starts from its spec.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RactorErr, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};

use crate::registry::{ActorKind, Registry, Status};
use crate::spec::{Backoff, ChildSpec, Intensity, Restart, Strategy};

/// How long a child may take to stop gracefully (its `post_stop`) before it is
/// killed. The supervisor waits, so a stopped child's name is free again.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a killed child to finish dying.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(1);
/// Before spawning, how long to wait for a dying actor that still holds the
/// child's ractor name (say, a grandchild killed along with its crashed parent).
pub const NAME_RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a supervisor failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "supervisor {supervisor}: more than {max_restarts} restarts within {within:?}; \
         giving up so that its parent decides"
    )]
    IntensityExceeded {
        supervisor: String,
        max_restarts: u32,
        within: Duration,
    },
    #[error("supervisor {supervisor}: child {child} did not start: {reason}")]
    ChildStart {
        supervisor: String,
        child: String,
        reason: String,
    },
    #[error("supervisor {supervisor}: two children are named {child}")]
    DuplicateChild { supervisor: String, child: String },
}

/// Why a request about one child was refused. Replies carry its text.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("a child named {0} already exists")]
    Duplicate(String),
    #[error("no child named {0}")]
    NotFound(String),
    #[error("child {0} is not running (a restart may be pending)")]
    NotRunning(String),
    #[error("child {name} did not start: {reason}")]
    Spawn { name: String, reason: String },
    #[error("the supervisor did not answer: {0}")]
    Unreachable(String),
}

/// What a supervisor runs and how.
#[derive(Debug)]
pub struct SupervisorArgs {
    pub name: String,
    /// The kind it registers itself as when no parent supervisor registers it.
    pub kind: ActorKind,
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub backoff: Backoff,
    /// Started in this order, each after the previous one started; stopped in
    /// reverse order.
    pub children: Vec<ChildSpec>,
    pub registry: Registry,
}

impl SupervisorArgs {
    /// One-for-one, default intensity and backoff, no children yet.
    pub fn new(name: impl Into<String>, registry: Registry) -> Self {
        Self {
            name: name.into(),
            kind: ActorKind::Supervisor,
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            children: Vec::new(),
            registry,
        }
    }

    pub fn kind(mut self, kind: ActorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            within,
        };
        self
    }

    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff { initial, max };
        self
    }

    pub fn child(mut self, spec: ChildSpec) -> Self {
        self.children.push(spec);
        self
    }
}

/// Messages a supervisor understands.
pub enum SupervisorMsg {
    /// Start one more child (for instance one per connection). Refused if a
    /// child of that name exists. A failed start does not count as a restart.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, String>>),
    /// Stop the named child gracefully and forget its spec (no restart).
    TerminateChild(String, RpcReplyPort<Result<(), String>>),
    /// Chaos: kill the named child and treat its end as a failure, exactly as
    /// if it had panicked, so the restart policy runs.
    FailChild(String, RpcReplyPort<Result<(), String>>),
    /// The names of all children in spec order, running or awaiting a restart.
    Children(RpcReplyPort<Vec<String>>),
    /// Sent by the supervisor to itself when a backoff delay has passed.
    #[doc(hidden)]
    Restart(ScheduledRestart),
}

/// A restart the supervisor scheduled for itself; opaque to everyone else.
#[derive(Debug)]
pub struct ScheduledRestart {
    generation: u64,
    keys: Vec<u64>,
}

/// The supervisor actor. Start it with [`Supervisor::start`] or, as a child of
/// another supervisor, with [`ChildSpec::supervisor`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

impl Supervisor {
    /// Spawns a supervisor named `args.name`, linked to `parent` if given, and
    /// returns once all its children have started.
    pub async fn start(
        args: SupervisorArgs,
        parent: Option<ActorCell>,
    ) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), SpawnErr> {
        let name = Some(args.name.clone());
        match parent {
            Some(parent) => Actor::spawn_linked(name, Supervisor, args, parent).await,
            None => Actor::spawn(name, Supervisor, args).await,
        }
    }
}

/// One child: its spec, its current incarnation, and its restart bookkeeping.
struct Slot {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    /// How many times this spec has been restarted.
    restarts: u32,
    /// The generation of the scheduled restart that will start it, if any.
    pending: Option<u64>,
    /// The current incarnation was killed by `FailChild`.
    chaos: bool,
    /// The ended incarnation whose registry entry stands in (as `Restarting`)
    /// until the replacement is registered.
    placeholder: Option<ActorId>,
}

/// The supervisor's state. Children live in `slots`, keyed by an increasing
/// number, so key order is spec order (dynamic children come last).
pub struct SupervisorState {
    name: String,
    strategy: Strategy,
    intensity: Intensity,
    backoff: Backoff,
    registry: Registry,
    slots: BTreeMap<u64, Slot>,
    by_id: HashMap<ActorId, u64>,
    by_name: HashMap<String, u64>,
    next_key: u64,
    next_generation: u64,
    /// When recent restarts happened, oldest first, for the intensity limit.
    recent_restarts: VecDeque<Instant>,
}

impl SupervisorState {
    fn add_slot(&mut self, spec: ChildSpec) -> Result<u64, ChildError> {
        if self.by_name.contains_key(&spec.name) {
            return Err(ChildError::Duplicate(spec.name));
        }
        let key = self.next_key;
        self.next_key += 1;
        self.by_name.insert(spec.name.clone(), key);
        self.slots.insert(
            key,
            Slot {
                spec,
                cell: None,
                restarts: 0,
                pending: None,
                chaos: false,
                placeholder: None,
            },
        );
        Ok(key)
    }

    /// Forgets a slot and its registry entries. Returns the running cell, if
    /// any, for the caller to stop.
    fn remove_slot(&mut self, key: u64) -> Option<ActorCell> {
        let slot = self.slots.remove(&key)?;
        self.by_name.remove(&slot.spec.name);
        if let Some(old) = slot.placeholder {
            self.registry.unregister(old);
        }
        let cell = slot.cell?;
        self.by_id.remove(&cell.get_id());
        Some(cell)
    }

    fn attach(&mut self, key: u64, cell: &ActorCell, myself: &ActorCell) {
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        if let Some(old) = slot.placeholder.take() {
            self.registry.unregister(old);
        }
        self.registry.register(
            cell,
            slot.spec.kind,
            slot.spec.name.clone(),
            Some(myself),
            slot.restarts,
        );
        slot.cell = Some(cell.clone());
        slot.chaos = false;
        slot.pending = None;
        self.by_id.insert(cell.get_id(), key);
    }

    /// Counts one more restart; false if that would exceed the intensity limit.
    fn record_restart(&mut self) -> bool {
        let now = Instant::now();
        while let Some(oldest) = self.recent_restarts.front() {
            if now.duration_since(*oldest) > self.intensity.within {
                self.recent_restarts.pop_front();
            } else {
                break;
            }
        }
        if self.recent_restarts.len() >= self.intensity.max_restarts as usize {
            return false;
        }
        self.recent_restarts.push_back(now);
        true
    }

    /// The children a restart of `key` takes along, in spec order.
    fn restart_group(&self, key: u64) -> Vec<u64> {
        match self.strategy {
            Strategy::OneForOne => vec![key],
            Strategy::OneForAll => self.slots.keys().copied().collect(),
            Strategy::RestForOne => self.slots.range(key..).map(|(k, _)| *k).collect(),
        }
    }
}

/// Stops a child and waits until it has stopped (so its name is free), killing
/// it if it takes longer than [`SHUTDOWN_TIMEOUT`].
async fn shutdown(cell: &ActorCell, reason: &str) {
    match cell
        .stop_and_wait(Some(reason.to_owned()), Some(SHUTDOWN_TIMEOUT))
        .await
    {
        Ok(()) => {}
        Err(RactorErr::Timeout) => {
            tracing::warn!(actor = %cell.get_id(), "child did not stop in time; killing it");
            if cell.kill_and_wait(Some(KILL_TIMEOUT)).await.is_err() {
                tracing::error!(actor = %cell.get_id(), "killed child did not finish");
            }
        }
        // Already stopping on its own: wait for the end.
        Err(_) => {
            if cell.wait(Some(KILL_TIMEOUT)).await.is_err() {
                tracing::error!(actor = %cell.get_id(), "stopping child did not finish");
            }
        }
    }
}

/// ractor frees a name when its actor starts stopping; a relative of a crashed
/// actor may still hold one for a moment. Wait briefly rather than fail.
async fn wait_name_free(name: &str) {
    if let Some(holder) = ractor::registry::where_is(name) {
        if holder.wait(Some(NAME_RELEASE_TIMEOUT)).await.is_err() {
            tracing::warn!(name, "ractor name still taken; the spawn will likely fail");
        }
    }
}

async fn spawn_child(
    myself: &ActorCell,
    state: &mut SupervisorState,
    key: u64,
) -> Result<ActorCell, SpawnErr> {
    let Some(spec) = state.slots.get(&key).map(|slot| slot.spec.clone()) else {
        return Err(SpawnErr::StartupFailed("child spec was removed".into()));
    };
    wait_name_free(&spec.name).await;
    let cell = (spec.spawn)(myself.clone()).await?;
    if cell.try_get_supervisor().map(|s| s.get_id()) != Some(myself.get_id()) {
        cell.link(myself.clone());
    }
    state.attach(key, &cell, myself);
    Ok(cell)
}

/// Stops every child in reverse order and forgets them all.
async fn shutdown_all(state: &mut SupervisorState, reason: &str) {
    let keys: Vec<u64> = state.slots.keys().rev().copied().collect();
    for key in keys {
        if let Some(cell) = state.remove_slot(key) {
            state.registry.set_status(cell.get_id(), Status::Stopping);
            shutdown(&cell, reason).await;
            state.registry.unregister(cell.get_id());
        }
    }
}

/// Stops a sibling that a restart takes along. A temporary one is forgotten;
/// any other one waits for the scheduled restart.
async fn stop_for_restart(state: &mut SupervisorState, key: u64) {
    let Some(slot) = state.slots.get_mut(&key) else {
        return;
    };
    let temporary = slot.spec.restart == Restart::Temporary;
    let Some(cell) = slot.cell.take() else {
        if temporary {
            state.remove_slot(key);
        }
        return;
    };
    let id = cell.get_id();
    state.by_id.remove(&id);
    state.registry.set_status(id, Status::Stopping);
    shutdown(&cell, "sibling restart").await;
    if temporary {
        state.registry.unregister(id);
        state.remove_slot(key);
    } else {
        state.registry.set_status(id, Status::Restarting);
        if let Some(slot) = state.slots.get_mut(&key) {
            slot.placeholder = Some(id);
        }
    }
}

/// The child at `key` must be restarted: check the intensity limit, stop the
/// siblings the strategy takes along, and schedule the restart after backoff.
async fn restart_from(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    key: u64,
) -> Result<(), ActorProcessingErr> {
    if !state.record_restart() {
        tracing::error!(
            supervisor = %state.name,
            max_restarts = state.intensity.max_restarts,
            within = ?state.intensity.within,
            "restart intensity exceeded; escalating"
        );
        shutdown_all(state, "supervisor escalating").await;
        return Err(Box::new(SupervisorError::IntensityExceeded {
            supervisor: state.name.clone(),
            max_restarts: state.intensity.max_restarts,
            within: state.intensity.within,
        }));
    }
    let group = state.restart_group(key);
    for sibling in group.iter().rev().filter(|k| **k != key) {
        stop_for_restart(state, *sibling).await;
    }
    let keys: Vec<u64> = group
        .into_iter()
        .filter(|k| state.slots.contains_key(k))
        .collect();
    let generation = state.next_generation;
    state.next_generation += 1;
    for k in &keys {
        if let Some(slot) = state.slots.get_mut(k) {
            slot.pending = Some(generation);
        }
    }
    let nth = u32::try_from(state.recent_restarts.len()).unwrap_or(u32::MAX);
    let delay = state.backoff.delay(nth);
    let restart = ScheduledRestart { generation, keys };
    if delay.is_zero() {
        // Through the mailbox all the same: a restart that fails to spawn goes
        // back through this function instead of recursing.
        if myself
            .send_message(SupervisorMsg::Restart(restart))
            .is_err()
        {
            tracing::warn!(supervisor = %state.name, "cannot schedule restart: mailbox closed");
        }
    } else {
        tracing::info!(supervisor = %state.name, ?delay, "restart scheduled after backoff");
        myself.send_after(delay, move || SupervisorMsg::Restart(restart));
    }
    Ok(())
}

/// A child ended: forget it, or schedule its restart, by its restart policy.
async fn on_child_exit(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: ActorId,
    failure: Option<String>,
) -> Result<(), ActorProcessingErr> {
    // Unknown ids are children this supervisor stopped itself, or stale events.
    let Some(key) = state.by_id.remove(&id) else {
        return Ok(());
    };
    let Some(slot) = state.slots.get_mut(&key) else {
        return Ok(());
    };
    let failed = failure.is_some() || slot.chaos;
    slot.cell = None;
    slot.chaos = false;
    let restart = match slot.spec.restart {
        Restart::Permanent => true,
        Restart::Transient => failed,
        Restart::Temporary => false,
    };
    let name = slot.spec.name.clone();
    match &failure {
        Some(reason) => {
            tracing::warn!(supervisor = %state.name, child = %name, %reason, "child failed")
        }
        None if failed => {
            tracing::warn!(supervisor = %state.name, child = %name, "child killed by FailChild")
        }
        None => tracing::info!(supervisor = %state.name, child = %name, "child stopped"),
    }
    if !restart {
        state.registry.unregister(id);
        state.remove_slot(key);
        return Ok(());
    }
    state.registry.set_status(id, Status::Restarting);
    slot.placeholder = Some(id);
    restart_from(myself, state, key).await
}

/// A scheduled restart is due: start each child of the group still waiting for
/// this generation, in spec order.
async fn run_restart(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    due: ScheduledRestart,
) -> Result<(), ActorProcessingErr> {
    for key in due.keys {
        let Some(slot) = state.slots.get_mut(&key) else {
            continue;
        };
        if slot.pending != Some(due.generation) {
            continue;
        }
        slot.pending = None;
        slot.restarts = slot.restarts.saturating_add(1);
        let name = slot.spec.name.clone();
        match spawn_child(&myself.get_cell(), state, key).await {
            Ok(_) => tracing::info!(supervisor = %state.name, child = %name, "child restarted"),
            Err(err) => {
                tracing::warn!(supervisor = %state.name, child = %name, %err, "restart failed");
                restart_from(myself, state, key).await?;
            }
        }
    }
    Ok(())
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let me = myself.get_cell();
        args.registry.register_if_absent(&me, args.kind, &args.name);
        let mut state = SupervisorState {
            name: args.name,
            strategy: args.strategy,
            intensity: args.intensity,
            backoff: args.backoff,
            registry: args.registry,
            slots: BTreeMap::new(),
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            next_key: 0,
            next_generation: 0,
            recent_restarts: VecDeque::new(),
        };
        let mut keys = Vec::with_capacity(args.children.len());
        for spec in args.children {
            let child = spec.name.clone();
            match state.add_slot(spec) {
                Ok(key) => keys.push(key),
                Err(_) => {
                    return Err(Box::new(SupervisorError::DuplicateChild {
                        supervisor: state.name,
                        child,
                    }))
                }
            }
        }
        for key in keys {
            if let Err(err) = spawn_child(&me, &mut state, key).await {
                let child = state
                    .slots
                    .get(&key)
                    .map(|slot| slot.spec.name.clone())
                    .unwrap_or_default();
                shutdown_all(&mut state, "supervisor start failed").await;
                return Err(Box::new(SupervisorError::ChildStart {
                    supervisor: state.name,
                    child,
                    reason: err.to_string(),
                }));
            }
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Linking happens after pre_start, so only now is the parent known.
        if let Some(parent) = myself.try_get_supervisor() {
            state.registry.adopt(myself.get_id(), parent.get_id());
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        shutdown_all(state, "supervisor stopping").await;
        state.registry.unregister(myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartChild(spec, reply) => {
                let _ = reply.send(start_dynamic(&myself, state, spec).await);
            }
            SupervisorMsg::TerminateChild(name, reply) => {
                let _ = reply.send(terminate(state, &name).await);
            }
            SupervisorMsg::FailChild(name, reply) => {
                let _ = reply.send(fail(state, &name));
            }
            SupervisorMsg::Children(reply) => {
                let names = state.slots.values().map(|s| s.spec.name.clone()).collect();
                let _ = reply.send(names);
            }
            SupervisorMsg::Restart(due) => run_restart(&myself, state, due).await?,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                on_child_exit(&myself, state, cell.get_id(), None).await
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                on_child_exit(&myself, state, cell.get_id(), Some(err.to_string())).await
            }
            _ => Ok(()),
        }
    }
}

async fn start_dynamic(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    spec: ChildSpec,
) -> Result<ActorCell, String> {
    let name = spec.name.clone();
    let key = state.add_slot(spec).map_err(|e| e.to_string())?;
    match spawn_child(&myself.get_cell(), state, key).await {
        Ok(cell) => Ok(cell),
        Err(err) => {
            state.remove_slot(key);
            Err(ChildError::Spawn {
                name,
                reason: err.to_string(),
            }
            .to_string())
        }
    }
}

async fn terminate(state: &mut SupervisorState, name: &str) -> Result<(), String> {
    let Some(&key) = state.by_name.get(name) else {
        return Err(ChildError::NotFound(name.to_owned()).to_string());
    };
    if let Some(cell) = state.remove_slot(key) {
        state.registry.set_status(cell.get_id(), Status::Stopping);
        shutdown(&cell, "terminated by supervisor").await;
        state.registry.unregister(cell.get_id());
    }
    Ok(())
}

fn fail(state: &mut SupervisorState, name: &str) -> Result<(), String> {
    let slot = state
        .by_name
        .get(name)
        .and_then(|key| state.slots.get_mut(key))
        .ok_or_else(|| ChildError::NotFound(name.to_owned()).to_string())?;
    let cell = slot
        .cell
        .as_ref()
        .ok_or_else(|| ChildError::NotRunning(name.to_owned()).to_string())?;
    slot.chaos = true;
    cell.kill();
    Ok(())
}

async fn call<T, F>(sup: &ActorRef<SupervisorMsg>, build: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
{
    match sup.call(build, None).await {
        Ok(CallResult::Success(value)) => Ok(value),
        Ok(CallResult::Timeout) => Err(ChildError::Unreachable("timed out".into()).to_string()),
        Ok(CallResult::SenderError) => {
            Err(ChildError::Unreachable("it stopped before replying".into()).to_string())
        }
        Err(err) => Err(ChildError::Unreachable(err.to_string()).to_string()),
    }
}

/// Asks `sup` to start one more child; the new child's cell on success.
pub async fn start_child(
    sup: &ActorRef<SupervisorMsg>,
    spec: ChildSpec,
) -> Result<ActorCell, String> {
    call(sup, |reply| SupervisorMsg::StartChild(spec, reply)).await?
}

/// Asks `sup` to stop the named child for good.
pub async fn terminate_child(sup: &ActorRef<SupervisorMsg>, name: &str) -> Result<(), String> {
    let name = name.to_owned();
    call(sup, |reply| SupervisorMsg::TerminateChild(name, reply)).await?
}

/// Chaos: asks `sup` to kill the named child as if it had failed.
pub async fn fail_child(sup: &ActorRef<SupervisorMsg>, name: &str) -> Result<(), String> {
    let name = name.to_owned();
    call(sup, |reply| SupervisorMsg::FailChild(name, reply)).await?
}

/// The names of `sup`'s children, in spec order.
pub async fn children(sup: &ActorRef<SupervisorMsg>) -> Result<Vec<String>, String> {
    call(sup, SupervisorMsg::Children).await
}

#[cfg(test)]
mod tests;
