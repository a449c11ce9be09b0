//! `gim.connect.v1.Delivery`: what logic (and other connect nodes) call on this node.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::hub::Hub;
use crate::{
    auth::hash_secret,
    delivery::{DeviceRef, Kick, Membership, Push, RoomChange, RoomPush, RoomTarget},
    proto::{
        client::v1::KickReason,
        connect::v1::{KickRequest, KickResponse, PushRequest, PushResponse, delivery_server::Delivery},
    },
};

pub(super) struct InternalApi {
    hub: Arc<Hub>,
    /// Hash of the internal token, compared in constant time per call.
    token_hash: String,
}

impl InternalApi {
    pub(super) fn new(hub: Arc<Hub>, internal_token: &str) -> Self {
        Self { hub, token_hash: hash_secret(internal_token) }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = crate::grpc::bearer(request.metadata()).unwrap_or_default();
        if hash_secret(presented) != self.token_hash {
            return Err(Status::unauthenticated("the internal API takes the cluster's internal token"));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Delivery for InternalApi {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        for change in request.memberships {
            self.hub.membership(&Membership {
                app: change.app_id,
                user_id: change.user_id,
                group_id: change.group_id,
                joined: change.joined,
            });
        }
        for change in request.room_changes {
            // No user: the room is closed, for every session in it here.
            let target = if change.user_id.is_empty() {
                RoomTarget::Everyone { nodes: Vec::new() }
            } else {
                RoomTarget::Device {
                    user_id: change.user_id,
                    device_id: Some(change.device_id).filter(|d| !d.is_empty()),
                }
            };
            let change = RoomChange {
                app: change.app_id,
                room: change.room_id,
                target,
                joined: change.joined,
                reason: change.reason,
            };
            self.hub.room_change(&change, self.hub.rooms.max_per_session());
        }
        let mut queued = 0;
        for push in request.room_pushes {
            queued += self.hub.push_room(&RoomPush {
                app: push.app_id,
                room: push.room_id,
                nodes: Vec::new(),
                seq: push.seq,
                frame: push.frame.into(),
                skip: (!push.skip_device_id.is_empty())
                    .then_some(DeviceRef { user_id: push.skip_user_id, device_id: push.skip_device_id }),
            }) as u64;
        }
        for push in request.pushes {
            if push.everyone {
                queued += self.hub.push_everyone(push.app_id, &push.frame.into()) as u64;
                continue;
            }
            queued += self.hub.push(&Push {
                app: push.app_id,
                users: push.user_ids,
                group: Some(push.group_id).filter(|g| !g.is_empty()),
                skip: (!push.skip_device_id.is_empty())
                    .then_some(DeviceRef { user_id: push.skip_user_id, device_id: push.skip_device_id }),
                seq: push.seq,
                frame: push.frame.into(),
            }) as u64;
        }
        Ok(Response::new(PushResponse { queued }))
    }

    async fn kick(&self, request: Request<KickRequest>) -> Result<Response<KickResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let kick = Kick {
            app: request.app_id,
            user_id: request.user_id,
            device_id: Some(request.device_id).filter(|d| !d.is_empty()),
            reason: KickReason::try_from(request.reason).unwrap_or(KickReason::Business),
            message: request.message,
        };
        let kicked = self.hub.kick(&kick, request.opened_before_ms);
        Ok(Response::new(KickResponse { kicked: u32::try_from(kicked).unwrap_or(u32::MAX) }))
    }
}
