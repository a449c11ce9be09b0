//! A friend request, an answer or a set of friends to make: how each finds things, and
//! what the friend rules decide.

use std::collections::{HashMap, HashSet};

use super::FriendRequest;

/// How a friend request finds things, read under the sender's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestState {
    pub friends: bool,
    /// The other user blocked the sender.
    pub blocked_by_other: bool,
    /// The sender blocked the other user.
    pub blocking_other: bool,
    /// The other user has a live request to the sender.
    pub asked_first: bool,
    /// The sender's earlier request to the same user (live, lapsed or turned down).
    pub earlier: Option<FriendRequest>,
    /// The sender's requests to others that wait for an answer.
    pub pending: u64,
    /// How many friends the sender and the other user have.
    pub friend_counts: (u64, u64),
}

/// What a friend request does, as decided from its `RequestState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEffect {
    /// The other user had asked first: they become friends.
    Befriend,
    /// The request is stored and the other user notified.
    Ask,
    /// The same request is still waiting: nothing is written, nobody notified again.
    Repeat,
}

/// How an answer to a friend request finds things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerState {
    /// The request waits for an answer (it neither lapsed nor was turned down).
    pub live: bool,
    /// How many friends the user answering and the user who asked have.
    pub friend_counts: (u64, u64),
}

/// How a set of users to make friends finds things.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairsState {
    /// Users named that do not exist in the app.
    pub unknown_users: Vec<String>,
    /// How many friends each user named has.
    pub friend_counts: HashMap<String, u64>,
    /// The pairs named that are friends already.
    pub friends_already: HashSet<(String, String)>,
}
