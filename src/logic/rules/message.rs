//! Who may send what where, decided over what the store read under a batch's locks
//! (`SendState`), so that the answer holds at commit: a member removed, muted or blocked
//! a moment before cannot slip a message in. Pure, and tested without a database.

use crate::model::{GroupRole, NewMessage, SendState};

/// Why a message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRefusal {
    #[error("group {0} does not exist")]
    NoGroup(String),
    #[error("group {0} has been dismissed")]
    Dismissed(String),
    #[error("user {0} is not a member of the group")]
    NotMember(String),
    #[error("you are muted in this group until {0} (ms since the epoch)")]
    Muted(i64),
    #[error("the group is muted: only the owner and admins may speak")]
    MutedAll,
    /// The receiver blocked the sender; the sender is not told more.
    #[error("this user does not accept your messages")]
    Blocked,
    #[error("this app allows messages between friends only")]
    FriendsOnly,
}

/// What the app asks of one-to-one messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendRules {
    /// One-to-one messages between friends only (`AppSettings::friendship_required`).
    pub friends_only: bool,
}

/// May `message` be written, as its conversation stands?
pub fn may_send(message: &NewMessage, state: &SendState<'_>, rules: SendRules) -> Result<(), SendRefusal> {
    match *state {
        SendState::Unchecked => Ok(()),
        SendState::Direct { blocked: true, .. } => Err(SendRefusal::Blocked),
        SendState::Direct { friends: false, .. } if rules.friends_only => Err(SendRefusal::FriendsOnly),
        SendState::Direct { .. } => Ok(()),
        SendState::Group { group: None, .. } => Err(SendRefusal::NoGroup(message.receiver_id.clone())),
        // Announcements (no user sender) tell even of the dismissal itself.
        SendState::Group { .. } if message.sender_user_id.is_empty() => Ok(()),
        SendState::Group { group: Some(group), .. } if group.dismissed => {
            Err(SendRefusal::Dismissed(group.group_id.clone()))
        }
        SendState::Group { sender: None, .. } => Err(SendRefusal::NotMember(message.sender_user_id.clone())),
        SendState::Group { group: Some(group), sender: Some(member) } => {
            let speaker = matches!(member.role, GroupRole::Owner | GroupRole::Admin);
            if member.muted_until_ms > message.sent_at_ms && !speaker {
                return Err(SendRefusal::Muted(member.muted_until_ms));
            }
            if group.muted_all && !speaker {
                return Err(SendRefusal::MutedAll);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConversationType, Group, GroupMember, JoinPolicy, Recipient};

    fn message(sender: &str, kind: ConversationType) -> NewMessage {
        NewMessage {
            id: 1,
            client_msg_id: "c".into(),
            sender_user_id: sender.into(),
            sender_device_id: String::new(),
            conversation_type: kind,
            receiver_id: "g".into(),
            body: Default::default(),
            sent_at_ms: 100,
            meta: Default::default(),
            reply_to: None,
            recipients: Vec::<Recipient>::new(),
        }
    }

    fn group(muted_all: bool, dismissed: bool) -> Group {
        Group {
            group_id: "g".into(),
            name: "g".into(),
            avatar_url: String::new(),
            introduction: String::new(),
            extra: String::new(),
            owner_id: "own".into(),
            join_policy: JoinPolicy::Free,
            muted_all,
            history_visible: false,
            member_count: 2,
            large: false,
            seq: 0,
            position: 0,
            dismissed,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn member(role: GroupRole, muted_until_ms: i64) -> GroupMember {
        GroupMember {
            user_id: "ann".into(),
            role,
            nickname: String::new(),
            muted_until_ms,
            joined_group_seq: 0,
            joined_position: 0,
            joined_at_ms: 0,
        }
    }

    #[test]
    fn one_to_one_messages_follow_blocks_and_the_apps_friendship_rule() {
        let direct = message("ann", ConversationType::Direct);
        let open = SendRules { friends_only: false };
        let closed = SendRules { friends_only: true };
        let stranger = SendState::Direct { friends: false, blocked: false };
        let friend = SendState::Direct { friends: true, blocked: false };
        let blocked = SendState::Direct { friends: true, blocked: true };
        assert_eq!(may_send(&direct, &stranger, open), Ok(()));
        assert_eq!(may_send(&direct, &stranger, closed), Err(SendRefusal::FriendsOnly));
        assert_eq!(may_send(&direct, &friend, closed), Ok(()));
        assert_eq!(may_send(&direct, &blocked, open), Err(SendRefusal::Blocked), "a block wins over friendship");
        assert_eq!(may_send(&direct, &SendState::Unchecked, closed), Ok(()), "the system, or a note to oneself");
    }

    #[test]
    fn group_messages_need_a_live_group_a_member_and_a_voice() {
        let sent = message("ann", ConversationType::Group);
        let (live, quiet, gone) = (group(false, false), group(true, false), group(false, true));
        let (plain, admin, muted) =
            (member(GroupRole::Member, 0), member(GroupRole::Admin, 0), member(GroupRole::Member, 101));
        let check = |group: Option<&Group>, sender: Option<&GroupMember>| {
            may_send(&sent, &SendState::Group { group, sender }, SendRules::default())
        };
        assert_eq!(check(Some(&live), Some(&plain)), Ok(()));
        assert_eq!(check(None, Some(&plain)), Err(SendRefusal::NoGroup("g".into())));
        assert_eq!(check(Some(&gone), Some(&plain)), Err(SendRefusal::Dismissed("g".into())));
        assert_eq!(check(Some(&live), None), Err(SendRefusal::NotMember("ann".into())));
        assert_eq!(check(Some(&live), Some(&muted)), Err(SendRefusal::Muted(101)));
        assert_eq!(check(Some(&quiet), Some(&plain)), Err(SendRefusal::MutedAll));
        assert_eq!(check(Some(&quiet), Some(&admin)), Ok(()), "admins speak");
        let announcement = message("", ConversationType::Group);
        let dismissal = SendState::Group { group: Some(&gone), sender: None };
        assert_eq!(may_send(&announcement, &dismissal, SendRules::default()), Ok(()), "announcements always go");
    }

    #[test]
    fn the_whole_group_matrix_matches_the_rules_as_written() {
        // Expected outcomes written out from the documented rules, in their order:
        // the group must exist and be live, the sender a member, and a muted member
        // (alone or by mute-all) must be an owner or admin to speak.
        let sent = message("ann", ConversationType::Group);
        let mut checked = 0;
        for exists in [false, true] {
            for dismissed in [false, true] {
                for muted_all in [false, true] {
                    for role in [None, Some(GroupRole::Member), Some(GroupRole::Admin), Some(GroupRole::Owner)] {
                        // Not muted, muted until after the send, muted until before it.
                        for muted_until_ms in [0, 101, 99] {
                            let group = group(muted_all, dismissed);
                            let sender = role.map(|role| member(role, muted_until_ms));
                            let state = SendState::Group { group: exists.then_some(&group), sender: sender.as_ref() };
                            let speaker = matches!(role, Some(GroupRole::Owner | GroupRole::Admin));
                            let expected = if !exists {
                                Err(SendRefusal::NoGroup("g".into()))
                            } else if dismissed {
                                Err(SendRefusal::Dismissed("g".into()))
                            } else if role.is_none() {
                                Err(SendRefusal::NotMember("ann".into()))
                            } else if muted_until_ms == 101 && !speaker {
                                Err(SendRefusal::Muted(101))
                            } else if muted_all && !speaker {
                                Err(SendRefusal::MutedAll)
                            } else {
                                Ok(())
                            };
                            let case = format!(
                                "exists {exists}, dismissed {dismissed}, muted_all {muted_all}, {role:?}, muted until {muted_until_ms}"
                            );
                            assert_eq!(may_send(&sent, &state, SendRules::default()), expected, "{case}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 96);
    }

    #[test]
    fn the_whole_direct_matrix_matches_the_rules_as_written() {
        let sent = message("ann", ConversationType::Direct);
        for friends_only in [false, true] {
            for friends in [false, true] {
                for blocked in [false, true] {
                    let expected = if blocked {
                        Err(SendRefusal::Blocked)
                    } else if friends_only && !friends {
                        Err(SendRefusal::FriendsOnly)
                    } else {
                        Ok(())
                    };
                    let state = SendState::Direct { friends, blocked };
                    let case = format!("friends_only {friends_only}, friends {friends}, blocked {blocked}");
                    assert_eq!(may_send(&sent, &state, SendRules { friends_only }), expected, "{case}");
                }
            }
        }
    }
}
