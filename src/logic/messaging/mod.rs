//! Messages: sending (one-to-one, to groups, to every user of an app), syncing inboxes
//! and large groups' timelines, history, what users do to messages after sending them
//! (recall, edit, delete for oneself, reactions, forwards), reads and receipts, search,
//! typing, and business events to devices. Every call that names a message applies the
//! one visibility rule (`rules::visibility`).

mod actions;
mod broadcast;
mod groups;
mod reads;
mod search;
mod send;
mod visibility;

use std::sync::Arc;

pub use broadcast::{ANNOUNCEMENTS, BroadcastContent, Broadcasted};
pub use groups::GroupSent;
pub use search::SearchInput;
pub use send::{MessageSender, Outgoing, Sent, SyncPage};

use crate::{
    config::{Limits, MessagesConfig},
    delivery::Delivery,
    logic::kernel::{
        directory::AppDirectory, ids::IdGenerator, moderation::Moderation, rate::Rates, views::ViewStore,
        writer::MessageWriter,
    },
    store::{
        AnnouncementStore, ConversationStore, GroupStore, MessageStore, ReadStore, SearchStore, SightingStore,
        UserStore,
    },
};

/// What messaging reads and writes.
pub trait MessagingStore:
    MessageStore + AnnouncementStore + ReadStore + SearchStore + SightingStore + GroupStore + UserStore + ViewStore
{
}

impl<T> MessagingStore for T where
    T: MessageStore
        + AnnouncementStore
        + ReadStore
        + SearchStore
        + SightingStore
        + GroupStore
        + UserStore
        + ConversationStore
        + crate::store::ReactionStore
        + ?Sized
{
}

/// The use cases of messages.
pub struct Messaging {
    store: Arc<dyn MessagingStore>,
    writer: MessageWriter,
    directory: AppDirectory,
    moderation: Arc<Moderation>,
    delivery: Arc<dyn Delivery>,
    /// Ids of announcements (messages get theirs in the writer).
    ids: Arc<IdGenerator>,
    /// Typing notices' rate.
    rates: Arc<Rates>,
    limits: Arc<Limits>,
    messages: MessagesConfig,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging").finish_non_exhaustive()
    }
}

/// What `Messaging` is built from.
pub struct MessagingParts {
    pub store: Arc<dyn MessagingStore>,
    pub writer: MessageWriter,
    pub directory: AppDirectory,
    pub moderation: Arc<Moderation>,
    pub delivery: Arc<dyn Delivery>,
    pub ids: Arc<IdGenerator>,
    pub rates: Arc<Rates>,
    pub limits: Arc<Limits>,
    pub messages: MessagesConfig,
}

impl Messaging {
    pub fn new(parts: MessagingParts) -> Self {
        Self {
            store: parts.store,
            writer: parts.writer,
            directory: parts.directory,
            moderation: parts.moderation,
            delivery: parts.delivery,
            ids: parts.ids,
            rates: parts.rates,
            limits: parts.limits,
            messages: parts.messages,
        }
    }
}
