//! When friend requests go through and friendships are made, decided over what the store
//! read in the transaction that acts on the answer. Pure, and tested without a database.

use std::collections::HashMap;

use crate::model::{AnswerState, PairsState, RequestEffect, RequestState};

/// Why a friendship change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FriendRefusal {
    #[error("you are friends already")]
    AlreadyFriends,
    /// The other user blocked the sender; the sender is not told more.
    #[error("this user does not accept your friend requests")]
    Blocked,
    #[error("you blocked {0}: unblock them first")]
    Blocking(String),
    #[error("{0} has reached the limit of {1} friends")]
    TooManyFriends(String, u64),
    #[error("no pending friend request from {0}")]
    NoRequest(String),
    #[error("users do not exist: {0}")]
    UnknownUsers(String),
    #[error("{user} turned down your last request: you may ask again after {until_ms} (ms since the epoch)")]
    CoolingDown { user: String, until_ms: i64 },
    #[error(
        "you have {0} friend requests waiting for an answer: wait for some, or withdraw them by asking again later"
    )]
    TooManyPending(u64),
}

/// Limits on friends and friend requests, from `[social]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRules {
    /// Requests a user may have waiting for an answer.
    pub max_pending: u64,
    /// After a user turns a request down, its sender waits this long to ask again.
    pub cooldown_ms: i64,
    /// Friends a user may have.
    pub max_friends: u64,
}

/// Two users may become friends unless one has reached the limit.
fn may_befriend(users: [(&str, u64); 2], max_friends: u64) -> Result<(), FriendRefusal> {
    match users.iter().find(|(_, count)| *count >= max_friends) {
        Some((user, _)) => Err(FriendRefusal::TooManyFriends((*user).to_owned(), max_friends)),
        None => Ok(()),
    }
}

/// Decides a request made at `now_ms`: befriend a user who asked first, ask, or repeat
/// nothing for a request still waiting; refuse one to a friend, one inside the cool-down
/// of a refusal, and one past the sender's limit of waiting requests.
pub fn decide_request(
    (from, to): (&str, &str),
    state: &RequestState,
    rules: RequestRules,
    now_ms: i64,
) -> Result<RequestEffect, FriendRefusal> {
    if state.blocked_by_other {
        return Err(FriendRefusal::Blocked);
    }
    if state.blocking_other {
        return Err(FriendRefusal::Blocking(to.to_owned()));
    }
    if state.friends {
        return Err(FriendRefusal::AlreadyFriends);
    }
    if state.asked_first {
        may_befriend([(from, state.friend_counts.0), (to, state.friend_counts.1)], rules.max_friends)?;
        return Ok(RequestEffect::Befriend);
    }
    if let Some(earlier) = &state.earlier {
        if earlier.rejected_at_ms > 0 {
            let until_ms = earlier.rejected_at_ms.saturating_add(rules.cooldown_ms);
            if now_ms < until_ms {
                return Err(FriendRefusal::CoolingDown { user: earlier.to_user_id.clone(), until_ms });
            }
        } else if earlier.expires_at_ms > now_ms {
            return Ok(RequestEffect::Repeat);
        }
    }
    if state.pending >= rules.max_pending {
        return Err(FriendRefusal::TooManyPending(state.pending));
    }
    Ok(RequestEffect::Ask)
}

/// An answer to the live request from `from`: turning it down always goes through;
/// accepting, unless either user has reached the limit of friends.
pub fn decide_answer(
    (user, from): (&str, &str),
    accept: bool,
    state: &AnswerState,
    max_friends: u64,
) -> Result<(), FriendRefusal> {
    if !state.live {
        return Err(FriendRefusal::NoRequest(from.to_owned()));
    }
    if accept {
        may_befriend([(user, state.friend_counts.0), (from, state.friend_counts.1)], max_friends)?;
    }
    Ok(())
}

