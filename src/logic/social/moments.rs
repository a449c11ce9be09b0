//! Moments: posts with a visibility, a feed fanned out on write, timelines, likes and
//! comments. Visibility is checked on every read: a post the viewer may not see is
//! "not found", never "forbidden", so that nothing leaks about it.
//!
//! Notifications: the post's readers get `moment.posted`; the author gets
//! `moment.liked` and `moment.commented`; the writer of a comment replied to gets
//! `moment.replied`.

use std::collections::HashMap;

use super::{Social, notices::NoticeDraft};
use crate::logic::{
    Error, Result, SharedCaller,
    kernel::{lookups, paging, validate},
};
use crate::{
    model::{AppId, Comment, Like, NewMessage, Post, PostContent, Visibility, now_ms},
    store::{NewComment, Noticed, PostPage, Reactions, StoreError},
};

/// Pages of an author's posts read at most to fill one page of its timeline (posts for
/// a chosen audience the viewer is not in are skipped).
const TIMELINE_ROUNDS: usize = 4;

/// A post as one viewer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PostView {
    pub post: Post,
    pub likes: Vec<Like>,
    pub comments: Vec<Comment>,
    /// The viewer is the author (or the app): it sees the audience.
    pub own: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostsPage {
    pub posts: Vec<PostView>,
    /// Where the next page starts (`before_post_id`); 0 when there is none.
    pub next_before: u64,
}

/// A post as its author writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostInput {
    pub content: PostContent,
    pub visibility: Visibility,
    pub audience: Vec<String>,
    pub client_post_id: String,
}

fn post_detail(post_id: u64) -> serde_json::Value {
    // Ids go as strings: they exceed the integers JSON readers keep exactly.
    serde_json::json!({ "post_id": post_id.to_string() })
}

fn no_post(post_id: u64) -> Error {
    Error::not_found(format!("post {post_id} does not exist"))
}

impl Social {
    fn check_content(&self, content: &PostContent) -> Result<()> {
        let social = &self.social;
        validate::text("content.text", &content.text, social.max_post_chars)?;
        if content.text.trim().is_empty() && content.media.is_empty() {
            return Err(Error::invalid("a post needs text or media"));
        }
        if content.media.len() > social.max_media {
            return Err(Error::invalid(format!("a post takes at most {} media", social.max_media)));
        }
        for media in &content.media {
            validate::required_url("media.url", &media.url, &self.limits)?;
            validate::url("media.thumbnail_url", &media.thumbnail_url, &self.limits)?;
        }
        if let Some(place) = &content.place {
            if !(-90.0..=90.0).contains(&place.latitude) || !(-180.0..=180.0).contains(&place.longitude) {
                return Err(Error::invalid("place needs a latitude of -90..90 and a longitude of -180..180"));
            }
            validate::name("place.name", &place.name, &self.limits)?;
        }
        Ok(())
    }

    /// Who gets the post in their feed besides the author, by its visibility.
    async fn readers(&self, app: AppId, author: &str, input: &PostInput) -> Result<Vec<String>> {
        let listed = matches!(input.visibility, Visibility::Chosen | Visibility::Except);
        if !listed {
            if !input.audience.is_empty() {
                return Err(Error::invalid("audience is only for CHOSEN and EXCEPT posts"));
            }
        } else {
            let max = self.limits.max_page_size as usize;
            if input.audience.is_empty() || input.audience.len() > max {
                return Err(Error::invalid(format!("audience takes 1-{max} friends")));
            }
            for user in &input.audience {
                validate::id("audience", user)?;
            }
            let friends = self.store.friends_among(app, author, &input.audience).await?;
            if let Some(stranger) = input.audience.iter().find(|user| !friends.contains(user)) {
                return Err(Error::invalid(format!("audience lists {stranger}, who is not your friend")));
            }
        }
        Ok(match input.visibility {
            Visibility::Public | Visibility::Friends | Visibility::Unspecified => {
                self.store.friend_ids(app, author).await?
            }
            Visibility::Chosen => input.audience.clone(),
            Visibility::Except => {
                let friends = self.store.friend_ids(app, author).await?;
                friends.into_iter().filter(|friend| !input.audience.contains(friend)).collect()
            }
            Visibility::OnlyMe => Vec::new(),
        })
    }

