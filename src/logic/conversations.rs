//! A user's conversation list: what a chat app opens on, each conversation with its last
//! message, its unread and mention counts and the user's settings, paged by activity,
//! and synced incrementally by the user's conversation version. The counts are written
//! by the store with the messages and reads that change them; this module reads them
//! and names what they are about (the peer's profile, the group's name).

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use super::{
    ConversationKey, Error, Result, SharedCaller,
    kernel::{lookups, paging, revisions::revision_message, validate, writer::MessageWriter},
    rules::message::SendRules,
};
use crate::{
    config::Limits,
    delivery::{Delivery, DeviceRef, Push},
    frames,
    model::{
        AppId, Conversation, ConversationSettings, ConversationType, Group, Message, Recipient, RevisionBody,
        RevisionKind, User, now_ms,
    },
    proto::client::v1::{ConversationEvent, event_push::Event},
    store::{ConversationMark, ConversationStore, ConversationTotals, GroupStore, ReadStore, UserStore},
};

/// A conversation as its user sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationView {
    pub conversation: Conversation,
    /// The latest message, with the user's seq.
    pub last_message: Option<Message>,
    /// The other user of a direct conversation.
    pub peer: Option<User>,
    /// The group of a group conversation.
    pub group: Option<Group>,
}

/// A page of the list, latest activity first.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationPage {
    pub items: Vec<ConversationView>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<ConversationMark>,
    pub totals: ConversationTotals,
}

/// What changed after a version.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationChanges {
    pub items: Vec<ConversationView>,
    pub has_more: bool,
    /// The version to sync from next.
    pub version: u64,
    pub unread: u64,
}

/// How far before the time of a conversation version `SyncConversations` looks for
/// changes on large groups' timelines: their messages' times come from the clocks of the
/// nodes that wrote them, and a batch commits a little after it is timed.
const TIMELINE_SYNC_MARGIN_MS: i64 = 60_000;

/// The list's order: latest activity first, then by key.
fn activity_order(row: &Conversation) -> (std::cmp::Reverse<i64>, i32, String) {
    (std::cmp::Reverse(row.last_at_ms), row.conversation_type as i32, row.conversation_id.clone())
}

/// Page tokens: `<last_at_ms>:<type>:<id>` (ids may hold `:`, so they go last).
pub fn page_token(mark: &ConversationMark) -> String {
    format!("{}:{}:{}", mark.last_at_ms, mark.conversation_type as i32, mark.conversation_id)
}

pub fn parse_page_token(token: &str) -> Result<Option<ConversationMark>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("page_token is not one ListConversations gave");
    let mut parts = token.splitn(3, ':');
    let last_at_ms = parts.next().and_then(|ms| ms.parse().ok()).ok_or_else(bad)?;
    let kind = parts.next().and_then(|kind| kind.parse::<i32>().ok()).ok_or_else(bad)?;
    let conversation_type = ConversationType::try_from(kind).map_err(|_| bad())?;
    let conversation_id = parts.next().ok_or_else(bad)?.to_owned();
    Ok(Some(ConversationMark { last_at_ms, conversation_type, conversation_id }))
}

fn acting_user(caller: &SharedCaller) -> Result<&str> {
    caller.user().ok_or_else(|| Error::invalid("conversations are a user's: act as one (x-gim-acting-user)"))
}

/// What the conversation list reads.
pub trait ConversationsStore: ConversationStore + GroupStore + ReadStore + UserStore {}

impl<T: ConversationStore + GroupStore + ReadStore + UserStore + ?Sized> ConversationsStore for T {}

/// The use cases of a user's conversation list.
pub struct Conversations {
    store: Arc<dyn ConversationsStore>,
    /// Writes the revisions that tell a user's devices of a clearing.
    writer: MessageWriter,
    /// Tells a user's other devices of a change to a conversation.
    delivery: Arc<dyn Delivery>,
    limits: Arc<Limits>,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations").finish_non_exhaustive()
    }
}

impl Conversations {
    pub fn new(
        store: Arc<dyn ConversationsStore>,
        writer: MessageWriter,
        delivery: Arc<dyn Delivery>,
        limits: Arc<Limits>,
    ) -> Self {
        Self { store, writer, delivery, limits }
    }

