//! The driver: the background task that owns the WebSocket connection, keeps everything in
//! flight until it is answered, re-issues it on a new connection and writes frames through a
//! separate writer task.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, StreamExt};
use std::collections::VecDeque;

use msg_relay_api::wire::{ErrorCode, Frame};
use msg_relay_api::{MessageId, RelayError, Release};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, warn};

use crate::backoff;
use crate::config::ClientConfig;
use crate::transport::{self, OpenError};
use crate::ttl::ttl_to_wire_ms;
use crate::url::RelayUrl;
use dkls_tls::ClientTls;

use super::connect::{WsStream, open_ws, upgrade_request};
use super::{AskReply, Command, PublishReply, STABLE_CONNECTION, WRITE_BATCH};

struct PendingPublish {
    id: MessageId,
    ttl_ms: u32,
    readers: u16,
    payload: Bytes,
    /// `None` for the driver's own re-publishes of retained messages.
    reply: Option<PublishReply>,
    /// Whether it was written on the current connection.
    in_flight: bool,
    /// Connections that dropped while it was in flight.
    drops: u32,
}

struct PendingAsk {
    id: MessageId,
    from: Option<u16>,
    reply: AskReply,
}

impl PendingAsk {
    fn frame(&self, req: u32, forwarded: bool) -> Frame<'static> {
        Frame::Ask { req, id: self.id, forwarded, from: self.from }
    }
}

/// A message this client published, kept to publish again after a reconnect.
struct Retained {
    payload: Bytes,
    readers: u16,
    expires: Instant,
}

/// The sending half of the current connection.
struct Link {
    out: mpsc::UnboundedSender<Message>,
}

impl Link {
    fn send(&self, frame: &Frame<'_>) {
        // A closed writer means the connection is going down; whatever was pending stays in
        // the driver's maps and is re-sent on the next connection.
        let _ = self.out.send(Message::Binary(Bytes::from(frame.encode())));
    }
}

pub(super) struct Driver {
    /// The relay connected to (or tried next), and its TLS for `wss://`.
    url: RelayUrl,
    tls: Option<ClientTls>,
    /// The relay URLs to use, in order of preference (replicas of one relay), each with its
    /// TLS for `wss://`.
    relays: Vec<(RelayUrl, Option<ClientTls>)>,
    /// The one connected to, or tried next.
    current: usize,
    /// Tells the handle which URL is in use.
    current_tx: watch::Sender<usize>,
    /// Permanent refusals (certificates, TLS/plaintext mix-ups) in the current round over the
    /// URLs; only when every URL refused like that is the refusal reported as permanent.
    refusals_in_cycle: usize,
    config: ClientConfig,
    cmds: mpsc::UnboundedReceiver<Command>,
    next_req: Arc<AtomicU32>,
    connected: watch::Sender<bool>,
    /// Why the last connection attempt failed (cleared on success).
    failure: watch::Sender<Option<OpenError>>,
    publishes: HashMap<u32, PendingPublish>,
    asks: HashMap<u32, PendingAsk>,
    retained: HashMap<MessageId, Retained>,
    /// Messages released after the grace period, in release (= expiry) order.
    releasing: VecDeque<(Instant, MessageId)>,
    /// When the last connection ended (or the driver started).
    down_since: Instant,
}

/// How a connection ended.
enum Ended {
    /// The connection dropped; reconnect.
    Dropped,
    /// Every handle is gone; stop.
    HandleGone,
}

impl Driver {
    /// A driver for the relays at `first` and `others` (tried when the one in use cannot be
    /// reached or its connection drops) that takes its commands from
    /// `cmds`, numbers its requests from `next_req`, tells whether it is connected through
    /// `connected`, to which URL through `current`, and why the last attempt failed through
    /// `failure`.
    pub(super) fn new(
        (first, others): (RelayUrl, Vec<RelayUrl>),
        config: ClientConfig,
        cmds: mpsc::UnboundedReceiver<Command>,
        next_req: Arc<AtomicU32>,
        connected: watch::Sender<bool>,
        current: watch::Sender<usize>,
        failure: watch::Sender<Option<OpenError>>,
    ) -> Self {
        let tls = transport::tls_for(&first, config.tls.as_ref());
        let url = first.clone();
        let relays: Vec<_> = std::iter::once(first)
            .chain(others)
            .map(|url| {
                let tls = transport::tls_for(&url, config.tls.as_ref());
                (url, tls)
            })
            .collect();
        Self {
            url,
            tls,
            relays,
            current: 0,
            current_tx: current,
            refusals_in_cycle: 0,
            config,
            cmds,
            next_req,
            connected,
            failure,
            publishes: HashMap::new(),
            asks: HashMap::new(),
            retained: HashMap::new(),
            releasing: VecDeque::new(),
            down_since: Instant::now(),
        }
    }

