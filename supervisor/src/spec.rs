//! How a supervisor is told what to run and how to react when a child ends:
//! child specs, restart policies, strategies, intensity limits and backoff.
//!
//! These are plain values; the [`crate::Supervisor`] actor applies them. The
//! vocabulary follows OTP's supervisor (`one_for_one`, `permanent`,
//! `intensity`/`period`) so the behaviour can be checked against its manual.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, SpawnErr};

use crate::registry::ActorKind;

/// OTP's default intensity is 1 restart in 5 s; roost's actors reload from the
/// store on start, so a few quick restarts are cheap and worth allowing.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// The window in which [`DEFAULT_MAX_RESTARTS`] restarts are tolerated.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(5);
/// The first restart after a quiet window waits this long.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// No restart waits longer than this.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Which children are restarted when one of them must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that ended.
    #[default]
    OneForOne,
    /// Every child: the others are stopped (in reverse start order) and all are
    /// started again in spec order.
    OneForAll,
    /// The child that ended and every child started after it, in spec order.
    RestForOne,
}

/// Whether a child that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted, even after a normal stop.
    Permanent,
    /// Restarted only after a failure (a panic, an error, or `FailChild`);
    /// after a normal stop it is removed.
    Transient,
    /// Never restarted; removed when it ends, and removed (not restarted) when
    /// a sibling's failure makes the supervisor stop it.
    Temporary,
}

/// At most `max_restarts` restarts within any `within` window; one more and the
/// supervisor gives up and fails, so its own parent decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub within: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Self {
            max_restarts: DEFAULT_MAX_RESTARTS,
            within: DEFAULT_RESTART_WINDOW,
        }
    }
}

/// Exponential delay before a restart: `initial` for the first restart in the
/// intensity window, doubling for each further one, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: DEFAULT_BACKOFF_INITIAL,
            max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl Backoff {
    /// No delay at all; restarts happen as soon as the supervisor gets to them.
    pub const NONE: Backoff = Backoff {
        initial: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The delay before the `nth` restart inside the current window (1-based;
    /// 0 is treated as 1).
    pub fn delay(&self, nth: u32) -> Duration {
        let mut delay = self.initial.min(self.max);
        for _ in 1..nth {
            if delay >= self.max {
                break;
            }
            delay = delay.saturating_mul(2).min(self.max);
        }
        delay
    }
}

/// Spawns one child, linked to the supervisor whose cell it is given.
pub type SpawnFn = Arc<
    dyn Fn(ActorCell) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>
        + Send
        + Sync,
>;

/// One child of a supervisor: its name, its kind, its restart policy and how to
/// start it. Cloning is cheap.
#[derive(Clone)]
pub struct ChildSpec {
    /// The roost name, unique among the supervisor's children. The helpers
    /// below also use it as the ractor name, so the child can be found with
    /// `ractor::registry::where_is`.
    pub name: String,
    pub kind: ActorKind,
    pub restart: Restart,
    /// Must spawn the actor linked to the given supervisor cell (for instance
    /// with `Actor::spawn_linked`); an unlinked child is linked afterwards.
    pub spawn: SpawnFn,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A spec from any spawning closure: `|sup| async move { ... }`.
    pub fn new<F, Fut>(name: impl Into<String>, kind: ActorKind, restart: Restart, spawn: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self {
            name: name.into(),
            kind,
            restart,
            spawn: Arc::new(move |sup| Box::pin(spawn(sup))),
        }
    }

    /// A spec that spawns `A` under the spec's name, with a fresh handler and
    /// arguments from `make` on every (re)start.
    pub fn linked<A, F>(name: impl Into<String>, kind: ActorKind, restart: Restart, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let name = name.into();
        let actor_name = name.clone();
        Self::new(name, kind, restart, move |sup| {
            let (actor, args) = make();
            let actor_name = actor_name.clone();
            async move {
                let (actor_ref, _join) =
                    A::spawn_linked(Some(actor_name), actor, args, sup).await?;
                Ok(actor_ref.get_cell())
            }
        })
    }

    /// A spec for a nested [`crate::Supervisor`]. The spec's name is what the
    /// parent registers and what ractor knows it by, whatever `args.name` says.
    pub fn supervisor<F>(name: impl Into<String>, restart: Restart, make: F) -> Self
    where
        F: Fn() -> crate::SupervisorArgs + Send + Sync + 'static,
    {
        Self::linked(name, ActorKind::Supervisor, restart, move || {
            (crate::Supervisor, make())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_initial_and_stops_at_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        assert_eq!(backoff.delay(0), Duration::from_millis(100));
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(3), Duration::from_millis(400));
        // The edge: the first doubling past max is capped, and stays capped.
        assert_eq!(backoff.delay(4), Duration::from_millis(500));
        assert_eq!(backoff.delay(5), Duration::from_millis(500));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn zero_backoff_never_waits() {
        assert_eq!(Backoff::NONE.delay(1), Duration::ZERO);
        let zero_initial = Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(1),
        };
        assert_eq!(zero_initial.delay(10), Duration::ZERO);
    }

    #[test]
    fn initial_above_max_is_capped() {
        let backoff = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(1),
        };
        assert_eq!(backoff.delay(1), Duration::from_secs(1));
    }
}
