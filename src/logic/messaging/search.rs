//! Full-text search of a user's messages. The terms come from `crate::terms`, the same
//! that the store indexed; who may see what is decided by the store's query.

use super::Messaging;
use crate::logic::{
    Error, Page, Result, SharedCaller,
    kernel::{paging, validate, views},
};
use crate::{model::ConversationType, model::Message, store::SearchQuery, terms};

/// Characters of a query.
const MAX_QUERY_CHARS: usize = 200;
/// Terms of a query: each one narrows the matches, past a few they only cost.
const MAX_QUERY_TERMS: usize = 16;

/// A search as the caller asks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchInput {
    pub query: String,
    pub conversation: Option<(ConversationType, String)>,
    pub sender_user_id: Option<String>,
    pub after_ms: i64,
    pub before_ms: i64,
    pub page_token: String,
    pub limit: i32,
}

impl Messaging {
    /// Messages of the caller's user that hold every word of the query, newest first;
    /// the page token is the id of the last message of the page.
    pub async fn search(&self, caller: &SharedCaller, input: SearchInput) -> Result<(Page<Message>, String)> {
        let user = caller.require_user()?;
        if input.query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(format!("query is longer than {MAX_QUERY_CHARS} characters")));
        }
        let terms = terms::query(&input.query);
        if terms.is_empty() {
            return Err(Error::invalid("query has no word to search for"));
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(Error::invalid(format!("query has more than {MAX_QUERY_TERMS} words")));
        }
        if let Some((kind, id)) = &input.conversation {
            match kind {
                ConversationType::Direct | ConversationType::Group => validate::id("conversation_id", id)?,
                _ => return Err(Error::invalid("conversation_type must be direct or group, or unset")),
            }
        }
        if let Some(sender) = &input.sender_user_id {
            validate::id("sender_user_id", sender)?;
        }
        if input.after_ms < 0 || input.before_ms < 0 {
            return Err(Error::invalid("after_ms and before_ms must not be negative"));
        }
        let before_message_id = if input.page_token.is_empty() {
            0
        } else {
            input.page_token.parse().map_err(|_| Error::invalid("page_token is not one this API returned"))?
        };
        let query = SearchQuery {
            user_id: user,
            terms: &terms,
            conversation: input.conversation.as_ref().map(|(kind, id)| (*kind, id.as_str())),
            sender_user_id: input.sender_user_id.as_deref(),
            after_ms: input.after_ms,
            before_ms: input.before_ms,
            before_message_id,
            limit: 0,
        };
        let read = |limit| async move { self.store.search_messages(caller.app, &SearchQuery { limit, ..query }).await };
        let mut page = paging::page(&self.limits, input.limit, read).await?;
        views::decorate(self.store.as_ref(), caller.app, user, &mut page.items).await?;
        let next = match page.items.last() {
            Some(last) if page.has_more => last.id.to_string(),
            _ => String::new(),
        };
        Ok((page, next))
    }
}
