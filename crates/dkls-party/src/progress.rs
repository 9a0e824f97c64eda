//! Progress lines and traffic totals of a run, from the runner's round hook
//! ([`RoundObserver`]): one line per completed round on stderr, and the totals for the demo
//! report.

use std::sync::{Arc, Mutex};

use dkls23_core::PartyIndex;
use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_runner::{RoundEvent, RoundObserver, RunOptions};

/// Totals of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages published.
    pub sent_messages: usize,
    /// Bytes published.
    pub sent_bytes: usize,
    /// Messages received.
    pub received_messages: usize,
    /// Bytes received.
    pub received_bytes: usize,
}

/// Observes one party's run: prints a line per round and adds up its traffic.
#[derive(Debug)]
pub struct Progress {
    label: String,
    protocol: ProtocolId,
    total_rounds: u16,
    quiet: bool,
    total: Mutex<Traffic>,
}

fn size(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

impl Progress {
    /// `label` prefixes every line (e.g. `keygen p1`); `total_rounds` is the round count of the
    /// setup's protocol (for "round 2/4"). Rounds of another protocol run inside this one (the
    /// refresh of an import) are named by their protocol, out of 4.
    pub fn new(setup: &Setup, label: String, total_rounds: u16, quiet: bool) -> Arc<Self> {
        Arc::new(Self {
            label,
            protocol: setup.protocol(),
            total_rounds,
            quiet,
            total: Mutex::new(Traffic::default()),
        })
    }

    /// `opts` with this progress as the round observer.
    pub fn options(self: &Arc<Self>, opts: RunOptions) -> RunOptions {
        RunOptions { observer: Some(self.clone()), ..opts }
    }

    /// The totals of the completed rounds.
    pub fn finish(&self) -> Traffic {
        self.total.lock().map(|t| *t).unwrap_or_default()
    }
}

impl RoundObserver for Progress {
    fn round_done(&self, ev: &RoundEvent) {
        if let Ok(mut t) = self.total.lock() {
            t.sent_messages += ev.sent_messages;
            t.sent_bytes += size(ev.sent_bytes);
            t.received_messages += ev.received_messages;
            t.received_bytes += size(ev.received_bytes);
        }
        if self.quiet {
            return;
        }
        let (what, total) = if ev.protocol == self.protocol {
            (String::new(), self.total_rounds)
        } else {
            (format!("{} ", ev.protocol.name()), 4)
        };
        eprintln!(
            "[{}] {what}round {}/{total}: sent {} message(s) ({} B), received {} ({} B), {} ms",
            self.label,
            ev.round,
            ev.sent_messages,
            ev.sent_bytes,
            ev.received_messages,
            ev.received_bytes,
            ev.elapsed.as_millis()
        );
    }
}

/// The index of a party in a setup, as a label such as `p2`.
pub fn party_label(index: PartyIndex) -> String {
    format!("p{index}")
}
