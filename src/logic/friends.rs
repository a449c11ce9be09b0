//! Friends: requests (with expiry, and a request meeting one the other way making
//! friends at once), the friend list with remarks, blocks, and the friends' presence.
//! Requests and acceptances notify the users concerned (`friend.requested`,
//! `friend.accepted`); a deletion tells the deleter's own devices (`friend.deleted`).

use std::collections::HashMap;

use super::{
    Error, Logic, Result, SharedCaller,
    friend_rules::{RequestRules, decide_request},
    notices::NoticeDraft,
    validate,
};
use crate::{
    model::{AppId, Friend, FriendRequest, User, now_ms},
    route::Route,
    store::{FriendRefusal, FriendRules, RequestNotices, RequestOutcome, RequestState, StoreError},
};

/// A user as seen in a list: the record with its profile (`None` if the user is gone).
pub type WithProfile<T> = (T, Option<User>);

pub(super) fn refusal_error(refusal: FriendRefusal) -> Error {
    let message = refusal.to_string();
    match refusal {
        FriendRefusal::AlreadyFriends => Error::AlreadyExists(message),
        FriendRefusal::TooManyFriends(..) | FriendRefusal::CoolingDown { .. } | FriendRefusal::TooManyPending(_) => {
            Error::ResourceExhausted(message)
        }
        FriendRefusal::NoRequest(_) | FriendRefusal::UnknownUsers(_) => Error::NotFound(message),
    }
}

fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::FriendRefused(refusal) => refusal_error(refusal),
        other => other.into(),
    }
}

impl SharedCaller {
    /// Calls that change the graph wholesale are the app's alone.
    fn require_app(&self) -> Result<()> {
        match self.user() {
            None => Ok(()),
            Some(_) => Err(Error::PermissionDenied(
                "only the app itself may do this (app secret without x-gim-acting-user)".into(),
            )),
        }
    }
}

impl Logic {
    pub(super) fn friend_rules(&self) -> FriendRules {
        FriendRules {
            max_friends: self.inner.social.max_friends,
            backfill_posts: self.inner.social.feed_backfill_posts,
        }
    }

