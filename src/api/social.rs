//! `gim.logic.v1.Friends` and `gim.logic.v1.Moments`: shared by devices (acting as their
//! user) and business backends (acting as `x-gim-acting-user`, or as the app).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{auth, convert};
use crate::{
    logic::{Accounts, PostInput, Social},
    model::Visibility,
    proto::{
        common::v1 as common,
        logic::v1::{self as api, friends_server::Friends, moments_server::Moments},
    },
};

fn empty() -> Response<api::Empty> {
    Response::new(api::Empty {})
}

pub struct FriendsApi {
    gate: auth::Gate,
    social: Arc<Social>,
    /// Finding a user by the username it signed up with.
    accounts: Arc<Accounts>,
}

impl FriendsApi {
    pub fn new(gate: auth::Gate, social: Arc<Social>) -> Self {
        Self { accounts: gate.accounts.clone(), gate, social }
    }
}

fn pairs(request: api::FriendPairsRequest) -> Vec<(String, String)> {
    request.pairs.into_iter().map(|pair| (pair.user_id, pair.friend_id)).collect()
}

#[tonic::async_trait]
impl Friends for FriendsApi {
    async fn send_request(
        &self,
        request: Request<api::SendFriendRequestRequest>,
    ) -> Result<Response<api::SendFriendRequestResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let became_friends = self.social.send_friend_request(&caller, &request.user_id, &request.greeting).await?;
        Ok(Response::new(api::SendFriendRequestResponse { became_friends }))
    }

    async fn list_requests(
        &self,
        request: Request<api::ListFriendRequestsRequest>,
    ) -> Result<Response<api::ListFriendRequestsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let requests = self.social.friend_requests(&caller, request.into_inner().incoming).await?;
        let requests = requests.into_iter().map(convert::friend_request).collect();
        Ok(Response::new(api::ListFriendRequestsResponse { requests }))
    }

    async fn answer(&self, request: Request<api::AnswerFriendRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.social.answer_friend_request(&caller, &request.user_id, request.accept).await?;
        Ok(empty())
    }

    async fn list_friends(
        &self,
        request: Request<api::ListFriendsRequest>,
    ) -> Result<Response<api::ListFriendsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let crate::logic::Page { items: friends, has_more } =
            self.social.friends(&caller, &request.after_user_id, request.limit).await?;
        let friends = friends.into_iter().map(convert::friend).collect();
        Ok(Response::new(api::ListFriendsResponse { friends, has_more }))
    }

    async fn delete_friend(&self, request: Request<api::UserRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.delete_friend(&caller, &request.into_inner().user_id).await?;
        Ok(empty())
    }

    async fn set_remark(&self, request: Request<api::SetRemarkRequest>) -> Result<Response<api::Friend>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let friend = self
            .social
            .set_friend_remark(&caller, &request.user_id, request.remark.as_deref(), request.extra.as_deref())
            .await?;
        Ok(Response::new(convert::friend(friend)))
    }

    async fn block(&self, request: Request<api::UserRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.block(&caller, &request.into_inner().user_id).await?;
        Ok(empty())
    }

    async fn unblock(&self, request: Request<api::UserRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.unblock(&caller, &request.into_inner().user_id).await?;
        Ok(empty())
    }

    async fn list_blocked(&self, request: Request<api::Empty>) -> Result<Response<api::ListBlockedResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let user_ids = self.social.blocked(&caller).await?;
        Ok(Response::new(api::ListBlockedResponse { user_ids }))
    }

    async fn get_presence(
        &self,
        request: Request<api::GetPresenceRequest>,
    ) -> Result<Response<api::GetPresenceResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let presence = self.social.friend_presence(&caller, &request.into_inner().user_ids).await?;
        Ok(Response::new(convert::presence(presence)))
    }

    async fn find_user(&self, request: Request<api::FindUserRequest>) -> Result<Response<common::User>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let user = self.accounts.find_by_username(caller.app, &request.into_inner().username).await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn make_friends(&self, request: Request<api::FriendPairsRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.make_friends(&caller, &pairs(request.into_inner())).await?;
        Ok(empty())
    }

    async fn break_friends(&self, request: Request<api::FriendPairsRequest>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.break_friends(&caller, &pairs(request.into_inner())).await?;
        Ok(empty())
    }
}

pub struct MomentsApi {
    gate: auth::Gate,
    social: Arc<Social>,
}

impl MomentsApi {
    pub fn new(gate: auth::Gate, social: Arc<Social>) -> Self {
        Self { gate, social }
    }
}

#[tonic::async_trait]
impl Moments for MomentsApi {
    async fn publish(&self, request: Request<api::PublishRequest>) -> Result<Response<api::Post>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let visibility = Visibility::try_from(request.visibility)
            .map_err(|_| Status::invalid_argument(format!("unknown visibility {}", request.visibility)))?;
        let input = PostInput {
            content: request.content.unwrap_or_default(),
            visibility,
            audience: request.audience,
            client_post_id: request.client_post_id,
        };
        let post = self.social.publish_post(&caller, input).await?;
        Ok(Response::new(convert::post(post)))
    }

    async fn delete_post(&self, request: Request<api::PostRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.delete_post(&caller, request.into_inner().post_id).await?;
        Ok(empty())
    }

    async fn get_post(&self, request: Request<api::PostRef>) -> Result<Response<api::Post>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let post = self.social.get_post(&caller, request.into_inner().post_id).await?;
        Ok(Response::new(convert::post(post)))
    }

    async fn feed(&self, request: Request<api::FeedRequest>) -> Result<Response<api::PostsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let page = self.social.feed(&caller, request.before_post_id, request.limit).await?;
        Ok(Response::new(convert::posts(page)))
    }

    async fn timeline(&self, request: Request<api::TimelineRequest>) -> Result<Response<api::PostsResponse>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let page = self.social.timeline(&caller, &request.user_id, request.before_post_id, request.limit).await?;
        Ok(Response::new(convert::posts(page)))
    }

    async fn like(&self, request: Request<api::PostRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.like(&caller, request.into_inner().post_id).await?;
        Ok(empty())
    }

    async fn unlike(&self, request: Request<api::PostRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        self.social.unlike(&caller, request.into_inner().post_id).await?;
        Ok(empty())
    }

    async fn add_comment(&self, request: Request<api::CommentRequest>) -> Result<Response<api::Comment>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        let comment =
            self.social.add_comment(&caller, request.post_id, &request.text, request.reply_to_comment_id).await?;
        Ok(Response::new(convert::comment(comment)))
    }

    async fn delete_comment(&self, request: Request<api::CommentRef>) -> Result<Response<api::Empty>, Status> {
        let caller = auth::shared_caller(&self.gate, request.metadata()).await?;
        let request = request.into_inner();
        self.social.delete_comment(&caller, request.post_id, request.comment_id).await?;
        Ok(empty())
    }
}
