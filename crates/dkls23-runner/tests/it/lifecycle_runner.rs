//! Reshare and the ban-list hook through the async runner over the in-memory relay.

use std::sync::Arc;
use std::time::Duration;

use dkls23_core::ban::{BanList, MemoryBanList, record_if_banned};
use dkls23_core::identity::{IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::reshare::{NewMember, ReshareOutcome, ReshareSpec};
use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_core::sign::SignRequest;
use dkls23_core::{AbortReason, Error, KeyShare};
use dkls23_runner::{RunContext, RunOptions, run_reshare, run_sign};
use msg_relay_api::{Fault, MemoryRelay};

use crate::runner::{Party, dkg_over, join_all, keys, opts, parties, sign_over};

/// Runs `spec` over `relay`: `members[i]` is the party behind transport index i + 1 with its
/// old share (if it deals).
async fn reshare_over(
    relay: &MemoryRelay,
    spec: &ReshareSpec,
    members: &mut [(&mut Party, Option<&KeyShare>)],
    iid: u8,
    o: &RunOptions,
) -> Vec<Result<ReshareOutcome, Error>> {
    let setup = spec.to_setup([iid; 32], 600).unwrap();
    let futs = members.iter_mut().map(|(p, share)| {
        let setup = &setup;
        let share = *share;
        async move {
            let signer: SharedSigner = p.signer.clone();
            run_reshare(
                &RunContext::new(relay, signer, &p.guard).with_options(o.clone()),
                setup,
                share,
                &mut p.rng,
            )
            .await
        }
    });
    join_all(futs).await
}

fn unwrap_new(r: Result<ReshareOutcome, Error>) -> KeyShare {
    match r {
        Ok(ReshareOutcome::NewShare(s)) => s,
        other => panic!("expected a new share, got {other:?}"),
    }
}

#[tokio::test]
async fn refresh_and_quorum_change_through_the_relay() {
    let relay = MemoryRelay::new();
    let relays = vec![relay.clone(), relay.clone(), relay.clone()];
    let mut ps = parties(3, 31);
    let shares: Vec<KeyShare> =
        dkg_over(&relays, &mut ps, 2, 1).await.into_iter().map(|r| r.unwrap()).collect();

    // Refresh.
    let spec = ReshareSpec::refresh(&shares[0]).unwrap();
    let (a, rest) = ps.split_at_mut(1);
    let (b, c) = rest.split_at_mut(1);
    let mut members = vec![
        (&mut a[0], Some(&shares[0])),
        (&mut b[0], Some(&shares[1])),
        (&mut c[0], Some(&shares[2])),
    ];
    let new: Vec<KeyShare> = reshare_over(&relay, &spec, &mut members, 2, &opts())
        .await
        .into_iter()
        .map(unwrap_new)
        .collect();
    assert_eq!(new[0].public_key(), shares[0].public_key());
    assert_eq!(new[1].epoch(), 1);
    assert_eq!(relay.held().0, 0, "a refresh leaves nothing at the relay");
    let sigs = sign_over(&relays, &mut ps, &new, &[1, 3], &[], [7; 32], 3).await;
    assert!(sigs.into_iter().all(|s| s.is_ok()));

    // 2-of-3 -> 2-of-2 without party 2 (old-only: transport index 3).
    let committee = vec![
        NewMember { index: 1, identity: ps[0].signer.public_key() },
        NewMember { index: 2, identity: ps[2].signer.public_key() },
    ];
    let spec = ReshareSpec::from_share(&new[0], &[1, 2, 3], committee, 2).unwrap();
    assert_eq!(spec.transport_of_old(3), Some(2));
    assert_eq!(spec.transport_of_old(2), Some(3));
    let (a, rest) = ps.split_at_mut(1);
    let (b, c) = rest.split_at_mut(1);
    let mut members =
        vec![(&mut a[0], Some(&new[0])), (&mut c[0], Some(&new[2])), (&mut b[0], Some(&new[1]))];
    let mut res = reshare_over(&relay, &spec, &mut members, 4, &opts()).await;
    assert!(matches!(res.pop().unwrap(), Ok(ReshareOutcome::Removed)));
    let smaller: Vec<KeyShare> = res.into_iter().map(unwrap_new).collect();
    assert_eq!((smaller[1].index(), smaller[1].parties()), (2, 2));
    assert_eq!(smaller[1].public_key(), shares[0].public_key());
    assert_eq!(relay.held().0, 0, "a quorum change leaves nothing at the relay");
}

#[tokio::test]
async fn a_tampering_relay_during_reshare_times_out_without_blame_or_ban() {
    let relay = MemoryRelay::new();
    let relays = vec![relay.clone(), relay.clone()];
    let mut ps = parties(2, 41);
    let shares: Vec<KeyShare> =
        dkg_over(&relays, &mut ps, 2, 1).await.into_iter().map(|r| r.unwrap()).collect();
    // Flip the last byte of every large message (the Q2 p2p messages carry the OT setup).
    let evil = relay.with_fault(|_, bytes| {
        if bytes.len() > 1000 {
            let mut b = bytes.to_vec();
            let last = b.len() - 1;
            b[last] ^= 1;
            Fault::Replace(b)
        } else {
            Fault::Deliver
        }
    });
    let spec = ReshareSpec::refresh(&shares[0]).unwrap();
    let o = RunOptions {
        round_timeout: Duration::from_millis(500),
        message_ttl: Some(Duration::from_secs(60)),
        ..RunOptions::default()
    };
    let (a, b) = ps.split_at_mut(1);
    let mut members = vec![(&mut a[0], Some(&shares[0])), (&mut b[0], Some(&shares[1]))];
    let res = reshare_over(&evil, &spec, &mut members, 2, &o).await;
    let bans = MemoryBanList::new();
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
        assert!(!e.must_ban() && e.culprits().is_empty());
        assert!(!record_if_banned(&bans, shares[0].key_id(), &e, Some));
    }
    assert!(bans.banned(shares[0].key_id()).is_empty());
    // The old shares still sign.
    let sigs = sign_over(&relays, &mut ps, &shares, &[1, 2], &[], [9; 32], 5).await;
    assert!(sigs.into_iter().all(|s| s.is_ok()));
}

