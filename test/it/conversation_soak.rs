//! A model of every user's conversations checked against gim's list after random
//! operations: direct and group sends with mentions, reads, clears, recalls, deletions for
//! oneself, members joining and leaving, and the group's switch from small (inbox fan-out)
//! to large (one timeline) on the way. The model knows nothing of inboxes, timelines or
//! seqs: a conversation is its messages in order, with a read point and a clear point.

use std::collections::{BTreeMap, HashMap, HashSet};

use gim::proto::{
    common::v1::Message,
    logic::v1::{
        BusinessSendRequest, BusinessSyncRequest, ClearHistoryRequest, DeleteMessagesRequest, GroupHistoryRequest,
        GroupRef, GroupSendRequest, ListConversationsRequest, MarkReadRequest, MembersRequest, MessageRef,
        conversations_client::ConversationsClient, messages_client::MessagesClient,
    },
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Meta, TestApp, TestServer, channel, make_group, mentioning, text},
};

both_stores!(every_list_matches_the_model_through_joins_leaves_and_the_switch_to_large);

const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
const GROUP: &str = "g";
/// Direct (1) and group (2) conversations, as the API numbers them.
const DIRECT: i32 = 1;
const GROUPS: i32 = 2;

/// What the model knows of a message.
#[derive(Debug, Default)]
struct Fact {
    sender: String,
    mentions: Vec<String>,
    recalled: bool,
    deleted_by: HashSet<String>,
    /// A group message sent while the group was large: on its timeline, in no inbox but
    /// those of `in_inboxes` (the news of a leave reaches the leaver's).
    on_timeline: bool,
    in_inboxes: HashSet<String>,
}

/// A user's points in one conversation, as indexes into its messages.
#[derive(Debug, Default, Clone, Copy)]
struct Points {
    /// Messages up to and at this index are read (`None`: none).
    read: Option<usize>,
    /// Messages up to and at this index are cleared.
    cleared: Option<usize>,
}

impl Points {
    fn past(self) -> Option<usize> {
        self.read.max(self.cleared)
    }
}

#[derive(Default)]
struct Model {
    facts: HashMap<u64, Fact>,
    /// Each direct conversation's messages in order, by the pair (sorted).
    direct: BTreeMap<(String, String), Vec<u64>>,
    /// The group's messages in order, notices included.
    group: Vec<u64>,
    /// When each user was a member: index of the first message it sees, and of the last
    /// (the news of its leave), if it left.
    membership: HashMap<String, Vec<(usize, Option<usize>)>>,
    points: HashMap<(String, i32, String), Points>,
    large: bool,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a < b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) }
}

impl Model {
    /// The messages of `user`'s conversation, in order.
    fn messages(&self, user: &str, kind: i32, id: &str) -> Vec<u64> {
        if kind == DIRECT {
            return self.direct.get(&pair(user, id)).cloned().unwrap_or_default();
        }
        let spans = self.membership.get(user).cloned().unwrap_or_default();
        (0..self.group.len())
            .filter(|index| spans.iter().any(|(from, to)| index >= from && to.is_none_or(|to| *index <= to)))
            .map(|index| self.group[index])
            .collect()
    }

    fn member(&self, user: &str) -> bool {
        self.membership.get(user).and_then(|spans| spans.last()).is_some_and(|(_, to)| to.is_none())
    }

    fn points(&self, user: &str, kind: i32, id: &str) -> Points {
        self.points.get(&(user.to_owned(), kind, id.to_owned())).copied().unwrap_or_default()
    }

    fn index_in(&self, user: &str, kind: i32, id: &str, message: u64) -> usize {
        self.messages(user, kind, id).iter().position(|m| *m == message).expect("a message of the conversation")
    }

    /// Whether `message` is one `user` reads now: in its inbox, or on the timeline of a
    /// large group it is in, since its latest join. A former member no longer counts
    /// what it can no longer open.
    fn readable(&self, user: &str, message: u64) -> bool {
        let fact = &self.facts[&message];
        !fact.on_timeline || fact.in_inboxes.contains(user) || self.since_join(user, message)
    }

