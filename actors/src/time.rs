//! Wall-clock helpers for the actors: the current time as unix seconds.
//! Formatting dates is `roost_protocols::message::date`'s job.

use std::time::{SystemTime, UNIX_EPOCH};

pub use roost_protocols::message::date::rfc5322_date;

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
