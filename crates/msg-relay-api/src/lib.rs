//! The `Relay` abstraction: how a protocol party publishes and asks for messages.
//!
//! A relay stores opaque messages addressed by 32-byte [`MessageId`]s. A party *publishes* its
//! outgoing messages with a time-to-live and *asks* for the ids it expects; an ask is answered as
//! soon as the message exists, whether it was published before or after the ask (the pull model
//! of `DESIGN.md`). Publishing the same id twice with identical bytes is idempotent; publishing
//! different bytes under an existing id is rejected with [`RelayError::Conflict`].
//!
//! Message lifecycle: a publisher may say how many receivers a message has
//! ([`Relay::publish_for`]); each receiver [`consume`](Relay::consume)s it once it has
//! authenticated it, and the relay drops the message when every receiver has. The TTL is only the
//! backstop for receivers that never come. A client that keeps its own copies (to publish again
//! after a relay restart) is told by [`Relay::release`] when the session that sent them is over.
//!
//! This crate knows nothing about cryptography or networks: protocol runners depend on the
//! trait, `msg-relay-client` implements it over WebSocket/HTTP, and [`MemoryRelay`] implements it
//! in-process for tests and single-process demos.
//!
//! [`wire`] is the relay's wire format (the frame codec and the HTTP header names, pure code
//! without I/O), shared by `msg-relay-client` and `msg-relay-svc`.

pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Length of a message id in bytes.
pub const MESSAGE_ID_LEN: usize = 32;

/// A 32-byte message id (computed by the protocol layer from the session setup).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.0
    }

    /// Parses a message id from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; MESSAGE_ID_LEN]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Errors a relay can report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A different payload is already stored under this id (possible equivocation).
    #[error("message {0} already exists with a different payload")]
    Conflict(MessageId),
    /// The payload is larger than the relay accepts.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the rejected payload.
        size: usize,
        /// The relay's limit.
        max: usize,
    },
    /// The requested TTL is longer than the relay allows.
    #[error("TTL of {requested:?} exceeds the maximum of {max:?}")]
    TtlTooLong {
        /// Requested TTL.
        requested: Duration,
        /// The relay's maximum.
        max: Duration,
    },
    /// The relay holds as many bytes as it may; retry later (this is load, not an outage).
    #[error("relay full: it holds {held} of {limit} bytes")]
    StoreFull {
        /// Bytes the relay holds.
        held: u64,
        /// Its limit.
        limit: u64,
    },
    /// This client (its connection or address) holds as many bytes on the relay as it may;
    /// retry later.
    #[error("relay quota of this client used up: it holds {held} of {limit} bytes")]
    QuotaExceeded {
        /// Bytes this client's messages hold.
        held: u64,
        /// Its quota.
        limit: u64,
    },
    /// A capacity limit (outstanding asks, …) was reached.
    #[error("relay limit reached: {0}")]
    LimitExceeded(String),
    /// The relay could not be reached or the connection failed in a way retries did not fix.
    #[error("relay unavailable: {0}")]
    Unavailable(String),
    /// The relay handle was shut down.
    #[error("relay closed")]
    Closed,
}

/// When a client may drop its copies of published messages (see [`Relay::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Every receiver has them.
    Now,
    /// After the client's grace period.
    AfterGrace,
}

/// A boxed future returned by [`Relay`] methods (keeps the trait object-safe).
pub type RelayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RelayError>> + Send + 'a>>;

/// Publish/ask access to a message relay.
///
/// `ask` waits until the message exists; callers bound the wait with their own round timeout.
pub trait Relay: Send + Sync {
    /// Publishes `payload` under `id`, to be kept for `ttl`.
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()>;

    /// Waits for the message `id` and returns its payload.
    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>>;

