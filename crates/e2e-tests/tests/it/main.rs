//! DKG 2-of-3 and signing where every party talks to a real `msg-relay-svc` over WebSocket
//! through `msg-relay-client`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod attacks;
mod lifecycle;

use std::sync::Arc;
use std::time::Duration;

use dkls23_core::KeyShare;
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_core::sign::SignRequest;
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_sign};
use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use msg_relay_client::{ClientConfig, WsRelay};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Party {
    signer: Arc<Ed25519Identity>,
    guard: MemoryReplayGuard,
    rng: ChaCha20Rng,
    relay: WsRelay,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkg_2_of_3_and_signing_through_the_real_relay() {
    let relay = msg_relay_svc::testing::spawn_relay(Default::default()).await.unwrap();
    let mut parties = Vec::new();
    for i in 1..=3u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(i);
        let signer = Arc::new(Ed25519Identity::generate(&mut rng));
        let client = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
        parties.push(Party { signer, guard: MemoryReplayGuard::new(), rng, relay: client });
    }
    let keys: Vec<(u16, IdentityPublicKey)> =
        parties.iter().enumerate().map(|(i, p)| (i as u16 + 1, p.signer.public_key())).collect();
    let opts = RunOptions {
        round_timeout: Duration::from_secs(30),
        message_ttl: Some(Duration::from_secs(120)),
        ..RunOptions::default()
    };

    // DKG: each party in its own task, talking only through its own relay client.
    let setup = Setup::new(ProtocolId::Dkg, [1; 32], 3, 2, keys.clone(), vec![], 600).unwrap();
    let mut tasks = Vec::new();
    for mut p in parties {
        let setup = setup.clone();
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let signer: SharedSigner = p.signer.clone();
            let share = run_dkg(
                &RunContext::new(&p.relay, signer, &p.guard).with_options(opts.clone()),
                &setup,
                &mut p.rng,
            )
            .await;
            (p, share)
        }));
    }
    let mut parties = Vec::new();
    let mut shares: Vec<KeyShare> = Vec::new();
    for t in tasks {
        let (p, share) = t.await.unwrap();
        shares.push(share.unwrap());
        parties.push(p);
    }
    let pk = *shares[0].public_key();
    let chain_code = *shares[0].chain_code();
    assert!(shares.iter().all(|s| s.public_key() == &pk && s.key_id() == shares[0].key_id()));

    // Sign with parties 2 and 3 under a path.
    let m32 = [0xab; 32];
    let req = SignRequest {
        key_id: *shares[0].key_id(),
        keygen_sid: *shares[0].keygen_sid(),
        path: vec![0, 5],
        message: m32,
    };
    let signers: Vec<(u16, IdentityPublicKey)> =
        keys.iter().filter(|(i, _)| *i != 1).cloned().collect();
    let setup = Setup::new(ProtocolId::Sign, [2; 32], 3, 2, signers, req.to_bytes(), 600).unwrap();
    let mut tasks = Vec::new();
    for (mut p, share) in parties.into_iter().zip(shares).skip(1) {
        let setup = setup.clone();
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let signer: SharedSigner = p.signer.clone();
            run_sign(
                &RunContext::new(&p.relay, signer, &p.guard).with_options(opts.clone()),
                &setup,
                &share,
                &mut p.rng,
            )
            .await
        }));
    }
    let mut sigs = Vec::new();
    for t in tasks {
        sigs.push(t.await.unwrap().unwrap());
    }
    assert_eq!(sigs[0], sigs[1]);
    let derived = dkls23_core::bip32::derive(&pk, &chain_code, &[0, 5]).unwrap();
    let vk = VerifyingKey::from_affine(derived.public_key.to_affine()).unwrap();
    vk.verify_prehash(&m32, &sigs[0].to_k256().unwrap()).unwrap();
    relay.stop().await;
}

/// The relay is restarted (empty store, same port) in the middle of a DKG; the clients
/// reconnect, re-publish their messages and re-issue their asks, and the DKG completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkg_survives_a_relay_restart() {
    let relay = msg_relay_svc::testing::spawn_relay(Default::default()).await.unwrap();
    let addr = relay.addr();
    let url = relay.url().to_string();
    let mut parties = Vec::new();
    for i in 11..=13u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(i);
        let signer = Arc::new(Ed25519Identity::generate(&mut rng));
        let client = WsRelay::connect(&url, ClientConfig::default()).await.unwrap();
        parties.push(Party { signer, guard: MemoryReplayGuard::new(), rng, relay: client });
    }
    let keys: Vec<(u16, IdentityPublicKey)> =
        parties.iter().enumerate().map(|(i, p)| (i as u16 + 1, p.signer.public_key())).collect();
    let opts = RunOptions {
        round_timeout: Duration::from_secs(30),
        message_ttl: Some(Duration::from_secs(120)),
        ..RunOptions::default()
    };
    let setup = Setup::new(ProtocolId::Dkg, [3; 32], 3, 2, keys, vec![], 600).unwrap();
    let mut tasks = Vec::new();
    for (k, mut p) in parties.into_iter().enumerate() {
        let setup = setup.clone();
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            // Party 3 starts late, so the restart falls between the others' rounds.
            if k == 2 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let signer: SharedSigner = p.signer.clone();
            run_dkg(
                &RunContext::new(&p.relay, signer, &p.guard).with_options(opts.clone()),
                &setup,
                &mut p.rng,
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    relay.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let relay = msg_relay_svc::testing::spawn_relay_on(addr, Default::default()).await.unwrap();
    let mut shares = Vec::new();
    for t in tasks {
        shares.push(t.await.unwrap().unwrap());
    }
    assert!(shares.iter().all(|s: &KeyShare| s.public_key() == shares[0].public_key()));
    relay.stop().await;
}
