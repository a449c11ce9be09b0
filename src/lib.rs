//! gim: a gRPC-first, multi-tenant instant-messaging platform.
//!
//! Layers, from the edge inwards; a module uses only the ones below it, never one beside
//! or above it:
//!
//! 1. `server` wires processes (`gim serve`, `gim logic`, `gim connect`) out of
//! 2. `api` (the gRPC services) and `connect` (WebSocket sessions; it reaches logic
//!    through its `LogicLink`, which `server` implements in-process or over gRPC), which
//!    call
//! 3. `logic` (use cases, and the rules as pure functions), which uses the seams
//! 4. `store` (SQL), `delivery` (pushes to connect nodes) and `webhooks` (events for
//!    apps' backends: their JSON, signatures, the HTTP client), over
//! 5. `route` (where devices are), `model`, `terms` (what the search index holds of a text),
//!    `proto`, `frames`, `auth` and `config`.
//!
//! `grpc`, `origins`, `metrics` and `telemetry` are plumbing any layer may use.

pub mod api;
pub mod auth;
pub mod config;
pub mod connect;
pub mod delivery;
pub mod frames;
pub mod grpc;
pub mod logic;
pub mod metrics;
pub mod model;
pub mod origins;
pub mod outbound;
pub mod proto;
pub mod route;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod terms;
pub mod webhooks;
