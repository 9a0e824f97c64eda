//! The HTTP client: `PUT /v1/msg/{id}` to publish, long-poll `GET /v1/msg/{id}?wait_ms=` to ask
//! (`&candidate=N` for the candidates numbered N or later, answered with a `Relay-Candidate`
//! header), `DELETE /v1/msg/{id}?reader=` to consume.
//!
//! For parties that cannot hold a WebSocket open. HTTP/1.1 over hyper's low-level connection
//! API with a small pool of idle keep-alive connections.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use dkls_tls::ClientTls;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use msg_relay_api::wire::{CANDIDATE_HEADER, ErrorCode};
use msg_relay_api::{MessageId, Relay, RelayError, RelayFuture};
use tokio::time::Instant;
use tracing::debug;

use crate::backoff;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::transport;
use crate::ttl::ttl_to_wire_ms;
use crate::url::RelayUrl;
use crate::ws::map_error;

/// Largest response body accepted (a message plus generous headroom).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Idle connections kept for reuse.
const POOL_SIZE: usize = 8;

/// A [`Relay`] over the relay's HTTP API (publish, long-poll ask), with retries.
#[derive(Debug)]
pub struct HttpRelay {
    url: RelayUrl,
    config: ClientConfig,
    /// TLS for an `https://` URL.
    tls: Option<ClientTls>,
    pool: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// Why one HTTP call did not produce a response.
#[derive(Debug)]
enum CallError {
    Timeout,
    Io(String),
    /// Retrying cannot help (a TLS certificate or configuration problem).
    Refused(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("timed out"),
            CallError::Io(e) | CallError::Refused(e) => f.write_str(e),
        }
    }
}

impl HttpRelay {
    /// A client for the relay at `url` (`http://host:port` or `https://host:port`).
    /// Connections are opened on demand.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] for a bad URL.
    pub fn new(url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let url = RelayUrl::parse(url)?;
        let tls = transport::tls_for(&url, config.tls.as_ref());
        Ok(Self { url, config, tls, pool: Mutex::new(Vec::new()) })
    }

