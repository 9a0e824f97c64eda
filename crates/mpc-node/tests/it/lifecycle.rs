//! Presign + finish, refresh and reshare through the API: the public key never changes.

use std::collections::BTreeMap;

use std::sync::Arc;

use dkls23_core::identity::{Ed25519Identity, IdentitySigner};
use dkls23_core::import_export::EXPORT_CONFIRMATION;
use dkls23_core::setup::MemoryReplayGuard;
use mpc_node_client::api::{
    ExportRequestBody, ImportKeyRequest, PresignRequestBody, RefreshRequestBody,
    ReshareRequestBody, SessionConfig, SignRequestBody,
};
use mpc_node_client::{EmbeddedParty, MemoryBanStore, MemoryKeyStore};
use msg_relay_client::{ClientConfig, WsRelay};

use crate::common::*;

fn session(players: &[u16]) -> SessionConfig {
    SessionConfig {
        session_id: random_sid(),
        players: players.to_vec(),
        public_keys: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presign_refresh_and_reshare_keep_the_public_key() {
    let cluster = Cluster::three().await;
    let infos = cluster.generate("app-a", "life", 2, &[1, 2, 3]).await;
    let pk = infos[0].as_ref().unwrap().public_key.clone().unwrap();
    let c: Vec<_> = (1..=3).map(|i| cluster.client(i, "app-a")).collect();

    // xpub of the root and at a path.
    let x = c[0].xpub("life", "m", "mainnet").await.unwrap();
    assert!(x.xpub.starts_with("xpub"), "{}", x.xpub);
    let t = c[1].xpub("life", "m/0/1", "testnet").await.unwrap();
    assert!(t.xpub.starts_with("tpub"), "{}", t.xpub);

    // Export with nodes 1 and 2 to a recipient (index 4, own identity, X25519 key) that
    // reconstructs the key; a missing confirmation is refused first.
    let recipient_id = Arc::new(Ed25519Identity::from_seed(&[99; 32]));
    let x_secret = [0x55u8; 32];
    let x_public = x25519_dalek::x25519(x_secret, x25519_dalek::X25519_BASEPOINT_BYTES);
    let mut ex = ExportRequestBody {
        session: session(&[1, 2]),
        recipient_index: 4,
        recipient_identity: recipient_id.public_key().to_string(),
        recipient_x25519: hex::encode(x_public),
        confirmation: "yes".into(),
    };
    assert_eq!(c[0].export("life", &ex).await.unwrap_err().status(), Some(400));
    ex.confirmation = EXPORT_CONFIRMATION.into();
    let sent = futures_join_all(c[..2].iter().map(|cl| cl.export("life", &ex))).await;
    let setup = hex::decode(&sent[0].as_ref().unwrap().setup).unwrap();
    assert_eq!(sent[1].as_ref().unwrap().setup, sent[0].as_ref().unwrap().setup);
    let relay =
        Arc::new(WsRelay::connect(cluster.relay.url(), ClientConfig::default()).await.unwrap());
    let recipient = EmbeddedParty::new(
        recipient_id,
        relay,
        Arc::new(MemoryKeyStore::default()),
        Arc::new(MemoryBanStore::default()),
        Arc::new(MemoryReplayGuard::new()),
    );
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let exported =
        recipient.receive_export(&setup, &x_secret, EXPORT_CONFIRMATION, &mut rng).await.unwrap();
    assert_eq!(hex::encode(mpc_node_client::session::compressed(exported.public_key())), pk);
    let x = k256::SecretKey::from_slice(exported.secret_key()).unwrap();
    assert_eq!(
        hex::encode(mpc_node_client::session::compressed(&x.public_key().to_projective())),
        pk
    );

    // Two presignatures for signers {1, 2} under m/7; finish one.
    let pre = PresignRequestBody { session: session(&[1, 2]), count: 2, path: Some("m/7".into()) };
    let made = futures_join_all(c[..2].iter().map(|cl| cl.presign("life", &pre))).await;
    let ids = made[0].as_ref().unwrap().presignature_ids.clone();
    assert_eq!(ids.len(), 2);
    assert_eq!(made[1].as_ref().unwrap().presignature_ids, ids);
    let finish = |id: &str, m: [u8; 32]| SignRequestBody {
        session: SessionConfig {
            session_id: id.to_owned(),
            players: vec![1, 2],
            public_keys: BTreeMap::new(),
        },
        message_hash: Some(hex::encode(m)),
        message: None,
        hash_algorithm: None,
        path: Some("m/7".into()),
        presignature_id: Some(id.to_owned()),
    };
    let body = finish(&ids[0], [0x77; 32]);
    let sigs = futures_join_all(c[..2].iter().map(|cl| cl.sign("life", &body))).await;
    let sig = sigs[0].as_ref().unwrap();
    assert_eq!(sigs[1].as_ref().unwrap(), sig);
    verify(sig);
    // A presignature is used once: the identical request again returns the same signature
    // (the remembered outcome), another message finds no presignature.
    let again = c[0].sign("life", &body).await.unwrap();
    assert_eq!(&again, sig);
    let other = c[0].sign("life", &finish(&ids[0], [0x78; 32])).await.unwrap_err();
    assert_eq!(other.status(), Some(404), "{other}");

    // Refresh: every player, new epoch, same key; old presignatures are gone.
    let r = RefreshRequestBody { session: session(&[1, 2, 3]) };
    let refreshed = futures_join_all(c.iter().map(|cl| cl.refresh("life", &r))).await;
    for info in &refreshed {
        let info = info.as_ref().unwrap();
        assert_eq!(info.epoch, 1);
        assert_eq!(info.public_key.as_ref(), Some(&pk));
    }
    let stale = c[0].sign("life", &finish(&ids[1], [1; 32])).await.unwrap_err();
    assert_eq!(stale.status(), Some(404));
    let sigs = cluster.sign("app-a", "life", &[2, 3], [0x42; 32], "m").await;
    let s = sigs.into_iter().next().unwrap().unwrap();
    assert_eq!(s.public_key, pk);
    verify(&s);

    // Reshare 2-of-3 -> 2-of-2 on players 1 and 2: player 3 deals and leaves.
    let rs = ReshareRequestBody {
        session: session(&[1, 2]),
        old_players: vec![1, 2, 3],
        new_threshold: 2,
        spec: None,
    };
    let out = futures_join_all(c.iter().map(|cl| cl.reshare("life", &rs))).await;
    for (k, o) in out.iter().enumerate() {
        let o = o.as_ref().unwrap();
        if k < 2 {
            let info = o.key.as_ref().unwrap();
            assert_eq!((info.threshold, info.parties, info.epoch), (2, 2, 2));
            assert_eq!(info.public_key.as_ref(), Some(&pk));
            assert!(!o.removed);
        } else {
            assert!(o.removed && o.key.is_none());
        }
    }
    assert_eq!(c[2].get_key("life").await.unwrap_err().status(), Some(404));
    let sigs = cluster.sign("app-a", "life", &[1, 2], [0x43; 32], "m/1").await;
    verify(&sigs.into_iter().next().unwrap().unwrap());
    let pk_after = c[0].get_key("life").await.unwrap().public_key.unwrap();
    assert_eq!(pk_after, pk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_a_private_key_then_sign() {
    let cluster = Cluster::three().await;
    let c: Vec<_> = (1..=3).map(|i| cluster.client(i, "app-a")).collect();
    let sk = k256::SecretKey::from_slice(&[0x11; 32]).unwrap();
    let pk = hex::encode(mpc_node_client::session::compressed(&sk.public_key().to_projective()));
    let base = ImportKeyRequest {
        key_id: "imported".into(),
        threshold: 2,
        session: session(&[1, 2, 3]),
        dealer: 1,
        public_key: pk.clone(),
        chain_code: hex::encode([0x22; 32]),
        private_key: None,
    };
    // The dealer needs the private key; nobody else may receive it.
    assert_eq!(c[0].import_key(&base).await.unwrap_err().status(), Some(400));
    let mut to_dealer = base.clone();
    to_dealer.private_key = Some(hex::encode([0x11; 32]));
    assert_eq!(c[1].import_key(&to_dealer).await.unwrap_err().status(), Some(400));

    let (a, b, d) =
        tokio::join!(c[0].import_key(&to_dealer), c[1].import_key(&base), c[2].import_key(&base));
    for info in [a.unwrap(), b.unwrap(), d.unwrap()] {
        assert_eq!(info.status, "READY");
        assert_eq!(info.public_key.as_deref(), Some(pk.as_str()));
        assert_eq!(info.chain_code.as_deref(), Some(hex::encode([0x22; 32]).as_str()));
    }
    let sigs = cluster.sign("app-a", "imported", &[2, 3], [0x12; 32], "m").await;
    let s = sigs.into_iter().next().unwrap().unwrap();
    assert_eq!(s.public_key, pk);
    verify(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshare_adds_a_node_that_had_no_share() {
    // Four nodes know each other; the key is 2-of-3 on players 1..3; node 4 joins (3-of-4).
    let cluster = Cluster::start((1..=4).map(|i| NodeSpec::new(i, 4)).collect()).await;
    let infos = cluster.generate("app-a", "grow", 2, &[1, 2, 3]).await;
    let pk = infos[0].as_ref().unwrap().public_key.clone().unwrap();
    let c: Vec<_> = (1..=4).map(|i| cluster.client(i, "app-a")).collect();
    let mut rs = ReshareRequestBody {
        session: session(&[1, 2, 3, 4]),
        old_players: vec![1, 2],
        new_threshold: 3,
        spec: None,
    };
    // Without the spec, node 4 cannot join (it has no share to compute it from).
    assert_eq!(c[3].reshare("grow", &rs).await.unwrap_err().status(), Some(404));
    rs.spec = Some(c[0].reshare_spec("grow", &rs).await.unwrap().spec);
    let out = futures_join_all(c.iter().map(|cl| cl.reshare("grow", &rs))).await;
    for o in &out {
        let info = o.as_ref().unwrap().key.clone().unwrap();
        assert_eq!((info.threshold, info.parties), (3, 4));
        assert_eq!(info.public_key.as_ref(), Some(&pk));
    }
    let sigs = cluster.sign("app-a", "grow", &[2, 3, 4], [0x44; 32], "m/2").await;
    let s = sigs.into_iter().nth(2).unwrap().unwrap();
    verify(&s);
}
