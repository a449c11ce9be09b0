//! `gim.logic.v1.Messages`: what a user does to a message after sending it, for devices
//! (acting as their user) and business backends (acting as `x-gim-acting-user`, or as
//! the app, which may recall any message).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{auth, session_calls::SessionCalls};
use crate::{
    logic::{Error, Messaging, SearchInput},
    model::ConversationType,
    proto::{
        common::v1 as pb,
        logic::v1::{self as api, messages_server::Messages},
    },
};

pub struct MessagesApi {
    gate: auth::Gate,
    messaging: Arc<Messaging>,
    calls: SessionCalls,
}

impl MessagesApi {
    pub fn new(gate: auth::Gate, calls: SessionCalls) -> Self {
        Self { gate, messaging: calls.messaging.clone(), calls }
    }
}

fn conversation_type(value: i32) -> Result<ConversationType, Error> {
    ConversationType::try_from(value).map_err(|_| Error::invalid(format!("unknown conversation_type {value}")))
}

#[tonic::async_trait]
impl Messages for MessagesApi {
    async fn recall_message(&self, request: Request<api::MessageRef>) -> Result<Response<pb::Message>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let message = self.messaging.recall(&caller, request.into_inner().message_id).await?;
        Ok(Response::new(message.into()))
    }

    async fn edit_message(&self, request: Request<api::EditMessageRequest>) -> Result<Response<pb::Message>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let message = self.messaging.edit(&caller, request.message_id, request.text).await?;
        Ok(Response::new(message.into()))
    }

    async fn delete_messages(
        &self,
        request: Request<api::DeleteMessagesRequest>,
    ) -> Result<Response<api::DeleteMessagesResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let kind = conversation_type(request.conversation_type)?;
        let seq = self.messaging.delete_for_me(&caller, (kind, &request.conversation_id), &request.message_ids).await?;
        Ok(Response::new(api::DeleteMessagesResponse { seq }))
    }

    async fn add_reaction(
        &self,
        request: Request<api::ReactionRequest>,
    ) -> Result<Response<api::ReactionsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let reactions = self.messaging.react(&caller, request.message_id, &request.emoji, true).await?;
        Ok(Response::new(api::ReactionsResponse { reactions }))
    }

    async fn remove_reaction(
        &self,
        request: Request<api::ReactionRequest>,
    ) -> Result<Response<api::ReactionsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let reactions = self.messaging.react(&caller, request.message_id, &request.emoji, false).await?;
        Ok(Response::new(api::ReactionsResponse { reactions }))
    }

    async fn forward_message(
        &self,
        request: Request<api::ForwardMessageRequest>,
    ) -> Result<Response<api::ForwardMessageResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let targets = request
            .targets
            .into_iter()
            .map(|target| Ok((conversation_type(target.conversation_type)?, target.conversation_id)))
            .collect::<Result<Vec<_>, Error>>()?;
        let sent = self.messaging.forward(&caller, request.message_id, &targets, &request.client_msg_id).await?;
        Ok(Response::new(api::ForwardMessageResponse {
            sent: sent
                .into_iter()
                .map(|sent| api::SendMessageResponse {
                    message_id: sent.message_id,
                    seq: sent.seq,
                    sent_at_ms: sent.sent_at_ms,
                })
                .collect(),
        }))
    }

    async fn search_messages(
        &self,
        request: Request<api::SearchMessagesRequest>,
    ) -> Result<Response<api::SearchMessagesResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let conversation = match request.conversation_type {
            0 if request.conversation_id.is_empty() => None,
            kind => Some((conversation_type(kind)?, request.conversation_id)),
        };
        let input = SearchInput {
            query: request.query,
            conversation,
            sender_user_id: Some(request.sender_user_id).filter(|sender| !sender.is_empty()),
            after_ms: request.after_ms,
            before_ms: request.before_ms,
            page_token: request.page_token,
            limit: request.limit,
        };
        let (page, next_page_token) = self.messaging.search(&caller, input).await?;
        Ok(Response::new(api::SearchMessagesResponse {
            messages: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn typing(&self, request: Request<api::TypingRequest>) -> Result<Response<api::TypingResponse>, Status> {
        let caller = auth::device(&self.gate, request.metadata()).await?;
        Ok(Response::new(self.calls.typing(&caller, request.into_inner()).await?))
    }
}
