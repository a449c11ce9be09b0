//! Integration tests: real gRPC servers on free ports, real clients, real databases
//! (SQLite and MariaDB).

mod support;

mod accounts;
mod apps;
mod bad_input;
mod binary;
mod broadcast;
mod cli;
mod cluster;
mod connect;
mod connect_bad_input;
mod conversation_modes;
mod conversation_soak;
mod conversations;
mod friends;
mod group_access;
mod group_connect;
mod groups;
mod grpc;
mod large_groups_in_the_list;
mod message_actions;
mod message_visibility;
mod messages;
mod moderation;
mod moments;
mod outbound;
mod rates;
mod rooms;
mod routes;
mod search;
mod sequences;
mod social_connect;
mod store;
mod tenancy;
mod users;
mod web;
mod webhooks;
mod ws;
