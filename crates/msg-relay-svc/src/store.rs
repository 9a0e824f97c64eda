//! Where messages live: the [`MessageStore`] trait and its in-memory implementation.
//!
//! The trait is deliberately small and async so that a shared store (the Redis store of
//! `redis_store`: one Lua script per operation, waiters woken by pub/sub) can implement it for
//! replicated relays.
//!
//! # Candidates
//! Message ids follow from data that is not secret (a session's setup), so anyone who can
//! reach the relay can publish under a party's id before the party does. The relay therefore
//! does not keep only the first payload: every *source* (a WebSocket connection, or an HTTP
//! client address) may place one payload under an id, and the payloads are kept as numbered
//! *candidates* in arrival order. A receiver asks for candidate 0, authenticates what it gets,
//! and asks for the next candidate when it does not authenticate. An outsider can make
//! receivers skip its garbage, but it can no longer occupy the id. Every candidate is charged
//! to its source's quota, so one client cannot fill the relay either.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::net::IpAddr;
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

/// Who published a message: the client's address and, for WebSocket clients, the connection
/// (`conn == 0` for HTTP requests, which are identified by their address alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    /// The client's address.
    pub addr: IpAddr,
    /// The WebSocket connection (unique per relay process), or 0 for HTTP.
    pub conn: u64,
}

impl Source {
    /// The source used by in-process callers and tests (loopback, no connection).
    pub const LOCAL: Source = Source { addr: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), conn: 0 };

    /// An HTTP client at `addr`.
    pub fn http(addr: IpAddr) -> Self {
        Self { addr, conn: 0 }
    }
}

/// How a `put` was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The message is new and was stored.
    Stored,
    /// An identical message was already stored; nothing changed.
    Duplicate,
}

/// Whose quota a refused publish exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    /// The publishing WebSocket connection's.
    Connection,
    /// The publishing client address's (all its connections and HTTP requests).
    Address,
}

impl std::fmt::Display for QuotaScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connection => "connection",
            Self::Address => "client address",
        })
    }
}

/// Why a store refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The same source already placed a different payload under this id.
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
    /// Storing the message would exceed the publisher's quota.
    #[error("{scope} quota exceeded: {held} of {limit} bytes held")]
    Quota {
        /// Whose quota.
        scope: QuotaScope,
        /// Bytes that source holds.
        held: u64,
        /// Its quota.
        limit: u64,
    },
    /// The backend failed (connection lost, …); the text is for logs, not for clients.
    #[error("store backend failure: {0}")]
    Backend(String),
}

/// Byte limits of a store: in total and per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreQuotas {
    /// Bytes the whole store may hold.
    pub total: u64,
    /// Bytes the messages of one WebSocket connection may hold.
    pub per_connection: u64,
    /// Bytes the messages of one client address may hold (all its connections and HTTP).
    pub per_address: u64,
}

impl StoreQuotas {
    /// Only a total limit (per-source quotas equal to it).
    pub fn total(bytes: u64) -> Self {
        Self { total: bytes, per_connection: bytes, per_address: bytes }
    }
}

/// Point-in-time figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Messages held (candidates counted one by one).
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
    /// Ids holding more than one candidate (someone else published under a party's id).
    pub contested_ids: u64,
}

/// Storage of messages by id and candidate with expiry, and waiting for a message to appear.
pub trait MessageStore: Send + Sync + 'static {
    /// Stores `payload` under `id` as `source`'s candidate for `ttl`, for `readers` receivers
    /// (0: unknown). A payload identical to a live candidate is a [`PutOutcome::Duplicate`];
    /// a different one from a source that already has a live candidate under `id` is
    /// [`StoreError::Conflict`]. Expired candidates do not count.
    fn put(
        &self,
        id: MessageId,
        source: Source,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> StoreFuture<'_, PutOutcome>;

    /// Records that receiver `reader` has candidate `candidate` of `id`; once as many distinct
    /// readers as its publisher announced have, the candidate is removed. Returns whether it
    /// was. Candidates without announced readers, unknown ones and repeated readers change
    /// nothing.
    fn consume(&self, id: MessageId, candidate: u16, reader: u16) -> StoreFuture<'_, bool>;

    /// The first live candidate under `id` numbered `from` or later: (its number, payload).
    fn get(&self, id: MessageId, from: u16) -> StoreFuture<'_, Option<(u16, Bytes)>>;

    /// Waits up to `timeout` for a candidate under `id` numbered `from` or later (answering at
    /// once if one is stored). `None` when the time ran out. Dropping the future withdraws the
    /// waiter.
    fn wait(
        &self,
        id: MessageId,
        from: u16,
        timeout: Duration,
    ) -> StoreFuture<'_, Option<(u16, Bytes)>>;

    /// Removes expired messages; returns how many. Called periodically by the service.
    fn purge_expired(&self) -> StoreFuture<'_, u64>;

    /// Current figures, as far as they can be had without waiting (a shared store answers
    /// with those of its last sweep and this process's waiters).
    fn stats(&self) -> StoreStats;

    /// Current figures, asking the backend when it is shared.
    fn current_stats(&self) -> StoreFuture<'_, StoreStats> {
        let stats = self.stats();
        Box::pin(async move { Ok(stats) })
    }
}

