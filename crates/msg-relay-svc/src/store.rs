//! Where messages live: the [`MessageStore`] trait and its in-memory implementation.
//!
//! The trait is deliberately small and async so that a Redis-backed store (messages as keys
//! with expiry, waiters woken by pub/sub) can implement it for replicated relays.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use msg_relay_api::MessageId;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Bytes charged per stored message on top of its payload, so that many tiny messages cannot
/// hold unbounded memory (id, bookkeeping, expiry index).
pub const PER_MESSAGE_OVERHEAD: u64 = 64;

/// A boxed future returned by [`MessageStore`] methods (keeps the trait object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// How a `put` was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The message is new and was stored.
    Stored,
    /// An identical message was already stored; nothing changed.
    Duplicate,
}

/// Why a store refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A different payload is stored under this id.
    #[error("message {0} already exists with a different payload")]
    Conflict(MessageId),
    /// Storing the message would exceed the byte limit.
    #[error("store full: {held} of {limit} bytes held")]
    Full {
        /// Bytes held (including per-message overhead).
        held: u64,
        /// The limit.
        limit: u64,
    },
    /// The backend failed (connection lost, …); the text is for logs, not for clients.
    #[error("store backend failure: {0}")]
    Backend(String),
}

/// Point-in-time figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Messages held.
    pub messages: u64,
    /// Payload bytes held.
    pub payload_bytes: u64,
    /// Bytes charged against the limit (payload plus per-message overhead).
    pub charged_bytes: u64,
    /// Asks currently waiting for a message.
    pub waiters: u64,
    /// Messages removed because their TTL ran out, since start.
    pub expired_total: u64,
    /// Messages removed because every announced reader consumed them, since start.
    pub consumed_total: u64,
    /// Entries of the expiry index (live messages plus those consumed since the last
    /// compaction); bounded by about twice the live messages.
    pub index_entries: u64,
}

/// Storage of messages by id with expiry, and waiting for a message to appear.
pub trait MessageStore: Send + Sync + 'static {
    /// Stores `payload` under `id` for `ttl`, for `readers` receivers (0: unknown). An
    /// identical payload already stored is a [`PutOutcome::Duplicate`]; a different one is
    /// [`StoreError::Conflict`]. An expired message does not count as stored.
    fn put(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> StoreFuture<'_, PutOutcome>;

    /// Records that receiver `reader` has message `id`; once as many distinct readers as the
    /// publisher announced have, the message is removed. Returns whether it was removed.
    /// Messages without announced readers, unknown ids and repeated readers change nothing.
    fn consume(&self, id: MessageId, reader: u16) -> StoreFuture<'_, bool>;

    /// The message under `id` if it is stored and not expired.
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Bytes>>;

    /// Waits up to `timeout` for the message under `id` (answering at once if it is stored).
    /// `None` when the time ran out. Dropping the future withdraws the waiter.
    fn wait(&self, id: MessageId, timeout: Duration) -> StoreFuture<'_, Option<Bytes>>;

    /// Removes expired messages; returns how many. Called periodically by the service.
    fn purge_expired(&self) -> StoreFuture<'_, u64>;

    /// Current figures.
    fn stats(&self) -> StoreStats;
}

struct Entry {
    payload: Bytes,
    expires: Instant,
    /// Announced receivers (0: unknown, kept for the TTL).
    readers: u16,
    /// Distinct readers that consumed it (a handful at most: one per receiver).
    consumed: Vec<u16>,
}

type Waiter = (u64, oneshot::Sender<Bytes>);

#[derive(Default)]
struct State {
    messages: HashMap<MessageId, Entry>,
    /// Expiry index; entries whose message was replaced or removed are skipped when popped.
    expiry: BinaryHeap<Reverse<(Instant, MessageId)>>,
    waiters: HashMap<MessageId, Vec<Waiter>>,
    waiter_count: u64,
    payload_bytes: u64,
    charged_bytes: u64,
}

impl State {
    fn charge(payload: &Bytes) -> u64 {
        u64::try_from(payload.len()).unwrap_or(u64::MAX).saturating_add(PER_MESSAGE_OVERHEAD)
    }

    fn remove(&mut self, id: &MessageId) -> Option<Entry> {
        let entry = self.messages.remove(id)?;
        self.payload_bytes =
            self.payload_bytes.saturating_sub(u64::try_from(entry.payload.len()).unwrap_or(0));
        self.charged_bytes = self.charged_bytes.saturating_sub(Self::charge(&entry.payload));
        Some(entry)
    }

