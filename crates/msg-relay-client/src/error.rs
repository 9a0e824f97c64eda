//! Errors constructing a client.

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
    #[error("could not connect to the relay at {url}: {cause}")]
    Connect {
        /// The relay's WebSocket URL.
        url: String,
        /// Why (the last attempt's error, e.g. a certificate the client does not trust).
        cause: String,
    },
}
