//! The message composer (the web API's Send): drafts from fuzzed fields
//! are refused or composed; a composed message is 7-bit (addresses
//! aside) with lines of at
//! most 998 bytes, its MIME tree reads back with each text part and
//! attachment where it was put, and the content decodes to what was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_protocols::message::compose::{compose, Attachment, Draft};
use roost_protocols::message::decode::TransferEncoding;
use roost_protocols::message::mime::MimeTree;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let fields: Vec<&str> = text.split('\u{1}').collect();
    let get = |i: usize| fields.get(i).copied().unwrap_or("").to_string();
    let draft = Draft {
        from: get(0),
        from_name: Some(get(1)),
        to: get(2).split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        cc: Vec::new(),
        subject: get(3),
        text: Some(get(4)),
        html: fields.get(5).map(|s| s.to_string()),
        attachments: fields
            .get(6)
            .map(|a| {
                vec![Attachment {
                    filename: get(7),
                    content_type: get(8),
                    data: a.as_bytes().to_vec(),
                }]
            })
            .unwrap_or_default(),
        // Only when given: an empty name is refused, and the seeds would
        // never get past the check.
        extra: fields.get(9).map(|_| (get(9), get(10))).into_iter().collect(),
        date: "Tue, 1 Dec 2026 10:00:00 +0000".into(),
        message_id: "m@example.org".into(),
        headers: fields.get(11).map(|_| (get(11), get(12))).into_iter().collect(),
        report_type: fields.get(13).map(|s| s.to_string()),
    };
    let Ok(m) = compose(&draft) else {
        return;
    };
    // 7-bit, but for addresses that are not ASCII (RFC 6532, SMTPUTF8).
    let ascii_addresses = draft.from.is_ascii() && draft.to.iter().all(|t| t.is_ascii());
    assert!(m.is_ascii() || !ascii_addresses);
    assert!(m.split(|&b| b == b'\n').all(|l| l.len() <= 999));
    let tree = MimeTree::parse(&m);
    let decoded = |path: &[u32]| {
        let p = tree.part(tree.find(path).expect("the part is there"));
        let enc = TransferEncoding::from_name(p.encoding.as_bytes()).expect("a known encoding");
        enc.decode(&m[p.body()])
    };
    let body_text = draft.text.clone().unwrap_or_default();
    // Text parts end with a line break.
    let mut want = body_text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n");
    if !want.is_empty() && !want.ends_with("\r\n") {
        want.push_str("\r\n");
    }
    let text_path: &[u32] = match (draft.html.is_some(), draft.attachments.is_empty()) {
        (false, true) => &[],
        (false, false) => &[1],
        (true, true) => &[1],
        (true, false) => &[1, 1],
    };
    assert_eq!(decoded(text_path), want.as_bytes());
    if let Some(a) = draft.attachments.first() {
        assert_eq!(decoded(&[2]), a.data);
    }
});
