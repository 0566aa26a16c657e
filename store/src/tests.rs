//! Store tests over real temporary directories.

use super::*;
use roost_protocols::imap::types::{Flag, Flags};
use std::io::Write;

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Opens a store just closed: sled's background thread may hold the
/// index's lock for a moment after the last handle goes.
fn reopen(dir: &tempfile::TempDir) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir.path()) {
            Ok(store) => return store,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

fn ok<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

const NAME: &str = "roost@localhost";

/// Builds a message record for `file` holding `body`, with the counts the
/// account actor would keep, and the commit that delivers it.
struct Delivery {
    account: AccountRecord,
    inbox: MailboxRecord,
}

impl Delivery {
    fn new(store: &Store) -> Delivery {
        let account = ok(store.create_account(NAME, "secret", None));
        let inbox = ok(store.mailbox(account.id, MailboxId(1))).unwrap_or_else(|| panic!("inbox"));
        Delivery { account, inbox }
    }

    /// Allocates as the account actor would and returns the record.
    fn message(&mut self, file: FileId, body: &[u8], prefix: &[u8], flags: Flags) -> MessageRecord {
        self.account.last_modseq = ModSeq(self.account.last_modseq.0 + 1);
        let uid = self.inbox.uid_next;
        self.inbox.uid_next = Uid(uid.0 + 1);
        self.inbox.highest_modseq = self.account.last_modseq;
        let size = (prefix.len() + body.len()) as u64;
        self.inbox.counts.total += 1;
        self.inbox.counts.size += size;
        if !flags.contains(&Flag::Seen) {
            self.inbox.counts.unseen += 1;
        }
        if flags.contains(&Flag::Deleted) {
            self.inbox.counts.deleted += 1;
        }
        MessageRecord {
            account: self.account.id,
            mailbox: self.inbox.id,
            uid,
            file,
            modseq: self.account.last_modseq,
            createseq: self.account.last_modseq,
            flags,
            size,
            internal_date: 1_700_000_000,
            save_date: 1_700_000_001,
            header_prefix: prefix.to_vec(),
            message_id: Some(format!("<{}@test>", file.0)),
            thread_id: ThreadId(file.0),
            thread_parents: Vec::new(),
            missing_link: false,
            muted: false,
            collapsed: false,
            extra: Vec::new(),
        }
    }

    fn records(&self, messages: &[MessageRecord]) -> Vec<Record> {
        let mut puts = vec![
            Record::Account(Box::new(self.account.clone())),
            Record::Mailbox(self.inbox.clone()),
        ];
        puts.extend(messages.iter().cloned().map(Record::Message));
        puts
    }
}

const BODY_A: &[u8] = b"Subject: a\r\n\r\nfirst\r\n";
const BODY_B: &[u8] = b"Subject: b\r\n\r\nsecond, longer\r\n";
const PREFIX: &[u8] = b"Received: from test\r\n";

/// An account with two messages delivered in one commit.
fn two_messages(store: &Store) -> (Delivery, Vec<MessageRecord>, CommitStats) {
    let mut d = Delivery::new(store);
    let (fa, fb) = (ok(store.next_file_id()), ok(store.next_file_id()));
    let a = d.message(fa, BODY_A, PREFIX, Flags::new());
    let mut seen = Flags::new();
    seen.insert(Flag::Seen);
    let b = d.message(fb, BODY_B, b"", seen);
    let mut w = ok(store.stage());
    ok(w.write_all(BODY_B).map_err(|e| StoreError::io("w", e)));
    let staged_b = ok(w.finish());
    let commit = Commit {
        puts: d.records(&[a.clone(), b.clone()]),
        place_files: vec![(ok(store.stage_bytes(BODY_A)), fa), (staged_b, fb)],
        ..Commit::default()
    };
    let stats = ok(store.commit(commit));
    (d, vec![a, b], stats)
}

#[test]
fn store_is_shared_across_threads() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Store>();
    fn sendable<T: Send>() {}
    sendable::<StagedWriter>();
    sendable::<StagedFile>();
}

#[test]
fn create_account_makes_default_mailboxes() {
    let (_dir, store) = temp_store();
    let a = ok(store.create_account(" roost@LOCALHOST ", "pw", Some(1 << 20)));
    assert_eq!(a.name, NAME);
    assert_eq!(a.last_modseq, INITIAL_MODSEQ);
    assert_eq!(a.quota_bytes, Some(1 << 20));
    let boxes = ok(store.mailboxes(a.id));
    let names: Vec<&str> = boxes.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]
    );
    assert_eq!(boxes[0].special_use, None);
    assert_eq!(boxes[1].special_use, Some(SpecialUse::Sent));
    assert!(boxes.iter().all(|m| m.uid_next == Uid(1) && m.subscribed));
    let mut validities: Vec<u32> = boxes.iter().map(|m| m.uid_validity.0).collect();
    validities.dedup();
    assert_eq!(validities.len(), 6, "each mailbox has its own UIDVALIDITY");
    assert!(a.next_uid_validity > validities[5]);
    assert_eq!(a.next_mailbox_id, 7);
    assert!(matches!(
        store.create_account(NAME, "pw", None),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create_account("no-at-sign", "pw", None),
        Err(StoreError::Invalid(_))
    ));
    let b = ok(store.create_account("other@localhost", "pw", None));
    assert_ne!(a.id, b.id);
    assert!(ok(store.check_consistency(NAME)).is_empty());
}