    /// The live payload under `id`; an expired one is removed on the way (lazy expiry).
    fn live(&mut self, id: &MessageId, now: Instant, expired: &AtomicU64) -> Option<Bytes> {
        let entry = self.messages.get(id)?;
        if entry.expires > now {
            return Some(entry.payload.clone());
        }
        self.remove(id);
        expired.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The default store: a map in this process's memory, bounded by a byte limit.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    max_bytes: u64,
    next_waiter: AtomicU64,
    expired_total: AtomicU64,
    consumed_total: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("messages", &self.messages.len())
            .field("waiters", &self.waiter_count)
            .field("charged_bytes", &self.charged_bytes)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store that holds at most `max_bytes` (payloads plus
    /// [`PER_MESSAGE_OVERHEAD`] per message).
    pub fn new(max_bytes: u64) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_bytes,
            next_waiter: AtomicU64::new(0),
            expired_total: AtomicU64::new(0),
            consumed_total: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code path panics while holding the lock, and the maps stay consistent at every
        // statement boundary, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn put_now(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> Result<PutOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(existing) = state.live(&id, now, &self.expired_total) {
            return if existing == payload {
                Ok(PutOutcome::Duplicate)
            } else {
                Err(StoreError::Conflict(id))
            };
        }
        let charge = State::charge(&payload);
        let held = state.charged_bytes;
        if held.saturating_add(charge) > self.max_bytes {
            return Err(StoreError::Full { held, limit: self.max_bytes });
        }
        let expires =
            now.checked_add(ttl).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        state.charged_bytes = held.saturating_add(charge);
        state.payload_bytes =
            state.payload_bytes.saturating_add(u64::try_from(payload.len()).unwrap_or(u64::MAX));
        state.expiry.push(Reverse((expires, id)));
        if let Some(waiters) = state.waiters.remove(&id) {
            state.waiter_count = state.waiter_count.saturating_sub(waiters.len() as u64);
            for (_, tx) in waiters {
                // A waiter whose ask was dropped just now is fine to miss.
                let _ = tx.send(payload.clone());
            }
        }
        state.messages.insert(id, Entry { payload, expires, readers, consumed: Vec::new() });
        Ok(PutOutcome::Stored)
    }

    fn consume_now(&self, id: MessageId, reader: u16) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.messages.get_mut(&id) else { return false };
        if entry.readers == 0 || entry.consumed.contains(&reader) {
            return false;
        }
        entry.consumed.push(reader);
        if entry.consumed.len() < usize::from(entry.readers) {
            return false;
        }
        // Its expiry-index entry stays behind and is skipped when it comes up.
        state.remove(&id);
        drop(state);
        self.consumed_total.fetch_add(1, Ordering::Relaxed);
        true
    }

    async fn wait_inner(&self, id: MessageId, timeout: Duration) -> Option<Bytes> {
        let (waiter, rx) = {
            let now = Instant::now();
            let mut state = self.lock();
            if let Some(payload) = state.live(&id, now, &self.expired_total) {
                return Some(payload);
            }
            let (tx, rx) = oneshot::channel();
            let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
            state.waiters.entry(id).or_default().push((waiter, tx));
            state.waiter_count = state.waiter_count.saturating_add(1);
            (waiter, rx)
        };
        let _guard = WaiterGuard { store: self, id, waiter };
        tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok)
    }

    fn purge_now(&self) -> u64 {
        let now = Instant::now();
        let mut state = self.lock();
        let mut purged = 0u64;
        while let Some(Reverse((expires, id))) = state.expiry.peek().copied() {
            if expires > now {
                break;
            }
            state.expiry.pop();
            // Skip index entries of messages that were already removed or stored again.
            if state.messages.get(&id).is_some_and(|e| e.expires == expires) {
                state.remove(&id);
                purged += 1;
            }
        }
        // Consumed messages leave their index entries behind until their TTL; when those
        // outnumber the live ones, rebuild the index from the live messages (amortised O(1)).
        if state.expiry.len() > 2 * state.messages.len() + 1024 {
            let live: Vec<_> =
                state.messages.iter().map(|(id, e)| Reverse((e.expires, *id))).collect();
            state.expiry = BinaryHeap::from(live);
        }
        drop(state);
        self.expired_total.fetch_add(purged, Ordering::Relaxed);
        purged
    }
}

/// Withdraws a waiter when its ask ends for any reason (answered, timed out, cancelled).
struct WaiterGuard<'a> {
    store: &'a MemoryStore,
    id: MessageId,
    waiter: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.store.lock();
        let Some(list) = state.waiters.get_mut(&self.id) else { return };
        let before = list.len();
        list.retain(|(w, _)| *w != self.waiter);
        let removed = (before - list.len()) as u64;
        if list.is_empty() {
            state.waiters.remove(&self.id);
        }
        state.waiter_count = state.waiter_count.saturating_sub(removed);
    }
}

impl MessageStore for MemoryStore {
    fn put(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> StoreFuture<'_, PutOutcome> {
        let result = self.put_now(id, ttl, readers, payload);
        Box::pin(async move { result })
    }

    fn consume(&self, id: MessageId, reader: u16) -> StoreFuture<'_, bool> {
        let removed = self.consume_now(id, reader);
        Box::pin(async move { Ok(removed) })
    }

    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Bytes>> {
        let now = Instant::now();
        let result = self.lock().live(&id, now, &self.expired_total);
        Box::pin(async move { Ok(result) })
    }

    fn wait(&self, id: MessageId, timeout: Duration) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move { Ok(self.wait_inner(id, timeout).await) })
    }

    fn purge_expired(&self) -> StoreFuture<'_, u64> {
        let purged = self.purge_now();
        Box::pin(async move { Ok(purged) })
    }

    fn stats(&self) -> StoreStats {
        let state = self.lock();
        StoreStats {
            messages: state.messages.len() as u64,
            payload_bytes: state.payload_bytes,
            charged_bytes: state.charged_bytes,
            waiters: state.waiter_count,
            expired_total: self.expired_total.load(Ordering::Relaxed),
            consumed_total: self.consumed_total.load(Ordering::Relaxed),
            index_entries: state.expiry.len() as u64,
        }
    }
}
