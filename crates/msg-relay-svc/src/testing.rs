//! Starting a relay on a loopback port, for tests (of this crate and of crates that talk to
//! the relay, e.g. protocol runs through a real relay).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use msg_relay_svc::{RelayConfig, testing};
//! let relay = testing::spawn_relay(RelayConfig::default()).await?;
//! let url = relay.url(); // "http://127.0.0.1:<port>", usable as RELAY_URL
//! # let _ = url;
//! relay.stop().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::server::run_tls;
use crate::state::{AppState, RelayConfig};

/// A relay serving on a loopback address; stops when [`TestRelay::stop`] is called or when
/// dropped.
#[derive(Debug)]
pub struct TestRelay {
    addr: SocketAddr,
    url: String,
    state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts a relay on `127.0.0.1:0` (a free port).
///
/// # Errors
/// Binding failed, or the configuration is unusable.
pub async fn spawn_relay(config: RelayConfig) -> std::io::Result<TestRelay> {
    spawn_relay_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
}

/// Starts a relay on `127.0.0.1:0` over `store` (e.g. a Redis store shared with other relays).
///
/// # Errors
/// Binding failed, or the configuration is unusable.
pub async fn spawn_relay_with_store(
    config: RelayConfig,
    store: std::sync::Arc<dyn crate::store::MessageStore>,
) -> std::io::Result<TestRelay> {
    spawn_with(SocketAddr::from(([127, 0, 0, 1], 0)), config, None, Some(store)).await
}

/// Starts a relay on `addr` (e.g. the address of a relay that was stopped, to restart it).
///
/// # Errors
/// Binding failed, or the configuration is unusable.
pub async fn spawn_relay_on(addr: SocketAddr, config: RelayConfig) -> std::io::Result<TestRelay> {
    spawn(addr, config, None).await
}

/// Starts a relay over TLS on `127.0.0.1:0`; its URL is `https://127.0.0.1:<port>` (the
/// certificate must list `127.0.0.1`).
///
/// # Errors
/// Binding failed, or the configuration is unusable.
pub async fn spawn_relay_tls(
    config: RelayConfig,
    tls: dkls_tls::ServerTls,
) -> std::io::Result<TestRelay> {
    spawn(SocketAddr::from(([127, 0, 0, 1], 0)), config, Some(tls)).await
}

/// Starts a relay over TLS on `addr`.
///
/// # Errors
/// Binding failed, or the configuration is unusable.
pub async fn spawn_relay_tls_on(
    addr: SocketAddr,
    config: RelayConfig,
    tls: dkls_tls::ServerTls,
) -> std::io::Result<TestRelay> {
    spawn(addr, config, Some(tls)).await
}

async fn spawn(
    addr: SocketAddr,
    config: RelayConfig,
    tls: Option<dkls_tls::ServerTls>,
) -> std::io::Result<TestRelay> {
    spawn_with(addr, config, tls, None).await
}

async fn spawn_with(
    addr: SocketAddr,
    config: RelayConfig,
    tls: Option<dkls_tls::ServerTls>,
    store: Option<std::sync::Arc<dyn crate::store::MessageStore>>,
) -> std::io::Result<TestRelay> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = match store {
        Some(store) => AppState::with_store(store, config),
        None => AppState::new(config),
    }
    .map_err(std::io::Error::other)?;
    let (tx, rx) = oneshot::channel::<()>();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = tokio::spawn(run_tls(listener, state.clone(), tls, async move {
        let _ = rx.await;
    }));
    Ok(TestRelay {
        addr,
        url: format!("{scheme}://{addr}"),
        state,
        shutdown: Some(tx),
        task: Some(task),
    })
}

impl TestRelay {
    /// The relay's URL, `http://127.0.0.1:<port>` (`https://` over TLS).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's state (engine, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Shuts the relay down gracefully and waits until it stopped serving.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.state.close();
    }
}

/// The Redis server for tests: `MPC_TEST_REDIS_URL` (set by `.ci/services`). `None` when it is
/// not set, after saying so on stderr: the caller skips.
///
/// # Panics
/// When `MPC_REQUIRE_SERVICES=1` and no server is configured (CI must not skip silently).
#[cfg(feature = "redis")]
#[allow(clippy::panic)]
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("MPC_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("MPC_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
                panic!("{test}: MPC_TEST_REDIS_URL is not set but MPC_REQUIRE_SERVICES=1");
            }
            eprintln!("{test}: skipped, no Redis (source .ci/services to start one)");
            None
        }
    }
}

/// A key prefix no other test uses (tests share one Redis server).
#[cfg(feature = "redis")]
pub fn unique_prefix(test: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("test:{test}:{}:{nanos}:{}:", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A Redis store for tests under a fresh prefix, or `None` (skipped) without a server.
///
/// # Panics
/// When the server is configured but cannot be used.
#[cfg(feature = "redis")]
#[allow(clippy::panic)]
pub async fn redis_store(
    test: &str,
    prefix: Option<&str>,
    quotas: crate::store::StoreQuotas,
) -> Option<crate::redis_store::RedisStore> {
    let url = redis_url(test)?;
    let prefix = prefix.map_or_else(|| unique_prefix(test), str::to_owned);
    let config = crate::redis_store::RedisConfig { url, prefix, quotas };
    match crate::redis_store::RedisStore::connect(config).await {
        Ok(store) => Some(store),
        Err(e) => panic!("{test}: the test Redis server cannot be used: {e}"),
    }
}