struct Candidate {
    payload: Bytes,
    expires: Instant,
    /// Announced receivers (0: unknown, kept for the TTL).
    readers: u16,
    /// Distinct readers that consumed it (a handful at most: one per receiver).
    consumed: Vec<u16>,
    source: Source,
}

/// The candidates under one id, numbered by position (removed ones leave `None`, so numbers
/// stay stable while the id lives).
#[derive(Default)]
struct Slot {
    candidates: Vec<Option<Candidate>>,
}

impl Slot {
    fn live(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().flatten()
    }
}

/// Asks waiting for a message, by id: each with its number, the first candidate number it
/// accepts, and where to answer (`T`). Shared by the stores' own waiter bookkeeping.
#[derive(Debug)]
pub(crate) struct Waiters<T> {
    by_id: HashMap<MessageId, Vec<(u64, u16, T)>>,
    count: u64,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Self { by_id: HashMap::new(), count: 0 }
    }
}

impl<T> Waiters<T> {
    /// Registers waiter `waiter` for candidates of `id` numbered `from` or later.
    pub(crate) fn add(&mut self, id: MessageId, waiter: u64, from: u16, answer: T) {
        self.by_id.entry(id).or_default().push((waiter, from, answer));
        self.count = self.count.saturating_add(1);
    }

    /// Withdraws waiter `waiter` of `id` (answered, timed out or cancelled).
    pub(crate) fn withdraw(&mut self, id: &MessageId, waiter: u64) {
        let Some(list) = self.by_id.get_mut(id) else { return };
        let before = list.len();
        list.retain(|(w, _, _)| *w != waiter);
        let removed = (before - list.len()) as u64;
        if list.is_empty() {
            self.by_id.remove(id);
        }
        self.count = self.count.saturating_sub(removed);
    }

    /// Removes and returns the waiters of `id` that accept candidate `number`.
    pub(crate) fn take_accepting(&mut self, id: &MessageId, number: u16) -> Vec<T> {
        let Some(list) = self.by_id.remove(id) else { return Vec::new() };
        let (wake, keep): (Vec<_>, Vec<_>) =
            list.into_iter().partition(|(_, from, _)| *from <= number);
        self.count = self.count.saturating_sub(wake.len() as u64);
        if !keep.is_empty() {
            self.by_id.insert(*id, keep);
        }
        wake.into_iter().map(|(_, _, answer)| answer).collect()
    }

    /// Calls `f` with each waiter of `id` that accepts candidate `number` (they stay).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn each_accepting(&self, id: &MessageId, number: u16, mut f: impl FnMut(&T)) {
        for (_, from, answer) in self.by_id.get(id).into_iter().flatten() {
            if *from <= number {
                f(answer);
            }
        }
    }

    /// Calls `f` with every waiter.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn each(&self, mut f: impl FnMut(&T)) {
        self.by_id.values().flatten().for_each(|(_, _, answer)| f(answer));
    }

    /// Waiters registered.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

#[derive(Default)]
struct State {
    messages: HashMap<MessageId, Slot>,
    /// Live candidates over all ids.
    live: u64,
    /// Expiry index; entries whose candidate was removed are skipped when popped.
    expiry: BinaryHeap<Reverse<(Instant, MessageId, u16)>>,
    waiters: Waiters<oneshot::Sender<(u16, Bytes)>>,
    payload_bytes: u64,
    charged_bytes: u64,
    per_connection: HashMap<u64, u64>,
    per_address: HashMap<IpAddr, u64>,
}

fn charge(payload: &Bytes) -> u64 {
    u64::try_from(payload.len()).unwrap_or(u64::MAX).saturating_add(PER_MESSAGE_OVERHEAD)
}

/// Subtracts `amount` from `key`'s entry, dropping entries that reach zero.
fn uncharge<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K, amount: u64) {
    if let Some(held) = map.get_mut(&key) {
        *held = held.saturating_sub(amount);
        if *held == 0 {
            map.remove(&key);
        }
    }
}

