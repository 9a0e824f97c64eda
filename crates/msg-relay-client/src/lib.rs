//! Client for `msg-relay-svc`: implements [`msg_relay_api::Relay`] over the relay's WebSocket
//! route ([`WsRelay`]) and over its HTTP publish / long-poll API ([`HttpRelay`]).
//!
//! Both clients take a relay URL in the `RELAY_URL` style (`http://host:port`, which maps to
//! `ws://host:port/v1/msg-relay` for the WebSocket client) and a [`ClientConfig`] with connect
//! and request timeouts and the retry/backoff policy.
//!
//! The WebSocket client reconnects transparently: asks that were outstanding and publishes that
//! were not yet acknowledged are re-issued on the new connection (safe because publish is
//! idempotent), and by default messages it already published are published again while their
//! TTL lasts, so a relay that restarted with an empty memory store still serves them.
//!
//! The wire format (frame codec, header names) is [`msg_relay_api::wire`], shared with the
//! relay service.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use msg_relay_api::{MessageId, Relay};
//! use msg_relay_client::{ClientConfig, WsRelay};
//!
//! let relay = WsRelay::connect("http://127.0.0.1:8080", ClientConfig::default()).await?;
//! relay.publish(MessageId([7; 32]), Duration::from_secs(60), b"hello".to_vec()).await?;
//! assert_eq!(relay.ask(MessageId([7; 32])).await?, b"hello");
//! # Ok(()) }
//! ```

mod backoff;
mod config;
mod error;
mod http;
mod transport;
mod ttl;
mod url;
mod ws;

pub use config::{ClientConfig, PeerToken};
pub use dkls_tls::{ClientTls, ClientTlsBuilder, Pin};
pub use error::ClientError;
pub use http::HttpRelay;
pub use ttl::ttl_to_wire_ms;
pub use url::RelayUrl;
pub use ws::WsRelay;
