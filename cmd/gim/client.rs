//! Client commands for users, devices, tokens, messages and groups: each is one or two
//! gRPC calls to a running gim, printed as lines a person reads and a script can cut.

use anyhow::{anyhow, bail};
use clap::{Subcommand, ValueEnum};
use gim::proto::{
    common::v1::{DeviceType, Message, MessageBody, TextBody, User, message_body::Content},
    logic::v1::{
        BusinessSendRequest, CreateGroupRequest, CreateUserRequest, DeviceSendRequest, GetUserRequest,
        GroupSendRequest, IssueTokenRequest, ListDevicesRequest, ListUsersRequest, MembersRequest,
        RegisterDeviceRequest, business_client::BusinessClient, device_client::DeviceClient,
        groups_client::GroupsClient,
    },
};
use tonic::{Response, Status};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::remote::{self, Authed, Remote};

/// A call's answer, or its status as an error a person can act on.
pub fn answer<T>(result: Result<Response<T>, Status>) -> anyhow::Result<T> {
    result.map(Response::into_inner).map_err(|status| anyhow!("{:?}: {}", status.code(), status.message()))
}

pub fn new_client_msg_id() -> String {
    format!("cli-{:016x}", rand::random::<u64>())
}

pub fn text_body(text: &str) -> Option<MessageBody> {
    Some(MessageBody { content: Some(Content::Text(TextBody { text: text.to_owned(), ..Default::default() })) })
}

pub async fn business(remote: &Remote, acting_user: Option<&str>) -> anyhow::Result<BusinessClient<Authed>> {
    Ok(BusinessClient::with_interceptor(remote.channel().await?, remote.business(acting_user)?))
}

async fn groups(remote: &Remote, acting_user: &str) -> anyhow::Result<GroupsClient<Authed>> {
    Ok(GroupsClient::with_interceptor(remote.channel().await?, remote.business(Some(acting_user))?))
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; without an id, gim makes one.
    Create {
        user_id: Option<String>,
        #[arg(long, default_value = "")]
        nickname: String,
        #[arg(long, default_value = "")]
        avatar_url: String,
        /// Your own data about the user (JSON or anything, up to limits.max_extra_bytes).
        #[arg(long, default_value = "")]
        extra: String,
    },
    Get {
        user_id: String,
    },
    /// Users in id order, a page at a time.
    List {
        #[arg(long, default_value = "")]
        after: String,
        #[arg(long, default_value_t = 50)]
        limit: i32,
    },
}

fn print_user(user: &User) {
    println!("{}\t{}", user.user_id, user.nickname);
}

pub async fn user(remote: &Remote, command: UserCommand) -> anyhow::Result<()> {
    let mut client = business(remote, None).await?;
    match command {
        UserCommand::Create { user_id, nickname, avatar_url, extra } => {
            let user_id = user_id.unwrap_or_default();
            let request = CreateUserRequest { user_id, nickname, avatar_url, extra };
            print_user(&answer(client.create_user(request).await)?);
        }
        UserCommand::Get { user_id } => {
            let user = answer(client.get_user(GetUserRequest { user_id }).await)?;
            println!("user_id: {}\nnickname: {}\navatar_url: {}", user.user_id, user.nickname, user.avatar_url);
            println!("extra: {}\ncreated_at_ms: {}", user.extra, user.created_at_ms);
        }
        UserCommand::List { after, limit } => {
            let page = answer(client.list_users(ListUsersRequest { after_user_id: after, limit }).await)?;
            page.users.iter().for_each(print_user);
            if page.has_more {
                let last = page.users.last().map_or("", |user| user.user_id.as_str());
                eprintln!("(more: --after {last})");
            }
        }
    }
    Ok(())
}

/// The kinds of device, as the flag spells them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Android,
    Ios,
    Web,
    Desktop,
    Tablet,
    MiniProgram,
    Other,
}

