//! SMTP (RFC 5321) for the server side, sans-IO: command parsing, replies,
//! and the connection reader that frames commands and message data.
//!
//! The session state machine (what is allowed when) lives in `roost-actors`;
//! this module only turns bytes into commands and replies into bytes.

pub mod client;
pub mod command;
pub mod conn;
pub mod dane;
pub mod dmarc;
pub mod mta_sts;
pub mod reply;
pub mod spf;
pub mod tlsrpt;

pub use command::{
    parse_command, Address, BodyType, Command, ForwardPath, MailParams, Notify, Param, RcptParams,
    Ret, ReversePath,
};
pub use conn::{DataOutcome, Event, SmtpReader, MAX_COMMAND_LINE};
pub use reply::{EnhancedCode, Reply, ReplyError};
