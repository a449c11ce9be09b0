//! Notifications of social changes (`friend.requested`, `moment.liked`, ...): system
//! messages in the recipients' inboxes, written in the transaction of the change, so
//! that they are synced by seq like any message and an offline device catches up.

use super::Social;
use crate::logic::kernel::{pushes::pushes_of, validate};
use crate::{
    model::{AppId, ConversationType, MessageBody, NewMessage, Recipient},
    proto::common::v1::{SystemBody, message_body::Content},
    store::{Notice, StoreError, StoreResult},
};

/// Attempts of a change whose notice id collided with another node's.
const CONFLICT_ATTEMPTS: u32 = 3;

/// A notification to write: the event, who caused it, whom it is about, and details.
pub(super) struct NoticeDraft<'a> {
    pub event: &'a str,
    pub actor: &'a str,
    pub about: &'a [String],
    pub detail: serde_json::Value,
}

impl Social {
    /// The system message carrying `draft` to `recipients` (none are skipped).
    pub(super) fn notice(&self, draft: &NoticeDraft<'_>, recipients: &[String]) -> NewMessage {
        let (id, sent_at_ms) = self.ids.next();
        let detail = if draft.detail.is_null() { String::new() } else { draft.detail.to_string() };
        let body = SystemBody {
            event: draft.event.to_owned(),
            actor_user_id: draft.actor.to_owned(),
            target_user_ids: draft.about.to_vec(),
            detail,
        };
        NewMessage {
            id,
            client_msg_id: validate::generated_id("n_"),
            sender_user_id: String::new(),
            sender_device_id: String::new(),
            conversation_type: ConversationType::System,
            receiver_id: if let [only] = recipients { only.clone() } else { String::new() },
            body: MessageBody { content: Some(Content::System(body)) },
            meta: Default::default(),
            reply_to: None,
            sent_at_ms,
            recipients: recipients
                .iter()
                .map(|user| Recipient { user_id: user.clone(), conversation_id: String::new() })
                .collect(),
        }
    }

    /// Runs a change that writes notices, again with fresh ids if one collided with
    /// another node's (`write` builds its notices anew each time).
    pub(super) async fn with_notices<T, F, Fut>(&self, mut write: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match write().await {
                Err(StoreError::Conflict) if attempt < CONFLICT_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    /// Pushes stored notices to the recipients' online devices.
    pub(super) fn deliver_notices(&self, app: AppId, notices: &[Notice]) {
        let pushes = notices.iter().flat_map(|notice| pushes_of(app, &notice.message, &notice.appended)).collect();
        self.delivery.deliver(pushes);
    }
}