impl From<Kind> for DeviceType {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Android => DeviceType::Android,
            Kind::Ios => DeviceType::Ios,
            Kind::Web => DeviceType::Web,
            Kind::Desktop => DeviceType::Desktop,
            Kind::Tablet => DeviceType::Tablet,
            Kind::MiniProgram => DeviceType::MiniProgram,
            Kind::Other => DeviceType::Other,
        }
    }
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Register a device of a user (again: updates it).
    Register {
        user_id: String,
        device_id: String,
        #[arg(long, value_enum, default_value = "other")]
        r#type: Kind,
        #[arg(long, default_value = "")]
        model: String,
    },
    List {
        user_id: String,
    },
}

pub async fn register_device(
    client: &mut BusinessClient<Authed>,
    user_id: &str,
    device_id: &str,
    kind: Kind,
    model: &str,
) -> anyhow::Result<()> {
    let request = RegisterDeviceRequest {
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
        r#type: DeviceType::from(kind) as i32,
        model: model.to_owned(),
        sdk_version: concat!("gim-cli/", env!("CARGO_PKG_VERSION")).to_owned(),
        ..Default::default()
    };
    answer(client.register_device(request).await)?;
    Ok(())
}

pub async fn device(remote: &Remote, command: DeviceCommand) -> anyhow::Result<()> {
    let mut client = business(remote, None).await?;
    match command {
        DeviceCommand::Register { user_id, device_id, r#type, model } => {
            register_device(&mut client, &user_id, &device_id, r#type, &model).await?;
            println!("{user_id}\t{device_id}");
        }
        DeviceCommand::List { user_id } => {
            for device in answer(client.list_devices(ListDevicesRequest { user_id }).await)?.devices {
                let kind = DeviceType::try_from(device.r#type).unwrap_or_default().as_str_name();
                println!("{}\t{kind}\tacked_seq={}", device.device_id, device.acked_seq);
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a device token (printed alone, for `TOKEN=$(gim token issue ...)`).
    Issue {
        user_id: String,
        device_id: String,
        /// Seconds; 0: auth.default_token_ttl_secs.
        #[arg(long, default_value_t = 0)]
        ttl: u32,
    },
}

pub async fn issue_token(
    client: &mut BusinessClient<Authed>,
    user_id: &str,
    device_id: &str,
    ttl_seconds: u32,
) -> anyhow::Result<String> {
    let request = IssueTokenRequest { user_id: user_id.to_owned(), device_id: device_id.to_owned(), ttl_seconds };
    Ok(answer(client.issue_token(request).await)?.token)
}

pub async fn token(remote: &Remote, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Issue { user_id, device_id, ttl } = command;
    println!("{}", issue_token(&mut business(remote, None).await?, &user_id, &device_id, ttl).await?);
    Ok(())
}

/// Who sends: the business in a user's name or as the system, or a device.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Sender {
    /// Send as this user (business credentials).
    #[arg(long)]
    from: Option<String>,
    /// Send as the device this token belongs to.
    #[arg(long)]
    token: Option<String>,
    /// Send as the system (business credentials): a notification without a sender.
    #[arg(long)]
    system: bool,
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The receiving user.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    sender: Sender,
    /// Makes a retried send the same message [default: a random id].
    #[arg(long, default_value_t = new_client_msg_id())]
    client_msg_id: String,
    text: String,
}

pub async fn send(remote: &Remote, args: SendArgs) -> anyhow::Result<()> {
    let sent = match &args.sender.token {
        Some(token) => {
            let mut client = DeviceClient::with_interceptor(remote.channel().await?, remote::device(token)?);
            let request = DeviceSendRequest {
                receiver_user_id: args.to,
                client_msg_id: args.client_msg_id,
                reply_to_message_id: 0,
                body: text_body(&args.text),
            };
            answer(client.send_message(request).await)?
        }
        None => {
            let request = BusinessSendRequest {
                sender_user_id: args.sender.from.unwrap_or_default(),
                receiver_user_id: args.to,
                client_msg_id: args.client_msg_id,
                reply_to_message_id: 0,
                body: text_body(&args.text),
            };
            answer(business(remote, None).await?.send_message(request).await)?
        }
    };
    println!("message_id: {}\nseq: {}\nsent_at_ms: {}", sent.message_id, sent.seq, sent.sent_at_ms);
    Ok(())
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group owned by a user; prints its id.
    Create {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: String,
        /// A member besides the owner (repeat the flag for more).
        #[arg(long = "member")]
        members: Vec<String>,
        /// The group's id; gim makes one when empty.
        #[arg(long, default_value = "")]
        id: String,
    },
    /// Invite users, as a member allowed to.
    Invite {
        group_id: String,
        #[arg(long = "as")]
        acting_user: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Send a text to a group as one of its members.
    Send {
        group_id: String,
        #[arg(long)]
        from: String,
        text: String,
    },
}

pub async fn group(remote: &Remote, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Create { owner, name, members, id } => {
            let request = CreateGroupRequest {
                group_id: id,
                name,
                member_ids: members,
                owner_id: owner.clone(),
                ..Default::default()
            };
            let group = answer(groups(remote, &owner).await?.create_group(request).await)?;
            println!("{}", group.group_id);
        }
        GroupCommand::Invite { group_id, acting_user, users } => {
            let request = MembersRequest { group_id, user_ids: users };
            let added = answer(groups(remote, &acting_user).await?.invite_members(request).await)?;
            println!("{}", added.user_ids.join("\n"));
        }
        GroupCommand::Send { group_id, from, text } => {
            let request = GroupSendRequest {
                group_id,
                client_msg_id: new_client_msg_id(),
                body: text_body(&text),
                reply_to_message_id: 0,
            };
            let sent = answer(groups(remote, &from).await?.send_message(request).await)?;
            println!("message_id: {}\nseq: {}\ngroup_seq: {}", sent.message_id, sent.seq, sent.group_seq);
        }
    }
    Ok(())
}

/// Prints the overall gRPC health of the node at the server address; fails unless it
/// is serving.
pub async fn health(remote: &Remote) -> anyhow::Result<()> {
    let mut client = HealthClient::new(remote.channel().await?);
    let reply = answer(client.check(HealthCheckRequest { service: String::new() }).await)?;
    let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
    println!("{}", status.as_str_name());
    if status != ServingStatus::Serving {
        bail!("{} is not ready: {}", remote.server, status.as_str_name());
    }
    Ok(())
}

/// A message's text, or what kind of message it is.
pub fn describe(message: &Message) -> String {
    describe_body(message.body.as_ref())
}

/// A body's text, or what kind of body it is (a room message's too).
pub fn describe_body(body: Option<&MessageBody>) -> String {
    match body.and_then(|body| body.content.as_ref()) {
        Some(Content::Text(text)) => text.text.clone(),
        Some(Content::System(system)) => format!("[{}] by {} {}", system.event, system.actor_user_id, system.detail),
        Some(Content::Revision(revision)) => {
            let kind = revision.kind().as_str_name().trim_start_matches("REVISION_KIND_").to_lowercase();
            format!("[{kind} of {:?}] by {}", revision.message_ids, revision.actor_user_id)
        }
        Some(other) => format!("[{}]", kind_name(other)),
        None => "[empty]".to_owned(),
    }
}

fn kind_name(content: &Content) -> &'static str {
    match content {
        Content::Text(_) => "text",
        Content::Image(_) => "image",
        Content::Audio(_) => "audio",
        Content::Video(_) => "video",
        Content::File(_) => "file",
        Content::Sticker(_) => "sticker",
        Content::Location(_) => "location",
        Content::Custom(_) => "custom",
        Content::System(_) => "system",
        Content::Revision(_) => "revision",
    }
}
