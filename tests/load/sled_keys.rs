//! How sled 0.34 (the store's index) grows under the IMAP mixed load's
//! pattern of writes, without roost around it.
//!
//! `cargo bench --bench sled_keys [-- SECONDS]`: three runs of SECONDS
//! (default 60) each, one loop after another over 100 "mailboxes": put a
//! message record and its state under the next UID and rewrite the
//! mailbox record, change the state twice, then delete the record 20 UIDs
//! back. The runs differ in what the delete leaves behind:
//!
//! - `churn`: nothing; the number of keys stays the same.
//! - `growing`: a tombstone key per delete, never removed (as roost kept
//!   them, up to 100,000 per mailbox).
//! - `bounded`: a tombstone key per delete, the oldest removed past 100
//!   per mailbox (roost now bounds them the same way, at
//!   `MAX_TOMBSTONES`, 1,000; 100 here reaches the bound within seconds).
//!
//! Each flushes after every batch, as a commit does, with the store's
//! cache size, and prints the process's resident memory and the size of
//! sled's file every 10 seconds. Each run is a child process, so the
//! resident memory is its own.

use std::time::{Duration, Instant};

/// The cache the store gives sled (`INDEX_CACHE_BYTES`).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;
const MAILBOXES: u32 = 100;
const MESSAGES: u32 = 20;
const KEPT_TOMBSTONES: u32 = 100;
const REPORT_EVERY: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("child") {
        let mode = args.get(1).cloned().unwrap_or_default();
        let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
        run(&mode, Duration::from_secs(secs));
        return;
    }
    let secs = args.first().cloned().unwrap_or_else(|| "60".into());
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("own path: {e}"));
    for mode in ["churn", "growing", "bounded"] {
        println!("{mode}:");
        let status = std::process::Command::new(&exe)
            .args(["child", mode, &secs])
            .status()
            .unwrap_or_else(|e| panic!("cannot run {mode}: {e}"));
        assert!(status.success(), "{mode} failed");
    }
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib / 1024
}

fn key(kind: u8, mailbox: u32, uid: u32) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend(mailbox.to_be_bytes());
    k.extend(uid.to_be_bytes());
    k
}

fn run(mode: &str, length: Duration) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(CACHE_BYTES)
        .open()
        .unwrap_or_else(|e| panic!("sled: {e}"));
    let apply = |b: sled::Batch| {
        db.apply_batch(b).unwrap_or_else(|e| panic!("batch: {e}"));
        db.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    };
    let record = vec![7u8; 200];
    for m in 0..MAILBOXES {
        let mut b = sled::Batch::default();
        for u in 1..=MESSAGES {
            b.insert(key(0x11, m, u), record.clone());
        }
        apply(b);
    }
    let mut next_uid = vec![MESSAGES + 1; MAILBOXES as usize];
    let start = Instant::now();
    let mut next_report = REPORT_EVERY;
    let mut loops = 0u64;
    while start.elapsed() < length {
        let m = (loops % u64::from(MAILBOXES)) as u32;
        let uid = next_uid[m as usize];
        next_uid[m as usize] += 1;
        let mut b = sled::Batch::default();
        b.insert(key(0x11, m, uid), record.clone());
        b.insert(key(0x19, m, uid), vec![1u8; 20]);
        b.insert(key(0x10, m, 0), vec![3u8; 100]);
        apply(b);
        for flags in [2u8, 3] {
            let mut b = sled::Batch::default();
            b.insert(key(0x11, m, uid), record.clone());
            b.insert(key(0x19, m, uid), vec![flags; 20]);
            apply(b);
        }
        let old = uid - MESSAGES;
        let mut b = sled::Batch::default();
        b.remove(key(0x11, m, old));
        b.remove(key(0x19, m, old));
        if mode != "churn" {
            b.insert(key(0x12, m, old), vec![4u8; 30]);
        }
        if mode == "bounded" && old > KEPT_TOMBSTONES {
            b.remove(key(0x12, m, old - KEPT_TOMBSTONES));
        }
        b.insert(key(0x10, m, 0), vec![3u8; 100]);
        apply(b);
        loops += 1;
        if start.elapsed() >= next_report {
            next_report += REPORT_EVERY;
            let file = std::fs::metadata(dir.path().join("db")).map_or(0, |m| m.len());
            println!(
                "  {:>4} s: {loops} loops, resident {} MiB, sled file {} MiB",
                start.elapsed().as_secs(),
                rss_mib(),
                file / (1024 * 1024)
            );
        }
    }
}
