//! Opening the WebSocket: TCP, TLS for `wss://`, the upgrade request (with the peer token), and
//! what the relay's refusals mean.

use std::time::Duration;

use dkls_tls::ClientTls;

use crate::config::ClientConfig;
use crate::transport::{self, OpenError};
use crate::url::RelayUrl;

/// The WebSocket upgrade request for `url`, with the peer token when one is configured.
pub(super) fn upgrade_request(
    url: &str,
    config: &ClientConfig,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::client::Request,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request()?;
    if let Some(token) = &config.peer_token {
        let value = tokio_tungstenite::tungstenite::http::HeaderValue::from_str(&format!(
            "Bearer {}",
            token.expose()
        ))
        .map_err(|e| tokio_tungstenite::tungstenite::Error::HttpFormat(e.into()))?;
        request.headers_mut().insert("authorization", value);
    }
    Ok(request)
}

pub(super) type WsStream = tokio_tungstenite::WebSocketStream<dkls_tls::ClientStream>;

/// Opens the connection (TCP, TLS for `wss://`) and runs the WebSocket upgrade, within
/// `timeout`.
pub(super) async fn open_ws(
    url: RelayUrl,
    tls: Option<ClientTls>,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    timeout: Duration,
) -> Result<WsStream, OpenError> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let opening = async {
        let stream = transport::open(&url, tls.as_ref(), timeout).await?;
        match tokio_tungstenite::client_async_with_config(request, stream, None).await {
            Ok((ws, _response)) => Ok(ws),
            Err(WsError::Http(response)) => Err(upgrade_refused(&url, &response)),
            Err(WsError::Io(e)) => Err(transport::after_handshake(&url, &e).unwrap_or(OpenError {
                message: format!("WebSocket upgrade with {} failed: {e}", url.authority()),
                permanent: false,
            })),
            Err(e) => Err(OpenError {
                message: format!("WebSocket upgrade with {} failed: {e}", url.authority()),
                permanent: false,
            }),
        }
    };
    tokio::time::timeout(timeout, opening).await.unwrap_or_else(|_| {
        Err(OpenError {
            message: format!("connecting to {} timed out after {timeout:?}", url.authority()),
            permanent: false,
        })
    })
}

/// The relay answered the upgrade with an HTTP error instead of switching protocols.
fn upgrade_refused(
    url: &RelayUrl,
    response: &tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
) -> OpenError {
    let status = response.status();
    let body = response.body().as_deref().unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("code")?.as_str().map(str::to_owned));
    if code.as_deref() == Some("tls_required") {
        return OpenError {
            message: format!(
                "the relay at {} speaks TLS on this port: use an https:// or wss:// relay URL",
                url.authority()
            ),
            permanent: true,
        };
    }
    OpenError {
        message: format!(
            "the relay at {} refused the WebSocket upgrade: HTTP {status}",
            url.authority()
        ),
        permanent: false,
    }
}
