//! Dynamic players: a node that knows player 1 only from the session, and the two-party
//! "mobile + server" flow with an embedded party.

use std::collections::BTreeMap;
use std::sync::Arc;

use dkls23_core::identity::{Ed25519Identity, IdentitySigner};
use dkls23_core::setup::MemoryReplayGuard;
use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use mpc_node_client::api::{GenerateKeyRequest, SessionConfig, SignRequestBody};
use mpc_node_client::{EmbeddedParty, MemoryBanStore, MemoryKeyStore};
use msg_relay_client::{ClientConfig, WsRelay};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_known_only_by_its_session_key() {
    // Nodes 2 and 3 know each other; player 1 (node 1) is configured nowhere but at itself.
    let mut specs: Vec<NodeSpec> = (1..=3).map(|i| NodeSpec::new(i, 3)).collect();
    specs[0].static_players = vec![1];
    specs[1].static_players = vec![2, 3];
    specs[2].static_players = vec![2, 3];
    let cluster = Cluster::start(specs).await;
    let mut public_keys = BTreeMap::new();
    for i in 1..=3u16 {
        public_keys.insert(i, public(i).to_string());
    }
    let req = GenerateKeyRequest {
        key_id: Some("dyn".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: SessionConfig { session_id: random_sid(), players: vec![1, 2, 3], public_keys },
    };
    let clients: Vec<_> = (1..=3).map(|i| cluster.client(i, "app-a")).collect();
    let infos = futures_join_all(clients.iter().map(|c| c.generate_key(&req))).await;
    let infos: Vec<_> = infos.into_iter().map(Result::unwrap).collect();
    assert!(infos.iter().all(|i| i.public_key == infos[0].public_key));
    // Without the session key, nodes 2 and 3 cannot place player 1.
    let mut req2 = req.clone();
    req2.key_id = Some("dyn2".into());
    req2.session.public_keys.clear();
    let e = clients[1].generate_key(&req2).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("player 1"), "{e}");
    // Signing uses the identities recorded in the shares.
    let sigs = cluster.sign("app-a", "dyn", &[1, 3], [5; 32], "m/1").await;
    verify(&sigs.into_iter().next().unwrap().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mobile_and_server_two_party_keygen_and_sign() {
    // The server is player 2 and knows only itself; the phone (player 1) has a fresh key.
    let mut spec = NodeSpec::new(2, 2);
    spec.static_players = vec![2];
    let cluster = Cluster::start(vec![NodeSpec::new(1, 1), spec]).await;
    let server = cluster.client(2, "app-a");

    let phone_id = Arc::new(Ed25519Identity::from_seed(&[42; 32]));
    let relay =
        Arc::new(WsRelay::connect(cluster.relay.url(), ClientConfig::default()).await.unwrap());
    let phone = EmbeddedParty::new(
        phone_id.clone(),
        relay,
        Arc::new(MemoryKeyStore::default()),
        Arc::new(MemoryBanStore::default()),
        Arc::new(MemoryReplayGuard::new()),
    )
    .for_application("app-a");
    let mut public_keys = BTreeMap::new();
    public_keys.insert(1u16, phone_id.public_key().to_string());
    public_keys.insert(2u16, public(2).to_string());
    let session = SessionConfig { session_id: random_sid(), players: vec![1, 2], public_keys };
    let req = GenerateKeyRequest {
        key_id: Some("user-7".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: session.clone(),
    };
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (on_phone, on_server) =
        tokio::join!(phone.generate("user-7", 2, &session, &mut rng), server.generate_key(&req));
    let on_phone = on_phone.unwrap();
    let on_server = on_server.unwrap();
    assert_eq!(on_phone.player, 1);
    assert_eq!(hex::encode(on_phone.public_key), on_server.public_key.unwrap());

    // Sign: phone and server, same session config.
    let m = [0x5a; 32];
    let mut sign_session = session.clone();
    sign_session.session_id = random_sid();
    let body = SignRequestBody {
        session: sign_session.clone(),
        message_hash: Some(hex::encode(m)),
        message: None,
        hash_algorithm: None,
        path: Some("m/0/3".into()),
        presignature_id: None,
    };
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (sig_phone, sig_server) = tokio::join!(
        phone.sign("user-7", &sign_session, m, &[0, 3], &mut rng),
        server.sign("user-7", &body)
    );
    let sig_phone = sig_phone.unwrap();
    let sig_server = sig_server.unwrap();
    assert_eq!(hex::encode(sig_phone.r), sig_server.r);
    verify(&sig_server);
    let pk = hex::decode(&sig_server.public_key).unwrap();
    VerifyingKey::from_sec1_bytes(&pk)
        .unwrap()
        .verify_prehash(&m, &sig_phone.to_k256().unwrap())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_presignatures_finish_once_and_never_come_back_from_a_backup() {
    use mpc_node_client::api::PresignRequestBody;
    use mpc_node_client::{MemoryGenerationCounter, MemoryPresignatureStore, PartyError};

    let mut spec = NodeSpec::new(2, 2);
    spec.static_players = vec![2];
    let cluster = Cluster::start(vec![NodeSpec::new(1, 1), spec]).await;
    let server = cluster.client(2, "app-a");
    let phone_id = Arc::new(Ed25519Identity::from_seed(&[43; 32]));
    let relay =
        Arc::new(WsRelay::connect(cluster.relay.url(), ClientConfig::default()).await.unwrap());
    let presigs = Arc::new(MemoryPresignatureStore::default());
    let phone = EmbeddedParty::new(
        phone_id.clone(),
        relay,
        Arc::new(MemoryKeyStore::default()),
        Arc::new(MemoryBanStore::default()),
        Arc::new(MemoryReplayGuard::new()),
    )
    .with_presignatures(presigs.clone(), Arc::new(MemoryGenerationCounter::default()))
    .for_application("app-a");
    let mut public_keys = BTreeMap::new();
    public_keys.insert(1u16, phone_id.public_key().to_string());
    public_keys.insert(2u16, public(2).to_string());
    let session = |sid: String| SessionConfig {
        session_id: sid,
        players: vec![1, 2],
        public_keys: public_keys.clone(),
    };
    let keygen = session(random_sid());
    let req = GenerateKeyRequest {
        key_id: Some("user-8".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: keygen.clone(),
    };
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (p, s) =
        tokio::join!(phone.generate("user-8", 2, &keygen, &mut rng), server.generate_key(&req));
    p.unwrap();
    s.unwrap();

    // Two presignatures, made by the phone and the server together.
    let pre_session = session(random_sid());
    let body = PresignRequestBody { session: pre_session.clone(), count: 2, path: None };
    let (ids, on_server) = tokio::join!(
        phone.presign("user-8", &pre_session, 2, &[], &mut rng),
        server.presign("user-8", &body)
    );
    let ids = ids.unwrap();
    assert_eq!(ids, on_server.unwrap().presignature_ids);
    let backup = presigs.snapshot();

    // The online round with the first one verifies; the presignature is gone afterwards.
    let m = [0x61; 32];
    let finish = |id: &str| SignRequestBody {
        session: session(id.to_owned()),
        message_hash: Some(hex::encode(m)),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: Some(id.to_owned()),
    };
    let online = session(ids[0].clone());
    let server_body = finish(&ids[0]);
    let (sig, on_server) = tokio::join!(
        phone.sign_with_presignature("user-8", &ids[0], &online, m, &[], &mut rng),
        server.sign("user-8", &server_body)
    );
    let sig = sig.unwrap();
    let on_server = on_server.unwrap();
    assert_eq!(hex::encode(sig.r), on_server.r);
    verify(&on_server);
    let again = phone.sign_with_presignature("user-8", &ids[0], &online, m, &[], &mut rng).await;
    assert!(matches!(again, Err(PartyError::UnknownPresignature(_))), "{again:?}");

    // The app's presignature storage is restored from the backup: the used presignature is in
    // it again, but the phone sees the store behind its counter and deletes everything first.
    presigs.restore(&backup);
    assert_eq!(presigs.len(), 2);
    let r =
        phone.sign_with_presignature("user-8", &ids[0], &online, [0x62; 32], &[], &mut rng).await;
    match r {
        Err(PartyError::PresignaturesRestored { deleted: 2 }) => {}
        other => panic!("expected the restored store to be emptied, got {other:?}"),
    }
    assert!(presigs.is_empty());
}