impl State {
    fn remove(&mut self, id: &MessageId, n: u16) -> Option<Candidate> {
        let slot = self.messages.get_mut(id)?;
        let candidate = slot.candidates.get_mut(usize::from(n))?.take()?;
        if slot.candidates.iter().all(Option::is_none) {
            self.messages.remove(id);
        }
        let amount = charge(&candidate.payload);
        self.live = self.live.saturating_sub(1);
        self.payload_bytes =
            self.payload_bytes.saturating_sub(u64::try_from(candidate.payload.len()).unwrap_or(0));
        self.charged_bytes = self.charged_bytes.saturating_sub(amount);
        if candidate.source.conn != 0 {
            uncharge(&mut self.per_connection, candidate.source.conn, amount);
        }
        uncharge(&mut self.per_address, candidate.source.addr, amount);
        Some(candidate)
    }

    /// Removes the expired candidates under `id` (lazy expiry); returns how many.
    fn expire(&mut self, id: &MessageId, now: Instant) -> u64 {
        let Some(slot) = self.messages.get(id) else { return 0 };
        let expired: Vec<u16> = slot
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| c.expires <= now))
            .filter_map(|(n, _)| u16::try_from(n).ok())
            .collect();
        let count = expired.len() as u64;
        for n in expired {
            self.remove(id, n);
        }
        count
    }

    /// The first live candidate under `id` numbered `from` or later.
    fn first_from(&self, id: &MessageId, from: u16) -> Option<(u16, Bytes)> {
        let slot = self.messages.get(id)?;
        slot.candidates.iter().enumerate().skip(usize::from(from)).find_map(|(n, c)| {
            let c = c.as_ref()?;
            Some((u16::try_from(n).ok()?, c.payload.clone()))
        })
    }
}

