//! The shared state of one relay ([`AppState`]) and the configuration it is built from.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use msg_relay_api::Relay;
use msg_relay_client::{ClientConfig, ClientTls, PeerToken, WsRelay};
use tokio::sync::watch;

use crate::auth;
use crate::engine::{AskBudget, Engine, Limits};
use crate::serve::ServeLimits;
use crate::store::{MemoryStore, MessageStore};

/// Everything that configures a relay besides its listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Limits.
    pub limits: Limits,
    /// Peer relay URLs (`http://host:port`); asks this relay cannot answer are forwarded there.
    pub peers: Vec<String>,
    /// The secret peer relays share: presented on every forwarded ask this relay sends, and
    /// required of every forwarded ask it accepts. Without it, no forwarded ask is accepted
    /// (and configuring peers is refused).
    pub peer_token: Option<PeerToken>,
    /// Origins allowed by CORS; empty allows any origin (the relay holds no credentials).
    pub cors_origins: Vec<String>,
    /// How often expired messages are purged.
    pub sweep_interval: Duration,
    /// Open connections and the header read deadline.
    pub serve: ServeLimits,
    /// TLS for `https://` peer relays (e.g. a private CA); `None` trusts the bundled web PKI
    /// roots.
    pub peer_tls: Option<ClientTls>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            peers: Vec::new(),
            peer_token: None,
            cors_origins: Vec::new(),
            sweep_interval: Duration::from_secs(1),
            serve: ServeLimits::default(),
            peer_tls: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A peer URL is invalid.
    #[error("peer relay {url:?}: {source}")]
    Peer {
        /// The URL as given.
        url: String,
        /// Why.
        source: msg_relay_client::ClientError,
    },
    /// A CORS origin is not a valid header value.
    #[error("invalid CORS origin {0:?}")]
    CorsOrigin(String),
    /// A limit is zero where it must not be.
    #[error("invalid limit: {0}")]
    Limit(&'static str),
    /// Peers are configured without the shared peer token.
    #[error("peer relays are configured but no peer token is: peers must authenticate")]
    PeerTokenMissing,
    /// Called outside a Tokio runtime (the sweeper and peer clients need one).
    #[error("no Tokio runtime: create the relay state from within a Tokio runtime")]
    NoRuntime,
}

struct Inner {
    engine: Engine,
    cors: Option<Vec<HeaderValue>>,
    closing: watch::Sender<bool>,
    http_waiters: AskBudget,
    serve: ServeLimits,
    peer_token: Option<PeerToken>,
}

/// Shared state of one relay (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("engine", &self.inner.engine).finish_non_exhaustive()
    }
}

impl AppState {
    /// A relay with the in-memory store. Must be called within a Tokio runtime: it starts the
    /// expiry sweeper and the peer clients.
    ///
    /// # Errors
    /// [`ConfigError`] for an unusable peer URL, CORS origin or limit, or outside a runtime.
    pub fn new(config: RelayConfig) -> Result<Self, ConfigError> {
        let store = Arc::new(MemoryStore::with_quotas(config.limits.quotas()));
        Self::with_store(store, config)
    }

    /// A relay over the given store (see [`AppState::new`]).
    ///
    /// # Errors
    /// As [`AppState::new`].
    pub fn with_store(
        store: Arc<dyn MessageStore>,
        config: RelayConfig,
    ) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let limits = &config.limits;
        if limits.max_ttl.is_zero() || limits.max_wait.is_zero() {
            return Err(ConfigError::Limit("max_ttl and max_wait must be positive"));
        }
        if limits.max_asks_per_connection == 0 || limits.max_forwarded_asks_per_connection == 0 {
            return Err(ConfigError::Limit("ask limits must be positive"));
        }
        if config.serve.max_connections == 0 || config.serve.header_read_timeout.is_zero() {
            return Err(ConfigError::Limit(
                "max_connections and header_read_timeout must be positive",
            ));
        }
        if limits.max_bytes_per_connection == 0 || limits.max_bytes_per_address == 0 {
            return Err(ConfigError::Limit(
                "per-connection and per-address quotas must be positive",
            ));
        }
        if config.serve.max_connections_per_address == 0 {
            return Err(ConfigError::Limit("max_connections_per_address must be positive"));
        }
        let mut peers: Vec<Arc<dyn Relay>> = Vec::with_capacity(config.peers.len());
        if !config.peers.is_empty() && config.peer_token.is_none() {
            return Err(ConfigError::PeerTokenMissing);
        }
        for url in &config.peers {
            let Some(token) = config.peer_token.clone() else {
                return Err(ConfigError::PeerTokenMissing);
            };
            let client_config =
                ClientConfig { tls: config.peer_tls.clone(), ..ClientConfig::for_peer(token) };
            let client = WsRelay::new(url, client_config)
                .map_err(|source| ConfigError::Peer { url: url.clone(), source })?;
            peers.push(Arc::new(client));
        }
        let cors = if config.cors_origins.is_empty() {
            None
        } else {
            let parsed = config
                .cors_origins
                .iter()
                .map(|o| HeaderValue::from_str(o).map_err(|_| ConfigError::CorsOrigin(o.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            Some(parsed)
        };
        let http_waiters = AskBudget::new(config.limits.max_http_waiters);
        let engine = Engine::new(store, config.limits, peers);
        let inner = Arc::new(Inner {
            engine,
            cors,
            closing: watch::channel(false).0,
            http_waiters,
            serve: config.serve,
            peer_token: config.peer_token,
        });
        runtime.spawn(sweep(Arc::downgrade(&inner), config.sweep_interval));
        Ok(Self { inner })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Connection limits of the HTTP server.
    pub fn serve_limits(&self) -> ServeLimits {
        self.inner.serve
    }

    /// Tells open WebSocket connections and HTTP long-polls to finish (part of shutdown).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`AppState::close`] was called.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            // An error means the state is gone, which is as closed as it gets.
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    pub(crate) fn http_waiters(&self) -> &AskBudget {
        &self.inner.http_waiters
    }

    /// The CORS origins allowed (`None`: any origin).
    pub(crate) fn cors_origins(&self) -> Option<&[HeaderValue]> {
        self.inner.cors.as_deref()
    }

    /// Whether `headers` carry `Authorization: Bearer <the peer token>`.
    pub(crate) fn is_peer(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(token) = &self.inner.peer_token else { return false };
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| auth::bearer(v.as_bytes()))
            .any(|presented| token.matches(presented))
    }
}

/// Purges expired messages every `every` while the state lives.
async fn sweep(state: Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = state.upgrade() else { return };
        inner.engine.purge_expired().await;
    }
}
