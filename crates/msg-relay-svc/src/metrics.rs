//! Counters and a small hand-written Prometheus text exposition (format 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{PutOutcome, StoreStats};

/// Why a request was rejected (a label of `relay_rejections_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Payload over the size limit.
    TooLarge,
    /// TTL zero or over the limit.
    BadTtl,
    /// Different payload under an existing id.
    Conflict,
    /// Store at its byte limit.
    StoreFull,
    /// Too many outstanding asks.
    TooManyAsks,
    /// Undecodable frame or request.
    Malformed,
    /// The publisher's connection or address quota is used up.
    Quota,
    /// A forwarded ask from a client that is not an authenticated peer relay.
    Forbidden,
}

impl Rejection {
    const ALL: [Rejection; 8] = [
        Rejection::TooLarge,
        Rejection::BadTtl,
        Rejection::Conflict,
        Rejection::StoreFull,
        Rejection::TooManyAsks,
        Rejection::Malformed,
        Rejection::Quota,
        Rejection::Forbidden,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejection::TooLarge => "too_large",
            Rejection::BadTtl => "bad_ttl",
            Rejection::Conflict => "conflict",
            Rejection::StoreFull => "store_full",
            Rejection::TooManyAsks => "too_many_asks",
            Rejection::Malformed => "malformed",
            Rejection::Quota => "quota",
            Rejection::Forbidden => "forbidden",
        }
    }

    fn slot(self) -> usize {
        match self {
            Rejection::TooLarge => 0,
            Rejection::BadTtl => 1,
            Rejection::Conflict => 2,
            Rejection::StoreFull => 3,
            Rejection::TooManyAsks => 4,
            Rejection::Malformed => 5,
            Rejection::Quota => 6,
            Rejection::Forbidden => 7,
        }
    }
}

/// The relay's counters (the store's own figures are added when rendering).
#[derive(Debug, Default)]
pub struct Metrics {
    published: AtomicU64,
    published_bytes: AtomicU64,
    duplicates: AtomicU64,
    delivered: AtomicU64,
    asks_expired: AtomicU64,
    peer_forwards: AtomicU64,
    peer_hits: AtomicU64,
    rejections: [AtomicU64; 8],
    ws_connections: AtomicU64,
    http_waiters: AtomicU64,
}

/// Decrements a gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicU64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub(crate) fn published(&self, outcome: PutOutcome, size: usize) {
        match outcome {
            PutOutcome::Stored => {
                self.published.fetch_add(1, Ordering::Relaxed);
                self.published_bytes
                    .fetch_add(u64::try_from(size).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            PutOutcome::Duplicate => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ask_expired(&self) {
        self.asks_expired.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn peer_forward(&self) {
        self.peer_forwards.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn peer_hit(&self) {
        self.peer_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejected request.
    pub fn reject(&self, why: Rejection) {
        if let Some(counter) = self.rejections.get(why.slot()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an open WebSocket connection until the guard drops.
    pub fn ws_connection(&self) -> GaugeGuard<'_> {
        self.ws_connections.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(&self.ws_connections)
    }

    /// Counts a waiting HTTP long-poll until the guard drops.
    pub fn http_waiter(&self) -> GaugeGuard<'_> {
        self.http_waiters.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(&self.http_waiters)
    }

    /// Waiting HTTP long-polls.
    pub fn http_waiters(&self) -> u64 {
        self.http_waiters.load(Ordering::Relaxed)
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self, store: &StoreStats) -> String {
        let mut out = String::with_capacity(2048);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric("relay_messages", "gauge", "Messages held.", store.messages);
        metric("relay_bytes", "gauge", "Payload bytes held.", store.payload_bytes);
        metric(
            "relay_charged_bytes",
            "gauge",
            "Bytes charged against the store limit (payload plus per-message overhead).",
            store.charged_bytes,
        );
        metric("relay_waiters", "gauge", "Asks waiting for a message.", store.waiters);
        metric(
            "relay_expirations_total",
            "counter",
            "Messages removed because their TTL ran out.",
            store.expired_total,
        );
        metric(
            "relay_consumed_total",
            "counter",
            "Messages removed because every announced reader consumed them.",
            store.consumed_total,
        );
        metric(
            "relay_contested_ids",
            "gauge",
            "Message ids holding more than one candidate (someone published under another party's id).",
            store.contested_ids,
        );
        metric("relay_published_total", "counter", "New messages stored.", get(&self.published));
        metric(
            "relay_published_bytes_total",
            "counter",
            "Payload bytes of new messages stored.",
            get(&self.published_bytes),
        );
        metric(
            "relay_duplicate_publishes_total",
            "counter",
            "Identical re-publishes (idempotent).",
            get(&self.duplicates),
        );
        metric("relay_delivered_total", "counter", "Asks answered.", get(&self.delivered));
        metric(
            "relay_asks_expired_total",
            "counter",
            "Asks released unanswered at the wait limit.",
            get(&self.asks_expired),
        );
        metric(
            "relay_peer_forwards_total",
            "counter",
            "Asks forwarded to peer relays.",
            get(&self.peer_forwards),
        );
        metric(
            "relay_peer_hits_total",
            "counter",
            "Asks answered by a peer relay.",
            get(&self.peer_hits),
        );
        metric(
            "relay_ws_connections",
            "gauge",
            "Open WebSocket connections.",
            get(&self.ws_connections),
        );
        metric("relay_http_waiters", "gauge", "Waiting HTTP long-polls.", get(&self.http_waiters));
        let _ = writeln!(
            out,
            "# HELP relay_rejections_total Requests rejected, by reason.\n\
             # TYPE relay_rejections_total counter"
        );
        for why in Rejection::ALL {
            let value = self.rejections.get(why.slot()).map_or(0, get);
            let _ = writeln!(out, "relay_rejections_total{{reason=\"{}\"}} {value}", why.label());
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::default();
        m.reject(Rejection::Conflict);
        m.published(PutOutcome::Stored, 10);
        let text = m.render(&StoreStats { messages: 3, ..StoreStats::default() });
        assert!(text.contains("relay_messages 3\n"));
        assert!(text.contains("relay_published_bytes_total 10\n"));
        assert!(text.contains("relay_rejections_total{reason=\"conflict\"} 1\n"));
        assert!(text.contains("# TYPE relay_waiters gauge\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }
}
