//! Moments over the gRPC API: every visibility rule, friends removed and added after
//! posting, the friends-only rule for likes and comments, notifications, feed paging
//! while posts arrive, and bad input; on both stores.

use std::collections::BTreeSet;

use gim::proto::logic::v1::{
    CommentRef, CommentRequest, FeedRequest, Media, MediaType, Place, Post, PostContent, PostRef, PublishRequest,
    TimelineRequest, UserRef, Visibility,
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Moments, SocialUser, TestApp, TestServer, code, system_bodies},
};

both_stores!(
    visibility_decides_who_sees_a_post,
    a_friend_removed_after_posting_no_longer_sees_and_a_new_one_does,
    only_the_viewers_friends_likes_and_comments_are_shown,
    authors_readers_and_repliers_are_notified,
    the_feed_pages_without_gaps_or_repeats_while_posts_arrive,
    bad_posts_and_comments_change_nothing,
    another_app_reaches_none_of_it,
    users_are_held_to_their_rates,
);

fn post(text: &str, visibility: Visibility, audience: &[&str]) -> PublishRequest {
    PublishRequest {
        content: Some(PostContent { text: text.into(), ..Default::default() }),
        visibility: visibility as i32,
        audience: audience.iter().map(|u| (*u).to_owned()).collect(),
        client_post_id: String::new(),
    }
}

async fn publish(moments: &mut Moments, text: &str, visibility: Visibility, audience: &[&str]) -> u64 {
    moments.publish(post(text, visibility, audience)).await.unwrap().into_inner().post_id
}

fn texts(posts: &[Post]) -> Vec<String> {
    posts.iter().map(|p| p.content.as_ref().unwrap().text.clone()).collect()
}

/// The whole feed, newest first, read in pages of `limit`.
async fn feed(moments: &mut Moments, limit: i32) -> Vec<Post> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let page = moments.feed(FeedRequest { before_post_id: before, limit }).await.unwrap().into_inner();
        all.extend(page.posts);
        if page.next_before == 0 {
            return all;
        }
        before = page.next_before;
    }
}

async fn timeline(moments: &mut Moments, user: &str) -> Vec<Post> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let request = TimelineRequest { user_id: user.into(), before_post_id: before, limit: 2 };
        let page = moments.timeline(request).await.unwrap().into_inner();
        all.extend(page.posts);
        if page.next_before == 0 {
            return all;
        }
        before = page.next_before;
    }
}

async fn get(moments: &mut Moments, post_id: u64) -> Result<Post, Code> {
    moments.get_post(PostRef { post_id }).await.map(|r| r.into_inner()).map_err(|s| s.code())
}

fn comment(post_id: u64, text: &str, reply_to: u64) -> CommentRequest {
    CommentRequest { post_id, text: text.into(), reply_to_comment_id: reply_to }
}

async fn users(app: &TestApp, names: &[&str]) -> Vec<SocialUser> {
    let mut users = Vec::new();
    for name in names {
        users.push(app.social_user(name).await);
    }
    users
}

