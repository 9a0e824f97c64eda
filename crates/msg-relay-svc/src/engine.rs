//! The relay engine: publish/ask semantics, limits, and forwarding to peer relays.
//!
//! Transport-independent: the WebSocket and HTTP front ends both call [`Engine`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use msg_relay_api::{MessageId, Relay};
use tracing::{debug, error, warn};

use crate::metrics::{Metrics, Rejection};
use crate::store::{MessageStore, PutOutcome, QuotaScope, Source, StoreError, StoreQuotas};

/// How long a message fetched from a peer relay is kept here for further local receivers.
const PEER_IMPORT_TTL: Duration = Duration::from_secs(60);

/// The relay's limits. Every one of them produces a clear error when exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload accepted.
    pub max_message_bytes: usize,
    /// Longest TTL accepted.
    pub max_ttl: Duration,
    /// Bytes the store may hold (payloads plus a per-message overhead).
    pub max_total_bytes: u64,
    /// Bytes the messages published over one WebSocket connection may hold.
    pub max_bytes_per_connection: u64,
    /// Bytes the messages published from one client address may hold (all its connections
    /// and HTTP requests), so that no single client can fill the relay.
    pub max_bytes_per_address: u64,
    /// Outstanding asks one connection may have.
    pub max_asks_per_connection: usize,
    /// Outstanding *forwarded* asks one connection may have: a peer relay funnels all of its
    /// clients' asks through one connection, so it gets a larger budget.
    pub max_forwarded_asks_per_connection: usize,
    /// Longest time an ask is held without an answer before it is released with an
    /// "ask expired" error (clients ask again). Defaults to `max_ttl`: a message published
    /// later than that after the ask could not be meant for it anyway.
    pub max_wait: Duration,
    /// Longest single HTTP long-poll.
    pub max_poll: Duration,
    /// HTTP long-polls waiting at once, over all connections.
    pub max_http_waiters: usize,
}

impl Limits {
    /// The store quotas these limits describe.
    pub fn quotas(&self) -> StoreQuotas {
        StoreQuotas {
            total: self.max_total_bytes,
            per_connection: self.max_bytes_per_connection,
            per_address: self.max_bytes_per_address,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let max_ttl = Duration::from_secs(3600);
        Self {
            max_message_bytes: 1024 * 1024,
            max_ttl,
            max_total_bytes: 1024 * 1024 * 1024,
            max_bytes_per_connection: 128 * 1024 * 1024,
            max_bytes_per_address: 256 * 1024 * 1024,
            max_asks_per_connection: 1024,
            max_forwarded_asks_per_connection: 16 * 1024,
            max_wait: max_ttl,
            max_poll: Duration::from_secs(30),
            max_http_waiters: 10_000,
        }
    }
}

/// Why the engine refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Payload larger than [`Limits::max_message_bytes`].
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// TTL zero or longer than [`Limits::max_ttl`].
    #[error("TTL of {requested:?} is not within 1 ms ..= {max:?}")]
    BadTtl {
        /// Requested TTL.
        requested: Duration,
        /// The limit.
        max: Duration,
    },
    /// A different payload is stored under this id.
    #[error("message {0} already exists with a different payload")]
    Conflict(MessageId),
    /// The store is at its byte limit.
    #[error("relay full: holds {held} of {limit} bytes")]
    StoreFull {
        /// Bytes held.
        held: u64,
        /// The limit.
        limit: u64,
    },
    /// The publisher's connection or address holds as many bytes as it may.
    #[error("{scope} quota exceeded: holds {held} of {limit} bytes")]
    QuotaExceeded {
        /// Whose quota.
        scope: QuotaScope,
        /// Bytes held.
        held: u64,
        /// The quota.
        limit: u64,
    },
    /// A forwarded ask from a client that did not authenticate as a peer relay.
    #[error("forwarded asks are accepted only from authenticated peer relays")]
    ForwardNotAllowed,
    /// Too many outstanding asks on this connection (or HTTP long-polls overall).
    #[error("too many outstanding asks (limit {limit})")]
    TooManyAsks {
        /// The limit.
        limit: usize,
    },
    /// The ask was held as long as allowed without the message appearing.
    #[error("message {0} did not arrive within the wait limit")]
    WaitExpired(MessageId),
    /// The store failed; details are logged, never sent to clients.
    #[error("internal error")]
    Internal,
}

/// A count of outstanding asks with a limit (one per connection and kind of ask).
#[derive(Debug, Clone)]
pub struct AskBudget {
    outstanding: Arc<AtomicUsize>,
    limit: usize,
}