    /// Whether `message` is the group's since `user`'s latest join, which it is still in.
    fn since_join(&self, user: &str, message: u64) -> bool {
        let since = self.membership.get(user).and_then(|spans| spans.last()).filter(|(_, to)| to.is_none());
        since.is_some_and(|(from, _)| self.group.iter().position(|m| *m == message).is_some_and(|at| at >= *from))
    }

    /// (last message, unread, mentions) of `user`'s conversation, as gim should list it.
    fn expected(&self, user: &str, kind: i32, id: &str) -> (u64, u64, u64) {
        let messages = self.messages(user, kind, id);
        let points = self.points(user, kind, id);
        let after_clear = |index: usize| points.cleared.is_none_or(|cleared| index > cleared);
        let on_timeline = kind == GROUPS && self.large && self.member(user);
        let last = messages
            .iter()
            .enumerate()
            .rev()
            // A large group's last message is the group's, whoever deleted it for itself.
            .find(|(index, m)| {
                after_clear(*index)
                    && (on_timeline || (!self.facts[m].deleted_by.contains(user) && self.readable(user, **m)))
            })
            .map_or(0, |(_, m)| *m);
        let (mut unread, mut mentions) = (0, 0);
        for (index, message) in messages.iter().enumerate() {
            let fact = &self.facts[message];
            let counted = points.past().is_none_or(|past| index > past)
                && self.readable(user, *message)
                && !fact.sender.is_empty()
                && fact.sender != user
                && !fact.recalled
                && !fact.deleted_by.contains(user);
            if counted {
                unread += 1;
                mentions += u64::from(fact.mentions.iter().any(|m| m == user));
            }
        }
        (last, unread, mentions)
    }

    /// Every conversation `user` has, with what gim should list.
    fn expected_list(&self, user: &str) -> BTreeMap<(i32, String), (u64, u64, u64)> {
        let mut list = BTreeMap::new();
        for (a, b) in self.direct.keys() {
            let peer = match user {
                _ if a == user => b,
                _ if b == user => a,
                _ => continue,
            };
            list.insert((DIRECT, peer.clone()), self.expected(user, DIRECT, peer));
        }
        if self.membership.contains_key(user) {
            list.insert((GROUPS, GROUP.to_owned()), self.expected(user, GROUPS, GROUP));
        }
        list
    }
}

struct Soak {
    app: TestApp,
    model: Model,
    state: u64,
    /// How many of each operation were made, by name.
    done: BTreeMap<&'static str, usize>,
    /// What was done, in order, to show with a mismatch.
    log: Vec<String>,
}

