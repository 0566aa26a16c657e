//! roost's wire formats, sans-IO.
//!
//! Bytes go in and typed values come out; typed values go in and bytes come
//! out. Nothing here touches a socket, a file or a clock, so every parser can
//! be driven by unit tests and fuzzers alone. The session actors in
//! `roost-actors` own the sockets and apply the effects.
#![forbid(unsafe_code)]

pub mod imap;
pub mod message;
pub mod precis;
pub mod sasl;
pub mod smtp;