    pub async fn publish_post(&self, caller: &SharedCaller, mut input: PostInput) -> Result<PostView> {
        let author = caller.require_user()?;
        self.check_content(&input.content)?;
        if input.visibility == Visibility::Unspecified {
            input.visibility = Visibility::Friends;
        }
        if input.client_post_id.is_empty() {
            input.client_post_id = validate::generated_id("p_");
        }
        validate::client_msg_id(&input.client_post_id, &self.limits)
            .map_err(|_| Error::invalid("client_post_id must be 1-64 characters"))?;
        let readers = self.readers(caller.app, author, &input).await?;
        self.rates.moment_write(caller.app, author)?;
        let Noticed { value: post, notices } = self
            .with_notices(|| {
                let (post_id, created_at_ms) = self.ids.next();
                let post = Post {
                    post_id,
                    author_id: author.to_owned(),
                    client_post_id: input.client_post_id.clone(),
                    content: input.content.clone(),
                    visibility: input.visibility,
                    audience: input.audience.clone(),
                    created_at_ms,
                };
                let draft =
                    NoticeDraft { event: "moment.posted", actor: author, about: &[], detail: post_detail(post_id) };
                let notice = (!readers.is_empty()).then(|| self.notice(&draft, &readers));
                let readers = &readers;
                async move { self.store.publish_post(caller.app, &post, readers, notice.as_ref()).await }
            })
            .await
            .map_err(|err| match err {
                StoreError::Conflict => Error::Conflict(format!(
                    "client_post_id {} belongs to a post that has been deleted",
                    input.client_post_id
                )),
                other => other.into(),
            })?;
        self.deliver_notices(caller.app, &notices);
        Ok(PostView { post, likes: Vec::new(), comments: Vec::new(), own: true })
    }

    /// A live post the caller may see; "not found" otherwise.
    async fn visible_post(&self, caller: &SharedCaller, post_id: u64) -> Result<Post> {
        let post = self.store.get_post(caller.app, post_id).await?.ok_or_else(|| no_post(post_id))?;
        let Some(viewer) = caller.user() else { return Ok(post) };
        let friends =
            viewer != post.author_id && self.store.relation(caller.app, viewer, &post.author_id).await?.friends;
        if !post.visible_to(viewer, friends) {
            return Err(no_post(post_id));
        }
        Ok(post)
    }

    /// Posts as `viewer` sees them, with the likes and comments it may see.
    async fn views(&self, app: AppId, viewer: Option<&str>, posts: Vec<Post>) -> Result<Vec<PostView>> {
        let Some(first) = posts.first() else { return Ok(Vec::new()) };
        // The app sees what the author sees.
        let viewer = viewer.unwrap_or(&first.author_id).to_owned();
        let ids: Vec<u64> = posts.iter().map(|post| post.post_id).collect();
        let Reactions { likes, comments } = self.store.reactions(app, &viewer, &ids).await?;
        let mut likes_of: HashMap<u64, Vec<Like>> = HashMap::new();
        for like in likes {
            likes_of.entry(like.post_id).or_default().push(like);
        }
        let mut comments_of: HashMap<u64, Vec<Comment>> = HashMap::new();
        for comment in comments {
            comments_of.entry(comment.post_id).or_default().push(comment);
        }
        Ok(posts
            .into_iter()
            .map(|post| PostView {
                likes: likes_of.remove(&post.post_id).unwrap_or_default(),
                comments: comments_of.remove(&post.post_id).unwrap_or_default(),
                own: post.author_id == viewer,
                post,
            })
            .collect())
    }

    pub async fn get_post(&self, caller: &SharedCaller, post_id: u64) -> Result<PostView> {
        let post = self.visible_post(caller, post_id).await?;
        Ok(self.views(caller.app, caller.user(), vec![post]).await?.remove(0))
    }