    /// Publishes `payload` under `id` for `readers` receivers: the relay may drop it once that
    /// many distinct readers [consumed](Relay::consume) it, and at the latest after `ttl`.
    /// `readers == 0` means "unknown": kept for the whole TTL, like [`Relay::publish`].
    ///
    /// The default ignores `readers` (a relay without a lifecycle keeps messages for the TTL).
    fn publish_for(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> RelayFuture<'_, ()> {
        let _ = readers;
        self.publish(id, ttl, payload)
    }

    /// Waits for a *candidate* of message `id` numbered `from` or later and returns (its
    /// number, payload).
    ///
    /// Message ids follow from data that is not secret, so a relay may hold several payloads
    /// under one id in arrival order (one per publishing client): the real one and whatever
    /// others published first. A receiver asks from 0, authenticates the answer, and asks
    /// from the next number when it does not authenticate.
    ///
    /// The default serves candidate 0 through [`Relay::ask`] and never answers for later
    /// numbers (a relay that keeps one payload per id has no others).
    fn ask_candidate(&self, id: MessageId, from: u16) -> RelayFuture<'_, (u16, Vec<u8>)> {
        if from == 0 {
            Box::pin(async move { self.ask(id).await.map(|payload| (0, payload)) })
        } else {
            Box::pin(std::future::pending())
        }
    }

    /// [`Relay::consume`] for candidate `candidate` of `id` (the one the receiver
    /// authenticated). The default consumes candidate 0 through [`Relay::consume`].
    fn consume_candidate(&self, id: MessageId, candidate: u16, reader: u16) -> RelayFuture<'_, ()> {
        if candidate == 0 { self.consume(id, reader) } else { Box::pin(async { Ok(()) }) }
    }

    /// Tells the relay that receiver `reader` (an index unique among the message's receivers,
    /// e.g. its party index) has the message `id` and will not ask for it again. Idempotent per
    /// reader; unknown ids are ignored. Best effort: a lost consume only means the message waits
    /// for its TTL. The default does nothing.
    fn consume(&self, id: MessageId, reader: u16) -> RelayFuture<'_, ()> {
        let _ = (id, reader);
        Box::pin(async { Ok(()) })
    }

    /// The messages `ids` need not be published again: a client that keeps copies of its
    /// published messages (to publish them again after a relay restart) lets them go, at once
    /// ([`Release::Now`]: every receiver provably has them) or after a short grace period
    /// ([`Release::AfterGrace`]: the session is over here, but a receiver may still be one
    /// round behind). The default does nothing.
    fn release(&self, ids: &[MessageId], when: Release) {
        let _ = (ids, when);
    }
}

impl<R: Relay + ?Sized> Relay for Arc<R> {
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()> {
        (**self).publish(id, ttl, payload)
    }

    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>> {
        (**self).ask(id)
    }

    fn publish_for(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> RelayFuture<'_, ()> {
        (**self).publish_for(id, ttl, readers, payload)
    }

    fn consume(&self, id: MessageId, reader: u16) -> RelayFuture<'_, ()> {
        (**self).consume(id, reader)
    }

    fn ask_candidate(&self, id: MessageId, from: u16) -> RelayFuture<'_, (u16, Vec<u8>)> {
        (**self).ask_candidate(id, from)
    }

    fn consume_candidate(&self, id: MessageId, candidate: u16, reader: u16) -> RelayFuture<'_, ()> {
        (**self).consume_candidate(id, candidate, reader)
    }

    fn release(&self, ids: &[MessageId], when: Release) {
        (**self).release(ids, when);
    }
}

/// What a [`MemoryRelay`] fault hook decides for a published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Store the message as published.
    Deliver,
    /// Silently drop the message (as a lossy or malicious relay would).
    Drop,
    /// Store these bytes instead (a relay tampering with traffic).
    Replace(Vec<u8>),
}

type FaultHook = dyn Fn(&MessageId, &[u8]) -> Fault + Send + Sync;

