//! Who may see a message: the one rule every call that names a message by id applies
//! (recall, edit, delete for oneself, reactions, forwards, replies). History, sync and
//! search page through the same rule written as SQL filters; a message the caller may not
//! see is answered exactly like one that does not exist.
//!
//! A user sees a message of
//! - a direct or the system conversation: when it reached the user's inbox after the point
//!   where the user cleared that conversation;
//! - a group: as a member, from its join on (from the group's start when the group shows
//!   its history to newcomers), or, as a former member, what reached its inbox while it was
//!   one; either way after the point where it cleared the group's conversation.
//!
//! and never a message it deleted for itself, nor a revision (revisions are how devices
//! learn of changes, not messages anyone acts on). The app sees every message but revisions.

use crate::model::{ConversationType, MessageType, Sighting};

/// Whether `viewer` may see the message of `sighting`.
pub fn may_see(viewer: &str, sighting: &Sighting) -> bool {
    let message = &sighting.message;
    if message.message_type == MessageType::Revision || sighting.deleted_by_viewer {
        return false;
    }
    let reached_inbox = |cleared_seq: u64| sighting.inbox_seq.is_some_and(|seq| seq > cleared_seq);
    match message.conversation_type {
        ConversationType::Direct => {
            (message.sender_user_id == viewer || message.receiver_id == viewer) && reached_inbox(sighting.cleared_seq)
        }
        ConversationType::System => message.receiver_id == viewer && reached_inbox(sighting.cleared_seq),
        ConversationType::Group => {
            let since_join = sighting
                .member
                .as_ref()
                .is_some_and(|member| sighting.history_visible || sighting.position > member.joined_position);
            // A small group's messages land in the inboxes of its members of the moment.
            (since_join || sighting.inbox_seq.is_some()) && sighting.position > sighting.cleared_position
        }
        ConversationType::Unspecified => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupMember, GroupRole, Message, MessageStatus};

    fn sighting(kind: ConversationType, sender: &str, receiver: &str) -> Sighting {
        Sighting {
            message: Message {
                id: 7,
                client_msg_id: "c".into(),
                sender_user_id: sender.into(),
                sender_device_id: String::new(),
                conversation_type: kind,
                receiver_id: receiver.into(),
                message_type: MessageType::Text,
                body: Default::default(),
                sent_at_ms: 1,
                status: MessageStatus::Normal,
                seq: 0,
                group_seq: 0,
                meta: Default::default(),
                reply_to: None,
                reactions: Vec::new(),
            },
            position: 0,
            inbox_seq: None,
            deleted_by_viewer: false,
            cleared_seq: 0,
            cleared_position: 0,
            history_visible: false,
            member: None,
        }
    }

    fn member(joined_position: u64) -> GroupMember {
        GroupMember {
            user_id: "viewer".into(),
            role: GroupRole::Member,
            nickname: String::new(),
            muted_until_ms: 0,
            joined_group_seq: 0,
            joined_position,
            joined_at_ms: 0,
        }
    }

    /// A direct message from `other` to the viewer, at inbox seq 5.
    fn direct() -> Sighting {
        Sighting { inbox_seq: Some(5), ..sighting(ConversationType::Direct, "other", "viewer") }
    }

    /// A group message at position 10 that the viewer, a member since position 4, got at inbox seq 5.
    fn group() -> Sighting {
        Sighting {
            position: 10,
            inbox_seq: Some(5),
            member: Some(member(4)),
            ..sighting(ConversationType::Group, "other", "g")
        }
    }

    #[test]
    fn each_reason_a_message_is_hidden_hides_it() {
        let revision = |mut s: Sighting| {
            s.message.message_type = MessageType::Revision;
            s
        };
        let cases: Vec<(&str, Sighting, bool)> = vec![
            ("a direct message to the viewer", direct(), true),
            ("one the viewer sent", Sighting { ..sighting(ConversationType::Direct, "viewer", "other") }, false),
            (
                "one the viewer sent, in its inbox",
                Sighting { inbox_seq: Some(5), ..sighting(ConversationType::Direct, "viewer", "other") },
                true,
            ),
            (
                "a note to self",
                Sighting { inbox_seq: Some(1), ..sighting(ConversationType::Direct, "viewer", "viewer") },
                true,
            ),
            (
                "between two others (even if an inbox row were found)",
                Sighting { inbox_seq: Some(5), ..sighting(ConversationType::Direct, "a", "b") },
                false,
            ),
            ("a direct message cleared", Sighting { cleared_seq: 5, ..direct() }, false),
            ("a direct message after the clear point", Sighting { cleared_seq: 4, ..direct() }, true),
            ("a direct message deleted for the viewer", Sighting { deleted_by_viewer: true, ..direct() }, false),
            ("a revision", revision(direct()), false),
            (
                "the viewer's system notice",
                Sighting { inbox_seq: Some(2), ..sighting(ConversationType::System, "", "viewer") },
                true,
            ),
            (
                "another user's system notice",
                Sighting { inbox_seq: Some(2), ..sighting(ConversationType::System, "", "other") },
                false,
            ),
            (
                "a system notice cleared",
                Sighting { inbox_seq: Some(2), cleared_seq: 2, ..sighting(ConversationType::System, "", "viewer") },
                false,
            ),
            ("a group message since the join", group(), true),
            ("a large group's message since the join (no inbox row)", Sighting { inbox_seq: None, ..group() }, true),
            ("before the join", Sighting { position: 4, inbox_seq: None, ..group() }, false),
            (
                "before the join, in a group that shows its history",
                Sighting { position: 4, inbox_seq: None, history_visible: true, ..group() },
                true,
            ),
            ("not a member", Sighting { member: None, inbox_seq: None, ..group() }, false),
            ("a former member's, in its inbox", Sighting { member: None, ..group() }, true),
            (
                "a former member's, in its inbox from before a new join",
                Sighting { member: Some(member(20)), ..group() },
                true,
            ),
            ("a group message cleared", Sighting { cleared_position: 10, ..group() }, false),
            ("a former member's, cleared", Sighting { member: None, cleared_position: 12, ..group() }, false),
            ("a group message deleted for the viewer", Sighting { deleted_by_viewer: true, ..group() }, false),
            ("a group revision", revision(group()), false),
            (
                "no conversation type",
                Sighting { inbox_seq: Some(1), ..sighting(ConversationType::Unspecified, "viewer", "viewer") },
                false,
            ),
        ];
        for (case, sighting, visible) in cases {
            assert_eq!(may_see("viewer", &sighting), visible, "{case}");
        }
    }
}
