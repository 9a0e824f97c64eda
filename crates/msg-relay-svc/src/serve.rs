//! The HTTP/1.1 accept loop shared by the relay and the node: a bound on open connections, a
//! deadline for reading a request's headers (slow or half-sent requests are closed instead of
//! holding a connection forever), keep-alive, WebSocket upgrades and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use dkls_tls::{ServerStream, ServerTls};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Connection limits of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Open connections at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Longest time to receive a request's headers (from the connection's start or the end of
    /// the previous response); the connection is closed after it.
    pub header_read_timeout: Duration,
    /// Open connections from one client address; a further one is closed at once, so that a
    /// single client cannot take every connection slot.
    pub max_connections_per_address: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
        }
    }
}

/// Holds a connection's slots (the server-wide one and its address's) while any clone lives.
/// The server puts one in every request's extensions: a WebSocket handler keeps it for the
/// socket's lifetime (an upgraded connection outlives its HTTP connection task).
#[derive(Clone)]
pub struct ConnectionGuard(
    #[allow(dead_code)] Arc<(tokio::sync::OwnedSemaphorePermit, AddressSlot)>,
);

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionGuard")
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `addr`, or `None` when it has `limit` connections open.
    fn try_take(self: &Arc<Self>, addr: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut open = self.lock();
        let n = open.entry(addr).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(AddressSlot { table: Arc::clone(self), addr })
    }
}

/// One open connection of an address; released on drop.
struct AddressSlot {
    table: Arc<PerAddress>,
    addr: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(n) = open.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

/// Serves `router` on `listener` in plaintext until `shutdown` resolves; see [`serve_tls`].
///
/// # Errors
/// I/O errors of the listener other than per-connection accept failures.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, router, limits, None, shutdown).await
}

/// The SHA-256 of the certificate a client presented (mTLS), in the extensions of every
/// request of that connection; absent when it presented none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate(pub dkls_tls::Fingerprint);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and lets every
/// open connection finish its request in flight (idle keep-alive connections close at once).
/// Handlers can read the peer address as [`ConnectInfo<SocketAddr>`].
///
/// With `tls`, every connection starts with a TLS handshake (bounded by the header read
/// timeout); a client that speaks plaintext gets a JSON `400` (`tls_required`), and a verified
/// client certificate is in the requests' extensions as [`ClientCertificate`].
///
/// # Errors
/// I/O errors of the listener other than per-connection accept failures.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let mut refused_logged = tokio::time::Instant::now() - Duration::from_secs(60);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(address_slot) =
            per_address.try_take(peer.ip(), limits.max_connections_per_address.max(1))
        else {
            // Closed at once; logged at most once a second (a flood must not flood the log).
            if refused_logged.elapsed() >= Duration::from_secs(1) {
                refused_logged = tokio::time::Instant::now();
                warn!(addr = %peer.ip(), limit = limits.max_connections_per_address,
                    "connection refused: too many open connections from this address");
            }
            drop(stream);
            continue;
        };
        // Frames are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let guard = ConnectionGuard(Arc::new((permit, address_slot)));
        let router = router.clone();
        let tls = tls.clone();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let (stream, client_certificate) = match tls {
                None => (ServerStream::Plain(stream), None),
                Some(tls) => match tls.accept(stream, peer, limits.header_read_timeout).await {
                    Ok(accepted) => (accepted.stream, accepted.client_certificate),
                    Err(e) => {
                        debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            let for_requests = guard.clone();
            let svc = router.map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(for_requests.clone());
                if let Some(fingerprint) = client_certificate {
                    req.extensions_mut().insert(ClientCertificate(fingerprint));
                }
                req
            });
            let svc = TowerToHyperService::new(svc);
            let _guard = guard;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    stop_tx.send_replace(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}
