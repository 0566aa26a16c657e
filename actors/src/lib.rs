//! roost's actors: the mail system as a tree of supervised actors.
//!
//! Account actors are the single writers of their accounts; mailbox actors hold
//! the live index of an open mailbox and fan change events out to the sessions
//! that watch it; listeners accept connections and start one session actor per
//! connection under the `connections` supervisor. Protocol syntax lives in
//! `roost-protocols`, persistence in `roost-store`, supervision in
//! `roost-supervisor`; this crate is where their effects meet.
#![forbid(unsafe_code)]

pub mod account;
pub mod admin;
pub mod auth;
pub mod client;
pub mod conn;
pub mod dns;
pub mod events;
pub mod http_client;
pub mod imap;
pub mod listener;
pub mod logins;
pub mod mailbox;
pub mod queue;
pub mod reports;
pub mod smtp;
pub mod summaries;
pub mod system;
pub mod task;
pub mod time;
pub mod tls;
