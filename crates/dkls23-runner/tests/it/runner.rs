//! The async runner over an in-memory relay: DKG 2-of-3 then signing, and relay faults.

use std::sync::Arc;
use std::time::Duration;

use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_core::sign::SignRequest;
use dkls23_core::{AbortReason, Error, KeyShare};
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_sign};
use msg_relay_api::{Fault, MemoryRelay};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub struct Party {
    pub signer: Arc<Ed25519Identity>,
    pub guard: MemoryReplayGuard,
    pub rng: ChaCha20Rng,
}

pub fn parties(n: u16, seed: u64) -> Vec<Party> {
    (1..=n)
        .map(|i| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed * 100 + u64::from(i));
            Party {
                signer: Arc::new(Ed25519Identity::generate(&mut rng)),
                guard: MemoryReplayGuard::new(),
                rng,
            }
        })
        .collect()
}

pub fn keys(ps: &[Party]) -> Vec<(u16, IdentityPublicKey)> {
    ps.iter().enumerate().map(|(i, p)| (i as u16 + 1, p.signer.public_key())).collect()
}

pub fn opts() -> RunOptions {
    RunOptions {
        round_timeout: Duration::from_secs(20),
        message_ttl: Some(Duration::from_secs(60)),
        ..RunOptions::default()
    }
}

