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

pub mod dane;
pub mod delivery;
pub mod dsn;
pub mod mta_sts;
pub mod transport;
pub mod webhooks;

use crate::dns::Dns;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use roost_store::{FinishedAs, QueueChange, QueueId, QueuedMessage, Store};
use roost_supervisor::{ActorKind, Registry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The registered name of the scheduler.
pub const QUEUE_ACTOR: &str = "queue";
/// The default retry schedule (`[queue] retry_after` sets another): the
/// first attempt is at once; after the n-th failed attempt the next waits
/// `[n - 1]` seconds: 7.5 minutes, 15, 30, 1 hour, 2, 4, 8 and 16; after
/// the last the message fails (about 32 hours in all). RFC 5321 4.5.4.1
/// suggests longer (30 minutes apart, 4-5 days); administrators who want
/// that configure it.
pub const RETRY_AFTER: [i64; 8] = [450, 900, 1800, 3600, 7200, 14400, 28800, 57600];
/// The most steps a configured schedule may have.
pub const MAX_RETRY_STEPS: usize = 32;
/// After this many failed attempts the sender hears that the message is
/// delayed (RFC 3464 "delayed"), once.
pub const DELAY_DSN_AFTER: u32 = 5;
/// Destination domains delivered to at once.
pub const MAX_DOMAINS_IN_FLIGHT: usize = 20;
/// Due messages read per look at the queue.
pub const DUE_BATCH: usize = 1000;
/// How often the scheduler looks for due messages when nothing wakes it.
pub const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// How often retired messages past their time are removed (seconds).
pub const RETIRED_PRUNE_EVERY: i64 = 60;
/// While a worker has a message, its due entry is this far ahead (past
/// the worker's deadline), so the scheduler does not pick it again.
pub const LEASE: i64 = delivery::WORKER_DEADLINE.as_secs() as i64 + 600;

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
    /// Seconds to wait after each failed attempt (see [`RETRY_AFTER`]).
    pub retry_after: Arc<Vec<i64>>,
    /// The configured transports and the routes to them.
    pub transports: Arc<transport::Transports>,
    /// The authorities MX certificates and MTA-STS policy servers are
    /// checked against where a policy asks (RFC 8461).
    pub mx_roots: Arc<rustls::RootCertStore>,
    /// The HTTPS port of MTA-STS policy servers (443; another in tests).
    pub mta_sts_port: u16,
}

/// Wakes the scheduler at once (a message was queued or released).
pub fn kick() {
    if let Some(cell) = ractor::registry::where_is(QUEUE_ACTOR) {
        let queue: ActorRef<QueueMsg> = cell.into();
        let _ = queue.cast(QueueMsg::Kick);
    }
}

/// Fails the queued messages `ids` now, each with a failure DSN to its
/// sender (`why` in it). How many failed, and how many were left alone
/// because a delivery worker has them.
pub async fn fail(ids: Vec<QueueId>, why: String) -> Result<(usize, usize), String> {
    let Some(cell) = ractor::registry::where_is(QUEUE_ACTOR) else {
        return Err("the queue is not running".into());
    };
    let queue: ActorRef<QueueMsg> = cell.into();
    ractor::call!(queue, QueueMsg::Fail, ids, why).map_err(|e| e.to_string())
}

pub enum QueueMsg {
    /// Look for due messages now.
    Kick,
    /// See [`fail`].
    Fail(Vec<QueueId>, String, ractor::RpcReplyPort<(usize, usize)>),
}

pub struct Scheduler;

