//! THREAD=REFERENCES (RFC 5256 3, the REFERENCES algorithm, steps 1 to
//! 6): messages linked into trees by Message-ID, References and
//! In-Reply-To, parentless threads merged by base subject, siblings in
//! sent-date order, and the `thread-list` of RFC 5256 4 written from the
//! trees.
//!
//! Nothing here recurses: trees are walked with explicit stacks, and the
//! ancestor walk that keeps links from making loops stops at
//! [`MAX_LOOP_CHECK`] steps.

use crate::message::thread::ThreadKeys;
use std::collections::{HashMap, VecDeque};

/// Most ancestors a loop check walks. A link whose check would go further
/// is not made (the message stays where it was, usually a thread of its
/// own), so no link costs more than this many steps. Only links that hang
/// a message with replies below another need the check.
pub const MAX_LOOP_CHECK: usize = 1000;

/// One message to thread: its number in the answer (sequence number or
/// UID), its threading keys and its sent date (RFC 5256 2.2).
#[derive(Debug, Clone)]
pub struct ThreadInput {
    pub number: u32,
    pub keys: ThreadKeys,
    pub date: i64,
}

/// A container of RFC 5256's step 1: a message, or a dummy standing for a
/// referenced message that is not among those threaded.
#[derive(Debug, Clone, Default)]
struct Node {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest<'a> {
    messages: &'a [ThreadInput],
    nodes: Vec<Node>,
    ids: HashMap<&'a str, usize>,
}

