//! NOTIFY (RFC 5465): which mailboxes a session hears about, and which
//! of their events.

use super::parser::{PResult, Parser, MAX_LIST_ITEMS};

/// `NOTIFY NONE` or `NOTIFY SET [STATUS] event-groups` (RFC 5465 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyCommand {
    None,
    Set {
        /// Send the STATUS of every watched mailbox now.
        status: bool,
        groups: Vec<EventGroup>,
    },
}

/// One `(filter events)` group; no events is `NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGroup {
    pub filter: Filter,
    pub events: Vec<Event>,
}

/// RFC 5465 6: the mailboxes a group is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    /// The mailboxes and all below them (names as the client wrote them).
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

impl Filter {
    pub fn is_selected(&self) -> bool {
        matches!(self, Filter::Selected | Filter::SelectedDelayed)
    }
}

/// RFC 5465 5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// With the FETCH attributes asked for (their names as written).
    MessageNew(Vec<String>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
    /// An event this server does not know, by name.
    Other(String),
}

impl Event {
    pub fn name(&self) -> &str {
        match self {
            Event::MessageNew(_) => "MessageNew",
            Event::MessageExpunge => "MessageExpunge",
            Event::FlagChange => "FlagChange",
            Event::AnnotationChange => "AnnotationChange",
            Event::MailboxName => "MailboxName",
            Event::SubscriptionChange => "SubscriptionChange",
            Event::MailboxMetadataChange => "MailboxMetadataChange",
            Event::ServerMetadataChange => "ServerMetadataChange",
            Event::Other(n) => n,
        }
    }
}

