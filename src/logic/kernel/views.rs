//! Messages as the APIs show them: what the store reads lacks the message each one
//! replies to, as it is now, and the reactions on it, for one viewer.

use std::collections::{BTreeSet, HashMap};

use crate::{
    logic::Result,
    model::{AppId, Message, MessageStatus, MessageType, ReplyTo},
    proto::common::v1::message_body::Content,
    store::{ConversationStore, ReactionStore},
};

/// Characters of the original a reply shows.
const SNIPPET_CHARS: usize = 100;

/// What a context's store must read for views of messages.
pub trait ViewStore: ConversationStore + ReactionStore {}

impl<T: ConversationStore + ReactionStore + ?Sized> ViewStore for T {}

/// A reply's view of the message it answers, as that message is now.
pub fn reply_of(original: &Message) -> ReplyTo {
    let recalled = original.status == MessageStatus::Recalled;
    let snippet = match &original.body.content {
        _ if recalled => String::new(),
        Some(Content::Text(text)) => text.text.chars().take(SNIPPET_CHARS).collect(),
        Some(Content::Image(_)) => "[image]".into(),
        Some(Content::Audio(_)) => "[audio]".into(),
        Some(Content::Video(_)) => "[video]".into(),
        Some(Content::File(file)) => format!("[file] {}", file.name.chars().take(SNIPPET_CHARS).collect::<String>()),
        Some(Content::Sticker(_)) => "[sticker]".into(),
        Some(Content::Location(location)) => {
            format!("[location] {}", location.title.chars().take(SNIPPET_CHARS).collect::<String>())
        }
        Some(Content::Custom(custom)) => format!("[{}]", custom.kind.chars().take(SNIPPET_CHARS).collect::<String>()),
        Some(Content::System(_) | Content::Revision(_)) | None => String::new(),
    };
    ReplyTo {
        message_id: original.id,
        sender_user_id: original.sender_user_id.clone(),
        r#type: original.message_type as i32,
        snippet,
        recalled,
    }
}

/// Fills in what messages read from the store lack: what each replies to, as it is
/// now, and the reactions on each (`mine` for `viewer`).
pub async fn decorate(store: &dyn ViewStore, app: AppId, viewer: &str, messages: &mut [Message]) -> Result<()> {
    let replied: Vec<u64> =
        messages.iter().map(|m| m.meta.reply_to).filter(|id| *id != 0).collect::<BTreeSet<_>>().into_iter().collect();
    if !replied.is_empty() {
        let originals: HashMap<u64, ReplyTo> = store
            .messages_by_id(app, &replied)
            .await?
            .iter()
            .map(|original| (original.id, reply_of(original)))
            .collect();
        for message in messages.iter_mut().filter(|m| m.meta.reply_to != 0) {
            message.reply_to = originals.get(&message.meta.reply_to).cloned();
        }
    }
    let reactable: Vec<u64> = messages
        .iter()
        .filter(|m| m.status == MessageStatus::Normal && m.message_type != MessageType::Revision)
        .map(|m| m.id)
        .collect();
    if !reactable.is_empty() {
        let mut reactions: HashMap<u64, Vec<_>> = HashMap::new();
        for (id, count) in store.message_reactions(app, &reactable, viewer).await? {
            reactions.entry(id).or_default().push(count);
        }
        for message in messages.iter_mut() {
            if let Some(counts) = reactions.remove(&message.id) {
                message.reactions = counts;
            }
        }
    }
    Ok(())
}
