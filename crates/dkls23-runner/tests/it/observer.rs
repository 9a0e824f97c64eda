//! Round observation in the async runner: every party sees rounds 1..=4 of DKG and signing, in
//! order, with the message and byte counts the relay actually carried.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dkls23_core::KeyShare;
use dkls23_core::identity::SharedSigner;
use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_core::sign::SignRequest;
use dkls23_runner::{RoundEvent, RoundObserver, RunContext, RunOptions, run_dkg, run_sign};
use msg_relay_api::{MemoryRelay, MessageId, Relay, RelayFuture};

use crate::runner::{join_all, keys, parties};

#[derive(Default)]
pub struct Recorder(Mutex<Vec<RoundEvent>>);

impl RoundObserver for Recorder {
    fn round_done(&self, ev: &RoundEvent) {
        self.0.lock().unwrap().push(ev.clone());
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<RoundEvent> {
        self.0.lock().unwrap().clone()
    }
}

/// One party's view of a shared relay, counting what it publishes and receives.
#[derive(Default)]
struct Counted {
    relay: MemoryRelay,
    /// (messages, bytes) published.
    sent: Mutex<(usize, u64)>,
    /// (messages, bytes) received.
    received: Mutex<(usize, u64)>,
}

impl Counted {
    fn over(relay: &MemoryRelay) -> Self {
        Self { relay: relay.clone(), ..Self::default() }
    }
}

impl Relay for Counted {
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()> {
        {
            let mut s = self.sent.lock().unwrap();
            s.0 += 1;
            s.1 += payload.len() as u64;
        }
        self.relay.publish(id, ttl, payload)
    }

    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let raw = self.relay.ask(id).await?;
            let mut r = self.received.lock().unwrap();
            r.0 += 1;
            r.1 += raw.len() as u64;
            Ok(raw)
        })
    }
}

/// Fresh test options observed by a new recorder.
pub fn observed() -> (Arc<Recorder>, RunOptions) {
    let rec = Arc::new(Recorder::default());
    let opts = RunOptions {
        round_timeout: Duration::from_secs(20),
        observer: Some(rec.clone()),
        ..RunOptions::default()
    };
    (rec, opts)
}

/// Checks one party's events against the protocol, the expected (sent, received) message
/// counts per round, and what its relay view carried.
fn check(events: &[RoundEvent], protocol: ProtocolId, counts: &[(usize, usize)], relay: &Counted) {
    let rounds: Vec<u16> = events.iter().map(|e| e.round).collect();
    assert_eq!(rounds, vec![1, 2, 3, 4], "once per round, in order");
    for (e, (sent, received)) in events.iter().zip(counts) {
        assert_eq!(e.protocol, protocol);
        assert_eq!((e.sent_messages, e.received_messages), (*sent, *received), "round {}", e.round);
        assert!(e.sent_bytes > 0 && e.received_bytes > 0, "round {}", e.round);
        assert!(e.elapsed > Duration::ZERO);
    }
    let sent = events.iter().fold((0, 0), |a, e| (a.0 + e.sent_messages, a.1 + e.sent_bytes));
    let received =
        events.iter().fold((0, 0), |a, e| (a.0 + e.received_messages, a.1 + e.received_bytes));
    assert_eq!(sent, *relay.sent.lock().unwrap());
    assert_eq!(received, *relay.received.lock().unwrap());
}

#[tokio::test]
async fn observer_sees_every_round_of_dkg_and_signing() {
    let shared = MemoryRelay::new();
    let mut ps = parties(3, 7);

    // DKG 2-of-3.
    let relays: Vec<Counted> = (0..3).map(|_| Counted::over(&shared)).collect();
    let observers: Vec<(Arc<Recorder>, RunOptions)> = (0..3).map(|_| observed()).collect();
    let setup = Setup::new(ProtocolId::Dkg, [71; 32], 3, 2, keys(&ps), vec![], 600).unwrap();
    let futs = ps.iter_mut().zip(&relays).zip(&observers).map(|((p, r), (_, o))| {
        let setup = &setup;
        async move {
            let signer: SharedSigner = p.signer.clone();
            run_dkg(
                &RunContext::new(r, signer, &p.guard).with_options(o.clone()),
                setup,
                &mut p.rng,
            )
            .await
        }
    });
    let shares: Vec<KeyShare> = join_all(futs).await.into_iter().map(|r| r.unwrap()).collect();
    // Round 1 and 4 are broadcasts; rounds 2 and 3 a broadcast plus one p2p message per peer.
    let dkg_counts = [(1, 2), (3, 4), (3, 4), (1, 2)];
    for ((rec, _), relay) in observers.iter().zip(&relays) {
        check(&rec.events(), ProtocolId::Dkg, &dkg_counts, relay);
    }

    // Signing with parties 1 and 3.
    let req = SignRequest {
        key_id: *shares[0].key_id(),
        keygen_sid: *shares[0].keygen_sid(),
        path: vec![],
        message: [9; 32],
    };
    let participants: Vec<_> = keys(&ps).into_iter().filter(|(i, _)| *i != 2).collect();
    let setup =
        Setup::new(ProtocolId::Sign, [72; 32], 3, 2, participants, req.to_bytes(), 600).unwrap();
    let relays: Vec<Counted> = (0..2).map(|_| Counted::over(&shared)).collect();
    let observers: Vec<(Arc<Recorder>, RunOptions)> = (0..2).map(|_| observed()).collect();
    let signers = [0usize, 2];
    let mut picked: Vec<_> =
        ps.iter_mut().enumerate().filter(|(i, _)| signers.contains(i)).collect();
    let futs = picked.iter_mut().zip(&relays).zip(&observers).map(|(((i, p), r), (_, o))| {
        let setup = &setup;
        let share = &shares[*i];
        async move {
            let signer: SharedSigner = p.signer.clone();
            run_sign(
                &RunContext::new(r, signer, &p.guard).with_options(o.clone()),
                setup,
                share,
                &mut p.rng,
            )
            .await
        }
    });
    for s in join_all(futs).await {
        dkls23_core::sim::check_signature(shares[0].public_key(), &req.message, &s.unwrap())
            .unwrap();
    }
    // S0 broadcast, S1 p2p, S2 broadcast + p2p, S3 broadcast; one peer.
    let sign_counts = [(1, 1), (1, 1), (2, 2), (1, 1)];
    for ((rec, _), relay) in observers.iter().zip(&relays) {
        check(&rec.events(), ProtocolId::Sign, &sign_counts, relay);
    }
    // With two signers, what one sends in a round is exactly what the other receives.
    let (a, b) = (observers[0].0.events(), observers[1].0.events());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.sent_bytes, y.received_bytes);
        assert_eq!(y.sent_bytes, x.received_bytes);
    }
}
