//! access-broker: a GMS-compatible access-number broker.
//!
//! An app holding a service session asks for an access number from a pool (request-access);
//! the IVR, when the call arrives, gets the session back (match-interaction).
//!
//! # Layout
//! - `domain/`: pure types, parsed once at the edge.
//! - `rules/`: the decision core: every reservation rule, pure, called by every store.
//! - `store/`: the `Store` trait and its backends (memory, SQLite, PostgreSQL).
//! - `broker/`: the use cases; the only caller of the store; `BrokerError` names each refusal.
//! - `http/`: axum routes, parameter parsing, replies, the admin API's JSON views, and
//!   `error.rs`, the one place a refusal becomes a status and a body.
//! - `server/`: the accept loop (connection cap, header/idle timeouts, TLS, bounded shutdown).
//! - `events/`: the reservation lifecycle as events; webhook delivery from the stores' outboxes
//!   (`deliver.rs`); the live stream is `http/events.rs`.
//! - `config.rs`, `cli.rs`, `app.rs`: configuration, command line, and wiring.

pub mod advisor;
pub mod app;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod metrics;
pub mod rules;
pub mod server;
pub mod store;
pub mod telemetry;
