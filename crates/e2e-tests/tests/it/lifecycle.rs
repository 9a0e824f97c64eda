//! Key lifecycle through the real relay: DKG 2-of-3, then a reshare to 3-of-4 that adds a new
//! party, then signing by a quorum that includes the new party.

use std::sync::Arc;
use std::time::Duration;

use dkls23_core::KeyShare;
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::reshare::{NewMember, ReshareOutcome, ReshareSpec};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_core::sign::SignRequest;
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_reshare, run_sign};
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
async fn reshare_2_of_3_to_3_of_4_then_sign_through_the_real_relay() {
    let relay = msg_relay_svc::testing::spawn_relay(Default::default()).await.unwrap();
    let mut parties = Vec::new();
    for i in 21..=24u64 {
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

    // DKG among the first three.
    let setup =
        Setup::new(ProtocolId::Dkg, [1; 32], 3, 2, keys[..3].to_vec(), vec![], 600).unwrap();
    let newcomer = parties.pop().unwrap();
    let mut tasks = Vec::new();
    for mut p in parties {
        let (setup, opts) = (setup.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let signer: SharedSigner = p.signer.clone();
            let share = run_dkg(
                &RunContext::new(&p.relay, signer, &p.guard).with_options(opts.clone()),
                &setup,
                &mut p.rng,
            )
            .await;
            (p, share.unwrap())
        }));
    }
    let mut holders = Vec::new();
    for t in tasks {
        holders.push(t.await.unwrap());
    }

    // Reshare to 3-of-4: all three deal, the newcomer joins as party 4.
    let committee: Vec<NewMember> =
        keys.iter().map(|(i, k)| NewMember { index: *i, identity: *k }).collect();
    let spec = ReshareSpec::from_share(&holders[0].1, &[1, 2, 3], committee, 3).unwrap();
    let setup = spec.to_setup([2; 32], 600).unwrap();
    let mut tasks = Vec::new();
    let members = holders.into_iter().map(|(p, s)| (p, Some(s))).chain([(newcomer, None)]);
    for (mut p, share) in members {
        let (setup, opts) = (setup.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let signer: SharedSigner = p.signer.clone();
            let out = run_reshare(
                &RunContext::new(&p.relay, signer, &p.guard).with_options(opts.clone()),
                &setup,
                share.as_ref(),
                &mut p.rng,
            )
            .await;
            match out.unwrap() {
                ReshareOutcome::NewShare(s) => (p, s),
                ReshareOutcome::Removed => panic!("nobody leaves in this reshare"),
            }
        }));
    }
    let mut holders: Vec<(Party, KeyShare)> = Vec::new();
    for t in tasks {
        holders.push(t.await.unwrap());
    }
    let pk = *holders[0].1.public_key();
    assert!(holders.iter().all(|(_, s)| s.public_key() == &pk && s.epoch() == 1));
    assert_eq!(holders[3].1.index(), 4);

    // Sign with parties 2, 3 and the newcomer.
    let m32 = [0xcd; 32];
    let req = SignRequest {
        key_id: *holders[0].1.key_id(),
        keygen_sid: *holders[0].1.keygen_sid(),
        path: vec![],
        message: m32,
    };
    let signers: Vec<(u16, IdentityPublicKey)> =
        keys.iter().filter(|(i, _)| *i != 1).cloned().collect();
    let setup = Setup::new(ProtocolId::Sign, [3; 32], 4, 3, signers, req.to_bytes(), 600).unwrap();
    let mut tasks = Vec::new();
    for (mut p, share) in holders.into_iter().skip(1) {
        let (setup, opts) = (setup.clone(), opts.clone());
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
    let vk = VerifyingKey::from_affine(pk.to_affine()).unwrap();
    for t in tasks {
        vk.verify_prehash(&m32, &t.await.unwrap().unwrap().to_k256().unwrap()).unwrap();
    }
    relay.stop().await;
}
