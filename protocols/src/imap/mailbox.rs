//! The mailbox commands' parsers: SELECT and EXAMINE (with RFC 7162
//! CONDSTORE and QRESYNC parameters), LIST (RFC 5258 LIST-EXTENDED,
//! RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE), CREATE (with USE) and
//! STATUS; and their argument types.

use super::command::*;
use super::parser::{push_item, PResult, Parser, MAX_LIST_ITEMS};
use super::seqset::SeqSet;
use super::types::{is_atom_char, ModSeq};

/// A LIST command's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    pub reference: String,
    /// One or more patterns (RFC 5258 3: `mbox-or-pat`).
    pub patterns: Vec<String>,
    pub select: ListSelect,
    pub returns: ListReturn,
    /// Selection or return options were given: the extended form, whose
    /// answers may carry extended data (CHILDINFO).
    pub extended: bool,
}

/// RFC 5258 3.1 selection options (and RFC 6154 SPECIAL-USE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListSelect {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// RFC 5258 3.2 return options, RFC 5819 STATUS, RFC 6154 SPECIAL-USE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    pub status: Option<Vec<StatusItem>>,
    /// RFC 9590 3: the entries to answer for each mailbox listed.
    pub metadata: Option<Vec<String>>,
}

/// SELECT and EXAMINE parameters (RFC 7162 3.1.8, 3.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<QResync>,
}

/// RFC 7162 3.2.5: what the client remembers of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QResync {
    pub uid_validity: u32,
    pub modseq: ModSeq,
    /// The UIDs the client knows; all when absent.
    pub known_uids: Option<SeqSet>,
    /// Sequence numbers and the UIDs the client has for them.
    pub seq_match: Option<(SeqSet, SeqSet)>,
}

/// RFC 9051 6.3.11 status-att (and RECENT from IMAP4rev1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    /// RFC 9208 4.1.4: the bytes EXPUNGE would free.
    DeletedStorage,
    /// RFC 8474 4.1.
    MailboxId,
    Size,
    /// RFC 7162 3.1.6.
    HighestModSeq,
    Recent,
}

impl StatusItem {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::Deleted => "DELETED",
            StatusItem::DeletedStorage => "DELETED-STORAGE",
            StatusItem::MailboxId => "MAILBOXID",
            StatusItem::Size => "SIZE",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::Recent => "RECENT",
        }
    }
}