impl<'a> Forest<'a> {
    fn add(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(Node {
            message,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    /// The container of message id `id`, a new dummy when none has it.
    fn container(&mut self, id: &'a str) -> usize {
        if let Some(&n) = self.ids.get(id) {
            return n;
        }
        let n = self.add(None);
        self.ids.insert(id, n);
        n
    }

    /// Whether making `parent` the parent of `child` would make a loop
    /// (`child` is `parent` or one of its ancestors), or cannot be
    /// checked within [`MAX_LOOP_CHECK`] steps. A child without children
    /// is nobody's ancestor.
    fn refuses(&self, parent: usize, child: usize) -> bool {
        if parent == child {
            return true;
        }
        if self.nodes[child].children.is_empty() {
            return false;
        }
        let mut at = parent;
        for _ in 0..MAX_LOOP_CHECK {
            match self.nodes[at].parent {
                None => return false,
                Some(p) if p == child => return true,
                Some(p) => at = p,
            }
        }
        true
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn is_dummy(&self, n: usize) -> bool {
        self.nodes[n].message.is_none()
    }

    /// Sent date, then sequence order (RFC 5256 2.2); a dummy sorts as
    /// its first child (children sorted first).
    fn key(&self, n: usize) -> (i64, usize) {
        let mut at = n;
        // After pruning a dummy holds messages, so this ends at once; the
        // bound only keeps it from running on.
        for _ in 0..=MAX_LOOP_CHECK {
            match self.nodes[at].message {
                Some(m) => return (self.messages[m].date, m),
                None => match self.nodes[at].children.first() {
                    Some(&c) => at = c,
                    None => break,
                },
            }
        }
        (i64::MAX, usize::MAX)
    }

    fn sort_children(&mut self, n: usize) {
        let mut children = std::mem::take(&mut self.nodes[n].children);
        children.sort_by_key(|&c| self.key(c));
        self.nodes[n].children = children;
    }

    /// The base subject a top-level node is merged by (the first child's
    /// for a dummy) and whether it is a reply or forward, compared as
    /// SORT compares subjects (`i;ascii-casemap`).
    fn subject(&self, n: usize) -> Option<(String, bool)> {
        let m = match self.nodes[n].message {
            Some(m) => m,
            None => self.nodes[*self.nodes[n].children.first()?].message?,
        };
        let keys = &self.messages[m].keys;
        (!keys.base_subject.is_empty()).then(|| {
            (
                keys.base_subject.to_ascii_uppercase(),
                keys.is_reply_or_forward && !self.is_dummy(n),
            )
        })
    }
}

/// RFC 5256 3, REFERENCES: `messages` (in sequence order) as threads,
/// each a tree given by its root's index into the returned node list.
pub fn references(messages: &[ThreadInput]) -> Threads {
    let mut f = Forest {
        messages,
        nodes: Vec::with_capacity(messages.len()),
        ids: HashMap::with_capacity(messages.len()),
    };
    // Step 1: containers and links. A message without a Message-ID, or
    // with one an earlier message already has, gets a container of its
    // own that nothing can reference.
    for (i, m) in messages.iter().enumerate() {
        let own = match m.keys.message_id.as_deref() {
            Some(id) => match f.ids.get(id) {
                Some(&n) if f.is_dummy(n) => {
                    f.nodes[n].message = Some(i);
                    n
                }
                Some(_) => f.add(Some(i)),
                None => {
                    let n = f.add(Some(i));
                    f.ids.insert(id, n);
                    n
                }
            },
            None => f.add(Some(i)),
        };
        // References, or else In-Reply-To's first id.
        let refs: &[String] = if m.keys.references.is_empty() {
            &m.keys.in_reply_to[..m.keys.in_reply_to.len().min(1)]
        } else {
            &m.keys.references
        };
        // 1A: each reference the parent of the next, unless the next
        // already has a parent or the link would loop.
        let chain: Vec<usize> = refs.iter().map(|r| f.container(r)).collect();
        for pair in chain.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if f.nodes[child].parent.is_none() && !f.refuses(parent, child) {
                f.link(parent, child);
            }
        }
        // 1B: the last reference is the message's parent, replacing a
        // parent an earlier (truncated) References gave it; without
        // references, or where the link would loop, it has none.
        f.unlink(own);
        if let Some(&parent) = chain.last() {
            if !f.refuses(parent, own) {
                f.link(parent, own);
            }
        }
    }
    // Step 2: every parentless container is a thread's root.
    let roots: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| f.nodes[n].parent.is_none())
        .collect();
    // Step 3: dummies pruned; a childless one goes, one with children
    // gives way to them, except at the top where only a dummy with a
    // single child does. Everything below the top is pruned first, so a
    // top-level dummy is judged by the children it keeps.
    let mut stack: Vec<usize> = roots.clone();
    while let Some(n) = stack.pop() {
        let children = std::mem::take(&mut f.nodes[n].children);
        let kept = prune(&mut f, children, false);
        for &c in &kept {
            f.nodes[c].parent = Some(n);
        }
        stack.extend_from_slice(&kept);
        f.nodes[n].children = kept;
    }
    let mut roots = prune(&mut f, roots, true);
    // Step 4: top-level threads by sent date, a dummy's children first.
    for &r in &roots {
        if f.is_dummy(r) {
            f.sort_children(r);
        }
    }
    roots.sort_by_key(|&r| f.key(r));
    // Step 5: top-level threads of one base subject merged.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some((subject, reply)) = f.subject(r) else {
            continue;
        };
        match table.get(&subject) {
            None => {
                table.insert(subject, r);
            }
            Some(&t) => {
                let t_reply = f.subject(t).is_some_and(|s| s.1);
                if (f.is_dummy(r) && !f.is_dummy(t)) || (t_reply && !reply) {
                    table.insert(subject, r);
                }
            }
        }
    }
    let mut merged: Vec<usize> = Vec::with_capacity(roots.len());
    for &r in &roots {
        let Some((subject, reply)) = f.subject(r) else {
            merged.push(r);
            continue;
        };
        let Some(&t) = table.get(&subject) else {
            merged.push(r);
            continue;
        };
        if t == r {
            merged.push(r);
            continue;
        }
        let t_reply = f.subject(t).is_some_and(|s| s.1);
        if f.is_dummy(t) && f.is_dummy(r) {
            let children = std::mem::take(&mut f.nodes[r].children);
            for c in children {
                f.link(t, c);
            }
        } else if f.is_dummy(t) || (reply && !t_reply) {
            f.link(t, r);
        } else {
            let dummy = f.add(None);
            f.link(dummy, t);
            f.link(dummy, r);
            table.insert(subject, dummy);
            merged.push(dummy);
        }
    }
    // A table entry a dummy replaced was kept before it was merged; it
    // now hangs below the dummy.
    merged.retain(|&n| f.nodes[n].parent.is_none());
    // Step 6: every set of siblings by sent date, deepest first.
    let mut order: Vec<usize> = Vec::new();
    let mut stack = merged.clone();
    while let Some(n) = stack.pop() {
        order.push(n);
        stack.extend_from_slice(&f.nodes[n].children);
    }
    for &n in order.iter().rev() {
        f.sort_children(n);
    }
    merged.sort_by_key(|&r| f.key(r));
    Threads {
        numbers: f
            .nodes
            .iter()
            .map(|n| n.message.map(|m| messages[m].number))
            .collect(),
        children: f.nodes.into_iter().map(|n| n.children).collect(),
        roots: merged,
    }
}

