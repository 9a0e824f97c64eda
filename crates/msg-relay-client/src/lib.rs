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
mod http;
mod url;
mod ws;

pub use config::{ClientConfig, PeerToken};
pub use http::HttpRelay;
pub use url::RelayUrl;
pub use ws::WsRelay;

/// Errors constructing a client (requests themselves report [`msg_relay_api::RelayError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay URL could not be used.
    #[error("invalid relay URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The client was created outside a Tokio runtime (it needs one for its background task).
    #[error("no Tokio runtime: create the client from within a Tokio runtime")]
    NoRuntime,
    /// The first connection could not be made within the connect timeout.
    #[error("could not connect to the relay at {0}")]
    Connect(String),
}

/// Converts a TTL to the wire's whole milliseconds: rounded up, at least 1, saturating at
/// `u32::MAX` (which any relay rejects as too long).
pub fn ttl_to_wire_ms(ttl: std::time::Duration) -> u32 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    #[test]
    fn ttl_rounds_up_and_saturates() {
        assert_eq!(super::ttl_to_wire_ms(Duration::ZERO), 1);
        assert_eq!(super::ttl_to_wire_ms(Duration::from_micros(1500)), 2);
        assert_eq!(super::ttl_to_wire_ms(Duration::from_secs(60)), 60_000);
        assert_eq!(super::ttl_to_wire_ms(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