impl Parser<'_> {
    // RFC 9051 6.3.2 with RFC 7162 3.1.8 and 3.2.5:
    // SELECT mailbox [SP "(" select-param *(SP select-param) ")"], where
    // select-param is CONDSTORE or
    // QRESYNC SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
    //     [SP seq-match-data] ")".
    pub(super) fn select(&mut self) -> PResult<(String, SelectParams)> {
        let mailbox = self.sp_mailbox()?;
        let mut params = SelectParams::default();
        if self.eat(b' ') {
            self.expect(b'(', "'(' before select parameters")?;
            loop {
                let param = self.atom_upper("a select parameter")?;
                match param.as_str() {
                    "CONDSTORE" => params.condstore = true,
                    "QRESYNC" if params.qresync.is_none() => {
                        self.sp()?;
                        params.qresync = Some(self.qresync()?);
                    }
                    _ => return Err(format!("Unsupported select parameter {param}")),
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        Ok((mailbox, params))
    }

    pub(super) fn qresync(&mut self) -> PResult<QResync> {
        self.expect(b'(', "'(' after QRESYNC")?;
        let uid_validity = self.nz_number()?;
        self.sp()?;
        let modseq = self.modseq(true)?;
        let mut known_uids = None;
        let mut seq_match = None;
        if self.eat(b' ') {
            if self.peek() != Some(b'(') {
                known_uids = Some(self.seq_set()?);
                if !self.eat(b' ') {
                    self.expect(b')', "')' after QRESYNC parameters")?;
                    return Ok(QResync {
                        uid_validity,
                        modseq,
                        known_uids,
                        seq_match,
                    });
                }
            }
            self.expect(b'(', "'(' before sequence match data")?;
            let seqs = self.seq_set()?;
            self.sp()?;
            let uids = self.seq_set()?;
            self.expect(b')', "')' after sequence match data")?;
            seq_match = Some((seqs, uids));
        }
        self.expect(b')', "')' after QRESYNC parameters")?;
        Ok(QResync {
            uid_validity,
            modseq,
            known_uids,
            seq_match,
        })
    }

    // RFC 9051 6.3.9, basic form: LIST SP mailbox SP list-mailbox.
    // RFC 9051 6.3.9 / RFC 5258 3:
    // LIST [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts].
    pub(super) fn list(&mut self) -> PResult<CommandBody> {
        let mut cmd = ListCommand::default();
        self.sp()?;
        if self.peek() == Some(b'(') {
            cmd.extended = true;
            self.list_options(|p, opt| {
                match opt {
                    "SUBSCRIBED" => cmd.select.subscribed = true,
                    "REMOTE" => cmd.select.remote = true,
                    "RECURSIVEMATCH" => cmd.select.recursive_match = true,
                    "SPECIAL-USE" => cmd.select.special_use = true,
                    _ => return Err(format!("Unknown LIST selection option {opt}")),
                }
                let _ = p;
                Ok(())
            })?;
            // RFC 5258 3.1: RECURSIVEMATCH needs an option it modifies.
            if cmd.select.recursive_match && !cmd.select.subscribed && !cmd.select.special_use {
                return Err("RECURSIVEMATCH needs another selection option".into());
            }
            self.sp()?;
        }
        cmd.reference = self.astring()?;
        self.sp()?;
        if self.eat(b'(') {
            loop {
                let pattern = self.list_mailbox()?;
                push_item(&mut cmd.patterns, pattern, "LIST patterns")?;
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        } else {
            cmd.patterns.push(self.list_mailbox()?);
        }
        if self.eat(b' ') {
            if !self.eat_word("RETURN ") {
                return Err("Expected RETURN".into());
            }
            cmd.extended = true;
            let mut status = None;
            let mut metadata = None;
            let mut returns = ListReturn::default();
            self.list_options(|p, opt| {
                match opt {
                    "SUBSCRIBED" => returns.subscribed = true,
                    "CHILDREN" => returns.children = true,
                    "SPECIAL-USE" => returns.special_use = true,
                    "STATUS" if status.is_none() => {
                        p.sp()?;
                        status = Some(p.status_items()?);
                    }
                    // RFC 9590 5: "METADATA" SP entries.
                    "METADATA" if metadata.is_none() => {
                        p.sp()?;
                        metadata = Some(p.entries()?);
                    }
                    _ => return Err(format!("Unknown LIST return option {opt}")),
                }
                Ok(())
            })?;
            returns.status = status;
            returns.metadata = metadata;
            cmd.returns = returns;
        }
        Ok(CommandBody::List(cmd))
    }

    /// `"(" [option *(SP option)] ")"`, each option's name handed to `f`
    /// upper-cased (it may read arguments that follow).
    pub(super) fn list_options(
        &mut self,
        mut f: impl FnMut(&mut Self, &str) -> PResult<()>,
    ) -> PResult<()> {
        self.expect(b'(', "'(' before LIST options")?;
        if self.eat(b')') {
            return Ok(());
        }
        let mut count = 0;
        loop {
            let opt = self.take_while(|b| is_atom_char(b) && b != b'(');
            if opt.is_empty() {
                return Err("Expected a LIST option".into());
            }
            let opt = String::from_utf8_lossy(opt).to_ascii_uppercase();
            count += 1;
            if count > MAX_LIST_ITEMS {
                return Err(format!("Too many LIST options (at most {MAX_LIST_ITEMS})"));
            }
            f(self, &opt)?;
            if self.eat(b')') {
                return Ok(());
            }
            self.sp()?;
        }
    }

    // RFC 9051 6.3.4 with RFC 6154 3: CREATE SP mailbox
    // [SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"].
    pub(super) fn create(&mut self) -> PResult<CommandBody> {
        let mailbox = self.sp_mailbox()?;
        let mut special_use = Vec::new();
        if self.eat(b' ') {
            self.expect(b'(', "'(' before CREATE parameters")?;
            if !self.eat_word("USE ") {
                return Err("Unknown CREATE parameter".into());
            }
            self.expect(b'(', "'(' after USE")?;
            if !self.eat(b')') {
                loop {
                    self.expect(b'\\', "a special-use attribute")?;
                    let name = self.take_while(is_atom_char);
                    if name.is_empty() {
                        return Err("Expected a special-use attribute".into());
                    }
                    let attr = format!("\\{}", String::from_utf8_lossy(name));
                    push_item(&mut special_use, attr, "special-use attributes")?;
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
            }
            self.expect(b')', "')' after CREATE parameters")?;
        }
        Ok(CommandBody::Create {
            mailbox,
            special_use,
        })
    }

    // RFC 9051 6.3.11: STATUS SP mailbox SP "(" status-att *(SP status-att) ")".
    pub(super) fn status(&mut self) -> PResult<CommandBody> {
        let mailbox = self.sp_mailbox()?;
        self.sp()?;
        let items = self.status_items()?;
        Ok(CommandBody::Status { mailbox, items })
    }

    /// `"(" status-att *(SP status-att) ")"`, duplicates dropped.
    pub(super) fn status_items(&mut self) -> PResult<Vec<StatusItem>> {
        self.expect(b'(', "'(' before status items")?;
        let mut items = Vec::new();
        loop {
            let name = self.atom_upper("a status item")?;
            let item = match name.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "DELETED" => StatusItem::Deleted,
                "DELETED-STORAGE" => StatusItem::DeletedStorage,
                "MAILBOXID" => StatusItem::MailboxId,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "RECENT" => StatusItem::Recent,
                _ => return Err(format!("Unknown status item {name}")),
            };
            if !items.contains(&item) {
                items.push(item);
            }
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        Ok(items)
    }
}

/// Resource names of RFC 9208 5 a quota can limit, at most per SETQUOTA.
pub const MAX_QUOTA_RESOURCES: usize = 16;

impl Parser<'_> {
    pub(super) fn sp_astring_quota(&mut self) -> PResult<String> {
        self.sp()?;
        self.astring()
    }

    // RFC 9208 7: setquota = "SETQUOTA" SP quota-root-name SP
    //     "(" [setquota-resource *(SP setquota-resource)] ")",
    // setquota-resource = resource-name SP resource-limit.
    pub(super) fn setquota(&mut self) -> PResult<CommandBody> {
        let root = self.sp_astring_quota()?;
        self.sp()?;
        self.expect(b'(', "'(' before quota limits")?;
        let mut limits = Vec::new();
        if !self.eat(b')') {
            loop {
                if limits.len() >= MAX_QUOTA_RESOURCES {
                    return Err("Too many quota resources".into());
                }
                let name = self.atom_upper("a resource name")?;
                let limit = self.sp_number64()?;
                limits.push((name, limit));
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        Ok(CommandBody::SetQuota { root, limits })
    }
}