pub struct SchedulerState {
    settings: Arc<QueueSettings>,
    /// Workers in flight: their lane (see [`lane`]) and messages.
    in_flight: HashMap<ractor::ActorId, (String, Vec<QueueId>)>,
    /// Unix seconds of the last pruning of retired messages.
    pruned: i64,
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
        // Messages a worker had when the process ended are due again.
        let store = settings.store.clone();
        let released = crate::task::blocking(move || store.queue_release_leases(now())).await?;
        if released > 0 {
            info!(
                released,
                "queued messages in flight at the last stop are due again"
            );
        }
        myself.send_interval(SCHEDULER_TICK, || QueueMsg::Kick);
        Ok(SchedulerState {
            settings: Arc::new(settings),
            in_flight: HashMap::new(),
            pruned: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<QueueMsg>,
        msg: QueueMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            QueueMsg::Kick => {
                state.prune_retired().await;
                state.start_due(&myself).await
            }
            QueueMsg::Fail(ids, why, reply) => {
                let (mut failed, mut busy) = (0, 0);
                for id in ids {
                    match state.fail_now(id, &why).await {
                        Some(true) => failed += 1,
                        Some(false) => busy += 1,
                        None => {}
                    }
                }
                let _ = reply.send((failed, busy));
            }
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
                    state.crashed(ids).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SchedulerState {
    /// A crashed worker's messages: counted as a failed attempt each,
    /// and failed with a DSN when that was the last.
    async fn crashed(&self, ids: Vec<QueueId>) {
        for id in ids {
            let store = self.settings.store.clone();
            let schedule = self.settings.retry_after.clone();
            let failed = crate::task::blocking(move || {
                store.queue_change_lazily(id, |m| {
                    // Finished by the worker before it crashed: as written.
                    if !m.in_flight {
                        return (QueueChange::Keep, None);
                    }
                    m.in_flight = false;
                    if delivery::reschedule(m, "delivery worker crashed", now(), &schedule) {
                        (QueueChange::Write, None)
                    } else {
                        // The last attempt: the DSN first (it reads the
                        // file), then the removal.
                        (QueueChange::Keep, Some(m.clone()))
                    }
                })
            })
            .await;
            if let Ok(Some(Some(m))) = failed {
                let why = format!(
                    "gave up after {} attempts: delivery worker crashed",
                    m.attempts
                );
                self.fail_with_dsn(m, why).await;
            }
        }
    }

    /// The admin fails a message now: `Some(true)` done, `Some(false)`
    /// a worker has it, `None` no such message.
    async fn fail_now(&self, id: QueueId, why: &str) -> Option<bool> {
        let store = self.settings.store.clone();
        let found = crate::task::blocking(move || {
            store.queue_change(id, |m| {
                (QueueChange::Keep, (!m.in_flight).then(|| m.clone()))
            })
        })
        .await
        .ok()
        .flatten()?;
        let Some(m) = found else {
            return Some(false);
        };
        self.fail_with_dsn(m, why.to_string()).await;
        Some(true)
    }

    /// A failure DSN for every waiting recipient, then the message
    /// leaves the queue.
    async fn fail_with_dsn(&self, m: QueuedMessage, why: String) {
        let rcpts: Vec<_> = m
            .recipients
            .iter()
            .map(|r| dsn::Entry::of(r, why.clone(), None))
            .collect();
        dsn::send(&self.settings, &m, &rcpts, dsn::Kind::Failed).await;
        let events = m
            .recipients
            .iter()
            .map(|r| ("failed", webhooks::about(&m, &r.address, Some(&why), None)))
            .collect();
        webhooks::emit_all(&self.settings.store, m.account.as_deref(), events).await;
        let (store, id) = (self.settings.store.clone(), m.id);
        let _ =
            crate::task::blocking(move || store.queue_retire(id, FinishedAs::Failed, &why)).await;
    }

    /// Retired messages past their time go, once every
    /// [`RETIRED_PRUNE_EVERY`] seconds.
    async fn prune_retired(&mut self) {
        let now = now();
        if now - self.pruned < RETIRED_PRUNE_EVERY {
            return;
        }
        self.pruned = now;
        let store = self.settings.store.clone();
        if let Err(e) = crate::task::blocking(move || store.prune_retired(now)).await {
            warn!(error = %e, "cannot prune retired queue messages");
        }
    }

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
        let busy: Vec<String> = self.in_flight.values().map(|(d, _)| d.clone()).collect();
        let room = MAX_DOMAINS_IN_FLIGHT - self.in_flight.len();
        let transports = self.settings.transports.clone();
        let lanes = group_by_lane(due, &busy, room, |m| {
            let name = transports.name_for(m);
            // Mail that says TLS-Required: No goes in a lane of its own,
            // where no MTA-STS policy applies.
            let suffix = if m.tls_optional {
                " (TLS optional)"
            } else {
                ""
            };
            (format!("{}{suffix}", lane(&m.domain, &name)), name)
        });
        for (key, transport, messages) in lanes {
            let domain = messages[0].domain.clone();
            let ids: Vec<QueueId> = messages.iter().map(|m| m.id).collect();
            // Leased to the worker: out of the due range until it is done.
            // Only what is still due as stored: the admin may have held,
            // rescheduled or dropped a message since the due list was
            // read. The worker gets the records as leased.
            let store = self.settings.store.clone();
            let lease = ids.clone();
            let leased = crate::task::blocking(move || {
                let at = now();
                let mut leased = Vec::new();
                for id in lease {
                    let taken = store.queue_change_lazily(id, |m| {
                        if m.hold || m.in_flight || m.next_attempt > at {
                            return (QueueChange::Keep, None);
                        }
                        m.in_flight = true;
                        m.next_attempt = at + LEASE;
                        (QueueChange::Write, Some(m.clone()))
                    })?;
                    leased.extend(taken.flatten());
                }
                Ok::<_, roost_store::StoreError>(leased)
            })
            .await;
            let messages = match leased {
                Ok(m) if !m.is_empty() => m,
                Ok(_) => continue,
                Err(e) => {
                    warn!(%domain, error = %e, "cannot lease queued messages");
                    continue;
                }
            };
            let ids: Vec<QueueId> = messages.iter().map(|m| m.id).collect();
            let name = format!("delivery:{key}");
            let args = delivery::WorkerArgs {
                settings: self.settings.clone(),
                tls_optional: messages[0].tls_optional,
                domain: domain.clone(),
                transport: self.settings.transports.get(&transport),
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
                    info!(%domain, %transport, messages = ids.len(), "delivery started");
                    self.in_flight.insert(worker.get_id(), (key, ids));
                }
                Err(e) => warn!(%domain, error = %e, "cannot start a delivery worker"),
            }
        }
    }
}

/// A worker's lane: its destination domain, and the transport when it
/// is not `direct` (`example.org via relay`).
fn lane(domain: &str, transport: &str) -> String {
    if transport == transport::DIRECT {
        domain.to_string()
    } else {
        format!("{domain} via {transport}")
    }
}

/// Due messages by lane (destination domain and transport, from
/// `lane_of`: the lane and the transport's name), in the order they
/// came, leaving out lanes a worker is busy with, for at most `room`
/// lanes.
fn group_by_lane(
    due: Vec<QueuedMessage>,
    busy: &[String],
    room: usize,
    lane_of: impl Fn(&QueuedMessage) -> (String, String),
) -> Vec<(String, String, Vec<QueuedMessage>)> {
    let mut groups: Vec<(String, String, Vec<QueuedMessage>)> = Vec::new();
    for m in due {
        let (key, transport) = lane_of(&m);
        if busy.contains(&key) {
            continue;
        }
        if let Some(i) = groups.iter().position(|(k, ..)| *k == key) {
            groups[i].2.push(m);
        } else if groups.len() < room {
            groups.push((key, transport, vec![m]));
        }
    }
    groups
}

pub(crate) fn now() -> i64 {
    crate::time::now_unix()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use roost_store::{FileId, QueuedRecipient};

    pub(crate) fn queued(id: u64, domain: &str) -> QueuedMessage {
        QueuedMessage {
            id: QueueId(id),
            created: 0,
            account: None,
            sender: "a@local.example".into(),
            domain: domain.into(),
            recipients: vec![QueuedRecipient {
                address: format!("b@{domain}"),
                last_error: None,
                notify: None,
                orcpt: None,
            }],
            file: FileId(id),
            header_prefix: Vec::new(),
            smtputf8: false,
            eight_bit: false,
            binary: false,
            requiretls: false,
            attempts: 0,
            next_attempt: 0,
            last_error: None,
            hold: false,
            delay_notified: false,
            transport: None,
            attempt_log: Vec::new(),
            done: Vec::new(),
            extra: Vec::new(),
            tls_optional: false,
            in_flight: false,
            ret: None,
            envid: None,
        }
    }

    /// MAX_DOMAINS_IN_FLIGHT workers at most: 20 lanes start, the 21st
    /// waits; busy lanes are left out; one lane's messages go to one
    /// worker; one domain by two transports is two lanes.
    #[test]
    fn due_messages_group_by_lane_up_to_the_room_left() {
        let direct = |m: &QueuedMessage| (m.domain.clone(), "direct".to_string());
        let due = |n: usize| -> Vec<QueuedMessage> {
            (0..n)
                .map(|i| queued(i as u64, &format!("d{i}.example")))
                .collect()
        };
        assert_eq!(
            group_by_lane(due(20), &[], MAX_DOMAINS_IN_FLIGHT, direct).len(),
            20
        );
        assert_eq!(
            group_by_lane(due(21), &[], MAX_DOMAINS_IN_FLIGHT, direct).len(),
            20
        );
        let mixed = vec![
            queued(1, "a.example"),
            queued(2, "b.example"),
            queued(3, "a.example"),
        ];
        let groups = group_by_lane(mixed, &["b.example".to_string()], 5, direct);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].0, "a.example");
        let ids: Vec<u64> = groups[0].2.iter().map(|m| m.id.0).collect();
        assert_eq!(ids, [1, 3]);
        let mut relayed = queued(4, "a.example");
        relayed.transport = Some("relay".into());
        let by_transport = |m: &QueuedMessage| {
            let t = m.transport.clone().unwrap_or("direct".into());
            (lane(&m.domain, &t), t)
        };
        let groups = group_by_lane(vec![queued(1, "a.example"), relayed], &[], 5, by_transport);
        let lanes: Vec<(&str, &str)> = groups
            .iter()
            .map(|(k, t, _)| (k.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            lanes,
            [("a.example", "direct"), ("a.example via relay", "relay")]
        );
    }

    /// The n-th failed attempt waits `schedule[n - 1]`; after the last
    /// step there is no next attempt (the default, and a configured one).
    #[test]
    fn the_retry_schedule_and_its_end() {
        let mut m = queued(1, "a.example");
        for (n, wait) in RETRY_AFTER.iter().enumerate() {
            assert!(delivery::reschedule(
                &mut m,
                "451 later",
                1000,
                &RETRY_AFTER
            ));
            assert_eq!((m.attempts as usize, m.next_attempt), (n + 1, 1000 + wait));
        }
        assert!(!delivery::reschedule(
            &mut m,
            "451 later",
            1000,
            &RETRY_AFTER
        ));
        assert_eq!(m.attempts as usize, RETRY_AFTER.len() + 1);
        let mut m = queued(2, "a.example");
        assert!(delivery::reschedule(&mut m, "451", 0, &[60]));
        assert_eq!(m.next_attempt, 60);
        assert!(!delivery::reschedule(&mut m, "451", 0, &[60]));
        assert_eq!(m.last_error.as_deref(), Some("451"));
    }
}
