//! Between domain records and their wire form.

use crate::{
    logic::{DeviceInput, UserInput},
    model,
    proto::{common::v1 as pb, logic::v1 as api},
};

pub fn user(user: model::User) -> pb::User {
    pb::User {
        user_id: user.user_id,
        nickname: user.nickname,
        avatar_url: user.avatar_url,
        extra: user.extra,
        created_at_ms: user.created_at_ms,
        updated_at_ms: user.updated_at_ms,
    }
}

pub fn device(device: model::Device) -> pb::Device {
    pb::Device {
        user_id: device.user_id,
        device_id: device.device_id,
        r#type: device.device_type as i32,
        model: device.model,
        os_version: device.os_version,
        sdk_version: device.sdk_version,
        acked_seq: device.acked_seq,
        created_at_ms: device.created_at_ms,
        updated_at_ms: device.updated_at_ms,
    }
}

pub fn messages(messages: Vec<model::Message>) -> Vec<pb::Message> {
    messages.into_iter().map(pb::Message::from).collect()
}

pub fn app(app: model::App) -> api::App {
    api::App {
        app_id: app.id,
        name: app.name,
        settings: Some(settings(app.settings)),
        created_at_ms: app.created_at_ms,
    }
}

pub fn settings(settings: model::AppSettings) -> api::AppSettings {
    api::AppSettings { accounts_enabled: settings.accounts_enabled }
}

pub fn app_settings(settings: Option<api::AppSettings>) -> model::AppSettings {
    let settings = settings.unwrap_or_default();
    model::AppSettings { accounts_enabled: settings.accounts_enabled }
}

pub fn user_input(request: api::CreateUserRequest) -> UserInput {
    UserInput {
        user_id: request.user_id,
        nickname: request.nickname,
        avatar_url: request.avatar_url,
        extra: request.extra,
    }
}

/// Unknown device types (from newer clients) are kept as `Other`.
fn device_type(value: i32) -> model::DeviceType {
    model::DeviceType::try_from(value).unwrap_or(model::DeviceType::Other)
}

pub fn device_input(info: api::DeviceInfo) -> DeviceInput {
    DeviceInput {
        device_id: info.device_id,
        device_type: device_type(info.r#type),
        model: info.model,
        os_version: info.os_version,
        sdk_version: info.sdk_version,
    }
}

pub fn register_input(request: api::RegisterDeviceRequest) -> (String, DeviceInput) {
    let input = DeviceInput {
        device_id: request.device_id,
        device_type: device_type(request.r#type),
        model: request.model,
        os_version: request.os_version,
        sdk_version: request.sdk_version,
    };
    (request.user_id, input)
}

pub fn read_cursor(cursor: model::ReadCursor) -> api::ReadCursor {
    api::ReadCursor {
        conversation_type: cursor.conversation_type as i32,
        conversation_id: cursor.conversation_id,
        seq: cursor.seq,
        message_id: cursor.message_id,
        updated_at_ms: cursor.updated_at_ms,
    }
}

pub fn large_groups(groups: Vec<(String, u64)>) -> Vec<api::LargeGroupState> {
    groups.into_iter().map(|(group_id, latest_group_seq)| api::LargeGroupState { group_id, latest_group_seq }).collect()
}

pub fn group(group: model::Group) -> api::Group {
    api::Group {
        group_id: group.group_id,
        name: group.name,
        avatar_url: group.avatar_url,
        introduction: group.introduction,
        extra: group.extra,
        owner_id: group.owner_id,
        join_policy: group.join_policy as i32,
        muted_all: group.muted_all,
        history_visible: group.history_visible,
        member_count: group.member_count,
        large: group.large,
        latest_group_seq: group.seq,
        created_at_ms: group.created_at_ms,
        updated_at_ms: group.updated_at_ms,
        dismissed: group.dismissed,
    }
}

pub fn member(member: model::GroupMember) -> api::GroupMember {
    api::GroupMember {
        user_id: member.user_id,
        role: member.role as i32,
        nickname: member.nickname,
        muted_until_ms: member.muted_until_ms,
        joined_at_ms: member.joined_at_ms,
    }
}

pub fn join_policy(value: i32) -> Option<model::JoinPolicy> {
    model::JoinPolicy::try_from(value).ok().filter(|p| *p != model::JoinPolicy::Unspecified)
}

pub fn sync_page(page: crate::logic::SyncPage) -> api::SyncResponse {
    api::SyncResponse {
        messages: messages(page.messages),
        has_more: page.has_more,
        latest_seq: page.latest_seq,
        large_groups: large_groups(page.large_groups),
    }
}