async fn visibility_decides_who_sees_a_post(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let [mut ann, mut bob, mut cat, mut dan, mut eve] =
        users(&app, &["ann", "bob", "cat", "dan", "eve"]).await.try_into().unwrap_or_else(|_| unreachable!());
    app.make_friends(&[("ann", "bob"), ("ann", "cat"), ("ann", "dan")]).await;

    let public = publish(&mut ann.moments, "public", Visibility::Public, &[]).await;
    let friends = publish(&mut ann.moments, "friends", Visibility::Friends, &[]).await;
    let only_me = publish(&mut ann.moments, "only me", Visibility::OnlyMe, &[]).await;
    let chosen = publish(&mut ann.moments, "for bob", Visibility::Chosen, &["bob"]).await;
    let except = publish(&mut ann.moments, "not for cat", Visibility::Except, &["cat"]).await;

    assert_eq!(texts(&feed(&mut bob.moments, 2).await), ["not for cat", "for bob", "friends", "public"]);
    assert_eq!(texts(&feed(&mut cat.moments, 2).await), ["friends", "public"]);
    assert_eq!(texts(&feed(&mut dan.moments, 2).await), ["not for cat", "friends", "public"]);
    assert!(feed(&mut eve.moments, 2).await.is_empty(), "a stranger's feed holds no post of ann");
    assert_eq!(
        texts(&feed(&mut ann.moments, 2).await),
        ["not for cat", "for bob", "only me", "friends", "public"],
        "the author's feed holds all its posts"
    );

    assert_eq!(texts(&timeline(&mut eve.moments, "ann").await), ["public"], "strangers see public posts");
    assert_eq!(texts(&timeline(&mut cat.moments, "ann").await), ["friends", "public"]);
    assert_eq!(texts(&timeline(&mut bob.moments, "ann").await), ["not for cat", "for bob", "friends", "public"]);
    let own = timeline(&mut ann.moments, "ann").await;
    assert_eq!(own.len(), 5);
    assert_eq!(own[1].audience, ["bob"], "the author sees the audience");
    let as_bob = get(&mut bob.moments, chosen).await.unwrap();
    assert!(as_bob.audience.is_empty(), "nobody else does");

    assert_eq!(get(&mut cat.moments, chosen).await.unwrap_err(), Code::NotFound);
    assert_eq!(get(&mut cat.moments, except).await.unwrap_err(), Code::NotFound);
    assert_eq!(get(&mut bob.moments, only_me).await.unwrap_err(), Code::NotFound);
    assert_eq!(get(&mut eve.moments, friends).await.unwrap_err(), Code::NotFound);
    assert_eq!(get(&mut eve.moments, public).await.unwrap().content.unwrap().text, "public");
    assert_eq!(code(cat.moments.like(PostRef { post_id: chosen }).await), Code::NotFound, "nor can cat like it");
    let as_app = app.moments(None).await.get_post(PostRef { post_id: only_me }).await.unwrap().into_inner();
    assert_eq!(as_app.content.unwrap().text, "only me", "the app sees everything");
}

async fn a_friend_removed_after_posting_no_longer_sees_and_a_new_one_does(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let [mut ann, mut bob, mut cat] =
        users(&app, &["ann", "bob", "cat"]).await.try_into().unwrap_or_else(|_| unreachable!());
    app.make_friends(&[("ann", "bob")]).await;
    let first = publish(&mut ann.moments, "first", Visibility::Friends, &[]).await;
    publish(&mut ann.moments, "just me", Visibility::OnlyMe, &[]).await;
    assert_eq!(texts(&feed(&mut bob.moments, 10).await), ["first"]);

    ann.friends.delete_friend(UserRef { user_id: "bob".into() }).await.unwrap();
    assert!(feed(&mut bob.moments, 10).await.is_empty(), "a removed friend's feed loses the posts");
    assert!(timeline(&mut bob.moments, "ann").await.is_empty());
    assert_eq!(get(&mut bob.moments, first).await.unwrap_err(), Code::NotFound);
    assert_eq!(code(bob.moments.add_comment(comment(first, "hey", 0)).await), Code::NotFound);

    // A new friend finds the recent posts it may see in its feed.
    cat.friends
        .send_request(gim::proto::logic::v1::SendFriendRequestRequest {
            user_id: "ann".into(),
            greeting: String::new(),
        })
        .await
        .unwrap();
    ann.friends
        .answer(gim::proto::logic::v1::AnswerFriendRequest { user_id: "cat".into(), accept: true })
        .await
        .unwrap();
    assert_eq!(texts(&feed(&mut cat.moments, 10).await), ["first"]);
    // And bob, friends again, sees it again.
    app.make_friends(&[("ann", "bob")]).await;
    assert_eq!(texts(&feed(&mut bob.moments, 10).await), ["first"]);
}

