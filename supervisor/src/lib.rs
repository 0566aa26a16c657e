//! Supervision over ractor for roost: restart strategies and policies,
//! intensity limits with escalation, exponential backoff, and the live
//! registry of every actor behind `roost admin tree`.
//!
//! The shape follows OTP's supervisor. A [`Supervisor`] is an ordinary ractor
//! actor that starts the children named by its [`ChildSpec`]s, linked to it,
//! and restarts them by [`Strategy`] and [`Restart`] policy. Too many restarts
//! within its [`Intensity`] window make it fail, so its own parent decides
//! (escalation). Every supervisor records itself and its children in a shared
//! [`Registry`], whose [`Registry::snapshot`] is the live tree.
//!
//! This crate knows nothing of mail: the actors it supervises live in
//! `roost-actors`, and the admin socket that prints the tree lives in the binary.

#![forbid(unsafe_code)]

mod registry;
mod spec;
mod supervisor;

#[cfg(test)]
mod test_support;

pub use registry::{render_text, ActorKind, Registry, RegistryEntry, Status, TreeNode};
pub use spec::{
    Backoff, ChildSpec, Intensity, Restart, SpawnFn, Strategy, DEFAULT_BACKOFF_INITIAL,
    DEFAULT_BACKOFF_MAX, DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW,
};
pub use supervisor::{
    children, fail_child, start_child, terminate_child, ChildError, ScheduledRestart, Supervisor,
    SupervisorArgs, SupervisorError, SupervisorMsg, SupervisorState, KILL_TIMEOUT,
    NAME_RELEASE_TIMEOUT, SHUTDOWN_TIMEOUT,
};