#[tokio::test]
async fn a_banned_party_is_refused_before_signing() {
    let relay = MemoryRelay::new();
    let relays = vec![relay.clone(), relay.clone()];
    let mut ps = parties(2, 51);
    let shares: Vec<KeyShare> =
        dkg_over(&relays, &mut ps, 2, 1).await.into_iter().map(|r| r.unwrap()).collect();
    let bans = MemoryBanList::new();
    let key_id = *shares[0].key_id();
    // Recording goes through the BanAndAbort culprit only.
    let ban = Error::BanAndAbort { party: 2, reason: "V2 check failed".into() };
    assert!(record_if_banned(&bans, &key_id, &ban, Some));
    assert!(!record_if_banned(
        &bans,
        &key_id,
        &Error::Blame { party: 1, reason: "x".into() },
        Some
    ));
    assert_eq!(bans.banned(&key_id), vec![2]);
    assert_eq!(bans.reason(&key_id, 2).as_deref(), Some("V2 check failed"));

    let all: Vec<(u16, IdentityPublicKey)> = keys(&ps);
    let req =
        SignRequest { key_id, keygen_sid: *shares[0].keygen_sid(), path: vec![], message: [3; 32] };
    let setup = Setup::new(ProtocolId::Sign, [8; 32], 2, 2, all, req.to_bytes(), 600).unwrap();
    let p = &mut ps[0];
    let signer: SharedSigner = p.signer.clone();
    let r = run_sign(
        &RunContext::new(&relay, signer, &p.guard).with_options(opts()).with_bans(&bans),
        &setup,
        &shares[0],
        &mut p.rng,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    bans.clear(&key_id);
    assert!(bans.banned(&key_id).is_empty());
}

/// Keeps what a run stages.
#[derive(Default)]
struct Staged(std::sync::Mutex<Option<KeyShare>>);

impl dkls23_runner::StageShare for Staged {
    fn stage<'a>(
        &'a self,
        share: &'a KeyShare,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        *self.0.lock().unwrap() = Some(KeyShare::from_bytes(&share.to_bytes()).unwrap());
        Box::pin(async { Ok(()) })
    }
}

/// With a staging hook, every member stages its new share before acknowledging and leaves the
/// acknowledgements at the relay; `confirm_staged` then finds every other member's (Confirmed),
/// on a relay that lost them finds none (Missing), and refuses a share of another session.
#[tokio::test]
async fn staged_shares_are_confirmed_by_the_acknowledgements_at_the_relay() {
    use dkls23_runner::{Confirmation, confirm_staged};
    let relay = MemoryRelay::new();
    let relays = vec![relay.clone(), relay.clone(), relay.clone()];
    let mut ps = parties(3, 47);
    let shares: Vec<KeyShare> =
        dkg_over(&relays, &mut ps, 2, 9).await.into_iter().map(|r| r.unwrap()).collect();
    let spec = ReshareSpec::refresh(&shares[0]).unwrap();
    let setup = spec.to_setup([10; 32], 600).unwrap();
    let stages: Vec<Arc<Staged>> = (0..3).map(|_| Arc::new(Staged::default())).collect();
    let futs = ps.iter_mut().zip(&shares).zip(&stages).map(|((p, share), stage)| {
        let (relay, setup) = (&relay, &setup);
        let o = RunOptions { stage: Some(stage.clone()), ..opts() };
        async move {
            let signer: SharedSigner = p.signer.clone();
            run_reshare(
                &RunContext::new(relay, signer, &p.guard).with_options(o.clone()),
                setup,
                Some(share),
                &mut p.rng,
            )
            .await
        }
    });
    let new: Vec<KeyShare> = join_all(futs).await.into_iter().map(unwrap_new).collect();
    for (stage, share) in stages.iter().zip(&new) {
        let staged = stage.0.lock().unwrap().take().expect("staged before the acknowledgement");
        assert_eq!(staged.to_bytes(), share.to_bytes());
    }
    let o = RunOptions { round_timeout: Duration::from_millis(300), ..opts() };
    let signer: SharedSigner = ps[0].signer.clone();
    let found = confirm_staged(
        &RunContext::new(&relay, signer.clone(), &dkls23_core::setup::MemoryReplayGuard::new())
            .with_options(o.clone()),
        &setup,
        &new[0],
        &mut ps[0].rng,
    )
    .await;
    assert_eq!(found.unwrap(), Confirmation::Confirmed);
    let empty = MemoryRelay::new();
    let found = confirm_staged(
        &RunContext::new(&empty, signer.clone(), &dkls23_core::setup::MemoryReplayGuard::new())
            .with_options(o.clone()),
        &setup,
        &new[0],
        &mut ps[0].rng,
    )
    .await;
    assert_eq!(found.unwrap(), Confirmation::Missing(vec![2, 3]));
    // The old share, or another party's, is not the staged share of this session.
    for wrong in [&shares[0], &new[1]] {
        let r = confirm_staged(
            &RunContext::new(&relay, signer.clone(), &dkls23_core::setup::MemoryReplayGuard::new())
                .with_options(o.clone()),
            &setup,
            wrong,
            &mut ps[0].rng,
        )
        .await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    }
}
