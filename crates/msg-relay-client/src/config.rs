//! Client configuration.

use std::time::Duration;

use dkls_tls::ClientTls;

/// Timeouts and retry policy shared by [`crate::WsRelay`] and [`crate::HttpRelay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Limit for one connection attempt (TCP connect plus WebSocket/HTTP handshake).
    pub connect_timeout: Duration,
    /// How long a publish may wait for its acknowledgement, reconnects included, before it
    /// fails with `RelayError::Unavailable`. Asks have no such limit: callers bound them with
    /// their own round timeout.
    pub request_timeout: Duration,
    /// First delay between reconnect (or HTTP retry) attempts.
    pub initial_backoff: Duration,
    /// Largest delay between attempts.
    pub max_backoff: Duration,
    /// After the relay has been unreachable this long, outstanding requests fail with
    /// `RelayError::Unavailable` (new ones keep trying to reconnect).
    pub give_up_after: Duration,
    /// WebSocket ping interval; a connection silent for twice this long is replaced.
    pub keepalive: Duration,
    /// Server-side wait of one HTTP long-poll (the relay may cap it lower).
    pub poll_wait: Duration,
    /// After reconnecting, publish again the messages this client already published whose
    /// TTL has not run out (the client keeps them until then). Makes a relay restart with an
    /// empty memory store transparent, at the cost of holding one's own messages.
    pub republish_on_reconnect: bool,
    /// How long a published message is still kept for re-publishing after its session
    /// [released](msg_relay_api::Relay::release) it: covers a receiver that is one round
    /// behind when the relay restarts just after this party finished.
    pub release_grace: Duration,
    /// A publish whose connection dropped this many times while it was in flight fails with
    /// `RelayError::Unavailable` (protects against a publish the relay cannot accept at all,
    /// e.g. one larger than its WebSocket message limit, which makes it close the connection).
    /// Asks are not limited this way: they are re-asked on every new connection.
    pub max_resends: u32,
    /// Mark every ask as forwarded (so the relay does not forward it to its peers). Set by
    /// relays that use this client to reach their peers; ordinary parties leave it off.
    pub forwarded: bool,
    /// The shared secret a relay presents to its peer relays (`Authorization: Bearer …` on
    /// the WebSocket upgrade and on HTTP requests); relays accept forwarded asks only from
    /// clients that present theirs.
    pub peer_token: Option<PeerToken>,
    /// TLS for `https://` and `wss://` relay URLs: trusted CAs, pins, a client certificate.
    /// `None` trusts the bundled web PKI roots. Unused for plaintext URLs.
    pub tls: Option<ClientTls>,
}

/// A peer relays' shared secret: compared in constant time, wiped on drop, never printed.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct PeerToken(String);

impl PeerToken {
    /// Wraps a token; `None` when it is empty or not a valid header value (visible ASCII).
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        let valid = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
        valid.then_some(Self(token))
    }

    /// The token itself (to put it in a request header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl PartialEq for PeerToken {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for PeerToken {}

impl std::fmt::Debug for PeerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerToken(<redacted>)")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
            keepalive: Duration::from_secs(20),
            poll_wait: Duration::from_secs(25),
            republish_on_reconnect: true,
            release_grace: Duration::from_secs(5),
            max_resends: 5,
            forwarded: false,
            peer_token: None,
            tls: None,
        }
    }
}

impl ClientConfig {
    /// The configuration a relay uses to reach its peers: asks are marked forwarded and own
    /// messages are not republished (a relay publishes nothing through it).
    pub fn for_peer(token: PeerToken) -> Self {
        Self {
            forwarded: true,
            republish_on_reconnect: false,
            peer_token: Some(token),
            ..Self::default()
        }
    }
}