async fn only_the_viewers_friends_likes_and_comments_are_shown(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let [mut ann, mut bob, mut cat, mut dan] =
        users(&app, &["ann", "bob", "cat", "dan"]).await.try_into().unwrap_or_else(|_| unreachable!());
    // bob and cat do not know each other; dan knows bob.
    app.make_friends(&[("ann", "bob"), ("ann", "cat"), ("ann", "dan"), ("bob", "dan")]).await;
    let post_id = publish(&mut ann.moments, "look", Visibility::Friends, &[]).await;

    bob.moments.like(PostRef { post_id }).await.unwrap();
    cat.moments.like(PostRef { post_id }).await.unwrap();
    let by_bob = bob.moments.add_comment(comment(post_id, "nice", 0)).await.unwrap().into_inner();
    let by_cat = cat.moments.add_comment(comment(post_id, "wow", 0)).await.unwrap().into_inner();
    let reply = dan.moments.add_comment(comment(post_id, "agreed", by_bob.comment_id)).await.unwrap().into_inner();
    assert_eq!(reply.reply_to_user_id, "bob");
    assert_eq!(reply.reply_to_comment_id, by_bob.comment_id);

    let seen = |post: &Post| {
        let likes: Vec<String> = post.likes.iter().map(|l| l.user_id.clone()).collect();
        let comments: Vec<String> = post.comments.iter().map(|c| c.user_id.clone()).collect();
        (likes, comments)
    };
    let view = |post: Post| seen(&post);
    assert_eq!(
        view(get(&mut ann.moments, post_id).await.unwrap()),
        (vec!["bob".into(), "cat".into()], vec!["bob".into(), "cat".into(), "dan".into()]),
        "the author sees all"
    );
    assert_eq!(
        view(get(&mut bob.moments, post_id).await.unwrap()),
        (vec!["bob".into()], vec!["bob".into(), "dan".into()])
    );
    assert_eq!(view(get(&mut cat.moments, post_id).await.unwrap()), (vec!["cat".into()], vec!["cat".into()]));
    assert_eq!(
        view(get(&mut dan.moments, post_id).await.unwrap()),
        (vec!["bob".into()], vec!["bob".into(), "dan".into()])
    );
    let in_feed = feed(&mut dan.moments, 10).await;
    assert_eq!(seen(&in_feed[0]), (vec!["bob".into()], vec!["bob".into(), "dan".into()]), "the feed shows the same");

    // cat cannot reply to what it cannot see, nor delete others' comments.
    assert_eq!(code(cat.moments.add_comment(comment(post_id, "?", by_bob.comment_id)).await), Code::NotFound);
    let bobs = CommentRef { post_id, comment_id: by_bob.comment_id };
    assert_eq!(code(cat.moments.delete_comment(bobs).await), Code::PermissionDenied);
    // Writers delete their own; the author deletes any on its post.
    dan.moments.delete_comment(CommentRef { post_id, comment_id: reply.comment_id }).await.unwrap();
    ann.moments.delete_comment(CommentRef { post_id, comment_id: by_cat.comment_id }).await.unwrap();
    bob.moments.unlike(PostRef { post_id }).await.unwrap();
    assert_eq!(view(get(&mut ann.moments, post_id).await.unwrap()), (vec!["cat".into()], vec!["bob".into()]));
    assert_eq!(
        code(bob.moments.delete_comment(CommentRef { post_id, comment_id: reply.comment_id }).await),
        Code::NotFound
    );

    // A deleted post takes its likes and comments with it.
    ann.moments.delete_post(PostRef { post_id }).await.unwrap();
    assert_eq!(get(&mut ann.moments, post_id).await.unwrap_err(), Code::NotFound);
    assert_eq!(code(bob.moments.add_comment(comment(post_id, "late", 0)).await), Code::NotFound);
    assert_eq!(code(bob.moments.like(PostRef { post_id }).await), Code::NotFound);
    assert!(feed(&mut bob.moments, 10).await.is_empty());
}

