//! A [`MessageStore`] on Redis, so that several relay processes act as one relay.
//!
//! Every replica connects to the same Redis (standalone or behind Sentinel; not Cluster) with
//! the same key prefix. Each operation is one Lua script, so the rules of the memory store
//! hold across replicas atomically: one candidate per source and id, identical payloads are
//! duplicates, the byte limits count what *all* replicas hold, a candidate goes once its
//! announced readers consumed it, and expiry removes it (purged by every replica's sweeper;
//! the scripts read the Redis server's clock, so replicas' clocks do not matter).
//!
//! Waiting asks are woken through pub/sub: every put publishes the id and candidate number
//! (with the payload when it is small) on one channel, which every replica listens to and
//! matches against its own waiters. While that subscription is down (Redis restarting), waiters
//! fall back to polling, and all of them look again once it is back, so nothing is missed.
//!
//! Keys carry no Redis TTL; configure Redis with `maxmemory-policy noeviction` (the relay's
//! own limits bound what it holds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use msg_relay_api::MessageId;
use redis::aio::ConnectionManager;
use redis::{Client, Script};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::store::{
    MessageStore, PER_MESSAGE_OVERHEAD, PutOutcome, QuotaScope, Source, StoreError, StoreFuture,
    StoreQuotas, StoreStats,
};

/// Payloads up to this size travel with the wake-up, so a woken waiter needs no round trip.
const INLINE_MAX: usize = 16 * 1024;
/// How long a waiter sleeps between looks when no wake-up comes (a safety net; wake-ups are
/// the normal path).
const POLL_FALLBACK: Duration = Duration::from_secs(2);
/// Expiry-index entries looked at per purge script call.
const PURGE_BATCH: u32 = 1000;
/// Time to connect to Redis and to get an answer to one command.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

const COMMON: &str = include_str!("redis_store/common.lua");

/// Settings of a [`RedisStore`].
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` (or `rediss://` when the client was built with
    /// TLS; this build speaks plain TCP: keep Redis on a private network or loopback).
    pub url: String,
    /// Prefix of every key and of the wake-up channel: replicas of one relay share it,
    /// different relays on one Redis use different ones.
    pub prefix: String,
    /// Byte limits, enforced over all replicas.
    pub quotas: StoreQuotas,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted_url(&self.url))
            .field("prefix", &self.prefix)
            .field("quotas", &self.quotas)
            .finish()
    }
}

/// `url` without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", url.get(..scheme).unwrap_or(""), url.get(at + 1..).unwrap_or(""))
        }
        _ => url.to_owned(),
    }
}

struct Scripts {
    put: Script,
    get: Script,
    consume: Script,
    purge: Script,
    stats: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_common = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            put: with_common(include_str!("redis_store/put.lua")),
            get: with_common(include_str!("redis_store/get.lua")),
            consume: with_common(include_str!("redis_store/consume.lua")),
            purge: with_common(include_str!("redis_store/purge.lua")),
            stats: with_common(include_str!("redis_store/stats.lua")),
        }
    }
}

/// What a woken waiter receives: the candidate when the wake-up carried it, or `None`: look.
type Wake = Option<(u16, Bytes)>;

/// This replica's waiting asks.
type Waiters = crate::store::Waiters<mpsc::Sender<Wake>>;

fn wake(waiters: &Waiters, id: &MessageId, number: u16, payload: Option<&Bytes>) {
    waiters.each_accepting(id, number, |tx| {
        // A full channel already holds a wake-up: the waiter looks anyway.
        let _ = tx.try_send(payload.map(|p| (number, p.clone())));
    });
}

fn wake_all(waiters: &Waiters) {
    waiters.each(|tx| {
        let _ = tx.try_send(None);
    });
}

