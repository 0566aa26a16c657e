//! The report schedulers (house plan: `reports` → `dmarc`): DMARC
//! aggregate reports (RFC 7489 7.2) made from the evaluations of incoming
//! mail the store keeps, once an interval (an hour by default), one per
//! policy domain, to each `rua` address the domain published. An address
//! outside the policy domain's own tree is sent a report only when it
//! says it takes them (7.1, the `_report._dmarc` record). Reports go out
//! from the null sender, as DSNs do, through the queue (or straight into
//! a local account).

use crate::dns::Dns;
use crate::task::blocking;
use flate2::write::GzEncoder;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_protocols::message::compose::{compose, Attachment, Draft};
use roost_protocols::message::dmarc_report::{aggregate_xml, mailto, Metadata, Published, Row};
use roost_store::{DmarcEvaluation, Store};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tracing::{info, warn};

/// The registered name of the DMARC report scheduler.
pub const DMARC_REPORTER: &str = "dmarc-reports";
/// How often aggregate reports go out unless configured
/// (`[reports] dmarc_interval`): an hour.
pub const DMARC_INTERVAL: Duration = Duration::from_secs(3600);

/// What the report scheduler needs.
#[derive(Clone)]
pub struct ReportSettings {
    pub store: Store,
    pub dns: Dns,
    /// This server's name: the reporting organisation.
    pub hostname: String,
    pub dmarc_interval: Duration,
}

pub struct DmarcReporter;

pub enum ReportMsg {
    Tick,
}

impl Actor for DmarcReporter {
    type Msg = ReportMsg;
    type State = ReportSettings;
    type Arguments = ReportSettings;

    async fn pre_start(
        &self,
        myself: ActorRef<ReportMsg>,
        settings: ReportSettings,
    ) -> Result<ReportSettings, ActorProcessingErr> {
        myself.send_interval(settings.dmarc_interval, || ReportMsg::Tick);
        Ok(settings)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ReportMsg>,
        _msg: ReportMsg,
        s: &mut ReportSettings,
    ) -> Result<(), ActorProcessingErr> {
        let now_us = crate::time::now_unix().max(0) as u64 * 1_000_000;
        if let Err(e) = report_dmarc(s, now_us).await {
            warn!(error = %e, "DMARC aggregate reports");
        }
        Ok(())
    }
}

/// Reports the evaluations since the last report, up to `now_us`.
async fn report_dmarc(s: &ReportSettings, now_us: u64) -> Result<(), String> {
    let store = s.store.clone();
    let interval_us = s.dmarc_interval.as_micros() as u64;
    let (from_us, evaluations) = blocking(move || {
        // The first report covers one interval.
        let from = match store.dmarc_reported_until()? {
            0 => now_us.saturating_sub(interval_us),
            at => at,
        };
        Ok::<_, roost_store::StoreError>((from, store.dmarc_evaluations_between(from, now_us)?))
    })
    .await?;
    let mut by_domain: BTreeMap<String, Vec<DmarcEvaluation>> = BTreeMap::new();
    for e in evaluations {
        by_domain
            .entry(e.policy_domain.clone())
            .or_default()
            .push(e);
    }
    let (begin, end) = ((from_us / 1_000_000) as i64, (now_us / 1_000_000) as i64);
    for (domain, evaluations) in by_domain {
        // The record as it was last seen.
        let Some(last) = evaluations.last() else {
            continue;
        };
        if last.rua.is_empty() {
            continue;
        }
        let report_id = format!("{end}.{domain}");
        let meta = Metadata {
            org_name: s.hostname.clone(),
            email: format!("postmaster@{}", s.hostname),
            report_id: report_id.clone(),
            begin,
            end,
        };
        let published = Published::from_tags(&domain, &last.published);
        let rows: Vec<Row> = evaluations.iter().map(row).collect();
        let xml = aggregate_xml(&meta, &published, &rows);
        let gz = blocking(move || {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(xml.as_bytes())?;
            e.finish()
        })
        .await?;
        for uri in &last.rua {
            let Some((to, limit)) = mailto(uri) else {
                info!(%domain, %uri, "rua is not a mailto address; skipped");
                continue;
            };
            if limit.is_some_and(|l| (gz.len() as u64) > l) {
                info!(%domain, %to, size = gz.len(), "report larger than the address takes; skipped");
                continue;
            }
            if !takes_reports_for(&s.dns, &domain, &to).await {
                info!(%domain, %to, "report address does not take reports for the domain (RFC 7489 7.1); skipped");
                continue;
            }
            let bytes = report_message(s, &domain, &report_id, begin, end, &to, gz.clone())?;
            crate::queue::dsn::deliver(&s.store, &to, bytes).await?;
            info!(%domain, %to, rows = rows.len(), "DMARC aggregate report sent");
        }
    }
    let store = s.store.clone();
    blocking(move || store.set_dmarc_reported_until(now_us)).await
}

fn row(e: &DmarcEvaluation) -> Row {
    let verdict = |aligned: bool| if aligned { "pass" } else { "fail" }.to_string();
    Row {
        source_ip: e.source_ip.clone(),
        header_from: e.header_from.clone(),
        disposition: e.disposition.clone(),
        dkim: verdict(e.dkim_aligned),
        spf: verdict(e.spf_aligned),
        dkim_results: e.dkim.clone(),
        spf_domain: e.spf_domain.clone(),
        spf_result: e.spf_result.clone(),
    }
}

/// RFC 7489 7.1: an address in the policy domain's own tree takes its
/// reports; another must publish `<domain>._report._dmarc.<its domain>`
/// with `v=DMARC1`. (Domains that only share an organizational domain
/// are asked too: the answer decides.)
async fn takes_reports_for(dns: &Dns, domain: &str, to: &str) -> bool {
    let Some((_, to_domain)) = to.rsplit_once('@') else {
        return false;
    };
    let to_domain = to_domain.to_ascii_lowercase();
    let within = |a: &str, b: &str| a == b || a.ends_with(&format!(".{b}"));
    if within(&to_domain, domain) || within(domain, &to_domain) {
        return true;
    }
    let name = format!("{domain}._report._dmarc.{to_domain}");
    matches!(dns.txt(&name).await, Ok(Some(t)) if t.trim_start().starts_with("v=DMARC1"))
}

/// The report's message (7.2.1.1): its subject, a short note, and the
/// gzipped XML named `receiver!policy-domain!begin!end.xml.gz`.
fn report_message(
    s: &ReportSettings,
    domain: &str,
    report_id: &str,
    begin: i64,
    end: i64,
    to: &str,
    gz: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let hostname = &s.hostname;
    compose(&Draft {
        from: format!("postmaster@{hostname}"),
        from_name: Some("DMARC aggregate report".into()),
        to: vec![to.to_string()],
        subject: format!("Report Domain: {domain} Submitter: {hostname} Report-ID: <{report_id}>"),
        text: Some(format!(
            "This is a DMARC aggregate report (RFC 7489) for {domain} from {hostname}, \
             covering unix time {begin} to {end}.\n"
        )),
        attachments: vec![Attachment {
            filename: format!("{hostname}!{domain}!{begin}!{end}.xml.gz"),
            content_type: "application/gzip".into(),
            data: gz,
        }],
        date: crate::time::rfc5322_date(end),
        message_id: format!("dmarc.{report_id}@{hostname}"),
        ..Draft::default()
    })
}
