//! The server side: a certificate and key from PEM files that can be replaced while the server
//! runs, optional client certificates, and a readable answer to plaintext clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::error::{Failure, TlsError};
use crate::fingerprint::Fingerprint;
use crate::pem;
use crate::stream::ServerStream;

/// Whether the server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificates (the default).
    #[default]
    None,
    /// A client may present a certificate signed by the client CA; one without is accepted too
    /// (and authenticates otherwise, e.g. with an API key).
    Optional,
    /// Every client must present a certificate signed by the client CA.
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "none" => Ok(Self::None),
            "optional" => Ok(Self::Optional),
            "required" => Ok(Self::Required),
            other => Err(format!("client auth is none, optional or required, not {other:?}")),
        }
    }
}

/// Where a server's certificate, key and client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// PEM CA certificates that sign client certificates (needed unless `client_auth` is none).
    pub client_ca: Option<PathBuf>,
    /// Whether clients are asked for a certificate.
    pub client_auth: ClientAuth,
}

impl ServerTlsFiles {
    /// A certificate and key, no client certificates.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self { cert: cert.into(), key: key.into(), client_ca: None, client_auth: ClientAuth::None }
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(self.cert.as_path()), Some(self.key.as_path()), self.client_ca.as_deref()]
            .into_iter()
            .flatten()
    }

    /// The files' modification times, to notice a replacement.
    fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.paths().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
    }
}

struct Loaded {
    config: Arc<rustls::ServerConfig>,
    certificate: Fingerprint,
    stamps: Vec<Option<SystemTime>>,
}

struct Inner {
    files: ServerTlsFiles,
    current: RwLock<Loaded>,
}

/// A server TLS configuration that can be reloaded; cheap to clone (clones share the current
/// certificate). A reload affects new connections only.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.inner.files)
            .field("certificate", &self.certificate())
            .finish()
    }
}

/// Reloads a [`ServerTls`] while it lives (see [`ServerTls::watch`]).
#[derive(Debug)]
pub struct Watcher(tokio::task::JoinHandle<()>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An accepted connection.
#[derive(Debug)]
pub struct Accepted {
    /// The stream to serve HTTP on.
    pub stream: ServerStream,
    /// SHA-256 of the client's certificate, when it presented one (it was verified against the
    /// client CA).
    pub client_certificate: Option<Fingerprint>,
}

/// The body of the answer to a client that speaks plain HTTP to the TLS port.
const PLAINTEXT_BODY: &str = "{\"error\":{\"code\":\"tls_required\",\"message\":\"this port speaks TLS: use an https:// or wss:// URL\"}}\n";

/// The whole answer; it closes the connection.
fn plaintext_answer() -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{PLAINTEXT_BODY}",
        PLAINTEXT_BODY.len()
    )
}

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

impl ServerTls {
    /// Loads the files.
    ///
    /// # Errors
    /// [`TlsError::Config`] naming the file that cannot be used, or the inconsistency.
    pub fn load(files: ServerTlsFiles) -> Result<Self, TlsError> {
        let loaded = build(&files)?;
        Ok(Self { inner: Arc::new(Inner { files, current: RwLock::new(loaded) }) })
    }

    /// The files this configuration is loaded from.
    pub fn files(&self) -> &ServerTlsFiles {
        &self.inner.files
    }

