//! A session's numbering of its selected mailbox (RFC 9051 2.3.1.2): the
//! UIDs in sequence order, kept as runs of consecutive UIDs. A mailbox
//! that was never expunged from is one run, whatever its size; each
//! expunge in the middle adds at most one. Flags and modseqs are not here:
//! they live once per mailbox, in the shared [`crate::mailbox::MailboxIndex`].

use roost_protocols::imap::types::Uid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// The run's first UID.
    first: u32,
    len: u32,
    /// Index (from 0) of the run's first message in the view.
    start: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    runs: Vec<Run>,
    len: u32,
}

impl View {
    /// The view of `uids`, ascending.
    pub fn from_uids(uids: impl IntoIterator<Item = Uid>) -> View {
        let mut v = View::default();
        for u in uids {
            v.push(u);
        }
        v
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The UID at index `i` (sequence number `i + 1`).
    pub fn uid(&self, i: usize) -> Uid {
        let i = i as u32;
        let r = self.runs.partition_point(|r| r.start + r.len <= i);
        let run = self.runs[r];
        Uid(run.first + (i - run.start))
    }

    /// The index of `uid`, if the view has it.
    pub fn seq_of(&self, uid: Uid) -> Option<usize> {
        let r = self.runs.partition_point(|r| r.first + r.len <= uid.0);
        let run = self.runs.get(r)?;
        (run.first <= uid.0).then(|| (run.start + (uid.0 - run.first)) as usize)
    }

    pub fn last_uid(&self) -> Option<Uid> {
        self.runs.last().map(|r| Uid(r.first + r.len - 1))
    }

    /// Adds `uid`, which must be above every UID in the view.
    pub fn push(&mut self, uid: Uid) {
        match self.runs.last_mut() {
            Some(r) if r.first + r.len == uid.0 => r.len += 1,
            Some(r) if r.first + r.len > uid.0 => return,
            _ => self.runs.push(Run {
                first: uid.0,
                len: 1,
                start: self.len,
            }),
        }
        self.len += 1;
    }

    /// Every UID, in sequence order.
    pub fn iter(&self) -> impl Iterator<Item = Uid> + '_ {
        self.runs
            .iter()
            .flat_map(|r| (r.first..r.first + r.len).map(Uid))
    }

    /// Removes the messages at `gone` (indices, ascending, no repeats).
    pub fn remove(&mut self, gone: &[usize]) {
        let mut g = gone.iter().map(|&i| i as u32).peekable();
        let mut runs = Vec::with_capacity(self.runs.len() + gone.len());
        let mut len = 0;
        for run in &self.runs {
            let mut first = run.first;
            let mut left = run.len;
            let mut at = run.start;
            while left > 0 {
                // Messages of this run before the next gone index stay.
                let keep = match g.peek() {
                    Some(&i) if i < at + left => i - at,
                    _ => left,
                };
                if keep > 0 {
                    runs.push(Run {
                        first,
                        len: keep,
                        start: len,
                    });
                    len += keep;
                }
                if keep == left {
                    break;
                }
                g.next();
                first += keep + 1;
                at += keep + 1;
                left -= keep + 1;
            }
        }
        self.runs = runs;
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(v: &[u32]) -> Vec<Uid> {
        v.iter().map(|&u| Uid(u)).collect()
    }

    #[test]
    fn runs_answer_like_a_list() {
        let list = [1, 2, 3, 7, 8, 10, 20, 21, 22, 23];
        let v = View::from_uids(uids(&list));
        assert_eq!(v.runs.len(), 4);
        assert_eq!(v.len(), list.len());
        for (i, &u) in list.iter().enumerate() {
            assert_eq!(v.uid(i), Uid(u));
            assert_eq!(v.seq_of(Uid(u)), Some(i));
        }
        for missing in [0, 4, 9, 11, 19, 24] {
            assert_eq!(v.seq_of(Uid(missing)), None);
        }
        assert_eq!(v.iter().collect::<Vec<_>>(), uids(&list));
        assert_eq!(v.last_uid(), Some(Uid(23)));
    }

    #[test]
    fn removing_splits_and_drops_runs() {
        let mut v = View::from_uids(uids(&[1, 2, 3, 4, 5, 9, 10]));
        v.remove(&[0, 2, 5, 6]);
        assert_eq!(v.iter().collect::<Vec<_>>(), uids(&[2, 4, 5]));
        assert_eq!(v.seq_of(Uid(4)), Some(1));
        assert_eq!(v.uid(2), Uid(5));
        v.remove(&[0, 1, 2]);
        assert_eq!(v.len(), 0);
        assert_eq!(v.last_uid(), None);
        v.push(Uid(11));
        assert_eq!(v.iter().collect::<Vec<_>>(), uids(&[11]));
    }

    #[test]
    fn a_big_unbroken_mailbox_is_one_run() {
        let v = View::from_uids((1..=100_000).map(Uid));
        assert_eq!(v.runs.len(), 1);
        assert_eq!(v.uid(99_999), Uid(100_000));
    }

    #[test]
    fn matches_a_plain_list_under_random_removals() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut list: Vec<u32> = (1..=500).filter(|_| next() % 4 != 0).collect();
        let mut v = View::from_uids(list.iter().map(|&u| Uid(u)));
        while !list.is_empty() {
            let mut gone: Vec<usize> = (0..list.len()).filter(|_| next() % 5 == 0).collect();
            gone.dedup();
            for &i in gone.iter().rev() {
                list.remove(i);
            }
            v.remove(&gone);
            assert_eq!(v.iter().map(|u| u.0).collect::<Vec<_>>(), list);
            for (i, &u) in list.iter().enumerate() {
                assert_eq!(v.seq_of(Uid(u)), Some(i));
                assert_eq!(v.uid(i), Uid(u));
            }
            if gone.is_empty() {
                list.pop();
                let n = v.len();
                v.remove(&[n - 1]);
            }
        }
    }
}
