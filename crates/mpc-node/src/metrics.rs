//! A small Prometheus registry (text format 0.0.4): sessions by protocol and outcome, session
//! latency, relay errors, bans, sessions in flight.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The node's metrics.
#[derive(Default)]
pub struct Metrics {
    sessions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
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
            let h = m.entry(protocol).or_default();
            let secs = took.as_secs_f64();
            for (b, c) in BUCKETS.iter().zip(h.counts.iter_mut()) {
                if secs <= *b {
                    *c += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
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
                for (b, c) in BUCKETS.iter().zip(h.counts.iter()) {
                    let _ = writeln!(
                        out,
                        "mpc_node_session_seconds_bucket{{protocol=\"{p}\",le=\"{b}\"}} {c}"
                    );
                }
                let _ = writeln!(
                    out,
                    "mpc_node_session_seconds_bucket{{protocol=\"{p}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "mpc_node_session_seconds_sum{{protocol=\"{p}\"}} {}", h.sum);
                let _ =
                    writeln!(out, "mpc_node_session_seconds_count{{protocol=\"{p}\"}} {}", h.count);
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
