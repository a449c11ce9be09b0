//! Revisions (recall, edit, delete for oneself, clear) travel as messages: they take seqs,
//! so that every device applies them in order with the messages around them.

use crate::{
    logic::ConversationKey,
    model::{MessageBody, NewMessage, Recipient, RevisionBody},
    proto::common::v1::message_body::Content,
};

/// The message that carries `revision` in conversation `(kind, id)` to `recipients`
/// (none: a group's members, as its messages go).
pub fn revision_message(
    client_msg_id: String,
    (kind, id): ConversationKey<'_>,
    revision: RevisionBody,
    recipients: Vec<Recipient>,
) -> NewMessage {
    NewMessage {
        id: 0,
        client_msg_id,
        sender_user_id: String::new(),
        sender_device_id: String::new(),
        conversation_type: kind,
        receiver_id: id.to_owned(),
        body: MessageBody { content: Some(Content::Revision(revision)) },
        meta: Default::default(),
        reply_to: None,
        sent_at_ms: 0,
        recipients,
    }
}