fn lock(waiters: &Mutex<Waiters>) -> std::sync::MutexGuard<'_, Waiters> {
    // Nothing panics while holding it and every statement leaves the map consistent.
    waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The Redis-backed store (see the module documentation).
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Scripts,
    prefix: String,
    /// This replica's number (from a Redis counter), so connection quotas of different
    /// replicas never share a field.
    replica: u64,
    quotas: StoreQuotas,
    waiters: Arc<Mutex<Waiters>>,
    next_waiter: AtomicU64,
    /// The figures of the last [`MessageStore::current_stats`] or purge (for `stats`).
    last_stats: Mutex<StoreStats>,
    listener: JoinHandle<()>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("replica", &self.replica)
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn backend(what: &str) -> impl Fn(redis::RedisError) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("redis {what}: {e}"))
}

/// A source as the scripts compare it: an HTTP client is its address on every replica; a
/// WebSocket connection is unique to the replica that holds it.
fn source_tag(replica: u64, source: Source) -> String {
    if source.conn == 0 {
        format!("{}/http", source.addr)
    } else {
        format!("{}/{replica}:{}", source.addr, source.conn)
    }
}

fn hex_id(id: &MessageId) -> String {
    hex::encode(id.0)
}

impl RedisStore {
    /// Connects to Redis, subscribes to the wake-up channel and registers this replica.
    /// Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming what failed (the URL's password is never included).
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let shown = redacted_url(&config.url);
        let invalid =
            |e: redis::RedisError| StoreError::Backend(format!("invalid Redis URL {shown}: {e}"));
        // Requests are small and latency-bound: no Nagle delay.
        let info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(invalid)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = Client::open(info).map_err(invalid)?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let mut conn = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| StoreError::Backend(format!("cannot reach Redis at {shown}: timed out")))?
        .map_err(|e| StoreError::Backend(format!("cannot reach Redis at {shown}: {e}")))?;
        let replica: u64 = redis::cmd("INCR")
            .arg(format!("{}replicas", config.prefix))
            .query_async(&mut conn)
            .await
            .map_err(backend("register replica"))?;
        let scripts = Scripts::new();
        for script in [&scripts.put, &scripts.get, &scripts.consume, &scripts.purge, &scripts.stats]
        {
            script.prepare_invoke().load_async(&mut conn).await.map_err(backend("load script"))?;
        }
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let (ready_tx, ready_rx) = oneshot::channel();
        let channel = format!("{}wake", config.prefix);
        let listener =
            tokio::spawn(listen(client, channel, Arc::downgrade(&waiters), Some(ready_tx)));
        match tokio::time::timeout(REDIS_TIMEOUT * 2, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                listener.abort();
                return Err(StoreError::Backend(format!("cannot subscribe at {shown}: {e}")));
            }
            Ok(Err(_)) | Err(_) => {
                listener.abort();
                return Err(StoreError::Backend(format!("cannot subscribe at {shown}")));
            }
        }
        info!(redis = %shown, prefix = %config.prefix, replica, "Redis message store ready");
        Ok(Self {
            conn,
            scripts,
            prefix: config.prefix,
            replica,
            quotas: config.quotas,
            waiters,
            next_waiter: AtomicU64::new(0),
            last_stats: Mutex::new(StoreStats::default()),
            listener,
        })
    }

    fn message_key(&self, id: &MessageId) -> String {
        format!("{}m:{}", self.prefix, hex_id(id))
    }

    async fn put_inner(
        &self,
        id: MessageId,
        source: Source,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> Result<PutOutcome, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let conn_field = if source.conn == 0 {
            String::new()
        } else {
            format!("{}:{}", self.replica, source.conn)
        };
        let mut conn = self.conn.clone();
        let answer: Vec<u64> = self
            .scripts
            .put
            .key(self.message_key(&id))
            .arg(&self.prefix)
            .arg(hex_id(&id))
            .arg(&id.0[..])
            .arg(source_tag(self.replica, source))
            .arg(ttl_ms)
            .arg(readers)
            .arg(payload.as_ref())
            .arg(source.addr.to_string())
            .arg(conn_field)
            .arg(self.quotas.total)
            .arg(self.quotas.per_connection)
            .arg(self.quotas.per_address)
            .arg(PER_MESSAGE_OVERHEAD)
            .arg(INLINE_MAX)
            .invoke_async(&mut conn)
            .await
            .map_err(backend("put"))?;
        let field = |n: usize| answer.get(n).copied().unwrap_or(0);
        match field(0) {
            0 => Ok(PutOutcome::Stored),
            1 => Ok(PutOutcome::Duplicate),
            2 => Err(StoreError::Conflict(id)),
            3 => Err(StoreError::Full { held: field(1), limit: field(2) }),
            4 => Err(StoreError::Quota {
                scope: QuotaScope::Connection,
                held: field(1),
                limit: field(2),
            }),
            5 => Err(StoreError::Quota {
                scope: QuotaScope::Address,
                held: field(1),
                limit: field(2),
            }),
            other => Err(StoreError::Backend(format!("redis put: unexpected answer {other}"))),
        }
    }

    async fn get_inner(
        &self,
        id: MessageId,
        from: u16,
    ) -> Result<Option<(u16, Bytes)>, StoreError> {
        let mut conn = self.conn.clone();
        let found: Option<(u16, Vec<u8>)> = self
            .scripts
            .get
            .key(self.message_key(&id))
            .arg(from)
            .invoke_async(&mut conn)
            .await
            .map_err(backend("get"))?;
        Ok(found.map(|(n, payload)| (n, Bytes::from(payload))))
    }

    async fn wait_inner(
        &self,
        id: MessageId,
        from: u16,
        timeout: Duration,
    ) -> Result<Option<(u16, Bytes)>, StoreError> {
        let deadline = Instant::now() + timeout;
        // Registered before the first look, so a put between the look and the wait still
        // wakes this waiter.
        let (tx, mut rx) = mpsc::channel(1);
        let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        {
            lock(&self.waiters).add(id, waiter, from, tx);
        }
        let _guard = WaiterGuard { waiters: &self.waiters, id, waiter };
        loop {
            if let Some(found) = self.get_inner(id, from).await? {
                return Ok(Some(found));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let until = deadline.min(now + POLL_FALLBACK);
            if let Ok(Some(Some(found))) = tokio::time::timeout_at(until, rx.recv()).await {
                return Ok(Some(found));
            }
            // A wake-up without the payload, the fallback poll, or the deadline: look again
            // (the loop ends at the deadline after one last look).
        }
    }

    async fn consume_inner(&self, id: MessageId, n: u16, reader: u16) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: u8 = self
            .scripts
            .consume
            .key(self.message_key(&id))
            .arg(&self.prefix)
            .arg(hex_id(&id))
            .arg(n)
            .arg(reader)
            .invoke_async(&mut conn)
            .await
            .map_err(backend("consume"))?;
        Ok(removed == 1)
    }

    async fn purge_inner(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let mut purged = 0u64;
        loop {
            let (removed, looked): (u64, u64) = self
                .scripts
                .purge
                .arg(&self.prefix)
                .arg(PURGE_BATCH)
                .invoke_async(&mut conn)
                .await
                .map_err(backend("purge"))?;
            purged = purged.saturating_add(removed);
            if looked < u64::from(PURGE_BATCH) {
                break;
            }
        }
        // Keeps `stats()` (synchronous) within a sweep interval of the truth.
        self.stats_inner().await?;
        Ok(purged)
    }

    async fn stats_inner(&self) -> Result<StoreStats, StoreError> {
        let mut conn = self.conn.clone();
        let f: Vec<i64> = self
            .scripts
            .stats
            .arg(&self.prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(backend("stats"))?;
        let at = |n: usize| u64::try_from(f.get(n).copied().unwrap_or(0)).unwrap_or(0);
        let (messages, charged) = (at(0), at(1));
        let stats = StoreStats {
            messages,
            // Every message is charged its payload plus the fixed overhead.
            payload_bytes: charged.saturating_sub(messages.saturating_mul(PER_MESSAGE_OVERHEAD)),
            charged_bytes: charged,
            waiters: lock(&self.waiters).count(),
            expired_total: at(2),
            consumed_total: at(3),
            // The index holds exactly the live candidates.
            index_entries: messages,
            contested_ids: at(4),
        };
        *self.last_stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stats;
        Ok(stats)
    }
}

