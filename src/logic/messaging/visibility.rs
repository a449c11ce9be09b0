//! The messages a caller names by id, as the one visibility rule (`rules::visibility`)
//! lets it see them.

use super::Messaging;
use crate::{
    logic::{Error, Result, rules::visibility::may_see},
    model::{AppId, GroupMember, Message, MessageType, Sighting},
};

/// A message the caller may see, with the caller's membership of its group (if any).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Visible {
    pub message: Message,
    pub member: Option<GroupMember>,
}

/// How a call that names messages treats those the viewer deleted for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deleted {
    /// As invisible: every call but deleting.
    Hidden,
    /// As visible: deleting again repeats a deletion, so that a retried call succeeds.
    Repeatable,
}

impl Messaging {
    /// The messages of `ids` as `viewer` may see them (`None`: the app, which sees all but
    /// revisions), in the order of `ids`; `NotFound` naming the first one it may not see,
    /// worded as for a message that does not exist.
    pub(super) async fn visible_messages(
        &self,
        app: AppId,
        viewer: Option<&str>,
        ids: &[u64],
        deleted: Deleted,
    ) -> Result<Vec<Visible>> {
        let mut sightings = self.store.sightings(app, viewer.unwrap_or_default(), ids).await?;
        let mut visible = Vec::with_capacity(ids.len());
        for id in ids {
            let found = sightings.iter().position(|s| s.message.id == *id).map(|at| sightings.swap_remove(at));
            let seen = found.filter(|sighting| match viewer {
                None => sighting.message.message_type != MessageType::Revision,
                Some(viewer) => {
                    let repeat = deleted == Deleted::Repeatable;
                    may_see(
                        viewer,
                        &Sighting { deleted_by_viewer: sighting.deleted_by_viewer && !repeat, ..sighting.clone() },
                    )
                }
            });
            match seen {
                Some(sighting) => visible.push(Visible { message: sighting.message, member: sighting.member }),
                None => return Err(Error::not_found(format!("message {id} does not exist"))),
            }
        }
        Ok(visible)
    }

    /// The message `id` as `viewer` may see it (see `visible_messages`).
    pub(super) async fn visible_message(&self, app: AppId, viewer: Option<&str>, id: u64) -> Result<Visible> {
        let mut found = self.visible_messages(app, viewer, &[id], Deleted::Hidden).await?;
        found.pop().ok_or_else(|| Error::not_found(format!("message {id} does not exist")))
    }
}
