//! The account actor in-process, over a real store in a temp directory.

use super::actor_name as account_actor_name;
use super::*;
use roost_protocols::imap::types::Flag;
use roost_store::AccountId;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    actor: ActorRef<AccountMsg>,
    name: String,
}

/// Starts an actor for `name`; incarnations of one account share `lock`.
async fn spawn_account(
    store: &Store,
    name: &str,
    lock: &CommitLock,
) -> (ActorRef<AccountMsg>, tokio::task::JoinHandle<()>) {
    Actor::spawn(
        Some(account_actor_name(name)),
        AccountActor,
        AccountArgs {
            name: name.into(),
            store: store.clone(),
            hub: EventHub::new(),
            registry: Registry::new(),
            commit_lock: lock.clone(),
            mailbox_linger: TEST_LINGER,
        },
    )
    .await
    .unwrap()
}

/// A short linger, so tests see unwatched mailbox actors go.
const TEST_LINGER: std::time::Duration = std::time::Duration::from_millis(200);

async fn fixture(name: &str, quota: Option<u64>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_account(name, "secret", quota).unwrap();
    let (actor, _) = spawn_account(&store, name, &CommitLock::default()).await;
    Fixture {
        _dir: dir,
        store,
        actor,
        name: name.into(),
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.actor.stop(None);
    }
}

fn new_message(store: &Store, header: &str, target: Target) -> NewMessage {
    let bytes = format!("{header}\r\nbody\r\n");
    let header_bytes = &bytes.as_bytes()[..bytes.find("\r\n\r\n").unwrap() + 4];
    NewMessage {
        target,
        staged: store.stage_bytes(bytes.as_bytes()).unwrap(),
        flags: Flags::new(),
        internal_date: 1_700_000_000,
        header_prefix: b"Received: test\r\n".to_vec(),
        keys: ThreadKeys::from_header(header_bytes),
        summary: Some(std::sync::Arc::new(
            roost_protocols::message::summary::Summary::build(bytes.as_bytes()),
        )),
        extra: Vec::new(),
    }
}

async fn deliver(f: &Fixture, header: &str) -> Result<Vec<Delivered>, AccountError> {
    let m = new_message(&f.store, header, Target::Inbox);
    ractor::call!(f.actor, |reply| AccountMsg::Deliver {
        messages: vec![m],
        reply
    })
    .unwrap()
}

fn inbox(f: &Fixture) -> (AccountId, MailboxRecord) {
    mailbox_named(f, "INBOX")
}

/// The account's id and the named mailbox's record, from the store.
fn mailbox_named(f: &Fixture, name: &str) -> (AccountId, MailboxRecord) {
    let acct = f.store.account(&f.name).unwrap().unwrap();
    let mb = f
        .store
        .mailboxes(acct.id)
        .unwrap()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap();
    (acct.id, mb)
}

async fn create_mb(f: &Fixture, name: &str) -> Result<MailboxId, AccountError> {
    let name = name.to_string();
    ractor::call!(f.actor, |reply| AccountMsg::CreateMailbox {
        name,
        special_use: None,
        reply
    })
    .unwrap()
}

async fn rename_mb(f: &Fixture, from: &str, to: &str) -> Result<(), AccountError> {
    let (from, to) = (from.to_string(), to.to_string());
    ractor::call!(f.actor, |reply| AccountMsg::RenameMailbox {
        from,
        to,
        reply
    })
    .unwrap()
}

async fn delete_mb(f: &Fixture, name: &str) -> Result<(), AccountError> {
    let name = name.to_string();
    ractor::call!(f.actor, |reply| AccountMsg::DeleteMailbox { name, reply }).unwrap()
}