/// Withdraws a waiter when its ask ends for any reason.
struct WaiterGuard<'a> {
    waiters: &'a Mutex<Waiters>,
    id: MessageId,
    waiter: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        lock(self.waiters).withdraw(&self.id, self.waiter);
    }
}

/// Parses a wake-up: 32-byte id, 2-byte candidate number, a flag, and the payload if flagged.
fn parse_wake(raw: &[u8]) -> Option<(MessageId, u16, Option<Bytes>)> {
    let id: [u8; 32] = raw.get(..32)?.try_into().ok()?;
    let number = u16::from_be_bytes(raw.get(32..34)?.try_into().ok()?);
    let payload = match raw.get(34)? {
        0 => None,
        1 => Some(Bytes::copy_from_slice(raw.get(35..)?)),
        _ => return None,
    };
    Some((MessageId(id), number, payload))
}

/// Listens for wake-ups until the store is dropped, resubscribing after connection losses
/// (and then waking every waiter: wake-ups sent meanwhile were lost).
async fn listen(
    client: Client,
    channel: String,
    waiters: Weak<Mutex<Waiters>>,
    mut ready: Option<oneshot::Sender<Result<(), String>>>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(REDIS_TIMEOUT, subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(error));
                    return;
                }
                warn!(error = %error, "Redis wake-up channel down; waiters poll meanwhile");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        delay = Duration::from_millis(100);
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                info!("Redis wake-up channel back");
                let Some(waiters) = waiters.upgrade() else { return };
                wake_all(&lock(&waiters));
            }
        }
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Some(waiters) = waiters.upgrade() else { return };
            match parse_wake(message.get_payload_bytes()) {
                Some((id, number, payload)) => wake(&lock(&waiters), &id, number, payload.as_ref()),
                None => warn!("malformed wake-up on the Redis channel ignored"),
            }
        }
        warn!("Redis wake-up channel closed; reconnecting");
    }
}

