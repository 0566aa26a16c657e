//! Reading the parts of a stored message that the server itself needs:
//! where the header ends, single header fields, and the keys threading
//! works from (RFC 5256), and its MIME structure ([`mime`]).

pub mod address;
pub mod arc;
pub mod compose;
pub mod date;
pub mod decode;
pub mod dkim;
pub mod dkim_verify;
pub mod dmarc_report;
pub mod dsn;
pub mod header;
pub mod inbound;
pub mod mime;
pub mod summary;
pub mod text;
pub mod thread;

pub use header::{header_end, header_value};
pub use thread::{base_subject, ThreadKeys};
