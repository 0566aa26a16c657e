//! The live registry: a record of every actor in the tree, for `roost admin tree`
//! and for finding an actor by its roost name.
//!
//! Supervisors register themselves and every child they spawn; other actors may
//! register the helpers they own. The registry only records: it never starts,
//! stops or links anything, and ractor's own name registry stays the place where
//! names are reserved. An entry whose actor has died is pruned the next time the
//! registry is read, unless its supervisor marked it [`Status::Restarting`]: that
//! entry stands in for the child until the replacement is registered.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use ractor::{ActorCell, ActorId, ActorStatus};
use serde::{Deserialize, Serialize};

/// What an actor is for; shown as the first column of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Supervisor,
    Account,
    Mailbox,
    Listener,
    Session,
    Queue,
    Report,
    Http,
    Admin,
    Other,
}

impl ActorKind {
    /// The lowercase word used in text output and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Supervisor => "supervisor",
            Self::Account => "account",
            Self::Mailbox => "mailbox",
            Self::Listener => "listener",
            Self::Session => "session",
            Self::Queue => "queue",
            Self::Report => "report",
            Self::Http => "http",
            Self::Admin => "admin",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an actor stands in its supervisor's eyes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    /// The actor ended and its supervisor will start a replacement (possibly
    /// after a backoff delay).
    Restarting,
    /// Its supervisor is stopping it.
    Stopping,
}

impl Status {
    /// The lowercase word used in text output and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Stopping => "stopping",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registered actor.
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    pub id: ActorId,
    pub kind: ActorKind,
    pub name: String,
    pub parent: Option<ActorId>,
    pub started_at: SystemTime,
    /// How many times the child spec behind this actor has been restarted.
    pub restarts: u32,
    pub status: Status,
    pub cell: ActorCell,
    /// Registration order; breaks ties between equal `started_at` values.
    seq: u64,
}

impl RegistryEntry {
    /// True while the actor itself is alive (not stopping, not stopped).
    pub fn is_alive(&self) -> bool {
        is_alive(&self.cell)
    }

    /// Dead entries are pruned, except a placeholder for a pending restart.
    fn is_shown(&self) -> bool {
        self.status == Status::Restarting || self.is_alive()
    }
}

fn is_alive(cell: &ActorCell) -> bool {
    cell.get_status() < ActorStatus::Stopping
}

/// One actor in a [`Registry::snapshot`], with its children ordered by start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    pub kind: ActorKind,
    pub name: String,
    pub status: Status,
    pub restarts: u32,
    pub uptime_secs: u64,
    pub children: Vec<TreeNode>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ActorId, RegistryEntry>,
    next_seq: u64,
}

impl Inner {
    fn prune(&mut self) {
        self.entries.retain(|_, entry| entry.is_shown());
    }

    fn insert(
        &mut self,
        cell: &ActorCell,
        kind: ActorKind,
        name: String,
        parent: Option<ActorId>,
        restarts: u32,
    ) {
        let id = cell.get_id();
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.kind = kind;
            entry.name = name;
            entry.parent = parent;
            entry.restarts = restarts;
            entry.status = Status::Running;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            id,
            RegistryEntry {
                id,
                kind,
                name,
                parent,
                started_at: SystemTime::now(),
                restarts,
                status: Status::Running,
                cell: cell.clone(),
                seq,
            },
        );
    }
}

