//! The use cases of gim, by bounded context. Knows nothing of gRPC or WebSockets:
//! callers hand in authenticated callers and plain values, and get domain records or an
//! `Error`.
//!
//! Each context is a service holding only the ports and configuration it uses, over a
//! store trait of its own: `apps` (the operator's apps), `accounts` (users, devices,
//! tokens, passwords), `messaging` (messages, timelines, reads, search), `conversations`
//! (a user's conversation list), `groups`, `social` (friends, moments, presence), `rooms`
//! (live rooms) and `integrations` (webhook endpoints). What several share is in
//! `kernel`; the rules they decide by, as pure functions, in `rules`. `server` builds
//! them (its `Services`), and each API handler holds the ones it serves.

mod accounts;
mod apps;
mod conversations;
mod error;
mod groups;
mod integrations;
pub mod kernel;
mod messaging;
mod rooms;
pub mod rules;
mod social;

pub use accounts::{Accounts, AccountsParts, DeviceInput, Imported, IssuedToken, SignedIn, Tokens, UserInput};
pub use apps::AppAdmin;
pub use conversations::{
    ConversationChanges, ConversationPage, ConversationView, Conversations, ConversationsStore, page_token,
    parse_page_token,
};
pub use error::{Error, ErrorCode, Result};
pub use groups::{GroupInput, Groups};
pub use integrations::{EndpointChange, EndpointInput, Integrations, IntegrationsStore, MAX_REPLAY_IDS};
pub use messaging::{
    ANNOUNCEMENTS, BroadcastContent, Broadcasted, GroupSent, MessageSender, Messaging, MessagingParts, MessagingStore,
    Outgoing, SearchInput, Sent, SyncPage,
};
pub use rooms::{MAX_ROOM_ID_LEN, RoomContent, RoomSent, Rooms, RoomsParts, check_room_id};
pub use social::{PostInput, PostView, PostsPage, Social, SocialParts, SocialStore, WithProfile};

use crate::model::{AppId, AppSettings, ConversationType, DeviceType};
pub use crate::model::{GroupActor, GroupPatch};
pub use crate::store::HistoryCursor;
pub use kernel::ids::IdGenerator;
pub use rules::group::GroupRules;

/// A business backend that proved it holds one of its app's secrets.
#[derive(Debug, Clone)]
pub struct AppCaller {
    pub app: AppId,
    pub settings: AppSettings,
}

/// A device that presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCaller {
    pub app: AppId,
    pub user_id: String,
    pub device_id: String,
    pub device_type: DeviceType,
}

/// Who calls an API that devices and business backends share (groups, friends,
/// moments): a user (a device, or a business acting as one) or the app itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCaller {
    pub app: AppId,
    pub actor: GroupActor,
    /// The device the caller speaks from, if any (its own pushes are skipped).
    pub device_id: Option<String>,
}

impl SharedCaller {
    fn user(&self) -> Option<&str> {
        match &self.actor {
            GroupActor::User(user) => Some(user),
            GroupActor::App => None,
        }
    }

    fn require_user(&self) -> Result<&str> {
        self.user().ok_or_else(|| {
            Error::invalid("this call acts for a user: a device token, or x-gim-acting-user with the app secret")
        })
    }
}

/// A conversation as one user names it: its type and the other user or the group.
pub type ConversationKey<'a> = (ConversationType, &'a str);

/// One page of a list, and whether more follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// Every context of a logic node, as the composition root (`server`) built them; API
/// handlers take the ones they serve.
#[derive(Debug, Clone)]
pub struct Services {
    pub directory: kernel::directory::AppDirectory,
    pub apps: std::sync::Arc<AppAdmin>,
    pub accounts: std::sync::Arc<Accounts>,
    pub messaging: std::sync::Arc<Messaging>,
    pub conversations: std::sync::Arc<Conversations>,
    pub groups: std::sync::Arc<Groups>,
    pub social: std::sync::Arc<Social>,
    pub rooms: std::sync::Arc<Rooms>,
    pub integrations: std::sync::Arc<Integrations>,
    pub limits: std::sync::Arc<crate::config::Limits>,
}
