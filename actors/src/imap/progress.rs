//! RFC 9585 INPROGRESS: a long SEARCH, SORT, THREAD or ESEARCH reports how
//! far it has got with untagged `OK [INPROGRESS ("tag" done total)]`
//! responses while it runs, so a client can show progress and knows the
//! server is working.
//!
//! The blocking job counts messages as it goes; after every
//! [`PROGRESS_BATCH`] of them, once the listener's interval has passed
//! since the last notice, it hands `(done, total)` over a small channel
//! (a notice that finds the channel full is dropped: a later one says
//! more). The session writes each notice as it comes and the rest once
//! the job ends, so every notice goes out before the tagged answer.

use super::ImapState;
use crate::task::blocking;
use roost_protocols::imap::response::{self, Code, Status};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The default for `[imap] progress_interval_ms`: at most one notice a
/// second.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Messages between checks of the interval.
pub const PROGRESS_BATCH: u64 = 256;
/// Notices waiting to be written, at most.
const PROGRESS_QUEUE: usize = 16;

/// The counting side, owned by the blocking job.
pub(super) struct Progress {
    /// `None`: nobody is told (a live search's rerun).
    tx: Option<mpsc::Sender<(u64, u64)>>,
    every: Duration,
    last: Instant,
    total: u64,
}

impl Progress {
    /// Progress that goes nowhere.
    pub fn silent() -> Progress {
        Progress {
            tx: None,
            every: Duration::MAX,
            last: Instant::now(),
            total: 0,
        }
    }

    /// A job over `total` messages starts.
    pub fn start(&mut self, total: u64) {
        self.total = total;
    }

    /// `done` messages of the job's `total` are through.
    pub fn tick(&mut self, done: u64) {
        if done == 0 || done % PROGRESS_BATCH != 0 || done >= self.total {
            return;
        }
        let Some(tx) = &self.tx else {
            return;
        };
        if self.last.elapsed() >= self.every {
            self.last = Instant::now();
            let _ = tx.try_send((done, self.total));
        }
    }
}

impl ImapState {
    /// Runs `job` off the async workers, writing the progress it reports
    /// for the command tagged `tag`.
    pub(super) async fn with_progress<T, F>(&mut self, tag: &str, job: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&mut Progress) -> Result<T, roost_store::StoreError> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel(PROGRESS_QUEUE);
        let mut progress = Progress {
            tx: Some(tx),
            every: self.services.progress_interval,
            last: Instant::now(),
            total: 0,
        };
        let task = blocking(move || job(&mut progress));
        tokio::pin!(task);
        loop {
            tokio::select! {
                biased;
                Some(notice) = rx.recv() => {
                    self.write_progress(tag, notice);
                    let _ = self.flush_out().await;
                }
                r = &mut task => {
                    while let Ok(notice) = rx.try_recv() {
                        self.write_progress(tag, notice);
                    }
                    return r;
                }
            }
        }
    }

    fn write_progress(&mut self, tag: &str, (done, total): (u64, u64)) {
        // RFC 9585 3: the tag as a quoted string (tags hold no quote or
        // backslash), the count and the total.
        let code = Code::Other(format!("INPROGRESS (\"{tag}\" {done} {total})"));
        response::untagged_status(&mut self.out, Status::Ok, Some(code), "Searching");
    }
}