impl Soak {
    fn next(&mut self, n: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % n as u64) as usize
    }

    fn acting(&self, user: &str) -> Meta {
        let app_id = self.app.app_id.to_string();
        Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &self.app.secret), ("x-gim-acting-user", user)])
    }

    async fn inbox(&self, user: &str) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let after_seq = all.last().map_or(0, |m: &Message| m.seq);
            let request = BusinessSyncRequest { user_id: user.into(), after_seq, limit: 200 };
            let page = self.app.business().await.sync(request).await.unwrap().into_inner();
            all.extend(page.messages);
            if !page.has_more {
                return all;
            }
        }
    }

    /// The group's messages in order, as its owner (a member from the start who deletes
    /// and clears nothing) sees them: the model's order of the group.
    async fn refresh_group(&mut self) {
        let mut newest_first = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = GroupHistoryRequest { group_id: GROUP.into(), page_token, limit: 100 };
            let page = self.app.groups(Some("u0")).await.get_history(request).await.unwrap().into_inner();
            newest_first.extend(page.messages);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let known = self.model.group.len();
        let all: Vec<Message> = newest_first.into_iter().rev().collect();
        assert_eq!(all[..known].iter().map(|m| m.id).collect::<Vec<_>>(), self.model.group, "the group's order holds");
        for message in &all[known..] {
            self.model.group.push(message.id);
            let fact = self
                .model
                .facts
                .entry(message.id)
                .or_insert_with(|| Fact { sender: message.sender_user_id.clone(), ..Fact::default() });
            fact.on_timeline = message.group_seq > 0;
        }
    }

    async fn group_send(&mut self, from: &str, step: usize) {
        let mentioned = (self.next(3) == 0).then(|| USERS[1 + self.next(4)].to_owned());
        let body = match &mentioned {
            Some(user) => mentioning("hey", &[user], false),
            None => text("hi"),
        };
        let request = GroupSendRequest {
            group_id: GROUP.into(),
            client_msg_id: format!("g{step}"),
            body,
            reply_to_message_id: 0,
        };
        let id = self.app.groups(Some(from)).await.send_message(request).await.unwrap().into_inner().message_id;
        self.model
            .facts
            .insert(id, Fact { sender: from.into(), mentions: mentioned.into_iter().collect(), ..Fact::default() });
        self.refresh_group().await;
    }

    async fn direct_send(&mut self, from: &str, to: &str, step: usize) {
        let request = BusinessSendRequest {
            sender_user_id: from.into(),
            receiver_user_id: to.into(),
            client_msg_id: format!("d{step}"),
            body: text("hi"),
            reply_to_message_id: 0,
        };
        let id = self.app.business().await.send_message(request).await.unwrap().into_inner().message_id;
        self.model.facts.insert(id, Fact { sender: from.into(), ..Fact::default() });
        self.model.direct.entry(pair(from, to)).or_default().push(id);
    }

    /// `user` leaves the group, or joins it.
    async fn join_or_leave(&mut self, user: &str) {
        if self.model.member(user) {
            self.app.groups(Some(user)).await.leave_group(GroupRef { group_id: GROUP.into() }).await.unwrap();
            self.refresh_group().await;
            let last = self.model.group.len() - 1;
            self.model.membership.get_mut(user).unwrap().last_mut().unwrap().1 = Some(last);
            let news = self.model.group[last];
            self.model.facts.get_mut(&news).unwrap().in_inboxes.insert(user.to_owned());
            *self.done.entry("leave").or_default() += 1;
            self.log.push(format!("{user} leaves (large: {})", self.model.large));
        } else {
            let invite = MembersRequest { group_id: GROUP.into(), user_ids: vec![user.into()] };
            self.app.groups(Some("u0")).await.invite_members(invite).await.unwrap();
            *self.done.entry("join").or_default() += 1;
            self.log.push(format!("{user} joins (large: {})", self.model.large));
            self.refresh_group().await;
            let first = self.model.group.len() - 1;
            self.model.membership.entry(user.to_owned()).or_default().push((first, None));
            let members = USERS.iter().filter(|u| self.model.member(u)).count();
            if members > 4 {
                self.model.large = true;
            }
            let group = self.app.groups(Some("u0")).await.get_group(GroupRef { group_id: GROUP.into() }).await;
            assert_eq!(group.unwrap().into_inner().large, self.model.large, "the group's mode");
        }
    }

    /// The seq `user` names `message` by in a read or a clear: a group seq on a large
    /// group's timeline, else its inbox seq; `None` when it has none there.
    async fn seq_of(&self, user: &str, kind: i32, message: u64) -> Option<u64> {
        if kind == GROUPS && self.model.large && self.model.member(user) {
            let request = GroupHistoryRequest { group_id: GROUP.into(), page_token: String::new(), limit: 200 };
            let history = self.app.groups(Some("u0")).await.get_history(request).await.unwrap().into_inner();
            return history.messages.iter().find(|m| m.id == message).map(|m| m.group_seq).filter(|seq| *seq > 0);
        }
        self.inbox(user).await.iter().find(|m| m.id == message).map(|m| m.seq)
    }

    /// Whether `user` may act on `message` (read to it, clear to it, delete it): it is in
    /// the user's inbox, or on the group's timeline since the user's latest join.
    async fn can_act(&self, user: &str, kind: i32, message: u64) -> bool {
        let since_join = kind == GROUPS
            && self.model.member(user)
            && self.model.membership[user].last().is_some_and(|(from, _)| {
                self.model.group.iter().position(|m| *m == message).is_some_and(|index| index >= *from)
            });
        since_join || self.inbox(user).await.iter().any(|m| m.id == message)
    }

    /// A random conversation of `user` and a random message of it.
    fn pick(&mut self, user: &str) -> Option<(i32, String, u64)> {
        let keys: Vec<(i32, String)> = self.model.expected_list(user).into_keys().collect();
        if keys.is_empty() {
            return None;
        }
        let (kind, id) = keys[self.next(keys.len())].clone();
        let messages = self.model.messages(user, kind, &id);
        if messages.is_empty() {
            return None;
        }
        let message = messages[self.next(messages.len())];
        Some((kind, id, message))
    }

    async fn read(&mut self, user: &str) {
        let Some((kind, id, message)) = self.pick(user) else { return };
        if !self.can_act(user, kind, message).await {
            return;
        }
        // A member of a large group reads on the timeline, by group seq, since its join.
        let on_timeline = kind == GROUPS && self.model.large && self.model.member(user);
        if on_timeline && !self.model.since_join(user, message) {
            return;
        }
        let Some(seq) = self.seq_of(user, kind, message).await else { return };
        let request = MarkReadRequest { conversation_type: kind, conversation_id: id.clone(), seq };
        let mut client = gim::proto::logic::v1::device_client::DeviceClient::with_interceptor(
            channel(self.app.addr).await,
            Meta::new(&[("authorization", &format!("Bearer {}", self.app.device_token(user, "d").await))]),
        );
        client.mark_read(request).await.unwrap_or_else(|err| panic!("{user} reads {id} at {seq}: {err:?}"));
        *self.done.entry("read").or_default() += 1;
        self.log.push(format!("{user} reads {id} at {seq} ({message})"));
        let index = self.model.index_in(user, kind, &id, message);
        let points = self.model.points.entry((user.to_owned(), kind, id)).or_default();
        points.read = points.read.max(Some(index));
    }

    async fn clear(&mut self, user: &str) {
        if user == "u0" {
            return;
        }
        let Some((kind, id, message)) = self.pick(user) else { return };
        if !self.can_act(user, kind, message).await {
            return;
        }
        let Some(seq) = self.seq_of(user, kind, message).await else { return };
        let index = self.model.index_in(user, kind, &id, message);
        let mut client = ConversationsClient::with_interceptor(channel(self.app.addr).await, self.acting(user));
        let request = ClearHistoryRequest { conversation_type: kind, conversation_id: id.clone(), up_to_seq: seq };
        let answer = client.clear_history(request).await;
        let points = self.model.points.entry((user.to_owned(), kind, id.clone())).or_default();
        if points.cleared.is_some_and(|cleared| index <= cleared) {
            let code = answer.map(drop).unwrap_err().code();
            assert_eq!(code, Code::FailedPrecondition, "{user} clears {id} to {seq} again");
            return;
        }
        answer.unwrap_or_else(|err| panic!("{user} clears {id} to {seq}: {err:?}"));
        *self.done.entry("clear").or_default() += 1;
        self.log.push(format!("{user} clears {id} to {seq} ({message})"));
        points.cleared = Some(index);
        points.read = points.read.max(Some(index));
    }

    async fn recall(&mut self, user: &str) {
        let Some((_, _, message)) = self.pick(user) else { return };
        let fact = &self.model.facts[&message];
        if fact.sender.is_empty() || fact.recalled {
            return;
        }
        let app_id = self.app.app_id.to_string();
        let meta = Meta::new(&[("x-gim-app-id", &app_id), ("x-gim-app-secret", &self.app.secret)]);
        let mut app = MessagesClient::with_interceptor(channel(self.app.addr).await, meta);
        app.recall_message(MessageRef { message_id: message }).await.unwrap();
        *self.done.entry("recall").or_default() += 1;
        self.log.push(format!("{user}'s pick {message} recalled"));
        self.model.facts.get_mut(&message).unwrap().recalled = true;
    }

    async fn delete(&mut self, user: &str) {
        if user == "u0" {
            return;
        }
        let Some((kind, id, message)) = self.pick(user) else { return };
        let index = self.model.index_in(user, kind, &id, message);
        let cleared = self.model.points(user, kind, &id).cleared.is_some_and(|cleared| index <= cleared);
        if cleared || !self.can_act(user, kind, message).await {
            return;
        }
        let mut client = MessagesClient::with_interceptor(channel(self.app.addr).await, self.acting(user));
        let request =
            DeleteMessagesRequest { conversation_type: kind, conversation_id: id.clone(), message_ids: vec![message] };
        client.delete_messages(request).await.unwrap_or_else(|err| panic!("{user} deletes in {id}: {err:?}"));
        *self.done.entry("delete").or_default() += 1;
        self.log.push(format!("{user} deletes {message} in {id}"));
        self.model.facts.get_mut(&message).unwrap().deleted_by.insert(user.to_owned());
    }

    /// What the model and gim hold of `user`'s group conversation, and what was done.
    async fn explain(&self, user: &str, listed: &[gim::proto::logic::v1::Conversation]) -> String {
        let mut text = String::new();
        for (index, id) in self.model.messages(user, GROUPS, GROUP).iter().enumerate() {
            let at = self.model.group.iter().position(|m| m == id).unwrap_or(usize::MAX);
            text.push_str(&format!("model #{index} (group #{at}) {id} {:?}\n", self.model.facts[id]));
        }
        text.push_str(&format!(
            "model points {:?}, memberships {:?}, large {}\n",
            self.model.points(user, GROUPS, GROUP),
            self.model.membership.get(user),
            self.model.large
        ));
        for m in self.inbox(user).await.iter().filter(|m| m.receiver_id == GROUP) {
            text.push_str(&format!(
                "inbox seq {} {} from {:?} type {} status {}\n",
                m.seq, m.id, m.sender_user_id, m.r#type, m.status
            ));
        }
        text.push_str(&format!(
            "gim's row {:?}\ndone:\n{}",
            listed.iter().find(|c| c.conversation_id == GROUP),
            self.log.join("\n")
        ));
        text
    }

    async fn check(&self, when: &str) {
        for user in USERS {
            let mut client = ConversationsClient::with_interceptor(channel(self.app.addr).await, self.acting(user));
            let request = ListConversationsRequest { page_token: String::new(), limit: 100 };
            let listed = client.list_conversations(request).await.unwrap().into_inner();
            let got: BTreeMap<(i32, String), (u64, u64, u64)> = listed
                .conversations
                .iter()
                .map(|c| {
                    let last = c.last_message.as_ref().map_or(0, |m| m.id);
                    ((c.conversation_type, c.conversation_id.clone()), (last, c.unread_count, c.mention_count))
                })
                .collect();
            let expected = self.model.expected_list(user);
            if got != expected {
                panic!(
                    "{user}'s list {when}: gim {got:?}, the model {expected:?}\n{}",
                    self.explain(user, &listed.conversations).await
                );
            }
            assert_eq!(listed.total_unread, expected.values().map(|(_, unread, _)| unread).sum::<u64>());
        }
    }
}

