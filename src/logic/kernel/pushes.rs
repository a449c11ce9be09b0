//! What a committed message pushes to the devices online.

use crate::{
    delivery::{DeviceRef, Push},
    frames,
    model::Appended,
    model::{AppId, Message},
    proto::common::v1 as pb,
};

/// The pushes of a committed message: one per inbox it landed in (with that inbox's
/// seq), and one for a large group's online members (with the timeline seq).
pub fn pushes_of(app: AppId, stored: &Message, appended: &Appended) -> Vec<Push> {
    let sender_device = (!stored.sender_device_id.is_empty())
        .then(|| DeviceRef { user_id: stored.sender_user_id.clone(), device_id: stored.sender_device_id.clone() });
    let mut pushes: Vec<Push> = appended
        .inboxes
        .iter()
        .map(|(user, seq)| Push {
            app,
            users: vec![user.clone()],
            group: None,
            skip: sender_device.clone().filter(|device| device.user_id == *user),
            seq: *seq,
            frame: frames::message(pb::Message { seq: *seq, ..stored.clone().into() }),
        })
        .collect();
    if let Some((group, group_seq)) = &appended.timeline {
        pushes.push(Push {
            app,
            users: Vec::new(),
            group: Some(group.clone()),
            skip: sender_device,
            seq: *group_seq,
            frame: frames::message(stored.clone().into()),
        });
    }
    pushes
}