    fn url(&self) -> &RelayUrl {
        &self.url
    }

    fn tls(&self) -> Option<ClientTls> {
        self.tls.clone()
    }

    /// Moves on to the next URL; returns whether a whole round over them ended (then the
    /// caller backs off before starting the next round).
    fn next_relay(&mut self) -> bool {
        let count = self.relays.len().max(1);
        self.current = (self.current + 1) % count;
        if let Some((url, tls)) = self.relays.get(self.current) {
            self.url = url.clone();
            self.tls = tls.clone();
        }
        self.current_tx.send_replace(self.current);
        self.current == 0
    }

    pub(super) async fn run(mut self) {
        let mut attempt = 0u32;
        loop {
            let Some(ws) = self.connect(&mut attempt).await else { return };
            let opened = Instant::now();
            self.connected.send_replace(true);
            debug!(url = %self.url().ws_url(), "relay connected");
            let ended = self.serve(ws).await;
            self.connected.send_replace(false);
            self.down_since = Instant::now();
            self.after_drop();
            match ended {
                Ended::HandleGone => return,
                Ended::Dropped => debug!(url = %self.url().ws_url(), "relay connection lost"),
            }
            if self.relays.len() > 1 {
                // The relay that dropped the connection may be gone: fail over to the next
                // (the others serve the same messages: a shared store, or peer forwarding).
                warn!(from = %self.url().ws_url(), "relay connection lost; failing over");
                self.next_relay();
                self.refusals_in_cycle = 0;
            }
            if opened.elapsed() >= STABLE_CONNECTION {
                attempt = 0;
            } else {
                // Accepted then dropped at once: do not hammer the relay.
                let pause = self.next_delay(&mut attempt);
                if !self.idle(pause).await {
                    return;
                }
            }
        }
    }

    fn next_delay(&self, attempt: &mut u32) -> Duration {
        let d = backoff::delay(self.config.initial_backoff, self.config.max_backoff, *attempt);
        *attempt = attempt.saturating_add(1);
        d
    }

    /// Connects, retrying with backoff, while still queueing commands. `None` when every
    /// handle is gone.
    async fn connect(&mut self, attempt: &mut u32) -> Option<WsStream> {
        loop {
            let request = match upgrade_request(self.url().ws_url(), &self.config) {
                Ok(request) => request,
                Err(e) => {
                    // Cannot happen for a URL that parsed; reported rather than spun on.
                    warn!(url = %self.url().ws_url(), error = %e, "cannot build the WebSocket request");
                    return None;
                }
            };
            let connecting =
                open_ws(self.url().clone(), self.tls(), request, self.config.connect_timeout);
            tokio::pin!(connecting);
            let outcome = loop {
                tokio::select! {
                    r = &mut connecting => break r,
                    cmd = self.cmds.recv() => match cmd {
                        Some(cmd) => self.accept(cmd, None),
                        None => return None,
                    },
                }
            };
            match outcome {
                Ok(ws) => {
                    self.failure.send_replace(None);
                    self.refusals_in_cycle = 0;
                    return Some(ws);
                }
                Err(e) if e.permanent => {
                    self.refusals_in_cycle += 1;
                    if self.refusals_in_cycle >= self.relays.len() {
                        // Retrying cannot fix a certificate: say so once per cause, fail what
                        // waits, and keep trying slowly in case the server is fixed.
                        if self.failure.borrow().as_ref().map(|f| &f.message) != Some(&e.message) {
                            warn!(url = %self.url().ws_url(), error = %e, "relay connection refused");
                        }
                        self.fail_outstanding(&e.message);
                        self.failure.send_replace(Some(e));
                    } else {
                        // Another URL may still work.
                        warn!(url = %self.url().ws_url(), error = %e, "relay connection refused; trying the next relay");
                        self.failure.send_replace(Some(OpenError { permanent: false, ..e }));
                    }
                }
                Err(e) => {
                    debug!(url = %self.url().ws_url(), error = %e, "relay connect failed");
                    self.failure.send_replace(Some(e));
                    self.give_up_if_down_too_long();
                }
            }
            let round_over = self.next_relay();
            if round_over {
                self.refusals_in_cycle = 0;
                let pause = self.next_delay(attempt);
                if !self.idle(pause).await {
                    return None;
                }
            }
        }
    }