/// The shared record of live actors. Cheap to clone; every clone sees the same
/// entries.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("entries", &self.lock().entries.len())
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A panic while holding the lock leaves the map consistent (every update is
    /// a single insert or field write), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `cell`, or updates its entry if it is already recorded (keeping
    /// the original start time). The status becomes [`Status::Running`].
    pub fn register(
        &self,
        cell: &ActorCell,
        kind: ActorKind,
        name: impl Into<String>,
        parent: Option<&ActorCell>,
        restarts: u32,
    ) {
        let parent = parent.map(ActorCell::get_id);
        self.lock()
            .insert(cell, kind, name.into(), parent, restarts);
    }

    /// Records `cell` unless it is already recorded. A supervisor registers
    /// itself this way so that its parent's registration, which knows the
    /// restart count, wins whichever comes first.
    pub(crate) fn register_if_absent(&self, cell: &ActorCell, kind: ActorKind, name: &str) {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&cell.get_id()) {
            inner.insert(cell, kind, name.to_owned(), None, 0);
        }
    }

    /// Sets the parent of `id` if its entry has none yet.
    pub(crate) fn adopt(&self, id: ActorId, parent: ActorId) {
        if let Some(entry) = self.lock().entries.get_mut(&id) {
            entry.parent.get_or_insert(parent);
        }
    }

    pub fn unregister(&self, id: ActorId) {
        self.lock().entries.remove(&id);
    }

    /// Changes the status of a recorded actor; does nothing for an unknown id.
    pub fn set_status(&self, id: ActorId, status: Status) {
        if let Some(entry) = self.lock().entries.get_mut(&id) {
            entry.status = status;
        }
    }

    /// The live actor registered under `name`; the newest one if several are.
    pub fn find(&self, name: &str) -> Option<ActorCell> {
        self.lock()
            .entries
            .values()
            .filter(|entry| entry.name == name && entry.is_alive())
            .max_by_key(|entry| entry.seq)
            .map(|entry| entry.cell.clone())
    }

    /// The entry for `id`, if it is recorded and not pruned.
    pub fn entry(&self, id: ActorId) -> Option<RegistryEntry> {
        let mut inner = self.lock();
        inner.prune();
        inner.entries.get(&id).cloned()
    }

    /// Every recorded entry (dead actors pruned), in registration order.
    pub fn entries(&self) -> Vec<RegistryEntry> {
        let mut inner = self.lock();
        inner.prune();
        let mut entries: Vec<RegistryEntry> = inner.entries.values().cloned().collect();
        entries.sort_by_key(|entry| entry.seq);
        entries
    }

    /// The tree of recorded actors: the roots (entries without a recorded
    /// parent), each with its children ordered by start time. Dead actors are
    /// pruned first.
    pub fn snapshot(&self) -> Vec<TreeNode> {
        let mut entries = self.entries();
        entries.sort_by_key(|entry| (entry.started_at, entry.seq));
        let known: std::collections::HashSet<ActorId> = entries.iter().map(|e| e.id).collect();
        let mut children: HashMap<ActorId, Vec<&RegistryEntry>> = HashMap::new();
        let mut roots = Vec::new();
        for entry in &entries {
            match entry.parent.filter(|parent| known.contains(parent)) {
                Some(parent) => children.entry(parent).or_default().push(entry),
                None => roots.push(entry),
            }
        }
        let now = SystemTime::now();
        roots
            .into_iter()
            .map(|root| build_node(root, &children, now))
            .collect()
    }
}

/// Each entry has one parent, so a walk from the roots visits every node once.
fn build_node(
    entry: &RegistryEntry,
    children: &HashMap<ActorId, Vec<&RegistryEntry>>,
    now: SystemTime,
) -> TreeNode {
    let kids = children
        .get(&entry.id)
        .map(|kids| {
            kids.iter()
                .map(|kid| build_node(kid, children, now))
                .collect()
        })
        .unwrap_or_default();
    TreeNode {
        kind: entry.kind,
        name: entry.name.clone(),
        status: entry.status,
        restarts: entry.restarts,
        uptime_secs: now
            .duration_since(entry.started_at)
            .unwrap_or_default()
            .as_secs(),
        children: kids,
    }
}

/// Renders a snapshot as an indented tree, one line per actor, drawn like the
/// `tree` command:
///
/// ```text
/// supervisor root running restarts=0 uptime=12s
/// ├── account account:alice running restarts=1 uptime=3s
/// │   └── mailbox mailbox:1 running restarts=0 uptime=1s
/// └── http http running restarts=0 uptime=12s
/// ```
pub fn render_text(nodes: &[TreeNode]) -> String {
    let mut out = String::new();
    for node in nodes {
        write_line(&mut out, "", node);
        write_children(&mut out, "", &node.children);
    }
    out
}

fn write_children(out: &mut String, prefix: &str, children: &[TreeNode]) {
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        write_line(out, &format!("{prefix}{branch}"), child);
        write_children(out, &format!("{prefix}{indent}"), &child.children);
    }
}

