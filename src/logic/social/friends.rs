//! Friends: requests (with expiry, and a request meeting one the other way making
//! friends at once), the friend list with remarks, blocks, and the friends' presence.
//! Requests and acceptances notify the users concerned (`friend.requested`,
//! `friend.accepted`); a deletion tells the deleter's own devices (`friend.deleted`).

use std::collections::HashMap;

use super::{Social, notices::NoticeDraft};
use crate::logic::{
    Error, Page, Result, SharedCaller,
    kernel::{lookups, paging, validate},
    rules::{
        friend::{FriendRefusal, RequestRules, decide_answer, decide_pairs, decide_request},
        moment::shown_to_new_friend,
    },
};
use crate::{
    model::{AnswerState, AppId, Friend, FriendRequest, PairsState, RequestState, User, now_ms},
    route::Route,
    store::{Answer, Backfill, Noticed, RequestNotices, RequestOutcome},
};

/// The error for a change the rules refused inside the store's transaction.
fn refused_for(refusal: Option<FriendRefusal>) -> Error {
    refusal.map_or_else(|| Error::internal("a friendship change was neither made nor refused"), Error::from)
}

/// A user as seen in a list: the record with its profile (`None` if the user is gone).
pub type WithProfile<T> = (T, Option<User>);

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

impl Social {
    /// Limits on friends and requests (`[social]`).
    fn request_rules(&self) -> RequestRules {
        let social = &self.social;
        RequestRules {
            max_pending: social.max_pending_friend_requests,
            cooldown_ms: i64::try_from(social.friend_request_cooldown_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_friends: social.max_friends,
        }
    }

    /// What a new friendship copies into each one's feed.
    fn backfill(&self) -> Backfill<'static> {
        Backfill { posts: self.social.feed_backfill_posts, shown: &shown_to_new_friend }
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
        for chunk in ids.chunks(self.limits.max_page_size as usize) {
            for user in self.store.get_users(app, chunk).await? {
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
        validate::text("greeting", greeting, self.social.max_greeting_chars)?;
        lookups::existing_user(self.store.as_ref(), caller.app, to).await?;
        self.rates.friend_request(caller.app, user)?;
        let request = self.new_request(user, to, greeting);
        let (rules, backfill) = (self.request_rules(), self.backfill());
        // Where the decision inside the store's transaction leaves its reason to refuse.
        let refusal = std::sync::Mutex::new(None);
        let outcome = self
            .with_notices(|| {
                let notices = self.request_notices(user, to, greeting);
                let (request, refusal) = (&request, &refusal);
                async move {
                    let mut decide = |state: &RequestState| {
                        let decision = decide_request((user, to), state, rules, request.created_at_ms);
                        decision.map_err(|refused| *refusal.lock().expect("refusal lock") = Some(refused)).ok()
                    };
                    self.store.send_friend_request(caller.app, request, &notices, backfill, &mut decide).await
                }
            })
            .await?;
        let (became_friends, notices) = match (outcome, refusal.into_inner().expect("refusal lock")) {
            (Some(RequestOutcome::Requested(notices)), _) => (false, notices),
            (Some(RequestOutcome::BecameFriends(notices)), _) => (true, notices),
            (None, refused) => return Err(refused_for(refused)),
        };
        self.deliver_notices(caller.app, &notices);
        Ok(became_friends)
    }

    /// A request from `user` to `to`, made now, lapsing after `social.friend_request_ttl_secs`.
    fn new_request(&self, user: &str, to: &str, greeting: &str) -> FriendRequest {
        let now = now_ms();
        let ttl_ms = i64::try_from(self.social.friend_request_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        FriendRequest {
            from_user_id: user.to_owned(),
            to_user_id: to.to_owned(),
            greeting: greeting.to_owned(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
            rejected_at_ms: 0,
        }
    }

    /// The notices a request may write: to `to` that it was asked, or to both that they
    /// are friends (when `to` had asked first).
    fn request_notices(&self, user: &str, to: &str, greeting: &str) -> RequestNotices {
        let about = [to.to_owned()];
        let requested =
            NoticeDraft { event: "friend.requested", actor: user, about: &about, detail: greeting_detail(greeting) };
        let accepted =
            NoticeDraft { event: "friend.accepted", actor: user, about: &about, detail: serde_json::Value::Null };
        RequestNotices {
            requested: self.notice(&requested, &about),
            accepted: self.notice(&accepted, &[user.to_owned(), to.to_owned()]),
        }
    }

    /// Live requests to the caller (`incoming`) or from it, with the other user's profile.
    pub async fn friend_requests(
        &self,
        caller: &SharedCaller,
        incoming: bool,
    ) -> Result<Vec<WithProfile<FriendRequest>>> {
        let user = caller.require_user()?;
        let requests = self.store.friend_requests(caller.app, user, incoming, now_ms()).await?;
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
        let (max_friends, backfill) = (self.social.max_friends, self.backfill());
        let refusal = std::sync::Mutex::new(None);
        let notices = self
            .with_notices(|| {
                let draft = NoticeDraft {
                    event: "friend.accepted",
                    actor: user,
                    about: &about,
                    detail: serde_json::Value::Null,
                };
                let accepted = accept.then(|| self.notice(&draft, &pair));
                let refusal = &refusal;
                async move {
                    let answer = Answer { user, from, accepted: accepted.as_ref(), now_ms: now_ms() };
                    let mut decide = |state: &AnswerState| {
                        let decision = decide_answer((user, from), accept, state, max_friends);
                        decision.map_err(|refused| *refusal.lock().expect("refusal lock") = Some(refused)).is_ok()
                    };
                    self.store.answer_friend_request(caller.app, &answer, backfill, &mut decide).await
                }
            })
            .await?;
        let Some(notices) = notices else { return Err(refused_for(refusal.into_inner().expect("refusal lock"))) };
        self.deliver_notices(caller.app, &notices);
        Ok(())
    }

    pub async fn friends(&self, caller: &SharedCaller, after: &str, limit: i32) -> Result<Page<WithProfile<Friend>>> {
        let user = caller.require_user()?;
        let page = paging::page(&self.limits, limit, |n| self.store.friends(caller.app, user, after, n)).await?;
        let items = self.with_profiles(caller.app, page.items, |f| f.friend_id.as_str()).await?;
        Ok(Page { items, has_more: page.has_more })
    }

    /// Ends the friendship on both sides; the caller's devices get `friend.deleted`.
    pub async fn delete_friend(&self, caller: &SharedCaller, friend: &str) -> Result<()> {
        let user = caller.require_user()?;
        let friend = Self::other_user(user, "user_id", friend)?;
        let pair = [(user.to_owned(), friend.to_owned())];
        let about = [friend.to_owned()];
        let me = [user.to_owned()];
        let Noticed { value: broken, notices } = self
            .with_notices(|| {
                let draft = NoticeDraft {
                    event: "friend.deleted",
                    actor: user,
                    about: &about,
                    detail: serde_json::Value::Null,
                };
                let notice = self.notice(&draft, &me);
                let pair = &pair;
                async move { self.store.break_friends(caller.app, pair, std::slice::from_ref(&notice)).await }
            })
            .await?;
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
            validate::name("remark", remark, &self.limits)?;
        }
        if let Some(extra) = extra {
            validate::extra("extra", extra, &self.limits)?;
        }
        let updated = self
            .store
            .update_friend(caller.app, user, friend, remark, extra)
            .await?
            .ok_or_else(|| Error::not_found(format!("{friend} is not your friend")))?;
        Ok(self.with_profiles(caller.app, vec![updated], |f| f.friend_id.as_str()).await?.remove(0))
    }

    /// Blocks a user: it can no longer send the caller requests or messages.
    pub async fn block(&self, caller: &SharedCaller, other: &str) -> Result<()> {
        let user = caller.require_user()?;
        let other = Self::other_user(user, "user_id", other)?;
        lookups::existing_user(self.store.as_ref(), caller.app, other).await?;
        self.store.block(caller.app, user, other, now_ms()).await?;
        Ok(())
    }

    pub async fn unblock(&self, caller: &SharedCaller, other: &str) -> Result<()> {
        let user = caller.require_user()?;
        let other = Self::other_user(user, "user_id", other)?;
        self.store.unblock(caller.app, user, other).await?;
        Ok(())
    }

    pub async fn blocked(&self, caller: &SharedCaller) -> Result<Vec<String>> {
        let user = caller.require_user()?;
        Ok(self.store.blocked(caller.app, user).await?)
    }

    /// The presence of some of the caller's friends (anyone's, for the app).
    pub async fn friend_presence(&self, caller: &SharedCaller, users: &[String]) -> Result<Vec<(String, Vec<Route>)>> {
        validate::ids("user_ids", users, self.limits.max_page_size as usize, false)?;
        if let Some(user) = caller.user() {
            let friends = self.store.friends_among(caller.app, user, users).await?;
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
        let max_friends = self.social.max_friends;
        let mut refusal = None;
        let mut decide = |state: &PairsState| {
            decide_pairs(pairs, state, max_friends).map_err(|refused| refusal = Some(refused)).is_ok()
        };
        let made = self.store.make_friends(caller.app, pairs, self.backfill(), now_ms(), &mut decide).await?;
        if !made {
            return Err(refused_for(refusal));
        }
        Ok(())
    }

    /// Ends the friendship of each pair (app only; no notifications).
    pub async fn break_friends(&self, caller: &SharedCaller, pairs: &[(String, String)]) -> Result<()> {
        caller.require_app()?;
        self.check_pairs(pairs)?;
        self.store.break_friends(caller.app, pairs, &[]).await?;
        Ok(())
    }

    fn check_pairs(&self, pairs: &[(String, String)]) -> Result<()> {
        let max = self.limits.max_import_users;
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
