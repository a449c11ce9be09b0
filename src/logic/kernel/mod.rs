//! What several contexts share: the apps of the deployment and their limits, rates, ids,
//! the group-commit writer of messages and the pushes it makes, apps' moderation hooks,
//! views of messages, pages, business events and input checks. Nothing here is a use
//! case of its own.

pub mod directory;
pub mod events;
pub mod ids;
pub mod lookups;
pub mod moderation;
pub mod paging;
pub mod pushes;
pub mod rate;
pub mod revisions;
pub mod validate;
pub mod views;
pub mod writer;