    pub async fn list_conversations(
        &self,
        caller: &SharedCaller,
        after: Option<ConversationMark>,
        limit: i32,
    ) -> Result<ConversationPage> {
        let user = acting_user(caller)?;
        let totals = self.store.conversation_totals(caller.app, user).await?;
        let limit = paging::page_limit(&self.limits, limit)? as usize;
        let mut rows = self.store.conversations(caller.app, user, after.as_ref(), limit as u32 + 1).await?;
        if totals.on_timeline > 0 {
            // Large groups' rows are few, and their activity is their group's: merged here.
            let timeline = self.store.timeline_conversations(caller.app, user, 0, 0).await?;
            rows.extend(
                timeline.into_iter().filter(|row| !row.hidden && after.as_ref().is_none_or(|a| a.precedes(row))),
            );
            rows.sort_by_key(activity_order);
        }
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next = has_more.then(|| rows.last()).flatten().map(|last| ConversationMark {
            last_at_ms: last.last_at_ms,
            conversation_type: last.conversation_type,
            conversation_id: last.conversation_id.clone(),
        });
        Ok(ConversationPage { items: self.conversation_views(caller, rows).await?, next, totals })
    }

    /// Conversations changed after `after_version`. A page never ends inside a version
    /// (a batch of messages gives a user's conversations one version), so syncing from
    /// the answer's version misses nothing.
    pub async fn sync_conversations(
        &self,
        caller: &SharedCaller,
        after_version: u64,
        limit: i32,
    ) -> Result<ConversationChanges> {
        let user = acting_user(caller)?;
        let limit = paging::page_limit(&self.limits, limit)?;
        let totals = self.store.conversation_totals(caller.app, user).await?;
        if after_version > totals.version {
            return Err(Error::invalid(format!(
                "after_version {after_version} is ahead of the user's conversation version {}",
                totals.version
            )));
        }
        let mut rows = self.store.changed_conversations(caller.app, user, after_version, limit + 1).await?;
        let has_more = rows.len() > limit as usize;
        if has_more {
            let cut = rows[limit as usize].version;
            rows.retain(|row| row.version < cut);
            if rows.is_empty() {
                // One version holds more than a page: give all of it.
                let whole = self.limits.max_page_size.max(limit) * 64;
                rows = self.store.changed_conversations(caller.app, user, cut - 1, whole).await?;
                rows.retain(|row| row.version == cut);
            }
        }
        let version = match (has_more, rows.last()) {
            (true, Some(last)) => last.version,
            _ => totals.version,
        };
        // A large group's messages bump no member's version: its rows come when its
        // timeline changed since the version was reached (with a margin for clocks).
        if totals.on_timeline > 0 {
            let timelines = self.store.timeline_conversations(caller.app, user, after_version, TIMELINE_SYNC_MARGIN_MS);
            rows.extend(timelines.await?);
        }
        Ok(ConversationChanges {
            items: self.conversation_views(caller, rows).await?,
            has_more,
            version,
            unread: totals.unread,
        })
    }

    pub async fn update_conversation(
        &self,
        caller: &SharedCaller,
        (conversation_type, conversation_id): (ConversationType, &str),
        settings: ConversationSettings,
    ) -> Result<ConversationView> {
        let user = acting_user(caller)?;
        match conversation_type {
            ConversationType::Direct | ConversationType::Group => validate::id("conversation_id", conversation_id)?,
            ConversationType::System if conversation_id.is_empty() => {}
            ConversationType::System => return Err(Error::invalid("the system conversation's id is empty")),
            ConversationType::Unspecified => return Err(Error::invalid("conversation_type is required")),
        }
        if let Some(draft) = &settings.draft {
            validate::text("draft", draft, self.limits.max_text_chars)?;
        }
        let key = (conversation_type, conversation_id);
        self.check_conversation_exists(caller, user, key).await?;
        let updated = self.store.update_conversation(caller.app, user, key, &settings, now_ms()).await?;
        self.announce_conversation(caller, user, &updated);
        Ok(self.conversation_views(caller, vec![updated]).await?.remove(0))
    }