    /// The relay's URL.
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut pool = self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(sender) = pool.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, sender: SendRequest<Full<Bytes>>) {
        if !sender.is_ready() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < POOL_SIZE {
            pool.push(sender);
        }
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let stream = transport::open(&self.url, self.tls.as_ref(), self.config.connect_timeout)
            .await
            .map_err(|e| {
                if e.permanent { CallError::Refused(e.message) } else { CallError::Io(e.message) }
            })?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Io(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "relay HTTP connection ended");
            }
        });
        Ok(sender)
    }

    /// A failed exchange; a TLS rejection that surfaced only now (a TLS 1.3 server refusing
    /// the client certificate) is permanent.
    fn send_error(&self, e: &hyper::Error) -> CallError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && let Some(refused) = transport::after_handshake(&self.url, io)
            {
                return if refused.permanent {
                    CallError::Refused(refused.message)
                } else {
                    CallError::Io(refused.message)
                };
            }
            source = err.source();
        }
        CallError::Io(e.to_string())
    }

    /// One request/response exchange, bounded by `timeout`.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), CallError> {
        let uri = self.url.http_path(path_and_query);
        let exchange = async {
            let mut sender = match self.take_idle() {
                Some(sender) => sender,
                None => self.open().await?,
            };
            let mut request = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::HOST, self.url.authority())
                .header(header::CONTENT_TYPE, "application/octet-stream");
            if let Some(token) = &self.config.peer_token {
                request =
                    request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
            }
            let request =
                request.body(Full::new(body)).map_err(|e| CallError::Io(e.to_string()))?;
            let response = sender.send_request(request).await.map_err(|e| self.send_error(&e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| CallError::Io(e.to_string()))?
                .to_bytes();
            self.put_back(sender);
            Ok((status, headers, bytes))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| CallError::Timeout)?
    }

    async fn publish_inner(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> Result<(), RelayError> {
        let readers = if readers == 0 { String::new() } else { format!("&readers={readers}") };
        let path = format!("/v1/msg/{id}?ttl_ms={}{readers}", ttl_to_wire_ms(ttl));
        let body = Bytes::from(payload);
        let deadline = Instant::now() + self.config.request_timeout;
        let mut attempt = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let why = match self.call(Method::PUT, &path, body.clone(), remaining).await {
                Ok((status, _, _)) if status.is_success() => return Ok(()),
                Ok((status, _, body))
                    if is_final(status) || status == StatusCode::INSUFFICIENT_STORAGE =>
                {
                    return Err(error_from_response(status, &body, id));
                }
                Ok((status, _, _)) => format!("HTTP {status}"),
                Err(CallError::Refused(why)) => return Err(RelayError::Unavailable(why)),
                Err(e) => e.to_string(),
            };
            let pause =
                backoff::delay(self.config.initial_backoff, self.config.max_backoff, attempt);
            attempt = attempt.saturating_add(1);
            if Instant::now() + pause >= deadline {
                return Err(RelayError::Unavailable(format!("publish of {id} failed: {why}")));
            }
            debug!(%id, %why, "publish over HTTP failed, retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn ask_inner(
        &self,
        id: MessageId,
        from: Option<u16>,
    ) -> Result<(u16, Vec<u8>), RelayError> {
        let wait_ms = self.config.poll_wait.as_millis();
        let forwarded = if self.config.forwarded { "&forwarded=1" } else { "" };
        let candidate = from.map_or_else(String::new, |n| format!("&candidate={n}"));
        let path = format!("/v1/msg/{id}?wait_ms={wait_ms}{forwarded}{candidate}");
        let timeout = self.config.poll_wait + self.config.request_timeout;
        let mut failing_since: Option<Instant> = None;
        let mut attempt = 0u32;
        loop {
            let why = match self.call(Method::GET, &path, Bytes::new(), timeout).await {
                Ok((StatusCode::OK, headers, body)) => {
                    let number = headers
                        .get(CANDIDATE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u16>().ok());
                    match (from, number) {
                        (None, _) => return Ok((0, body.to_vec())),
                        (Some(from), Some(n)) if n >= from => return Ok((n, body.to_vec())),
                        _ => "the relay's answer names no candidate at or after the one asked"
                            .to_owned(),
                    }
                }
                Ok((StatusCode::NOT_FOUND, _, body)) if error_code(&body) == Some("not_found") => {
                    // The long-poll ended without the message: poll again.
                    failing_since = None;
                    attempt = 0;
                    continue;
                }
                Ok((status, _, body)) if is_final(status) => {
                    return Err(error_from_response(status, &body, id));
                }
                Ok((status, _, _)) => format!("HTTP {status}"),
                Err(CallError::Refused(why)) => return Err(RelayError::Unavailable(why)),
                Err(e) => e.to_string(),
            };
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.config.give_up_after {
                return Err(RelayError::Unavailable(format!("ask for {id} failed: {why}")));
            }
            debug!(%id, %why, "ask over HTTP failed, retrying");
            let pause =
                backoff::delay(self.config.initial_backoff, self.config.max_backoff, attempt);
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(pause).await;
        }
    }
}

impl Relay for HttpRelay {
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()> {
        Box::pin(self.publish_inner(id, ttl, 0, payload))
    }

    fn publish_for(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> RelayFuture<'_, ()> {
        Box::pin(self.publish_inner(id, ttl, readers, payload))
    }

    /// One `DELETE` without retries (best effort: a lost consume only means the message waits
    /// for its TTL).
    fn consume(&self, id: MessageId, reader: u16) -> RelayFuture<'_, ()> {
        self.consume_candidate(id, 0, reader)
    }

    /// One `DELETE` without retries (best effort: a lost consume only means the message waits
    /// for its TTL).
    fn consume_candidate(&self, id: MessageId, candidate: u16, reader: u16) -> RelayFuture<'_, ()> {
        Box::pin(async move {
            let path = format!("/v1/msg/{id}?reader={reader}&candidate={candidate}");
            match self.call(Method::DELETE, &path, Bytes::new(), self.config.request_timeout).await
            {
                Ok((status, _, _)) if status.is_success() => {}
                Ok((status, _, _)) => debug!(%id, %status, "consume refused"),
                Err(e) => debug!(%id, error = %e, "consume failed"),
            }
            Ok(())
        })
    }

    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>> {
        Box::pin(async move { self.ask_inner(id, None).await.map(|(_, payload)| payload) })
    }

    fn ask_candidate(&self, id: MessageId, from: u16) -> RelayFuture<'_, (u16, Vec<u8>)> {
        Box::pin(self.ask_inner(id, Some(from)))
    }
}

/// Statuses that retrying cannot fix.
fn is_final(status: StatusCode) -> bool {
    status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT
}

/// The `error.code` of a JSON error body.
fn error_code(body: &[u8]) -> Option<&'static str> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.get("code")?.as_str()?;
    KNOWN_CODES.iter().copied().find(|known| *known == code)
}

const KNOWN_CODES: [&str; 11] = [
    "not_found",
    "quota_exceeded",
    "forbidden",
    "conflict",
    "too_large",
    "bad_ttl",
    "store_full",
    "too_many_asks",
    "bad_request",
    "no_route",
    "unavailable",
];

fn error_from_response(status: StatusCode, body: &[u8], id: MessageId) -> RelayError {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = value.get("error");
    let field = |name: &str| error.and_then(|e| e.get(name)).and_then(serde_json::Value::as_u64);
    let text = error
        .and_then(|e| e.get("message"))
        .and_then(serde_json::Value::as_str)
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    let code = match error_code(body) {
        Some("conflict") => ErrorCode::Conflict,
        Some("too_large") => ErrorCode::TooLarge,
        Some("bad_ttl") => ErrorCode::BadTtl,
        Some("store_full") => ErrorCode::StoreFull,
        Some("quota_exceeded") => ErrorCode::QuotaExceeded,
        Some("forbidden") => ErrorCode::Forbidden,
        Some("too_many_asks") => ErrorCode::TooManyAsks,
        _ => ErrorCode::Malformed,
    };
    map_error(code, field("actual").unwrap_or(0), field("limit").unwrap_or(0), &text, id)
}
