//! Key import and export (protocols.md §6, §10 item 10) over the in-memory relay, and the
//! sans-IO checks that blame a lying dealer or exporter.

use std::collections::BTreeMap;
use std::sync::Arc;

use dkls23_core::bip32::{self, Network};
use dkls23_core::encoding::{point_from_slice, point_to_bytes};
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::import_export::{
    EXPORT_CONFIRMATION, ExportRequest, ImportDeal, ImportSecret, ProvisionalShare, export_share,
    receive_export,
};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId};
use dkls23_core::{Error, KeyShare};
use dkls23_runner::{RunContext, run_export, run_export_receive, run_import};
use msg_relay_api::MemoryRelay;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::runner::{Party, join_all, keys, parties, sign_over};

const TV1_KEY: &str = "cbce0d719ecf7431d88e6a89fa1483e02e35092af60c042b1df2ff59fa424dca";
const TV1_CC: &str = "04466b9cc8e161e966409ca52986c584f07e9dc81f735db683c3ff6ec7b1503f";
const TV1_PUB: &str = "0357bfe1e341d01c69fe5654309956cbea516822fba8a601743a012a7896ee8dc2";
const TV1_CHILD_PUB: &str = "022a471424da5e657499d1ff51cb43c47481a03b1e77f951fe64cec9f5a48f7011";

fn arr(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

async fn import_over(relay: &MemoryRelay, ps: &mut [Party], t: u16, iid: u8) -> Vec<KeyShare> {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let secret = ImportSecret::new(&arr(TV1_KEY), Some(arr(TV1_CC)), &mut rng).unwrap();
    let req = secret.request(1);
    let holders: Vec<IdentityPublicKey> = keys(ps).into_iter().map(|(_, k)| k).collect();
    let setup = req.to_setup([iid; 32], holders, t, 600).unwrap();
    let mut secret = Some(secret);
    let (rec, o) = crate::observer::observed();
    let futs = ps.iter_mut().enumerate().map(|(i, p)| {
        let dealer = if i == 0 { secret.take() } else { None };
        let (setup, o) = (&setup, &o);
        async move {
            let signer: SharedSigner = p.signer.clone();
            run_import(
                &RunContext::new(relay, signer, &p.guard).with_options(o.clone()),
                setup,
                dealer,
                &mut p.rng,
            )
            .await
        }
    });
    let shares = join_all(futs).await.into_iter().map(|r| r.unwrap()).collect();
    // Every holder reports the two import rounds, then the four rounds of the refresh.
    let mut seen: Vec<(ProtocolId, u16)> =
        rec.events().iter().map(|e| (e.protocol, e.round)).collect();
    seen.sort_by_key(|(p, r)| (p.to_u16(), *r));
    let mut want = Vec::new();
    for (p, r) in [(ProtocolId::Reshare, 1..=4), (ProtocolId::Import, 1..=2)] {
        for round in r {
            want.extend([(p, round); 3]);
        }
    }
    want.sort_by_key(|(p, r)| (p.to_u16(), *r));
    assert_eq!(seen, want);
    shares
}

#[tokio::test]
async fn import_tv1_sign_under_a_path_and_export_it_back() {
    let relay = MemoryRelay::new();
    let mut ps = parties(3, 61);
    let shares = import_over(&relay, &mut ps, 2, 1).await;
    assert_eq!(hex::encode(point_to_bytes(shares[0].public_key())), TV1_PUB);
    assert_eq!(shares[1].chain_code(), &arr(TV1_CC));
    for s in &shares {
        // The refresh ran: epoch 1, a reshare session id, same key id everywhere.
        assert_eq!(s.epoch(), 1);
        assert_eq!(s.key_id(), shares[0].key_id());
        assert_eq!(s.keygen_sid(), shares[0].keygen_sid());
    }
    // Threshold-derived child equals the BIP-32 vector.
    let child = bip32::xpub_for_path(&shares[2], &[2, 1_000_000_000], Network::Mainnet).unwrap();
    assert_eq!(hex::encode(point_to_bytes(&child.public_key)), TV1_CHILD_PUB);
    let tv: bip32::Xpub = "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy".parse().unwrap();
    assert_eq!((child.public_key, child.chain_code), (tv.public_key, tv.chain_code));

    // Sign under 2/1000000000, verify with the TV1 child public key.
    let relays = vec![relay.clone(), relay.clone(), relay.clone()];
    let m32 = [0x77; 32];
    let sigs = sign_over(&relays, &mut ps, &shares, &[2, 3], &[2, 1_000_000_000], m32, 2).await;
    let tv_child = point_from_slice(&hex::decode(TV1_CHILD_PUB).unwrap()).unwrap();
    for s in sigs {
        dkls23_core::sim::check_signature(&tv_child, &m32, &s.unwrap()).unwrap();
    }

    // Export to a recipient outside the committee (setup index 9), through exporters 1 and 3.
    let mut rrng = ChaCha20Rng::seed_from_u64(99);
    let recipient = Ed25519Identity::generate(&mut rrng);
    let r_secret = [0x5au8; 32];
    let r_public = x25519_dalek::x25519(r_secret, x25519_dalek::X25519_BASEPOINT_BYTES);
    let req = ExportRequest::new(&shares[0], &[1, 3], 9, r_public).unwrap();
    let setup = req.to_setup(&shares[0], recipient.public_key(), [3; 32], 600).unwrap();
    let (rec, o) = crate::observer::observed();
    let r_guard = MemoryReplayGuard::new();
    let exporters = [(0usize, &shares[0]), (2, &shares[2])];
    let (setup_ref, o_ref, relay_ref) = (&setup, &o, &relay);
    let (p0, rest) = ps.split_at_mut(1);
    let p2 = &mut rest[1];
    let send = join_all(exporters.iter().zip([&mut p0[0], p2]).map(|((_, share), p)| async move {
        let signer: SharedSigner = p.signer.clone();
        run_export(
            &RunContext::new(relay_ref, signer, &p.guard).with_options(o_ref.clone()),
            setup_ref,
            share,
            EXPORT_CONFIRMATION,
            &mut p.rng,
        )
        .await
    }));
    let recipient: SharedSigner = Arc::new(recipient);
    let mut rng2 = ChaCha20Rng::seed_from_u64(100);
    let r_ctx = RunContext::new(&relay, recipient.clone(), &r_guard).with_options(o.clone());
    let recv = run_export_receive(&r_ctx, &setup, &r_secret, EXPORT_CONFIRMATION, &mut rng2);
    let (sent, key) = tokio::join!(send, recv);
    for s in sent {
        s.unwrap();
    }
    let key = key.unwrap();
    // One round each: two exporters that only send, a recipient that receives both.
    let mut seen: Vec<(ProtocolId, u16, usize, usize)> = rec
        .events()
        .iter()
        .map(|e| (e.protocol, e.round, e.sent_messages, e.received_messages))
        .collect();
    seen.sort_by_key(|e| (e.2, e.3));
    assert_eq!(
        seen,
        vec![
            (ProtocolId::Export, 1, 0, 2),
            (ProtocolId::Export, 1, 1, 0),
            (ProtocolId::Export, 1, 1, 0)
        ]
    );
    assert_eq!(key.secret_key(), &arr(TV1_KEY));
    assert_eq!(key.chain_code(), &arr(TV1_CC));
    assert!(!key.is_threshold_protected());
    assert!(!format!("{key:?}").contains("cbce"));

    // Without the confirmation nothing is sent or reconstructed.
    let p = &mut ps[1];
    let signer: SharedSigner = p.signer.clone();
    let r = run_export(
        &RunContext::new(&relay, signer, &p.guard).with_options(o.clone()),
        &setup,
        &shares[1],
        "yes",
        &mut p.rng,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    let r = run_export_receive(
        &RunContext::new(&relay, recipient, &r_guard).with_options(o.clone()),
        &setup,
        &r_secret,
        "ok",
        &mut rng2,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))));
}