/// Pairs the app makes friends at once: all users must exist, and nobody may pass the
/// limit of friends once every new friendship of the set is counted.
pub fn decide_pairs(pairs: &[(String, String)], state: &PairsState, max_friends: u64) -> Result<(), FriendRefusal> {
    if !state.unknown_users.is_empty() {
        return Err(FriendRefusal::UnknownUsers(state.unknown_users.join(", ")));
    }
    let mut counts: HashMap<&str, u64> = state.friend_counts.iter().map(|(user, n)| (user.as_str(), *n)).collect();
    let mut made = std::collections::HashSet::new();
    for (a, b) in pairs {
        let pair = if a < b { (a.as_str(), b.as_str()) } else { (b.as_str(), a.as_str()) };
        let already = state.friends_already.contains(&(a.clone(), b.clone()))
            || state.friends_already.contains(&(b.clone(), a.clone()));
        if already || !made.insert(pair) {
            continue;
        }
        for user in [a.as_str(), b.as_str()] {
            let count = counts.entry(user).or_insert(0);
            *count += 1;
            if *count > max_friends {
                return Err(FriendRefusal::TooManyFriends(user.to_owned(), max_friends));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FriendRequest;

    const RULES: RequestRules = RequestRules { max_pending: 3, cooldown_ms: 1000, max_friends: 2 };
    const PAIR: (&str, &str) = ("ann", "bob");

    fn earlier(expires_at_ms: i64, rejected_at_ms: i64) -> Option<FriendRequest> {
        Some(FriendRequest {
            from_user_id: "ann".into(),
            to_user_id: "bob".into(),
            greeting: String::new(),
            created_at_ms: 0,
            expires_at_ms,
            rejected_at_ms,
        })
    }

    fn state(earlier: Option<FriendRequest>, pending: u64) -> RequestState {
        RequestState {
            friends: false,
            blocked_by_other: false,
            blocking_other: false,
            asked_first: false,
            earlier,
            pending,
            friend_counts: (0, 0),
        }
    }

    #[test]
    fn a_request_is_asked_once_repeated_silently_and_asked_again_once_it_lapses() {
        assert_eq!(decide_request(PAIR, &state(None, 0), RULES, 100), Ok(RequestEffect::Ask));
        assert_eq!(decide_request(PAIR, &state(earlier(500, 0), 0), RULES, 100), Ok(RequestEffect::Repeat));
        assert_eq!(decide_request(PAIR, &state(earlier(500, 0), 0), RULES, 600), Ok(RequestEffect::Ask), "lapsed");
    }

    #[test]
    fn a_refusal_holds_the_sender_off_for_the_cool_down() {
        let refused = state(earlier(10_000, 200), 0);
        assert_eq!(
            decide_request(PAIR, &refused, RULES, 1199),
            Err(FriendRefusal::CoolingDown { user: "bob".into(), until_ms: 1200 })
        );
        assert_eq!(decide_request(PAIR, &refused, RULES, 1200), Ok(RequestEffect::Ask));
    }

    #[test]
    fn a_block_either_way_stops_a_request() {
        let blocked = RequestState { blocked_by_other: true, asked_first: true, ..state(None, 0) };
        assert_eq!(decide_request(PAIR, &blocked, RULES, 0), Err(FriendRefusal::Blocked));
        let blocking = RequestState { blocking_other: true, ..state(None, 0) };
        assert_eq!(decide_request(PAIR, &blocking, RULES, 0), Err(FriendRefusal::Blocking("bob".into())));
    }

    #[test]
    fn waiting_requests_are_capped_and_friends_or_a_first_asker_come_first() {
        assert_eq!(decide_request(PAIR, &state(None, 3), RULES, 0), Err(FriendRefusal::TooManyPending(3)));
        assert_eq!(decide_request(PAIR, &state(earlier(500, 0), 3), RULES, 0), Ok(RequestEffect::Repeat));
        let asked = RequestState { asked_first: true, ..state(None, 3) };
        assert_eq!(decide_request(PAIR, &asked, RULES, 0), Ok(RequestEffect::Befriend));
        let friends = RequestState { friends: true, asked_first: true, ..state(None, 0) };
        assert_eq!(decide_request(PAIR, &friends, RULES, 0), Err(FriendRefusal::AlreadyFriends));
    }
}

#[cfg(test)]
mod friendship_tests {
    use super::*;

    #[test]
    fn nobody_passes_the_limit_of_friends_whichever_way_a_friendship_is_made() {
        let asked_first = RequestState {
            friends: false,
            blocked_by_other: false,
            blocking_other: false,
            asked_first: true,
            earlier: None,
            pending: 0,
            friend_counts: (0, 2),
        };
        let rules = RequestRules { max_pending: 10, cooldown_ms: 0, max_friends: 2 };
        assert_eq!(
            decide_request(("ann", "bob"), &asked_first, rules, 0),
            Err(FriendRefusal::TooManyFriends("bob".into(), 2))
        );
        let full = AnswerState { live: true, friend_counts: (2, 0) };
        assert_eq!(decide_answer(("ann", "bob"), true, &full, 2), Err(FriendRefusal::TooManyFriends("ann".into(), 2)));
        assert_eq!(decide_answer(("ann", "bob"), false, &full, 2), Ok(()), "turning down is always possible");
        let lapsed = AnswerState { live: false, friend_counts: (0, 0) };
        assert_eq!(decide_answer(("ann", "bob"), true, &lapsed, 2), Err(FriendRefusal::NoRequest("bob".into())));

        let pairs: Vec<(String, String)> =
            [("a", "b"), ("a", "c"), ("b", "a")].iter().map(|(x, y)| ((*x).into(), (*y).into())).collect();
        let state = PairsState::default();
        assert_eq!(decide_pairs(&pairs, &state, 2), Ok(()), "a pair named twice counts once");
        assert_eq!(decide_pairs(&pairs, &state, 1), Err(FriendRefusal::TooManyFriends("a".into(), 1)));
        let unknown = PairsState { unknown_users: vec!["c".into()], ..PairsState::default() };
        assert_eq!(decide_pairs(&pairs, &unknown, 2), Err(FriendRefusal::UnknownUsers("c".into())));
    }
}