async fn authors_readers_and_repliers_are_notified(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let [mut ann, mut bob, _cat, mut dan] =
        users(&app, &["ann", "bob", "cat", "dan"]).await.try_into().unwrap_or_else(|_| unreachable!());
    app.make_friends(&[("ann", "bob"), ("ann", "cat"), ("ann", "dan"), ("bob", "dan")]).await;
    let events = |app: &TestApp, user: &'static str| {
        let app = app.clone();
        async move {
            system_bodies(&app.inbox(user).await)
                .into_iter()
                .map(|s| (s.event, s.actor_user_id, s.detail))
                .collect::<Vec<_>>()
        }
    };

    let post_id = publish(&mut ann.moments, "hello", Visibility::Except, &["cat"]).await;
    let posted = format!("{{\"post_id\":\"{post_id}\"}}");
    for reader in ["bob", "dan"] {
        assert_eq!(events(&app, reader).await, [("moment.posted".to_owned(), "ann".to_owned(), posted.clone())]);
    }
    assert!(events(&app, "cat").await.is_empty(), "an excepted friend hears nothing");
    assert!(events(&app, "ann").await.is_empty(), "nor does the author of its own post");

    bob.moments.like(PostRef { post_id }).await.unwrap();
    bob.moments.like(PostRef { post_id }).await.unwrap();
    let by_bob = bob.moments.add_comment(comment(post_id, "nice", 0)).await.unwrap().into_inner();
    ann.moments.add_comment(comment(post_id, "thanks", by_bob.comment_id)).await.unwrap();
    dan.moments.add_comment(comment(post_id, "same", by_bob.comment_id)).await.unwrap();
    ann.moments.like(PostRef { post_id }).await.unwrap();

    let names = |events: Vec<(String, String, String)>| -> Vec<(String, String)> {
        events.into_iter().map(|(event, actor, _)| (event, actor)).collect()
    };
    let pair = |e: &str, a: &str| (e.to_owned(), a.to_owned());
    assert_eq!(
        names(events(&app, "ann").await),
        [pair("moment.liked", "bob"), pair("moment.commented", "bob"), pair("moment.commented", "dan")],
        "one notice per like however often it is repeated; none for the author's own acts"
    );
    assert_eq!(
        names(events(&app, "bob").await),
        [pair("moment.posted", "ann"), pair("moment.replied", "ann"), pair("moment.replied", "dan")]
    );
    let replied = system_bodies(&app.inbox("bob").await).pop().unwrap();
    let detail: serde_json::Value = serde_json::from_str(&replied.detail).unwrap();
    assert_eq!(detail["post_id"], post_id.to_string());
    assert_eq!(detail["text"], "same");
}

async fn the_feed_pages_without_gaps_or_repeats_while_posts_arrive(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let names = ["ann", "bob", "cat", "dan"];
    let mut all = users(&app, &names).await;
    app.make_friends(&[("ann", "bob"), ("ann", "cat"), ("ann", "dan")]).await;
    let mut published = BTreeSet::new();
    for round in 0..5 {
        for (user, name) in all.iter_mut().zip(names) {
            published.insert(publish(&mut user.moments, &format!("{name} {round}"), Visibility::Friends, &[]).await);
        }
    }

    // Page through ann's feed while the others keep posting.
    let ann = &mut all[0].moments.clone();
    let mut seen = Vec::new();
    let mut before = 0;
    let mut round = 5;
    loop {
        let page = ann.feed(FeedRequest { before_post_id: before, limit: 3 }).await.unwrap().into_inner();
        seen.extend(page.posts.iter().map(|p| p.post_id));
        for (user, name) in all.iter_mut().zip(names).skip(1) {
            publish(&mut user.moments, &format!("{name} {round}"), Visibility::Friends, &[]).await;
        }
        round += 1;
        if page.next_before == 0 {
            break;
        }
        before = page.next_before;
    }
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {seen:?}");
    let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
    assert!(published.is_subset(&seen_set), "every post from before the first page is in the pages");
    let first_page_top = seen[0];
    assert!(seen_set.iter().all(|id| *id <= first_page_top), "posts that came later are not mixed in");

    // A fresh read starts with what came meanwhile.
    let fresh = ann.feed(FeedRequest { before_post_id: 0, limit: 3 }).await.unwrap().into_inner();
    assert!(fresh.posts[0].post_id > first_page_top);
}

