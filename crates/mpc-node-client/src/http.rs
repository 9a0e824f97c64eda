//! A small typed client for the node's SDK API: HTTP/1.1 (over TLS for `https://` URLs) with
//! hyper's connection API and a pool of idle keep-alive connections.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use dkls_tls::{ClientStream, ClientTls};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::api::{
    ErrorBody, ExportRequestBody, ExportResponse, GenerateKeyRequest, ImportKeyRequest, KeyInfo,
    KeyList, OperationInfo, PresignRequestBody, PresignResponse, PublicKeyResponse,
    RefreshRequestBody, ReshareRequestBody, ReshareResponse, ReshareSpecResponse, SignRequestBody,
    SignatureResponse, XpubResponse,
};

/// Largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Idle connections kept per client.
const POOL_SIZE: usize = 64;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not `http://host:port` or `https://host:port`.
    #[error("invalid node URL: {0}")]
    InvalidUrl(String),
    /// The TLS handshake failed or the TLS configuration is unusable (the message names the
    /// cause: untrusted CA, expired certificate, wrong host name, plaintext port…).
    #[error("{0}")]
    Tls(String),
    /// The node answered with an error.
    #[error("node answered {status}: {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The node's error code.
        code: String,
        /// The node's message.
        message: String,
    },
    /// Connecting or talking to the node failed.
    #[error("transport: {0}")]
    Transport(String),
    /// No answer within the timeout.
    #[error("request timed out")]
    Timeout,
    /// The answer is not the expected JSON.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one node, authenticated by one API key.
pub struct Client {
    host: String,
    port: u16,
    authority: String,
    /// `None`: authenticate with the TLS client certificate only.
    bearer: Option<String>,
    /// For an `https://` URL.
    tls: Option<ClientTls>,
    timeout: Duration,
    pool: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("authority", &self.authority).finish_non_exhaustive()
    }
}

/// The [`ClientError::Api`] of an error answer.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => ("unknown".into(), String::from_utf8_lossy(bytes).into_owned()),
    };
    ClientError::Api { status: status.as_u16(), code, message }
}

impl Client {
    /// A client of the node at `base_url` (`http://host:port` or `https://host:port`) using
    /// `api_key` (an empty key sends none: the TLS client certificate authenticates). An
    /// `https://` node is verified against the bundled web PKI roots unless
    /// [`Client::with_tls`] says otherwise.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`].
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::InvalidUrl(base_url.to_owned());
        let (rest, tls, default_port) = if let Some(rest) = base_url.strip_prefix("http://") {
            (rest, false, 80)
        } else if let Some(rest) = base_url.strip_prefix("https://") {
            (rest, true, 443)
        } else {
            return Err(bad());
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.is_empty() {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_owned(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (rest.to_owned(), default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let tls = if tls {
            Some(ClientTls::public_roots().map_err(|e| ClientError::Tls(e.to_string()))?)
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            authority: rest.to_owned(),
            bearer: (!api_key.is_empty()).then(|| format!("Bearer {api_key}")),
            tls,
            timeout: Duration::from_secs(120),
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Uses `tls` (trusted CAs, pins, a client certificate) for an `https://` node.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] when the node's URL is `http://`.
    pub fn with_tls(mut self, tls: ClientTls) -> Result<Self, ClientError> {
        if self.tls.is_none() {
            return Err(ClientError::InvalidUrl(format!(
                "http://{}: TLS settings need an https:// URL",
                self.authority
            )));
        }
        self.tls = Some(tls);
        Ok(self)
    }

    /// Sets the per-request timeout (default 120 s; key generation takes a while).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut pool = self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(s) = pool.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn put_back(&self, s: SendRequest<Full<Bytes>>) {
        if s.is_ready() {
            let mut pool = self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if pool.len() < POOL_SIZE {
                pool.push(s);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| {
            ClientError::Transport(format!("cannot connect to {}: {e}", self.authority))
        })?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => ClientStream::Plain(tcp),
            Some(tls) => ClientStream::Tls(Box::new(
                tls.connect(tcp, &self.host, &self.authority)
                    .await
                    .map_err(|e| ClientError::Tls(e.to_string()))?,
            )),
        };
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// A failed exchange; a TLS rejection that surfaced only now (a TLS 1.3 server refusing
    /// this client's certificate) is reported as [`ClientError::Tls`].
    fn send_error(&self, e: &hyper::Error) -> ClientError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(failure) = err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| dkls_tls::Failure::from_stream_error(io, &self.host))
            {
                return ClientError::Tls(format!("TLS with {} failed: {failure}", self.authority));
            }
            source = err.source();
        }
        ClientError::Transport(e.to_string())
    }

    /// One raw exchange: returns the status and body bytes. `body` is sent as JSON.
    ///
    /// # Errors
    /// [`ClientError::Transport`] / [`ClientError::Timeout`].
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        auth: bool,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.raw_with_headers(method, path, body, auth, &[]).await
    }