/// The default store: a map in this process's memory, bounded by byte quotas.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    quotas: StoreQuotas,
    next_waiter: AtomicU64,
    expired_total: AtomicU64,
    consumed_total: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("messages", &self.live)
            .field("waiters", &self.waiters.count())
            .field("charged_bytes", &self.charged_bytes)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store that holds at most `max_bytes` (payloads plus
    /// [`PER_MESSAGE_OVERHEAD`] per message), with no per-source quota below that.
    pub fn new(max_bytes: u64) -> Self {
        Self::with_quotas(StoreQuotas::total(max_bytes))
    }

    /// An empty store with a total limit and per-source quotas.
    pub fn with_quotas(quotas: StoreQuotas) -> Self {
        Self {
            state: Mutex::new(State::default()),
            quotas,
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

    /// Refuses a candidate of `amount` bytes from `source` that would exceed a limit.
    fn check_quotas(&self, state: &State, source: Source, amount: u64) -> Result<(), StoreError> {
        let held = state.charged_bytes;
        if held.saturating_add(amount) > self.quotas.total {
            return Err(StoreError::Full { held, limit: self.quotas.total });
        }
        if source.conn != 0 {
            let held = state.per_connection.get(&source.conn).copied().unwrap_or(0);
            if held.saturating_add(amount) > self.quotas.per_connection {
                let limit = self.quotas.per_connection;
                return Err(StoreError::Quota { scope: QuotaScope::Connection, held, limit });
            }
        }
        let held = state.per_address.get(&source.addr).copied().unwrap_or(0);
        if held.saturating_add(amount) > self.quotas.per_address {
            let limit = self.quotas.per_address;
            return Err(StoreError::Quota { scope: QuotaScope::Address, held, limit });
        }
        Ok(())
    }

    fn put_now(
        &self,
        id: MessageId,
        source: Source,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> Result<PutOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.lock();
        let expired = state.expire(&id, now);
        self.expired_total.fetch_add(expired, Ordering::Relaxed);
        let number = match state.messages.get(&id) {
            Some(slot) => {
                if slot.live().any(|c| c.payload == payload) {
                    return Ok(PutOutcome::Duplicate);
                }
                if slot.live().any(|c| c.source == source) {
                    return Err(StoreError::Conflict(id));
                }
                u16::try_from(slot.candidates.len()).map_err(|_| StoreError::Conflict(id))?
            }
            None => 0,
        };
        let amount = charge(&payload);
        self.check_quotas(&state, source, amount)?;
        let expires =
            now.checked_add(ttl).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        state.charged_bytes = state.charged_bytes.saturating_add(amount);
        state.payload_bytes =
            state.payload_bytes.saturating_add(u64::try_from(payload.len()).unwrap_or(u64::MAX));
        if source.conn != 0 {
            let held = state.per_connection.entry(source.conn).or_default();
            *held = held.saturating_add(amount);
        }
        let held = state.per_address.entry(source.addr).or_default();
        *held = held.saturating_add(amount);
        state.live = state.live.saturating_add(1);
        state.expiry.push(Reverse((expires, id, number)));
        for tx in state.waiters.take_accepting(&id, number) {
            // A waiter whose ask was dropped just now is fine to miss.
            let _ = tx.send((number, payload.clone()));
        }
        let candidate = Candidate { payload, expires, readers, consumed: Vec::new(), source };
        state.messages.entry(id).or_default().candidates.push(Some(candidate));
        Ok(PutOutcome::Stored)
    }

    fn consume_now(&self, id: MessageId, n: u16, reader: u16) -> bool {
        let mut state = self.lock();
        let Some(candidate) = state
            .messages
            .get_mut(&id)
            .and_then(|slot| slot.candidates.get_mut(usize::from(n)))
            .and_then(Option::as_mut)
        else {
            return false;
        };
        if candidate.readers == 0 || candidate.consumed.contains(&reader) {
            return false;
        }
        candidate.consumed.push(reader);
        if candidate.consumed.len() < usize::from(candidate.readers) {
            return false;
        }
        // Its expiry-index entry stays behind and is skipped when it comes up.
        state.remove(&id, n);
        drop(state);
        self.consumed_total.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn get_now(&self, id: MessageId, from: u16) -> Option<(u16, Bytes)> {
        let now = Instant::now();
        let mut state = self.lock();
        let expired = state.expire(&id, now);
        self.expired_total.fetch_add(expired, Ordering::Relaxed);
        state.first_from(&id, from)
    }

    async fn wait_inner(
        &self,
        id: MessageId,
        from: u16,
        timeout: Duration,
    ) -> Option<(u16, Bytes)> {
        let (waiter, rx) = {
            let now = Instant::now();
            let mut state = self.lock();
            let expired = state.expire(&id, now);
            self.expired_total.fetch_add(expired, Ordering::Relaxed);
            if let Some(found) = state.first_from(&id, from) {
                return Some(found);
            }
            let (tx, rx) = oneshot::channel();
            let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
            state.waiters.add(id, waiter, from, tx);
            (waiter, rx)
        };
        let _guard = WaiterGuard { store: self, id, waiter };
        tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok)
    }

    fn purge_now(&self) -> u64 {
        let now = Instant::now();
        let mut state = self.lock();
        let mut purged = 0u64;
        while let Some(Reverse((expires, id, n))) = state.expiry.peek().copied() {
            if expires > now {
                break;
            }
            state.expiry.pop();
            // Skip index entries of candidates that were already removed.
            let current = state
                .messages
                .get(&id)
                .and_then(|s| s.candidates.get(usize::from(n)))
                .and_then(Option::as_ref)
                .is_some_and(|c| c.expires == expires);
            if current {
                state.remove(&id, n);
                purged += 1;
            }
        }
        // Consumed messages leave their index entries behind until their TTL; when those
        // outnumber the live ones, rebuild the index from the live messages (amortised O(1)).
        if state.expiry.len() as u64 > 2 * state.live + 1024 {
            let live: Vec<_> = state
                .messages
                .iter()
                .flat_map(|(id, slot)| {
                    slot.candidates.iter().enumerate().filter_map(move |(n, c)| {
                        Some(Reverse((c.as_ref()?.expires, *id, u16::try_from(n).ok()?)))
                    })
                })
                .collect();
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
        self.store.lock().waiters.withdraw(&self.id, self.waiter);
    }
}

impl MessageStore for MemoryStore {
    fn put(
        &self,
        id: MessageId,
        source: Source,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> StoreFuture<'_, PutOutcome> {
        let result = self.put_now(id, source, ttl, readers, payload);
        Box::pin(async move { result })
    }

    fn consume(&self, id: MessageId, candidate: u16, reader: u16) -> StoreFuture<'_, bool> {
        let removed = self.consume_now(id, candidate, reader);
        Box::pin(async move { Ok(removed) })
    }

    fn get(&self, id: MessageId, from: u16) -> StoreFuture<'_, Option<(u16, Bytes)>> {
        let result = self.get_now(id, from);
        Box::pin(async move { Ok(result) })
    }

    fn wait(
        &self,
        id: MessageId,
        from: u16,
        timeout: Duration,
    ) -> StoreFuture<'_, Option<(u16, Bytes)>> {
        Box::pin(async move { Ok(self.wait_inner(id, from, timeout).await) })
    }

    fn purge_expired(&self) -> StoreFuture<'_, u64> {
        let purged = self.purge_now();
        Box::pin(async move { Ok(purged) })
    }

    fn stats(&self) -> StoreStats {
        let state = self.lock();
        StoreStats {
            messages: state.live,
            payload_bytes: state.payload_bytes,
            charged_bytes: state.charged_bytes,
            waiters: state.waiters.count(),
            expired_total: self.expired_total.load(Ordering::Relaxed),
            consumed_total: self.consumed_total.load(Ordering::Relaxed),
            index_entries: state.expiry.len() as u64,
            contested_ids: state.messages.values().filter(|s| s.live().nth(1).is_some()).count()
                as u64,
        }
    }
}
