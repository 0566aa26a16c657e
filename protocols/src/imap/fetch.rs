//! FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9, with RFC 7162 3.1.4.1
//! CHANGEDSINCE and 3.2.6 VANISHED): the attributes a FETCH asks for and
//! the command's parser.

use super::command::*;
use super::parser::{push_item, PResult, Parser, MAX_SECTION_PARTS};
use super::types::is_atom_char;

/// The attributes a FETCH asks for, macros already expanded.
pub type FetchItems = Vec<FetchAttr>;

/// RFC 9051 6.4.5 fetch-att.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Flags,
    Uid,
    Rfc822Size,
    InternalDate,
    Envelope,
    BodyStructure,
    /// `BODY` without a section: the non-extensible BODYSTRUCTURE.
    Body,
    /// RFC 7162 3.1.4.
    ModSeq,
    /// RFC 8514 4.3: when the message was saved in this mailbox.
    SaveDate,
    /// RFC 8474 5.1: the message's identifier, kept across moves.
    EmailId,
    /// RFC 8970: the preview text; `lazy` allows NIL while it is not made.
    Preview {
        lazy: bool,
    },
    /// RFC 8474 5.2: the identifier of the message's thread.
    ThreadId,
    /// IMAP4rev1 `RFC822`, like `BODY[]` but sets \Seen.
    Rfc822,
    /// IMAP4rev1 `RFC822.HEADER`, like `BODY.PEEK[HEADER]`.
    Rfc822Header,
    /// IMAP4rev1 `RFC822.TEXT`, like `BODY[TEXT]`.
    Rfc822Text,
    BodySection {
        peek: bool,
        section: Section,
        /// `<origin.length>`.
        partial: Option<(u32, u32)>,
    },
    /// RFC 9051 6.4.5 / RFC 3516: `BINARY[part]<partial>`, decoded content.
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY.SIZE[part]`.
    BinarySize {
        part: Vec<u32>,
    },
}

/// RFC 9051 9 section-spec: an empty `part` is the whole message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names as sent; they compare case-insensitively.
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// Only after a part number.
    Mime,
}

impl Section {
    /// The section as it is echoed in a FETCH response (`HEADER.FIELDS
    /// (FROM SUBJECT)`, `1.2.MIME`), without the brackets.
    pub fn to_wire(&self) -> String {
        let mut out = self
            .part
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".");
        let text = match &self.text {
            None => return out,
            Some(SectionText::Header) => "HEADER".to_string(),
            Some(SectionText::Text) => "TEXT".to_string(),
            Some(SectionText::Mime) => "MIME".to_string(),
            Some(SectionText::HeaderFields(f)) => format!("HEADER.FIELDS ({})", header_list(f)),
            Some(SectionText::HeaderFieldsNot(f)) => {
                format!("HEADER.FIELDS.NOT ({})", header_list(f))
            }
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&text);
        out
    }
}

/// Field names as atoms where they can be, else quoted (RFC 9051 9
/// header-fld-name = astring); CR and LF cannot survive a quoted string, so
/// they become spaces.
fn header_list(fields: &[String]) -> String {
    let names: Vec<String> = fields
        .iter()
        .map(|f| {
            if !f.is_empty() && f.bytes().all(|b| is_atom_char(b) || b == b']') {
                return f.clone();
            }
            let mut q = String::with_capacity(f.len() + 2);
            q.push('"');
            for c in f.chars() {
                match c {
                    '"' | '\\' => {
                        q.push('\\');
                        q.push(c);
                    }
                    '\r' | '\n' => q.push(' '),
                    _ => q.push(c),
                }
            }
            q.push('"');
            q
        })
        .collect();
    names.join(" ")
}