impl MessageStore for RedisStore {
    fn put(
        &self,
        id: MessageId,
        source: Source,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> StoreFuture<'_, PutOutcome> {
        Box::pin(self.put_inner(id, source, ttl, readers, payload))
    }

    fn consume(&self, id: MessageId, candidate: u16, reader: u16) -> StoreFuture<'_, bool> {
        Box::pin(self.consume_inner(id, candidate, reader))
    }

    fn get(&self, id: MessageId, from: u16) -> StoreFuture<'_, Option<(u16, Bytes)>> {
        Box::pin(self.get_inner(id, from))
    }

    fn wait(
        &self,
        id: MessageId,
        from: u16,
        timeout: Duration,
    ) -> StoreFuture<'_, Option<(u16, Bytes)>> {
        Box::pin(self.wait_inner(id, from, timeout))
    }

    fn purge_expired(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.purge_inner())
    }

    fn stats(&self) -> StoreStats {
        let mut stats = *self.last_stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        stats.waiters = lock(&self.waiters).count();
        stats
    }

    fn current_stats(&self) -> StoreFuture<'_, StoreStats> {
        Box::pin(self.stats_inner())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(redacted_url("redis://:secret@10.0.0.1:6379/0"), "redis://***@10.0.0.1:6379/0");
        assert_eq!(redacted_url("redis://user:p@ss@h:1"), "redis://***@h:1");
        assert_eq!(redacted_url("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn wake_ups_parse_or_are_refused() {
        let mut raw = vec![7u8; 32];
        raw.extend_from_slice(&[0, 3, 1]);
        raw.extend_from_slice(b"hi");
        let (id, n, payload) = parse_wake(&raw).unwrap_or_else(|| unreachable!());
        assert_eq!((id, n, payload.as_deref()), (MessageId([7; 32]), 3, Some(&b"hi"[..])));
        assert!(parse_wake(&raw[..34]).is_none());
        raw[34] = 9;
        assert!(parse_wake(&raw).is_none());
        raw[34] = 0;
        assert_eq!(parse_wake(&raw[..35]).map(|w| w.2), Some(None));
    }
}