    /// Deletes a post: the author's own, or any post for the app (moderation).
    pub async fn delete_post(&self, caller: &SharedCaller, post_id: u64) -> Result<()> {
        let post = self.visible_post(caller, post_id).await?;
        if caller.user().is_some_and(|user| user != post.author_id) {
            return Err(Error::PermissionDenied("only the author may delete a post".into()));
        }
        if !self.store.delete_post(caller.app, &post.author_id, post_id).await? {
            return Err(no_post(post_id));
        }
        Ok(())
    }

    /// The caller's feed: its own posts and its friends' that it may see, newest first.
    pub async fn feed(&self, caller: &SharedCaller, before_post_id: u64, limit: i32) -> Result<PostsPage> {
        let user = caller.require_user()?;
        let page = paging::page(&self.limits, limit, |n| {
            self.store.feed(caller.app, user, PostPage { before_post_id, limit: n })
        })
        .await?;
        let next_before = match page.items.last() {
            Some(post) if page.has_more => post.post_id,
            _ => 0,
        };
        Ok(PostsPage { posts: self.views(caller.app, Some(user), page.items).await?, next_before })
    }

    /// One user's posts as the caller may see them, newest first.
    pub async fn timeline(
        &self,
        caller: &SharedCaller,
        author: &str,
        before_post_id: u64,
        limit: i32,
    ) -> Result<PostsPage> {
        validate::id("user_id", author)?;
        let limit = paging::page_limit(&self.limits, limit)?;
        lookups::existing_user(self.store.as_ref(), caller.app, author).await?;
        let (viewer, friends) = match caller.user() {
            Some(viewer) if viewer != author => {
                (Some(viewer), self.store.relation(caller.app, viewer, author).await?.friends)
            }
            viewer => (viewer, true),
        };
        let visibilities: &[Visibility] = match viewer {
            Some(viewer) if viewer != author && friends => {
                &[Visibility::Public, Visibility::Friends, Visibility::Chosen, Visibility::Except]
            }
            Some(viewer) if viewer != author => &[Visibility::Public],
            _ => &[],
        };
        let mut shown = Vec::new();
        let mut before = before_post_id;
        let mut next_before = 0;
        for _ in 0..TIMELINE_ROUNDS {
            let page = PostPage { before_post_id: before, limit: limit + 1 };
            let posts = self.store.author_posts(caller.app, author, visibilities, page).await?;
            let exhausted = posts.len() <= limit as usize;
            for post in posts.into_iter().take(limit as usize) {
                before = post.post_id;
                if viewer.is_none_or(|viewer| post.visible_to(viewer, friends)) {
                    shown.push(post);
                    if shown.len() == limit as usize {
                        break;
                    }
                }
            }
            next_before = if exhausted && shown.len() < limit as usize { 0 } else { before };
            if exhausted || shown.len() == limit as usize {
                break;
            }
        }
        Ok(PostsPage { posts: self.views(caller.app, caller.user(), shown).await?, next_before })
    }

    pub async fn like(&self, caller: &SharedCaller, post_id: u64) -> Result<()> {
        let user = caller.require_user()?;
        let post = self.visible_post(caller, post_id).await?;
        self.rates.moment_write(caller.app, user)?;
        let author = [post.author_id.clone()];
        let notices = self
            .with_notices(|| {
                let draft =
                    NoticeDraft { event: "moment.liked", actor: user, about: &[], detail: post_detail(post_id) };
                let notice = (post.author_id != user).then(|| self.notice(&draft, &author));
                async move { self.store.like(caller.app, post_id, user, notice.as_ref(), now_ms()).await }
            })
            .await
            .map_err(|err| match err {
                StoreError::NotFound => no_post(post_id),
                other => other.into(),
            })?;
        self.deliver_notices(caller.app, &notices);
        Ok(())
    }

    pub async fn unlike(&self, caller: &SharedCaller, post_id: u64) -> Result<()> {
        let user = caller.require_user()?;
        self.visible_post(caller, post_id).await?;
        self.store.unlike(caller.app, post_id, user).await?;
        Ok(())
    }

