//! The WebSocket front end (`/v1/msg-relay`).
//!
//! [`serve_connection`] takes any `Sink`/`Stream` pair of WebSocket messages, so channels can
//! stand in for a socket in tests. Each ask runs as its own task (so one connection can wait
//! for many messages); a writer task batches outgoing frames. Frame decoding is the pure codec
//! of [`msg_relay_api::wire`].

use std::collections::HashMap;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use msg_relay_api::wire::{
    AckStatus, ErrorCode, FRAME_VERSION, Frame, FrameError, PUBLISH_OVERHEAD, peek_request_id,
};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, warn};

use crate::engine::EngineError;
use crate::error::ApiError;
use crate::metrics::Rejection;
use crate::state::AppState;
use crate::store::{PutOutcome, Source};

/// Connection numbers (sources of WebSocket publishes); 0 is reserved for HTTP.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address (publishes are charged to it).
    pub addr: IpAddr,
    /// Whether it authenticated as a peer relay (only peers may send forwarded asks).
    pub peer: bool,
}

impl ClientInfo {
    /// An in-process client on loopback that is not a peer relay.
    pub const LOCAL: ClientInfo =
        ClientInfo { addr: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), peer: false };
}

/// The route of the WebSocket endpoint.
pub const ROUTE: &str = "/v1/msg-relay";

/// Outgoing frames buffered per connection before the reader waits (backpressure).
const OUT_QUEUE: usize = 256;

/// Frames written before one flush.
const WRITE_BATCH: usize = 128;

/// Largest WebSocket message accepted: twice the payload limit, so an oversized publish still
/// arrives whole and gets a clear error frame; beyond this the connection is closed with
/// status 1009 (message too big).
pub fn ws_message_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(2).saturating_add(PUBLISH_OVERHEAD + 1024)
}

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    slots: Option<axum::Extension<crate::serve::ConnectionGuard>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let addr = connect.map_or(ClientInfo::LOCAL.addr, |c| c.0.0.ip());
    let client = ClientInfo { addr, peer: state.is_peer(&headers) };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::BadRequest(format!("this route needs a WebSocket upgrade: {e}"))
                .into_response();
        }
    };
    let limit = ws_message_limit(state.engine().limits().max_message_bytes);
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        let (sink, stream) = socket.split();
        async move {
            // The upgraded socket keeps the connection's slots until it closes.
            let _slots = slots;
            serve_connection_from(state, client, sink, stream).await;
        }
    })
}

/// Serves one client connection of an in-process, non-peer client ([`ClientInfo::LOCAL`]).
pub async fn serve_connection<S, R, E>(state: AppState, sink: S, stream: R)
where
    S: Sink<Message> + Send + Unpin + 'static,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: Display,
{
    serve_connection_from(state, ClientInfo::LOCAL, sink, stream).await;
}

/// Serves one connection of `client` until it closes or the relay shuts down.
pub async fn serve_connection_from<S, R, E>(
    state: AppState,
    client: ClientInfo,
    sink: S,
    mut stream: R,
) where
    S: Sink<Message> + Send + Unpin + 'static,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: Display,
{
    let metrics = std::sync::Arc::clone(state.engine().metrics());
    let _open = metrics.ws_connection();
    debug!("WebSocket connection opened");
    let (out, out_rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_loop(sink, out_rx));
    let mut conn = Connection::new(state.clone(), client, out);
    let closed = state.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            () = &mut closed => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "relay shutting down".into() };
                conn.send(Message::Close(Some(frame))).await;
                break;
            }
            Some(done) = conn.tasks.join_next(), if !conn.tasks.is_empty() => {
                if let Ok(req) = done {
                    conn.finished(req);
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(buf))) => conn.on_frame(buf).await,
                Some(Ok(Message::Text(_))) => {
                    conn.reject(0, ErrorCode::Malformed, 0, 0, "text messages are not accepted; send binary frames").await;
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    debug!(error = %e, "WebSocket connection error");
                    // A message over the limit is answered with 1009 (message too big), as the
                    // protocol document says; anything else is a protocol error.
                    let text = e.to_string().to_ascii_lowercase();
                    let frame = if text.contains("too long") || text.contains("too big")
                        || text.contains("capacity")
                    {
                        CloseFrame { code: close_code::SIZE, reason: "message too big".into() }
                    } else {
                        CloseFrame { code: close_code::PROTOCOL, reason: "protocol error".into() }
                    };
                    conn.send(Message::Close(Some(frame))).await;
                    break;
                }
            },
        }
    }
    let outstanding = conn.asks.len();
    conn.tasks.abort_all();
    drop(conn);
    debug!(outstanding, "WebSocket connection closed");
    // Let the writer flush what is queued (a close frame, last answers), but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

