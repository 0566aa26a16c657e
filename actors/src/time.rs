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

/// `2026-12-01T18:20:00.123456Z` (RFC 3339) from unix microseconds.
pub fn utc_time(us: u64) -> String {
    let secs = (us / 1_000_000) as i64;
    let (y, m, d) = roost_protocols::message::date::civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        us % 1_000_000
    )
}

/// As [`utc_time`], from unix seconds.
pub fn rfc3339(secs: i64) -> String {
    utc_time(u64::try_from(secs).unwrap_or(0).saturating_mul(1_000_000))
}