impl AskBudget {
    /// A budget of `limit` outstanding asks.
    pub fn new(limit: usize) -> Self {
        Self { outstanding: Arc::new(AtomicUsize::new(0)), limit }
    }

    /// Takes one slot, released when the permit drops.
    ///
    /// # Errors
    /// [`EngineError::TooManyAsks`] when all slots are taken.
    pub fn try_acquire(&self) -> Result<AskPermit, EngineError> {
        let taken = self.outstanding.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.limit).then_some(n + 1)
        });
        match taken {
            Ok(_) => Ok(AskPermit { outstanding: Arc::clone(&self.outstanding) }),
            Err(_) => Err(EngineError::TooManyAsks { limit: self.limit }),
        }
    }

    /// Asks currently outstanding.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }
}

/// One outstanding ask's slot in an [`AskBudget`].
#[derive(Debug)]
pub struct AskPermit {
    outstanding: Arc<AtomicUsize>,
}

impl Drop for AskPermit {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Publish/ask over a [`MessageStore`], within [`Limits`], with optional peer relays.
pub struct Engine {
    store: Arc<dyn MessageStore>,
    limits: Limits,
    peers: Vec<Arc<dyn Relay>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `store`; `peers` are asked for messages this relay does not have.
    pub fn new(store: Arc<dyn MessageStore>, limits: Limits, peers: Vec<Arc<dyn Relay>>) -> Self {
        Self { store, limits, peers, metrics: Arc::new(Metrics::default()) }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MessageStore> {
        &self.store
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Budgets for a new connection: `(own asks, forwarded asks)`.
    pub fn connection_budgets(&self) -> (AskBudget, AskBudget) {
        (
            AskBudget::new(self.limits.max_asks_per_connection),
            AskBudget::new(self.limits.max_forwarded_asks_per_connection),
        )
    }

    /// Checks a publish against the limits without storing it.
    ///
    /// # Errors
    /// [`EngineError::TooLarge`] or [`EngineError::BadTtl`].
    pub fn check_publish(&self, size: usize, ttl: Duration) -> Result<(), EngineError> {
        if size > self.limits.max_message_bytes {
            self.metrics.reject(Rejection::TooLarge);
            return Err(EngineError::TooLarge { size, max: self.limits.max_message_bytes });
        }
        if ttl.is_zero() || ttl > self.limits.max_ttl {
            self.metrics.reject(Rejection::BadTtl);
            return Err(EngineError::BadTtl { requested: ttl, max: self.limits.max_ttl });
        }
        Ok(())
    }

    /// Stores a message for `readers` receivers (0: unknown, kept for the whole TTL), as if
    /// published in-process ([`Source::LOCAL`]).
    ///
    /// # Errors
    /// As [`Engine::publish_from`].
    pub async fn publish(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> Result<PutOutcome, EngineError> {
        self.publish_from(Source::LOCAL, id, ttl, readers, payload).await
    }

    /// Stores `source`'s candidate under `id` for `readers` receivers (0: unknown, kept for
    /// the whole TTL).
    ///
    /// # Errors
    /// A limit error, [`EngineError::Conflict`] when this source already placed a different
    /// payload under the id, [`EngineError::StoreFull`], [`EngineError::QuotaExceeded`], or
    /// [`EngineError::Internal`].
    pub async fn publish_from(
        &self,
        source: Source,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Bytes,
    ) -> Result<PutOutcome, EngineError> {
        self.check_publish(payload.len(), ttl)?;
        let size = payload.len();
        match self.store.put(id, source, ttl, readers, payload).await {
            Ok(outcome) => {
                self.metrics.published(outcome, size);
                Ok(outcome)
            }
            Err(StoreError::Conflict(id)) => {
                warn!(%id, "conflicting publish rejected (possible equivocation)");
                self.metrics.reject(Rejection::Conflict);
                Err(EngineError::Conflict(id))
            }
            Err(StoreError::Full { held, limit }) => {
                warn!(held, limit, "publish rejected: relay full");
                self.metrics.reject(Rejection::StoreFull);
                Err(EngineError::StoreFull { held, limit })
            }
            Err(StoreError::Quota { scope, held, limit }) => {
                warn!(%scope, addr = %source.addr, held, limit, "publish rejected: quota");
                self.metrics.reject(Rejection::Quota);
                Err(EngineError::QuotaExceeded { scope, held, limit })
            }
            Err(e) => {
                error!(error = %e, "store failed on publish");
                Err(EngineError::Internal)
            }
        }
    }

    /// Waits up to `wait` (capped at [`Limits::max_wait`]) for message `id` (its first
    /// candidate); see [`Engine::ask_from`].
    ///
    /// # Errors
    /// As [`Engine::ask_from`].
    pub async fn ask(
        &self,
        permit: AskPermit,
        id: MessageId,
        wait: Duration,
        forward: bool,
    ) -> Result<Bytes, EngineError> {
        self.ask_from(permit, id, 0, wait, forward).await.map(|(_, payload)| payload)
    }

    /// Waits up to `wait` (capped at [`Limits::max_wait`]) for a candidate under `id`
    /// numbered `from` or later: (its number, payload).
    ///
    /// When `forward` is set and no such candidate is here, configured peer relays are asked
    /// too: what they hold is stored here as further candidates (so numbers stay this relay's)
    /// and answers the ask. Callers pass `forward = false` for asks that were themselves
    /// forwarded, so asks never travel more than one hop.
    ///
    /// # Errors
    /// [`EngineError::WaitExpired`] when the time ran out, [`EngineError::Internal`].
    pub async fn ask_from(
        &self,
        _permit: AskPermit,
        id: MessageId,
        from: u16,
        wait: Duration,
        forward: bool,
    ) -> Result<(u16, Bytes), EngineError> {
        let wait = wait.min(self.limits.max_wait);
        let store_error = |e: StoreError| {
            error!(error = %e, "store failed on ask");
            EngineError::Internal
        };
        // `wait` answers at once when the message is here (one round trip on a shared store).
        let local = self.store.wait(id, from, wait);
        let found = if forward && !self.peers.is_empty() {
            tokio::select! {
                // Local first: peers are asked only when the message is not here yet.
                biased;
                found = local => found.map_err(store_error)?,
                never = self.import_from_peers(id) => match never {},
            }
        } else {
            local.await.map_err(store_error)?
        };
        match found {
            Some(found) => {
                self.metrics.delivered();
                Ok(found)
            }
            None => {
                self.metrics.ask_expired();
                Err(EngineError::WaitExpired(id))
            }
        }
    }

    /// Walks every peer's candidates under `id` and stores each here (an identical payload
    /// is a duplicate and adds nothing), which wakes the local waiters. Runs until dropped.
    async fn import_from_peers(&self, id: MessageId) -> std::convert::Infallible {
        self.metrics.peer_forward();
        let walks: FuturesUnordered<_> =
            self.peers.iter().enumerate().map(|(p, peer)| self.walk_peer(p, peer, id)).collect();
        walks.collect::<Vec<()>>().await;
        std::future::pending().await
    }

    async fn walk_peer(&self, p: usize, peer: &Arc<dyn Relay>, id: MessageId) {
        // Each peer's imports are charged to a source of their own.
        let source = Source {
            addr: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            conn: u64::MAX - p as u64,
        };
        let mut from = 0u16;
        loop {
            match peer.ask_candidate(id, from).await {
                Ok((n, payload)) => {
                    debug!(%id, candidate = n, "message served by a peer relay");
                    self.metrics.peer_hit();
                    let imported =
                        self.store.put(id, source, PEER_IMPORT_TTL, 0, Bytes::from(payload)).await;
                    if let Err(e) = imported {
                        debug!(%id, error = %e, "message from a peer relay not stored");
                    }
                    let Some(next) = n.checked_add(1) else { return };
                    from = next;
                }
                Err(e) => {
                    debug!(%id, error = %e, "peer relay ask failed");
                    return;
                }
            }
        }
    }

    /// Receiver `reader` has candidate 0 of `id`; see [`Engine::consume_candidate`].
    ///
    /// # Errors
    /// [`EngineError::Internal`] when the store fails.
    pub async fn consume(&self, id: MessageId, reader: u16) -> Result<(), EngineError> {
        self.consume_candidate(id, 0, reader).await
    }

    /// Receiver `reader` has candidate `candidate` of `id`: drops that candidate once all its
    /// readers have it.
    ///
    /// # Errors
    /// [`EngineError::Internal`] when the store fails.
    pub async fn consume_candidate(
        &self,
        id: MessageId,
        candidate: u16,
        reader: u16,
    ) -> Result<(), EngineError> {
        match self.store.consume(id, candidate, reader).await {
            Ok(removed) => {
                if removed {
                    debug!(%id, "message consumed by all its readers");
                }
                Ok(())
            }
            Err(e) => {
                error!(error = %e, "store failed on consume");
                Err(EngineError::Internal)
            }
        }
    }

    /// Removes expired messages.
    pub async fn purge_expired(&self) {
        if let Err(e) = self.store.purge_expired().await {
            error!(error = %e, "store failed to purge expired messages");
        }
    }
}