    /// Sleeps for `pause` while queueing commands; `false` when every handle is gone.
    async fn idle(&mut self, pause: Duration) -> bool {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.accept(cmd, None),
                    None => return false,
                },
            }
        }
    }

    /// Serves one open connection until it drops or every handle is gone.
    async fn serve(&mut self, ws: WsStream) -> Ended {
        let (sink, mut stream) = ws.split();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (writer_done_tx, mut writer_done) = oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            write_loop(sink, out_rx).await;
            let _ = writer_done_tx.send(());
        });
        let link = Link { out: out_tx };
        self.resend_all(&link);

        let keepalive = self.config.keepalive;
        let mut ticker = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        let mut last_heard = Instant::now();
        let ended = loop {
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.accept(cmd, Some(&link)),
                    None => break Ended::HandleGone,
                },
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(buf))) => {
                        last_heard = Instant::now();
                        self.on_frame(&buf, &link);
                    }
                    Some(Ok(Message::Close(_))) | None => break Ended::Dropped,
                    Some(Ok(_)) => last_heard = Instant::now(),
                    Some(Err(e)) => {
                        debug!(error = %e, "relay connection error");
                        break Ended::Dropped;
                    }
                },
                _ = &mut writer_done => break Ended::Dropped,
                _ = ticker.tick() => {
                    if last_heard.elapsed() > keepalive.saturating_mul(2) {
                        warn!(url = %self.url().ws_url(), "relay connection silent, reconnecting");
                        break Ended::Dropped;
                    }
                    let _ = link.out.send(Message::Ping(Bytes::new()));
                    self.prune_retained();
                }
            }
        };
        match ended {
            Ended::HandleGone => {
                let _ = link.out.send(Message::Close(None));
                drop(link);
                let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
            }
            Ended::Dropped => writer.abort(),
        }
        ended
    }

    /// Registers a command and, when connected, sends its frame.
    fn accept(&mut self, cmd: Command, link: Option<&Link>) {
        if link.is_none()
            && let Some(why) = self.refused()
        {
            match cmd {
                Command::Publish { reply, .. } => {
                    let _ = reply.send(Err(RelayError::Unavailable(why)));
                    return;
                }
                Command::Ask { reply, .. } => {
                    let _ = reply.send(Err(RelayError::Unavailable(why)));
                    return;
                }
                _ => {}
            }
        }
        match cmd {
            Command::Publish { req, id, ttl_ms, readers, payload, reply } => {
                let mut p = PendingPublish {
                    id,
                    ttl_ms,
                    readers,
                    payload,
                    reply: Some(reply),
                    in_flight: false,
                    drops: 0,
                };
                if let Some(link) = link {
                    send_publish(link, req, &mut p);
                }
                self.publishes.insert(req, p);
            }
            Command::Ask { req, id, from, reply } => {
                let ask = PendingAsk { id, from, reply };
                if let Some(link) = link {
                    link.send(&ask.frame(req, self.config.forwarded));
                }
                self.asks.insert(req, ask);
            }
            Command::Cancel { req } => {
                // A publish keeps its place on the relay if it got there; nothing to withdraw.
                self.publishes.remove(&req);
                if self.asks.remove(&req).is_some()
                    && let Some(link) = link
                {
                    link.send(&Frame::Cancel { req });
                }
            }
            Command::Consume { req, id, candidate, reader } => {
                if let Some(link) = link {
                    let candidate = (candidate != 0).then_some(candidate);
                    link.send(&Frame::Consume { req, id, reader, candidate });
                }
            }
            Command::Release { ids, when } => {
                let now = Instant::now();
                match when {
                    Release::Now => {
                        for id in &ids {
                            self.retained.remove(id);
                        }
                    }
                    Release::AfterGrace => {
                        let until = now + self.config.release_grace;
                        for id in ids {
                            if let Some(kept) = self.retained.get_mut(&id) {
                                kept.expires = kept.expires.min(until);
                                self.releasing.push_back((until, id));
                            }
                        }
                    }
                }
                // Graces end in release order: drop the copies whose grace is over.
                while let Some(&(until, id)) = self.releasing.front() {
                    if until > now {
                        break;
                    }
                    self.releasing.pop_front();
                    if self.retained.get(&id).is_some_and(|k| k.expires <= now) {
                        self.retained.remove(&id);
                    }
                }
            }
            Command::CountRetained { reply } => {
                self.prune_retained();
                let _ = reply.send(self.retained.len());
            }
        }
    }

    /// On a new connection: re-issue unacknowledged publishes and outstanding asks, and
    /// publish retained messages again.
    fn resend_all(&mut self, link: &Link) {
        self.prune_retained();
        let now = Instant::now();
        for (id, kept) in self.retained.drain() {
            let remaining = kept.expires.saturating_duration_since(now);
            let req = loop {
                let r = self.next_req.fetch_add(1, Ordering::Relaxed);
                if r != 0 {
                    break r;
                }
            };
            let p = PendingPublish {
                id,
                ttl_ms: ttl_to_wire_ms(remaining),
                readers: kept.readers,
                payload: kept.payload,
                reply: None,
                in_flight: false,
                drops: 0,
            };
            self.publishes.insert(req, p);
        }
        for (req, p) in &mut self.publishes {
            send_publish(link, *req, p);
        }
        for (req, a) in &self.asks {
            link.send(&a.frame(*req, self.config.forwarded));
        }
    }

    /// After a connection dropped: count the drop against publishes that were in flight and
    /// fail the ones that have now been dropped too often.
    fn after_drop(&mut self) {
        let max = self.config.max_resends;
        let mut failed = Vec::new();
        for (req, p) in &mut self.publishes {
            if p.in_flight {
                p.in_flight = false;
                p.drops = p.drops.saturating_add(1);
                if p.drops >= max {
                    failed.push(*req);
                }
            }
        }
        for req in failed {
            if let Some(p) = self.publishes.remove(&req) {
                warn!(id = %p.id, drops = p.drops, "publish failed: connection dropped repeatedly");
                if let Some(reply) = p.reply {
                    let _ = reply.send(Err(RelayError::Unavailable(format!(
                        "the connection dropped {} times while publishing {}",
                        p.drops, p.id
                    ))));
                }
            }
        }
    }

    /// While disconnected for longer than `give_up_after`: fail everything outstanding.
    fn give_up_if_down_too_long(&mut self) {
        if self.down_since.elapsed() < self.config.give_up_after {
            return;
        }
        let why = match self.failure.borrow().as_ref() {
            Some(f) => format!("relay at {} unreachable: {f}", self.url().ws_url()),
            None => format!("relay at {} unreachable", self.url().ws_url()),
        };
        self.fail_outstanding(&why);
    }

    /// Fails every outstanding publish and ask with `why`.
    fn fail_outstanding(&mut self, why: &str) {
        for (_, p) in self.publishes.drain() {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(RelayError::Unavailable(why.to_owned())));
            }
        }
        for (_, a) in self.asks.drain() {
            let _ = a.reply.send(Err(RelayError::Unavailable(why.to_owned())));
        }
    }

    /// The permanent reason the relay cannot be reached, while there is one.
    fn refused(&self) -> Option<String> {
        self.failure.borrow().as_ref().filter(|f| f.permanent).map(|f| f.message.clone())
    }

    fn prune_retained(&mut self) {
        let now = Instant::now();
        self.retained.retain(|_, kept| kept.expires > now);
        self.releasing.retain(|(until, _)| *until > now);
    }

    fn on_frame(&mut self, buf: &[u8], link: &Link) {
        let frame = match Frame::decode(buf) {
            Ok(frame) => frame,
            Err(e) => {
                warn!(error = %e, "undecodable frame from the relay");
                return;
            }
        };
        match frame {
            Frame::Ack { req, .. } => {
                let Some(p) = self.publishes.remove(&req) else { return };
                if self.config.republish_on_reconnect {
                    let expires = Instant::now() + Duration::from_millis(u64::from(p.ttl_ms));
                    let kept = Retained { payload: p.payload, readers: p.readers, expires };
                    self.retained.insert(p.id, kept);
                }
                if let Some(reply) = p.reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Frame::Deliver { req, id, candidate, payload } => {
                if let Some(a) = self.asks.remove(&req) {
                    let number = candidate.unwrap_or(0);
                    if a.id == id && a.from.is_none_or(|from| number >= from) {
                        let _ = a.reply.send(Ok((number, payload.to_vec())));
                    } else {
                        warn!(%id, expected = %a.id, "relay delivered the wrong message; asking again");
                        link.send(&a.frame(req, self.config.forwarded));
                        self.asks.insert(req, a);
                    }
                }
            }
            Frame::Error { req, code, actual, limit, text } => {
                self.on_error(req, code, actual, limit, text, link);
            }
            Frame::Publish { .. }
            | Frame::Ask { .. }
            | Frame::Cancel { .. }
            | Frame::Consume { .. } => {
                warn!("relay sent a client-to-server frame; ignored");
            }
        }
    }

    fn on_error(
        &mut self,
        req: u32,
        code: ErrorCode,
        actual: u64,
        limit: u64,
        text: &str,
        link: &Link,
    ) {
        if let Some(p) = self.publishes.remove(&req) {
            let err = map_error(code, actual, limit, text, p.id);
            match p.reply {
                Some(reply) => {
                    let _ = reply.send(Err(err));
                }
                None => warn!(id = %p.id, error = %err, "re-publish after reconnect rejected"),
            }
        } else if let Some(a) = self.asks.remove(&req) {
            if code == ErrorCode::AskExpired {
                // The relay bounds how long it holds a waiter; the caller bounds the ask.
                link.send(&a.frame(req, self.config.forwarded));
                self.asks.insert(req, a);
            } else {
                let _ = a.reply.send(Err(map_error(code, actual, limit, text, a.id)));
            }
        } else if req == 0 {
            warn!(?code, text, "relay reported an error about an undecodable frame");
        }
    }
}