    /// Like [`Client::raw`], with further request headers (e.g. `Prefer: respond-async`, or a
    /// webhook's signature).
    ///
    /// # Errors
    /// [`ClientError::Transport`] / [`ClientError::Timeout`]; a header that is not valid.
    pub async fn raw_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        auth: bool,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let exchange = async {
            let mut sender = match self.take_idle() {
                Some(s) => s,
                None => self.connect().await?,
            };
            let mut req =
                Request::builder().method(method).uri(path).header(header::HOST, &self.authority);
            if auth && let Some(bearer) = &self.bearer {
                req = req.header(header::AUTHORIZATION, bearer);
            }
            if body.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let req = req
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            let resp = sender.send_request(req).await.map_err(|e| self.send_error(&e))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?
                .to_bytes();
            self.put_back(sender);
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| ClientError::Timeout)?
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?),
            None => None,
        };
        let (status, bytes) = self.raw(method, path, body, true).await?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
        } else {
            Err(api_error(status, &bytes))
        }
    }

    /// `POST /v1/keys`: generates a key (returns when READY, or the existing READY key).
    ///
    /// # Errors
    /// Any [`ClientError`]; 409 when the key id is PENDING or in ERROR.
    pub async fn generate_key(&self, req: &GenerateKeyRequest) -> Result<KeyInfo, ClientError> {
        self.call(Method::POST, "/v1/keys", Some(req)).await
    }

    /// `POST /v1/keys/{key_id}/sign`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn sign(
        &self,
        key_id: &str,
        req: &SignRequestBody,
    ) -> Result<SignatureResponse, ClientError> {
        self.call(Method::POST, &format!("/v1/keys/{key_id}/sign"), Some(req)).await
    }

    /// `GET /v1/keys/{key_id}`.
    ///
    /// # Errors
    /// Any [`ClientError`]; 404 for an unknown key (or another application's).
    pub async fn get_key(&self, key_id: &str) -> Result<KeyInfo, ClientError> {
        self.call(Method::GET, &format!("/v1/keys/{key_id}"), None::<&()>).await
    }

    /// `GET /v1/keys`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn list_keys(&self) -> Result<KeyList, ClientError> {
        self.call(Method::GET, "/v1/keys", None::<&()>).await
    }

    /// `GET /v1/keys/{key_id}/public-key?path=…`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn public_key(
        &self,
        key_id: &str,
        path: &str,
    ) -> Result<PublicKeyResponse, ClientError> {
        self.call(Method::GET, &format!("/v1/keys/{key_id}/public-key?path={path}"), None::<&()>)
            .await
    }

    /// `GET /v1/operations/{operation_id}`: an asynchronous operation of this application.
    ///
    /// # Errors
    /// Any [`ClientError`]; 404 for an unknown id.
    pub async fn get_operation(&self, operation_id: &str) -> Result<OperationInfo, ClientError> {
        self.call(Method::GET, &format!("/v1/operations/{operation_id}"), None::<&()>).await
    }

    /// Starts `POST path` with `body` as an asynchronous operation (`Prefer: respond-async`):
    /// answers at once (`202 Accepted`) with the operation to look up.
    ///
    /// # Errors
    /// Any [`ClientError`] (a refusal before anything started, such as 400 or 429, comes at
    /// once as usual).
    pub async fn start_async(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<OperationInfo, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let (status, bytes) = self
            .raw_with_headers(Method::POST, path, Some(body), true, &[("prefer", "respond-async")])
            .await?;
        if status == StatusCode::ACCEPTED {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        Err(api_error(status, &bytes))
    }

    /// `DELETE /v1/keys/{key_id}`: this node destroys its share.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn delete_key(&self, key_id: &str) -> Result<(), ClientError> {
        let _: serde_json::Value =
            self.call(Method::DELETE, &format!("/v1/keys/{key_id}"), None::<&()>).await?;
        Ok(())
    }

    /// `POST /v1/keys/{key_id}/presign`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn presign(
        &self,
        key_id: &str,
        req: &PresignRequestBody,
    ) -> Result<PresignResponse, ClientError> {
        self.call(Method::POST, &format!("/v1/keys/{key_id}/presign"), Some(req)).await
    }

    /// `POST /v1/keys/{key_id}/refresh`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn refresh(
        &self,
        key_id: &str,
        req: &RefreshRequestBody,
    ) -> Result<KeyInfo, ClientError> {
        self.call(Method::POST, &format!("/v1/keys/{key_id}/refresh"), Some(req)).await
    }

    /// `POST /v1/keys/{key_id}/reshare`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn reshare(
        &self,
        key_id: &str,
        req: &ReshareRequestBody,
    ) -> Result<ReshareResponse, ClientError> {
        self.call(Method::POST, &format!("/v1/keys/{key_id}/reshare"), Some(req)).await
    }

    /// `GET /v1/keys/{key_id}/xpub?path=…&network=…`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn xpub(
        &self,
        key_id: &str,
        path: &str,
        network: &str,
    ) -> Result<XpubResponse, ClientError> {
        let uri = format!("/v1/keys/{key_id}/xpub?path={path}&network={network}");
        self.call(Method::GET, &uri, None::<&()>).await
    }

    /// `POST /v1/keys/{key_id}/export`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn export(
        &self,
        key_id: &str,
        req: &ExportRequestBody,
    ) -> Result<ExportResponse, ClientError> {
        self.call(Method::POST, &format!("/v1/keys/{key_id}/export"), Some(req)).await
    }

    /// `POST /v1/keys/import`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn import_key(&self, req: &ImportKeyRequest) -> Result<KeyInfo, ClientError> {
        self.call(Method::POST, "/v1/keys/import", Some(req)).await
    }

    /// `POST /v1/keys/{key_id}/reshare-spec` (at a current holder; runs no protocol).
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn reshare_spec(
        &self,
        key_id: &str,
        req: &ReshareRequestBody,
    ) -> Result<ReshareSpecResponse, ClientError> {
        self.call(Method::POST, &format!("/v1/keys/{key_id}/reshare-spec"), Some(req)).await
    }
}
