//! The message relay service: stores and forwards opaque protocol messages addressed by 32-byte
//! ids (the pull model of `DESIGN.md`), over WebSocket (`/v1/msg-relay`) and HTTP
//! (`/v1/msg/{id}`), with optional peer relays.
//!
//! The relay never looks inside a message and never depends on the cryptography.
//!
//! - [`engine`]: publish/ask semantics and limits, independent of any transport;
//! - [`store`]: the [`store::MessageStore`] trait and the in-memory store; `redis_store` (feature
//!   `redis`, on by default): the store shared by relay replicas;
//! - [`app`] builds the axum router from an [`AppState`]; [`run`] serves it on a listener until
//!   a shutdown future resolves (so tests bind `127.0.0.1:0`);
//! - [`testing`]: start a relay on a loopback port for tests of other crates.
//!
//! The wire format is specified in `docs/relay-protocol.md`; the frame codec, shared with the
//! client, lives in [`msg_relay_api::wire`].

mod auth;
pub mod engine;
mod error;
mod http_api;
pub mod metrics;
#[cfg(feature = "redis")]
pub mod redis_store;
pub mod serve;
mod server;
mod state;
pub mod store;
pub mod testing;
pub mod ws;

pub use engine::{Engine, EngineError, Limits};
pub use error::ApiError;
pub use server::{app, run, run_tls};
pub use state::{AppState, ConfigError, RelayConfig};
