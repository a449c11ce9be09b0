//! gim: a gRPC-first, multi-tenant instant-messaging platform.
//!
//! Layers, from the edge inwards (a module only uses the ones below it):
//! `api` (gRPC handlers) -> `logic` (use cases) -> `store` / `delivery` (seams with
//! their implementations) -> `model`, `auth`, `config`. `server` wires them into
//! processes; `telemetry` sets up logs and traces, `metrics` the Prometheus endpoint.

pub mod api;
pub mod auth;
pub mod config;
pub mod connect;
pub mod delivery;
pub mod frames;
pub mod logic;
pub mod metrics;
pub mod model;
pub mod origins;
pub mod proto;
pub mod route;
pub mod server;
pub mod store;
pub mod telemetry;
