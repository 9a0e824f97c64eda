//! A small Prometheus registry (text format 0.0.4): sessions by protocol and outcome, session
//! latency, round latency (fed by the runner's [`RoundObserver`] hook), relay errors, bans,
//! sessions in flight.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use dkls23_runner::{RoundEvent, RoundObserver};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        for (b, c) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if secs <= *b {
                *c += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name`; `labels` is `k="v",…`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (b, c) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The node's metrics.
#[derive(Default)]
pub struct Metrics {
    sessions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    rounds: Mutex<BTreeMap<(&'static str, u16), Histogram>>,
    relay_errors: AtomicU64,
    bans: AtomicU64,
    in_flight: AtomicI64,
    http_errors: Mutex<BTreeMap<u16, u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Records a finished session.
    pub fn session(&self, protocol: &'static str, outcome: &'static str, took: Duration) {
        if let Ok(mut m) = self.sessions.lock() {
            *m.entry((protocol, outcome)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            m.entry(protocol).or_default().observe(took);
        }
    }

    /// Records one completed protocol round (its send and collect time).
    pub fn round(&self, protocol: &'static str, round: u16, took: Duration) {
        if let Ok(mut m) = self.rounds.lock() {
            m.entry((protocol, round)).or_default().observe(took);
        }
    }

    /// Counts a relay (transport) failure.
    pub fn relay_error(&self) {
        self.relay_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a recorded ban.
    pub fn ban(&self) {
        self.bans.fetch_add(1, Ordering::Relaxed);
    }

    /// Adjusts the number of sessions in flight.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts an error response.
    pub fn http_error(&self, status: u16) {
        if let Ok(mut m) = self.http_errors.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP mpc_node_sessions_total Protocol sessions by protocol and outcome.\n");
        out.push_str("# TYPE mpc_node_sessions_total counter\n");
        if let Ok(m) = self.sessions.lock() {
            for ((p, o), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "mpc_node_sessions_total{{protocol=\"{p}\",outcome=\"{o}\"}} {v}"
                );
            }
        }
        out.push_str("# HELP mpc_node_session_seconds Wall time of protocol sessions.\n");
        out.push_str("# TYPE mpc_node_session_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (p, h) in m.iter() {
                h.render(&mut out, "mpc_node_session_seconds", &format!("protocol=\"{p}\""));
            }
        }
        out.push_str(
            "# HELP mpc_node_round_seconds Time of one protocol round: sending its messages and \
             collecting every peer's.\n",
        );
        out.push_str("# TYPE mpc_node_round_seconds histogram\n");
        if let Ok(m) = self.rounds.lock() {
            for ((p, r), h) in m.iter() {
                let labels = format!("protocol=\"{p}\",round=\"{r}\"");
                h.render(&mut out, "mpc_node_round_seconds", &labels);
            }
        }
        let _ = write!(
            out,
            "# HELP mpc_node_relay_errors_total Sessions failed by the relay transport.\n\
             # TYPE mpc_node_relay_errors_total counter\nmpc_node_relay_errors_total {}\n\
             # HELP mpc_node_bans_total Parties banned after a failed OT/RVOLE check.\n\
             # TYPE mpc_node_bans_total counter\nmpc_node_bans_total {}\n\
             # HELP mpc_node_sessions_in_flight Protocol sessions running now.\n\
             # TYPE mpc_node_sessions_in_flight gauge\nmpc_node_sessions_in_flight {}\n",
            self.relay_errors.load(Ordering::Relaxed),
            self.bans.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
        );
        out.push_str("# HELP mpc_node_http_errors_total Error responses by status.\n");
        out.push_str("# TYPE mpc_node_http_errors_total counter\n");
        if let Ok(m) = self.http_errors.lock() {
            for (s, v) in m.iter() {
                let _ = writeln!(out, "mpc_node_http_errors_total{{status=\"{s}\"}} {v}");
            }
        }
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
        let text = m.render();
        for line in [
            "# TYPE mpc_node_round_seconds histogram",
            "mpc_node_round_seconds_bucket{protocol=\"sign\",round=\"1\",le=\"0.005\"} 1",
            "mpc_node_round_seconds_bucket{protocol=\"sign\",round=\"1\",le=\"0.1\"} 2",
            "mpc_node_round_seconds_bucket{protocol=\"sign\",round=\"1\",le=\"+Inf\"} 2",
            "mpc_node_round_seconds_count{protocol=\"sign\",round=\"1\"} 2",
            "mpc_node_round_seconds_bucket{protocol=\"dkg\",round=\"4\",le=\"30\"} 0",
            "mpc_node_round_seconds_count{protocol=\"dkg\",round=\"4\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
