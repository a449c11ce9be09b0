//! `gim.logic.v1.Groups`: shared by devices (acting as their user) and business
//! backends (acting as `x-gim-acting-user`, or as the app).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{auth, convert, session_calls::SessionCalls};
use crate::{
    logic::{GroupInput, GroupPatch, Groups as GroupService, Messaging},
    model::GroupRole,
    proto::logic::v1::{self as api, groups_server::Groups},
};

pub struct GroupsApi {
    gate: auth::Gate,
    groups: Arc<GroupService>,
    /// A group's history (its sends and timeline go through `calls`).
    messaging: Arc<Messaging>,
    calls: SessionCalls,
}

impl GroupsApi {
    pub fn new(gate: auth::Gate, groups: Arc<GroupService>, calls: SessionCalls) -> Self {
        Self { gate, groups, messaging: calls.messaging.clone(), calls }
    }
}

fn empty() -> Response<api::Empty> {
    Response::new(api::Empty {})
}

#[tonic::async_trait]
impl Groups for GroupsApi {
    async fn create_group(&self, request: Request<api::CreateGroupRequest>) -> Result<Response<api::Group>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let input = GroupInput {
            group_id: request.group_id,
            name: request.name,
            avatar_url: request.avatar_url,
            introduction: request.introduction,
            extra: request.extra,
            join_policy: convert::join_policy(request.join_policy).unwrap_or_default(),
            history_visible: request.history_visible,
            owner_id: request.owner_id,
        };
        let group = self.groups.create_group(&caller, input, request.member_ids).await?;
        Ok(Response::new(convert::group(group)))
    }

    async fn get_group(&self, request: Request<api::GroupRef>) -> Result<Response<api::Group>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let group = self.groups.get_group(caller.app, &request.into_inner().group_id).await?;
        Ok(Response::new(convert::group(group)))
    }

    async fn update_group(&self, request: Request<api::UpdateGroupRequest>) -> Result<Response<api::Group>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let patch = GroupPatch {
            name: request.name,
            avatar_url: request.avatar_url,
            introduction: request.introduction,
            extra: request.extra,
            join_policy: convert::join_policy(request.join_policy),
            muted_all: request.muted_all,
            history_visible: request.history_visible,
        };
        let group = self.groups.update_group(&caller, &request.group_id, patch).await?;
        Ok(Response::new(convert::group(group)))
    }

    async fn dismiss_group(&self, request: Request<api::GroupRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.groups.dismiss_group(&caller, &request.into_inner().group_id).await?;
        Ok(empty())
    }

    async fn list_my_groups(
        &self,
        request: Request<api::ListMyGroupsRequest>,
    ) -> Result<Response<api::ListGroupsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let crate::logic::Page { items: groups, has_more } =
            self.groups.my_groups(&caller, &request.after_group_id, request.limit).await?;
        Ok(Response::new(api::ListGroupsResponse {
            groups: groups.into_iter().map(convert::group).collect(),
            has_more,
        }))
    }

    async fn list_members(
        &self,
        request: Request<api::ListMembersRequest>,
    ) -> Result<Response<api::ListMembersResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let crate::logic::Page { items: members, has_more } =
            self.groups.group_members(&caller, &request.group_id, &request.after_user_id, request.limit).await?;
        Ok(Response::new(api::ListMembersResponse {
            members: members.into_iter().map(convert::member).collect(),
            has_more,
        }))
    }

    async fn join_group(
        &self,
        request: Request<api::JoinGroupRequest>,
    ) -> Result<Response<api::JoinGroupResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let joined = self.groups.join_group(&caller, &request.group_id, &request.message).await?;
        Ok(Response::new(api::JoinGroupResponse { joined }))
    }

    async fn invite_members(
        &self,
        request: Request<api::MembersRequest>,
    ) -> Result<Response<api::MembersResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let user_ids = self.groups.invite(&caller, &request.group_id, request.user_ids).await?;
        Ok(Response::new(api::MembersResponse { user_ids }))
    }

    async fn list_join_requests(
        &self,
        request: Request<api::GroupRef>,
    ) -> Result<Response<api::ListJoinRequestsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let requests = self.groups.join_requests(&caller, &request.into_inner().group_id).await?;
        let requests = requests
            .into_iter()
            .map(|r| api::JoinRequest { user_id: r.user_id, message: r.message, requested_at_ms: r.requested_at_ms })
            .collect();
        Ok(Response::new(api::ListJoinRequestsResponse { requests }))
    }

    async fn review_join(&self, request: Request<api::ReviewJoinRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.groups.review_join(&caller, &request.group_id, &request.user_id, request.approve).await?;
        Ok(empty())
    }

    async fn leave_group(&self, request: Request<api::GroupRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.groups.leave_group(&caller, &request.into_inner().group_id).await?;
        Ok(empty())
    }

    async fn remove_members(
        &self,
        request: Request<api::MembersRequest>,
    ) -> Result<Response<api::MembersResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let user_ids = self.groups.remove_members(&caller, &request.group_id, request.user_ids).await?;
        Ok(Response::new(api::MembersResponse { user_ids }))
    }

    async fn transfer_ownership(
        &self,
        request: Request<api::TransferOwnershipRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.groups.transfer_ownership(&caller, &request.group_id, &request.new_owner_id).await?;
        Ok(empty())
    }

    async fn set_role(&self, request: Request<api::SetRoleRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let role = GroupRole::try_from(request.role).unwrap_or_default();
        self.groups.set_role(&caller, &request.group_id, &request.user_id, role).await?;
        Ok(empty())
    }

    async fn mute_member(&self, request: Request<api::MuteMemberRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.groups.mute_member(&caller, &request.group_id, &request.user_id, request.duration_seconds).await?;
        Ok(empty())
    }

    async fn set_nickname(&self, request: Request<api::SetNicknameRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.groups.set_nickname(&caller, &request.group_id, &request.user_id, &request.nickname).await?;
        Ok(empty())
    }

    async fn send_message(
        &self,
        request: Request<api::GroupSendRequest>,
    ) -> Result<Response<api::GroupSendResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        Ok(Response::new(self.calls.group_send(&caller, request.into_inner()).await?))
    }

    async fn sync_group(&self, request: Request<api::SyncGroupRequest>) -> Result<Response<api::SyncResponse>, Status> {
        let caller = auth::shared_caller_or_on_behalf(&self.gate, &request).await?;
        Ok(Response::new(self.calls.sync_group(&caller, request.into_inner()).await?))
    }

    async fn get_history(
        &self,
        request: Request<api::GroupHistoryRequest>,
    ) -> Result<Response<api::GroupHistoryResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let (messages, next_page_token) =
            self.messaging.group_history(&caller, &request.group_id, &request.page_token, request.limit).await?;
        Ok(Response::new(api::GroupHistoryResponse { messages: convert::messages(messages), next_page_token }))
    }
}
