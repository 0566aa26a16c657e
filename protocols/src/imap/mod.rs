//! The IMAP server side, sans-IO (RFC 9051, IMAP4rev2, with the rev1
//! commands clients still send).
//!
//! Bytes from the client go through [`framer::Framer`] into whole commands,
//! [`parser::parse_command`] turns each into a [`command::Command`] (the
//! arguments and parsers of each command family live in their own module:
//! `fetch`, `search`, `store`, `mailbox`, `append`),
//! [`state::SessionState`] says whether it may run now, and
//! [`response`] writes the answers. The session actor in `roost-actors`
//! owns the socket and the mailbox and drives these pieces; nothing here
//! does I/O.

pub mod append;
pub mod bodystructure;
pub mod catenate;
pub mod command;
pub mod fetch;
pub mod framer;
pub mod mailbox;
pub mod matcher;
pub mod metadata;
pub mod notify;
pub mod parser;
pub mod pattern;
pub mod references;
pub mod response;
pub mod search;
pub mod section;
pub mod seqset;
pub mod sort;
pub mod state;
pub mod store;
pub mod types;
pub mod utf7;

pub use command::{
    Command, CommandBody, FetchAttr, FetchItems, ParseError, Section, SectionText, StatusItem,
    StoreAction,
};
pub use framer::{FrameEvent, Framer, MAX_COMMAND_SIZE, MAX_LINE_LENGTH, MAX_LITERAL_SIZE};
pub use parser::{is_idle_done, parse_command};
pub use seqset::SeqSet;
pub use state::SessionState;
