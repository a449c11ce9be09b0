//! `gim.logic.v1.Conversations`: a user's conversation list, for devices (acting as
//! their user) and business backends (acting as `x-gim-acting-user`).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{auth, convert};
use crate::{
    logic::{Conversations as ConversationList, Error, page_token, parse_page_token},
    model::{ConversationSettings, ConversationType},
    proto::logic::v1::{self as api, conversations_server::Conversations},
};

pub struct ConversationsApi {
    gate: auth::Gate,
    conversations: Arc<ConversationList>,
}

impl ConversationsApi {
    pub fn new(gate: auth::Gate, conversations: Arc<ConversationList>) -> Self {
        Self { gate, conversations }
    }
}

fn conversation_type(value: i32) -> Result<ConversationType, Error> {
    ConversationType::try_from(value).map_err(|_| Error::invalid(format!("unknown conversation_type {value}")))
}

#[tonic::async_trait]
impl Conversations for ConversationsApi {
    async fn list_conversations(
        &self,
        request: Request<api::ListConversationsRequest>,
    ) -> Result<Response<api::ListConversationsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let after = parse_page_token(&request.page_token)?;
        let page = self.conversations.list_conversations(&caller, after, request.limit).await?;
        Ok(Response::new(api::ListConversationsResponse {
            conversations: page.items.into_iter().map(convert::conversation).collect(),
            next_page_token: page.next.as_ref().map(page_token).unwrap_or_default(),
            total_unread: page.totals.unread,
            version: page.totals.version,
        }))
    }

    async fn sync_conversations(
        &self,
        request: Request<api::SyncConversationsRequest>,
    ) -> Result<Response<api::SyncConversationsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let changes = self.conversations.sync_conversations(&caller, request.after_version, request.limit).await?;
        Ok(Response::new(api::SyncConversationsResponse {
            conversations: changes.items.into_iter().map(convert::conversation).collect(),
            has_more: changes.has_more,
            version: changes.version,
            total_unread: changes.unread,
        }))
    }

    async fn clear_history(
        &self,
        request: Request<api::ClearHistoryRequest>,
    ) -> Result<Response<api::Conversation>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let kind = conversation_type(request.conversation_type)?;
        let view =
            self.conversations.clear_conversation(&caller, (kind, &request.conversation_id), request.up_to_seq).await?;
        Ok(Response::new(convert::conversation(view)))
    }

    async fn update_conversation(
        &self,
        request: Request<api::UpdateConversationRequest>,
    ) -> Result<Response<api::Conversation>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let kind = conversation_type(request.conversation_type)?;
        let settings = ConversationSettings {
            pinned: request.pinned,
            muted: request.muted,
            hidden: request.hidden,
            draft: request.draft,
        };
        let view = self.conversations.update_conversation(&caller, (kind, &request.conversation_id), settings).await?;
        Ok(Response::new(convert::conversation(view)))
    }
}