    /// Comments on a post, or replies to one of its comments the caller can see.
    pub async fn add_comment(
        &self,
        caller: &SharedCaller,
        post_id: u64,
        text: &str,
        reply_to_comment_id: u64,
    ) -> Result<Comment> {
        let user = caller.require_user()?;
        if text.trim().is_empty() {
            return Err(Error::invalid("text is required"));
        }
        validate::text("text", text, self.social.max_comment_chars)?;
        let post = self.visible_post(caller, post_id).await?;
        let no_comment = || Error::not_found(format!("comment {reply_to_comment_id} does not exist on this post"));
        let reply_to_user = match reply_to_comment_id {
            0 => String::new(),
            replied => self.replied_to(caller, &post, replied).await?.ok_or_else(no_comment)?,
        };
        self.rates.moment_write(caller.app, user)?;
        let Noticed { value: comment, notices } = self
            .with_notices(|| {
                let (comment_id, created_at_ms) = self.ids.next();
                let comment = NewComment {
                    post_id,
                    comment_id,
                    user_id: user.to_owned(),
                    author_id: post.author_id.clone(),
                    reply_to_user_id: reply_to_user.clone(),
                    reply_to_comment_id,
                    text: text.to_owned(),
                    created_at_ms,
                };
                let notices = self.comment_notices(&comment, &post.author_id);
                async move { self.store.add_comment(caller.app, &comment, &notices).await }
            })
            .await
            .map_err(|err| match err {
                StoreError::NotFound if reply_to_comment_id != 0 => no_comment(),
                StoreError::NotFound => no_post(post_id),
                other => other.into(),
            })?;
        self.deliver_notices(caller.app, &notices);
        Ok(comment)
    }

    /// The writer of the comment replied to, if the caller may see that comment (its
    /// own, any on its own post, or a friend's).
    async fn replied_to(&self, caller: &SharedCaller, post: &Post, comment_id: u64) -> Result<Option<String>> {
        let Some(replied) = self.store.get_comment(caller.app, post.post_id, comment_id).await? else {
            return Ok(None);
        };
        let user = caller.require_user()?;
        let seen = replied.user_id == user
            || post.author_id == user
            || self.store.relation(caller.app, user, &replied.user_id).await?.friends;
        Ok(seen.then_some(replied.user_id))
    }

    /// What a comment tells: the writer replied to (`moment.replied`), and the post's
    /// author (`moment.commented`), never the commenter itself, nobody twice.
    fn comment_notices(&self, comment: &NewComment, author: &str) -> Vec<NewMessage> {
        let user = comment.user_id.as_str();
        let detail = serde_json::json!({
            "post_id": comment.post_id.to_string(), "comment_id": comment.comment_id.to_string(), "text": comment.text,
        });
        let replied = comment.reply_to_user_id.as_str();
        let mut notices = Vec::new();
        if !replied.is_empty() && replied != user {
            let draft = NoticeDraft { event: "moment.replied", actor: user, about: &[], detail: detail.clone() };
            notices.push(self.notice(&draft, &[replied.to_owned()]));
        }
        if author != user && author != replied {
            let draft = NoticeDraft { event: "moment.commented", actor: user, about: &[], detail };
            notices.push(self.notice(&draft, &[author.to_owned()]));
        }
        notices
    }

    /// Deletes a comment: the writer's own, any on the caller's own post, or any for the app.
    pub async fn delete_comment(&self, caller: &SharedCaller, post_id: u64, comment_id: u64) -> Result<()> {
        let post = self.visible_post(caller, post_id).await?;
        let comment = self
            .store
            .get_comment(caller.app, post_id, comment_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("comment {comment_id} does not exist on this post")))?;
        if let Some(user) = caller.user()
            && user != comment.user_id
            && user != post.author_id
        {
            return Err(Error::PermissionDenied("only the writer or the post's author may delete a comment".into()));
        }
        self.store.delete_comment(caller.app, post_id, comment_id).await?;
        Ok(())
    }
}