async fn bad_posts_and_comments_change_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.new_app().await;
    let [mut ann, mut bob, _eve] =
        users(&app, &["ann", "bob", "eve"]).await.try_into().unwrap_or_else(|_| unreachable!());
    app.make_friends(&[("ann", "bob")]).await;
    let media = |n: usize| {
        (0..n)
            .map(|i| Media {
                url: format!("https://cdn.example/{i}.jpg"),
                r#type: MediaType::Image as i32,
                size_bytes: 1000,
                width: 640,
                height: 480,
                thumbnail_url: String::new(),
            })
            .collect::<Vec<_>>()
    };
    let with = |content: PostContent, visibility: Visibility, audience: &[&str]| PublishRequest {
        content: Some(content),
        visibility: visibility as i32,
        audience: audience.iter().map(|u| (*u).to_owned()).collect(),
        client_post_id: String::new(),
    };
    let text = |t: &str| PostContent { text: t.into(), ..Default::default() };

    let nine = ann.moments.publish(with(PostContent { media: media(9), ..text("") }, Visibility::Friends, &[])).await;
    assert_eq!(nine.unwrap().into_inner().content.unwrap().media.len(), 9, "nine media are fine");
    let bad = [
        with(PostContent { media: media(10), ..text("too many") }, Visibility::Friends, &[]),
        with(text(&"x".repeat(2001)), Visibility::Friends, &[]),
        with(text("  "), Visibility::Friends, &[]),
        with(
            PostContent { place: Some(Place { latitude: 91.0, longitude: 0.0, name: "nowhere".into() }), ..text("hi") },
            Visibility::Friends,
            &[],
        ),
        with(
            PostContent { media: vec![Media { url: String::new(), ..Default::default() }], ..text("x") },
            Visibility::Friends,
            &[],
        ),
        with(text("to a stranger"), Visibility::Chosen, &["eve"]),
        with(text("nobody"), Visibility::Chosen, &[]),
        with(text("list on a friends post"), Visibility::Friends, &["bob"]),
        PublishRequest { visibility: 99, ..with(text("odd"), Visibility::Friends, &[]) },
        PublishRequest { client_post_id: "c".repeat(65), ..with(text("long id"), Visibility::Friends, &[]) },
    ];
    for request in bad {
        let described = format!("{request:?}");
        assert_eq!(code(ann.moments.publish(request).await), Code::InvalidArgument, "{described}");
    }
    assert_eq!(timeline(&mut ann.moments, "ann").await.len(), 1, "nothing bad was stored");
    let moment_notices = system_bodies(&app.inbox("bob").await).len();
    assert_eq!(moment_notices, 1, "bob heard of the one good post only");

    // Publishing is idempotent on client_post_id.
    let once = PublishRequest { client_post_id: "post-1".into(), ..with(text("once"), Visibility::Friends, &[]) };
    let first = ann.moments.publish(once.clone()).await.unwrap().into_inner();
    let again = ann.moments.publish(once.clone()).await.unwrap().into_inner();
    assert_eq!(first.post_id, again.post_id);
    assert_eq!(timeline(&mut ann.moments, "ann").await.len(), 2);
    ann.moments.delete_post(PostRef { post_id: first.post_id }).await.unwrap();
    assert_eq!(code(ann.moments.publish(once).await), Code::AlreadyExists, "a deleted post's id is not reused");

    // Comments and deletions.
    let post_id = publish(&mut ann.moments, "talk", Visibility::Friends, &[]).await;
    assert_eq!(code(bob.moments.add_comment(comment(post_id, "", 0)).await), Code::InvalidArgument);
    assert_eq!(code(bob.moments.add_comment(comment(post_id, &"c".repeat(501), 0)).await), Code::InvalidArgument);
    assert_eq!(code(bob.moments.add_comment(comment(post_id, "hi", 12345)).await), Code::NotFound);
    assert_eq!(code(bob.moments.add_comment(comment(999, "hi", 0)).await), Code::NotFound);
    assert!(get(&mut ann.moments, post_id).await.unwrap().comments.is_empty());
    assert_eq!(code(bob.moments.delete_post(PostRef { post_id }).await), Code::PermissionDenied);
    assert_eq!(code(ann.moments.delete_post(PostRef { post_id: 999 }).await), Code::NotFound);
    assert_eq!(code(app.moments(None).await.feed(FeedRequest::default()).await), Code::InvalidArgument);
    let limit = FeedRequest { before_post_id: 0, limit: 1000 };
    assert_eq!(code(ann.moments.feed(limit).await), Code::InvalidArgument);
    // The app may remove any post.
    app.moments(None).await.delete_post(PostRef { post_id }).await.unwrap();
    assert_eq!(get(&mut bob.moments, post_id).await.unwrap_err(), Code::NotFound);
}