#[tokio::test]
async fn concurrent_deliveries_share_one_commit() {
    let f = fixture("group@example.org", None).await;
    let before = f.store.stats();
    // On this single-threaded runtime every call is queued before the actor
    // runs, so all eight wait for the same flush.
    let calls = (0..8).map(|i| {
        let m = new_message(&f.store, &format!("Subject: m{i}\r\n"), Target::Inbox);
        let actor = f.actor.clone();
        async move {
            ractor::call!(actor, |reply| AccountMsg::Deliver {
                messages: vec![m],
                reply
            })
            .unwrap()
            .unwrap()
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut uids: Vec<u32> = results.iter().map(|d| d[0].uid.0).collect();
    uids.sort();
    assert_eq!(uids, (1..=8).collect::<Vec<_>>());
    let after = f.store.stats();
    assert_eq!(after.commits - before.commits, 1, "one group commit");
    assert_eq!(after.messages_placed - before.messages_placed, 8);
    let (acct, mb) = inbox(&f);
    assert_eq!(mb.counts.total, 8);
    assert_eq!(mb.uid_next, Uid(9));
    assert_eq!(f.store.messages(acct, mb.id).unwrap().len(), 8);
    assert!(f.store.check_consistency(&f.name).unwrap().is_empty());
}

#[tokio::test]
async fn replies_join_their_parents_thread() {
    let f = fixture("threads@example.org", None).await;
    deliver(&f, "Message-ID: <a@x>\r\nSubject: plans\r\n")
        .await
        .unwrap();
    deliver(
        &f,
        "Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nSubject: Re: plans\r\n",
    )
    .await
    .unwrap();
    // The parent of this one is unknown; it joins by base subject.
    deliver(
        &f,
        "Message-ID: <c@x>\r\nReferences: <zz@x>\r\nSubject: Re: plans\r\n",
    )
    .await
    .unwrap();
    // Unrelated.
    deliver(&f, "Message-ID: <d@x>\r\nSubject: other\r\n")
        .await
        .unwrap();
    let (acct, mb) = inbox(&f);
    let msgs = f.store.messages(acct, mb.id).unwrap();
    assert_eq!(msgs.len(), 4);
    let (a, b, c, d) = (&msgs[0], &msgs[1], &msgs[2], &msgs[3]);
    assert_eq!(a.thread_id, ThreadId(a.file.0));
    assert!(!a.missing_link);
    assert_eq!(b.thread_id, a.thread_id);
    assert_eq!(b.thread_parents, vec![a.file]);
    assert!(!b.missing_link);
    assert_eq!(c.thread_id, a.thread_id);
    assert!(c.missing_link);
    assert_ne!(d.thread_id, a.thread_id);
    assert_eq!(b.message_id.as_deref(), Some("b@x"));
}

/// Expunges `uids` of mailbox `name` (all \Deleted first).
async fn expunge_uids(f: &Fixture, name: &str, uids: Vec<Uid>) {
    let (_, mb) = mailbox_named(f, name);
    ractor::call!(f.actor, |reply| AccountMsg::SetFlags {
        mailbox: mb.id,
        uids: uids.clone(),
        action: FlagAction::Add,
        flags: [Flag::Deleted].into_iter().collect(),
        unchanged_since: None,
        reply
    })
    .unwrap()
    .unwrap();
    let gone = ractor::call!(f.actor, |reply| AccountMsg::Expunge {
        mailbox: mb.id,
        uids: Some(uids.clone()),
        reply
    })
    .unwrap()
    .unwrap();
    assert_eq!(gone, uids);
}

#[tokio::test]
async fn thread_index_entries_go_with_the_last_message_that_carries_them() {
    let f = fixture("threadgc@example.org", None).await;
    deliver(&f, "Message-ID: <a@x>\r\nSubject: Re: plans\r\n")
        .await
        .unwrap();
    // A second message with the same Message-ID and base subject.
    deliver(&f, "Message-ID: <a@x>\r\nSubject: plans\r\n")
        .await
        .unwrap();
    let (acct, inbox) = inbox(&f);
    // The newest message with a key is where the key leads.
    let second = f.store.messages(acct, inbox.id).unwrap()[1].clone();
    ractor::call!(f.actor, |reply| AccountMsg::Copy {
        from: inbox.id,
        uids: vec![Uid(1)],
        to: "Archive".into(),
        remove: false,
        reply
    })
    .unwrap()
    .unwrap();
    let present = |f: &Fixture| {
        (
            f.store.thread_by_message_id(acct, "a@x").unwrap().is_some(),
            f.store.thread_by_subject(acct, "plans").unwrap().is_some(),
        )
    };
    assert_eq!(present(&f), (true, true));
    expunge_uids(&f, "INBOX", vec![Uid(1), Uid(2)]).await;
    // The copy in Archive still carries both keys.
    assert_eq!(present(&f), (true, true));
    let r = f.store.thread_by_message_id(acct, "a@x").unwrap().unwrap();
    assert_eq!(r.thread, second.thread_id);
    // A reply to it still joins its thread.
    deliver(
        &f,
        "Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nSubject: other\r\n",
    )
    .await
    .unwrap();
    let reply = f.store.messages(acct, inbox.id).unwrap()[0].clone();
    assert_eq!(reply.thread_id, second.thread_id);
    // The copy goes: nothing carries `a@x` or `plans` any more.
    expunge_uids(&f, "Archive", vec![Uid(1)]).await;
    assert_eq!(present(&f), (false, false));
    assert!(f.store.thread_by_message_id(acct, "b@x").unwrap().is_some());
    expunge_uids(&f, "INBOX", vec![Uid(3)]).await;
    assert!(f.store.thread_by_message_id(acct, "b@x").unwrap().is_none());
    assert!(f.store.thread_by_subject(acct, "other").unwrap().is_none());
    assert!(f.store.check_consistency(&f.name).unwrap().is_empty());
}

#[tokio::test]
async fn quota_refuses_the_whole_call_and_stores_nothing() {
    let f = fixture("quota@example.org", Some(100)).await;
    let err = deliver(&f, &format!("Subject: {}\r\n", "x".repeat(200)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AccountError::OverQuota {
                used: 0,
                quota: 100,
                ..
            }
        ),
        "{err:?}"
    );
    let (acct, mb) = inbox(&f);
    assert_eq!(mb.counts.total, 0);
    assert!(f.store.messages(acct, mb.id).unwrap().is_empty());
    // Exactly at the limit is allowed.
    let at_limit = "Subject: y\r\n";
    let size = (at_limit.len() + 2 + "body\r\n".len() + "Received: test\r\n".len()) as u64;
    let f = fixture("quota2@example.org", Some(size)).await;
    deliver(&f, at_limit).await.unwrap();
    let err = deliver(&f, at_limit).await.unwrap_err();
    assert!(matches!(err, AccountError::OverQuota { .. }));
}

#[tokio::test]
async fn flags_expunge_copy_move_keep_the_store_consistent() {
    let f = fixture("ops@example.org", None).await;
    for i in 0..3 {
        deliver(&f, &format!("Subject: {i}\r\n")).await.unwrap();
    }
    let (acct, mb) = inbox(&f);
    let changed = ractor::call!(f.actor, |reply| AccountMsg::SetFlags {
        mailbox: mb.id,
        uids: vec![Uid(1), Uid(2)],
        action: FlagAction::Add,
        flags: [Flag::Deleted, Flag::Seen].into_iter().collect(),
        unchanged_since: None,
        reply
    })
    .unwrap()
    .unwrap()
    .changed;
    assert_eq!(changed.len(), 2);
    assert!(
        changed[1].modseq > changed[0].modseq,
        "one modseq per change"
    );
    let copied = ractor::call!(f.actor, |reply| AccountMsg::Copy {
        from: mb.id,
        uids: vec![Uid(1), Uid(3)],
        to: "Archive".into(),
        remove: false,
        reply
    })
    .unwrap()
    .unwrap();
    assert_eq!(copied.pairs, vec![(Uid(1), Uid(1)), (Uid(3), Uid(2))]);
    let gone = ractor::call!(f.actor, |reply| AccountMsg::Expunge {
        mailbox: mb.id,
        uids: None,
        reply
    })
    .unwrap()
    .unwrap();
    assert_eq!(gone, vec![Uid(1), Uid(2)]);
    let moved = ractor::call!(f.actor, |reply| AccountMsg::Copy {
        from: mb.id,
        uids: vec![Uid(3)],
        to: "Trash".into(),
        remove: true,
        reply
    })
    .unwrap()
    .unwrap();
    assert_eq!(moved.pairs, vec![(Uid(3), Uid(1))]);
    assert!(f.store.messages(acct, mb.id).unwrap().is_empty());
    assert_eq!(f.store.tombstones(acct, mb.id).unwrap().len(), 3);
    // The copy survives the expunge of its original: files are not shared.
    let (_, archive) = mailbox_named(&f, "Archive");
    let kept = f.store.messages(acct, archive.id).unwrap();
    assert_eq!(kept.len(), 2);
    assert!(f
        .store
        .read_message(&kept[0])
        .unwrap()
        .ends_with(b"body\r\n"));
    assert!(f.store.check_consistency(&f.name).unwrap().is_empty());
}

#[tokio::test]
async fn mailboxes_are_created_with_parents_renamed_with_children_and_deleted() {
    let f = fixture("boxes@example.org", None).await;
    create_mb(&f, "a/b/c").await.unwrap();
    let err = create_mb(&f, "a").await.unwrap_err();
    assert_eq!(err, AccountError::AlreadyExists("a".into()));
    rename_mb(&f, "a", "z").await.unwrap();
    let acct = f.store.account(&f.name).unwrap().unwrap();
    let mut names: Vec<String> = f
        .store
        .mailboxes(acct.id)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .filter(|n| n.starts_with('z') || n.starts_with('a'))
        .collect();
    names.sort();
    assert_eq!(names, ["z", "z/b", "z/b/c"]);
    for bad in ["", "x//y", "/x", "a*"] {
        let err = create_mb(&f, bad).await.unwrap_err();
        assert!(matches!(err, AccountError::Cannot(_)), "{bad:?}: {err:?}");
    }
    let long = "x".repeat(MAX_MAILBOX_NAME);
    create_mb(&f, &long).await.unwrap();
    let err = create_mb(&f, &format!("{long}y")).await.unwrap_err();
    assert!(matches!(err, AccountError::Cannot(_)));
    let err = delete_mb(&f, "inbox").await.unwrap_err();
    assert_eq!(err, AccountError::Cannot("INBOX cannot be deleted".into()));
    delete_mb(&f, "z/b/c").await.unwrap();
    assert!(f.store.check_consistency(&f.name).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_account_actor_under_load_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = "killed@example.org";
    store.create_account(name, "secret", None).unwrap();
    let lock = CommitLock::default();
    for round in 0..20u64 {
        let (actor, handle) = spawn_account(&store, name, &lock).await;
        // Deliveries in flight, then a kill at once: some commits are
        // running or queued when the actor dies.
        let calls: Vec<_> = (0..16)
            .map(|i| {
                let m = new_message(&store, &format!("Subject: {round}-{i}\r\n"), Target::Inbox);
                let actor = actor.clone();
                tokio::spawn(async move {
                    actor
                        .call(
                            |reply| AccountMsg::Deliver {
                                messages: vec![m],
                                reply,
                            },
                            None,
                        )
                        .await
                })
            })
            .collect();
        // Kill at different points of the flush cycle.
        tokio::time::sleep(std::time::Duration::from_micros(150 * round)).await;
        actor.kill();
        handle.await.unwrap();
        for c in calls {
            let _ = c.await;
        }
    }
    // A last incarnation delivers normally on top of whatever landed.
    let (actor, _) = spawn_account(&store, name, &lock).await;
    let m = new_message(&store, "Subject: last\r\n", Target::Inbox);
    let delivered = ractor::call!(actor, |reply| AccountMsg::Deliver {
        messages: vec![m],
        reply
    })
    .unwrap()
    .unwrap();
    let acct = store.account(name).unwrap().unwrap();
    let inbox = store
        .mailboxes(acct.id)
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap();
    let messages = store.messages(acct.id, inbox.id).unwrap();
    assert_eq!(messages.last().unwrap().uid, delivered[0].uid);
    assert_eq!(inbox.counts.total as usize, messages.len());
    let problems = store.check_consistency(name).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    actor.stop(None);
}

#[tokio::test]
async fn a_flag_change_and_a_move_in_one_batch_end_as_a_move() {
    let f = fixture("batch@example.org", None).await;
    deliver(&f, "Message-ID: <m@x>\r\nSubject: one\r\n")
        .await
        .unwrap();
    let (acct, inbox) = inbox(&f);
    let before = f.store.messages(acct, inbox.id).unwrap()[0].clone();
    // Both calls are queued before the actor runs: one commit holds both.
    let commits = f.store.stats().commits;
    let (flags, moved) = tokio::join!(
        async {
            ractor::call!(f.actor, |reply| AccountMsg::SetFlags {
                mailbox: inbox.id,
                uids: vec![Uid(1)],
                action: FlagAction::Add,
                flags: [Flag::Seen].into_iter().collect(),
                unchanged_since: None,
                reply
            })
        },
        async {
            ractor::call!(f.actor, |reply| AccountMsg::Copy {
                from: inbox.id,
                uids: vec![Uid(1), Uid(1)],
                to: "Trash".into(),
                remove: true,
                reply
            })
        }
    );
    assert_eq!(flags.unwrap().unwrap().changed.len(), 1);
    assert_eq!(moved.unwrap().unwrap().pairs, vec![(Uid(1), Uid(1))]);
    assert_eq!(f.store.stats().commits - commits, 1, "one batch");
    assert!(f.store.messages(acct, inbox.id).unwrap().is_empty());
    let (_, trash) = mailbox_named(&f, "Trash");
    let moved = f.store.messages(acct, trash.id).unwrap();
    assert_eq!(moved.len(), 1);
    // A move keeps the file, so thread links that name it still resolve.
    assert_eq!(moved[0].file, before.file);
    assert!(moved[0].flags.contains(&Flag::Seen));
    assert!(f
        .store
        .read_message(&moved[0])
        .unwrap()
        .ends_with(b"body\r\n"));
    let by_file = f.store.message_by_file(acct, before.file).unwrap().unwrap();
    assert_eq!((by_file.mailbox, by_file.uid), (trash.id, Uid(1)));
    let thread = f.store.thread_by_message_id(acct, "m@x").unwrap().unwrap();
    assert_eq!(thread.file, before.file);
    assert!(f.store.check_consistency(&f.name).unwrap().is_empty());
}

#[tokio::test]
async fn a_copy_into_a_mailbox_deleted_in_the_same_batch_leaves_nothing_behind() {
    let f = fixture("gone@example.org", None).await;
    deliver(&f, "Subject: one\r\n").await.unwrap();
    let (acct, inbox) = inbox(&f);
    create_mb(&f, "X").await.unwrap();
    let (copied, deleted) = tokio::join!(
        async {
            ractor::call!(f.actor, |reply| AccountMsg::Copy {
                from: inbox.id,
                uids: vec![Uid(1)],
                to: "X".into(),
                remove: false,
                reply
            })
        },
        async {
            ractor::call!(f.actor, |reply| AccountMsg::DeleteMailbox {
                name: "X".into(),
                reply
            })
        }
    );
    copied.unwrap().unwrap();
    deleted.unwrap().unwrap();
    assert!(f
        .store
        .mailboxes(acct)
        .unwrap()
        .iter()
        .all(|m| m.name != "X"));
    assert_eq!(f.store.messages(acct, inbox.id).unwrap().len(), 1);
    assert!(f.store.check_consistency(&f.name).unwrap().is_empty());
}

#[tokio::test]
async fn renames_refuse_collisions_and_cycles_and_deletes_refuse_parents() {
    let f = fixture("tree@example.org", None).await;
    for name in ["a/x", "b/x"] {
        create_mb(&f, name).await.unwrap();
    }
    // b exists, so a -> b is refused; with b gone, a/x -> c/d/x creates c/d.
    assert_eq!(
        rename_mb(&f, "a", "b").await,
        Err(AccountError::AlreadyExists("b".into()))
    );
    assert!(matches!(
        rename_mb(&f, "a", "a/y").await,
        Err(AccountError::Cannot(_))
    ));
    rename_mb(&f, "a/x", "c/d/x").await.unwrap();
    assert!(matches!(
        delete_mb(&f, "c").await,
        Err(AccountError::Cannot(_))
    ));
    delete_mb(&f, "c/d/x").await.unwrap();
    delete_mb(&f, "c/d").await.unwrap();
    delete_mb(&f, "c").await.unwrap();
    let acct = f.store.account(&f.name).unwrap().unwrap();
    let mut names: Vec<String> = f
        .store
        .mailboxes(acct.id)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .filter(|n| n.len() <= 3)
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "b/x"]);
    assert!(f.store.check_consistency(&f.name).unwrap().is_empty());
}

#[tokio::test]
async fn an_unwatched_mailbox_actor_lingers_then_goes() {
    let f = fixture("linger@example.org", None).await;
    deliver(&f, "Subject: l\r\n").await.unwrap();
    let open = |f: &Fixture| {
        let subscriber = crate::mailbox::Subscriber::new(|_| true);
        let id = subscriber.id;
        let actor = f.actor.clone();
        async move {
            let opened = ractor::call!(actor, |reply| AccountMsg::OpenMailbox {
                name: "INBOX".into(),
                subscriber,
                reply
            })
            .unwrap()
            .unwrap();
            (opened, id)
        }
    };
    let (opened, sub) = open(&f).await;
    assert_eq!(opened.snapshot.uids, vec![Uid(1)]);
    let first = opened.actor.get_id();
    f.actor
        .cast(AccountMsg::CloseMailbox {
            mailbox: opened.snapshot.record.id,
            subscriber: sub,
        })
        .unwrap();
    // Within the linger, opening again finds the same actor.
    let (again, sub2) = open(&f).await;
    assert_eq!(again.actor.get_id(), first);
    f.actor
        .cast(AccountMsg::CloseMailbox {
            mailbox: again.snapshot.record.id,
            subscriber: sub2,
        })
        .unwrap();
    tokio::time::sleep(TEST_LINGER * 3).await;
    assert!(again.actor.get_status() == ractor::ActorStatus::Stopped);
}

/// A message stored without a summary (as before roost kept them) gets one
/// on first need: `summaries::load` builds it from the file, and the
/// account keeps it, so the next load reads it; a copy's file shares it.
#[tokio::test]
async fn summaries_are_made_on_first_need_and_kept() {
    let f = fixture("summary@example.org", None).await;
    let mut m = new_message(&f.store, "Subject: old\r\nFrom: a@b\r\n", Target::Inbox);
    m.summary = None;
    ractor::call!(f.actor, |reply| AccountMsg::Deliver {
        messages: vec![m],
        reply
    })
    .unwrap()
    .unwrap();
    let (acct, mb) = inbox(&f);
    let rec = f.store.message(acct, mb.id, Uid(1)).unwrap().unwrap();
    assert_eq!(f.store.summary(rec.file).unwrap(), None);
    let (loaded, built) = crate::summaries::load(&f.store, &[Some(rec.clone())]).unwrap();
    let summary = loaded[0].clone().unwrap();
    assert_eq!(summary.envelope.subject.as_deref(), Some(&b"old"[..]));
    assert_eq!(built.len(), 1);
    for (file, summary) in built {
        f.actor
            .cast(AccountMsg::StoreSummary { file, summary })
            .unwrap();
    }
    // Kept once committed (the cast schedules a flush of its own).
    let mut kept = None;
    for _ in 0..100 {
        kept = f.store.summary(rec.file).unwrap();
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(kept.as_ref(), Some(&*summary));
    let (_, built) = crate::summaries::load(&f.store, &[Some(rec)]).unwrap();
    assert!(built.is_empty());
    // A copy is a hard link under a new file id: its summary comes along.
    let copied = ractor::call!(f.actor, |reply| AccountMsg::Copy {
        from: mb.id,
        uids: vec![Uid(1)],
        to: "Archive".into(),
        remove: false,
        reply
    })
    .unwrap()
    .unwrap();
    let (_, archive) = mailbox_named(&f, "Archive");
    let copy = f
        .store
        .message(acct, archive.id, copied.pairs[0].1)
        .unwrap()
        .unwrap();
    assert_eq!(
        f.store.summary(copy.file).unwrap().as_ref(),
        Some(&*summary)
    );
}

/// RFC 8970: a summary kept before roost made previews is made again the
/// first time a FETCH wants the preview, and the new one is kept.
#[tokio::test]
async fn previews_missing_from_old_summaries_are_made_and_kept() {
    let f = fixture("preview@example.org", None).await;
    let m = new_message(&f.store, "Subject: p\r\n", Target::Inbox);
    ractor::call!(f.actor, |reply| AccountMsg::Deliver {
        messages: vec![m],
        reply
    })
    .unwrap()
    .unwrap();
    let (acct, mb) = inbox(&f);
    let rec = f.store.message(acct, mb.id, Uid(1)).unwrap().unwrap();
    // As an older roost kept it: no preview.
    let mut old = f.store.summary(rec.file).unwrap().unwrap();
    assert!(old.preview.is_some());
    old.preview = None;
    f.actor
        .cast(AccountMsg::StoreSummary {
            file: rec.file,
            summary: std::sync::Arc::new(old),
        })
        .unwrap();
    let mut stored = None;
    for _ in 0..100 {
        stored = f.store.summary(rec.file).unwrap();
        if stored.as_ref().is_some_and(|s| s.preview.is_none()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stored.and_then(|s| s.preview), None);
    // Without the preview asked for, the old summary serves.
    let (_, built) = crate::summaries::load(&f.store, &[Some(rec.clone())]).unwrap();
    assert!(built.is_empty());
    let (loaded, built) =
        crate::summaries::load_with(&f.store, &[Some(rec.clone())], true).unwrap();
    let preview = loaded[0].as_ref().and_then(|s| s.preview.clone());
    assert!(preview.is_some());
    assert_eq!(built.len(), 1);
    // Kept, as FETCH keeps what it made: the next load finds it.
    for (file, summary) in built {
        f.actor
            .cast(AccountMsg::StoreSummary { file, summary })
            .unwrap();
    }
    let mut kept = None;
    for _ in 0..100 {
        kept = f.store.summary(rec.file).unwrap().and_then(|s| s.preview);
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(kept, preview);
    let (_, built) = crate::summaries::load_with(&f.store, &[Some(rec)], true).unwrap();
    assert!(built.is_empty());
}