#[test]
fn xprv_import_input_and_test_vector_5() {
    // BIP-32 TV1, chain m/0H/1/2H.
    let s = ImportSecret::from_xprv(
        "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM",
    )
    .unwrap();
    assert_eq!(hex::encode(point_to_bytes(&s.public_key())), TV1_PUB);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let direct = ImportSecret::new(&arr(TV1_KEY), Some(arr(TV1_CC)), &mut rng).unwrap();
    assert_eq!(s.key_id(), direct.key_id());
    // Every private entry of BIP-32 test vector 5, and the public ones, are refused.
    for bad in [
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGTQQD3dC4H2D5GBj7vWvSQaaBv5cxi9gafk7NF3pnBju6dwKvH",
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGpWnsj83BHtEy5Zt8CcDr1UiRXuWCmTQLxEK9vbz5gPstX92JQ",
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD9y5gkZ6Eq3Rjuahrv17fEQ3Qen6J",
        "xprv9s2SPatNQ9Vc6GTbVMFPFo7jsaZySyzk7L8n2uqKXJen3KUmvQNTuLh3fhZMBoG3G4ZW1N2kZuHEPY53qmbZzCHshoQnNf4GvELZfqTUrcv",
        "xprv9s21ZrQH4r4TsiLvyLXqM9P7k1K3EYhA1kkD6xuquB5i39AU8KF42acDyL3qsDbU9NmZn6MsGSUYZEsuoePmjzsB3eFKSUEh3Gu1N3cqVUN",
        "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHGMQzT7ayAmfo4z3gY5KfbrZWZ6St24UVf2Qgo6oujFktLHdHY4",
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzF93Y5wvzdUayhgkkFoicQZcP3y52uPPxFnfoLZB21Teqt1VvEHx",
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD5SDKr24z3aiUvKr9bJpdrcLg1y3G",
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHL",
        "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5",
    ] {
        assert!(matches!(ImportSecret::from_xprv(bad), Err(Error::InvalidInput(_))), "{bad}");
    }
}

