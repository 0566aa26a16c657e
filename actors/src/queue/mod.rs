//! The outgoing queue (house plan: `queue` → `delivery:<domain>`): the
//! scheduler actor finds the messages whose next attempt is due, groups
//! them by destination domain, and starts one delivery worker per domain
//! in flight. A worker delivers its messages and writes what came of each
//! (delivered, retried later, or failed with a DSN to the sender), then
//! stops. A worker that crashes has its messages retried after the next
//! backoff step, as any failed attempt.
//!
//! Queued messages live in the store (`roost_store::QueuedMessage`): a
//! message acknowledged to a submitter is on disk before its `250`.

pub mod delivery;
pub mod dsn;

use crate::dns::Dns;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use roost_store::{QueueId, QueuedMessage, Store};
use roost_supervisor::{ActorKind, Registry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The registered name of the scheduler.
pub const QUEUE_ACTOR: &str = "queue";
/// Seconds to wait after each failed attempt: the first retry comes at
/// once, then 7.5 minutes, 15, 30, 1 hour, 2, 4, 8 and 16; after the last
/// the message fails (about 32 hours in all).
pub const RETRY_SCHEDULE: [i64; 9] = [0, 450, 900, 1800, 3600, 7200, 14400, 28800, 57600];
/// After this many failed attempts the sender hears that the message is
/// delayed (RFC 3464 "delayed"), once.
pub const DELAY_DSN_AFTER: u32 = 5;
/// Destination domains delivered to at once.
pub const MAX_DOMAINS_IN_FLIGHT: usize = 20;
/// Due messages read per look at the queue.
pub const DUE_BATCH: usize = 1000;
/// How often the scheduler looks for due messages when nothing wakes it.
pub const SCHEDULER_TICK: Duration = Duration::from_secs(1);

/// What the queue needs to deliver.
#[derive(Clone)]
pub struct QueueSettings {
    pub store: Store,
    pub dns: Dns,
    pub registry: Registry,
    /// This server's name, for EHLO, Received and DSNs.
    pub hostname: String,
    /// The port remote servers listen on (25; another in tests).
    pub remote_port: u16,
    /// localserve: nothing leaves the machine (see `delivery::simulate`).
    pub localserve: bool,
}

/// Wakes the scheduler at once (a message was queued or released).
pub fn kick() {
    if let Some(cell) = ractor::registry::where_is(QUEUE_ACTOR) {
        let queue: ActorRef<QueueMsg> = cell.into();
        let _ = queue.cast(QueueMsg::Kick);
    }
}

pub enum QueueMsg {
    /// Look for due messages now.
    Kick,
}

pub struct Scheduler;

pub struct SchedulerState {
    settings: Arc<QueueSettings>,
    /// Workers in flight: their domain and messages.
    in_flight: HashMap<ractor::ActorId, (String, Vec<QueueId>)>,
}

impl Actor for Scheduler {
    type Msg = QueueMsg;
    type State = SchedulerState;
    type Arguments = QueueSettings;

    async fn pre_start(
        &self,
        myself: ActorRef<QueueMsg>,
        settings: QueueSettings,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        myself.send_interval(SCHEDULER_TICK, || QueueMsg::Kick);
        Ok(SchedulerState {
            settings: Arc::new(settings),
            in_flight: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<QueueMsg>,
        msg: QueueMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            QueueMsg::Kick => state.start_due(&myself).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<QueueMsg>,
        evt: SupervisionEvent,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, ..) => {
                state.in_flight.remove(&cell.get_id());
                state.start_due(&myself).await;
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some((domain, ids)) = state.in_flight.remove(&cell.get_id()) {
                    warn!(%domain, error = %err, "a delivery worker crashed; its messages wait for their next attempt");
                    let store = state.settings.store.clone();
                    let _ = crate::task::blocking(move || {
                        for id in ids {
                            if let Some(mut m) = store.queued(id)? {
                                delivery::reschedule(&mut m, "delivery worker crashed", now());
                                store.queue_update(&m)?;
                            }
                        }
                        Ok::<_, roost_store::StoreError>(())
                    })
                    .await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SchedulerState {
    /// Starts a worker for each domain with due messages and none in
    /// flight, up to [`MAX_DOMAINS_IN_FLIGHT`].
    async fn start_due(&mut self, myself: &ActorRef<QueueMsg>) {
        if self.in_flight.len() >= MAX_DOMAINS_IN_FLIGHT {
            return;
        }
        let store = self.settings.store.clone();
        let due = match crate::task::blocking(move || store.queue_due(now(), DUE_BATCH)).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot read the queue");
                return;
            }
        };
        let mut by_domain: Vec<(String, Vec<QueuedMessage>)> = Vec::new();
        for m in due {
            if self.in_flight.values().any(|(d, _)| *d == m.domain) {
                continue;
            }
            match by_domain.iter_mut().find(|(d, _)| *d == m.domain) {
                Some((_, list)) => list.push(m),
                None => by_domain.push((m.domain.clone(), vec![m])),
            }
        }
        for (domain, messages) in by_domain {
            if self.in_flight.len() >= MAX_DOMAINS_IN_FLIGHT {
                break;
            }
            let ids: Vec<QueueId> = messages.iter().map(|m| m.id).collect();
            let name = format!("delivery:{domain}");
            let args = delivery::WorkerArgs {
                settings: self.settings.clone(),
                domain: domain.clone(),
                messages,
            };
            match Actor::spawn_linked(None, delivery::Worker, args, myself.get_cell()).await {
                Ok((worker, _)) => {
                    self.settings.registry.register(
                        &worker.get_cell(),
                        ActorKind::Queue,
                        name,
                        Some(&myself.get_cell()),
                        0,
                    );
                    info!(%domain, messages = ids.len(), "delivery started");
                    self.in_flight.insert(worker.get_id(), (domain, ids));
                }
                Err(e) => warn!(%domain, error = %e, "cannot start a delivery worker"),
            }
        }
    }
}

pub(crate) fn now() -> i64 {
    crate::time::now_unix()
}