    /// The other user of a one-to-one call: a valid id, not the caller.
    fn other_user<'a>(caller: &str, field: &str, other: &'a str) -> Result<&'a str> {
        validate::id(field, other)?;
        if other == caller {
            return Err(Error::invalid(format!("{field} must be another user")));
        }
        Ok(other)
    }

    async fn with_profiles<T>(
        &self,
        app: AppId,
        items: Vec<T>,
        id: impl Fn(&T) -> &str,
    ) -> Result<Vec<WithProfile<T>>> {
        let ids: Vec<String> = items.iter().map(|item| id(item).to_owned()).collect();
        let mut profiles: HashMap<String, User> = HashMap::new();
        for chunk in ids.chunks(self.limits().max_page_size as usize) {
            for user in self.store().get_users(app, chunk).await? {
                profiles.insert(user.user_id.clone(), user);
            }
        }
        Ok(items
            .into_iter()
            .map(|item| {
                let profile = profiles.get(id(&item)).cloned();
                (item, profile)
            })
            .collect())
    }

    /// Asks `to` to be friends; `true` if `to` had asked first and they are friends now.
    pub async fn send_friend_request(&self, caller: &SharedCaller, to: &str, greeting: &str) -> Result<bool> {
        let user = caller.require_user()?;
        let to = Self::other_user(user, "user_id", to)?;
        validate::text("greeting", greeting, self.inner.social.max_greeting_chars)?;
        self.get_user(caller.app, to).await?;
        let relation = self.store().relation(caller.app, user, to).await?;
        if relation.blocked_by_other {
            // Nothing more: the sender is not told that it is blocked.
            return Err(Error::PermissionDenied("this user does not accept your friend requests".into()));
        }
        if relation.blocking_other {
            return Err(Error::FailedPrecondition(format!("you blocked {to}: unblock them first")));
        }
        if relation.friends {
            return Err(refusal_error(FriendRefusal::AlreadyFriends));
        }
        self.inner.rates.friend_request(caller.app, user)?;
        let now = now_ms();
        let ttl_ms = i64::try_from(self.inner.social.friend_request_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let request = FriendRequest {
            from_user_id: user.to_owned(),
            to_user_id: to.to_owned(),
            greeting: greeting.to_owned(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
            rejected_at_ms: 0,
        };
        let social = &self.inner.social;
        let request_rules = RequestRules {
            max_pending: social.max_pending_friend_requests,
            cooldown_ms: i64::try_from(social.friend_request_cooldown_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        };
        // Where the decision inside the store's transaction leaves its reason to refuse.
        let refusal = std::sync::Mutex::new(None);
        let about = [to.to_owned()];
        let pair = [user.to_owned(), to.to_owned()];
        let rules = self.friend_rules();
        let outcome = self
            .with_notices(|| {
                let requested = NoticeDraft {
                    event: "friend.requested",
                    actor: user,
                    about: &about,
                    detail: greeting_detail(greeting),
                };
                let accepted = NoticeDraft {
                    event: "friend.accepted",
                    actor: user,
                    about: &about,
                    detail: serde_json::Value::Null,
                };
                let notices = RequestNotices {
                    requested: self.notice(&requested, &about),
                    accepted: self.notice(&accepted, &pair),
                };
                let (request, rules, refusal) = (&request, &rules, &refusal);
                async move {
                    let mut decide = |state: &RequestState| {
                        let decision = decide_request(state, request_rules, now);
                        decision.map_err(|refused| *refusal.lock().expect("refusal lock") = Some(refused)).ok()
                    };
                    self.store().send_friend_request(caller.app, request, &notices, rules, &mut decide).await
                }
            })
            .await
            .map_err(store_error)?;
        let (became_friends, notices) = match (outcome, refusal.into_inner().expect("refusal lock")) {
            (Some(RequestOutcome::Requested(notices)), _) => (false, notices),
            (Some(RequestOutcome::BecameFriends(notices)), _) => (true, notices),
            (None, Some(refused)) => return Err(refusal_error(refused)),
            (None, None) => return Err(Error::Internal("a friend request was neither made nor refused".into())),
        };
        self.deliver_notices(caller.app, &notices);
        Ok(became_friends)
    }

    /// Live requests to the caller (`incoming`) or from it, with the other user's profile.
    pub async fn friend_requests(
        &self,
        caller: &SharedCaller,
        incoming: bool,
    ) -> Result<Vec<WithProfile<FriendRequest>>> {
        let user = caller.require_user()?;
        let requests = self.store().friend_requests(caller.app, user, incoming, now_ms()).await?;
        let others: Vec<String> =
            requests.iter().map(|r| if incoming { r.from_user_id.clone() } else { r.to_user_id.clone() }).collect();
        let profiles = self.with_profiles(caller.app, others, String::as_str).await?;
        Ok(requests.into_iter().zip(profiles).map(|(request, (_, profile))| (request, profile)).collect())
    }

    /// Accepts or rejects the live request from `from`.
    pub async fn answer_friend_request(&self, caller: &SharedCaller, from: &str, accept: bool) -> Result<()> {
        let user = caller.require_user()?;
        let from = Self::other_user(user, "user_id", from)?;
        let about = [from.to_owned()];
        let pair = [from.to_owned(), user.to_owned()];
        let rules = self.friend_rules();
        let notices = self
            .with_notices(|| {
                let draft = NoticeDraft {
                    event: "friend.accepted",
                    actor: user,
                    about: &about,
                    detail: serde_json::Value::Null,
                };
                let accepted = accept.then(|| self.notice(&draft, &pair));
                async move {
                    self.store()
                        .answer_friend_request(caller.app, user, from, accepted.as_ref(), &rules, now_ms())
                        .await
                }
            })
            .await
            .map_err(store_error)?;
        self.deliver_notices(caller.app, &notices);
        Ok(())
    }

    pub async fn friends(
        &self,
        caller: &SharedCaller,
        after: &str,
        limit: i32,
    ) -> Result<(Vec<WithProfile<Friend>>, bool)> {
        let user = caller.require_user()?;
        let limit = self.page_limit(limit)?;
        let mut friends = self.store().friends(caller.app, user, after, limit + 1).await?;
        let has_more = friends.len() > limit as usize;
        friends.truncate(limit as usize);
        Ok((self.with_profiles(caller.app, friends, |f| f.friend_id.as_str()).await?, has_more))
    }

    /// Ends the friendship on both sides; the caller's devices get `friend.deleted`.
    pub async fn delete_friend(&self, caller: &SharedCaller, friend: &str) -> Result<()> {
        let user = caller.require_user()?;
        let friend = Self::other_user(user, "user_id", friend)?;
        let pair = [(user.to_owned(), friend.to_owned())];
        let about = [friend.to_owned()];
        let me = [user.to_owned()];
        let (broken, notices) = self
            .with_notices(|| {
                let draft = NoticeDraft {
                    event: "friend.deleted",
                    actor: user,
                    about: &about,
                    detail: serde_json::Value::Null,
                };
                let notice = self.notice(&draft, &me);
                let pair = &pair;
                async move { self.store().break_friends(caller.app, pair, std::slice::from_ref(&notice)).await }
            })
            .await
            .map_err(store_error)?;
        if broken == 0 {
            return Err(Error::not_found(format!("{friend} is not your friend")));
        }
        self.deliver_notices(caller.app, &notices);
        Ok(())
    }

    /// Sets the caller's remark and extra data for a friend (`None` keeps a field).
    pub async fn set_friend_remark(
        &self,
        caller: &SharedCaller,
        friend: &str,
        remark: Option<&str>,
        extra: Option<&str>,
    ) -> Result<WithProfile<Friend>> {
        let user = caller.require_user()?;
        let friend = Self::other_user(user, "user_id", friend)?;
        if let Some(remark) = remark {
            validate::name("remark", remark, self.limits())?;
        }
        if let Some(extra) = extra {
            validate::extra("extra", extra, self.limits())?;
        }
        let updated = self
            .store()
            .update_friend(caller.app, user, friend, remark, extra)
            .await?
            .ok_or_else(|| Error::not_found(format!("{friend} is not your friend")))?;
        Ok(self.with_profiles(caller.app, vec![updated], |f| f.friend_id.as_str()).await?.remove(0))
    }

    /// Blocks a user: it can no longer send the caller requests or messages.
    pub async fn block(&self, caller: &SharedCaller, other: &str) -> Result<()> {
        let user = caller.require_user()?;
        let other = Self::other_user(user, "user_id", other)?;
        self.get_user(caller.app, other).await?;
        self.store().block(caller.app, user, other, now_ms()).await?;
        Ok(())
    }

    pub async fn unblock(&self, caller: &SharedCaller, other: &str) -> Result<()> {
        let user = caller.require_user()?;
        let other = Self::other_user(user, "user_id", other)?;
        self.store().unblock(caller.app, user, other).await?;
        Ok(())
    }

    pub async fn blocked(&self, caller: &SharedCaller) -> Result<Vec<String>> {
        let user = caller.require_user()?;
        Ok(self.store().blocked(caller.app, user).await?)
    }

    /// The presence of some of the caller's friends (anyone's, for the app).
    pub async fn friend_presence(&self, caller: &SharedCaller, users: &[String]) -> Result<Vec<(String, Vec<Route>)>> {
        validate::ids("user_ids", users, self.limits().max_page_size as usize, false)?;
        if let Some(user) = caller.user() {
            let friends = self.store().friends_among(caller.app, user, users).await?;
            if let Some(stranger) = users.iter().find(|other| *other != user && !friends.contains(other)) {
                return Err(Error::PermissionDenied(format!("{stranger} is not your friend")));
            }
        }
        self.presence(caller.app, users).await
    }

    /// Makes friends of each pair at once (app only; no notifications), e.g. to import a graph.
    pub async fn make_friends(&self, caller: &SharedCaller, pairs: &[(String, String)]) -> Result<()> {
        caller.require_app()?;
        self.check_pairs(pairs)?;
        let rules = self.friend_rules();
        self.store().make_friends(caller.app, pairs, &rules, now_ms()).await.map_err(store_error)
    }

    /// Ends the friendship of each pair (app only; no notifications).
    pub async fn break_friends(&self, caller: &SharedCaller, pairs: &[(String, String)]) -> Result<()> {
        caller.require_app()?;
        self.check_pairs(pairs)?;
        self.store().break_friends(caller.app, pairs, &[]).await.map_err(store_error)?;
        Ok(())
    }

    fn check_pairs(&self, pairs: &[(String, String)]) -> Result<()> {
        let max = self.limits().max_import_users;
        if pairs.is_empty() || pairs.len() > max {
            return Err(Error::invalid(format!("pairs takes 1-{max} pairs")));
        }
        for (user, friend) in pairs {
            validate::id("user_id", user)?;
            Self::other_user(user, "friend_id", friend)?;
        }
        Ok(())
    }
}

fn greeting_detail(greeting: &str) -> serde_json::Value {
    if greeting.is_empty() { serde_json::Value::Null } else { serde_json::json!({ "greeting": greeting }) }
}
