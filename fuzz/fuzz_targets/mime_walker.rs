//! The MIME walker and FETCH section lookup on arbitrary messages: every
//! part's offsets lie inside the message, and sections named by the
//! input's first bytes are found or not, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::command::{Section, SectionText};
use roost_protocols::imap::section::Sections;
use roost_protocols::message::mime::{MimeTree, MAX_MIME_DEPTH, MAX_MIME_PARTS};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (path, msg) = data.split_at(4);
    let tree = MimeTree::parse(msg);
    assert!(tree.parts.len() <= MAX_MIME_PARTS);
    for p in &tree.parts {
        assert!(p.range.start <= p.body_start && p.body_start <= p.range.end);
        assert!(p.range.end <= msg.len());
        assert!(p.depth <= MAX_MIME_DEPTH);
    }
    let part: Vec<u32> = path
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| u32::from(b % 4) + 1)
        .collect();
    let sections = Sections::new(msg);
    for text in [
        None,
        Some(SectionText::Header),
        Some(SectionText::Text),
        Some(SectionText::Mime),
        Some(SectionText::HeaderFields(vec!["Subject".into()])),
    ] {
        let section = Section {
            part: part.clone(),
            text,
        };
        if let Some(found) = sections.locate(&section) {
            let _ = found.bytes(msg);
        }
    }
});
