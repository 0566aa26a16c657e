//! STORE, COPY and MOVE (RFC 9051 6.4.6, 6.4.7; RFC 6851; RFC 7162
//! UNCHANGEDSINCE): the STORE action and the commands' parsers.

use super::command::*;
use super::parser::{push_item, PResult, Parser};
use super::types::{is_atom_char, Flag};

/// RFC 9051 6.4.6: `+FLAGS`, `-FLAGS` or `FLAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    Add,
    Remove,
    Replace,
}

impl Parser<'_> {
    // RFC 9051 6.4.7, RFC 6851 3.1: COPY / MOVE SP sequence-set SP mailbox.
    pub(super) fn copy_move(&mut self, is_move: bool, uid: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        let mailbox = self.sp_mailbox()?;
        Ok(if is_move {
            CommandBody::Move { set, mailbox, uid }
        } else {
            CommandBody::Copy { set, mailbox, uid }
        })
    }

    // RFC 9051 6.4.6 with RFC 7162 3.1.3:
    // STORE SP sequence-set [SP "(" UNCHANGEDSINCE SP modseq ")"]
    //       SP ["+" / "-"] "FLAGS" [".SILENT"] SP (flag-list / flag *(SP flag)).
    pub(super) fn store(&mut self, uid: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.eat(b'(') {
            if !self.eat_word("UNCHANGEDSINCE") {
                return Err("Unsupported STORE modifier".into());
            }
            self.sp()?;
            unchanged_since = Some(self.modseq(true)?);
            self.expect(b')', "')' after UNCHANGEDSINCE")?;
            self.sp()?;
        }
        let action = if self.eat(b'+') {
            StoreAction::Add
        } else if self.eat(b'-') {
            StoreAction::Remove
        } else {
            StoreAction::Replace
        };
        let item = self.atom_upper("FLAGS or FLAGS.SILENT")?;
        let silent = match item.as_str() {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err(format!("Unknown STORE item {item}")),
        };
        self.sp()?;
        let flags = self.store_flags()?;
        Ok(CommandBody::Store {
            set,
            uid,
            action,
            silent,
            flags,
            unchanged_since,
        })
    }

    pub(super) fn store_flags(&mut self) -> PResult<Vec<Flag>> {
        let mut flags = Vec::new();
        if self.eat(b'(') {
            if self.eat(b')') {
                return Ok(flags);
            }
            loop {
                let flag = self.flag()?;
                push_item(&mut flags, flag, "flags")?;
                if self.eat(b')') {
                    return Ok(flags);
                }
                self.sp()?;
            }
        }
        loop {
            let flag = self.flag()?;
            push_item(&mut flags, flag, "flags")?;
            if !self.eat(b' ') {
                return Ok(flags);
            }
        }
    }

    /// RFC 9051 9: flag = "\" atom / flag-keyword; only storable flags.
    pub(super) fn flag(&mut self) -> PResult<Flag> {
        let start = self.i;
        self.eat(b'\\');
        if self.take_while(is_atom_char).is_empty() {
            return Err("Expected a flag".into());
        }
        let raw = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        match Flag::parse(&raw) {
            Some(flag) => Ok(flag),
            // RFC 9051 2.3.2: \Recent and unknown system flags can't be set.
            None if raw.eq_ignore_ascii_case("\\Recent") => Err("\\Recent cannot be stored".into()),
            None => Err(format!("{raw} is not a flag that can be stored")),
        }
    }
}
