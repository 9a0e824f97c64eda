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
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = AppState::new(config).map_err(std::io::Error::other)?;
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
