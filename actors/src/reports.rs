//! The report schedulers (house plan: `reports` → `dmarc`, `tlsrpt`):
//!
//! - DMARC aggregate reports (RFC 7489 7.2) made from the evaluations of
//!   incoming mail the store keeps, once an interval (an hour by
//!   default), one per policy domain, to each `rua` address the domain
//!   published. An address outside the policy domain's own tree is sent a
//!   report only when it says it takes them (7.1, the `_report._dmarc`
//!   record).
//! - TLS reports (RFC 8460) made from the outcomes of outgoing sessions'
//!   TLS, once a day by default, one per recipient domain that publishes
//!   a `_smtp._tls` record, to its `mailto:` addresses.
//!
//! Reports go out from the null sender, as DSNs do, through the queue (or
//! straight into a local account).

use crate::dns::Dns;
use crate::task::blocking;
use flate2::write::GzEncoder;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_protocols::message::compose::{compose, Attachment, Draft};
use roost_protocols::message::dmarc_report::{aggregate_xml, mailto, Metadata, Published, Row};
use roost_protocols::smtp::tlsrpt;
use roost_store::{DmarcEvaluation, ReportData, Store, TlsResult};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tracing::{info, warn};

/// The registered name of the DMARC report scheduler.
pub const DMARC_REPORTER: &str = "dmarc-reports";
/// The registered name of the TLS report scheduler.
pub const TLS_REPORTER: &str = "tls-reports";
/// How often aggregate reports go out unless configured
/// (`[reports] dmarc_interval`): an hour.
pub const DMARC_INTERVAL: Duration = Duration::from_secs(3600);
/// How often TLS reports go out unless configured (`[reports]
/// tls_interval`): a day (RFC 8460 4.1).
pub const TLS_INTERVAL: Duration = Duration::from_secs(86_400);

/// What the report scheduler needs.
#[derive(Clone)]
pub struct ReportSettings {
    pub store: Store,
    pub dns: Dns,
    /// This server's name: the reporting organisation.
    pub hostname: String,
    pub dmarc_interval: Duration,
    pub tls_interval: Duration,
    /// The authorities `https:` report URIs are checked against.
    pub roots: std::sync::Arc<rustls::RootCertStore>,
}

/// A report scheduler: DMARC or TLS reports, by its argument.
pub struct Reporter;

pub enum ReportMsg {
    Tick,
}

impl Actor for Reporter {
    type Msg = ReportMsg;
    type State = (ReportSettings, ReportData);
    type Arguments = (ReportSettings, ReportData);

    async fn pre_start(
        &self,
        myself: ActorRef<ReportMsg>,
        (settings, kind): (ReportSettings, ReportData),
    ) -> Result<(ReportSettings, ReportData), ActorProcessingErr> {
        let every = match kind {
            ReportData::Dmarc => settings.dmarc_interval,
            ReportData::Tls => settings.tls_interval,
        };
        myself.send_interval(every, || ReportMsg::Tick);
        Ok((settings, kind))
    }

    async fn handle(
        &self,
        _myself: ActorRef<ReportMsg>,
        _msg: ReportMsg,
        (s, kind): &mut (ReportSettings, ReportData),
    ) -> Result<(), ActorProcessingErr> {
        let now_us = crate::time::now_unix().max(0) as u64 * 1_000_000;
        let done = match kind {
            ReportData::Dmarc => report_dmarc(s, now_us).await,
            ReportData::Tls => report_tls(s, now_us).await,
        };
        if let Err(e) = done {
            warn!(error = %e, ?kind, "reports");
        }
        Ok(())
    }
}

/// The period since the last report of `kind` (the first covers one
/// interval) and its records.
async fn period<T: serde::de::DeserializeOwned + Send + 'static>(
    s: &ReportSettings,
    kind: ReportData,
    interval: Duration,
    now_us: u64,
) -> Result<(u64, Vec<T>), String> {
    let store = s.store.clone();
    let interval_us = interval.as_micros() as u64;
    blocking(move || {
        let from = match store.reported_until(kind)? {
            0 => now_us.saturating_sub(interval_us),
            at => at,
        };
        Ok::<_, roost_store::StoreError>((
            from,
            store.report_data_between::<T>(kind, from, now_us)?,
        ))
    })
    .await
}

fn gzip(bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&bytes)?;
    e.finish()
}

