//! The WebSocket client: one background task ("driver") owns the connection, the handle talks
//! to it through a channel.
//!
//! The driver never blocks on writing: frames go to a per-connection writer task, so it always
//! keeps reading and a slow peer cannot deadlock the pair. Everything in flight lives in the
//! driver's maps until it is answered, so a new connection can re-issue it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;

use msg_relay_api::{MessageId, Relay, RelayError, RelayFuture, Release};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::transport::OpenError;
use crate::ttl::ttl_to_wire_ms;
use crate::url::RelayUrl;

mod connect;
mod driver;

use driver::Driver;
pub(crate) use driver::map_error;

/// The URLs in `urls`, each of which may itself list several separated by spaces or commas.
pub(crate) fn split_urls<S: AsRef<str>>(urls: &[S]) -> impl Iterator<Item = &str> {
    urls.iter()
        .flat_map(|u| u.as_ref().split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|u| !u.is_empty())
}

/// A connection that lived shorter than this does not reset the reconnect backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(1);

/// Largest number of queued frames written before one flush.
const WRITE_BATCH: usize = 128;

type PublishReply = oneshot::Sender<Result<(), RelayError>>;
type AskReply = oneshot::Sender<Result<(u16, Vec<u8>), RelayError>>;

enum Command {
    Publish {
        req: u32,
        id: MessageId,
        ttl_ms: u32,
        readers: u16,
        payload: Bytes,
        reply: PublishReply,
    },
    Ask {
        req: u32,
        id: MessageId,
        /// `None`: the plain ask (first candidate, no number in the answer).
        from: Option<u16>,
        reply: AskReply,
    },
    Cancel {
        req: u32,
    },
    Consume {
        req: u32,
        id: MessageId,
        candidate: u16,
        reader: u16,
    },
    Release {
        ids: Vec<MessageId>,
        when: Release,
    },
    CountRetained {
        reply: oneshot::Sender<usize>,
    },
}

/// A [`Relay`] over the relay's WebSocket route, with transparent reconnect.
///
/// Cheap to share behind an `Arc`; all requests are multiplexed over one connection. Dropping
/// the last handle closes the connection.
#[derive(Debug)]
pub struct WsRelay {
    url: RelayUrl,
    config: ClientConfig,
    urls: Vec<RelayUrl>,
    cmds: mpsc::UnboundedSender<Command>,
    next_req: Arc<AtomicU32>,
    connected: watch::Receiver<bool>,
    current: watch::Receiver<usize>,
    failure: watch::Receiver<Option<OpenError>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Publish { req, id, .. } => write!(f, "Publish({req}, {id})"),
            Command::Ask { req, id, .. } => write!(f, "Ask({req}, {id})"),
            Command::Cancel { req } => write!(f, "Cancel({req})"),
            Command::Consume { req, id, candidate, reader } => {
                write!(f, "Consume({req}, {id}#{candidate}, {reader})")
            }
            Command::Release { ids, when } => write!(f, "Release({} ids, {when:?})", ids.len()),
            Command::CountRetained { .. } => f.write_str("CountRetained"),
        }
    }
}

