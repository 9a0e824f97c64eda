//! Serving a node on a listener until a shutdown future resolves, and starting one in-process.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::info;

use crate::api::router;
use crate::config::{Config, ConfigError};
use crate::node::Node;

/// How often the TLS files are checked for a change.
const TLS_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `node` on `listener` until `shutdown` resolves; then refuses new sessions and waits
/// for in-flight requests (sessions finish or fail at their timeout).
///
/// # Errors
/// I/O errors of the listener.
pub async fn run(
    listener: TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let tls = node.config().tls.clone();
    match &tls {
        Some(tls) => info!(%addr, player = node.config().index, certificate = %tls.certificate(),
            "mpc-node listening (TLS)"),
        None => info!(%addr, player = node.config().index, "mpc-node listening"),
    }
    // A renewed certificate is served without a restart.
    let _watcher = tls.as_ref().map(|tls| tls.watch(TLS_POLL));
    let closer = node.clone();
    let l = &node.config().limits;
    let limits = msg_relay_svc::serve::ServeLimits {
        max_connections: l.max_connections,
        header_read_timeout: std::time::Duration::from_secs(l.header_read_timeout_secs),
        ..msg_relay_svc::serve::ServeLimits::default()
    };
    msg_relay_svc::serve::serve_tls(listener, router(node), limits, tls, async move {
        shutdown.await;
        info!(%addr, "mpc-node shutting down; finishing in-flight sessions");
        closer.close();
    })
    .await
}

/// A node serving in this process (tests, `mpc-node dev`).
#[derive(Debug)]
pub struct RunningNode {
    addr: SocketAddr,
    node: Arc<Node>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningNode {
    /// Opens the node for `cfg` and serves it on `cfg.listen` (port 0 picks a free port).
    ///
    /// # Errors
    /// [`ConfigError`] for startup problems (including binding the address).
    pub async fn start(cfg: Config) -> Result<Self, ConfigError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ConfigError(vec![format!("listen {}: {e}", cfg.listen)]))?;
        let addr = listener.local_addr().map_err(|e| ConfigError(vec![e.to_string()]))?;
        let node = Node::open(cfg).await?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, node.clone(), async move {
            let _ = rx.await;
        }));
        Ok(Self { addr, node, shutdown: Some(tx), task: Some(task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, or `https://<addr>` when the node serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.node.config().tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Graceful stop: waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Hard stop (simulates a crash): aborts the server task at once.
    pub async fn kill(mut self) {
        self.node.close();
        self.node.abort_sessions();
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