async fn every_list_matches_the_model_through_joins_leaves_and_the_switch_to_large(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.groups.large_threshold = 4).await;
    let app = server.new_app().await;
    for user in USERS {
        app.user(user).await;
    }
    make_group(&app, "u0", GROUP, &["u1", "u2"]).await;
    let seed = std::env::var("GIM_SOAK_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut soak = Soak { app, model: Model::default(), state: seed, done: BTreeMap::new(), log: Vec::new() };
    soak.refresh_group().await;
    for user in ["u0", "u1", "u2"] {
        soak.model.membership.insert(user.to_owned(), vec![(0, None)]);
    }
    for step in 0..240 {
        if step == 120 && !soak.model.large {
            // Half way, the group grows large whatever the dice said.
            for user in ["u3", "u4"] {
                if !soak.model.member(user) {
                    soak.join_or_leave(user).await;
                }
            }
        }
        let user = USERS[soak.next(USERS.len())];
        match soak.next(12) {
            0 | 1 => {
                let to = USERS[soak.next(USERS.len())];
                if to != user {
                    soak.direct_send(user, to, step).await;
                }
            }
            2..=4 if soak.model.member(user) => soak.group_send(user, step).await,
            5 | 6 => soak.read(user).await,
            7 => soak.clear(user).await,
            8 => soak.recall(user).await,
            9 => soak.delete(user).await,
            10 if user == "u3" || user == "u4" => soak.join_or_leave(user).await,
            _ => {}
        }
        if step % 40 == 39 {
            soak.check(&format!("after step {step}")).await;
        }
    }
    assert!(soak.model.large, "the soak saw the switch to large");
    soak.check("at the end").await;
    for (operation, least) in [("read", 20), ("clear", 5), ("recall", 5), ("delete", 5), ("join", 2), ("leave", 1)] {
        let done = soak.done.get(operation).copied().unwrap_or(0);
        assert!(done >= least, "{done} {operation}s: {:?}", soak.done);
    }
}