fn send_publish(link: &Link, req: u32, p: &mut PendingPublish) {
    link.send(&Frame::Publish {
        req,
        id: p.id,
        ttl_ms: p.ttl_ms,
        readers: p.readers,
        payload: &p.payload,
    });
    p.in_flight = true;
}

/// Maps an error frame to the [`RelayError`] the caller sees.
pub(crate) fn map_error(
    code: ErrorCode,
    actual: u64,
    limit: u64,
    text: &str,
    id: MessageId,
) -> RelayError {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    match code {
        ErrorCode::Conflict => RelayError::Conflict(id),
        ErrorCode::TooLarge => RelayError::TooLarge { size: size(actual), max: size(limit) },
        ErrorCode::BadTtl => RelayError::TtlTooLong {
            requested: Duration::from_millis(actual),
            max: Duration::from_millis(limit),
        },
        ErrorCode::StoreFull => RelayError::StoreFull { held: actual, limit },
        ErrorCode::QuotaExceeded => RelayError::QuotaExceeded { held: actual, limit },
        ErrorCode::TooManyAsks => RelayError::LimitExceeded(text.to_owned()),
        _ => RelayError::Unavailable(format!("relay rejected the request ({code:?}): {text}")),
    }
}

/// Writes queued messages, flushing once per batch.
async fn write_loop<S>(mut sink: S, mut rx: mpsc::UnboundedReceiver<Message>)
where
    S: Sink<Message> + Unpin,
{
    while let Some(first) = rx.recv().await {
        let closing = matches!(first, Message::Close(_));
        if sink.feed(first).await.is_err() {
            return;
        }
        let mut batch = 1;
        while batch < WRITE_BATCH {
            let Ok(msg) = rx.try_recv() else { break };
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