    /// A conversation the user has (a former group member keeps its group's), or one it
    /// may start: with a user that exists, in a group it is in. Nothing else gets a row.
    async fn check_conversation_exists(
        &self,
        caller: &SharedCaller,
        user: &str,
        (kind, id): (ConversationType, &str),
    ) -> Result<()> {
        if kind == ConversationType::System || self.store.conversation(caller.app, user, (kind, id)).await?.is_some() {
            return Ok(());
        }
        match kind {
            ConversationType::Direct => match self.store.get_users(caller.app, &[id.to_owned()]).await?.is_empty() {
                true => Err(Error::not_found(format!("user {id} does not exist"))),
                false => Ok(()),
            },
            _ => match self.store.group_member(caller.app, id, user).await? {
                Some(_) => Ok(()),
                None => Err(Error::not_found(format!("you have no conversation in group {id}"))),
            },
        }
    }

    /// Clears a conversation's history for the user (see `clear_history`), as the list
    /// shows it after.
    pub async fn clear_conversation(
        &self,
        caller: &SharedCaller,
        key: (ConversationType, &str),
        up_to_seq: u64,
    ) -> Result<ConversationView> {
        let cleared = self.clear_history(caller, key, up_to_seq).await?;
        Ok(self.conversation_views(caller, vec![cleared]).await?.remove(0))
    }

    /// Clears a conversation's history for the user up to `up_to_seq` (its inbox seq; a
    /// large group's group seq; 0: everything so far): history and search leave it out,
    /// it no longer counts as unread, and the user's devices get a revision.
    async fn clear_history(
        &self,
        caller: &SharedCaller,
        (kind, conversation_id): ConversationKey<'_>,
        up_to_seq: u64,
    ) -> Result<Conversation> {
        let user = caller.require_user()?;
        match kind {
            ConversationType::Direct | ConversationType::Group => validate::id("conversation_id", conversation_id)?,
            ConversationType::System if conversation_id.is_empty() => {}
            ConversationType::System => return Err(Error::invalid("the system conversation has an empty id")),
            ConversationType::Unspecified => return Err(Error::invalid("conversation_type is required")),
        }
        let existing = self.store.conversation(caller.app, user, (kind, conversation_id)).await?;
        let up_to = self.clear_point(caller.app, user, (kind, conversation_id), existing.as_ref(), up_to_seq).await?;
        if up_to == 0 {
            return Err(Error::FailedPrecondition("nothing to clear: the conversation has no message".into()));
        }
        // The same for every kind of conversation: a clear that moves nothing is refused,
        // so a repeated one writes nothing and tells no device.
        let cleared = existing.as_ref().map_or(0, |c| c.cleared_seq);
        if up_to <= cleared {
            return Err(Error::FailedPrecondition(format!(
                "nothing to clear: the history is cleared up to seq {cleared} already"
            )));
        }
        let revision = RevisionBody {
            kind: RevisionKind::Clear as i32,
            message_ids: Vec::new(),
            actor_user_id: user.to_owned(),
            text: None,
            up_to_seq: up_to,
        };
        let own = vec![Recipient { user_id: user.to_owned(), conversation_id: conversation_id.to_owned() }];
        let notice = revision_message(validate::generated_id("clear_"), (kind, conversation_id), revision, own);
        self.writer.write(caller.app, notice, SendRules::default()).await?;
        self.store
            .conversation(caller.app, user, (kind, conversation_id))
            .await?
            .ok_or_else(|| Error::internal("a cleared conversation has no row"))
    }

