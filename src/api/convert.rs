//! Between domain records and their wire form.

use crate::{
    logic::{DeviceInput, PostView, PostsPage, UserInput, WithProfile},
    model,
    proto::{common::v1 as pb, logic::v1 as api},
    webhooks,
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

/// An app as answers show it, with the limits in effect: the before-send hook's secret
/// left out, and credentials in its URL masked.
pub fn app(app: model::App, quotas: model::AppQuotas) -> api::App {
    let mut settings = settings(app.settings);
    if let Some(hook) = settings.before_send.as_mut() {
        hook.secret.clear();
        hook.url = crate::outbound::redacted(&hook.url);
    }
    api::App {
        app_id: app.id,
        name: app.name,
        settings: Some(settings),
        created_at_ms: app.created_at_ms,
        quotas: Some(app_quotas(quotas)),
    }
}

fn app_quotas(quotas: model::AppQuotas) -> api::AppQuotas {
    api::AppQuotas {
        business_calls_per_second: quotas.business_calls_per_second,
        sends_per_second: quotas.sends_per_second,
        max_webhook_endpoints: quotas.max_webhook_endpoints,
    }
}

fn quotas_of(quotas: Option<api::AppQuotas>) -> model::AppQuotas {
    let quotas = quotas.unwrap_or_default();
    model::AppQuotas {
        business_calls_per_second: quotas.business_calls_per_second,
        sends_per_second: quotas.sends_per_second,
        max_webhook_endpoints: quotas.max_webhook_endpoints,
    }
}

/// An endpoint as the API shows it; its secret only when it was just made or rotated.
pub fn webhook_endpoint(endpoint: webhooks::Endpoint, with_secret: bool) -> api::WebhookEndpoint {
    let previous_secret_expires_at_ms = endpoint.previous_secret_expires_at_ms(crate::model::now_ms());
    api::WebhookEndpoint {
        endpoint_id: endpoint.id,
        app_id: endpoint.app,
        url: crate::outbound::redacted(&endpoint.url),
        kinds: endpoint.kinds.patterns().to_vec(),
        enabled: endpoint.enabled,
        description: endpoint.description,
        disabled_reason: endpoint.disabled_reason,
        secret: if with_secret { endpoint.secret } else { String::new() },
        created_at_ms: endpoint.created_at_ms,
        updated_at_ms: endpoint.updated_at_ms,
        previous_secret_expires_at_ms,
    }
}

pub fn webhook_delivery(delivery: webhooks::Delivery) -> api::WebhookDelivery {
    let state = match delivery.state {
        webhooks::DeliveryState::Waiting => api::WebhookDeliveryState::Waiting,
        webhooks::DeliveryState::Delivered => api::WebhookDeliveryState::Delivered,
        webhooks::DeliveryState::Dead => api::WebhookDeliveryState::Dead,
    };
    api::WebhookDelivery {
        delivery_id: delivery.id,
        kind: delivery.kind,
        lane: delivery.lane,
        state: state as i32,
        attempts: delivery.attempts,
        created_at_ms: delivery.created_at_ms,
        next_attempt_at_ms: delivery.next_at_ms,
        last_attempt_at_ms: delivery.last_at_ms,
        last_status: u32::from(delivery.last_status),
        last_error: delivery.last_error,
        payload: delivery.payload,
    }
}

/// A delivery state to list by: unspecified lists all.
pub fn delivery_state_filter(state: i32) -> Result<Option<webhooks::DeliveryState>, tonic::Status> {
    match api::WebhookDeliveryState::try_from(state) {
        Ok(api::WebhookDeliveryState::Unspecified) => Ok(None),
        Ok(api::WebhookDeliveryState::Waiting) => Ok(Some(webhooks::DeliveryState::Waiting)),
        Ok(api::WebhookDeliveryState::Delivered) => Ok(Some(webhooks::DeliveryState::Delivered)),
        Ok(api::WebhookDeliveryState::Dead) => Ok(Some(webhooks::DeliveryState::Dead)),
        Err(_) => Err(tonic::Status::invalid_argument(format!("unknown webhook delivery state {state}"))),
    }
}

/// Settings as a request carries them, every field set.
pub fn settings(settings: model::AppSettings) -> api::AppSettings {
    api::AppSettings {
        accounts_enabled: Some(settings.accounts_enabled),
        friendship_required: Some(settings.friendship_required),
        presence_events_disabled: Some(settings.presence_events_disabled),
        before_send: settings.before_send.map(|hook| api::BeforeSendHook {
            url: hook.url,
            secret: hook.secret,
            direct: hook.direct,
            group: hook.group,
            room: hook.room,
            timeout_ms: u32::try_from(hook.timeout_ms).unwrap_or(u32::MAX),
            allow_on_failure: hook.allow_on_failure,
        }),
        quotas: (!settings.quotas.is_empty()).then(|| app_quotas(settings.quotas)),
    }
}

/// A hook as a request sets it; `None` (an empty url) turns it off.
fn hook(hook: api::BeforeSendHook) -> Option<model::BeforeSendHook> {
    (!hook.url.is_empty()).then(|| model::BeforeSendHook {
        url: hook.url,
        secret: hook.secret,
        direct: hook.direct,
        group: hook.group,
        room: hook.room,
        timeout_ms: u64::from(hook.timeout_ms),
        allow_on_failure: hook.allow_on_failure,
    })
}

/// The settings of a new app: what is not set is off.
pub fn app_settings(settings: Option<api::AppSettings>) -> model::AppSettings {
    let settings = settings.unwrap_or_default();
    model::AppSettings {
        accounts_enabled: settings.accounts_enabled.unwrap_or_default(),
        friendship_required: settings.friendship_required.unwrap_or_default(),
        presence_events_disabled: settings.presence_events_disabled.unwrap_or_default(),
        before_send: settings.before_send.and_then(hook),
        quotas: quotas_of(settings.quotas),
    }
}

/// What an update changes: what is set.
pub fn settings_patch(settings: Option<api::AppSettings>, reset_quotas: bool) -> model::AppSettingsPatch {
    let settings = settings.unwrap_or_default();
    model::AppSettingsPatch {
        accounts_enabled: settings.accounts_enabled,
        friendship_required: settings.friendship_required,
        presence_events_disabled: settings.presence_events_disabled,
        before_send: settings.before_send.map(hook),
        reset_quotas,
        quotas: quotas_of(settings.quotas),
    }
}

/// Each user's online devices (none: offline).
pub fn presence(presence: Vec<(String, Vec<crate::route::Route>)>) -> api::GetPresenceResponse {
    let users = presence
        .into_iter()
        .map(|(user_id, routes)| api::UserPresence {
            user_id,
            online: !routes.is_empty(),
            devices: routes
                .into_iter()
                .map(|route| api::OnlineDevice { device_id: route.device_id, r#type: route.device_type as i32 })
                .collect(),
        })
        .collect();
    api::GetPresenceResponse { users }
}

pub fn friend((friend, profile): WithProfile<model::Friend>) -> api::Friend {
    api::Friend {
        user: Some(profile.map_or_else(|| pb::User { user_id: friend.friend_id.clone(), ..Default::default() }, user)),
        remark: friend.remark,
        extra: friend.extra,
        since_ms: friend.since_ms,
    }
}

pub fn friend_request((request, profile): WithProfile<model::FriendRequest>) -> api::FriendRequest {
    api::FriendRequest {
        from_user_id: request.from_user_id,
        to_user_id: request.to_user_id,
        greeting: request.greeting,
        created_at_ms: request.created_at_ms,
        expires_at_ms: request.expires_at_ms,
        profile: profile.map(user),
    }
}

pub fn comment(comment: model::Comment) -> api::Comment {
    api::Comment {
        comment_id: comment.comment_id,
        user_id: comment.user_id,
        reply_to_user_id: comment.reply_to_user_id,
        reply_to_comment_id: comment.reply_to_comment_id,
        text: comment.text,
        created_at_ms: comment.created_at_ms,
    }
}

/// A post as its viewer sees it: the audience only for the author.
pub fn post(view: PostView) -> api::Post {
    let post = view.post;
    api::Post {
        post_id: post.post_id,
        author_id: post.author_id,
        content: Some(post.content),
        visibility: post.visibility as i32,
        audience: if view.own { post.audience } else { Vec::new() },
        created_at_ms: post.created_at_ms,
        likes: view
            .likes
            .into_iter()
            .map(|like| api::Like { user_id: like.user_id, created_at_ms: like.created_at_ms })
            .collect(),
        comments: view.comments.into_iter().map(comment).collect(),
    }
}

pub fn posts(page: PostsPage) -> api::PostsResponse {
    api::PostsResponse { posts: page.posts.into_iter().map(post).collect(), next_before: page.next_before }
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

pub fn conversation(view: crate::logic::ConversationView) -> api::Conversation {
    let crate::logic::ConversationView { conversation, last_message, peer, group } = view;
    api::Conversation {
        conversation_type: conversation.conversation_type as i32,
        conversation_id: conversation.conversation_id,
        last_message: last_message.map(pb::Message::from),
        unread_count: conversation.unread,
        mention_count: conversation.mentions,
        read_seq: conversation.read_seq,
        pinned: conversation.pinned,
        muted: conversation.muted,
        hidden: conversation.hidden,
        draft: conversation.draft,
        version: conversation.version,
        updated_at_ms: conversation.updated_at_ms,
        cleared_seq: conversation.cleared_seq,
        peer: peer.map(user),
        group_name: group.as_ref().map(|group| group.name.clone()).unwrap_or_default(),
        group_avatar_url: group.map(|group| group.avatar_url).unwrap_or_default(),
    }
}
