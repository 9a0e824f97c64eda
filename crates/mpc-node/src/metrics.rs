//! The node's Prometheus metrics, kept and encoded by `prometheus-client` (OpenMetrics text):
//! sessions by protocol and outcome, session latency, round latency (fed by the runner's
//! [`RoundObserver`] hook), relay errors, bans, sessions in flight, error responses.

use std::time::Duration;

use dkls23_runner::{RoundEvent, RoundObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    protocol: &'static str,
    round: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    sessions: Family<SessionLabels, Counter>,
    latency: HistogramFamily<ProtocolLabel>,
    rounds: HistogramFamily<RoundLabels>,
    relay_errors: Counter,
    bans: Counter,
    in_flight: Gauge,
    http_errors: Family<StatusLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let sessions = Family::<SessionLabels, Counter>::default();
        registry.register(
            "mpc_node_sessions",
            "Protocol sessions by protocol and outcome",
            sessions.clone(),
        );
        let latency: HistogramFamily<ProtocolLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "mpc_node_session_seconds",
            "Wall time of protocol sessions",
            latency.clone(),
        );
        let rounds: HistogramFamily<RoundLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "mpc_node_round_seconds",
            "Time of one protocol round: sending its messages and collecting every peer's",
            rounds.clone(),
        );
        let relay_errors = Counter::default();
        registry.register(
            "mpc_node_relay_errors",
            "Sessions failed by the relay transport",
            relay_errors.clone(),
        );
        let bans = Counter::default();
        registry.register(
            "mpc_node_bans",
            "Parties banned after a failed OT/RVOLE check",
            bans.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "mpc_node_sessions_in_flight",
            "Protocol sessions running now",
            in_flight.clone(),
        );
        let http_errors = Family::<StatusLabel, Counter>::default();
        registry.register("mpc_node_http_errors", "Error responses by status", http_errors.clone());
        Self { registry, sessions, latency, rounds, relay_errors, bans, in_flight, http_errors }
    }
}

impl Metrics {
    /// Records a finished session.
    pub fn session(&self, protocol: &'static str, outcome: &'static str, took: Duration) {
        self.sessions.get_or_create(&SessionLabels { protocol, outcome }).inc();
        self.latency.get_or_create(&ProtocolLabel { protocol }).observe(took.as_secs_f64());
    }

    /// Records one completed protocol round (its send and collect time).
    pub fn round(&self, protocol: &'static str, round: u16, took: Duration) {
        self.rounds.get_or_create(&RoundLabels { protocol, round }).observe(took.as_secs_f64());
    }

    /// Counts a relay (transport) failure.
    pub fn relay_error(&self) {
        self.relay_errors.inc();
    }

    /// Counts a recorded ban.
    pub fn ban(&self) {
        self.bans.inc();
    }

    /// Adjusts the number of sessions in flight.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// Counts an error response.
    pub fn http_error(&self, status: u16) {
        self.http_errors.get_or_create(&StatusLabel { status }).inc();
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The node passes its metrics as the runner's observer (see `Node::run_options`).
impl RoundObserver for Metrics {
    fn round_done(&self, ev: &RoundEvent) {
        self.round(ev.protocol.name(), ev.round, ev.elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_histogram_renders_per_protocol_and_round() {
        let m = Metrics::default();
        m.round("sign", 1, Duration::from_millis(3));
        m.round("sign", 1, Duration::from_millis(70));
        m.round("dkg", 4, Duration::from_secs(40));
        m.session("sign", "ok", Duration::from_millis(80));
        m.http_error(404);
        m.in_flight(2);
        m.in_flight(-1);
        let text = m.render();
        for line in [
            "# TYPE mpc_node_round_seconds histogram",
            "mpc_node_round_seconds_bucket{le=\"0.005\",protocol=\"sign\",round=\"1\"} 1",
            "mpc_node_round_seconds_bucket{le=\"0.1\",protocol=\"sign\",round=\"1\"} 2",
            "mpc_node_round_seconds_bucket{le=\"+Inf\",protocol=\"sign\",round=\"1\"} 2",
            "mpc_node_round_seconds_count{protocol=\"sign\",round=\"1\"} 2",
            "mpc_node_round_seconds_bucket{le=\"30.0\",protocol=\"dkg\",round=\"4\"} 0",
            "mpc_node_round_seconds_count{protocol=\"dkg\",round=\"4\"} 1",
            "mpc_node_sessions_total{protocol=\"sign\",outcome=\"ok\"} 1",
            "mpc_node_http_errors_total{status=\"404\"} 1",
            "mpc_node_sessions_in_flight 1",
            "mpc_node_bans_total 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
