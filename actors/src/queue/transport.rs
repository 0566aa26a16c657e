//! How queued mail leaves: straight to the destination's mail servers
//! (MX), through a smarthost that delivers it onwards, or refused here
//! with a configured reply. Transports are named in the configuration;
//! routes choose one by account, sender domain or destination domain
//! (first match wins, `direct` when none does), and the admin can set one
//! on a message (`roost admin queue transport`).

use roost_store::{QueueFilter, QueuedMessage};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The transport every message takes unless a route or the admin says
/// otherwise.
pub const DIRECT: &str = "direct";

/// How a message leaves.
#[derive(Clone, Debug)]
pub enum Transport {
    /// To the destination domain's mail servers (RFC 5321 5.1).
    Direct,
    /// Through another server, which delivers it onwards.
    Smarthost(Arc<Smarthost>),
    /// Refused here: every recipient gets this reply (4xx: tried again
    /// later; 5xx: failed, with a DSN).
    Fail(String),
}

/// TLS to a smarthost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmarthostTls {
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit,
    /// STARTTLS, required: without it nothing is sent.
    StartTls,
    /// None (a smarthost on a trusted network).
    Plain,
}

/// A server roost hands mail to for delivery onwards.
#[derive(Debug)]
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    pub tls: SmarthostTls,
    /// SASL PLAIN credentials (RFC 4616), sent only over TLS or when TLS
    /// is configured off.
    pub auth: Option<(String, String)>,
    /// The certificate authorities the smarthost's certificate is checked
    /// against (it is always checked: credentials go over it).
    pub roots: Arc<rustls::RootCertStore>,
}

/// One route: the messages `when` chooses take `transport`.
#[derive(Clone, Debug)]
pub struct Route {
    pub when: QueueFilter,
    pub transport: String,
}

/// The configured transports and routes.
#[derive(Clone, Debug, Default)]
pub struct Transports {
    pub named: BTreeMap<String, Transport>,
    pub routes: Vec<Route>,
}

impl Transports {
    /// The names the admin may choose from, `direct` first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(DIRECT.to_string())
            .chain(self.named.keys().filter(|n| *n != DIRECT).cloned())
            .collect()
    }

    /// The name of the transport `m` takes: the admin's choice, else the
    /// first matching route's, else `direct`. A name no longer
    /// configured (the configuration changed since) means `direct`.
    pub fn name_for(&self, m: &QueuedMessage) -> String {
        let chosen = m.transport.clone().or_else(|| {
            self.routes
                .iter()
                .find(|r| r.when.matches(m))
                .map(|r| r.transport.clone())
        });
        match chosen {
            Some(n) if self.named.contains_key(&n) => n,
            _ => DIRECT.to_string(),
        }
    }

    pub fn get(&self, name: &str) -> Transport {
        self.named.get(name).cloned().unwrap_or(Transport::Direct)
    }
}

/// The reply of a fail transport as it is configured: a 4xx or 5xx
/// code, then text. `None` when it is not one.
pub fn fail_reply(configured: &str) -> Option<String> {
    let code = configured.get(..3)?;
    let rest = &configured[3..];
    let valid = code.bytes().all(|b| b.is_ascii_digit())
        && matches!(code.as_bytes()[0], b'4' | b'5')
        && (rest.is_empty() || rest.starts_with(' '));
    valid.then(|| configured.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(account: &str, sender: &str, domain: &str) -> QueuedMessage {
        let mut m = crate::queue::tests::queued(1, domain);
        m.account = Some(account.into());
        m.sender = sender.into();
        m
    }

    /// The admin's choice first, then the first matching route, then
    /// direct; a name not configured is direct.
    #[test]
    fn routes_choose_a_transport_first_match_first() {
        let mut t = Transports::default();
        t.named
            .insert("relay".into(), Transport::Fail("451 x".into()));
        t.named
            .insert("nope".into(), Transport::Fail("550 x".into()));
        t.routes.push(Route {
            when: QueueFilter {
                recipient_domain: Some("blocked.example".into()),
                ..Default::default()
            },
            transport: "nope".into(),
        });
        t.routes.push(Route {
            when: QueueFilter {
                account: Some("mjl".into()),
                ..Default::default()
            },
            transport: "relay".into(),
        });
        let m = message("mjl", "mjl@local.example", "blocked.example");
        assert_eq!(t.name_for(&m), "nope");
        let m = message("mjl", "mjl@local.example", "other.example");
        assert_eq!(t.name_for(&m), "relay");
        let mut m = message("bob", "bob@local.example", "other.example");
        assert_eq!(t.name_for(&m), "direct");
        m.transport = Some("relay".into());
        assert_eq!(t.name_for(&m), "relay");
        m.transport = Some("gone".into());
        assert_eq!(t.name_for(&m), "direct");
        assert_eq!(t.names(), ["direct", "nope", "relay"]);
    }

    #[test]
    fn fail_replies_are_4xx_or_5xx_with_text() {
        assert_eq!(
            fail_reply("550 5.7.1 no mail there").as_deref(),
            Some("550 5.7.1 no mail there")
        );
        assert!(fail_reply("451").is_some());
        for bad in ["250 ok", "55", "5x0 no", "550no", "", "650 x"] {
            assert_eq!(fail_reply(bad), None, "{bad}");
        }
    }
}