fn write_line(out: &mut String, lead: &str, node: &TreeNode) {
    out.push_str(&format!(
        "{lead}{} {} {} restarts={} uptime={}s\n",
        node.kind, node.name, node.status, node.restarts, node.uptime_secs
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{eventually, Log, Worker, WorkerArgs};
    use ractor::Actor;

    fn leaf(kind: ActorKind, name: &str, restarts: u32, uptime_secs: u64) -> TreeNode {
        TreeNode {
            kind,
            name: name.to_owned(),
            status: Status::Running,
            restarts,
            uptime_secs,
            children: Vec::new(),
        }
    }

    #[test]
    fn registry_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Registry>();
    }

    #[test]
    fn render_text_draws_the_tree() {
        let mut account = leaf(ActorKind::Account, "account:alice", 1, 3);
        account
            .children
            .push(leaf(ActorKind::Mailbox, "mailbox:1", 0, 1));
        let mut queue = leaf(ActorKind::Supervisor, "queue", 0, 12);
        queue.status = Status::Restarting;
        queue
            .children
            .push(leaf(ActorKind::Queue, "scheduler", 0, 12));
        let mut root = leaf(ActorKind::Supervisor, "root", 0, 12);
        root.children = vec![account, queue, leaf(ActorKind::Http, "http", 0, 12)];
        let other = leaf(ActorKind::Other, "loose", 0, 0);

        let expected = "\
supervisor root running restarts=0 uptime=12s
├── account account:alice running restarts=1 uptime=3s
│   └── mailbox mailbox:1 running restarts=0 uptime=1s
├── supervisor queue restarting restarts=0 uptime=12s
│   └── queue scheduler running restarts=0 uptime=12s
└── http http running restarts=0 uptime=12s
other loose running restarts=0 uptime=0s
";
        assert_eq!(render_text(&[root, other]), expected);
        assert_eq!(render_text(&[]), "");
    }

    #[test]
    fn tree_node_serialises_with_lowercase_words() {
        let node = leaf(ActorKind::Account, "account:bob", 2, 7);
        let json = serde_json::to_string(&node).expect("serialise");
        assert_eq!(
            json,
            r#"{"kind":"account","name":"account:bob","status":"running","restarts":2,"uptime_secs":7,"children":[]}"#
        );
        let back: TreeNode = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, node);
        assert_eq!(
            serde_json::to_string(&Status::Restarting).expect("serialise"),
            r#""restarting""#
        );
    }

    #[tokio::test]
    async fn snapshot_nests_children_and_drops_dead_actors() {
        let registry = Registry::new();
        let log = Log::default();
        let spawn = |name: &str| Worker::spawn(None, Worker, WorkerArgs::new(name, &log));
        let (root, _) = spawn("reg.root").await.expect("spawn root");
        let (first, _) = spawn("reg.first").await.expect("spawn first");
        let (second, _) = spawn("reg.second").await.expect("spawn second");
        let (loose, _) = spawn("reg.loose").await.expect("spawn loose");
        let root = root.get_cell();
        registry.register(&root, ActorKind::Supervisor, "root", None, 0);
        registry.register(
            &first.get_cell(),
            ActorKind::Account,
            "first",
            Some(&root),
            1,
        );
        registry.register(
            &second.get_cell(),
            ActorKind::Other,
            "second",
            Some(&root),
            0,
        );
        registry.register(&loose.get_cell(), ActorKind::Other, "loose", None, 0);

        let tree = registry.snapshot();
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[0].name, "root");
        let names: Vec<&str> = tree[0].children.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(tree[0].children[0].restarts, 1);
        assert_eq!(tree[1].name, "loose");

        // Killed without anyone unregistering it: pruned all the same.
        first.kill();
        loose.stop(None);
        eventually("dead actors pruned", || {
            let tree = registry.snapshot();
            tree.len() == 1 && tree[0].children.len() == 1
        })
        .await;
        assert_eq!(registry.snapshot()[0].children[0].name, "second");
        assert!(registry.find("first").is_none());
        assert!(registry.find("second").is_some());
        assert_eq!(registry.entries().len(), 2);

        root.stop(None);
        second.stop(None);
    }

    #[tokio::test]
    async fn restarting_placeholder_survives_pruning_and_find_skips_it() {
        let registry = Registry::new();
        let log = Log::default();
        let (worker, _) = Worker::spawn(None, Worker, WorkerArgs::new("reg.placeholder", &log))
            .await
            .expect("spawn");
        let cell = worker.get_cell();
        registry.register(&cell, ActorKind::Account, "account:x", None, 0);
        registry.set_status(cell.get_id(), Status::Restarting);
        cell.stop_and_wait(None, None).await.expect("stop");

        let tree = registry.snapshot();
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].status, Status::Restarting);
        assert!(registry.find("account:x").is_none());

        registry.unregister(cell.get_id());
        assert!(registry.snapshot().is_empty());
    }
}