pub async fn dkg_over<R: msg_relay_api::Relay>(
    relays: &[R],
    ps: &mut [Party],
    t: u16,
    iid: u8,
) -> Vec<Result<KeyShare, Error>> {
    let n = ps.len() as u16;
    let setup = Setup::new(ProtocolId::Dkg, [iid; 32], n, t, keys(ps), vec![], 600).unwrap();
    let o = opts();
    let futs = ps.iter_mut().zip(relays).map(|(p, r)| {
        let setup = &setup;
        let o = &o;
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
    join_all(futs).await
}

pub async fn sign_over<R: msg_relay_api::Relay>(
    relays: &[R],
    ps: &mut [Party],
    shares: &[KeyShare],
    signers: &[u16],
    path: &[u32],
    m32: [u8; 32],
    iid: u8,
) -> Vec<Result<dkls23_core::sign::Signature, Error>> {
    let all = keys(ps);
    let participants: Vec<(u16, IdentityPublicKey)> =
        all.iter().filter(|(i, _)| signers.contains(i)).cloned().collect();
    let req = SignRequest {
        key_id: *shares[0].key_id(),
        keygen_sid: *shares[0].keygen_sid(),
        path: path.to_vec(),
        message: m32,
    };
    let setup = Setup::new(
        ProtocolId::Sign,
        [iid; 32],
        shares[0].parties(),
        shares[0].threshold(),
        participants,
        req.to_bytes(),
        600,
    )
    .unwrap();
    let o = opts();
    let futs = ps
        .iter_mut()
        .zip(relays)
        .zip(shares)
        .filter(|((_, _), s)| signers.contains(&s.index()))
        .map(|((p, r), share)| {
            let setup = &setup;
            let o = &o;
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
    join_all(futs).await
}

/// Minimal join_all over futures on one task (no extra dependency).
pub async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in pinned.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

#[tokio::test]
async fn dkg_and_signing_through_the_memory_relay() {
    let relay = MemoryRelay::new();
    let relays = vec![relay.clone(), relay.clone(), relay.clone()];
    let mut ps = parties(3, 1);
    let shares: Vec<KeyShare> =
        dkg_over(&relays, &mut ps, 2, 1).await.into_iter().map(|r| r.unwrap()).collect();
    dkls23_core::sim::check_shares(&shares).unwrap();
    // Every message was consumed by all its receivers: the relay holds nothing.
    let (held, consumed) = relay.held();
    assert_eq!(held, 0, "DKG messages left at the relay");
    assert_eq!(consumed, relay.stats().0, "every DKG message was consumed");
    let m32 = [0x5a; 32];
    let sigs = sign_over(&relays, &mut ps, &shares, &[1, 3], &[1, 2], m32, 2).await;
    let (held, consumed) = relay.held();
    assert_eq!(held, 0, "signing messages left at the relay");
    assert_eq!(consumed, relay.stats().0, "every signing message was consumed");
    let derived =
        dkls23_core::bip32::derive(shares[0].public_key(), shares[0].chain_code(), &[1, 2])
            .unwrap();
    for s in sigs {
        dkls23_core::sim::check_signature(&derived.public_key, &m32, &s.unwrap()).unwrap();
    }
}

#[tokio::test]
async fn tampering_relay_causes_timeout_never_blame_or_ban() {
    let relay = MemoryRelay::new();
    let honest = parties(2, 2);
    let mut ps = honest;
    // Run a DKG first over an honest relay.
    let relays = vec![relay.clone(), relay.clone()];
    let shares: Vec<KeyShare> =
        dkg_over(&relays, &mut ps, 2, 3).await.into_iter().map(|r| r.unwrap()).collect();
    // Now a relay that flips a byte in every message of round 2 (p2p SG1 messages).
    let evil = relay.with_fault(|_, bytes| {
        let mut b = bytes.to_vec();
        if b.len() > 9000 && b.len() < 10000 {
            let last = b.len() - 1;
            b[last] ^= 1;
            Fault::Replace(b)
        } else {
            Fault::Deliver
        }
    });
    let relays = vec![evil.clone(), evil];
    let mut o_ps = ps;
    let res = tokio::time::timeout(Duration::from_secs(60), async {
        let all = keys(&o_ps);
        let req = SignRequest {
            key_id: *shares[0].key_id(),
            keygen_sid: *shares[0].keygen_sid(),
            path: vec![],
            message: [1; 32],
        };
        let setup = Setup::new(ProtocolId::Sign, [4; 32], 2, 2, all, req.to_bytes(), 600).unwrap();
        let o = RunOptions {
            round_timeout: Duration::from_millis(500),
            message_ttl: Some(Duration::from_secs(60)),
            ..RunOptions::default()
        };
        let futs = o_ps.iter_mut().zip(&relays).zip(&shares).map(|((p, r), share)| {
            let setup = &setup;
            let o = &o;
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
        join_all(futs).await
    })
    .await
    .unwrap();
    for r in res {
        let e = r.unwrap_err();
        // Each party waits for a candidate that authenticates; whichever times out first
        // tells the other, which then fails with that reason.
        assert!(
            matches!(
                e,
                Error::Timeout { .. } | Error::PeerAborted { reason: AbortReason::Timeout, .. }
            ),
            "expected a timeout, got {e:?}"
        );
        assert!(!e.must_ban());
        assert!(e.culprits().is_empty());
    }
}

/// A party that will not take part says so in a signed abort notice: the others fail at once
/// with its reason, well before their round timeout. A notice that does not authenticate (from
/// someone else, or tampered with) is ignored.
#[tokio::test]
async fn an_abort_notice_ends_the_peers_runs_at_once() {
    use dkls23_core::AbortReason;
    use dkls23_runner::announce_abort;
    let relay = MemoryRelay::new();
    let mut ps = parties(3, 9);
    let setup = Setup::new(ProtocolId::Dkg, [77; 32], 3, 2, keys(&ps), vec![], 600).unwrap();
    let o = RunOptions { round_timeout: Duration::from_secs(30), ..opts() };
    // An outsider's "notice" under party 3's abort id is not authenticated: ignored.
    let outsider = Arc::new(Ed25519Identity::generate(&mut ChaCha20Rng::seed_from_u64(5)));
    let bogus = Setup::new(
        ProtocolId::Dkg,
        [77; 32],
        3,
        2,
        vec![keys(&ps)[0], keys(&ps)[1], (3, outsider.public_key())],
        vec![],
        600,
    )
    .unwrap();
    let signer: SharedSigner = outsider;
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    announce_abort(
        &RunContext::new(&relay, signer, &dkls23_core::setup::MemoryReplayGuard::new())
            .with_options(o.clone()),
        &bogus,
        AbortReason::Busy,
        &mut rng,
    )
    .await
    .unwrap();

    let third = ps.pop().unwrap();
    let start = std::time::Instant::now();
    let runs = ps.iter_mut().map(|p| {
        let (setup, o, relay) = (&setup, &o, &relay);
        async move {
            let signer: SharedSigner = p.signer.clone();
            run_dkg(
                &RunContext::new(relay, signer, &p.guard).with_options(o.clone()),
                setup,
                &mut p.rng,
            )
            .await
        }
    });
    let announce = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let signer: SharedSigner = third.signer.clone();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        announce_abort(
            &RunContext::new(&relay, signer, &dkls23_core::setup::MemoryReplayGuard::new())
                .with_options(o.clone()),
            &setup,
            AbortReason::Busy,
            &mut rng,
        )
        .await
        .unwrap();
    };
    let (results, ()) = tokio::join!(join_all(runs), announce);
    for r in results {
        assert_eq!(
            r.unwrap_err(),
            Error::PeerAborted { party: 3, round: 1, reason: AbortReason::Busy }
        );
    }
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

/// A party whose run fails tells the others: they end with its reason instead of a timeout.
#[tokio::test]
async fn a_failing_party_takes_its_peers_down_with_the_reason() {
    use dkls23_core::AbortReason;
    let relay = MemoryRelay::new();
    let mut ps = parties(3, 10);
    let shares: Vec<KeyShare> =
        dkg_over(&[relay.clone(), relay.clone(), relay.clone()], &mut ps, 2, 40)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
    // Party 1 runs a signing with 3 signers whose setup does not name its share's key: it
    // refuses at once (invalid input); parties 2 and 3 hear it instead of timing out.
    let all = keys(&ps);
    let req = SignRequest {
        key_id: *shares[0].key_id(),
        keygen_sid: *shares[0].keygen_sid(),
        path: vec![],
        message: [3; 32],
    };
    let setup = Setup::new(ProtocolId::Sign, [41; 32], 3, 2, all, req.to_bytes(), 600).unwrap();
    let o = RunOptions { round_timeout: Duration::from_secs(30), ..opts() };
    let start = std::time::Instant::now();
    let futs = ps.iter_mut().zip(&shares).enumerate().map(|(k, (p, share))| {
        let (setup, o, relay) = (&setup, &o, &relay);
        async move {
            let signer: SharedSigner = p.signer.clone();
            // Party 1 bans party 3 for this run: it refuses before its first message.
            let banned: &[u16] = if k == 0 { &[3] } else { &[] };
            run_sign(
                &RunContext::new(relay, signer, &p.guard)
                    .with_options(o.clone())
                    .refusing(banned.to_vec()),
                setup,
                share,
                &mut p.rng,
            )
            .await
        }
    });
    let results = join_all(futs).await;
    assert!(matches!(results[0], Err(Error::InvalidInput(_))), "{:?}", results[0]);
    for r in &results[1..] {
        assert!(
            matches!(r, Err(Error::PeerAborted { party: 1, reason: AbortReason::Refused, .. })),
            "{r:?}"
        );
    }
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}