struct Slot {
    /// `None` until published; then the payload and its expiry.
    tx: watch::Sender<Option<Arc<Vec<u8>>>>,
    expires: Option<Instant>,
    /// Receivers announced by the publisher (0: unknown, kept for the TTL).
    readers: u16,
    /// Distinct readers that consumed it.
    consumed: Vec<u16>,
}

impl Slot {
    fn empty() -> Self {
        Self { tx: watch::channel(None).0, expires: None, readers: 0, consumed: Vec::new() }
    }
}

#[derive(Default)]
struct Inner {
    slots: HashMap<MessageId, Slot>,
    published_bytes: u64,
    published_messages: u64,
    consumed_messages: u64,
}

/// An in-process relay with the same semantics as the relay service; for tests and demos.
///
/// Cloning gives another handle to the same relay.
#[derive(Clone, Default)]
pub struct MemoryRelay {
    inner: Arc<Mutex<Inner>>,
    fault: Option<Arc<FaultHook>>,
}

impl fmt::Debug for MemoryRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRelay").finish_non_exhaustive()
    }
}

impl MemoryRelay {
    /// A new, empty relay.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle to the same relay whose publishes pass through `hook` (fault injection).
    pub fn with_fault(
        &self,
        hook: impl Fn(&MessageId, &[u8]) -> Fault + Send + Sync + 'static,
    ) -> Self {
        Self { inner: Arc::clone(&self.inner), fault: Some(Arc::new(hook)) }
    }

    /// Total (messages, bytes) accepted so far.
    pub fn stats(&self) -> (u64, u64) {
        match self.inner.lock() {
            Ok(g) => (g.published_messages, g.published_bytes),
            Err(p) => {
                let g = p.into_inner();
                (g.published_messages, g.published_bytes)
            }
        }
    }

    /// Messages held now (published, not yet consumed by all their readers, not expired), and
    /// messages dropped because every reader consumed them, since creation.
    pub fn held(&self) -> (usize, u64) {
        let now = Instant::now();
        let g = self.lock();
        let live = g
            .slots
            .values()
            .filter(|s| s.tx.borrow().is_some() && s.expires.is_some_and(|e| e > now))
            .count();
        (live, g.consumed_messages)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while holding it; the map is still
        // structurally valid, so keep serving.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_now(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> Result<(), RelayError> {
        let payload = match self.fault.as_ref().map(|h| h(&id, &payload)) {
            None | Some(Fault::Deliver) => payload,
            Some(Fault::Drop) => return Ok(()),
            Some(Fault::Replace(bytes)) => bytes,
        };
        let now = Instant::now();
        let mut g = self.lock();
        let len = payload.len() as u64;
        let slot = g.slots.entry(id).or_insert_with(Slot::empty);
        if slot.expires.is_some_and(|e| e <= now) {
            slot.tx.send_replace(None);
            slot.expires = None;
            slot.consumed.clear();
        }
        let existing = slot.tx.borrow().clone();
        match existing {
            Some(old) if *old == payload => Ok(()),
            Some(_) => Err(RelayError::Conflict(id)),
            None => {
                slot.expires = Some(now + ttl);
                slot.readers = readers;
                slot.tx.send_replace(Some(Arc::new(payload)));
                g.published_bytes += len;
                g.published_messages += 1;
                Ok(())
            }
        }
    }

    async fn ask_inner(&self, id: MessageId) -> Result<Vec<u8>, RelayError> {
        let mut rx = {
            let mut g = self.lock();
            let slot = g.slots.entry(id).or_insert_with(Slot::empty);
            slot.tx.subscribe()
        };
        loop {
            if let Some(p) = rx.borrow_and_update().as_ref() {
                return Ok(p.as_ref().clone());
            }
            rx.changed().await.map_err(|_| RelayError::Closed)?;
        }
    }

