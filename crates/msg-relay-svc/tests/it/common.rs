//! Helpers shared by the tests.

use std::time::Duration;

use msg_relay_api::MessageId;
use msg_relay_svc::{Limits, RelayConfig};

/// A message id made of one repeated byte.
pub fn id(b: u8) -> MessageId {
    MessageId([b; 32])
}

/// A message id for (party, round, receiver) in the round-based exchanges.
pub fn round_id(session: u8, from: u8, to: u8, round: u8) -> MessageId {
    let mut bytes = [0u8; 32];
    bytes[0] = session;
    bytes[1] = from;
    bytes[2] = to;
    bytes[3] = round;
    MessageId(bytes)
}

/// The payload party `from` sends to `to` in `round`.
pub fn round_payload(from: u8, to: u8, round: u8) -> Vec<u8> {
    format!("round {round}: {from} -> {to}").into_bytes()
}

pub const TTL: Duration = Duration::from_secs(60);

/// Default configuration with small limits that tests can reach.
pub fn small_config() -> RelayConfig {
    RelayConfig {
        limits: Limits {
            max_message_bytes: 1024,
            max_ttl: Duration::from_secs(600),
            max_total_bytes: 1024 * 1024,
            max_bytes_per_connection: 256 * 1024,
            max_bytes_per_address: 512 * 1024,
            max_asks_per_connection: 8,
            max_forwarded_asks_per_connection: 64,
            max_wait: Duration::from_secs(600),
            max_poll: Duration::from_secs(5),
            max_http_waiters: 4,
        },
        peer_token: msg_relay_client::PeerToken::new("peer-secret-for-tests"),
        ..RelayConfig::default()
    }
}
