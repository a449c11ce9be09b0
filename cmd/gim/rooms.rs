//! `gim room` and `gim broadcast`: the business's calls for live rooms and
//! announcements, over the business API.

use clap::Subcommand;
use gim::proto::logic::v1::{BroadcastRequest, CloseRoomRequest, GetRoomRequest, PushRoomRequest, RoomMemberRequest};

use crate::{
    client::{answer, business, new_client_msg_id, text_body},
    remote::Remote,
};

#[derive(Subcommand)]
pub enum RoomCommand {
    /// Send a text to everyone in a room, as the app.
    Push { room_id: String, text: String },
    /// Send an event (a kind and optional data) to everyone in a room.
    Event {
        room_id: String,
        kind: String,
        #[arg(default_value = "")]
        data: String,
    },
    /// The room's approximate member count and last seq.
    Get { room_id: String },
    /// Put the sessions of a user's device (or of all its online devices) in a room.
    Join {
        room_id: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        device: String,
    },
    /// Take them out of it, with a reason they are shown.
    Leave {
        room_id: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        device: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Take everyone out of a room and forget its messages.
    Close {
        room_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

pub async fn room(remote: &Remote, command: RoomCommand) -> anyhow::Result<()> {
    let mut client = business(remote, None).await?;
    match command {
        RoomCommand::Push { room_id, text } => {
            let request = PushRoomRequest { room_id, body: text_body(&text), ..Default::default() };
            println!("seq: {}", answer(client.push_room(request).await)?.seq);
        }
        RoomCommand::Event { room_id, kind, data } => {
            let request =
                PushRoomRequest { room_id, event_kind: kind, event_data: data.into_bytes(), ..Default::default() };
            answer(client.push_room(request).await)?;
        }
        RoomCommand::Get { room_id } => {
            let room = answer(client.get_room(GetRoomRequest { room_id }).await)?;
            println!("members: {}\nlast_seq: {}", room.members, room.last_seq);
        }
        RoomCommand::Join { room_id, user, device } => {
            let request = RoomMemberRequest { room_id, user_id: user, device_id: device, reason: String::new() };
            answer(client.join_room(request).await)?;
        }
        RoomCommand::Leave { room_id, user, device, reason } => {
            let request = RoomMemberRequest { room_id, user_id: user, device_id: device, reason };
            answer(client.leave_room(request).await)?;
        }
        RoomCommand::Close { room_id, reason } => {
            answer(client.close_room(CloseRoomRequest { room_id, reason }).await)?;
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct BroadcastArgs {
    /// A user to send it to (repeat the flag for more); none: every user of the app.
    #[arg(long = "user")]
    users: Vec<String>,
    /// Makes a retried broadcast the same one [default: a random id].
    #[arg(long, default_value_t = new_client_msg_id())]
    client_msg_id: String,
    text: String,
}

/// A system message to the named users, or an announcement to every user.
pub async fn broadcast(remote: &Remote, args: BroadcastArgs) -> anyhow::Result<()> {
    let request = BroadcastRequest {
        user_ids: args.users,
        body: text_body(&args.text),
        client_msg_id: args.client_msg_id,
        ..Default::default()
    };
    let done = answer(business(remote, None).await?.broadcast(request).await)?;
    let mut ids: Vec<(String, u64)> = done.message_ids.into_iter().collect();
    ids.sort();
    for (user, id) in ids {
        println!("{user}: {id}");
    }
    for user in done.unknown_user_ids {
        eprintln!("no such user: {user}");
    }
    Ok(())
}
