//! Supervisor behaviour, observed through the registry, ractor's name registry
//! and the workers' start/stop log. Every test uses its own name prefix, since
//! ractor's name registry is global to the test process. Waits poll with a
//! deadline; timing assertions are lower bounds only.

use std::time::{Duration, Instant};

use ractor::{registry::where_is, ActorId, ActorRef, ActorStatus};

use super::*;
use crate::registry::render_text;
use crate::test_support::{eventually, slow_worker, worker, Log, WorkerMsg, DEADLINE};

const LONG: Duration = Duration::from_secs(3600);

/// No backoff and a loose intensity limit: restarts happen at once.
fn quick(name: &str, registry: &Registry) -> SupervisorArgs {
    SupervisorArgs::new(name, registry.clone())
        .backoff(Duration::ZERO, Duration::ZERO)
        .intensity(10, Duration::from_secs(60))
}

fn id_of(registry: &Registry, name: &str) -> ActorId {
    registry
        .find(name)
        .unwrap_or_else(|| panic!("{name} is not running"))
        .get_id()
}

fn send(registry: &Registry, name: &str, msg: WorkerMsg) {
    let cell = registry
        .find(name)
        .unwrap_or_else(|| panic!("{name} is not running"));
    assert!(cell.send_message(msg).is_ok(), "{name} refused a message");
}

/// Waits until a new incarnation of `name` (not `old`) is registered and alive.
async fn restarted(registry: &Registry, name: &str, old: ActorId) -> ActorId {
    eventually(&format!("{name} restarted"), || {
        registry.find(name).is_some_and(|cell| cell.get_id() != old)
    })
    .await;
    id_of(registry, name)
}

async fn wait_children(sup: &ActorRef<SupervisorMsg>, expected: &[&str]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let names = children(sup).await.expect("children");
        if names == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "children stayed {names:?}, wanted {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn restarts_of(registry: &Registry, id: ActorId) -> u32 {
    registry.entry(id).expect("registered").restarts
}

async fn stop(sup: ActorRef<SupervisorMsg>) {
    sup.stop_and_wait(None, Some(DEADLINE)).await.expect("stop");
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("o1", &reg)
        .child(worker("o1.a", Restart::Permanent, &log))
        .child(worker("o1.b", Restart::Permanent, &log))
        .child(worker("o1.c", Restart::Permanent, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");
    let (a, b, c) = (
        id_of(&reg, "o1.a"),
        id_of(&reg, "o1.b"),
        id_of(&reg, "o1.c"),
    );

    send(&reg, "o1.b", WorkerMsg::Panic);
    let b2 = restarted(&reg, "o1.b", b).await;

    assert_eq!(id_of(&reg, "o1.a"), a);
    assert_eq!(id_of(&reg, "o1.c"), c);
    assert_eq!(
        (log.starts("o1.a"), log.starts("o1.b"), log.starts("o1.c")),
        (1, 2, 1)
    );
    assert_eq!(restarts_of(&reg, b2), 1);
    assert_eq!(restarts_of(&reg, a), 0);
    // The new incarnation holds the ractor name again.
    assert_eq!(where_is("o1.b").map(|cell| cell.get_id()), Some(b2));
    assert_eq!(
        children(&sup).await.expect("children"),
        ["o1.a", "o1.b", "o1.c"]
    );

    // The tree: the supervisor with its children, the restarted one last.
    let tree = reg.snapshot();
    assert_eq!(tree.len(), 1);
    let names: Vec<&str> = tree[0].children.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["o1.a", "o1.c", "o1.b"]);
    let text = render_text(&tree);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("supervisor o1 running restarts=0 uptime="));
    assert!(lines[1].starts_with("├── other o1.a running restarts=0 uptime="));
    assert!(lines[3].starts_with("└── other o1.b running restarts=1 uptime="));
    assert!(lines.iter().all(|line| line.ends_with('s')));

    stop(sup).await;
}

