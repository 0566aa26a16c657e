//! The message summary (ENVELOPE, BODYSTRUCTURE), its IMAP writer, the
//! searchable text and the SEARCH matcher over arbitrary messages: part
//! offsets lie inside the message, part numbers found by the summary
//! agree with the MIME walker, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::imap::bodystructure::{write_body, write_envelope};
use roost_protocols::imap::command::{CommandBody, Section, SectionText};
use roost_protocols::imap::matcher::{Candidate, Matcher};
use roost_protocols::imap::parser::parse_command;
use roost_protocols::imap::section::{locate_in_structure, Sections};
use roost_protocols::imap::types::{Flags, ModSeq};
use roost_protocols::message::decode::{decode_base64, decode_quoted_printable};
use roost_protocols::message::mime::MimeTree;
use roost_protocols::message::summary::Summary;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (path, msg) = data.split_at(4);
    let summary = Summary::build(msg);
    for p in &summary.body.parts {
        assert!(p.start <= p.body_start && p.body_start <= p.end);
        assert!(p.end as usize <= msg.len());
    }
    let part: Vec<u32> = path
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| u32::from(b % 4) + 1)
        .collect();
    let tree = MimeTree::parse(msg);
    assert_eq!(
        summary.body.find(&part).map(|i| i as usize),
        tree.find(&part)
    );
    // Sections found from the stored structure are those the walk finds.
    let walk = Sections::new(msg);
    for text in [
        None,
        Some(SectionText::Mime),
        Some(SectionText::Header),
        Some(SectionText::Text),
        Some(SectionText::HeaderFields(vec!["subject".into()])),
    ] {
        let section = Section {
            part: part.clone(),
            text,
        };
        if section.part.is_empty() {
            continue;
        }
        let stored = locate_in_structure(&summary.body, 0, &section)
            .map(|l| l.build(msg).bytes(msg).to_vec());
        let walked = walk.locate(&section).map(|d| d.bytes(msg).to_vec());
        assert_eq!(stored, walked);
    }
    let mut out = Vec::new();
    write_envelope(&mut out, &summary.envelope);
    write_body(&mut out, &summary.body, true);
    write_body(&mut out, &summary.body, false);
    let _ = decode_base64(msg);
    let _ = decode_quoted_printable(msg);
    let flags = Flags::new();
    for criteria in [
        "TEXT a",
        "OR FROM b SUBJECT c",
        "SENTON 1-Jan-2020 HEADER X d",
    ] {
        let Ok(cmd) = parse_command(format!("t SEARCH {criteria}").as_bytes()) else {
            continue;
        };
        let CommandBody::Search { program, .. } = cmd.body else {
            continue;
        };
        let c = Candidate {
            seq: 1,
            uid: 1,
            flags: &flags,
            modseq: ModSeq(1),
            size: msg.len() as u64,
            internal_date: 0,
            save_date: 0,
            message: msg,
        };
        let _ = Matcher::new(&program, 1, 1, &[]).matches(&c);
    }
});