/// TLS reports (RFC 8460 4): per recipient domain with a TLSRPT record,
/// the sessions' outcomes since the last report, as gzipped JSON.
async fn report_tls(s: &ReportSettings, now_us: u64) -> Result<(), String> {
    let (from_us, results) =
        period::<TlsResult>(s, ReportData::Tls, s.tls_interval, now_us).await?;
    let mut by_domain: BTreeMap<String, Vec<TlsResult>> = BTreeMap::new();
    for r in results {
        by_domain.entry(r.domain.clone()).or_default().push(r);
    }
    let (begin, end) = ((from_us / 1_000_000) as i64, (now_us / 1_000_000) as i64);
    for (domain, results) in by_domain {
        // RFC 8460 3: exactly one record of this version, or none.
        let records = s.dns.txt_records(&format!("_smtp._tls.{domain}")).await;
        let ours: Vec<String> = records
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.starts_with("v=TLSRPTv1"))
            .collect();
        let [record] = ours.as_slice() else {
            continue;
        };
        let Ok(rua) = tlsrpt::parse_record(record) else {
            continue;
        };
        let report_id = format!("{end}.{domain}");
        let sessions = results.len();
        // Counting up to MAX_KEPT results and gzipping them: off the
        // async workers.
        let (hostname, id, d) = (s.hostname.clone(), report_id.clone(), domain.clone());
        let gz = blocking(move || {
            gzip(tls_report_json(&hostname, &id, begin, end, &d, &results).into_bytes())
        })
        .await?;
        for uri in &rua {
            if uri.starts_with("https://") {
                match post_report(s, uri, &gz).await {
                    Ok(()) => info!(%domain, %uri, sessions, "TLS report posted"),
                    Err(e) => warn!(%domain, %uri, error = %e, "TLS report not posted"),
                }
                continue;
            }
            let Some((to, _)) = mailto(uri) else {
                info!(%domain, %uri, "TLS report URI is neither mailto nor https; skipped");
                continue;
            };
            let message = compose(&Draft {
                from: format!("postmaster@{}", s.hostname),
                from_name: Some("TLS report".into()),
                to: vec![to.clone()],
                subject: format!(
                    "Report Domain: {domain} Submitter: {} Report-ID: <{report_id}>",
                    s.hostname
                ),
                text: Some(format!(
                    "This is an SMTP TLS report (RFC 8460) for {domain} from {}, covering \
                     unix time {begin} to {end}.\n",
                    s.hostname
                )),
                headers: vec![
                    ("TLS-Report-Domain".into(), domain.clone()),
                    ("TLS-Report-Submitter".into(), s.hostname.clone()),
                ],
                report_type: Some("tlsrpt".into()),
                attachments: vec![Attachment {
                    filename: format!("{}!{domain}!{begin}!{end}.json.gz", s.hostname),
                    content_type: "application/tlsrpt+gzip".into(),
                    data: gz.clone(),
                }],
                date: crate::time::rfc5322_date(end),
                message_id: format!("tlsrpt.{report_id}@{}", s.hostname),
                ..Draft::default()
            });
            // One address failing does not hold the others back, nor make
            // the next run send this period again.
            match async { send_signed(s, &to, message?).await }.await {
                Ok(()) => info!(%domain, %to, sessions, "TLS report sent"),
                Err(e) => warn!(%domain, %to, error = %e, "TLS report not sent"),
            }
        }
    }
    let store = s.store.clone();
    blocking(move || store.set_reported_until(ReportData::Tls, now_us)).await
}

/// RFC 8460 5.4: the gzipped report POSTed to an `https:` URI, the
/// server's certificate checked; a 2xx answer is done.
async fn post_report(s: &ReportSettings, uri: &str, gz: &[u8]) -> Result<(), String> {
    let parsed: hyper::Uri = uri.parse().map_err(|e| format!("bad URI: {e}"))?;
    let host = parsed.host().ok_or("a URI without a host")?.to_string();
    let target = crate::http_client::Target {
        host: &host,
        port: parsed.port_u16().unwrap_or(443),
        tls: Some(&s.roots),
        address: None,
    };
    let authority = parsed.authority().map_or(host.clone(), |a| a.to_string());
    let request = hyper::Request::post(parsed.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/tlsrpt+gzip");
    let answer = tokio::time::timeout(
        POST_TIMEOUT,
        crate::http_client::request(&target, request, gz.to_vec(), 64 * 1024, false),
    )
    .await
    .map_err(|_| "no answer in time".to_string())??;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(format!("HTTP {}", answer.status))
    }
}

/// How long posting a report may take.
pub const POST_TIMEOUT: Duration = Duration::from_secs(60);

/// One policy's sessions: successful, failed, and the failures counted
/// by (result type, sending address, MX host, receiving address).
type Sessions = (u64, u64, BTreeMap<(String, String, String, String), u64>);