#[tokio::test]
async fn one_for_all_restarts_every_child_in_order() {
    let (reg, log) = (Registry::new(), Log::default());
    // a takes a while to stop: its name must be free before it is respawned.
    let args = quick("oa", &reg)
        .strategy(Strategy::OneForAll)
        .child(slow_worker(
            "oa.a",
            Restart::Permanent,
            &log,
            Duration::from_millis(100),
        ))
        .child(worker("oa.b", Restart::Permanent, &log))
        .child(worker("oa.c", Restart::Transient, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");
    let (a, b, c) = (
        id_of(&reg, "oa.a"),
        id_of(&reg, "oa.b"),
        id_of(&reg, "oa.c"),
    );

    send(&reg, "oa.b", WorkerMsg::Panic);
    let a2 = restarted(&reg, "oa.a", a).await;
    let b2 = restarted(&reg, "oa.b", b).await;
    let c2 = restarted(&reg, "oa.c", c).await;

    assert_eq!(
        log.events(),
        [
            "start:oa.a",
            "start:oa.b",
            "start:oa.c", // first start
            "stop:oa.c",
            "stop:oa.a", // siblings stopped, last first
            "start:oa.a",
            "start:oa.b",
            "start:oa.c", // restarted in spec order
        ]
    );
    for id in [a2, b2, c2] {
        assert_eq!(restarts_of(&reg, id), 1);
    }
    stop(sup).await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_later_ones() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("rf", &reg)
        .strategy(Strategy::RestForOne)
        .child(worker("rf.a", Restart::Permanent, &log))
        .child(worker("rf.b", Restart::Permanent, &log))
        .child(worker("rf.c", Restart::Permanent, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");
    let (a, b, c) = (
        id_of(&reg, "rf.a"),
        id_of(&reg, "rf.b"),
        id_of(&reg, "rf.c"),
    );

    send(&reg, "rf.b", WorkerMsg::Fail);
    restarted(&reg, "rf.b", b).await;
    restarted(&reg, "rf.c", c).await;

    assert_eq!(id_of(&reg, "rf.a"), a);
    assert_eq!(
        log.events(),
        [
            "start:rf.a",
            "start:rf.b",
            "start:rf.c",
            "stop:rf.c",
            "start:rf.b",
            "start:rf.c"
        ]
    );
    stop(sup).await;
}

#[tokio::test]
async fn transient_child_restarts_after_failure_only() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("tr", &reg)
        .child(worker("tr.quits", Restart::Transient, &log))
        .child(worker("tr.fails", Restart::Transient, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");

    send(&reg, "tr.quits", WorkerMsg::Stop);
    wait_children(&sup, &["tr.fails"]).await;
    assert_eq!(log.starts("tr.quits"), 1);
    assert!(reg.entries().iter().all(|e| e.name != "tr.quits"));

    let fails = id_of(&reg, "tr.fails");
    send(&reg, "tr.fails", WorkerMsg::Panic);
    restarted(&reg, "tr.fails", fails).await;
    assert_eq!(log.starts("tr.fails"), 2);
    stop(sup).await;
}

#[tokio::test]
async fn permanent_child_restarts_after_a_normal_stop() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("pm", &reg).child(worker("pm.a", Restart::Permanent, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");
    let a = id_of(&reg, "pm.a");
    send(&reg, "pm.a", WorkerMsg::Stop);
    let a2 = restarted(&reg, "pm.a", a).await;
    assert_eq!(restarts_of(&reg, a2), 1);
    stop(sup).await;
}

#[tokio::test]
async fn temporary_children_are_never_restarted() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("tm", &reg)
        .strategy(Strategy::OneForAll)
        .child(worker("tm.perm", Restart::Permanent, &log))
        .child(worker("tm.crash", Restart::Temporary, &log))
        .child(worker("tm.bystander", Restart::Temporary, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");

    // A temporary child's own failure: removed, nothing else restarted.
    let perm = id_of(&reg, "tm.perm");
    send(&reg, "tm.crash", WorkerMsg::Panic);
    wait_children(&sup, &["tm.perm", "tm.bystander"]).await;
    assert_eq!(id_of(&reg, "tm.perm"), perm);

    // A sibling's failure stops a temporary child for good.
    send(&reg, "tm.perm", WorkerMsg::Panic);
    restarted(&reg, "tm.perm", perm).await;
    wait_children(&sup, &["tm.perm"]).await;
    assert_eq!(log.starts("tm.crash"), 1);
    assert_eq!(log.starts("tm.bystander"), 1);
    assert_eq!(log.count("stop:tm.bystander"), 1);
    assert!(reg.find("tm.bystander").is_none());
    stop(sup).await;
}

#[tokio::test]
async fn fail_child_counts_as_a_failure() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("fc", &reg).child(worker("fc.a", Restart::Transient, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");
    let a = id_of(&reg, "fc.a");

    fail_child(&sup, "fc.a").await.expect("fail_child");
    let a2 = restarted(&reg, "fc.a", a).await;
    assert_eq!(restarts_of(&reg, a2), 1);
    assert_eq!(log.starts("fc.a"), 2);
    // Killed, not stopped: no post_stop ran.
    assert_eq!(log.count("stop:fc.a"), 0);

    let err = fail_child(&sup, "fc.nobody")
        .await
        .expect_err("unknown child");
    assert_eq!(err, "no child named fc.nobody");
    stop(sup).await;
}

/// A nested supervisor and the worker under it, both with an id.
fn nested(prefix: &str, reg: &Registry, log: &Log, inner_max: u32) -> SupervisorArgs {
    let (inner, w) = (format!("{prefix}.inner"), format!("{prefix}.w"));
    let (inner_reg, inner_log) = (reg.clone(), log.clone());
    let inner_name = inner.clone();
    quick(&format!("{prefix}.outer"), reg).child(ChildSpec::supervisor(
        inner,
        Restart::Permanent,
        move || {
            quick(&inner_name, &inner_reg)
                .intensity(inner_max, Duration::from_secs(60))
                .child(worker(&w, Restart::Permanent, &inner_log))
        },
    ))
}

#[tokio::test]
async fn too_many_restarts_escalate_to_the_parent() {
    let (reg, log) = (Registry::new(), Log::default());
    let (outer, _) = Supervisor::start(nested("es", &reg, &log, 2), None)
        .await
        .expect("start");
    let inner = id_of(&reg, "es.inner");
    let mut w = id_of(&reg, "es.w");

    // At the limit: two restarts within the window are absorbed by inner.
    for round in 1..=2 {
        send(&reg, "es.w", WorkerMsg::Panic);
        w = restarted(&reg, "es.w", w).await;
        assert_eq!(restarts_of(&reg, w), round);
        assert_eq!(id_of(&reg, "es.inner"), inner);
    }

    // One past it: inner fails, outer restarts inner, which starts w afresh.
    send(&reg, "es.w", WorkerMsg::Panic);
    let inner2 = restarted(&reg, "es.inner", inner).await;
    let w2 = restarted(&reg, "es.w", w).await;
    assert_eq!(restarts_of(&reg, inner2), 1);
    assert_eq!(restarts_of(&reg, w2), 0);
    assert_eq!(log.starts("es.w"), 4);

    eventually("tree settles", || {
        let tree = reg.snapshot();
        tree.len() == 1
            && tree[0].children.len() == 1
            && tree[0].children[0].status == Status::Running
            && tree[0].children[0].children.len() == 1
    })
    .await;
    let tree = reg.snapshot();
    assert_eq!(tree[0].name, "es.outer");
    assert_eq!(tree[0].children[0].name, "es.inner");
    assert_eq!(tree[0].children[0].children[0].name, "es.w");
    stop(outer).await;
}

#[tokio::test]
async fn a_top_supervisor_past_its_limit_fails() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("top", &reg)
        .intensity(1, Duration::from_secs(60))
        .child(worker("top.a", Restart::Permanent, &log));
    let (sup, join) = Supervisor::start(args, None).await.expect("start");
    let a = id_of(&reg, "top.a");
    send(&reg, "top.a", WorkerMsg::Panic);
    let a2 = restarted(&reg, "top.a", a).await;
    assert_eq!(sup.get_status(), ActorStatus::Running);

    send(&reg, "top.a", WorkerMsg::Panic);
    tokio::time::timeout(DEADLINE, join)
        .await
        .expect("supervisor ended")
        .expect("join");
    assert_eq!(sup.get_status(), ActorStatus::Stopped);
    assert!(reg.find("top.a").is_none());
    assert!(where_is("top").is_none());
    assert!(reg.entry(a2).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_a_nested_supervisor_respawns_its_children_under_their_names() {
    let (reg, log) = (Registry::new(), Log::default());
    let (outer, _) = Supervisor::start(nested("ns", &reg, &log, 5), None)
        .await
        .expect("start");
    let (inner, w) = (id_of(&reg, "ns.inner"), id_of(&reg, "ns.w"));

    // ractor kills w without waiting when inner is killed; the new inner must
    // still be able to register w's name.
    fail_child(&outer, "ns.inner").await.expect("fail_child");
    let inner2 = restarted(&reg, "ns.inner", inner).await;
    restarted(&reg, "ns.w", w).await;
    // The new inner registers itself as it starts; the parent's entry,
    // which carries the restart count, can land a moment later.
    let counted = tokio::time::timeout(DEADLINE, async {
        while restarts_of(&reg, inner2) != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "restarts: {}", restarts_of(&reg, inner2));
    assert_eq!(log.starts("ns.w"), 2);
    stop(outer).await;
}

#[tokio::test]
async fn backoff_delays_the_restart() {
    let (reg, log) = (Registry::new(), Log::default());
    let initial = Duration::from_millis(100);
    let args = quick("bo", &reg)
        .backoff(initial, Duration::from_secs(10))
        .child(worker("bo.a", Restart::Permanent, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");

    let a = id_of(&reg, "bo.a");
    let t0 = Instant::now();
    send(&reg, "bo.a", WorkerMsg::Panic);
    let a2 = restarted(&reg, "bo.a", a).await;
    assert!(t0.elapsed() >= initial);

    // Second restart inside the window: twice the delay.
    let t1 = Instant::now();
    send(&reg, "bo.a", WorkerMsg::Panic);
    restarted(&reg, "bo.a", a2).await;
    assert!(t1.elapsed() >= initial * 2);
    stop(sup).await;
}

#[tokio::test]
async fn pending_restart_shows_restarting_and_leaves_the_mailbox_open() {
    let (reg, log) = (Registry::new(), Log::default());
    let args =
        quick("pr", &reg)
            .backoff(LONG, LONG)
            .child(worker("pr.a", Restart::Permanent, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");

    send(&reg, "pr.a", WorkerMsg::Panic);
    eventually("placeholder marked restarting", || {
        reg.entries()
            .iter()
            .any(|e| e.name == "pr.a" && e.status == Status::Restarting)
    })
    .await;
    // The supervisor answers while the restart waits.
    assert_eq!(children(&sup).await.expect("children"), ["pr.a"]);
    assert!(reg.find("pr.a").is_none());
    assert_eq!(reg.snapshot()[0].children[0].status, Status::Restarting);
    let err = fail_child(&sup, "pr.a").await.expect_err("not running");
    assert!(err.contains("not running"), "{err}");

    // Terminating it cancels the pending restart and drops the placeholder.
    terminate_child(&sup, "pr.a").await.expect("terminate");
    assert!(children(&sup).await.expect("children").is_empty());
    assert!(reg.entries().iter().all(|e| e.name != "pr.a"));
    assert_eq!(log.starts("pr.a"), 1);
    stop(sup).await;
}

#[tokio::test]
async fn dynamic_children_start_and_terminate() {
    let (reg, log) = (Registry::new(), Log::default());
    let (sup, _) = Supervisor::start(quick("dy", &reg), None)
        .await
        .expect("start");

    let cell = start_child(&sup, worker("dy.x", Restart::Temporary, &log))
        .await
        .expect("start_child");
    assert_eq!(reg.find("dy.x").map(|c| c.get_id()), Some(cell.get_id()));
    let dup = start_child(&sup, worker("dy.x", Restart::Temporary, &log)).await;
    assert_eq!(
        dup.expect_err("duplicate"),
        "a child named dy.x already exists"
    );

    let broken = ChildSpec::new(
        "dy.broken",
        ActorKind::Session,
        Restart::Temporary,
        |_| async { Err(SpawnErr::StartupFailed("no socket".into())) },
    );
    let err = start_child(&sup, broken).await.expect_err("spawn fails");
    assert!(
        err.contains("dy.broken") && err.contains("no socket"),
        "{err}"
    );
    assert_eq!(children(&sup).await.expect("children"), ["dy.x"]);

    terminate_child(&sup, "dy.x").await.expect("terminate");
    assert_eq!(log.count("stop:dy.x"), 1);
    assert!(children(&sup).await.expect("children").is_empty());
    assert!(reg.find("dy.x").is_none());
    let err = terminate_child(&sup, "dy.x").await.expect_err("gone");
    assert_eq!(err, "no child named dy.x");
    stop(sup).await;
}

#[tokio::test]
async fn stopping_a_supervisor_stops_children_in_reverse_order() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("st", &reg)
        .child(worker("st.a", Restart::Permanent, &log))
        .child(worker("st.b", Restart::Permanent, &log))
        .child(worker("st.c", Restart::Permanent, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");
    stop(sup).await;
    let stops: Vec<String> = log
        .events()
        .into_iter()
        .filter(|e| e.starts_with("stop:"))
        .collect();
    assert_eq!(stops, ["stop:st.c", "stop:st.b", "stop:st.a"]);
    assert!(reg.entries().is_empty());
    assert!(where_is("st.a").is_none());
}

#[tokio::test]
async fn a_child_that_cannot_start_fails_the_supervisor_start() {
    let (reg, log) = (Registry::new(), Log::default());
    let broken = ChildSpec::new("sf.b", ActorKind::Other, Restart::Permanent, |_| async {
        Err(SpawnErr::StartupFailed("broken".into()))
    });
    let args = quick("sf", &reg)
        .child(worker("sf.a", Restart::Permanent, &log))
        .child(broken);
    let err = Supervisor::start(args, None)
        .await
        .expect_err("start fails");
    assert!(err.to_string().contains("sf.b"), "{err}");
    // The child that did start was stopped, and every name is free again.
    assert_eq!(log.count("stop:sf.a"), 1);
    assert!(where_is("sf.a").is_none() && where_is("sf").is_none());
    assert!(reg.snapshot().is_empty());
}

#[tokio::test]
async fn duplicate_child_names_are_refused_at_start() {
    let (reg, log) = (Registry::new(), Log::default());
    let args = quick("dn", &reg)
        .child(worker("dn.a", Restart::Permanent, &log))
        .child(worker("dn.a", Restart::Permanent, &log));
    let err = Supervisor::start(args, None).await.expect_err("refused");
    assert!(
        err.to_string().contains("two children are named dn.a"),
        "{err}"
    );
    assert_eq!(log.starts("dn.a"), 0);
}

#[tokio::test]
async fn restarts_outside_the_window_are_forgotten() {
    let (reg, log) = (Registry::new(), Log::default());
    let window = Duration::from_millis(200);
    let args =
        quick("qw", &reg)
            .intensity(1, window)
            .child(worker("qw.a", Restart::Permanent, &log));
    let (sup, _) = Supervisor::start(args, None).await.expect("start");
    let mut a = id_of(&reg, "qw.a");
    for _ in 0..2 {
        send(&reg, "qw.a", WorkerMsg::Panic);
        a = restarted(&reg, "qw.a", a).await;
        // Let the window pass: the next failure is again the first in it.
        tokio::time::sleep(window + Duration::from_millis(100)).await;
    }
    assert_eq!(sup.get_status(), ActorStatus::Running);
    assert_eq!(restarts_of(&reg, a), 2);
    stop(sup).await;
}

#[tokio::test]
async fn a_child_that_cannot_restart_escalates() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    let (reg, log) = (Registry::new(), Log::default());
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let flaky = ChildSpec::new("fr.a", ActorKind::Other, Restart::Permanent, move |sup| {
        let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
        let log = log.clone();
        async move {
            if !first {
                return Err(SpawnErr::StartupFailed("store unavailable".into()));
            }
            let args = crate::test_support::WorkerArgs::new("fr.a", &log);
            let (actor, _) =
                Actor::spawn_linked(Some("fr.a".into()), crate::test_support::Worker, args, sup)
                    .await?;
            Ok(actor.get_cell())
        }
    });
    let args = quick("fr", &reg)
        .intensity(2, Duration::from_secs(60))
        .child(flaky);
    let (sup, join) = Supervisor::start(args, None).await.expect("start");

    send(&reg, "fr.a", WorkerMsg::Panic);
    tokio::time::timeout(DEADLINE, join)
        .await
        .expect("supervisor ended")
        .expect("join");
    assert_eq!(sup.get_status(), ActorStatus::Stopped);
    // The first start, then one attempt per allowed restart.
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}
