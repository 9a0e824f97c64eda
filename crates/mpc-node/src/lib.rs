//! The MPC node service: an SDK HTTP API (axum) in front of one DKLs23 party, with encrypted
//! share storage (`mpc-node-store`), tenancy by API key, per-key serialisation and the relay
//! connection through which nodes (and embedded parties such as phones) meet.
//!
//! * [`config`] — the TOML configuration and its validation;
//! * [`node::Node`] — the operations (generate, sign, list, public key, delete), one module
//!   each, taking requests validated once (module `request`);
//! * [`api::router`] — the HTTP API; [`server::run`] serves it until shutdown;
//! * [`dev`] — `mpc-node dev`: a relay and three nodes in one process for local development.

#![cfg_attr(not(test), warn(missing_docs))]

pub mod api;
pub mod audit;
pub mod config;
pub mod dev;
pub mod error;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod operations;
pub mod outcomes;
mod request;
pub mod server;
pub mod tenants;
pub mod webhooks;

pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use node::Node;
pub use server::{RunningNode, run};
