//! When a friend request goes through, decided over what the store read under the
//! sender's lock. Pure, and tested without a database.

use crate::store::{FriendRefusal, RequestEffect, RequestState};

/// Limits on friend requests, from `[social]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RequestRules {
    /// Requests a user may have waiting for an answer.
    pub max_pending: u64,
    /// After a user turns a request down, its sender waits this long to ask again.
    pub cooldown_ms: i64,
}

/// Decides a request made at `now_ms`: befriend a user who asked first, ask, or repeat
/// nothing for a request still waiting; refuse one to a friend, one inside the cool-down
/// of a refusal, and one past the sender's limit of waiting requests.
pub(super) fn decide_request(
    state: &RequestState,
    rules: RequestRules,
    now_ms: i64,
) -> Result<RequestEffect, FriendRefusal> {
    if state.friends {
        return Err(FriendRefusal::AlreadyFriends);
    }
    if state.asked_first {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FriendRequest;

    const RULES: RequestRules = RequestRules { max_pending: 3, cooldown_ms: 1000 };

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
        RequestState { friends: false, asked_first: false, earlier, pending }
    }

    #[test]
    fn a_request_is_asked_once_repeated_silently_and_asked_again_once_it_lapses() {
        assert_eq!(decide_request(&state(None, 0), RULES, 100), Ok(RequestEffect::Ask));
        assert_eq!(decide_request(&state(earlier(500, 0), 0), RULES, 100), Ok(RequestEffect::Repeat));
        assert_eq!(decide_request(&state(earlier(500, 0), 0), RULES, 600), Ok(RequestEffect::Ask), "lapsed");
    }

    #[test]
    fn a_refusal_holds_the_sender_off_for_the_cool_down() {
        let refused = state(earlier(10_000, 200), 0);
        assert_eq!(
            decide_request(&refused, RULES, 1199),
            Err(FriendRefusal::CoolingDown { user: "bob".into(), until_ms: 1200 })
        );
        assert_eq!(decide_request(&refused, RULES, 1200), Ok(RequestEffect::Ask));
    }

    #[test]
    fn waiting_requests_are_capped_and_friends_or_a_first_asker_come_first() {
        assert_eq!(decide_request(&state(None, 3), RULES, 0), Err(FriendRefusal::TooManyPending(3)));
        assert_eq!(decide_request(&state(earlier(500, 0), 3), RULES, 0), Ok(RequestEffect::Repeat));
        let asked = RequestState { asked_first: true, ..state(None, 3) };
        assert_eq!(decide_request(&asked, RULES, 0), Ok(RequestEffect::Befriend));
        let friends = RequestState { friends: true, asked_first: true, ..state(None, 0) };
        assert_eq!(decide_request(&friends, RULES, 0), Err(FriendRefusal::AlreadyFriends));
    }
}
