//! Read cursors: how far a user has read each conversation, shared by the user's
//! devices, with read receipts for the other user of a direct conversation.

use super::Messaging;
use crate::logic::{DeviceCaller, Error, Result, kernel::validate};
use crate::{
    delivery::{DeviceRef, Push},
    frames,
    model::{ConversationType, ReadCursor, now_ms},
    proto::client::v1::{ReadEvent, event_push::Event},
    store::MarkedRead,
};

impl Messaging {
    pub async fn mark_read(
        &self,
        caller: &DeviceCaller,
        conversation_type: ConversationType,
        conversation_id: &str,
        seq: u64,
    ) -> Result<ReadCursor> {
        match conversation_type {
            ConversationType::Direct | ConversationType::Group => validate::id("conversation_id", conversation_id)?,
            ConversationType::System if conversation_id.is_empty() => {}
            ConversationType::System => return Err(Error::invalid("the system conversation has an empty id")),
            ConversationType::Unspecified => return Err(Error::invalid("conversation_type is required")),
        }
        // A large group's members read its timeline; a former member reads what it kept
        // in its inbox (up to the news of its leave).
        if conversation_type == ConversationType::Group
            && let Some(row) =
                self.store.conversation(caller.app, &caller.user_id, (conversation_type, conversation_id)).await?
            && row.on_timeline
        {
            return self.mark_timeline_read(caller, conversation_id, seq).await;
        }
        let entry = self
            .store
            .inbox_entry(caller.app, &caller.user_id, seq)
            .await?
            .ok_or_else(|| Error::invalid(format!("seq {seq} is not in your inbox")))?;
        if entry.conversation_type != conversation_type || entry.conversation_id != conversation_id {
            return Err(Error::invalid(format!("seq {seq} belongs to another conversation")));
        }
        let wanted = ReadCursor {
            conversation_type,
            conversation_id: conversation_id.to_owned(),
            seq,
            message_id: entry.message_id,
            updated_at_ms: now_ms(),
        };
        let marked = self.store.mark_read(caller.app, &caller.user_id, &wanted).await?;
        Ok(self.read_done(caller, marked))
    }

    /// A large group is read on its timeline: `seq` is a group seq.
    async fn mark_timeline_read(&self, caller: &DeviceCaller, group_id: &str, seq: u64) -> Result<ReadCursor> {
        let not_yours = || Error::invalid(format!("group seq {seq} is not on the timeline of group {group_id}"));
        // A read point before the member's join moves nothing (the row starts there).
        if self.store.group_member(caller.app, group_id, &caller.user_id).await?.is_none() {
            return Err(Error::not_found(format!("you are not in group {group_id}")));
        }
        if seq == 0 {
            return Err(not_yours());
        }
        let entry = self.store.timeline_after(caller.app, group_id, &caller.user_id, seq - 1, 1).await?;
        let message = entry.into_iter().next().filter(|message| message.group_seq == seq).ok_or_else(not_yours)?;
        let wanted = ReadCursor {
            conversation_type: ConversationType::Group,
            conversation_id: group_id.to_owned(),
            seq,
            message_id: message.id,
            updated_at_ms: now_ms(),
        };
        let marked = self.store.mark_timeline_read(caller.app, &caller.user_id, &wanted).await?;
        Ok(self.read_done(caller, marked))
    }

    /// Announces a read that moved the conversation's read point; one that moved nothing
    /// (at or behind it, as a large group's join is) tells nobody.
    fn read_done(&self, caller: &DeviceCaller, marked: MarkedRead) -> ReadCursor {
        if marked.moved {
            self.announce_read(caller, &marked.cursor);
        }
        marked.cursor
    }

    /// Tells the reader's other devices, and the other user of a direct conversation.
    fn announce_read(&self, caller: &DeviceCaller, cursor: &ReadCursor) {
        let event = |conversation_id: &str, seq: u64| {
            frames::event(Event::Read(ReadEvent {
                reader_user_id: caller.user_id.clone(),
                conversation_type: cursor.conversation_type as i32,
                conversation_id: conversation_id.to_owned(),
                seq,
                message_id: cursor.message_id,
                read_at_ms: cursor.updated_at_ms,
            }))
        };
        let mut pushes = vec![Push {
            app: caller.app,
            users: vec![caller.user_id.clone()],
            group: None,
            skip: Some(DeviceRef { user_id: caller.user_id.clone(), device_id: caller.device_id.clone() }),
            seq: 0,
            frame: event(&cursor.conversation_id, cursor.seq),
        }];
        if cursor.conversation_type == ConversationType::Direct && cursor.conversation_id != caller.user_id {
            pushes.push(Push {
                app: caller.app,
                users: vec![cursor.conversation_id.clone()],
                group: None,
                skip: None,
                seq: 0,
                frame: event(&caller.user_id, 0),
            });
        }
        self.delivery.deliver(pushes);
    }

    pub async fn read_cursors(&self, caller: &DeviceCaller) -> Result<Vec<ReadCursor>> {
        Ok(self.store.read_cursors(caller.app, &caller.user_id).await?)
    }
}