#[test]
fn accounts_addresses_and_passwords() {
    let (_dir, store) = temp_store();
    ok(store.add_domain("localhost"));
    let a = ok(store.create_account(NAME, "old", None));
    assert!(a.password.verify_password("old"));
    ok(store.set_password(NAME, "new"));
    let a = ok(store.account(NAME)).unwrap_or_else(|| panic!("account"));
    assert!(a.password.verify_password("new"));
    assert!(!a.password.verify_password("old"));

    ok(store.add_address(NAME, "postmaster@LocalHost"));
    let by = ok(store.account_by_address("postmaster@localhost"));
    assert_eq!(by.map(|r| r.id), Some(a.id));
    assert_eq!(
        ok(store.account_by_address("ROOST@localhost")).map(|r| r.id),
        Some(a.id),
        "local parts match without case"
    );
    assert_eq!(
        ok(store.account_by_address("roost@LOCALHOST")).map(|r| r.id),
        Some(a.id)
    );
    assert_eq!(
        ok(store.account("postmaster@localhost")),
        None,
        "not a login name"
    );
    assert!(matches!(
        store.add_address("other@localhost", "x@localhost"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.add_address(NAME, "postmaster@localhost"),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.remove_address(NAME, NAME),
        Err(StoreError::Invalid(_))
    ));
    ok(store.remove_address(NAME, "postmaster@localhost"));
    assert_eq!(ok(store.account_by_address("postmaster@localhost")), None);
    assert_eq!(ok(store.accounts()).len(), 1);
}

#[test]
fn domains() {
    let (_dir, store) = temp_store();
    ok(store.add_domain("Example.ORG"));
    ok(store.add_domain("b.example"));
    assert!(ok(store.has_domain("example.org")));
    assert!(!ok(store.has_domain("example.com")));
    assert!(matches!(
        store.add_domain("example.org"),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(store.add_domain(""), Err(StoreError::Invalid(_))));
    let names: Vec<String> = ok(store.domains()).into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["b.example", "example.org"]);
    ok(store.remove_domain("EXAMPLE.org"));
    assert!(matches!(
        store.remove_domain("example.org"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(ok(store.domains()).len(), 1);
}

/// Which domains are disabled is answered from memory: kept in step with
/// every change, and read again when the store opens.
#[test]
fn disabled_domains_follow_every_change_and_a_reopen() {
    let dir = ok(tempfile::tempdir().map_err(|e| StoreError::io("tmp", e)));
    {
        let store = open(&dir);
        ok(store.add_domain("a.example"));
        ok(store.add_domain("b.example"));
        assert!(!ok(store.domain_disabled("a.example")));
        ok(store.set_domain_disabled("A.Example", true));
        ok(store.set_domain_disabled("b.example", true));
        assert!(ok(store.domain_disabled("a.EXAMPLE")));
        ok(store.set_domain_disabled("b.example", false));
        assert!(!ok(store.domain_disabled("b.example")));
        assert!(!ok(store.domain_disabled("c.example")));
        assert!(!ok(store.domain_disabled("not a domain")));
    }
    let store = reopen(&dir);
    assert!(ok(store.domain_disabled("a.example")));
    assert!(!ok(store.domain_disabled("b.example")));
    // Removed and added again, a domain starts enabled.
    ok(store.remove_domain("a.example"));
    assert!(!ok(store.domain_disabled("a.example")));
    ok(store.add_domain("a.example"));
    assert!(!ok(store.domain_disabled("a.example")));
}

fn resolved(store: &Store, addr: &str) -> Option<String> {
    match ok(store.resolve_recipient(addr))? {
        Resolved::Account(a) => Some(a.name),
        Resolved::Alias(a) => Some(format!("alias {}", a.address)),
    }
}

#[test]
fn recipients_resolve_by_case_tag_catchall_and_alias() {
    let (_dir, store) = temp_store();
    ok(store.add_domain("localhost"));
    ok(store.create_account("Jose\u{301}@localhost", "secret", None));
    // Kept in NFC with its case; indexed without case.
    let jose = "Jos\u{e9}@localhost";
    // Stored in NFC and lower case; found from NFD and any case.
    assert_eq!(
        resolved(&store, "JOSE\u{301}@LOCALHOST").as_deref(),
        Some(jose)
    );
    assert_eq!(resolved(&store, "jos\u{e9}+x@localhost"), None);
    assert_eq!(resolved(&store, "x@elsewhere.example"), None);
    // Separators: up to MAX_SEPARATORS characters.
    let eight = "+-_=~!#$";
    assert_eq!(eight.chars().count(), MAX_SEPARATORS);
    ok(store.set_domain_matching("localhost", Some(eight.into()), None, None));
    assert!(matches!(
        store.set_domain_matching("localhost", Some(format!("{eight}%")), None, None),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_domain_matching("localhost", Some("@".into()), None, None),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        resolved(&store, "jos\u{e9}$a+b@localhost").as_deref(),
        Some(jose)
    );
    // Each separator from the left: `john-doe+x` tries `john`, then
    // `john-doe`.
    ok(store.create_account("john-doe@localhost", "secret", None));
    assert_eq!(
        resolved(&store, "john-doe+x@localhost").as_deref(),
        Some("john-doe@localhost")
    );
    // Case-sensitive local parts: only the form the account was made with.
    ok(store.set_domain_matching("localhost", None, Some(true), None));
    assert_eq!(resolved(&store, "JOS\u{c9}@localhost"), None);
    assert_eq!(resolved(&store, "jos\u{e9}@localhost"), None);
    assert_eq!(
        resolved(&store, "Jose\u{301}@localhost").as_deref(),
        Some(jose)
    );
    ok(store.set_domain_matching("localhost", None, Some(false), None));
    // The catchall takes what nothing else does; an alias matches first.
    assert_eq!(resolved(&store, "nobody@localhost"), None);
    ok(store.add_address(jose, "@LocalHost"));
    assert_eq!(resolved(&store, "nobody@localhost").as_deref(), Some(jose));
    ok(store.add_alias("Team@localhost", &[jose.to_string()], false, false));
    assert_eq!(
        resolved(&store, "team+x@localhost").as_deref(),
        Some("alias team@localhost")
    );
    assert!(matches!(
        store.add_alias("team@localhost", &[jose.to_string()], true, false),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_address(jose, "team@localhost"),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_alias(
            "list@localhost",
            &["someone@example.org".into()],
            true,
            false
        ),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.add_alias("list@localhost", &[], true, false),
        Err(StoreError::Invalid(_))
    ));
    // MAX_ALIAS_MEMBERS members, and one past it.
    let mut members = vec![jose.to_string()];
    for i in 1..=MAX_ALIAS_MEMBERS {
        let a = format!("m{i}@localhost");
        ok(store.add_address(jose, &a));
        members.push(a);
    }
    assert!(matches!(
        store.add_alias("big@localhost", &members, true, false),
        Err(StoreError::Invalid(_))
    ));
    members.pop();
    let big = ok(store.add_alias("big@localhost", &members, true, false));
    assert_eq!(big.members.len(), MAX_ALIAS_MEMBERS);
    ok(store.remove_alias("big@localhost"));
    assert_eq!(ok(store.aliases()).len(), 1);
    // Deleting the account takes its catchall address with it.
    ok(store.delete_account(jose));
    assert_eq!(resolved(&store, "nobody@localhost"), None);
}

#[test]
fn delivery_rules_and_their_limits() {
    let (_dir, store) = temp_store();
    let account = ok(store.create_account(NAME, "secret", None));
    let rule = |mailbox: &str, sender: Option<&str>| DeliveryRule {
        header: None,
        sender: sender.map(str::to_string),
        mailbox: mailbox.to_string(),
    };
    assert!(matches!(
        store.add_rule(NAME, rule("X", None)),
        Err(StoreError::Invalid(_))
    ));
    let long = "m".repeat(MAX_RULE_TEXT);
    ok(store.add_rule(NAME, rule(&long, Some("A@Example.ORG"))));
    assert!(matches!(
        store.add_rule(NAME, rule(&format!("{long}m"), Some("a@example.org"))),
        Err(StoreError::Invalid(_))
    ));
    // The sender is kept in canonical form.
    assert_eq!(
        ok(store.rules(account.id))[0].sender.as_deref(),
        Some("a@example.org")
    );
    for _ in 1..MAX_RULES {
        ok(store.add_rule(NAME, rule("X", Some("@Example.org"))));
    }
    assert_eq!(ok(store.rules(account.id)).len(), MAX_RULES);
    assert!(matches!(
        store.add_rule(NAME, rule("X", Some("@example.org"))),
        Err(StoreError::Invalid(_))
    ));
    let r = &ok(store.rules(account.id))[1];
    assert!(r.matches(&[], Some("b@example.org")));
    assert!(!r.matches(&[], Some("b@example.com")));
    assert!(!r.matches(&[], None));
    assert!(matches!(
        store.remove_rule(NAME, 0),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.remove_rule(NAME, MAX_RULES + 1),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(ok(store.remove_rule(NAME, MAX_RULES)).len(), MAX_RULES - 1);
    // The rules go with the account.
    ok(store.delete_account(NAME));
    assert!(ok(store.rules(account.id)).is_empty());
}

#[test]
fn address_keys_from_before_case_folding_are_rewritten_at_open() {
    let dir = ok(tempfile::tempdir().map_err(|e| StoreError::io("tmp", e)));
    {
        let store = open(&dir);
        ok(store.add_domain("localhost"));
        let a = ok(store.create_account("Mixed@localhost", "secret", None));
        assert_eq!(a.name, "Mixed@localhost");
        // As an older roost indexed it: the local part with its case, and
        // no mark that the index was folded.
        let db = &store.inner.db;
        ok(db
            .remove(keys::meta(ADDRESS_KEYS_FOLDED))
            .map_err(StoreError::from));
        let id = ok(db
            .remove(keys::address("mixed@localhost"))
            .map_err(StoreError::from));
        let id = id.unwrap_or_else(|| panic!("index key"));
        ok(db
            .insert(keys::address("Mixed@localhost"), id)
            .map_err(StoreError::from));
        ok(store.flush());
    }
    let store = open(&dir);
    let a = ok(store.account("mixed@LOCALHOST")).unwrap_or_else(|| panic!("found"));
    assert_eq!(a.name, "Mixed@localhost");
    assert!(!ok(store
        .inner
        .db
        .contains_key(keys::address("Mixed@localhost"))
        .map_err(StoreError::from)));
    // Case-sensitive local parts match the form the account was made with.
    ok(store.set_domain_matching("localhost", None, Some(true), None));
    assert!(ok(store.resolve_recipient("Mixed@localhost")).is_some());
    assert!(ok(store.resolve_recipient("mixed@localhost")).is_none());
}

#[test]
fn intro_mailbox_and_known_correspondents() {
    let (_dir, store) = temp_store();
    let account = ok(store.create_account(NAME, "secret", None));
    assert_eq!(ok(store.intro_mailbox(account.id)), None);
    ok(store.set_intro_mailbox(NAME, Some("m".repeat(MAX_RULE_TEXT))));
    assert!(matches!(
        store.set_intro_mailbox(NAME, Some("m".repeat(MAX_RULE_TEXT + 1))),
        Err(StoreError::Invalid(_))
    ));
    ok(store.set_intro_mailbox(NAME, Some("Intro".into())));
    assert_eq!(
        ok(store.intro_mailbox(account.id)).as_deref(),
        Some("Intro")
    );
    assert!(!ok(store.is_known(account.id, "a@example.org")));
    ok(store.mark_known(
        account.id,
        &["A@Example.ORG".into(), "not an address".into()],
    ));
    assert!(ok(store.is_known(account.id, "a@example.org")));
    ok(store.set_intro_mailbox(NAME, None));
    assert_eq!(ok(store.intro_mailbox(account.id)), None);
    ok(store.delete_account(NAME));
    assert!(!ok(store.is_known(account.id, "a@example.org")));
}

#[test]
fn dkim_keys_per_domain_and_their_limits() {
    let (_dir, store) = temp_store();
    let key = |selector: &str| DkimKey {
        selector: selector.to_string(),
        algorithm: DkimAlgorithm::Ed25519,
        pkcs8: vec![1, 2, 3],
        created: 0,
    };
    assert!(matches!(
        store.add_dkim_key("localhost", key("s")),
        Err(StoreError::Invalid(_))
    ));
    ok(store.add_domain("LocalHost"));
    for bad in ["", "a b", "a..b", "a_b", &"s".repeat(MAX_SELECTOR + 1)] {
        assert!(
            matches!(
                store.add_dkim_key("localhost", key(bad)),
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    ok(store.add_dkim_key("localhost", key(&"s".repeat(MAX_SELECTOR))));
    for i in 1..MAX_DKIM_KEYS {
        ok(store.add_dkim_key("LOCALHOST", key(&format!("k{i}.x"))));
    }
    assert!(matches!(
        store.add_dkim_key("localhost", key("one-more")),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.add_dkim_key("localhost", key("K1.X")),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(ok(store.dkim_keys("localhost")).len(), MAX_DKIM_KEYS);
    assert_eq!(
        ok(store.remove_dkim_key("localhost", "k1.x")).len(),
        MAX_DKIM_KEYS - 1
    );
    assert!(matches!(
        store.remove_dkim_key("localhost", "k1.x"),
        Err(StoreError::NotFound(_))
    ));
    assert!(ok(store.dkim_keys("example.org")).is_empty());
}

#[test]
fn commit_places_two_messages_with_one_flush() {
    let (dir, store) = temp_store();
    let before = store.stats();
    let (d, msgs, stats) = two_messages(&store);
    let after = store.stats();
    // create_account flushed once; the commit flushed once more.
    assert_eq!(after.flushes - before.flushes, 2);
    assert_eq!(after.commits, 1);
    assert_eq!(after.messages_placed, 2);
    assert_eq!(stats.records, 4);
    assert_eq!(stats.files, 2);
    // Both messages go into one new segment: its data, plus seg/ for
    // creating it.
    assert_eq!(stats.fsyncs, 2);
    // The commit's fsyncs, and the index file's fsync after each of the
    // two flushes; staging fsyncs nothing.
    assert_eq!(after.fsyncs, 2 + 2);

    let stored = ok(store.messages(d.account.id, d.inbox.id));
    assert_eq!(stored, msgs);
    let mut expect_a = PREFIX.to_vec();
    expect_a.extend_from_slice(BODY_A);
    assert_eq!(ok(store.read_message(&stored[0])), expect_a);
    assert_eq!(ok(store.read_message(&stored[1])), BODY_B);
    assert_eq!(
        ok(store.message_by_file(d.account.id, msgs[1].file)),
        Some(msgs[1].clone())
    );
    assert_eq!(
        ok(store.message(d.account.id, d.inbox.id, Uid(2))),
        Some(msgs[1].clone())
    );
    assert!(ok(store.check_consistency(NAME)).is_empty());
    assert_eq!(
        ok(std::fs::read_dir(dir.path().join("tmp")).map_err(|e| StoreError::io("tmp", e))).count(),
        0
    );
}

#[test]
fn link_remove_tombstones_and_threads() {
    let (_dir, store) = temp_store();
    let (mut d, msgs, _) = two_messages(&store);
    let a = d.account.id;

    // MOVE message 1 from INBOX to Archive: link under a new id, expunge
    // the old one with a tombstone, remove the old file.
    let mut archive = ok(store.mailbox(a, MailboxId(6))).unwrap_or_else(|| panic!("archive"));
    let new_file = ok(store.next_file_id());
    d.account.last_modseq = ModSeq(d.account.last_modseq.0 + 1);
    let moved = MessageRecord {
        mailbox: archive.id,
        uid: Uid(1),
        file: new_file,
        modseq: d.account.last_modseq,
        createseq: d.account.last_modseq,
        ..msgs[0].clone()
    };
    archive.uid_next = Uid(2);
    archive.highest_modseq = d.account.last_modseq;
    archive.counts = MailboxCounts {
        total: 1,
        unseen: 1,
        deleted: 0,
        size: moved.size,
    };
    d.account.last_modseq = ModSeq(d.account.last_modseq.0 + 1);
    let tomb = Tombstone {
        account: a,
        mailbox: d.inbox.id,
        uid: msgs[0].uid,
        modseq: d.account.last_modseq,
    };
    d.inbox.highest_modseq = d.account.last_modseq;
    d.inbox.counts.total -= 1;
    d.inbox.counts.unseen -= 1;
    d.inbox.counts.size -= msgs[0].size;
    let tref = ThreadRef {
        thread: ThreadId(9),
        file: new_file,
        muted: false,
        collapsed: true,
    };
    let mut puts = d.records(std::slice::from_ref(&moved));
    puts.push(Record::Mailbox(archive.clone()));
    puts.push(Record::Tombstone(tomb));
    puts.push(Record::ThreadByMessageId {
        account: a,
        message_id: "<1@test>".into(),
        r: tref,
    });
    puts.push(Record::ThreadBySubject {
        account: a,
        base_subject: "a".into(),
        r: tref,
    });
    let stats = ok(store.commit(Commit {
        puts,
        deletes: vec![RecordKey::Message(a, d.inbox.id, msgs[0].uid)],
        link_files: vec![(msgs[0].file, new_file)],
        remove_files: vec![msgs[0].file],
        ..Commit::default()
    }));
    assert_eq!(stats.files, 1);
    assert_eq!(gone(&store, msgs[0].file), std::io::ErrorKind::NotFound);
    assert_eq!(ok(store.read_message(&moved))[PREFIX.len()..], *BODY_A);
    assert_eq!(ok(store.message_by_file(a, msgs[0].file)), None);
    assert_eq!(ok(store.message_by_file(a, new_file)), Some(moved));
    assert_eq!(ok(store.tombstones(a, d.inbox.id)), vec![tomb]);
    assert_eq!(ok(store.thread_by_message_id(a, "<1@test>")), Some(tref));
    assert_eq!(ok(store.thread_by_subject(a, "a")), Some(tref));
    assert_eq!(ok(store.thread_by_subject(a, "b")), None);
    let problems = ok(store.check_consistency(NAME));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn thread_entries_from_before_counting_are_kept() {
    let (_dir, store) = temp_store();
    let (mut d, msgs, _) = two_messages(&store);
    let a = d.account.id;
    let r = ThreadRef {
        thread: ThreadId(msgs[0].file.0),
        file: msgs[0].file,
        muted: false,
        collapsed: false,
    };
    // An entry as roost wrote it before the counts: no `refs`.
    let legacy = keys::thread_by_message_id(a, "old@x");
    ok(store
        .inner
        .db
        .insert(&legacy, ok(encode(&r)))
        .map_err(StoreError::from));
    ok(store.commit(Commit {
        puts: vec![
            Record::Message(msgs[0].clone()),
            Record::ThreadByMessageId {
                account: a,
                message_id: "old@x".into(),
                r,
            },
            Record::ThreadByMessageId {
                account: a,
                message_id: "new@x".into(),
                r,
            },
        ],
        ..Commit::default()
    }));
    // The message whose file carries both keys goes.
    let mut inbox = d.inbox.clone();
    inbox.counts.total -= 1;
    inbox.counts.unseen -= 1;
    inbox.counts.size -= msgs[0].size;
    d.account.last_modseq = ModSeq(d.account.last_modseq.0 + 1);
    inbox.highest_modseq = d.account.last_modseq;
    ok(store.commit(Commit {
        puts: vec![Record::Mailbox(inbox)],
        deletes: vec![RecordKey::Message(a, d.inbox.id, msgs[0].uid)],
        remove_files: vec![msgs[0].file],
        ..Commit::default()
    }));
    assert_eq!(ok(store.thread_by_message_id(a, "old@x")), Some(r));
    assert_eq!(ok(store.thread_by_message_id(a, "new@x")), None);
    // A message expunged in the commit that would have stored it (no
    // record of its file is kept) leaves no entry behind.
    let gone = ThreadRef {
        file: ok(store.next_file_id()),
        ..r
    };
    ok(store.commit(Commit {
        puts: vec![Record::ThreadBySubject {
            account: a,
            base_subject: "gone".into(),
            r: gone,
        }],
        ..Commit::default()
    }));
    assert_eq!(ok(store.thread_by_subject(a, "gone")), None);
    assert_eq!(
        ok(store
            .inner
            .db
            .get(keys::file_thread(a, gone.file))
            .map_err(StoreError::from)),
        None
    );
    assert_eq!(
        ok(store
            .inner
            .db
            .get(keys::file_thread(a, msgs[0].file))
            .map_err(StoreError::from)),
        None
    );
}

#[test]
fn failed_commit_leaves_no_files() {
    let (dir, store) = temp_store();
    let (_, msgs, _) = two_messages(&store);
    let fresh = ok(store.next_file_id());
    // The second placement collides with an existing file.
    let res = store.commit(Commit {
        place_files: vec![
            (ok(store.stage_bytes(b"x")), fresh),
            (ok(store.stage_bytes(b"y")), msgs[0].file),
        ],
        ..Commit::default()
    });
    assert!(matches!(res, Err(StoreError::AlreadyExists(_))));
    assert_eq!(gone(&store, fresh), std::io::ErrorKind::NotFound, "undone");
    assert_eq!(
        ok(store
            .read_content(msgs[0].file)
            .map_err(|e| StoreError::io("f", e))),
        BODY_A
    );
    // One id twice in one commit is refused the same way.
    let res = store.commit(Commit {
        place_files: vec![
            (ok(store.stage_bytes(b"x")), fresh),
            (ok(store.stage_bytes(b"y")), fresh),
        ],
        ..Commit::default()
    });
    assert!(matches!(res, Err(StoreError::AlreadyExists(_))));
    assert_eq!(
        ok(std::fs::read_dir(dir.path().join("tmp")).map_err(|e| StoreError::io("tmp", e))).count(),
        0
    );
}

#[test]
fn delete_account_removes_records_and_files() {
    let (dir, store) = temp_store();
    ok(store.add_domain("localhost"));
    let (d, msgs, _) = two_messages(&store);
    ok(store.add_address(NAME, "alias@localhost"));
    let other = ok(store.create_account("other@localhost", "pw", None));
    ok(store.delete_account(NAME));
    for m in &msgs {
        assert_eq!(gone(&store, m.file), std::io::ErrorKind::NotFound);
    }
    assert!(
        segment_blocks(&dir).iter().all(|&(_, blocks)| blocks == 0),
        "{:?}",
        segment_blocks(&dir)
    );
    assert_eq!(ok(store.account(NAME)), None);
    assert_eq!(ok(store.account_by_address("alias@localhost")), None);
    assert!(ok(store.mailboxes(d.account.id)).is_empty());
    assert!(ok(store.messages(d.account.id, d.inbox.id)).is_empty());
    assert_eq!(ok(store.message_by_file(d.account.id, msgs[0].file)), None);
    assert_eq!(ok(store.mailboxes(other.id)).len(), 6, "others untouched");
    assert!(matches!(
        store.delete_account(NAME),
        Err(StoreError::NotFound(_))
    ));
    // The name is free again, with fresh UIDVALIDITY values.
    let again = ok(store.create_account(NAME, "pw", None));
    assert_ne!(again.id, d.account.id);
    let inbox = ok(store.mailbox(again.id, MailboxId(1))).unwrap_or_else(|| panic!("inbox"));
    assert!(inbox.uid_validity.0 >= d.account.next_uid_validity);
}

#[test]
fn reopen_keeps_everything() {
    let dir = ok(tempfile::tempdir().map_err(|e| StoreError::io("tmp", e)));
    let (d, msgs, last_file) = {
        let store = open(&dir);
        ok(store.add_domain("localhost"));
        let (d, msgs, _) = two_messages(&store);
        (d, msgs, ok(store.next_file_id()))
    };
    let store = open(&dir);
    assert!(ok(store.has_domain("localhost")));
    assert_eq!(ok(store.account(NAME)), Some(d.account.clone()));
    assert_eq!(
        ok(store.mailbox(d.account.id, d.inbox.id)),
        Some(d.inbox.clone())
    );
    assert_eq!(ok(store.messages(d.account.id, d.inbox.id)), msgs);
    assert_eq!(ok(store.read_message(&msgs[1])), BODY_B);
    assert!(
        ok(store.next_file_id()) > last_file,
        "file ids never repeat"
    );
    assert!(ok(store.check_consistency(NAME)).is_empty());
    let other = ok(store.create_account("other@localhost", "pw", None));
    assert!(other.id > d.account.id, "account ids never repeat");
}

#[test]
fn staging_cleans_up() {
    let dir = ok(tempfile::tempdir().map_err(|e| StoreError::io("tmp", e)));
    let tmp = dir.path().join("tmp");
    let count = || {
        std::fs::read_dir(&tmp)
            .map(|d| d.count())
            .unwrap_or(usize::MAX)
    };
    {
        let store = open(&dir);
        let big = vec![b'x'; MAX_STAGED_IN_MEMORY + 1];
        let mut w = ok(store.stage());
        ok(w.write_all(&big).map_err(|e| StoreError::io("w", e)));
        assert_eq!(w.size(), big.len() as u64);
        assert_eq!(count(), 1, "past MAX_STAGED_IN_MEMORY a writer spills");
        drop(w);
        assert_eq!(count(), 0, "unfinished writer removed on drop");
        let staged = ok(store.stage_bytes(&big));
        assert_eq!(staged.size(), big.len() as u64);
        assert!(staged.in_file());
        assert_eq!(count(), 1);
        drop(staged);
        assert_eq!(count(), 0, "unused staged file removed on drop");
        ok(std::fs::write(tmp.join("left-over"), b"x").map_err(|e| StoreError::io("w", e)));
        // A staged file whose owner leaks it (as a crash would).
        std::mem::forget(ok(store.stage_bytes(&big)));
        assert_eq!(count(), 2);
    }
    let _store = open(&dir);
    assert_eq!(count(), 0, "tmp emptied on open");
}

/// Commits `records` as-is, to corrupt an account on purpose.
fn force(store: &Store, puts: Vec<Record>) {
    ok(store.commit(Commit {
        puts,
        ..Commit::default()
    }));
}

fn problems(store: &Store) -> Vec<Problem> {
    ok(store.check_consistency(NAME))
}

#[test]
fn consistency_reports_wrong_counts() {
    let (_dir, store) = temp_store();
    let (mut d, _, _) = two_messages(&store);
    d.inbox.counts.unseen += 1;
    force(&store, vec![Record::Mailbox(d.inbox.clone())]);
    let p = problems(&store);
    assert!(
        matches!(p.as_slice(), [Problem::CountsMismatch { .. }]),
        "{p:?}"
    );
    assert!(p[0].to_string().contains("2 unseen"), "{}", p[0]);
}

#[test]
fn consistency_reports_missing_and_resized_files() {
    let (_dir, store) = temp_store();
    let (_, msgs, _) = two_messages(&store);
    // The first message's slice drops out of the index; the segment is
    // cut 5 bytes into the second.
    let a = ok(store.content_slice(msgs[0].file)).unwrap_or_else(|| panic!("slice"));
    ok(store
        .inner
        .db
        .remove(keys::slice(a.segment, a.offset))
        .map_err(StoreError::from));
    let seg = store.segment_path(a.segment);
    let f = ok(std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .map_err(|e| StoreError::io("seg", e)));
    ok(f.set_len(a.len + 5).map_err(|e| StoreError::io("seg", e)));
    let p = problems(&store);
    assert!(
        matches!(
            p.as_slice(),
            [
                Problem::MissingFile { .. },
                Problem::FileSizeMismatch { expected, actual: 5, .. },
                Problem::SliceRefsMismatch { refs: 0, used: 1, .. },
            ] if *expected == BODY_B.len() as u64
        ),
        "{p:?}"
    );
    assert!(p[0].to_string().contains("no message file"), "{}", p[0]);
    // A slice counted once too often would leak; once too few, be
    // reclaimed under a message.
    let b = ok(store.content_slice(msgs[1].file)).unwrap_or_else(|| panic!("slice"));
    let twice = crate::segments::SliceUse {
        len: b.len,
        refs: 2,
    };
    ok(store
        .inner
        .db
        .insert(keys::slice(b.segment, b.offset), ok(encode(&twice)))
        .map_err(StoreError::from));
    let p = problems(&store);
    assert!(
        matches!(p.last(), Some(Problem::SliceRefsMismatch { refs: 2, used: 1, offset, .. }) if *offset == b.offset),
        "{p:?}"
    );
}

#[test]
fn consistency_reports_duplicate_modseq() {
    let (_dir, store) = temp_store();
    let (_, msgs, _) = two_messages(&store);
    let mut b = msgs[1].clone();
    b.modseq = msgs[0].modseq;
    force(&store, vec![Record::Message(b)]);
    let p = problems(&store);
    assert!(
        matches!(p.as_slice(), [Problem::DuplicateModSeq { .. }]),
        "{p:?}"
    );
    assert_eq!(
        p[0].to_string(),
        format!(
            "message UID 1 in mailbox 1 and message UID 2 in mailbox 1 share modseq {}",
            msgs[0].modseq
        )
    );
}

#[test]
fn consistency_reports_uid_at_or_above_uid_next() {
    let (_dir, store) = temp_store();
    let (mut d, _, _) = two_messages(&store);
    d.inbox.uid_next = Uid(2);
    force(&store, vec![Record::Mailbox(d.inbox.clone())]);
    let p = problems(&store);
    assert!(
        matches!(p.as_slice(), [Problem::UidNotBelowUidNext { place, uid_next: Uid(2) }] if place.uid == Uid(2)),
        "{p:?}"
    );
}

#[test]
fn consistency_reports_modseq_bounds_and_index() {
    let (_dir, store) = temp_store();
    let (mut d, msgs, _) = two_messages(&store);
    // The account forgets its last two modseqs: both messages' modseqs and
    // the mailbox's HIGHESTMODSEQ are now beyond it.
    d.account.last_modseq = INITIAL_MODSEQ;
    force(&store, vec![Record::Account(Box::new(d.account.clone()))]);
    let p = problems(&store);
    assert_eq!(
        p.iter()
            .filter(|p| matches!(p, Problem::ModSeqAboveLast { .. }))
            .count(),
        2,
        "{p:?}"
    );
    assert!(p
        .iter()
        .any(|p| matches!(p, Problem::HighestModSeqAboveLast { .. })));

    // A mailbox whose HIGHESTMODSEQ lags its messages, and a dangling
    // file index entry.
    d.account.last_modseq = ModSeq(100);
    d.inbox.highest_modseq = INITIAL_MODSEQ;
    force(
        &store,
        vec![
            Record::Account(Box::new(d.account.clone())),
            Record::Mailbox(d.inbox.clone()),
        ],
    );
    ok(store
        .inner
        .db
        .insert(
            keys::file(d.account.id, FileId(999)),
            ok(encode(&FileRef {
                mailbox: d.inbox.id,
                uid: msgs[0].uid,
            })),
        )
        .map_err(StoreError::from));
    let p = problems(&store);
    assert!(
        matches!(
            p.as_slice(),
            [
                Problem::HighestModSeqTooLow { .. },
                Problem::FileIndexDangling {
                    file: FileId(999),
                    ..
                }
            ]
        ),
        "{p:?}"
    );
}

#[test]
fn consistency_reports_createseq_index_and_orphans() {
    let (_dir, store) = temp_store();
    let (d, msgs, _) = two_messages(&store);
    let a = d.account.id;
    let mut b = msgs[1].clone();
    b.createseq = msgs[0].createseq;
    force(&store, vec![Record::Message(b)]);
    ok(store
        .inner
        .db
        .remove(keys::file(a, msgs[0].file))
        .map_err(StoreError::from));
    let p = problems(&store);
    assert!(
        matches!(
            p.as_slice(),
            [
                Problem::DuplicateCreateSeq { .. },
                Problem::FileIndexMissing { .. }
            ]
        ),
        "{p:?}"
    );

    // Index message 1's file at message 2, and a message in no mailbox.
    ok(store
        .inner
        .db
        .insert(
            keys::file(a, msgs[0].file),
            ok(encode(&FileRef {
                mailbox: d.inbox.id,
                uid: msgs[1].uid,
            })),
        )
        .map_err(StoreError::from));
    let mut stray = msgs[1].clone();
    stray.mailbox = MailboxId(99);
    force(&store, vec![Record::Message(stray)]);
    let p = problems(&store);
    assert!(
        p.iter()
            .any(|p| matches!(p, Problem::FileIndexWrong { .. })),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| matches!(p, Problem::NoSuchMailbox { .. })),
        "{p:?}"
    );
    for problem in &p {
        assert!(!problem.to_string().is_empty());
    }
}

#[test]
fn vanished_index_answers_since_and_pruning_raises_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = Delivery::new(&store);
    let (a, m) = (d.account.id, d.inbox.id);
    // Tombstones for UIDs 1..=10 at modseqs 11..=20.
    let puts = (1..=10)
        .map(|u| {
            Record::Tombstone(Tombstone {
                account: a,
                mailbox: m,
                uid: Uid(u),
                modseq: ModSeq(10 + u64::from(u)),
            })
        })
        .collect();
    ok(store.commit(Commit {
        puts,
        ..Commit::default()
    }));
    let uids = |v: &[u32]| v.iter().map(|&u| Uid(u)).collect::<Vec<_>>();
    assert_eq!(
        ok(store.vanished_since(a, m, ModSeq(17))),
        (uids(&[8, 9, 10]), ModSeq(0))
    );
    assert_eq!(
        ok(store.vanished_since(a, m, ModSeq(20))),
        (uids(&[]), ModSeq(0))
    );
    // Pruning the 4 oldest leaves the floor at their newest modseq.
    ok(store.commit(Commit {
        prune_tombstones: vec![(a, m, 4)],
        ..Commit::default()
    }));
    assert_eq!(ok(store.tombstones(a, m)).len(), 6);
    assert_eq!(
        ok(store.vanished_since(a, m, ModSeq(0))),
        (uids(&[5, 6, 7, 8, 9, 10]), ModSeq(14))
    );
    // Two prunes of one mailbox in one commit (two sessions' expunges in
    // one group commit) are one prune of their sum: the floor is never
    // below a tombstone either removed.
    ok(store.commit(Commit {
        prune_tombstones: vec![(a, m, 1), (a, m, 2), (a, m, 0)],
        ..Commit::default()
    }));
    assert_eq!(
        ok(store.vanished_since(a, m, ModSeq(0))),
        (uids(&[8, 9, 10]), ModSeq(17))
    );
    ok(store.commit(Commit {
        puts: (5..=7)
            .map(|u| {
                Record::Tombstone(Tombstone {
                    account: a,
                    mailbox: m,
                    uid: Uid(u),
                    modseq: ModSeq(10 + u64::from(u)),
                })
            })
            .collect(),
        ..Commit::default()
    }));
    // Deleting a tombstone takes its index entry along; the check agrees.
    ok(store.commit(Commit {
        deletes: vec![RecordKey::Tombstone(a, m, Uid(5))],
        ..Commit::default()
    }));
    assert_eq!(
        ok(store.vanished_since(a, m, ModSeq(0))).0,
        uids(&[6, 7, 8, 9, 10])
    );
    // (The made-up tombstones break other rules; only the index is
    // looked at here.)
    let index_problems = || {
        problems(&store)
            .into_iter()
            .filter(|p| matches!(p, Problem::VanishedIndexMismatch { .. }))
            .collect::<Vec<_>>()
    };
    assert_eq!(index_problems(), vec![]);
    store
        .inner
        .db
        .insert(keys::vanished(a, m, ModSeq(99), Uid(42)), Vec::new())
        .unwrap();
    store
        .inner
        .db
        .remove(keys::vanished(a, m, ModSeq(16), Uid(6)))
        .unwrap();
    let place = |uid| Place {
        mailbox: m,
        uid: Uid(uid),
        expunged: true,
    };
    assert_eq!(
        index_problems(),
        vec![
            Problem::VanishedIndexMismatch {
                place: place(6),
                modseq: ModSeq(16)
            },
            Problem::VanishedIndexMismatch {
                place: place(42),
                modseq: ModSeq(99)
            },
        ]
    );
}

#[test]
fn compact_states_follow_records_and_are_added_to_old_stores() {
    let dir = tempfile::tempdir().unwrap();
    let (account, inbox, msgs) = {
        let store = open(&dir);
        let (d, msgs, _) = two_messages(&store);
        let states = ok(store.message_states(d.account.id, d.inbox.id));
        let expect: Vec<(Uid, ModSeq, Flags)> = msgs
            .iter()
            .map(|m| (m.uid, m.modseq, m.flags.clone()))
            .collect();
        assert_eq!(states, expect);
        // A store from before compact states: none, and no mark.
        let prefix = keys::account_prefix(keys::MESSAGE_STATE, d.account.id);
        for k in store.inner.db.scan_prefix(prefix).keys() {
            store.inner.db.remove(k.unwrap()).unwrap();
        }
        store
            .inner
            .db
            .remove(keys::meta(MESSAGE_STATES_ADDED))
            .unwrap();
        ok(store.flush());
        (d.account.id, d.inbox.id, msgs)
    };
    let store = open(&dir);
    let states = ok(store.message_states(account, inbox));
    assert_eq!(states.len(), msgs.len());
    assert_eq!(problems(&store), vec![]);
}

#[test]
fn messages_between_is_a_uid_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (d, msgs, _) = two_messages(&store);
    let (a, m) = (d.account.id, d.inbox.id);
    assert_eq!(ok(store.messages_between(a, m, Uid(1), Uid(2))), msgs);
    assert_eq!(ok(store.messages_between(a, m, Uid(2), Uid(9))), msgs[1..]);
    assert_eq!(ok(store.messages_between(a, m, Uid(3), Uid(9))), vec![]);
    assert_eq!(ok(store.messages_between(a, m, Uid(2), Uid(1))), vec![]);
}

fn evaluation(n: u64) -> DmarcEvaluation {
    DmarcEvaluation {
        time_us: n,
        source_ip: "192.0.2.1".into(),
        header_from: format!("d{n}.example"),
        policy_domain: "example".into(),
        published: "p=none".into(),
        rua: Vec::new(),
        result: "pass".into(),
        disposition: "none".into(),
        dkim_aligned: true,
        spf_aligned: false,
        dkim: Vec::new(),
        spf_domain: "example".into(),
        spf_result: "none".into(),
    }
}

/// DMARC evaluations: listed newest first; every DMARC_PRUNE_EVERY-th
/// record prunes to the newest MAX_KEPT, so the store holds at most
/// MAX_KEPT + DMARC_PRUNE_EVERY - 1 of them.
#[test]
fn dmarc_evaluations_are_kept_newest_first_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let count = |s: &Store| s.dmarc_evaluations(usize::MAX).unwrap().len();
    let kept = DmarcEvaluation::MAX_KEPT;
    for n in 0..kept as u64 {
        ok(store.add_dmarc_evaluation(&evaluation(n)));
    }
    // MAX_KEPT is a multiple of DMARC_PRUNE_EVERY: pruned, nothing gone.
    assert_eq!(count(&store), kept);
    let newest: Vec<String> = ok(store.dmarc_evaluations(2))
        .into_iter()
        .map(|e| e.header_from)
        .collect();
    assert_eq!(
        newest,
        [
            format!("d{}.example", kept - 1),
            format!("d{}.example", kept - 2)
        ]
    );
    let every = DMARC_PRUNE_EVERY as u64;
    for n in kept as u64..kept as u64 + every - 1 {
        ok(store.add_dmarc_evaluation(&evaluation(n)));
    }
    assert_eq!(count(&store), kept + DMARC_PRUNE_EVERY as usize - 1);
    ok(store.add_dmarc_evaluation(&evaluation(kept as u64 + every)));
    assert_eq!(count(&store), kept);
    let oldest = ok(store.dmarc_evaluations(usize::MAX)).pop().unwrap();
    assert_eq!(oldest.header_from, format!("d{every}.example"));
    assert_eq!(
        ok(store.prune_report_data(ReportData::Dmarc, 10)),
        kept - 10
    );
    assert_eq!(count(&store), 10);
}

fn queued_message(domain: &str, next_attempt: i64) -> QueuedMessage {
    QueuedMessage {
        id: QueueId(0),
        created: 0,
        account: None,
        sender: "a@local.example".into(),
        domain: domain.into(),
        recipients: vec![QueuedRecipient {
            address: format!("b@{domain}"),
            last_error: None,
            notify: None,
            orcpt: None,
        }],
        file: FileId(0),
        header_prefix: b"Received: x\r\n".to_vec(),
        smtputf8: false,
        eight_bit: false,
        binary: false,
        requiretls: false,
        attempts: 0,
        next_attempt,
        last_error: None,
        hold: false,
        delay_notified: false,
        transport: None,
        attempt_log: Vec::new(),
        done: Vec::new(),
        extra: Vec::new(),
        tls_optional: false,
        in_flight: false,
        ret: None,
        envid: None,
    }
}

/// The queue: one file per domain (hard links of one staged file), due
/// soonest first (negative times too), at most `limit`; a held message
/// has no due entry; changes go through one lock; removal takes the file;
/// leases of a stopped process are released.
#[test]
fn queued_messages_are_due_held_changed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let staged = ok(store.stage_bytes(b"Subject: q\r\n\r\nbody\r\n"));
    let added = ok(store.queue_add(
        staged,
        vec![
            queued_message("b.example", 20),
            queued_message("a.example", -5),
            queued_message("c.example", 10),
        ],
    ));
    assert_eq!(added.len(), 3);
    assert_ne!(added[0].file, added[1].file);
    let reader = ok(store.queue_open(&added[1]));
    assert_eq!(
        ok(reader.read_all()),
        b"Received: x\r\nSubject: q\r\n\r\nbody\r\n"
    );
    let due = |now: i64, limit: usize| -> Vec<String> {
        ok(store.queue_due(now, limit))
            .into_iter()
            .map(|m| m.domain)
            .collect()
    };
    assert_eq!(due(15, 10), ["a.example", "c.example"]);
    assert_eq!(due(20, 10), ["a.example", "c.example", "b.example"]);
    // The limit, at the edge and one under.
    assert_eq!(due(20, 3).len(), 3);
    assert_eq!(due(20, 2), ["a.example", "c.example"]);
    // Held: no longer due; released: due again.
    let c = added[2].id;
    ok(store.queue_change(c, |m| {
        m.hold = true;
        (QueueChange::Write, ())
    }));
    assert_eq!(due(20, 10), ["a.example", "b.example"]);
    ok(store.queue_change(c, |m| {
        m.hold = false;
        (QueueChange::Write, ())
    }));
    assert_eq!(due(20, 10), ["a.example", "c.example", "b.example"]);
    // Leased to a worker, then the process stops: due again at start.
    ok(store.queue_change(c, |m| {
        m.in_flight = true;
        m.next_attempt = 5000;
        (QueueChange::Write, ())
    }));
    assert_eq!(due(20, 10), ["a.example", "b.example"]);
    assert_eq!(ok(store.queue_release_leases(7)), 1);
    assert_eq!(due(7, 10), ["a.example", "c.example"]);
    // Removed with its file; the others' files stay.
    let path = store.message_path(added[0].file);
    assert!(path.exists());
    ok(store.queue_remove(added[0].id));
    assert!(!path.exists());
    assert!(store.message_path(added[1].file).exists());
    assert_eq!(ok(store.queue_list()).len(), 2);
    assert!(store.queue_remove(added[0].id).is_err());
    assert_eq!(
        ok(store.queue_change(added[0].id, |_| (QueueChange::Keep, ()))),
        None
    );
}

/// Hold rules: a rule holds what it matches as it is queued (and what
/// is queued already when it is added), none of its fields matching
/// anything; at most HoldRule::MAX rules (taken at the edge, refused one
/// past). Removed messages are kept as retired, with their attempts and
/// outcomes, until their time is up.
#[test]
fn hold_rules_filters_and_retired_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let queue = |domains: &[&str]| {
        let staged = ok(store.stage_bytes(b"Subject: q\r\n\r\nbody\r\n"));
        ok(store.queue_add(
            staged,
            domains.iter().map(|d| queued_message(d, 0)).collect(),
        ))
    };
    let first = queue(&["a.example", "b.example"]);
    let (rule, held) = ok(store.hold_rule_add(HoldRule {
        recipient_domain: Some("b.example".into()),
        ..Default::default()
    }));
    assert_eq!(held, 1);
    assert!(ok(store.queued(first[1].id)).unwrap().hold);
    assert!(!ok(store.queued(first[0].id)).unwrap().hold);
    let later = queue(&["b.example", "c.example"]);
    assert!(later[0].hold && !later[1].hold);
    let domains_of = |f: QueueFilter| -> Vec<String> {
        ok(store.queue_select(&f, usize::MAX))
            .into_iter()
            .map(|m| m.domain)
            .collect()
    };
    assert_eq!(
        domains_of(QueueFilter {
            held: Some(true),
            ..Default::default()
        }),
        ["b.example", "b.example"]
    );
    assert_eq!(
        domains_of(QueueFilter {
            ids: vec![later[1].id.0, first[0].id.0, 999_999],
            ..Default::default()
        }),
        ["a.example", "c.example"]
    );
    assert_eq!(
        domains_of(QueueFilter {
            sender_domain: Some("LOCAL.example".into()),
            recipient_domain: Some("c.example".into()),
            ..Default::default()
        }),
        ["c.example"]
    );
    assert!(ok(store.hold_rule_rm(rule.id)));
    assert!(!ok(store.hold_rule_rm(rule.id)));
    // Up to the limit, not one past.
    for _ in 0..HoldRule::MAX {
        ok(store.hold_rule_add(HoldRule {
            account: Some("nobody".into()),
            ..Default::default()
        }));
    }
    assert!(store.hold_rule_add(HoldRule::default()).is_err());
    assert_eq!(ok(store.hold_rules()).len(), HoldRule::MAX);
    // Retired: delivered here, dropped there; pruned once their time is up.
    ok(store.queue_change(first[0].id, |m| {
        m.log_attempt(Attempt {
            at: 5,
            host: Some("mx.a.example".into()),
            result: "delivered".into(),
        });
        finish_waiting(m, FinishedAs::Delivered, "delivered to mx.a.example", 5);
        (QueueChange::Remove, ())
    }));
    ok(store.queue_remove(first[1].id));
    let retired = ok(store.retired(None, 10));
    assert_eq!(retired.len(), 2);
    assert_eq!(retired[0].domain, "b.example");
    assert_eq!(retired[0].recipients[0].how, FinishedAs::Dropped);
    assert_eq!(retired[1].recipients[0].how, FinishedAs::Delivered);
    assert_eq!(retired[1].attempts[0].host.as_deref(), Some("mx.a.example"));
    assert_eq!(ok(store.retired(Some("someone"), 10)).len(), 0);
    // Found by id, queued or retired, until pruned.
    assert!(matches!(
        ok(store.sent_message(first[0].id)),
        Some(SentMessage::Retired(r)) if r.domain == "a.example"
    ));
    assert!(matches!(
        ok(store.sent_message(later[0].id)),
        Some(SentMessage::Queued(m)) if m.id == later[0].id
    ));
    let now = crate::records::now_unix();
    assert_eq!(ok(store.prune_retired(now)), 0);
    assert_eq!(ok(store.prune_retired(now + KEEP_RETIRED + 1)), 2);
    assert_eq!(ok(store.sent_message(first[0].id)), None);
    // Not kept at all when so configured.
    store.set_keep_retired(0);
    ok(store.queue_remove(later[0].id));
    assert_eq!(ok(store.retired(None, 10)).len(), 0);
}

/// Webhooks: an account's URL; events queue only for an account with
/// one, due at once; a retry moves the due time; done calls go into the
/// history (newest first), pruned with the retired messages; the account's
/// removal takes its webhook.
#[test]
fn webhook_calls_queue_retry_and_retire() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let account = ok(store.create_account("hook@example.org", "pw", None));
    assert!(!store.has_webhooks());
    assert_eq!(
        ok(store.webhook_add("hook@example.org", "delivered", "{}".into(), 10)),
        None
    );
    let config = WebhookConfig {
        url: "http://127.0.0.1:1/hook".into(),
        authorization: None,
    };
    ok(store.set_webhook(account.id, Some(&config)));
    assert!(store.has_webhooks());
    let a = ok(store.webhook_add("hook@example.org", "delivered", "{}".into(), 10)).unwrap();
    let b = ok(store.webhook_add("hook@example.org", "failed", "{}".into(), 12)).unwrap();
    let due = |now| -> Vec<u64> {
        ok(store.webhooks_due(now, 10))
            .iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(due(11), [a]);
    assert_eq!(due(12), [a, b]);
    assert!(ok(store.webhook_change(a, |c| {
        c.next_attempt = 20;
        WebhookChange::Retry
    })));
    assert_eq!(due(12), [b]);
    assert!(ok(store.webhook_change(b, |c| {
        c.delivered = true;
        WebhookChange::Done
    })));
    assert!(!ok(store.webhook_change(b, |_| WebhookChange::Done)));
    assert_eq!(due(30), [a]);
    // The bound on waiting calls (checked here at 2): one waits, so one
    // more is taken and the next refused.
    assert!(ok(store.webhook_add_within("hook@example.org", "x", "{}".into(), 40, 2)).is_some());
    assert!(store
        .webhook_add_within("hook@example.org", "x", "{}".into(), 40, 2)
        .is_err());
    let history = ok(store.webhook_history(Some("hook@example.org"), 10));
    assert_eq!(history.len(), 1);
    assert!(history[0].delivered && history[0].event == "failed");
    assert_eq!(
        ok(store.webhook_history(Some("other@example.org"), 10)).len(),
        0
    );
    let now = crate::records::now_unix();
    assert_eq!(ok(store.prune_webhook_history(now + KEEP_RETIRED + 1)), 1);
    ok(store.delete_account("hook@example.org"));
    assert!(!store.has_webhooks());
    assert_eq!(ok(store.webhook_config(account.id)), None);
}

/// A queued message's attempt log keeps the newest MAX_ATTEMPT_LOG.
#[test]
fn attempt_logs_keep_the_newest() {
    let mut m = queued_message("a.example", 0);
    for at in 0..=MAX_ATTEMPT_LOG as i64 {
        m.log_attempt(Attempt {
            at,
            host: None,
            result: String::new(),
        });
    }
    assert_eq!(m.attempt_log.len(), MAX_ATTEMPT_LOG);
    assert_eq!(m.attempt_log[0].at, 1);
}

/// Suppression lists: per account, addresses without case, a limit
/// (checked here at 3: taken at the edge, refused one past, a repeat of
/// a listed address always taken), removal.
#[test]
fn suppression_lists_hold_addresses_up_to_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b) = (AccountId(7), AccountId(8));
    let s = |address: &str| Suppression {
        address: address.into(),
        since: 1,
        reason: "550 5.1.1 no".into(),
    };
    for i in 0..3 {
        ok(store.suppress_within(a, &s(&format!("u{i}@x.example")), 3));
    }
    assert!(store.suppress_within(a, &s("u3@x.example"), 3).is_err());
    ok(store.suppress_within(a, &s("U1@x.example"), 3));
    ok(store.suppress_within(b, &s("u3@x.example"), 3));
    assert!(ok(store.suppressed(a, "U0@X.example")).is_some());
    assert!(ok(store.suppressed(b, "u0@x.example")).is_none());
    assert!(ok(store.unsuppress(a, "u0@x.example")));
    assert!(!ok(store.unsuppress(a, "u0@x.example")));
    assert_eq!(ok(store.suppressions(a)).len(), 2);
    assert!(store.suppress(a, &s("not an address")).is_err());
}

#[test]
fn unique_envelope_senders_name_their_message_and_nothing_else() {
    let (dir, store) = temp_store();
    ok(store.add_domain("a.example"));
    ok(store.add_domain("plain.example"));
    ok(store.set_domain_matching("a.example", Some("+-".into()), None, None));
    // No separator: no unique address.
    assert_eq!(
        ok(store.bounce_address("bob@plain.example", QueueId(7))),
        None
    );
    // A local part with a separator in it (`john-doe` would go to
    // `john`), or quoted: none either.
    assert_eq!(
        ok(store.bounce_address("john-doe@a.example", QueueId(7))),
        None
    );
    assert_eq!(
        ok(store.bounce_address("alice+old@a.example", QueueId(7))),
        None
    );
    assert_eq!(
        ok(store.bounce_address("\"a b\"@a.example", QueueId(7))),
        None
    );
    // Up to 64 octets of local part, not one more: the tag and the MAC
    // take "+dsn.7." and MAC_HEX after the sender's own local part.
    let room = MAX_LOCAL_PART - "+dsn.7.".len() - MAC_HEX;
    let edge = format!("{}@a.example", "l".repeat(room));
    let tagged = ok(store.bounce_address(&edge, QueueId(7))).unwrap();
    assert_eq!(tagged.split('@').next().unwrap().len(), MAX_LOCAL_PART);
    let past = format!("{}@a.example", "l".repeat(room + 1));
    assert_eq!(ok(store.bounce_address(&past, QueueId(7))), None);
    let address = ok(store.bounce_address("alice@a.example", QueueId(7))).unwrap();
    let (local, domain) = address.split_once('@').unwrap();
    assert_eq!(domain, "a.example");
    let prefix = "alice+dsn.7.";
    assert!(local.starts_with(prefix), "{address}");
    assert_eq!(local.len(), prefix.len() + MAC_HEX);
    assert_eq!(ok(store.bounce_id(&address)), Some(QueueId(7)));
    assert!(may_be_bounce_address(&address.to_uppercase()));
    assert!(!may_be_bounce_address("alice+news@a.example"));
    // The same key after reopening; any case of the local part.
    drop(store);
    let store = open(&dir);
    assert_eq!(
        ok(store.bounce_id(&address.to_uppercase())),
        Some(QueueId(7))
    );
    // Another id with this MAC, a changed MAC, an untagged address.
    let forged = address.replace("dsn.7.", "dsn.8.");
    assert_eq!(ok(store.bounce_id(&forged)), None);
    let mut changed = address.clone();
    let at = prefix.len();
    let flipped = if &changed[at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    changed.replace_range(at..at + 1, flipped);
    assert_eq!(ok(store.bounce_id(&changed)), None);
    assert_eq!(ok(store.bounce_id("alice@a.example")), None);
    assert_eq!(ok(store.bounce_id("alice+dsn.x.y@a.example")), None);
    assert_eq!(ok(store.bounce_id("alice+dsn.7.0@nowhere.example")), None);
}

#[test]
fn inbound_reports_keep_the_newest_up_to_the_limit() {
    use roost_protocols::message::inbound::{Report, TlsReport};
    let (_dir, store) = temp_store();
    let report = |id: &str| {
        Report::Tls(TlsReport {
            report_id: id.into(),
            ..Default::default()
        })
    };
    let ids: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        ok(store.inbound_report_add_within("a@x", "r@y", report(id), 100 + i as i64, 3));
    }
    let kept: Vec<Report> = ok(store.inbound_reports(10))
        .into_iter()
        .map(|r| r.report)
        .collect();
    // At the limit three are kept; the fourth pushed the first out.
    assert_eq!(kept, [report("r3"), report("r2"), report("r1")]);
    assert_eq!(ok(store.inbound_reports(1))[0].account, "a@x");
    // The largest kept, and one byte more refused. Past 64 KiB a string
    // is encoded as its bytes after a fixed header, so the report's id
    // grows the encoding by exactly its own length; ids stay below 128
    // (one byte) in this store.
    let long = 70_000;
    let overhead = encode(&InboundReport {
        id: 1,
        account: "a@x".into(),
        received: 200,
        from: "r@y".into(),
        report: report(&"r".repeat(long)),
    })
    .unwrap()
    .len()
        - long;
    let fits = "r".repeat(MAX_KEPT_REPORT_BYTES - overhead);
    let at = |id: String| store.inbound_report_add("a@x", "r@y", report(&id), 200);
    match at(fits.clone()) {
        Ok(_) => {}
        Err(e) => panic!("the largest report: {e}"),
    }
    assert!(matches!(at(fits + "r"), Err(StoreError::Invalid(_))));
}

/// A hold rule added while messages are being queued (after their rules
/// were read, before their records are written) still holds them: the
/// rules are read again once the records are in.
#[test]
fn a_hold_rule_added_during_queueing_holds_the_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (rule, held) = ok(store.hold_rule_add(HoldRule {
        recipient_domain: Some("b.example".into()),
        ..Default::default()
    }));
    assert_eq!(held, 0);
    // Queued with the rules as read before the rule existed.
    let staged = ok(store.stage_bytes(b"Subject: q\r\n\r\nbody\r\n"));
    let added = ok(store.queue_add_under(
        staged,
        vec![
            queued_message("a.example", 0),
            queued_message("b.example", 0),
        ],
        Vec::new(),
    ));
    assert_eq!((added[0].hold, added[1].hold), (false, true));
    assert!(!ok(store.queued(added[0].id)).unwrap().hold);
    assert!(ok(store.queued(added[1].id)).unwrap().hold);
    // Not due: only the unheld one is.
    let due: Vec<String> = ok(store.queue_due(i64::MAX, 10))
        .into_iter()
        .map(|m| m.domain)
        .collect();
    assert_eq!(due, ["a.example"]);
    assert!(ok(store.hold_rule_rm(rule.id)));
}

/// How a stored file reads once it should be gone.
fn gone(store: &Store, file: FileId) -> std::io::ErrorKind {
    match store.read_content(file) {
        Ok(bytes) => panic!("file {file} still reads {} bytes", bytes.len()),
        Err(e) => e.kind(),
    }
}

/// Each segment file and the 512-byte blocks it holds on disk.
fn segment_blocks(dir: &tempfile::TempDir) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir.path().join("seg"))
        .unwrap_or_else(|e| panic!("seg: {e}"))
        .map(|e| {
            let e = e.unwrap_or_else(|e| panic!("seg: {e}"));
            let blocks = e.metadata().map(|m| m.blocks()).unwrap_or(u64::MAX);
            (e.file_name().to_string_lossy().into_owned(), blocks)
        })
        .collect();
    out.sort();
    out
}

/// A new store in a temporary directory.
fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = ok(tempfile::tempdir().map_err(|e| StoreError::io("tmp", e)));
    let store = open(&dir);
    (dir, store)
}

/// A new store in a temporary directory, with the test account.
fn with_account() -> (tempfile::TempDir, Store, Delivery) {
    let (dir, store) = temp_store();
    let d = Delivery::new(&store);
    (dir, store, d)
}

/// Stores each body as a new message of the test account; returns the
/// records and the commit's stats.
fn deliver(store: &Store, d: &mut Delivery, bodies: &[&[u8]]) -> (Vec<MessageRecord>, CommitStats) {
    let mut msgs = Vec::new();
    let mut place_files = Vec::new();
    for body in bodies {
        let file = ok(store.next_file_id());
        msgs.push(d.message(file, body, b"", Flags::new()));
        place_files.push((ok(store.stage_bytes(body)), file));
    }
    let stats = ok(store.commit(Commit {
        puts: d.records(&msgs),
        place_files,
        ..Commit::default()
    }));
    (msgs, stats)
}

/// Delivers one 64 KiB message of each letter (so each slice is whole
/// disk blocks) in one commit; returns the bodies and the records.
fn deliver_64k(
    store: &Store,
    d: &mut Delivery,
    letters: std::ops::RangeInclusive<u8>,
) -> (Vec<Vec<u8>>, Vec<MessageRecord>) {
    let bodies: Vec<Vec<u8>> = letters.map(|c| vec![c; 64 * 1024]).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    let (msgs, _) = deliver(store, d, &refs);
    (bodies, msgs)
}

/// Expunges `msgs` (records and files) in one commit.
fn expunge(store: &Store, d: &mut Delivery, msgs: &[MessageRecord]) {
    ok(store.commit(Commit {
        deletes: msgs
            .iter()
            .map(|m| RecordKey::Message(m.account, m.mailbox, m.uid))
            .collect(),
        remove_files: msgs.iter().map(|m| m.file).collect(),
        puts: {
            for m in msgs {
                d.inbox.counts.total -= 1;
                d.inbox.counts.unseen -= 1;
                d.inbox.counts.size -= m.size;
            }
            vec![Record::Mailbox(d.inbox.clone())]
        },
        ..Commit::default()
    }));
}

#[test]
fn a_commit_appends_its_messages_to_one_segment_with_one_fsync() {
    let (dir, store, mut d) = with_account();
    let bodies: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    let before = store.stats().fsyncs;
    let (first, stats) = deliver(&store, &mut d, &refs);
    // The segment's data and, as it is new, the directory holding it;
    // then the index's own fsync in the flush.
    assert_eq!((stats.files, stats.fsyncs), (10, 2));
    assert_eq!(store.stats().fsyncs - before, 3);
    let before = store.stats().fsyncs;
    let (second, stats) = deliver(&store, &mut d, &refs);
    assert_eq!((stats.files, stats.fsyncs), (10, 1));
    assert_eq!(store.stats().fsyncs - before, 2);
    for (m, body) in first.iter().chain(&second).zip(refs.iter().cycle()) {
        assert_eq!(ok(store.read_message(m)), *body);
    }
    // No file per message: one segment, nothing left in tmp/ or msg/.
    assert_eq!(segment_blocks(&dir).len(), 1);
    let entries = |d: &str| {
        std::fs::read_dir(dir.path().join(d))
            .map(|r| r.count())
            .unwrap_or(99)
    };
    assert_eq!((entries("tmp"), entries("msg")), (0, 0));
    assert!(ok(store.check_consistency(NAME)).is_empty());
}

#[test]
fn copies_share_a_slice_whose_bytes_go_with_the_last() {
    let (dir, store, mut d) = with_account();
    let (bodies, msgs) = deliver_64k(&store, &mut d, b'a'..=b'c');
    let full = segment_blocks(&dir)[0].1;
    assert_eq!(full, 3 * 128);
    // COPY the middle one, then expunge the original: the copy reads on.
    let copy_file = ok(store.next_file_id());
    let copy = d.message(copy_file, &bodies[1], b"", Flags::new());
    let stats = ok(store.commit(Commit {
        puts: d.records(std::slice::from_ref(&copy)),
        link_files: vec![(msgs[1].file, copy_file)],
        ..Commit::default()
    }));
    assert_eq!(
        (stats.files, stats.fsyncs),
        (1, 0),
        "a copy writes no bytes"
    );
    expunge(&store, &mut d, &msgs[1..2]);
    assert_eq!(ok(store.read_message(&copy)), bodies[1]);
    assert_eq!(segment_blocks(&dir)[0].1, full, "the copy keeps the bytes");
    expunge(&store, &mut d, &[copy]);
    assert_eq!(
        segment_blocks(&dir)[0].1,
        full - 128,
        "the last copy frees them"
    );
    assert_eq!(ok(store.read_message(&msgs[0])), bodies[0]);
    assert_eq!(ok(store.read_message(&msgs[2])), bodies[2]);
    expunge(&store, &mut d, &[msgs[0].clone(), msgs[2].clone()]);
    assert_eq!(segment_blocks(&dir)[0].1, 0);
    assert!(ok(store.check_consistency(NAME)).is_empty());
}

#[test]
fn an_open_reader_keeps_its_bytes_until_it_lets_go() {
    let (dir, store, mut d) = with_account();
    let body = vec![b'r'; 64 * 1024];
    let (msgs, _) = deliver(&store, &mut d, &[&body]);
    let reader = ok(store.open_message(&msgs[0]));
    expunge(&store, &mut d, &msgs);
    assert_eq!(gone(&store, msgs[0].file), std::io::ErrorKind::NotFound);
    assert_eq!(segment_blocks(&dir)[0].1, 128, "held while read");
    assert_eq!(ok(reader.read_all()), body);
    drop(reader);
    // The next commit, whatever it is, reclaims what waited.
    ok(store.commit(Commit {
        puts: vec![Record::Mailbox(d.inbox.clone())],
        ..Commit::default()
    }));
    assert_eq!(segment_blocks(&dir)[0].1, 0);
}

#[test]
fn a_full_segment_is_sealed_and_removed_once_empty() {
    let (dir, store, mut d) = with_account();
    let edge = SEGMENT_BYTES as usize - 1;
    let big = vec![b'b'; edge];
    // One byte short of SEGMENT_BYTES, then the byte that fills it: both
    // in the first segment; the next message starts a second.
    let (a, _) = deliver(&store, &mut d, &[&big]);
    let (b, _) = deliver(&store, &mut d, &[b"1"]);
    let (c, stats) = deliver(&store, &mut d, &[b"2"]);
    assert_eq!(stats.fsyncs, 2, "a new segment: its data and seg/");
    let seg = |m: &MessageRecord| ok(store.content_slice(m.file)).map(|s| (s.segment, s.offset));
    let first = seg(&a[0]).map(|s| s.0);
    assert_eq!(seg(&b[0]), first.map(|s| (s, edge as u64)));
    assert_ne!(seg(&c[0]).map(|s| s.0), first);
    assert_eq!(seg(&c[0]).map(|s| s.1), Some(0));
    assert_eq!(segment_blocks(&dir).len(), 2);
    expunge(&store, &mut d, &[a[0].clone(), b[0].clone()]);
    assert_eq!(
        segment_blocks(&dir).len(),
        1,
        "the sealed, empty segment is removed"
    );
    assert_eq!(ok(store.read_message(&c[0])), b"2");
    assert!(ok(store.check_consistency(NAME)).is_empty());
}

#[test]
fn open_removes_segments_no_slice_uses() {
    let dir = ok(tempfile::tempdir().map_err(|e| StoreError::io("tmp", e)));
    let msgs = {
        let store = open(&dir);
        let mut d = Delivery::new(&store);
        deliver(&store, &mut d, &[b"kept"]).0
    };
    // As a commit that crashed after its append, before its index batch.
    let stray = dir
        .path()
        .join("seg")
        .join(format!("{:016x}", u64::MAX - 1));
    ok(std::fs::write(&stray, b"never indexed").map_err(|e| StoreError::io("w", e)));
    assert_eq!(segment_blocks(&dir).len(), 2);
    let store = reopen(&dir);
    assert_eq!(segment_blocks(&dir).len(), 1);
    assert!(!stray.exists());
    assert_eq!(ok(store.read_message(&msgs[0])), b"kept");
}

#[test]
fn staging_memory_is_bounded_per_message_and_per_store() {
    let (_dir, store) = temp_store();
    let edge = vec![b'm'; MAX_STAGED_IN_MEMORY];
    assert!(
        !ok(store.stage_bytes(&edge)).in_file(),
        "at the edge: memory"
    );
    let past = vec![b'm'; MAX_STAGED_IN_MEMORY + 1];
    assert!(ok(store.stage_bytes(&past)).in_file(), "one past: a file");
    // The budget: this many edge-sized messages fit at once, one more
    // goes to a file, and freeing one makes room again.
    let fit = (STAGED_MEMORY_BUDGET / MAX_STAGED_IN_MEMORY as u64) as usize;
    let mut held: Vec<StagedFile> = (0..fit).map(|_| ok(store.stage_bytes(&edge))).collect();
    assert!(held.iter().all(|s| !s.in_file()));
    assert!(
        ok(store.stage_bytes(&edge)).in_file(),
        "past the budget: a file"
    );
    held.pop();
    assert!(!ok(store.stage_bytes(&edge)).in_file(), "room again");
    // A copy for a second account shares the memory.
    let copy = ok(store.stage_copy(&held[0]));
    assert!(!copy.in_file());
    assert_eq!(
        ok(copy.source().read_all().map_err(|e| StoreError::io("r", e))),
        edge
    );
}

/// A message written in pieces holds its buffer's whole capacity of the
/// budget while it grows (up to twice its length), its length once
/// finished, and nothing once dropped; a piece that would take the
/// budget past its end sends the message to a file.
#[test]
fn staging_memory_counts_what_the_buffers_hold() {
    let (_dir, store) = temp_store();
    let budget = || store.inner.counters.staged_memory.load(Ordering::SeqCst);
    let mut w = ok(store.stage());
    assert!(w.write_in_memory(&[b'a'; 1000]));
    assert_eq!(budget(), 1000);
    assert!(w.write_in_memory(b"b"));
    assert_eq!(budget(), 2000, "doubled, as the buffer grew");
    assert!(w.write_in_memory(&[b'c'; 999]));
    assert_eq!(budget(), 2000, "filled, not grown");
    // Growth stops at the per-message limit, then one byte more is a file.
    assert!(w.write_in_memory(&vec![b'd'; MAX_STAGED_IN_MEMORY - 2000]));
    assert_eq!(budget(), MAX_STAGED_IN_MEMORY as u64);
    assert!(!w.write_in_memory(b"e"));
    drop(w);
    assert_eq!(budget(), 0);
    let mut w = ok(store.stage());
    assert!(w.write_in_memory(&[b'a'; 1000]));
    assert!(w.write_in_memory(b"b"));
    let staged = ok(w.finish());
    assert_eq!(budget(), 1001, "finished: its length");
    drop(staged);
    assert_eq!(budget(), 0);
    // With the budget all but used, a piece that fits its message's
    // limit but not the growth it needs goes to a file.
    let edge = vec![b'm'; MAX_STAGED_IN_MEMORY];
    let fit = (STAGED_MEMORY_BUDGET / MAX_STAGED_IN_MEMORY as u64) as usize;
    let mut held: Vec<StagedFile> = (0..fit - 1).map(|_| ok(store.stage_bytes(&edge))).collect();
    held.push(ok(store.stage_bytes(&edge[1000..])));
    assert_eq!(STAGED_MEMORY_BUDGET - budget(), 1000);
    let mut w = ok(store.stage());
    assert!(w.write_in_memory(&[b'h'; 500]));
    assert!(
        w.write_in_memory(&[b'h'; 500]),
        "growing to the budget's end"
    );
    assert_eq!(STAGED_MEMORY_BUDGET - budget(), 0);
    drop(w);
    let mut w = ok(store.stage());
    assert!(w.write_in_memory(&[b'h'; 501]));
    assert!(
        !w.write_in_memory(b"h"),
        "its length would fit, but not the capacity it grows to"
    );
    drop((w, held));
    assert_eq!(budget(), 0);
}

/// Once an index flush fails, no later one is trusted (after a failed
/// fsync the next may report clean without writing what was lost): the
/// failing commit keeps the bytes its removal would free, every later
/// commit is refused before it changes anything, and the store opened
/// again takes changes again.
#[test]
fn a_failed_index_flush_stops_every_change_until_the_store_is_opened_again() {
    let (dir, store, mut d) = with_account();
    let (bodies, msgs) = deliver_64k(&store, &mut d, b'a'..=b'b');
    assert_eq!(segment_blocks(&dir)[0].1, 2 * 128);
    let refused = format!(
        "index flush failed ({}: injected flush failure): no more changes until roost restarts",
        dir.path().join("index").join("db").display()
    );
    let expunge_first = || Commit {
        deletes: vec![RecordKey::Message(
            msgs[0].account,
            msgs[0].mailbox,
            msgs[0].uid,
        )],
        remove_files: vec![msgs[0].file],
        ..Commit::default()
    };
    store.fail_next_flush();
    match store.commit(expunge_first()) {
        Err(e) => assert_eq!(e.to_string(), refused),
        Ok(_) => panic!("the commit's flush failed"),
    }
    assert_eq!(segment_blocks(&dir)[0].1, 2 * 128, "kept: not durable");
    // The next flush would succeed, but is not trusted: a commit is
    // refused before it writes a byte or a key.
    match store.commit(Commit {
        puts: vec![Record::Mailbox(d.inbox.clone())],
        place_files: vec![(ok(store.stage_bytes(b"new")), ok(store.next_file_id()))],
        ..Commit::default()
    }) {
        Err(e) => assert_eq!(e.to_string(), refused),
        Ok(_) => panic!("a commit after a failed flush"),
    }
    assert_eq!(segment_blocks(&dir)[0].1, 2 * 128, "nothing appended");
    assert!(matches!(store.flush(), Err(e) if e.to_string() == refused));
    // Nor does any other change get in, to be read back though never
    // durable.
    assert!(matches!(store.add_domain("z.example"), Err(e) if e.to_string() == refused));
    assert!(!ok(store.has_domain("z.example")));
    // A single-key write is refused before it looks for the key.
    assert!(matches!(store.remove_alias("a@localhost"), Err(e) if e.to_string() == refused));
    drop(store);
    // Opened again: what is on disk is read, and changes are taken.
    let store = reopen(&dir);
    assert_eq!(ok(store.read_message(&msgs[1])), bodies[1]);
    let (m, _) = deliver(&store, &mut d, &[b"after"]);
    assert_eq!(ok(store.read_message(&m[0])), b"after");
}

#[test]
fn an_empty_message_shares_no_slice_with_the_next() {
    let (_dir, store, mut d) = with_account();
    let body = vec![b'n'; 64 * 1024];
    // In one commit, and across two.
    let (one, _) = deliver(&store, &mut d, &[b"", &body]);
    let (empty, _) = deliver(&store, &mut d, &[b""]);
    let (next, _) = deliver(&store, &mut d, &[&body]);
    let at = |m: &MessageRecord| ok(store.content_slice(m.file)).map(|s| s.offset);
    assert_ne!(at(&one[0]), at(&one[1]));
    assert_ne!(at(&empty[0]), at(&next[0]));
    expunge(&store, &mut d, &[one[0].clone(), empty[0].clone()]);
    assert_eq!(ok(store.read_message(&one[1])), body);
    assert_eq!(ok(store.read_message(&next[0])), body);
    assert!(ok(store.check_consistency(NAME)).is_empty());
}

#[test]
fn bytes_removed_by_a_commit_not_yet_durable_are_kept() {
    let (dir, store, mut d) = with_account();
    let (bodies, msgs) = deliver_64k(&store, &mut d, b'a'..=b'b');
    // Another commit has applied the removal of the first message's slice
    // and not yet flushed it: a crash now would bring the slice back.
    let first = ok(store.content_slice(msgs[0].file)).unwrap_or_else(|| panic!("slice"));
    store.inner.segments.removing(&[first]);
    ok(store
        .inner
        .db
        .remove(keys::slice(first.segment, first.offset))
        .map_err(StoreError::from));
    // Reclaiming the second must not reach down into the first.
    expunge(&store, &mut d, &msgs[1..]);
    assert_eq!(segment_blocks(&dir)[0].1, 128);
    let bytes =
        ok(std::fs::read(store.segment_path(first.segment)).map_err(|e| StoreError::io("r", e)));
    assert_eq!(bytes[..first.len as usize], bodies[0][..]);
    // Once that commit is durable, its own reclaim frees them.
    store.inner.segments.reclaim(&store.inner.db, vec![first]);
    assert_eq!(segment_blocks(&dir)[0].1, 0);
}