#[test]
fn a_lying_dealer_is_blamed() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let secret = ImportSecret::new(&arr(TV1_KEY), None, &mut rng).unwrap();
    let req = secret.request(1);
    let deal = ImportDeal::new(&mut rng, &secret, 2);
    let sid = [4u8; 32];
    let good = deal.message_for(&sid, 2);
    assert!(ProvisionalShare::accept(&sid, &req, 3, 2, 2, &good).is_ok());
    // A share for another party fails the Feldman check.
    let wrong = deal.message_for(&sid, 3);
    for (msg, what) in [
        (wrong.to_vec(), "feldman"),
        (
            {
                let mut m = good.to_vec();
                m[33 + 32] ^= 1; // chain code
                m
            },
            "chain code",
        ),
        (good[..good.len() - 1].to_vec(), "length"),
    ] {
        match ProvisionalShare::accept(&sid, &req, 3, 2, 2, &msg) {
            Err(Error::Blame { party: 1, .. }) => {}
            other => panic!("{what}: expected Blame{{1}}, got {other:?}"),
        }
    }
    // Another key than the request's.
    let other = ImportSecret::new(&[1u8; 32], None, &mut rng).unwrap();
    let other_deal = ImportDeal::new(&mut rng, &other, 2);
    assert!(matches!(
        ProvisionalShare::accept(&sid, &req, 3, 2, 2, &other_deal.message_for(&sid, 2)),
        Err(Error::Blame { party: 1, .. })
    ));
    // Invalid private keys are refused.
    assert!(ImportSecret::new(&[0u8; 32], None, &mut rng).is_err());
    assert!(ImportSecret::new(&[0xffu8; 32], None, &mut rng).is_err());
}

#[test]
fn a_wrong_export_share_blames_its_sender() {
    let shares = crate::common::honest_dkg(3, 2, 171);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let r_secret = [0x33u8; 32];
    let r_public = x25519_dalek::x25519(r_secret, x25519_dalek::X25519_BASEPOINT_BYTES);
    let req = ExportRequest::new(&shares[0], &[1, 2], 7, r_public).unwrap();
    assert_eq!(ExportRequest::from_bytes(&req.to_bytes()).unwrap(), req);
    let h = [6u8; 32];
    let p1 = export_share(&mut rng, &shares[0], &req, &h, EXPORT_CONFIRMATION).unwrap();
    let p2 = export_share(&mut rng, &shares[1], &req, &h, EXPORT_CONFIRMATION).unwrap();
    assert!(export_share(&mut rng, &shares[2], &req, &h, EXPORT_CONFIRMATION).is_err());
    assert!(export_share(&mut rng, &shares[0], &req, &h, "").is_err());
    let ok: BTreeMap<u16, Vec<u8>> = [(1, p1.clone()), (2, p2.clone())].into();
    let key = receive_export(&req, &h, &r_secret, &ok, EXPORT_CONFIRMATION).unwrap();
    assert_eq!(
        k256::ProjectivePoint::GENERATOR
            * dkls23_core::encoding::scalar_from_bytes(key.secret_key()).unwrap(),
        *shares[0].public_key()
    );
    // Party 2's payload presented as party 1's: bound to ℓ by the AAD and the key.
    let swapped: BTreeMap<u16, Vec<u8>> = [(1, p2.clone()), (2, p2.clone())].into();
    assert!(matches!(
        receive_export(&req, &h, &r_secret, &swapped, EXPORT_CONFIRMATION),
        Err(Error::Blame { party: 1, .. })
    ));
    let mut bad = p1.clone();
    bad[40] ^= 1;
    let tampered: BTreeMap<u16, Vec<u8>> = [(1, bad), (2, p2.clone())].into();
    assert!(matches!(
        receive_export(&req, &h, &r_secret, &tampered, EXPORT_CONFIRMATION),
        Err(Error::Blame { party: 1, .. })
    ));
    // Wrong recipient secret, missing payload, another setup hash.
    assert!(receive_export(&req, &h, &[0x44; 32], &ok, EXPORT_CONFIRMATION).is_err());
    let missing: BTreeMap<u16, Vec<u8>> = [(1, p1.clone())].into();
    assert!(matches!(
        receive_export(&req, &h, &r_secret, &missing, EXPORT_CONFIRMATION),
        Err(Error::Timeout { .. })
    ));
    assert!(receive_export(&req, &[0u8; 32], &r_secret, &ok, EXPORT_CONFIRMATION).is_err());
}
