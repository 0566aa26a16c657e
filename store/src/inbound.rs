//! Reports that came in (DMARC aggregate and TLS reports, read by
//! `roost_protocols::message::inbound`), kept for `roost admin reports
//! incoming`: the newest [`MAX_INBOUND_REPORTS`].

use crate::{encode, keys, Result, Store};
use roost_protocols::message::inbound::Report;
use serde::{Deserialize, Serialize};

/// Reports kept at most; the oldest go first.
pub const MAX_INBOUND_REPORTS: usize = 1000;
/// The largest report kept, encoded: with [`MAX_INBOUND_REPORTS`], what
/// strangers' reports can take of the disk is bounded (256 MiB).
pub const MAX_KEPT_REPORT_BYTES: usize = 256 * 1024;

/// A report as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundReport {
    pub id: u64,
    /// The account whose address it came to.
    pub account: String,
    /// Unix seconds.
    pub received: i64,
    /// The envelope sender.
    pub from: String,
    pub report: Report,
}

impl Store {
    /// Keeps a report that came in at `now`; its id.
    pub fn inbound_report_add(
        &self,
        account: &str,
        from: &str,
        report: Report,
        now: i64,
    ) -> Result<u64> {
        self.inbound_report_add_within(account, from, report, now, MAX_INBOUND_REPORTS)
    }

    pub(crate) fn inbound_report_add_within(
        &self,
        account: &str,
        from: &str,
        report: Report,
        now: i64,
        max: usize,
    ) -> Result<u64> {
        // sled's ids are unique and rising across restarts.
        let id = self.inner.db.generate_id()? + 1;
        let kept = InboundReport {
            id,
            account: account.to_string(),
            received: now,
            from: from.to_string(),
            report,
        };
        let encoded = encode(&kept)?;
        if encoded.len() > MAX_KEPT_REPORT_BYTES {
            return Err(crate::StoreError::Invalid(format!(
                "a report of {} bytes; at most {MAX_KEPT_REPORT_BYTES} are kept",
                encoded.len()
            )));
        }
        let mut batch = sled::Batch::default();
        batch.insert(keys::timed(keys::INBOUND_REPORT, now, id), encoded);
        let count = self
            .inner
            .db
            .scan_prefix([keys::INBOUND_REPORT])
            .keys()
            .count();
        for k in self
            .inner
            .db
            .scan_prefix([keys::INBOUND_REPORT])
            .keys()
            .take((count + 1).saturating_sub(max))
        {
            batch.remove(k?);
        }
        self.apply_batch(batch)?;
        self.flush()?;
        Ok(id)
    }

    /// The newest reports that came in, newest first, at most `limit`.
    pub fn inbound_reports(&self, limit: usize) -> Result<Vec<InboundReport>> {
        let mut out = Vec::new();
        for v in self
            .inner
            .db
            .scan_prefix([keys::INBOUND_REPORT])
            .values()
            .rev()
            .take(limit)
        {
            out.push(rmp_serde::from_slice(&v?)?);
        }
        Ok(out)
    }
}