impl WsRelay {
    /// A client that connects in the background (requests wait for the connection).
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] for a bad URL, [`ClientError::NoRuntime`] outside a Tokio
    /// runtime.
    pub fn new(url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        Self::new_any(&[url], config)
    }

    /// A client for the replicas of one relay at `urls` (or relays that are peers of one
    /// another), connecting in the background: the first URL is tried first; when a relay
    /// cannot be reached, or its connection drops, the client moves on to the next at once
    /// (backing off only after trying them all), re-issuing what was in flight there.
    /// `urls` may also be one string listing URLs separated by spaces or commas.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] for a bad or missing URL, [`ClientError::NoRuntime`]
    /// outside a Tokio runtime.
    pub fn new_any<S: AsRef<str>>(urls: &[S], config: ClientConfig) -> Result<Self, ClientError> {
        let mut parsed = split_urls(urls).map(RelayUrl::parse).collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Err(ClientError::InvalidUrl { url: String::new(), reason: "no relay URL" });
        }
        let url = parsed.remove(0);
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (connected_tx, connected_rx) = watch::channel(false);
        let (current_tx, current_rx) = watch::channel(0usize);
        let (failure_tx, failure_rx) = watch::channel(None);
        let next_req = Arc::new(AtomicU32::new(1));
        let mut urls = Vec::with_capacity(parsed.len() + 1);
        urls.push(url.clone());
        urls.extend(parsed.iter().cloned());
        let driver = Driver::new(
            (url.clone(), parsed),
            config.clone(),
            cmd_rx,
            Arc::clone(&next_req),
            connected_tx,
            current_tx,
            failure_tx,
        );
        runtime.spawn(driver.run());
        Ok(Self {
            url,
            urls,
            config,
            cmds: cmd_tx,
            next_req,
            connected: connected_rx,
            current: current_rx,
            failure: failure_rx,
        })
    }

    /// A client whose first connection is already open.
    ///
    /// # Errors
    /// As [`WsRelay::new`], plus [`ClientError::Connect`] with the cause when no connection
    /// could be made within the configured connect timeout, or at once when the cause is one
    /// retrying cannot fix (the relay's certificate is not trusted, expired or for another
    /// name; the port speaks TLS and the URL does not, or the other way round).
    pub async fn connect(url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_any(&[url], config).await
    }

    /// [`WsRelay::new_any`] whose first connection (to any of the URLs) is already open.
    ///
    /// # Errors
    /// As [`WsRelay::connect`]; a refusal is final only when every URL refused.
    pub async fn connect_any<S: AsRef<str>>(
        urls: &[S],
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let relay = Self::new_any(urls, config)?;
        let timeout = relay.config.connect_timeout;
        let mut failures = relay.failure.clone();
        let refused = async move {
            loop {
                let permanent = failures
                    .borrow_and_update()
                    .as_ref()
                    .filter(|f| f.permanent)
                    .map(|f| f.message.clone());
                if let Some(cause) = permanent {
                    return cause;
                }
                if failures.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        let shown = relay.urls.iter().map(RelayUrl::ws_url).collect::<Vec<_>>().join(", ");
        let fail = |cause| ClientError::Connect { url: shown.clone(), cause };
        tokio::select! {
            connected = relay.wait_connected(timeout) => {
                if connected {
                    Ok(relay)
                } else {
                    let cause = relay.last_error()
                        .unwrap_or_else(|| format!("no connection within {timeout:?}"));
                    Err(fail(cause))
                }
            }
            cause = refused => Err(fail(cause)),
        }
    }

    /// The cause retrying cannot fix (an untrusted, expired or misnamed certificate, a pin
    /// mismatch, TLS and plaintext mixed up), while it stands: requests fail at once with it.
    pub fn refusal(&self) -> Option<String> {
        self.failure.borrow().as_ref().filter(|f| f.permanent).map(|f| f.message.clone())
    }

    /// Why the last connection attempt failed, while the relay cannot be reached.
    pub fn last_error(&self) -> Option<String> {
        self.failure.borrow().as_ref().map(|f| f.message.clone())
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits up to `timeout` for a connection to be open; returns whether one is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c)).await.is_ok_and(|r| r.is_ok())
    }

    /// The relay's (first) URL.
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    /// Every URL this client may use, in order of preference.
    pub fn urls(&self) -> &[RelayUrl] {
        &self.urls
    }

    /// The URL in use (connected, or tried next).
    pub fn current_url(&self) -> &RelayUrl {
        self.urls.get(*self.current.borrow()).unwrap_or(&self.url)
    }

    fn next_req(&self) -> u32 {
        loop {
            let req = self.next_req.fetch_add(1, Ordering::Relaxed);
            if req != 0 {
                return req;
            }
        }
    }

    /// Messages kept for re-publishing after a reconnect (for tests and metrics).
    pub async fn retained(&self) -> usize {
        let (reply, rx) = oneshot::channel();
        if self.cmds.send(Command::CountRetained { reply }).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    async fn publish_inner(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> Result<(), RelayError> {
        let req = self.next_req();
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Publish {
            req,
            id,
            ttl_ms: ttl_to_wire_ms(ttl),
            readers,
            payload: Bytes::from(payload),
            reply,
        };
        self.cmds.send(cmd).map_err(|_| RelayError::Closed)?;
        let mut guard = CancelOnDrop { cmds: &self.cmds, req, armed: true };
        match tokio::time::timeout(self.config.request_timeout, rx).await {
            Ok(Ok(result)) => {
                guard.armed = false;
                result
            }
            Ok(Err(_)) => {
                guard.armed = false;
                Err(RelayError::Closed)
            }
            Err(_) => Err(RelayError::Unavailable(format!(
                "publish of {id} not acknowledged within {:?}",
                self.config.request_timeout
            ))),
        }
    }

    async fn ask_inner(
        &self,
        id: MessageId,
        from: Option<u16>,
    ) -> Result<(u16, Vec<u8>), RelayError> {
        let req = self.next_req();
        let (reply, rx) = oneshot::channel();
        self.cmds.send(Command::Ask { req, id, from, reply }).map_err(|_| RelayError::Closed)?;
        let mut guard = CancelOnDrop { cmds: &self.cmds, req, armed: true };
        let result = rx.await.unwrap_or(Err(RelayError::Closed));
        guard.armed = false;
        result
    }
}

impl Relay for WsRelay {
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()> {
        Box::pin(self.publish_inner(id, ttl, 0, payload))
    }

    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>> {
        Box::pin(async move { self.ask_inner(id, None).await.map(|(_, payload)| payload) })
    }

    fn ask_candidate(&self, id: MessageId, from: u16) -> RelayFuture<'_, (u16, Vec<u8>)> {
        Box::pin(self.ask_inner(id, Some(from)))
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

    /// Sent without waiting for an answer (the relay sends none); while disconnected the
    /// consume is dropped and the message waits for its TTL.
    fn consume(&self, id: MessageId, reader: u16) -> RelayFuture<'_, ()> {
        self.consume_candidate(id, 0, reader)
    }

    fn consume_candidate(&self, id: MessageId, candidate: u16, reader: u16) -> RelayFuture<'_, ()> {
        let req = self.next_req();
        let sent = self.cmds.send(Command::Consume { req, id, candidate, reader });
        Box::pin(async move { sent.map_err(|_| RelayError::Closed) })
    }

    fn release(&self, ids: &[MessageId], when: Release) {
        // The driver may be gone; then nothing is retained either.
        let _ = self.cmds.send(Command::Release { ids: ids.to_vec(), when });
    }
}

/// Withdraws a request whose future was dropped (timeout, round abandoned) before it finished.
struct CancelOnDrop<'a> {
    cmds: &'a mpsc::UnboundedSender<Command>,
    req: u32,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // The driver may already be gone; then there is nothing to cancel.
            let _ = self.cmds.send(Command::Cancel { req: self.req });
        }
    }
}
