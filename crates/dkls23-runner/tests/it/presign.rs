//! Presigning through the runner: a presignature is stored as bytes, reloaded and finished
//! later with a fresh session; it is bound to its key, epoch, party and setup.

use std::time::Duration;

use dkls23_core::identity::{IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_core::sign::Presignature;
use dkls23_core::sign::{PresignRequest, SignRequest};
use dkls23_core::{Error, KeyShare};
use dkls23_runner::{RunContext, run_finish, run_presign, run_sign};
use msg_relay_api::MemoryRelay;

use crate::runner::{Party, dkg_over, join_all, keys, opts, parties};

fn presign_setup(ps: &[Party], share: &KeyShare, signers: &[u16], path: &[u32], iid: u8) -> Setup {
    let participants: Vec<(u16, IdentityPublicKey)> =
        keys(ps).into_iter().filter(|(i, _)| signers.contains(i)).collect();
    let req = PresignRequest {
        key_id: *share.key_id(),
        keygen_sid: *share.keygen_sid(),
        path: path.to_vec(),
    };
    Setup::new(
        ProtocolId::Sign,
        [iid; 32],
        share.parties(),
        share.threshold(),
        participants,
        req.to_bytes(),
        600,
    )
    .unwrap()
}

async fn presign_all(
    relay: &MemoryRelay,
    ps: &mut [Party],
    shares: &[KeyShare],
    setup: &Setup,
    signers: &[u16],
) -> Vec<Vec<u8>> {
    let o = opts();
    let futs = ps.iter_mut().zip(shares).filter(|(_, s)| signers.contains(&s.index())).map(
        |(p, share)| {
            let o = &o;
            async move {
                let signer: SharedSigner = p.signer.clone();
                let pre = run_presign(
                    &RunContext::new(relay, signer, &p.guard).with_options(o.clone()),
                    setup,
                    share,
                    &mut p.rng,
                )
                .await;
                pre.unwrap().to_bytes().to_vec()
            }
        },
    );
    join_all(futs).await
}

async fn finish_all(
    relay: &MemoryRelay,
    ps: &mut [Party],
    shares: &[KeyShare],
    setup: &Setup,
    stored: &[Vec<u8>],
    messages: &[[u8; 32]],
) -> Vec<Result<dkls23_core::sign::Signature, Error>> {
    let o = opts();
    let signers: Vec<u16> = setup.participants().iter().map(|(i, _)| *i).collect();
    let futs = ps
        .iter_mut()
        .zip(shares)
        .filter(|(_, s)| signers.contains(&s.index()))
        .zip(stored)
        .zip(messages)
        .map(|(((p, share), bytes), m)| {
            let o = &o;
            async move {
                let pre = Presignature::from_bytes(bytes, share).unwrap();
                let signer: SharedSigner = p.signer.clone();
                run_finish(
                    &RunContext::new(relay, signer, &p.guard).with_options(o.clone()),
                    setup,
                    pre,
                    m,
                    &mut p.rng,
                )
                .await
            }
        });
    join_all(futs).await
}

async fn key_2_of_3(ps: &mut [Party]) -> (MemoryRelay, Vec<KeyShare>) {
    let relay = MemoryRelay::new();
    let relays = vec![relay.clone(), relay.clone(), relay.clone()];
    let shares = dkg_over(&relays, ps, 2, 40).await.into_iter().map(|r| r.unwrap()).collect();
    (relay, shares)
}

#[tokio::test]
async fn stored_presignatures_finish_later_and_verify() {
    let mut ps = parties(3, 41);
    let (relay, shares) = key_2_of_3(&mut ps).await;
    let path = [7, 9];
    let setup = presign_setup(&ps, &shares[0], &[1, 3], &path, 42);
    let stored = presign_all(&relay, &mut ps, &shares, &setup, &[1, 3]).await;
    // A presignature carries no message: the online round is a single small broadcast.
    let m32 = [0x11; 32];
    let sigs = finish_all(&relay, &mut ps, &shares, &setup, &stored, &[m32, m32]).await;
    let derived =
        dkls23_core::bip32::derive(shares[0].public_key(), shares[0].chain_code(), &path).unwrap();
    for s in sigs {
        dkls23_core::sim::check_signature(&derived.public_key, &m32, &s.unwrap()).unwrap();
    }
}

#[tokio::test]
async fn a_presignature_belongs_to_one_key_epoch_and_party() {
    let mut ps = parties(3, 43);
    let (relay, shares) = key_2_of_3(&mut ps).await;
    let setup = presign_setup(&ps, &shares[0], &[1, 2], &[], 44);
    let stored = presign_all(&relay, &mut ps, &shares, &setup, &[1, 2]).await;
    // Round trip is exact.
    let pre = Presignature::from_bytes(&stored[0], &shares[0]).unwrap();
    assert_eq!(pre.to_bytes().to_vec(), stored[0]);
    assert_eq!(pre.signers(), &[1, 2]);
    // Another party's share, another key: refused.
    assert!(matches!(
        Presignature::from_bytes(&stored[0], &shares[1]),
        Err(Error::InvalidInput(_))
    ));
    let mut ps2 = parties(3, 45);
    let (_, other_key) = key_2_of_3(&mut ps2).await;
    assert!(Presignature::from_bytes(&stored[0], &other_key[0]).is_err());
    // Every truncation and every single-byte corruption of the header is rejected or decodes to
    // a presignature bound to the same key (never a panic).
    for cut in 0..stored[0].len() {
        assert!(Presignature::from_bytes(&stored[0][..cut], &shares[0]).is_err());
    }
    let mut bad = stored[0].clone();
    bad[4] ^= 1; // version
    assert!(Presignature::from_bytes(&bad, &shares[0]).is_err());
    // A presignature cannot be finished under another setup.
    let other_setup = presign_setup(&ps, &shares[0], &[1, 2], &[], 46);
    let signer: SharedSigner = ps[0].signer.clone();
    let p = &mut ps[0];
    let r = run_finish(
        &RunContext::new(&relay, signer, &p.guard).with_options(opts()),
        &other_setup,
        pre,
        &[1; 32],
        &mut p.rng,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
}

#[tokio::test]
async fn different_messages_on_one_presignature_are_a_view_mismatch() {
    let mut ps = parties(3, 47);
    let (relay, shares) = key_2_of_3(&mut ps).await;
    let setup = presign_setup(&ps, &shares[0], &[2, 3], &[], 48);
    let stored = presign_all(&relay, &mut ps, &shares, &setup, &[2, 3]).await;
    let sigs = finish_all(&relay, &mut ps, &shares, &setup, &stored, &[[1; 32], [2; 32]]).await;
    for (r, culprit) in sigs.into_iter().zip([3, 2]) {
        match r {
            Err(Error::ViewMismatch { party, .. }) => assert_eq!(party, culprit),
            other => panic!("expected a view mismatch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn presign_and_sign_requests_are_not_interchangeable() {
    let mut ps = parties(3, 49);
    let (relay, shares) = key_2_of_3(&mut ps).await;
    let presign = presign_setup(&ps, &shares[0], &[1, 2], &[], 50);
    let p = &mut ps[0];
    let signer: SharedSigner = p.signer.clone();
    let r = run_sign(
        &RunContext::new(&relay, signer, &p.guard).with_options(opts()),
        &presign,
        &shares[0],
        &mut p.rng,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    let req = SignRequest {
        key_id: *shares[0].key_id(),
        keygen_sid: *shares[0].keygen_sid(),
        path: vec![],
        message: [3; 32],
    };
    assert!(PresignRequest::from_bytes(&req.to_bytes()).is_err());
    assert_eq!(SignRequest::from_bytes(&req.to_bytes()).unwrap(), req);
}

#[tokio::test]
async fn a_used_instance_id_is_refused_before_any_message() {
    // ToB-9: after a signing session with iid 52, starting it again (e.g. an old-session S0
    // replayed by the relay, or a retried request) is refused by the party's replay guard.
    let mut ps = parties(3, 51);
    let (relay, shares) = key_2_of_3(&mut ps).await;
    let sigs = crate::runner::sign_over(
        &[relay.clone(), relay.clone(), relay.clone()],
        &mut ps,
        &shares,
        &[1, 2],
        &[],
        [8; 32],
        52,
    )
    .await;
    assert!(sigs.iter().all(Result::is_ok));
    let again = crate::runner::sign_over(
        &[relay.clone(), relay.clone(), relay.clone()],
        &mut ps,
        &shares,
        &[1, 2],
        &[],
        [8; 32],
        52,
    )
    .await;
    for r in again {
        match r {
            Err(Error::InvalidInput(m)) => assert!(m.contains("instance id"), "{m}"),
            other => panic!("expected a replay refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_restored_presignature_is_never_finished_twice_while_an_honest_signer_remembers_it() {
    // Three signers of a 2-of-3 key presign, then finish with m1. Party 1's storage is then
    // restored from a backup (its presignature and its finished-record come back) and party 3,
    // malicious, asks parties 1 and 2 to finish the same presignature with m2 (two messages on
    // one R reveal the key). Party 2 remembers it finished and refuses before sending
    // anything; party 1 then never releases its S3 share for m2, because it waits for every
    // signer's commitment first.
    let mut ps = parties(3, 53);
    let (relay, shares) = key_2_of_3(&mut ps).await;
    let setup = presign_setup(&ps, &shares[0], &[1, 2, 3], &[], 54);
    let stored = presign_all(&relay, &mut ps, &shares, &setup, &[1, 2, 3]).await;
    let m1 = [0x21; 32];
    let sigs = finish_all(&relay, &mut ps, &shares, &setup, &stored, &[m1, m1, m1]).await;
    assert!(sigs.iter().all(Result::is_ok), "{sigs:?}");

    // Restore: parties 1 and 3 forget that they finished it (fresh guards), party 2 does not.
    // The first run's messages have expired at the relay (a fresh one here).
    let relay = MemoryRelay::new();
    ps[0].guard = MemoryReplayGuard::new();
    ps[2].guard = MemoryReplayGuard::new();
    let m2 = [0x22; 32];
    let o = dkls23_runner::RunOptions { round_timeout: Duration::from_millis(400), ..opts() };
    let futs = ps.iter_mut().zip(&shares).zip(&stored).map(|((p, share), bytes)| {
        let (relay, setup, o) = (&relay, &setup, &o);
        async move {
            let pre = Presignature::from_bytes(bytes, share).unwrap();
            let signer: SharedSigner = p.signer.clone();
            run_finish(
                &RunContext::new(relay, signer, &p.guard).with_options(o.clone()),
                setup,
                pre,
                &m2,
                &mut p.rng,
            )
            .await
        }
    });
    let res = join_all(futs).await;
    match &res[1] {
        Err(Error::InvalidInput(m)) => assert!(m.contains("already finished"), "{m}"),
        other => panic!("the honest signer must refuse a second finish, got {other:?}"),
    }
    for who in [0, 2] {
        match &res[who] {
            Err(Error::Timeout { missing, .. }) => assert_eq!(missing, &vec![2]),
            // The other waiting signer timed out first and said so in its abort notice.
            Err(Error::PeerAborted {
                party, reason: dkls23_core::AbortReason::Timeout, ..
            }) if *party == [3u16, 1][who / 2] => {}
            other => panic!("party {}: expected a timeout on party 2, got {other:?}", who + 1),
        }
    }
    // Party 1 published its commitment (round 4) but never its S3 share (round 5).
    let me = ps[0].signer.public_key();
    let commit_id = dkls23_core::message::mid(setup.iid(), &me, None, ProtocolId::Sign, 4);
    let s3_id = dkls23_core::message::mid(setup.iid(), &me, None, ProtocolId::Sign, 5);
    let ask = |id| {
        let relay = &relay;
        async move {
            use msg_relay_api::Relay as _;
            tokio::time::timeout(
                Duration::from_millis(200),
                relay.ask(msg_relay_api::MessageId(id)),
            )
            .await
            .is_ok()
        }
    };
    assert!(ask(commit_id).await, "the commitment round ran");
    assert!(!ask(s3_id).await, "party 1 released an S3 share for a second message");
}

#[tokio::test]
async fn a_signer_banned_after_presigning_is_refused_at_finish() {
    let mut ps = parties(3, 61);
    let (relay, shares) = key_2_of_3(&mut ps).await;
    let setup = presign_setup(&ps, &shares[0], &[1, 3], &[], 62);
    let stored = presign_all(&relay, &mut ps, &shares, &setup, &[1, 3]).await;
    // Party 1 bans party 3 after the presignature was made (a later session caught it).
    let bans = dkls23_core::ban::MemoryBanList::new();
    dkls23_core::ban::BanList::record(&bans, shares[0].key_id(), 3, "caught cheating");
    let pre = Presignature::from_bytes(&stored[0], &shares[0]).unwrap();
    let p = &mut ps[0];
    let ctx = RunContext::new(&relay, p.signer.clone(), &p.guard).with_bans(&bans);
    let e = run_finish(&ctx, &setup, pre, &[0x22; 32], &mut p.rng).await.unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("banned")), "{e:?}");
    // Refused before anything was recorded or published: the finish marker is still free, so
    // the presignature was not used up by the refusal.
    let marker = dkls23_core::sign::finish_marker(setup.hash());
    assert!(dkls23_core::setup::ReplayGuard::check_and_record(&p.guard, &marker).is_ok());
}
