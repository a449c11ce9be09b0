//! The rules, as pure functions over state the store loaded under its locks: what a
//! change may do and what it writes, decided without I/O and tested as tables.

pub mod friend;
pub mod group;
pub mod message;
pub mod moment;
pub mod visibility;