    /// SHA-256 of the certificate currently served.
    pub fn certificate(&self) -> Fingerprint {
        self.read().certificate
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.inner.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.read().config)
    }

    /// Reads the files again and serves the new certificate to new connections. On an error
    /// the previous certificate stays in service.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn reload(&self) -> Result<Fingerprint, TlsError> {
        let loaded = build(&self.inner.files)?;
        let certificate = loaded.certificate;
        *self.inner.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(certificate)
    }

    /// Reloads when a file changed since the last load.
    fn reload_if_changed(&self) {
        if self.read().stamps == self.inner.files.stamps() {
            return;
        }
        self.reload_logged("the certificate files changed");
    }

    fn reload_logged(&self, why: &str) {
        let before = self.certificate();
        // Taken before the files are read: a file that changes while it is read is seen as
        // changed at the next poll.
        let stamps = self.inner.files.stamps();
        match self.reload() {
            Ok(now) if now == before => info!(reason = why, "TLS files reloaded, same certificate"),
            Ok(now) => info!(reason = why, certificate = %now, "TLS certificate reloaded"),
            Err(e) => {
                // Remember the stamps of the failed attempt: a half-written file is retried when
                // it changes again, not logged on every poll.
                self.inner
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .stamps = stamps;
                warn!(reason = why, error = %e, "TLS reload failed; still serving the previous certificate");
            }
        }
    }

    /// Reloads on `SIGHUP` (Unix) and whenever a file's modification time changes (checked every
    /// `poll`), until the returned watcher is dropped. Needs a Tokio runtime.
    #[must_use = "the watcher stops when dropped"]
    pub fn watch(&self, poll: Duration) -> Watcher {
        let this = self.clone();
        Watcher(tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| warn!(error = %e, "no SIGHUP handler; TLS files are polled only"))
                .ok();
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                {
                    let hangup = async {
                        match hup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tick.tick() => this.reload_if_changed(),
                        _ = hangup => this.reload_logged("SIGHUP"),
                    }
                }
                #[cfg(not(unix))]
                {
                    tick.tick().await;
                    this.reload_if_changed();
                }
            }
        }))
    }

    /// Runs the server side of the handshake on an accepted connection, within `timeout`.
    /// A client that sends plain HTTP gets a JSON `400` naming the problem before the
    /// connection is closed.
    ///
    /// # Errors
    /// [`TlsError::Handshake`] naming `peer` and the [`Failure`].
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        timeout: Duration,
    ) -> Result<Accepted, TlsError> {
        let failed = |failure| TlsError::Handshake { peer: peer.to_string(), failure };
        let handshake = async {
            let mut first = [0u8; 1];
            let n = tcp.peek(&mut first).await.map_err(|e| failed(Failure::Io(e.to_string())))?;
            if n == 0 {
                return Err(failed(Failure::Closed));
            }
            if first != [TLS_HANDSHAKE_RECORD] {
                answer_plaintext(tcp).await;
                return Err(failed(Failure::PlaintextClient));
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
            let stream = acceptor
                .accept(tcp)
                .await
                .map_err(|e| failed(Failure::from_io(&e, &peer.to_string())))?;
            let client_certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| Fingerprint::of(cert.as_ref()));
            Ok(Accepted { stream: ServerStream::Tls(Box::new(stream)), client_certificate })
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .unwrap_or_else(|_| Err(failed(Failure::Timeout(timeout))))
    }
}

/// Tells a plaintext client why it is refused. Its request is read first (a socket closed
/// with unread data is reset, and the client would see the reset instead of the answer), then
/// the answer is written and the connection closed. Best effort, within a short time.
async fn answer_plaintext(mut tcp: TcpStream) {
    use tokio::io::AsyncReadExt as _;
    let exchange = async {
        let mut request = Vec::new();
        let mut buf = [0u8; 2048];
        while request.len() < 16 * 1024 && !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
        if tcp.write_all(plaintext_answer().as_bytes()).await.is_err() {
            return;
        }
        let _ = tcp.shutdown().await;
        // Whatever else the client sends (a request body) until it closes.
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), exchange).await;
}

fn build(files: &ServerTlsFiles) -> Result<Loaded, TlsError> {
    let stamps = files.stamps();
    let chain = pem::certs_from_file(&files.cert)?;
    let key = pem::key_from_file(&files.key)?;
    let certificate = chain
        .first()
        .map(|c| Fingerprint::of(c.as_ref()))
        .ok_or_else(|| TlsError::config(&files.cert, "no certificate in the file"))?;
    let builder = rustls::ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::setting("TLS versions", e))?;
    let builder = match (files.client_auth, &files.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::setting(
                "client CA",
                "client certificates are asked for but no client CA file is configured",
            ));
        }
        (auth, Some(ca_path)) => {
            let mut roots = RootCertStore::empty();
            for ca in pem::certs_from_file(ca_path)? {
                roots.add(ca).map_err(|e| {
                    TlsError::config(ca_path, format!("a certificate is not usable as a CA: {e}"))
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::provider());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier =
                verifier.build().map_err(|e| TlsError::config(ca_path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::config(
            &files.key,
            format!("does not belong to the certificate or is unusable: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded { config: Arc::new(config), certificate, stamps })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_plaintext_answer_is_json_with_the_right_length() {
        let text = plaintext_answer();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(body.contains("\"code\":\"tls_required\""), "{body}");
    }

    #[test]
    fn client_auth_parses() {
        assert_eq!("required".parse::<ClientAuth>().unwrap(), ClientAuth::Required);
        assert!("yes".parse::<ClientAuth>().unwrap_err().contains("none, optional or required"));
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let err =
            ServerTls::load(ServerTlsFiles::new("/nonexistent/cert.pem", "/nonexistent/key.pem"))
                .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
