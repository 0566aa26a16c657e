//! `roost admin`: a client of the admin socket (`<data dir>/roost.sock`),
//! which speaks one JSON request and one JSON response per line.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use roost_supervisor::{render_text, TreeNode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct AdminArgs {
    /// The server's data directory (its admin socket is roost.sock there).
    #[arg(long, default_value = "roost-local")]
    dir: PathBuf,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Print the live actor tree.
    Tree {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stream change events as JSON lines until interrupted.
    Events {
        #[arg(long)]
        account: Option<String>,
    },
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage the domains roost accepts mail for.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// An account's suppression list: addresses its mail no longer goes
    /// to (they bounced for good, or were put there).
    Suppression {
        #[command(subcommand)]
        command: SuppressionCommand,
    },
    /// The outgoing queue: what waits to go out, and steering it.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Webhooks: an account's URL for events about its mail (delivered,
    /// relayed, delayed, failed, suppressed, canceled, incoming), and the
    /// calls made.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// DKIM keys that sign mail submitted from a domain.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// Aliases and lists: addresses whose mail goes to local accounts.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Make the named actor fail as if it had panicked (chaos testing).
    Kill {
        /// The actor's name, e.g. account:roost@localhost.
        name: String,
        /// Panic inside a handler of the actor (account actors).
        #[arg(long)]
        panic: bool,
    },
    /// Check an account's records and files; prints each problem found.
    Check { account: String },
    /// Store statistics: commits, flushes, records, fsyncs.
    Stats,
    /// Make the store's next index flush fail, as a disk error would
    /// (chaos testing): roost then refuses every change, answering 451,
    /// and stops with a failure status for its service manager to restart.
    FailFlush,
    /// TLS client-certificate keys that log in to an account (EXTERNAL,
    /// and IMAP PREAUTH), one per device.
    Tlspubkey {
        #[command(subcommand)]
        command: TlsKeyCommand,
    },
    /// A pre-authenticated IMAP session for ADDRESS on stdin and stdout,
    /// through the admin socket (mutt `tunnel`, mbsync `Tunnel`); works
    /// when the account's logins are disabled.
    Imapserve {
        address: String,
        /// Read and write the session on fd 0, for tools that give a
        /// tunnel one socket both ways.
        #[arg(long)]
        fd0: bool,
    },
    /// Recent login attempts, newest first: time, remote address,
    /// protocol, mechanism, username, account and result.
    Loginattempts {
        /// Only attempts naming this account.
        #[arg(long)]
        account: Option<String>,
        /// How many (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One message's record as JSON: uid, size, dates, Message-ID and
    /// its extra data (from X-Roost-Extra fields at submission).
    Message {
        account: String,
        mailbox: String,
        uid: u32,
    },
    /// Recent DMARC evaluations of incoming mail, newest first (what the
    /// aggregate reports will say): time, client address, From domain,
    /// policy domain, result, disposition, SPF and DKIM.
    Dmarcevaluations {
        /// How many (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// DMARC aggregate and TLS reports other servers sent to this
    /// server's accounts, newest first, each with its rows.
    Incomingreports {
        /// How many (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Add an account; the password is read from stdin unless given.
    Add {
        name: String,
        #[arg(long)]
        password: Option<String>,
        /// Storage quota in bytes.
        #[arg(long)]
        quota: Option<u64>,
    },
    List,
    /// Set an account's password; read from stdin unless given.
    Passwd {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    Rm {
        name: String,
    },
    /// Refuse the account's logins (IMAP, submission, web) with a message
    /// shown to its clients; mail to it is still delivered.
    Disable {
        name: String,
        /// What the account's clients are told, e.g. who to contact.
        #[arg(long)]
        message: String,
    },
    /// Allow the account's logins again.
    Enable {
        name: String,
    },
    /// Send each queued message with its own envelope sender
    /// (`user+dsn.<id>.<mac>@domain`, the domain needs a catchall
    /// separator), so DSNs that come back are matched to it and reported
    /// to the account's webhook.
    UniqueMailFrom {
        name: String,
        #[arg(action = clap::ArgAction::Set)]
        on: bool,
    },
    /// Give the account another address; `@DOMAIN` makes it the domain's
    /// catchall destination (mail for addresses nothing else takes).
    AddressAdd {
        name: String,
        address: String,
    },
    AddressRm {
        name: String,
        address: String,
    },
    /// Add a delivery rule: mail meeting every condition goes to MAILBOX
    /// (INBOX if there is no such mailbox). Rules are tried in order.
    RuleAdd {
        name: String,
        #[arg(long)]
        mailbox: String,
        /// A header field's name; with --contains, text its value has.
        #[arg(long, requires = "contains")]
        header: Option<String>,
        #[arg(long, requires = "header")]
        contains: Option<String>,
        /// The envelope sender: an address, or @DOMAIN.
        #[arg(long)]
        sender: Option<String>,
    },
    RuleList {
        name: String,
    },
    /// Send mail from first-time senders (authors the account has not
    /// written to, nor had mail from filed elsewhere) to MAILBOX; without
    /// MAILBOX, stop.
    Intro {
        name: String,
        mailbox: Option<String>,
    },
    /// Remove rule number INDEX (from 1, as `rule-list` shows them).
    RuleRm {
        name: String,
        index: usize,
    },
    /// Set the account's limits (RFC 9208 quotas); a limit left out is
    /// removed.
    Quota {
        name: String,
        /// Storage, in bytes.
        #[arg(long)]
        storage: Option<u64>,
        /// Number of messages.
        #[arg(long)]
        messages: Option<u64>,
    },
}

#[derive(Subcommand)]
enum TlsKeyCommand {
    /// Register the public key of a client certificate (PEM).
    Add {
        account: String,
        /// The device's name, unique in the account.
        #[arg(long)]
        name: String,
        /// The PEM certificate file (only its public key is kept).
        #[arg(long)]
        cert: PathBuf,
        /// IMAP sessions with this key wait for AUTHENTICATE EXTERNAL (or
        /// a login to the same account) instead of starting logged in.
        #[arg(long)]
        no_preauth: bool,
    },
    List {
        account: String,
    },
    Rm {
        account: String,
        name: String,
    },
    /// Print the openssl commands that make a key, a certificate and a
    /// .p12 bundle for a mail client, and register the key.
    Gen {
        account: String,
        #[arg(long, default_value = "device")]
        name: String,
    },
}

#[derive(Subcommand)]
enum DomainCommand {
    Add {
        name: String,
    },
    List,
    /// Refuse mail to and from the domain for now (4xx, so senders retry);
    /// its accounts still log in.
    Disable {
        name: String,
    },
    /// Accept the domain's mail again.
    Enable {
        name: String,
    },
    Rm {
        name: String,
    },
    /// How the domain's local parts match.
    Set {
        name: String,
        /// Characters that start a tag (`+` sends `user+tag@` to
        /// `user@`); an empty string turns tags off.
        #[arg(long)]
        catchall_separator: Option<String>,
        /// Match local parts with their case (true) or without (false,
        /// the default).
        #[arg(long)]
        localpart_case_sensitive: Option<bool>,
        /// Report-only (true): roost takes the domain's DMARC and TLS
        /// reports at its accounts' and aliases' addresses there, and
        /// relays other mail submitted to it instead of refusing it.
        #[arg(long)]
        report_only: Option<bool>,
    },
}

#[derive(Subcommand)]
enum SuppressionCommand {
    /// The account's suppressed addresses, with since when and why.
    List { account: String },
    /// Suppress an address for the account.
    Add { account: String, address: String },
    /// Take an address off the account's list.
    Rm { account: String, address: String },
}

/// Which queued messages a `queue` command works on: each option given
/// narrows the choice.
#[derive(clap::Args, Default)]
struct QueueChoice {
    /// These messages (by id).
    ids: Vec<u64>,
    #[command(flatten)]
    matching: MessageMatch,
    /// Held messages only.
    #[arg(long, conflicts_with = "not_held")]
    held: bool,
    /// Messages not held only.
    #[arg(long)]
    not_held: bool,
    /// Every message (needed when no other choice is given).
    #[arg(long)]
    all: bool,
}

/// Account, sender domain and destination domain: what queue choices and
/// hold rules match on (each left out matches anything).
#[derive(clap::Args, Default)]
struct MessageMatch {
    /// Messages the account submitted.
    #[arg(long)]
    account: Option<String>,
    /// Messages whose sender is at this domain.
    #[arg(long = "from-domain")]
    sender_domain: Option<String>,
    /// Messages going to this domain.
    #[arg(long = "to-domain")]
    recipient_domain: Option<String>,
}

impl MessageMatch {
    /// The request fields for the admin socket.
    fn fields(&self, cmd: &str) -> serde_json::Value {
        json!({
            "cmd": cmd,
            "account": self.account,
            "sender_domain": self.sender_domain,
            "recipient_domain": self.recipient_domain,
        })
    }
}

impl QueueChoice {
    /// The request fields for the admin socket.
    fn fields(&self, cmd: &str) -> serde_json::Value {
        let mut v = self.matching.fields(cmd);
        v["ids"] = json!(self.ids);
        v["held"] = json!(if self.held {
            Some(true)
        } else if self.not_held {
            Some(false)
        } else {
            None
        });
        v["all"] = json!(self.all);
        v
    }
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Queued messages: id, destination domain, sender, recipients,
    /// attempts, next attempt, held, transport, last error.
    List {
        #[command(flatten)]
        choice: QueueChoice,
        /// How many, oldest first (default 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try messages again now (held ones are released).
    Retry {
        #[command(flatten)]
        choice: QueueChoice,
    },
    /// Set the next attempt of messages, e.g. `--in 30m` (s, m, h, d);
    /// held ones are released.
    Schedule {
        #[command(flatten)]
        choice: QueueChoice,
        #[arg(long = "in", value_parser = parse_duration)]
        after: i64,
    },
    /// Keep messages from being tried until they are released.
    Hold {
        #[command(flatten)]
        choice: QueueChoice,
    },
    /// Release held messages.
    Release {
        #[command(flatten)]
        choice: QueueChoice,
    },
    /// Send messages by another transport (`direct`, or one configured
    /// under [transports]); `--routes` lets the configured routes choose
    /// again.
    Transport {
        #[command(flatten)]
        choice: QueueChoice,
        #[arg(long, required_unless_present = "routes")]
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        routes: bool,
    },
    /// Fail messages now: each sender gets a failure DSN.
    Fail {
        #[command(flatten)]
        choice: QueueChoice,
    },
    /// Remove messages from the queue without a DSN.
    Drop {
        #[command(flatten)]
        choice: QueueChoice,
    },
    /// Messages that left the queue (delivered, failed, dropped), newest
    /// first, with every attempt.
    Retired {
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Hold rules: messages queued that match one are held.
    Holdrule {
        #[command(subcommand)]
        command: HoldRuleCommand,
    },
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Send ACCOUNT's events to URL (http:// or https://), with this
    /// Authorization header value when given.
    Set {
        account: String,
        url: String,
        #[arg(long)]
        authorization: Option<String>,
    },
    /// No more events for ACCOUNT.
    Rm {
        account: String,
    },
    Show {
        account: String,
    },
    /// Calls waiting to be made (or made again).
    Pending {
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Calls made or given up, newest first, with every attempt.
    History {
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Subcommand)]
enum HoldRuleCommand {
    List,
    /// Add a rule; options left out match anything (none: every message).
    /// Queued messages it matches are held at once.
    Add {
        #[command(flatten)]
        matching: MessageMatch,
    },
    /// Remove a rule; messages it held stay held until released.
    Rm {
        id: u64,
    },
}

/// `90s`, `15m`, `2h`, `1d`, or plain seconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: a number, then s, m, h or d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: a number, then s, m, h or d")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?}: too long"))
}

#[derive(Subcommand)]
enum DkimCommand {
    /// Make an ed25519 key for DOMAIN and print the DNS record to publish.
    Gen {
        domain: String,
        #[arg(long, default_value = "roost")]
        selector: String,
    },
    /// Use an RSA key (PKCS#8 PEM, e.g. from `openssl genpkey -algorithm
    /// RSA -pkeyopt rsa_keygen_bits:2048`); prints the DNS record.
    Import {
        domain: String,
        #[arg(long)]
        selector: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// The domain's keys and their DNS records.
    List {
        domain: String,
    },
    Rm {
        domain: String,
        selector: String,
    },
}

#[derive(Subcommand)]
enum AliasCommand {
    /// Create an alias whose mail goes to the member accounts.
    Add {
        address: String,
        /// Member addresses (local accounts).
        #[arg(required = true)]
        members: Vec<String>,
        /// Anyone may send to it (by default only its members may).
        #[arg(long)]
        post_public: bool,
        /// Members may submit mail with the alias as From address.
        #[arg(long)]
        allow_msg_from: bool,
    },
    List,
    Rm {
        address: String,
    },
}

pub fn run(args: AdminArgs) -> Result<ExitCode> {
    let socket = args.dir.join("roost.sock");
    let request = match &args.command {
        AdminCommand::Tree { .. } => json!({"cmd": "tree"}),
        AdminCommand::Events { account } => json!({"cmd": "events", "account": account}),
        AdminCommand::Account { command } => match command {
            AccountCommand::Add {
                name,
                password,
                quota,
            } => {
                json!({"cmd": "account_add", "name": name, "password": password_or_stdin(password)?, "quota": quota})
            }
            AccountCommand::List => json!({"cmd": "account_list"}),
            AccountCommand::Passwd { name, password } => {
                json!({"cmd": "account_passwd", "name": name, "password": password_or_stdin(password)?})
            }
            AccountCommand::Rm { name } => json!({"cmd": "account_rm", "name": name}),
            AccountCommand::Disable { name, message } => {
                json!({"cmd": "account_disable", "name": name, "message": message})
            }
            AccountCommand::Enable { name } => json!({"cmd": "account_enable", "name": name}),
            AccountCommand::UniqueMailFrom { name, on } => {
                json!({"cmd": "account_unique_mail_from", "name": name, "on": on})
            }
            AccountCommand::AddressAdd { name, address } => {
                json!({"cmd": "address_add", "name": name, "address": address})
            }
            AccountCommand::AddressRm { name, address } => {
                json!({"cmd": "address_rm", "name": name, "address": address})
            }
            AccountCommand::RuleAdd {
                name,
                mailbox,
                header,
                contains,
                sender,
            } => {
                let header = header.as_ref().zip(contains.as_ref());
                json!({"cmd": "rule_add", "name": name, "rule":
                    {"mailbox": mailbox, "header": header, "sender": sender}})
            }
            AccountCommand::RuleList { name } => json!({"cmd": "rule_list", "name": name}),
            AccountCommand::Intro { name, mailbox } => {
                json!({"cmd": "intro_set", "name": name, "mailbox": mailbox})
            }
            AccountCommand::RuleRm { name, index } => {
                json!({"cmd": "rule_rm", "name": name, "index": index})
            }
            AccountCommand::Quota {
                name,
                storage,
                messages,
            } => {
                json!({"cmd": "account_quota", "name": name, "storage": storage, "messages": messages})
            }
        },
        AdminCommand::Domain { command } => match command {
            DomainCommand::Add { name } => json!({"cmd": "domain_add", "name": name}),
            DomainCommand::List => json!({"cmd": "domain_list"}),
            DomainCommand::Rm { name } => json!({"cmd": "domain_rm", "name": name}),
            DomainCommand::Disable { name } => json!({"cmd": "domain_disable", "name": name}),
            DomainCommand::Enable { name } => json!({"cmd": "domain_enable", "name": name}),
            DomainCommand::Set {
                name,
                catchall_separator,
                localpart_case_sensitive,
                report_only,
            } => json!({"cmd": "domain_set", "name": name,
                "catchall_separator": catchall_separator,
                "localpart_case_sensitive": localpart_case_sensitive,
                "report_only": report_only}),
        },
        AdminCommand::Suppression { command } => match command {
            SuppressionCommand::List { account } => {
                json!({"cmd": "suppression_list", "account": account})
            }
            SuppressionCommand::Add { account, address } => {
                json!({"cmd": "suppression_add", "account": account, "address": address})
            }
            SuppressionCommand::Rm { account, address } => {
                json!({"cmd": "suppression_rm", "account": account, "address": address})
            }
        },
        AdminCommand::Queue { command } => match command {
            QueueCommand::List { choice, limit, .. } => {
                let mut v = choice.fields("queue_list");
                v["limit"] = json!(limit);
                v
            }
            QueueCommand::Retry { choice } => choice.fields("queue_schedule"),
            QueueCommand::Schedule { choice, after } => {
                let mut v = choice.fields("queue_schedule");
                v["in_secs"] = json!(after);
                v
            }
            QueueCommand::Hold { choice } | QueueCommand::Release { choice } => {
                let mut v = choice.fields("queue_hold");
                v["hold"] = json!(matches!(command, QueueCommand::Hold { .. }));
                v
            }
            QueueCommand::Transport { choice, name, .. } => {
                let mut v = choice.fields("queue_transport");
                v["transport"] = json!(name);
                v
            }
            QueueCommand::Fail { choice } => choice.fields("queue_fail"),
            QueueCommand::Drop { choice } => choice.fields("queue_drop"),
            QueueCommand::Retired { account, limit } => {
                json!({"cmd": "queue_retired", "account": account, "limit": limit})
            }
            QueueCommand::Holdrule { command } => match command {
                HoldRuleCommand::List => json!({"cmd": "hold_rule_list"}),
                HoldRuleCommand::Add { matching } => matching.fields("hold_rule_add"),
                HoldRuleCommand::Rm { id } => json!({"cmd": "hold_rule_rm", "id": id}),
            },
        },
        AdminCommand::Webhook { command } => match command {
            WebhookCommand::Set {
                account,
                url,
                authorization,
            } => json!({"cmd": "webhook_set", "account": account, "url": url,
                "authorization": authorization}),
            WebhookCommand::Rm { account } => json!({"cmd": "webhook_rm", "account": account}),
            WebhookCommand::Show { account } => json!({"cmd": "webhook_show", "account": account}),
            WebhookCommand::Pending { limit } => json!({"cmd": "webhook_pending", "limit": limit}),
            WebhookCommand::History { account, limit } => {
                json!({"cmd": "webhook_history", "account": account, "limit": limit})
            }
        },
        AdminCommand::Dkim { command } => match command {
            DkimCommand::Gen { domain, selector } => {
                json!({"cmd": "dkim_gen", "domain": domain, "selector": selector})
            }
            DkimCommand::Import {
                domain,
                selector,
                key,
            } => {
                let pem =
                    std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
                let der = rustls_pemfile::private_key(&mut pem.as_slice())
                    .context("reading the PEM key")?
                    .ok_or_else(|| anyhow!("no private key in {}", key.display()))?;
                let rustls::pki_types::PrivateKeyDer::Pkcs8(der) = der else {
                    bail!("the key must be PKCS#8 (BEGIN PRIVATE KEY)");
                };
                let b64 = roost_protocols::sasl::encode_base64(der.secret_pkcs8_der());
                json!({"cmd": "dkim_import", "domain": domain, "selector": selector, "key": b64})
            }
            DkimCommand::List { domain } => json!({"cmd": "dkim_list", "domain": domain}),
            DkimCommand::Rm { domain, selector } => {
                json!({"cmd": "dkim_rm", "domain": domain, "selector": selector})
            }
        },
        AdminCommand::Alias { command } => match command {
            AliasCommand::Add {
                address,
                members,
                post_public,
                allow_msg_from,
            } => json!({"cmd": "alias_add", "address": address, "members": members,
                "post_public": post_public, "allow_msg_from": allow_msg_from}),
            AliasCommand::List => json!({"cmd": "alias_list"}),
            AliasCommand::Rm { address } => json!({"cmd": "alias_rm", "address": address}),
        },
        AdminCommand::Kill { name, panic } => json!({"cmd": "kill", "name": name, "panic": panic}),
        AdminCommand::Check { account } => json!({"cmd": "check", "account": account}),
        AdminCommand::Stats => json!({"cmd": "stats"}),
        AdminCommand::FailFlush => json!({"cmd": "fail_flush"}),
        AdminCommand::Tlspubkey { command } => match command {
            TlsKeyCommand::Add {
                account,
                name,
                cert,
                no_preauth,
            } => {
                let der = read_certificate(cert)?;
                json!({"cmd": "tls_key_add", "account": account, "name": name,
                       "cert": roost_protocols::sasl::encode_base64(&der),
                       "preauth": !no_preauth})
            }
            TlsKeyCommand::List { account } => json!({"cmd": "tls_key_list", "account": account}),
            TlsKeyCommand::Rm { account, name } => {
                json!({"cmd": "tls_key_rm", "account": account, "name": name})
            }
            TlsKeyCommand::Gen { account, name } => {
                print!("{}", tls_key_recipe(account, name));
                return Ok(ExitCode::SUCCESS);
            }
        },
        AdminCommand::Imapserve { address, fd0 } => {
            return imapserve(&socket, address, *fd0);
        }
        AdminCommand::Message {
            account,
            mailbox,
            uid,
        } => json!({"cmd": "message_info", "account": account, "mailbox": mailbox, "uid": uid}),
        AdminCommand::Incomingreports { limit, .. } => {
            json!({"cmd": "incoming_reports", "limit": limit})
        }
        AdminCommand::Dmarcevaluations { limit, .. } => {
            json!({"cmd": "dmarc_evaluations", "limit": limit})
        }
        AdminCommand::Loginattempts { account, limit, .. } => {
            json!({"cmd": "login_attempts", "account": account, "limit": limit})
        }
    };
    let stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "cannot reach the admin socket {}; is roost running with this data directory?",
            socket.display()
        )
    })?;
    let mut writer = stream.try_clone()?;
    writeln!(writer, "{request}")?;
    let mut reader = BufReader::new(stream);
    let result = read_response(&mut reader)?;
    match args.command {
        AdminCommand::Tree { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                let nodes: Vec<TreeNode> = serde_json::from_value(result)?;
                print!("{}", render_text(&nodes));
            }
        }
        AdminCommand::Events { account } => {
            // The server answered after subscribing: from here on no event
            // is missed. Said on stderr, so stdout holds only events.
            eprintln!(
                "streaming change events of {}; Ctrl-C stops",
                account.as_deref().unwrap_or("every account")
            );
            let stdout = std::io::stdout();
            for line in reader.lines() {
                let line = line?;
                let mut out = stdout.lock();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
        AdminCommand::Check { .. } => {
            let problems: Vec<String> = serde_json::from_value(result)?;
            if problems.is_empty() {
                println!("consistent");
            } else {
                for p in &problems {
                    println!("{p}");
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        AdminCommand::Loginattempts { json: false, .. } => {
            let attempts = result.as_array().cloned().unwrap_or_default();
            for a in &attempts {
                let field = |k: &str| a[k].as_str().unwrap_or("-").to_string();
                // The username is the client's; quoted, so spaces and
                // control characters cannot disguise a line.
                println!(
                    "{} {} {} {} {:?} {} {}",
                    field("time"),
                    field("remote"),
                    field("protocol"),
                    field("mechanism"),
                    field("username"),
                    field("account"),
                    field("result")
                );
            }
        }
        AdminCommand::Queue {
            command: QueueCommand::List { json: false, .. },
        } => {
            for m in result.as_array().cloned().unwrap_or_default() {
                let rcpts: Vec<String> = m["recipients"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.as_str().unwrap_or("-").to_string())
                    .collect();
                println!(
                    "{} {} from=<{}> to={} attempts={} next={}{}{} last={:?}",
                    m["id"],
                    m["domain"].as_str().unwrap_or("-"),
                    m["sender"].as_str().unwrap_or(""),
                    rcpts.join(","),
                    m["attempts"],
                    m["next_attempt"].as_str().unwrap_or("-"),
                    if m["hold"].as_bool() == Some(true) {
                        " held"
                    } else {
                        ""
                    },
                    m["transport"]
                        .as_str()
                        .map_or(String::new(), |t| format!(" transport={t}")),
                    m["last_error"].as_str().unwrap_or("")
                );
            }
        }
        AdminCommand::Incomingreports { json: false, .. } => {
            for r in result.as_array().cloned().unwrap_or_default() {
                print_incoming_report(&r);
            }
        }
        AdminCommand::Dmarcevaluations { json: false, .. } => {
            for e in result.as_array().cloned().unwrap_or_default() {
                let field = |k: &str| e[k].as_str().unwrap_or("-").to_string();
                let dkim: Vec<String> = e["dkim"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|d| {
                        format!(
                            "{}/{}={}",
                            d["domain"].as_str().unwrap_or("-"),
                            d["selector"].as_str().unwrap_or("-"),
                            d["result"].as_str().unwrap_or("-")
                        )
                    })
                    .collect();
                println!(
                    "{} {} from={} policy={} {} dmarc={} disposition={} spf={}={} dkim={}",
                    field("time"),
                    field("source_ip"),
                    field("header_from"),
                    field("policy_domain"),
                    field("published"),
                    field("result"),
                    field("disposition"),
                    field("spf_domain"),
                    field("spf_result"),
                    if dkim.is_empty() {
                        "none".to_string()
                    } else {
                        dkim.join(",")
                    }
                );
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(&result)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `imapserve`: asks for the session, then copies bytes both ways until
/// either side closes.
fn imapserve(socket: &std::path::Path, address: &str, fd0: bool) -> Result<ExitCode> {
    use std::os::fd::AsFd;
    let stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the admin socket {}; is roost running with this data directory?",
            socket.display()
        )
    })?;
    let mut writer = stream.try_clone()?;
    writeln!(
        writer,
        "{}",
        json!({"cmd": "imap_serve", "account": address})
    )?;
    // The answer line, read a byte at a time: what follows is IMAP.
    let mut reader = stream.try_clone()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while reader.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let response: Value =
        serde_json::from_slice(&line).context("the server's answer is not JSON")?;
    if response["ok"] != json!(true) {
        bail!(
            "{}",
            response["error"].as_str().unwrap_or("the server refused")
        );
    }
    // fd 0 both ways with --fd0, else stdin in and stdout out; duplicated
    // descriptors, so plain Files can read and write them.
    let input = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let output = std::fs::File::from(if fd0 {
        std::io::stdin().as_fd().try_clone_to_owned()?
    } else {
        std::io::stdout().as_fd().try_clone_to_owned()?
    });
    let mut to_server = stream.try_clone()?;
    let up = std::thread::spawn(move || {
        pump(input, &mut to_server);
        let _ = to_server.shutdown(std::net::Shutdown::Write);
    });
    pump(stream, output);
    drop(up);
    Ok(ExitCode::SUCCESS)
}

/// Copies until end of input or an error, a read at a time. Not
/// `io::copy`: on Linux it splices pipes and sockets in the kernel, and a
/// splice from the client's pipe blocked the other direction's reads of
/// the same socket until the client closed it.
fn pump(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|_| to.flush()).is_err() {
                    return;
                }
            }
        }
    }
}

/// The first certificate in a PEM file, DER.
fn read_certificate(path: &std::path::Path) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or_else(|| anyhow!("{}: no PEM certificate found", path.display()))?
        .with_context(|| format!("{}: not a PEM certificate", path.display()))?;
    Ok(first.to_vec())
}

/// What `tlspubkey gen` prints: a P-256 key (the curve mail clients take
/// most widely), a certificate naming the account (only its key matters
/// to roost), a .p12 for mail clients, and the registration.
fn tls_key_recipe(account: &str, name: &str) -> String {
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let comment = format!("{account} ({name})");
    // Single-quoted for the shell: a quote inside becomes '\''.
    let quote = |s: &str| s.replace('\'', "'\\''");
    let (account, name) = (quote(account), quote(name));
    format!(
        "# A key and a self-signed certificate for {comment}:\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\\n\
         \x20   -keyout {file}.key -out {file}.crt -days 3650 -subj '/CN={account}'\n\
         # The bundle to import into the mail client (it asks for a password to protect it):\n\
         openssl pkcs12 -export -inkey {file}.key -in {file}.crt -name '{name}' -out {file}.p12\n\
         # Register the key with roost:\n\
         roost admin tlspubkey add '{account}' --name '{name}' --cert {file}.crt\n"
    )
}

fn read_response(reader: &mut impl BufRead) -> Result<Value> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        bail!("the server closed the admin connection without answering");
    }
    let response: Value = serde_json::from_str(&line).context("the server's answer is not JSON")?;
    if response["ok"] == json!(true) {
        Ok(response["result"].clone())
    } else {
        Err(anyhow!(
            "{}",
            response["error"]
                .as_str()
                .unwrap_or("the server refused the request")
        ))
    }
}

fn password_or_stdin(password: &Option<String>) -> Result<String> {
    if let Some(p) = password {
        return Ok(p.clone());
    }
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        bail!("no password given");
    }
    Ok(p)
}

/// One incoming report as text: a line about it, then a line per row.
fn print_incoming_report(r: &Value) {
    let rep = &r["report"];
    // Strangers wrote these: no control characters reach the terminal.
    let field = |v: &Value, k: &str| match &v[k] {
        Value::String(s) if !s.is_empty() => s
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        Value::Number(n) => n.to_string(),
        _ => "-".to_string(),
    };
    if r["kind"] == "dmarc" {
        println!(
            "{} {} dmarc from={} id={} domain={} p={} begin={} end={} records={}",
            field(r, "received"),
            field(r, "account"),
            field(rep, "org_name"),
            field(rep, "report_id"),
            field(rep, "domain"),
            field(rep, "policy"),
            field(rep, "begin"),
            field(rep, "end"),
            field(rep, "total_records"),
        );
        for row in rep["records"].as_array().cloned().unwrap_or_default() {
            println!(
                "  {} count={} disposition={} dkim={} spf={} header_from={}",
                field(&row, "source_ip"),
                field(&row, "count"),
                field(&row, "disposition"),
                field(&row, "dkim"),
                field(&row, "spf"),
                field(&row, "header_from"),
            );
        }
    } else {
        println!(
            "{} {} tls from={} id={} begin={} end={} policies={}",
            field(r, "received"),
            field(r, "account"),
            field(rep, "org_name"),
            field(rep, "report_id"),
            field(rep, "begin"),
            field(rep, "end"),
            field(rep, "total_policies"),
        );
        for p in rep["policies"].as_array().cloned().unwrap_or_default() {
            let failures: Vec<String> = p["failures"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|f| format!("{}={}", f[0].as_str().unwrap_or("-"), f[1]))
                .collect();
            println!(
                "  {} {} successful={} failed={}{}",
                field(&p, "policy_type"),
                field(&p, "policy_domain"),
                field(&p, "successful"),
                field(&p, "failed"),
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(" {}", failures.join(" "))
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_recipe_quotes_for_the_shell() {
        let r = tls_key_recipe("o'brien@example.org", "it's mine");
        assert!(
            r.ends_with(
                "roost admin tlspubkey add 'o'\\''brien@example.org' --name 'it'\\''s mine' --cert it_s_mine.crt\n"
            ),
            "{r}"
        );
    }
}