impl Parser<'_> {
    // RFC 5465 8: notify = "NOTIFY" SP (notify-set / notify-none).
    pub(super) fn notify(&mut self) -> PResult<NotifyCommand> {
        self.sp()?;
        if self.eat_word("NONE") {
            return Ok(NotifyCommand::None);
        }
        if !self.eat_word("SET") {
            return Err("Expected SET or NONE".into());
        }
        let status = self.eat_word(" STATUS");
        let mut groups = Vec::new();
        loop {
            self.sp()?;
            if groups.len() == MAX_LIST_ITEMS {
                return Err(format!("Too many event groups (at most {MAX_LIST_ITEMS})"));
            }
            groups.push(self.event_group()?);
            if self.at_end() {
                return Ok(NotifyCommand::Set { status, groups });
            }
        }
    }

    // event-group = "(" filter-mailboxes SP events ")".
    fn event_group(&mut self) -> PResult<EventGroup> {
        self.expect(b'(', "'(' before an event group")?;
        let name = self.atom_upper("a mailbox filter")?;
        let filter = match name.as_str() {
            "SELECTED" => Filter::Selected,
            "SELECTED-DELAYED" => Filter::SelectedDelayed,
            "INBOXES" => Filter::Inboxes,
            "PERSONAL" => Filter::Personal,
            "SUBSCRIBED" => Filter::Subscribed,
            "SUBTREE" => Filter::Subtree(self.one_or_more_mailbox()?),
            "MAILBOXES" => Filter::Mailboxes(self.one_or_more_mailbox()?),
            other => return Err(format!("Unknown mailbox filter {other}")),
        };
        self.sp()?;
        let mut events = Vec::new();
        if !self.eat_word("NONE") {
            self.expect(b'(', "'(' before the events")?;
            loop {
                if events.len() == MAX_LIST_ITEMS {
                    return Err(format!("Too many events (at most {MAX_LIST_ITEMS})"));
                }
                events.push(self.event()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        self.expect(b')', "')' after an event group")?;
        Ok(EventGroup { filter, events })
    }

    // one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")".
    fn one_or_more_mailbox(&mut self) -> PResult<Vec<String>> {
        self.sp()?;
        if !self.eat(b'(') {
            return Ok(vec![self.mailbox()?]);
        }
        let mut out = Vec::new();
        loop {
            if out.len() == MAX_LIST_ITEMS {
                return Err(format!("Too many mailboxes (at most {MAX_LIST_ITEMS})"));
            }
            out.push(self.mailbox()?);
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }

    fn event(&mut self) -> PResult<Event> {
        let name = self.atom_upper("an event")?;
        Ok(match name.as_str() {
            "MESSAGENEW" => {
                let mut atts = Vec::new();
                if self.peek() == Some(b' ') && self.s.get(self.i + 1) == Some(&b'(') {
                    self.i += 2;
                    loop {
                        if atts.len() == MAX_LIST_ITEMS {
                            return Err(format!(
                                "Too many FETCH attributes (at most {MAX_LIST_ITEMS})"
                            ));
                        }
                        atts.push(self.atom_upper("a FETCH attribute")?);
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                }
                Event::MessageNew(atts)
            }
            "MESSAGEEXPUNGE" => Event::MessageExpunge,
            "FLAGCHANGE" => Event::FlagChange,
            "ANNOTATIONCHANGE" => Event::AnnotationChange,
            "MAILBOXNAME" => Event::MailboxName,
            "SUBSCRIPTIONCHANGE" => Event::SubscriptionChange,
            "MAILBOXMETADATACHANGE" => Event::MailboxMetadataChange,
            "SERVERMETADATACHANGE" => Event::ServerMetadataChange,
            _ => Event::Other(name),
        })
    }
}

/// RFC 5465 5: a group's message events must come as a set: FlagChange
/// or AnnotationChange only with MessageNew and MessageExpunge, and each
/// of those two only with the other.
pub fn check_group(group: &EventGroup) -> Result<(), String> {
    let has = |f: fn(&Event) -> bool| group.events.iter().any(f);
    let new = has(|e| matches!(e, Event::MessageNew(_)));
    let expunge = has(|e| matches!(e, Event::MessageExpunge));
    let flags = has(|e| matches!(e, Event::FlagChange | Event::AnnotationChange));
    if new != expunge || (flags && !new) {
        return Err("MessageNew and MessageExpunge go together, and FlagChange needs both".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::CommandBody;
    use crate::imap::parse_command;

    fn notify(line: &str) -> NotifyCommand {
        match parse_command(line.as_bytes()).unwrap().body {
            CommandBody::Notify(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn notify_forms() {
        assert_eq!(notify("a NOTIFY NONE"), NotifyCommand::None);
        assert_eq!(
            notify("a NOTIFY SET STATUS (selected (MessageNew MessageExpunge FlagChange)) (subtree (Lists \"Work\") (MessageNew MessageExpunge)) (personal (MailboxName SubscriptionChange))"),
            NotifyCommand::Set {
                status: true,
                groups: vec![
                    EventGroup {
                        filter: Filter::Selected,
                        events: vec![Event::MessageNew(vec![]), Event::MessageExpunge, Event::FlagChange],
                    },
                    EventGroup {
                        filter: Filter::Subtree(vec!["Lists".into(), "Work".into()]),
                        events: vec![Event::MessageNew(vec![]), Event::MessageExpunge],
                    },
                    EventGroup {
                        filter: Filter::Personal,
                        events: vec![Event::MailboxName, Event::SubscriptionChange],
                    },
                ],
            }
        );
        assert_eq!(
            notify("a NOTIFY SET (inboxes NONE) (mailboxes INBOX (MessageNew (UID FLAGS) MessageExpunge))"),
            NotifyCommand::Set {
                status: false,
                groups: vec![
                    EventGroup {
                        filter: Filter::Inboxes,
                        events: vec![],
                    },
                    EventGroup {
                        filter: Filter::Mailboxes(vec!["INBOX".into()]),
                        events: vec![
                            Event::MessageNew(vec!["UID".into(), "FLAGS".into()]),
                            Event::MessageExpunge
                        ],
                    },
                ],
            }
        );
        let bad = |line: &str| parse_command(line.as_bytes()).unwrap_err().message;
        assert_eq!(bad("a NOTIFY SET"), "Expected a space");
        assert_eq!(
            bad("a NOTIFY SET (everything NONE)"),
            "Unknown mailbox filter EVERYTHING"
        );
        assert_eq!(bad("a NOTIFY MAYBE"), "Expected SET or NONE");
    }

    #[test]
    fn message_events_come_as_a_set() {
        let group = |events| EventGroup {
            filter: Filter::Personal,
            events,
        };
        assert!(check_group(&group(vec![
            Event::MessageNew(vec![]),
            Event::MessageExpunge
        ]))
        .is_ok());
        assert!(check_group(&group(vec![Event::MessageNew(vec![])])).is_err());
        assert!(check_group(&group(vec![Event::FlagChange])).is_err());
        assert!(check_group(&group(vec![Event::MailboxName])).is_ok());
    }
}