/// Per-connection state.
struct Connection {
    state: AppState,
    client: ClientInfo,
    /// This connection as the source of its publishes.
    source: Source,
    out: mpsc::Sender<Message>,
    own: crate::engine::AskBudget,
    forwarded: crate::engine::AskBudget,
    /// Outstanding asks by request id.
    asks: HashMap<u32, AbortHandle>,
    tasks: JoinSet<u32>,
}

impl Connection {
    fn new(state: AppState, client: ClientInfo, out: mpsc::Sender<Message>) -> Self {
        let (own, forwarded) = state.engine().connection_budgets();
        let source =
            Source { addr: client.addr, conn: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed) };
        Self {
            state,
            client,
            source,
            out,
            own,
            forwarded,
            asks: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    async fn send(&self, msg: Message) {
        // The writer only goes away when the socket failed; the reader notices that next.
        let _ = self.out.send(msg).await;
    }

    async fn send_frame(&self, frame: &Frame<'_>) {
        self.send(Message::Binary(Bytes::from(frame.encode()))).await;
    }

    async fn reject(&self, req: u32, code: ErrorCode, actual: u64, limit: u64, text: &str) {
        self.send_frame(&Frame::Error { req, code, actual, limit, text }).await;
    }

    fn finished(&mut self, req: u32) {
        if self.asks.get(&req).is_some_and(AbortHandle::is_finished) {
            self.asks.remove(&req);
        }
    }

    async fn on_frame(&mut self, buf: Bytes) {
        let frame = match Frame::decode(&buf) {
            Ok(frame) => frame,
            Err(e) => {
                self.state.engine().metrics().reject(Rejection::Malformed);
                debug!(error = %e, "undecodable frame");
                let (code, limit) = match e {
                    FrameError::UnsupportedVersion(_) => {
                        (ErrorCode::UnsupportedVersion, u64::from(FRAME_VERSION))
                    }
                    FrameError::UnknownKind(_) => (ErrorCode::UnknownKind, 0),
                    FrameError::ZeroTtl => (ErrorCode::BadTtl, 0),
                    _ => (ErrorCode::Malformed, 0),
                };
                self.reject(peek_request_id(&buf), code, 0, limit, &e.to_string()).await;
                return;
            }
        };
        match frame {
            Frame::Publish { req, id, ttl_ms, readers, payload } => {
                let ttl = Duration::from_millis(u64::from(ttl_ms));
                let payload = buf.slice_ref(payload);
                match self.state.engine().publish_from(self.source, id, ttl, readers, payload).await
                {
                    Ok(outcome) => {
                        let status = match outcome {
                            PutOutcome::Stored => AckStatus::Stored,
                            PutOutcome::Duplicate => AckStatus::Duplicate,
                        };
                        self.send_frame(&Frame::Ack { req, id, status }).await;
                    }
                    Err(e) => self.send_error(&error_frame(req, &e)).await,
                }
            }
            Frame::Ask { req, id, forwarded, from } => {
                if forwarded && !self.client.peer {
                    self.state.engine().metrics().reject(Rejection::Forbidden);
                    warn!(addr = %self.client.addr, "forwarded ask from a client that is not an authenticated peer relay");
                    self.send_error(&error_frame(req, &EngineError::ForwardNotAllowed)).await;
                    return;
                }
                if let Some(previous) = self.asks.get(&req) {
                    if !previous.is_finished() {
                        self.reject(req, ErrorCode::DuplicateRequest, 0, 0, "request id in use")
                            .await;
                        return;
                    }
                    self.asks.remove(&req);
                }
                let budget = if forwarded { &self.forwarded } else { &self.own };
                let permit = match budget.try_acquire() {
                    Ok(permit) => permit,
                    Err(e) => {
                        self.state.engine().metrics().reject(Rejection::TooManyAsks);
                        warn!(limit = ?e, forwarded, "ask rejected: too many outstanding asks");
                        self.send_error(&error_frame(req, &e)).await;
                        return;
                    }
                };
                let state = self.state.clone();
                let out = self.out.clone();
                let handle = self.tasks.spawn(async move {
                    let engine = state.engine();
                    let wait = engine.limits().max_wait;
                    let answer =
                        engine.ask_from(permit, id, from.unwrap_or(0), wait, !forwarded).await;
                    let encoded = match &answer {
                        Ok((n, payload)) => {
                            // The plain ask form gets the plain answer (no candidate number).
                            let candidate = from.map(|_| *n);
                            Frame::Deliver { req, id, candidate, payload }.encode()
                        }
                        Err(e) => error_frame(req, e).encode(),
                    };
                    let _ = out.send(Message::Binary(Bytes::from(encoded))).await;
                    req
                });
                self.asks.insert(req, handle);
            }
            Frame::Cancel { req } => {
                if let Some(task) = self.asks.remove(&req) {
                    task.abort();
                }
            }
            Frame::Consume { req, id, reader, candidate } => {
                // No answer on success (like cancel); a failing store is reported.
                let engine = self.state.engine();
                if let Err(e) = engine.consume_candidate(id, candidate.unwrap_or(0), reader).await {
                    self.send_error(&error_frame(req, &e)).await;
                }
            }
            Frame::Ack { req, .. } | Frame::Deliver { req, .. } | Frame::Error { req, .. } => {
                self.state.engine().metrics().reject(Rejection::Malformed);
                self.reject(
                    req,
                    ErrorCode::UnknownKind,
                    0,
                    0,
                    "frame kind not accepted from clients",
                )
                .await;
            }
        }
    }
}

/// The error frame for an engine error (texts are the errors' own, never internals).
fn error_frame(req: u32, e: &EngineError) -> ErrorFrame {
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (code, actual, limit) = match e {
        EngineError::TooLarge { size, max } => (ErrorCode::TooLarge, n(*size), n(*max)),
        EngineError::BadTtl { requested, max } => (ErrorCode::BadTtl, ms(*requested), ms(*max)),
        EngineError::Conflict(_) => (ErrorCode::Conflict, 0, 0),
        EngineError::StoreFull { held, limit } => (ErrorCode::StoreFull, *held, *limit),
        EngineError::QuotaExceeded { held, limit, .. } => (ErrorCode::QuotaExceeded, *held, *limit),
        EngineError::ForwardNotAllowed => (ErrorCode::Forbidden, 0, 0),
        EngineError::TooManyAsks { limit } => (ErrorCode::TooManyAsks, 0, n(*limit)),
        EngineError::WaitExpired(_) => (ErrorCode::AskExpired, 0, 0),
        _ => (ErrorCode::Unavailable, 0, 0),
    };
    ErrorFrame { req, code, actual, limit, text: e.to_string() }
}

/// An owned error frame (its text is built from the error).
struct ErrorFrame {
    req: u32,
    code: ErrorCode,
    actual: u64,
    limit: u64,
    text: String,
}

impl ErrorFrame {
    fn encode(&self) -> Vec<u8> {
        Frame::Error {
            req: self.req,
            code: self.code,
            actual: self.actual,
            limit: self.limit,
            text: &self.text,
        }
        .encode()
    }
}

impl Connection {
    async fn send_error(&self, frame: &ErrorFrame) {
        self.send(Message::Binary(Bytes::from(frame.encode()))).await;
    }
}

/// Writes queued messages, flushing once per batch; ends after a close frame or an error.
async fn write_loop<S>(mut sink: S, mut rx: mpsc::Receiver<Message>)
where
    S: Sink<Message> + Unpin,
{
    while let Some(first) = rx.recv().await {
        let mut closing = matches!(first, Message::Close(_));
        if sink.feed(first).await.is_err() {
            return;
        }
        let mut batch = 1;
        while batch < WRITE_BATCH && !closing {
            let Ok(msg) = rx.try_recv() else { break };
            closing = matches!(msg, Message::Close(_));
            if sink.feed(msg).await.is_err() {
                return;
            }
            batch += 1;
        }
        if sink.flush().await.is_err() || closing {
            return;
        }
    }
    let _ = sink.close().await;
}