    /// The seq a clear of `up_to_seq` reaches in the user's conversation: a large group's
    /// timeline seq for a member (its latest for 0), else an inbox seq of the conversation
    /// (its last for 0).
    async fn clear_point(
        &self,
        app: AppId,
        user: &str,
        (kind, conversation_id): ConversationKey<'_>,
        existing: Option<&Conversation>,
        up_to_seq: u64,
    ) -> Result<u64> {
        let large_group = match kind {
            ConversationType::Group => {
                let group = lookups::existing_group(self.store.as_ref(), app, conversation_id).await?;
                let member = self.store.group_member(app, conversation_id, user).await?;
                if member.is_none() && existing.is_none() {
                    return Err(Error::not_found(format!("you have no conversation in group {conversation_id}")));
                }
                // Members of a large group read its timeline; a former member, what it kept
                // in its inbox.
                (group.large && member.is_some()).then_some(group.seq)
            }
            _ => None,
        };
        match (large_group, up_to_seq) {
            (Some(latest), 0) => Ok(latest),
            (Some(latest), seq) if seq <= latest => Ok(seq),
            (Some(latest), seq) => {
                Err(Error::invalid(format!("up_to_seq {seq} is past the group's latest seq {latest}")))
            }
            (None, 0) => Ok(existing.map_or(0, |c| c.last_seq)),
            (None, seq) => match self.store.inbox_entry(app, user, seq).await? {
                Some(entry) if entry.conversation_type == kind && entry.conversation_id == conversation_id => Ok(seq),
                _ => Err(Error::invalid(format!("seq {seq} is not one of this conversation's"))),
            },
        }
    }

    /// Tells the user's other devices (all of them when the business made the change).
    fn announce_conversation(&self, caller: &SharedCaller, user: &str, conversation: &Conversation) {
        let frame = frames::event(Event::Conversation(ConversationEvent {
            conversation_type: conversation.conversation_type as i32,
            conversation_id: conversation.conversation_id.clone(),
            version: conversation.version,
        }));
        let skip =
            caller.device_id.as_ref().map(|device| DeviceRef { user_id: user.to_owned(), device_id: device.clone() });
        let push = Push { app: caller.app, users: vec![user.to_owned()], group: None, skip, seq: 0, frame };
        self.delivery.deliver(vec![push]);
    }

    /// Names what each conversation is about, and reads its last message.
    async fn conversation_views(
        &self,
        caller: &SharedCaller,
        rows: Vec<Conversation>,
    ) -> Result<Vec<ConversationView>> {
        let app = caller.app;
        let ids: Vec<u64> = rows.iter().map(|row| row.last_message_id).filter(|id| *id != 0).collect();
        let mut messages: HashMap<u64, Message> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(self.limits.max_page_size as usize) {
            messages.extend(self.store.messages_by_id(app, chunk).await?.into_iter().map(|m| (m.id, m)));
        }
        let peers: BTreeSet<String> = rows
            .iter()
            .filter(|row| row.conversation_type == ConversationType::Direct)
            .map(|row| row.conversation_id.clone())
            .collect();
        let peers: Vec<String> = peers.into_iter().collect();
        let mut users: HashMap<String, User> = HashMap::new();
        for chunk in peers.chunks(self.limits.max_page_size as usize) {
            users.extend(self.store.get_users(app, chunk).await?.into_iter().map(|u| (u.user_id.clone(), u)));
        }
        let group_ids: BTreeSet<&str> = rows
            .iter()
            .filter(|row| row.conversation_type == ConversationType::Group)
            .map(|row| row.conversation_id.as_str())
            .collect();
        let group_ids: Vec<&str> = group_ids.into_iter().collect();
        let mut groups: HashMap<String, Group> = HashMap::new();
        for chunk in group_ids.chunks(self.limits.max_page_size as usize) {
            groups.extend(self.store.get_groups(app, chunk).await?.into_iter().map(|g| (g.group_id.clone(), g)));
        }
        Ok(rows
            .into_iter()
            .map(|conversation| {
                // On a timeline the message has its group seq, and no seq of the user's.
                let last_message = messages.remove(&conversation.last_message_id).map(|mut message| {
                    message.seq = if conversation.on_timeline { 0 } else { conversation.last_seq };
                    message
                });
                let peer = users.get(&conversation.conversation_id).cloned();
                let group = groups.get(&conversation.conversation_id).cloned();
                let (peer, group) = match conversation.conversation_type {
                    ConversationType::Direct => (peer, None),
                    ConversationType::Group => (None, group),
                    _ => (None, None),
                };
                ConversationView { conversation, last_message, peer, group }
            })
            .collect())
    }
}