    fn consume_now(&self, id: MessageId, reader: u16) {
        let mut g = self.lock();
        let Some(slot) = g.slots.get_mut(&id) else { return };
        if slot.readers == 0 || slot.tx.borrow().is_none() || slot.consumed.contains(&reader) {
            return;
        }
        slot.consumed.push(reader);
        if slot.consumed.len() >= usize::from(slot.readers) {
            // Every receiver has it. Asks still waiting on this slot (none that any receiver
            // makes) end with `Closed`; a later ask waits on a fresh, empty slot.
            g.slots.remove(&id);
            g.consumed_messages += 1;
        }
    }
}

impl Relay for MemoryRelay {
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()> {
        let r = self.publish_now(id, ttl, 0, payload);
        Box::pin(async move { r })
    }

    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>> {
        Box::pin(self.ask_inner(id))
    }

    fn publish_for(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> RelayFuture<'_, ()> {
        let r = self.publish_now(id, ttl, readers, payload);
        Box::pin(async move { r })
    }

    fn consume(&self, id: MessageId, reader: u16) -> RelayFuture<'_, ()> {
        self.consume_now(id, reader);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn id(b: u8) -> MessageId {
        MessageId([b; 32])
    }

    #[tokio::test]
    async fn publish_then_ask_and_ask_then_publish() {
        let r = MemoryRelay::new();
        r.publish(id(1), Duration::from_secs(10), b"one".to_vec()).await.unwrap();
        assert_eq!(r.ask(id(1)).await.unwrap(), b"one");

        let r2 = r.clone();
        let waiter = tokio::spawn(async move { r2.ask(id(2)).await });
        tokio::task::yield_now().await;
        r.publish(id(2), Duration::from_secs(10), b"two".to_vec()).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), b"two");
    }

    #[tokio::test]
    async fn duplicate_publish_is_idempotent_and_conflict_is_rejected() {
        let r = MemoryRelay::new();
        r.publish(id(1), Duration::from_secs(10), b"a".to_vec()).await.unwrap();
        r.publish(id(1), Duration::from_secs(10), b"a".to_vec()).await.unwrap();
        assert_eq!(
            r.publish(id(1), Duration::from_secs(10), b"b".to_vec()).await,
            Err(RelayError::Conflict(id(1)))
        );
        assert_eq!(r.stats().0, 1);
    }

    #[tokio::test]
    async fn a_message_is_dropped_once_every_reader_consumed_it() {
        let r = MemoryRelay::new();
        r.publish_for(id(1), Duration::from_secs(10), 2, b"b".to_vec()).await.unwrap();
        r.publish(id(2), Duration::from_secs(10), b"kept".to_vec()).await.unwrap();
        assert_eq!(r.held(), (2, 0));
        r.consume(id(1), 7).await.unwrap();
        r.consume(id(1), 7).await.unwrap();
        assert_eq!(r.held(), (2, 0), "the same reader twice counts once");
        assert_eq!(r.ask(id(1)).await.unwrap(), b"b");
        r.consume(id(1), 8).await.unwrap();
        assert_eq!(r.held(), (1, 1));
        r.consume(id(2), 7).await.unwrap();
        assert_eq!(r.held(), (1, 1), "a message of unknown readers waits for its TTL");
        let gone = tokio::time::timeout(Duration::from_millis(20), r.ask(id(1))).await;
        assert!(gone.is_err(), "a consumed message is gone");
    }

    #[tokio::test]
    async fn fault_hook_drops_and_replaces() {
        let r = MemoryRelay::new();
        let lossy =
            r.with_fault(
                |id, _| if id.0[0] == 1 { Fault::Drop } else { Fault::Replace(b"evil".to_vec()) },
            );
        lossy.publish(id(1), Duration::from_secs(10), b"x".to_vec()).await.unwrap();
        lossy.publish(id(2), Duration::from_secs(10), b"y".to_vec()).await.unwrap();
        assert_eq!(r.ask(id(2)).await.unwrap(), b"evil");
        let missing = tokio::time::timeout(Duration::from_millis(20), r.ask(id(1))).await;
        assert!(missing.is_err(), "a dropped message must never be delivered");
    }
}
