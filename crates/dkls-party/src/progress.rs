//! A [`Relay`] wrapper that prints one progress line per protocol round on stderr and counts
//! messages and bytes (for the demo report).
//!
//! Every message id of a session can be computed from its setup, so the wrapper knows for each
//! published or received message its round; a round is reported when the party starts sending
//! the next one (it has then received everything of the previous round) and at the end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dkls23_core::PartyIndex;
use dkls23_core::setup::Setup;
use msg_relay_api::{MessageId, Relay, RelayFuture};

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

#[derive(Debug, Default)]
struct State {
    round: u16,
    round_started: Option<Instant>,
    per_round: HashMap<u16, Traffic>,
    total: Traffic,
}

/// Wraps a relay for one session.
#[derive(Debug)]
pub struct ProgressRelay<'a, R: Relay + ?Sized> {
    inner: &'a R,
    rounds: HashMap<[u8; 32], u16>,
    label: String,
    total_rounds: u16,
    quiet: bool,
    state: Mutex<State>,
}

impl<'a, R: Relay + ?Sized> ProgressRelay<'a, R> {
    /// `label` prefixes every line (e.g. `keygen p1`); `total_rounds` is the protocol's round
    /// count (for "round 2/4").
    pub fn new(inner: &'a R, setup: &Setup, label: String, total_rounds: u16, quiet: bool) -> Self {
        let mut rounds = HashMap::new();
        let parts = setup.participants();
        for round in 1..=total_rounds {
            for (_, from) in parts {
                let b = dkls23_core::message::mid(setup.iid(), from, None, setup.protocol(), round);
                rounds.insert(b, round);
                for (_, to) in parts.iter().filter(|(_, k)| k != from) {
                    let p = dkls23_core::message::mid(
                        setup.iid(),
                        from,
                        Some(to),
                        setup.protocol(),
                        round,
                    );
                    rounds.insert(p, round);
                }
            }
        }
        Self { inner, rounds, label, total_rounds, quiet, state: Mutex::new(State::default()) }
    }

    fn report(&self, st: &State, round: u16) {
        if self.quiet || round == 0 {
            return;
        }
        let t = st.per_round.get(&round).copied().unwrap_or_default();
        let ms = st.round_started.map_or(Duration::ZERO, |s| s.elapsed()).as_millis();
        eprintln!(
            "[{}] round {round}/{}: sent {} message(s) ({} B), received {} ({} B), {ms} ms",
            self.label,
            self.total_rounds,
            t.sent_messages,
            t.sent_bytes,
            t.received_messages,
            t.received_bytes
        );
    }

    /// Reports the last round and returns the totals.
    pub fn finish(&self) -> Traffic {
        match self.state.lock() {
            Ok(st) => {
                self.report(&st, st.round);
                st.total
            }
            Err(_) => Traffic::default(),
        }
    }

    /// The totals so far.
    pub fn traffic(&self) -> Traffic {
        self.state.lock().map(|s| s.total).unwrap_or_default()
    }

    fn on_publish(&self, id: &MessageId, len: usize) {
        let round = self.rounds.get(&id.0).copied().unwrap_or(0);
        if let Ok(mut st) = self.state.lock() {
            if round > st.round {
                let prev = st.round;
                self.report(&st, prev);
                st.round = round;
                st.round_started = Some(Instant::now());
            }
            let r = st.per_round.entry(round).or_default();
            r.sent_messages += 1;
            r.sent_bytes += len;
            st.total.sent_messages += 1;
            st.total.sent_bytes += len;
        }
    }

    fn on_receive(&self, id: &MessageId, len: usize) {
        let round = self.rounds.get(&id.0).copied().unwrap_or(0);
        if let Ok(mut st) = self.state.lock() {
            let r = st.per_round.entry(round).or_default();
            r.received_messages += 1;
            r.received_bytes += len;
            st.total.received_messages += 1;
            st.total.received_bytes += len;
        }
    }
}

impl<R: Relay + ?Sized> Relay for ProgressRelay<'_, R> {
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()> {
        self.on_publish(&id, payload.len());
        self.inner.publish(id, ttl, payload)
    }

    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let got = self.inner.ask(id).await?;
            self.on_receive(&id, got.len());
            Ok(got)
        })
    }
}

/// The index of a party in a setup, as a label such as `p2`.
pub fn party_label(index: PartyIndex) -> String {
    format!("p{index}")
}
