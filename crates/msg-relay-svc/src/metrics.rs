//! The relay's counters and gauges, encoded with the store's figures by `prometheus-client`
//! (OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

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
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The relay's counters (the store's own figures are added when rendering).
#[derive(Debug)]
pub struct Metrics {
    published: Counter,
    published_bytes: Counter,
    duplicates: Counter,
    delivered: Counter,
    asks_expired: Counter,
    peer_forwards: Counter,
    peer_hits: Counter,
    rejections: Family<ReasonLabel, Counter>,
    ws_connections: Gauge,
    http_waiters: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let rejections = Family::<ReasonLabel, Counter>::default();
        // Every reason is shown, at 0 until it happens.
        for why in Rejection::ALL {
            let _ = rejections.get_or_create(&ReasonLabel { reason: why.label() });
        }
        Self {
            published: Counter::default(),
            published_bytes: Counter::default(),
            duplicates: Counter::default(),
            delivered: Counter::default(),
            asks_expired: Counter::default(),
            peer_forwards: Counter::default(),
            peer_hits: Counter::default(),
            rejections,
            ws_connections: Gauge::default(),
            http_waiters: Gauge::default(),
        }
    }
}

/// Decrements a gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn gauge(v: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Metrics {
    pub(crate) fn published(&self, outcome: PutOutcome, size: usize) {
        match outcome {
            PutOutcome::Stored => {
                self.published.inc();
                self.published_bytes.inc_by(u64::try_from(size).unwrap_or(u64::MAX));
            }
            PutOutcome::Duplicate => {
                self.duplicates.inc();
            }
        }
    }

    pub(crate) fn delivered(&self) {
        self.delivered.inc();
    }

    pub(crate) fn ask_expired(&self) {
        self.asks_expired.inc();
    }

    pub(crate) fn peer_forward(&self) {
        self.peer_forwards.inc();
    }

    pub(crate) fn peer_hit(&self) {
        self.peer_hits.inc();
    }

    /// Counts a rejected request.
    pub fn reject(&self, why: Rejection) {
        self.rejections.get_or_create(&ReasonLabel { reason: why.label() }).inc();
    }

    /// Counts an open WebSocket connection until the guard drops.
    pub fn ws_connection(&self) -> GaugeGuard {
        self.ws_connections.inc();
        GaugeGuard(self.ws_connections.clone())
    }

    /// Counts a waiting HTTP long-poll until the guard drops.
    pub fn http_waiter(&self) -> GaugeGuard {
        self.http_waiters.inc();
        GaugeGuard(self.http_waiters.clone())
    }

    /// Waiting HTTP long-polls.
    pub fn http_waiters(&self) -> u64 {
        u64::try_from(self.http_waiters.get()).unwrap_or(0)
    }

    /// Renders everything (with the store's figures `store`) as OpenMetrics text
    /// ([`CONTENT_TYPE`]), encoded by `prometheus-client`.
    pub fn render(&self, store: &StoreStats) -> String {
        let mut r = Registry::default();
        r.register("relay_messages", "Messages held", gauge(store.messages));
        r.register("relay_bytes", "Payload bytes held", gauge(store.payload_bytes));
        r.register(
            "relay_charged_bytes",
            "Bytes charged against the store limit (payload plus per-message overhead)",
            gauge(store.charged_bytes),
        );
        r.register("relay_waiters", "Asks waiting for a message", gauge(store.waiters));
        r.register(
            "relay_expirations",
            "Messages removed because their TTL ran out",
            ConstCounter::new(store.expired_total),
        );
        r.register(
            "relay_consumed",
            "Messages removed because every announced reader consumed them",
            ConstCounter::new(store.consumed_total),
        );
        r.register(
            "relay_contested_ids",
            "Message ids holding more than one candidate (someone published under another party's id)",
            gauge(store.contested_ids),
        );
        r.register("relay_published", "New messages stored", self.published.clone());
        r.register(
            "relay_published_bytes",
            "Payload bytes of new messages stored",
            self.published_bytes.clone(),
        );
        r.register(
            "relay_duplicate_publishes",
            "Identical re-publishes (idempotent)",
            self.duplicates.clone(),
        );
        r.register("relay_delivered", "Asks answered", self.delivered.clone());
        r.register(
            "relay_asks_expired",
            "Asks released unanswered at the wait limit",
            self.asks_expired.clone(),
        );
        r.register(
            "relay_peer_forwards",
            "Asks forwarded to peer relays",
            self.peer_forwards.clone(),
        );
        r.register("relay_peer_hits", "Asks answered by a peer relay", self.peer_hits.clone());
        r.register(
            "relay_ws_connections",
            "Open WebSocket connections",
            self.ws_connections.clone(),
        );
        r.register("relay_http_waiters", "Waiting HTTP long-polls", self.http_waiters.clone());
        r.register("relay_rejections", "Requests rejected, by reason", self.rejections.clone());
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
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
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }
}
