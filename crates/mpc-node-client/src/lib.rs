//! Client side of the MPC node service.
//!
//! * [`api`] — the JSON wire types of the SDK API (shared with the node).
//! * [`session`] — building the byte-identical dkls23-core setups from a session configuration.
//! * [`Client`] — a typed HTTP client of one node.
//! * [`EmbeddedParty`] — a party without a node (the phone side of a "mobile + server" key).

#![cfg_attr(not(test), warn(missing_docs))]

pub mod api;
pub mod embedded;
mod http;
pub mod session;
mod stores;

pub use embedded::{
    BanStore, EmbeddedParty, GeneratedKey, GenerationCounter, KeyStore, MemoryKeyStore, PartyError,
    PresignatureStore, ReshareResult,
};
#[cfg(any(test, feature = "testing"))]
pub use embedded::{MemoryBanStore, MemoryGenerationCounter, MemoryPresignatureStore};
pub use http::{Client, ClientError};