impl Parser<'_> {
    // RFC 9051 6.4.5 with RFC 7162 3.1.4.1:
    // FETCH SP sequence-set SP (macro / fetch-att / "(" fetch-att *(SP fetch-att) ")")
    //       [SP "(" CHANGEDSINCE SP modseq ")"], and RFC 9394 3.2's
    //       PARTIAL modifier.
    pub(super) fn fetch(&mut self, uid: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let items = self.fetch_items()?;
        let mut changed_since = None;
        let mut vanished = false;
        let mut partial = None;
        if self.eat(b' ') {
            self.expect(b'(', "'(' before FETCH modifiers")?;
            loop {
                let modifier = self.atom_upper("a FETCH modifier")?;
                match modifier.as_str() {
                    "CHANGEDSINCE" if changed_since.is_none() => {
                        self.sp()?;
                        changed_since = Some(self.modseq(false)?);
                    }
                    // RFC 7162 3.2.6: only with UID FETCH and CHANGEDSINCE.
                    "VANISHED" if uid && !vanished => vanished = true,
                    // RFC 9394 3.2: one page of the messages the set names.
                    "PARTIAL" if partial.is_none() => {
                        self.sp()?;
                        partial = Some(self.partial_range()?);
                    }
                    _ => return Err(format!("Unsupported FETCH modifier {modifier}")),
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            if vanished && changed_since.is_none() {
                return Err("VANISHED needs CHANGEDSINCE".into());
            }
        }
        Ok(CommandBody::Fetch {
            set,
            items,
            uid,
            changed_since,
            vanished,
            partial,
        })
    }

    pub(super) fn fetch_items(&mut self) -> PResult<FetchItems> {
        if self.eat(b'(') {
            let mut items = Vec::new();
            loop {
                let item = self.fetch_att()?;
                push_item(&mut items, item, "FETCH items")?;
                if self.eat(b')') {
                    return Ok(items);
                }
                self.sp()?;
            }
        }
        // RFC 9051 6.4.5: the macros, only outside a list.
        let save = self.i;
        let fast = [
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
        ];
        match self.fetch_att_name().as_str() {
            "FAST" => Ok(fast.to_vec()),
            "ALL" => Ok([fast.as_slice(), &[FetchAttr::Envelope]].concat()),
            "FULL" => Ok([fast.as_slice(), &[FetchAttr::Envelope, FetchAttr::Body]].concat()),
            _ => {
                self.i = save;
                Ok(vec![self.fetch_att()?])
            }
        }
    }

    pub(super) fn fetch_att_name(&mut self) -> String {
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
        String::from_utf8_lossy(name).to_ascii_uppercase()
    }

    pub(super) fn fetch_att(&mut self) -> PResult<FetchAttr> {
        let name = self.fetch_att_name();
        Ok(match name.as_str() {
            "FLAGS" => FetchAttr::Flags,
            "UID" => FetchAttr::Uid,
            "RFC822.SIZE" => FetchAttr::Rfc822Size,
            "INTERNALDATE" => FetchAttr::InternalDate,
            "ENVELOPE" => FetchAttr::Envelope,
            "BODYSTRUCTURE" => FetchAttr::BodyStructure,
            "MODSEQ" => FetchAttr::ModSeq,
            "SAVEDATE" => FetchAttr::SaveDate,
            "EMAILID" => FetchAttr::EmailId,
            // RFC 8970 6: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"].
            "PREVIEW" => {
                let mut lazy = false;
                if self.s[self.i..].starts_with(b" (") {
                    self.i += 2;
                    loop {
                        match self.atom_upper("a preview modifier")?.as_str() {
                            "LAZY" => lazy = true,
                            m => return Err(format!("Unknown preview modifier {m}")),
                        }
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                }
                FetchAttr::Preview { lazy }
            }
            "THREADID" => FetchAttr::ThreadId,
            "RFC822" => FetchAttr::Rfc822,
            "RFC822.HEADER" => FetchAttr::Rfc822Header,
            "RFC822.TEXT" => FetchAttr::Rfc822Text,
            "BODY" if self.peek() != Some(b'[') => FetchAttr::Body,
            "BODY" | "BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchAttr::BodySection {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            "BINARY" | "BINARY.PEEK" => {
                let part = self.section_binary()?;
                let partial = self.partial()?;
                FetchAttr::Binary {
                    peek: name == "BINARY.PEEK",
                    part,
                    partial,
                }
            }
            "BINARY.SIZE" => FetchAttr::BinarySize {
                part: self.section_binary()?,
            },
            "" => return Err("Expected a FETCH attribute".into()),
            _ => return Err(format!("Unknown FETCH attribute {name}")),
        })
    }

    // RFC 9051 9: section = "[" [section-spec] "]".
    pub(super) fn section(&mut self) -> PResult<Section> {
        self.expect(b'[', "'['")?;
        let mut section = Section::default();
        if self.eat(b']') {
            return Ok(section);
        }
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            section.part = self.section_part()?;
            if self.eat(b']') {
                return Ok(section);
            }
            self.expect(b'.', "'.' or ']' after section part")?;
        }
        let text = self.fetch_att_name();
        section.text = Some(match text.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !section.part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" => SectionText::HeaderFields(self.header_list()?),
            "HEADER.FIELDS.NOT" => SectionText::HeaderFieldsNot(self.header_list()?),
            _ => return Err("Invalid section specifier".into()),
        });
        self.expect(b']', "']' after section")?;
        Ok(section)
    }

    // RFC 9051 9: section-part = nz-number *("." nz-number); a trailing
    // ".TEXT" etc. is left for the caller.
    pub(super) fn section_part(&mut self) -> PResult<Vec<u32>> {
        let mut part = vec![self.nz_number()?];
        while self.peek() == Some(b'.') && self.s.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            if part.len() == MAX_SECTION_PARTS {
                return Err(format!(
                    "Section part too deep (at most {MAX_SECTION_PARTS} numbers)"
                ));
            }
            self.i += 1;
            part.push(self.nz_number()?);
        }
        Ok(part)
    }

    // RFC 9051 9: section-binary = "[" [section-part] "]".
    pub(super) fn section_binary(&mut self) -> PResult<Vec<u32>> {
        self.expect(b'[', "'['")?;
        if self.eat(b']') {
            return Ok(Vec::new());
        }
        let part = self.section_part()?;
        self.expect(b']', "']' after binary section")?;
        Ok(part)
    }

    // RFC 9051 9: header-list = "(" header-fld-name *(SP header-fld-name) ")".
    pub(super) fn header_list(&mut self) -> PResult<Vec<String>> {
        self.sp()?;
        self.expect(b'(', "'(' before header field names")?;
        let mut fields = Vec::new();
        loop {
            let field = self.astring()?;
            push_item(&mut fields, field, "header field names")?;
            if self.eat(b')') {
                return Ok(fields);
            }
            self.sp()?;
        }
    }

    // RFC 9051 9: partial = "<" number64 "." nz-number64 ">".
    pub(super) fn partial(&mut self) -> PResult<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let origin = self.number()?;
        self.expect(b'.', "'.' in partial range")?;
        let length = self.nz_number()?;
        self.expect(b'>', "'>' after partial range")?;
        Ok(Some((origin, length)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_wire_form() {
        let s = Section {
            part: vec![1, 2],
            text: Some(SectionText::Mime),
        };
        assert_eq!(s.to_wire(), "1.2.MIME");
        let s = Section {
            part: vec![],
            text: Some(SectionText::HeaderFields(vec![
                "From".into(),
                "Subject".into(),
            ])),
        };
        assert_eq!(s.to_wire(), "HEADER.FIELDS (From Subject)");
        let s = Section {
            part: vec![],
            text: Some(SectionText::HeaderFieldsNot(vec![
                "a b".into(),
                "q\"\r\n".into(),
                "".into(),
            ])),
        };
        assert_eq!(s.to_wire(), "HEADER.FIELDS.NOT (\"a b\" \"q\\\"  \" \"\")");
        assert_eq!(Section::default().to_wire(), "");
        let s = Section {
            part: vec![3],
            text: None,
        };
        assert_eq!(s.to_wire(), "3");
    }
}