/// RFC 8460 4.4: the report's JSON, sessions counted per policy and per
/// failure (result type, sending and receiving address, MX host).
fn tls_report_json(
    hostname: &str,
    report_id: &str,
    begin: i64,
    end: i64,
    domain: &str,
    results: &[TlsResult],
) -> String {
    let mut policies: BTreeMap<(&str, &[String]), Sessions> = BTreeMap::new();
    for r in results {
        let policy = (r.policy_type.as_str(), r.policy_string.as_slice());
        let entry = policies.entry(policy).or_default();
        match &r.failure {
            None => entry.0 += 1,
            Some(kind) => {
                entry.1 += 1;
                let key = (
                    kind.clone(),
                    r.sending_ip.clone(),
                    r.mx_host.clone(),
                    r.receiving_ip.clone(),
                );
                *entry.2.entry(key).or_default() += 1;
            }
        }
    }
    let policies: Vec<serde_json::Value> = policies
        .into_iter()
        .map(|((policy_type, lines), (ok, failed, details))| {
            let mut policy = serde_json::json!({"policy-type": policy_type});
            if !lines.is_empty() {
                // RFC 8460 4.4: the policy's text (for DANE its TLSA
                // records), and for MTA-STS its MX patterns.
                policy["policy-string"] = serde_json::json!(lines);
                if policy_type == "sts" {
                    let mx: Vec<&str> =
                        lines.iter().filter_map(|l| l.strip_prefix("mx: ")).collect();
                    policy["mx-host"] = serde_json::json!(mx);
                }
            }
            policy["policy-domain"] = serde_json::json!(domain);
            serde_json::json!({
                "policy": policy,
                "summary": {
                    "total-successful-session-count": ok,
                    "total-failure-session-count": failed,
                },
                "failure-details": details.into_iter().map(|((kind, from, mx, to), n)| serde_json::json!({
                    "result-type": kind,
                    "sending-mta-ip": from,
                    "receiving-mx-hostname": mx,
                    "receiving-ip": to,
                    "failed-session-count": n,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "organization-name": hostname,
        "date-range": {
            "start-datetime": crate::time::rfc3339(begin),
            "end-datetime": crate::time::rfc3339(end),
        },
        "contact-info": format!("postmaster@{hostname}"),
        "report-id": report_id,
        "policies": policies,
    })
    .to_string()
}

/// Reports the evaluations since the last report, up to `now_us`.
async fn report_dmarc(s: &ReportSettings, now_us: u64) -> Result<(), String> {
    let (from_us, evaluations) =
        period::<DmarcEvaluation>(s, ReportData::Dmarc, s.dmarc_interval, now_us).await?;
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
        let count = rows.len();
        // Rows of up to MAX_KEPT evaluations, sorted and gzipped: off the
        // async workers.
        let gz =
            blocking(move || gzip(aggregate_xml(&meta, &published, &rows).into_bytes())).await?;
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
            let message = report_message(s, &domain, &report_id, begin, end, &to, gz.clone());
            // One address failing does not hold the others back, nor make
            // the next run send this period again.
            match async { send_signed(s, &to, message?).await }.await {
                Ok(()) => info!(%domain, %to, rows = count, "DMARC aggregate report sent"),
                Err(e) => warn!(%domain, %to, error = %e, "DMARC aggregate report not sent"),
            }
        }
    }
    let store = s.store.clone();
    blocking(move || store.set_reported_until(ReportData::Dmarc, now_us)).await
}

/// Sends a report, signed with the DKIM keys of this server's name (RFC
/// 8460 5.3 asks for a signature; RFC 7489 7.2.1.1 for aligned
/// authentication), from the null sender.
async fn send_signed(s: &ReportSettings, to: &str, bytes: Vec<u8>) -> Result<(), String> {
    let (store, hostname) = (s.store.clone(), s.hostname.clone());
    let signed = blocking(move || {
        let keys = store.dkim_keys(&hostname)?;
        let now = crate::time::now_unix();
        let signature = crate::smtp::dkim::sign_message(&keys, &bytes, &hostname, now);
        Ok::<_, roost_store::StoreError>([signature.into_bytes(), bytes].concat())
    })
    .await?;
    crate::queue::dsn::deliver(&s.store, to, signed, true).await
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
    // Only the policy domain's own tree is trusted without asking: a
    // parent may be a public suffix (roost carries no suffix list).
    if to_domain == domain || to_domain.ends_with(&format!(".{domain}")) {
        return true;
    }
    let name = format!("{domain}._report._dmarc.{to_domain}");
    matches!(
        dns.txt_records(&name).await,
        Ok(records) if records.iter().any(|t| t.trim_start().starts_with("v=DMARC1"))
    )
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