/// Step 3 for one sibling list: dummies without children dropped, and
/// dummies replaced by their children in place, except at the top, where
/// a dummy with several children stays.
fn prune(f: &mut Forest<'_>, list: Vec<usize>, top: bool) -> Vec<usize> {
    let mut queue: VecDeque<usize> = list.into();
    let mut kept = Vec::with_capacity(queue.len());
    while let Some(n) = queue.pop_front() {
        if !f.is_dummy(n) {
            kept.push(n);
            continue;
        }
        let children = &f.nodes[n].children;
        if children.is_empty() {
            continue;
        }
        if !top || children.len() == 1 {
            let children = std::mem::take(&mut f.nodes[n].children);
            for &c in children.iter().rev() {
                f.nodes[c].parent = None;
                queue.push_front(c);
            }
            continue;
        }
        kept.push(n);
    }
    kept
}

/// Threads as trees: each node's number (none for a dummy) and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threads {
    numbers: Vec<Option<u32>>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

enum Emit {
    Node(usize),
    Text(&'static str),
}

impl Threads {
    /// RFC 5256 4 `thread-list`s: `(1 2 (3)(4 5))`: a message and its one
    /// child run on in a line; several children are each a nested list;
    /// a dummy is the nested lists of its children.
    pub fn response(&self) -> String {
        let mut out = String::new();
        let mut stack: Vec<Emit> = Vec::new();
        for &r in self.roots.iter().rev() {
            stack.push(Emit::Text(")"));
            stack.push(Emit::Node(r));
            stack.push(Emit::Text("("));
        }
        while let Some(e) = stack.pop() {
            let n = match e {
                Emit::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Emit::Node(n) => n,
            };
            let children = &self.children[n];
            if let Some(number) = self.numbers[n] {
                if !out.ends_with('(') {
                    out.push(' ');
                }
                out.push_str(&number.to_string());
            }
            match children.as_slice() {
                [] => {}
                [one] => stack.push(Emit::Node(*one)),
                many => {
                    for &c in many.iter().rev() {
                        stack.push(Emit::Text(")"));
                        stack.push(Emit::Node(c));
                        stack.push(Emit::Text("("));
                    }
                    if self.numbers[n].is_some() {
                        stack.push(Emit::Text(" "));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(number: u32, header: &str, date: i64) -> ThreadInput {
        let header = format!("{header}\r\n\r\n").replace('|', "\r\n");
        ThreadInput {
            number,
            keys: ThreadKeys::from_header(header.as_bytes()),
            date,
        }
    }

    #[test]
    fn replies_hang_below_what_they_answer() {
        let t = references(&[
            msg(1, "Message-ID: <a@x>|Subject: one", 10),
            msg(
                2,
                "Message-ID: <b@x>|References: <a@x>|Subject: Re: one",
                20,
            ),
            msg(
                3,
                "Message-ID: <c@x>|References: <a@x>|Subject: Re: one",
                30,
            ),
            msg(
                4,
                "Message-ID: <d@x>|References: <a@x> <c@x>|Subject: x",
                40,
            ),
            msg(5, "Message-ID: <e@x>|Subject: other", 5),
        ]);
        assert_eq!(t.response(), "(5)(1 (2)(3 4))");
    }

    #[test]
    fn missing_parents_are_dummies_pruned_or_kept_at_the_top() {
        // 2 and 3 answer the absent <root@x>: a dummy with two children
        // stays at the top; 4 answers the absent <lone@x>: its dummy gives
        // way to it.
        let t = references(&[
            msg(2, "Message-ID: <b@x>|In-Reply-To: <root@x>|Subject: a", 20),
            msg(3, "Message-ID: <c@x>|In-Reply-To: <root@x>|Subject: b", 30),
            msg(4, "Message-ID: <d@x>|References: <lone@x>|Subject: c", 10),
        ]);
        assert_eq!(t.response(), "(4)((2)(3))");
    }

    #[test]
    fn same_subject_threads_merge() {
        // Neither references the other; the reply goes below the original.
        let t = references(&[
            msg(1, "Message-ID: <a@x>|Subject: Lunch", 10),
            msg(2, "Message-ID: <b@x>|Subject: Re: lunch", 20),
            msg(3, "Message-ID: <c@x>|Subject: Dinner", 15),
            msg(4, "Message-ID: <d@x>|Subject: Dinner", 25),
        ]);
        // Two non-replies of one subject: a dummy holds both.
        assert_eq!(t.response(), "(1 2)((3)(4))");
    }

    /// RFC 5256 3 step 1B: a message without references has no parent,
    /// even where an earlier message's References put it under another;
    /// a dummy left with one child after pruning gives way at the top.
    #[test]
    fn a_message_without_references_has_no_parent() {
        let t = references(&[
            msg(
                2,
                "Message-ID: <b@x>|References: <x@x> <a@x>|Subject: p",
                20,
            ),
            msg(3, "Message-ID: <c@x>|References: <x@x>|Subject: q", 30),
            msg(1, "Message-ID: <a@x>|Subject: r", 10),
        ]);
        assert_eq!(t.response(), "(1 2)(3)");
    }

    #[test]
    fn duplicates_and_loops_do_not_tangle() {
        let t = references(&[
            msg(1, "Message-ID: <a@x>|References: <b@x>|Subject: p", 10),
            msg(2, "Message-ID: <b@x>|References: <a@x>|Subject: q", 20),
            msg(3, "Message-ID: <a@x>|Subject: r", 30),
            msg(4, "Subject: s|References: <s@x> <s@x>", 40),
        ]);
        // 2 cannot be 1's parent and child both: the later link stays
        // refused; the duplicate <a@x> is a message of its own.
        assert_eq!(t.response(), "(2 1)(3)(4)");
    }

    /// A chain of `links` replies, then a message that already has a
    /// reply answering the chain's end: its loop check walks the chain.
    fn chain_then_answer(links: u32) -> String {
        let mut msgs = vec![msg(9001, "Message-ID: <y@x>|In-Reply-To: <x@x>", 9001)];
        for i in 1..=links + 1 {
            let refs = if i > 1 {
                format!("|In-Reply-To: <m{}@x>", i - 1)
            } else {
                String::new()
            };
            msgs.push(msg(i, &format!("Message-ID: <m{i}@x>{refs}"), i as i64));
        }
        let last = links + 1;
        msgs.push(msg(
            9000,
            &format!("Message-ID: <x@x>|In-Reply-To: <m{last}@x>"),
            9000,
        ));
        references(&msgs).response()
    }

    #[test]
    fn loop_checks_stop_at_their_limit() {
        let chain = |n: u32| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
        let at = MAX_LOOP_CHECK as u32 - 1;
        assert_eq!(
            chain_then_answer(at),
            format!("({} 9000 9001)", chain(at + 1))
        );
        let past = MAX_LOOP_CHECK as u32;
        assert_eq!(
            chain_then_answer(past),
            format!("({})(9000 9001)", chain(past + 1))
        );
    }

    #[test]
    fn nothing_threads_to_nothing() {
        assert_eq!(references(&[]).response(), "");
    }
}