async fn another_app_reaches_none_of_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.new_app().await;
    let second = server.new_app().await;
    let [mut ann, _bob] = users(&first, &["ann", "bob"]).await.try_into().unwrap_or_else(|_| unreachable!());
    first.make_friends(&[("ann", "bob")]).await;
    let post_id = publish(&mut ann.moments, "ours", Visibility::Public, &[]).await;

    // The same user ids in another app are other users.
    let [mut other_ann, mut other_bob] =
        users(&second, &["ann", "bob"]).await.try_into().unwrap_or_else(|_| unreachable!());
    assert_eq!(get(&mut other_bob.moments, post_id).await.unwrap_err(), Code::NotFound);
    assert_eq!(code(other_bob.moments.like(PostRef { post_id }).await), Code::NotFound);
    assert_eq!(code(other_bob.moments.add_comment(comment(post_id, "hi", 0)).await), Code::NotFound);
    assert_eq!(code(other_ann.moments.delete_post(PostRef { post_id }).await), Code::NotFound);
    let as_app = second.moments(None).await.get_post(PostRef { post_id }).await;
    assert_eq!(code(as_app), Code::NotFound, "nor can the other app itself");
    assert!(timeline(&mut other_bob.moments, "ann").await.is_empty());
    assert!(feed(&mut other_bob.moments, 10).await.is_empty());
    let friends = other_ann.friends.list_friends(gim::proto::logic::v1::ListFriendsRequest::default()).await;
    assert!(friends.unwrap().into_inner().friends.is_empty(), "ann's friends are in the first app only");
    assert!(get(&mut ann.moments, post_id).await.unwrap().likes.is_empty());
}

async fn users_are_held_to_their_rates(backend: Backend) {
    use gim::proto::logic::v1::{ListFriendRequestsRequest, SendFriendRequestRequest};
    let server = TestServer::start_with(backend, |config| {
        config.rates.friend_requests_per_hour = 2;
        config.rates.moment_writes_per_minute = 3;
    })
    .await;
    let app = server.new_app().await;
    let [mut ann, _bob, _cat, mut dan] =
        users(&app, &["ann", "bob", "cat", "dan"]).await.try_into().unwrap_or_else(|_| unreachable!());
    let ask = |to: &str| SendFriendRequestRequest { user_id: to.into(), greeting: String::new() };
    ann.friends.send_request(ask("bob")).await.unwrap();
    ann.friends.send_request(ask("cat")).await.unwrap();
    assert_eq!(code(ann.friends.send_request(ask("dan")).await), Code::ResourceExhausted);
    let asked = dan.friends.list_requests(ListFriendRequestsRequest { incoming: true }).await.unwrap().into_inner();
    assert!(asked.requests.is_empty() && app.inbox("dan").await.is_empty(), "a refused request leaves nothing");
    dan.friends.send_request(ask("ann")).await.expect("another user has a rate of its own");

    let post_id = publish(&mut ann.moments, "one", Visibility::Public, &[]).await;
    ann.moments.like(PostRef { post_id }).await.unwrap();
    ann.moments.add_comment(comment(post_id, "first", 0)).await.unwrap();
    assert_eq!(code(ann.moments.publish(post("two", Visibility::Public, &[])).await), Code::ResourceExhausted);
    assert_eq!(code(ann.moments.add_comment(comment(post_id, "second", 0)).await), Code::ResourceExhausted);
    assert_eq!(timeline(&mut ann.moments, "ann").await.len(), 1);
    assert_eq!(get(&mut ann.moments, post_id).await.unwrap().comments.len(), 1);
}
