//! Opening a connection to the relay: TCP, then TLS for `https://` and `wss://` URLs.

use std::time::Duration;

use dkls_tls::{ClientStream, ClientTls};
use tokio::net::TcpStream;

use crate::url::RelayUrl;

/// Why a connection could not be opened.
#[derive(Debug, Clone)]
pub(crate) struct OpenError {
    /// What went wrong, naming the relay.
    pub(crate) message: String,
    /// Whether retrying cannot help (a certificate or TLS configuration problem): outstanding
    /// requests fail at once instead of waiting for the relay to come back.
    pub(crate) permanent: bool,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The TLS configuration a client uses for `url`: the configured one, or the bundled public
/// roots; `None` for a plaintext URL.
pub(crate) fn tls_for(url: &RelayUrl, configured: Option<&ClientTls>) -> Option<ClientTls> {
    if !url.is_tls() {
        return None;
    }
    configured.cloned().or_else(|| ClientTls::public_roots().ok())
}

/// Opens a connection to the relay within `timeout` (TCP connect and TLS handshake together).
pub(crate) async fn open(
    url: &RelayUrl,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<ClientStream, OpenError> {
    let peer = url.authority();
    let opening = async {
        let tcp = TcpStream::connect((url.host(), url.port())).await.map_err(|e| OpenError {
            message: format!("cannot connect to {peer}: {e}"),
            permanent: false,
        })?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None if url.is_tls() => Err(OpenError {
                message: format!("no TLS configuration for {peer}"),
                permanent: true,
            }),
            None => Ok(ClientStream::Plain(tcp)),
            Some(tls) => match tls.connect(tcp, url.host(), &peer).await {
                Ok(stream) => Ok(ClientStream::Tls(Box::new(stream))),
                Err(e) => Err(OpenError { message: e.to_string(), permanent: e.is_permanent() }),
            },
        }
    };
    tokio::time::timeout(timeout, opening).await.unwrap_or_else(|_| {
        Err(OpenError {
            message: format!("connecting to {peer} timed out after {timeout:?}"),
            permanent: false,
        })
    })
}

/// Classifies an error that surfaced after the handshake (TLS 1.3 servers reject a client
/// certificate only then): permanent when it is a TLS rejection.
pub(crate) fn after_handshake(url: &RelayUrl, e: &std::io::Error) -> Option<OpenError> {
    dkls_tls::Failure::from_stream_error(e, url.host()).map(|failure| OpenError {
        permanent: failure.is_permanent(),
        message: format!("TLS with {} failed: {failure}", url.authority()),
    })
}
