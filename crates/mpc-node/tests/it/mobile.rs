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

    let (phone, phone_id) = phone_party(&cluster, 42).await;
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

/// A phone party over its own relay connection, with in-memory stores.
async fn phone_party(cluster: &Cluster, seed: u8) -> (EmbeddedParty, Arc<Ed25519Identity>) {
    let id = Arc::new(Ed25519Identity::from_seed(&[seed; 32]));
    let relay =
        Arc::new(WsRelay::connect(cluster.relay.url(), ClientConfig::default()).await.unwrap());
    let party = EmbeddedParty::new(
        id.clone(),
        relay,
        Arc::new(MemoryKeyStore::default()),
        Arc::new(MemoryBanStore::default()),
        Arc::new(MemoryReplayGuard::new()),
    )
    .for_application("app-a");
    (party, id)
}

/// Phone and server sign `m` together; the signature verifies under `pk` (compressed, hex).
async fn phone_and_server_sign(
    phone: &EmbeddedParty,
    server: &mpc_node_client::Client,
    session: SessionConfig,
    key_id: &str,
    m: [u8; 32],
) -> String {
    let body = SignRequestBody {
        session: session.clone(),
        message_hash: Some(hex::encode(m)),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    };
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (p, s) =
        tokio::join!(phone.sign(key_id, &session, m, &[], &mut rng), server.sign(key_id, &body));
    let (p, s) = (p.unwrap(), s.unwrap());
    assert_eq!(hex::encode(p.r), s.r);
    verify(&s);
    s.public_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_refreshes_then_hands_its_share_to_a_new_phone() {
    use mpc_node_client::ReshareResult;
    use mpc_node_client::api::{RefreshRequestBody, ReshareRequestBody};

    let mut spec = NodeSpec::new(2, 2);
    spec.static_players = vec![2];
    let cluster = Cluster::start(vec![NodeSpec::new(1, 1), spec]).await;
    let server = cluster.client(2, "app-a");
    let (old_phone, old_id) = phone_party(&cluster, 50).await;
    let (new_phone, new_id) = phone_party(&cluster, 51).await;
    let keys = |pairs: &[(u16, String)]| pairs.iter().cloned().collect::<BTreeMap<_, _>>();
    let session = |players: Vec<u16>, public_keys: BTreeMap<u16, String>| SessionConfig {
        session_id: random_sid(),
        players,
        public_keys,
    };
    let two = keys(&[(1, old_id.public_key().to_string()), (2, public(2).to_string())]);
    let keygen = session(vec![1, 2], two.clone());
    let req = GenerateKeyRequest {
        key_id: Some("user-9".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: keygen.clone(),
    };
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (p, s) =
        tokio::join!(old_phone.generate("user-9", 2, &keygen, &mut rng), server.generate_key(&req));
    let pk = hex::encode(p.unwrap().public_key);
    assert_eq!(s.unwrap().public_key.as_ref(), Some(&pk));

    // Refresh: same key, new epoch at both; signing still works.
    let r = session(vec![1, 2], two.clone());
    let rb = RefreshRequestBody { session: r.clone() };
    let (p, s) =
        tokio::join!(old_phone.refresh("user-9", &r, &mut rng), server.refresh("user-9", &rb));
    assert_eq!(hex::encode(p.unwrap().public_key), pk);
    assert_eq!(s.unwrap().epoch, 1);
    assert_eq!(
        phone_and_server_sign(
            &old_phone,
            &server,
            session(vec![1, 2], two.clone()),
            "user-9",
            [1; 32]
        )
        .await,
        pk
    );

    // Reshare 2-of-2 -> 3-of-3: a new phone joins as player 1 (with the spec from the server),
    // the old phone continues as player 3; the threshold changes.
    let three = keys(&[
        (1, new_id.public_key().to_string()),
        (2, public(2).to_string()),
        (3, old_id.public_key().to_string()),
    ]);
    let mut body = ReshareRequestBody {
        session: session(vec![1, 2, 3], three.clone()),
        old_players: vec![1, 2],
        new_threshold: 3,
        spec: None,
    };
    // Without the spec, the new phone has nothing to join with.
    let e = new_phone
        .reshare("user-9", &body.session, &body.old_players, 3, None, &mut rng)
        .await
        .unwrap_err();
    assert!(matches!(e, mpc_node_client::PartyError::UnknownKey(_)), "{e:?}");
    let spec = hex::decode(server.reshare_spec("user-9", &body).await.unwrap().spec).unwrap();
    assert_eq!(
        old_phone.reshare_spec("user-9", &body.session, &body.old_players, 3).unwrap(),
        spec,
        "both holders compute the same spec"
    );
    body.spec = Some(hex::encode(&spec));
    let mut rng2 = rand_core::UnwrapErr(getrandom::SysRng);
    let (n, o, s) = tokio::join!(
        new_phone.reshare("user-9", &body.session, &[1, 2], 3, Some(&spec), &mut rng),
        old_phone.reshare("user-9", &body.session, &[1, 2], 3, None, &mut rng2),
        server.reshare("user-9", &body)
    );
    match (n.unwrap(), o.unwrap()) {
        (ReshareResult::Share(n), ReshareResult::Share(o)) => {
            assert_eq!((n.player, o.player), (1, 3));
            assert_eq!(hex::encode(n.public_key), pk);
            assert_eq!(o.public_key, n.public_key);
        }
        other => panic!("both phones are in the new committee: {other:?}"),
    }
    let info = s.unwrap().key.unwrap();
    assert_eq!((info.threshold, info.parties, info.epoch), (3, 3, 2));

    // Reshare 3-of-3 -> 2-of-2 on the new phone and the server: the old phone deals and leaves.
    let two_new = keys(&[(1, new_id.public_key().to_string()), (2, public(2).to_string())]);
    let body = ReshareRequestBody {
        session: session(vec![1, 2], two_new.clone()),
        old_players: vec![1, 2, 3],
        new_threshold: 2,
        spec: None,
    };
    let (n, o, s) = tokio::join!(
        new_phone.reshare("user-9", &body.session, &[1, 2, 3], 2, None, &mut rng),
        old_phone.reshare("user-9", &body.session, &[1, 2, 3], 2, None, &mut rng2),
        server.reshare("user-9", &body)
    );
    assert!(matches!(n.unwrap(), ReshareResult::Share(ref k) if k.player == 1));
    assert_eq!(o.unwrap(), ReshareResult::Removed);
    let info = s.unwrap().key.unwrap();
    assert_eq!((info.threshold, info.parties, info.epoch), (2, 2, 3));
    let gone =
        old_phone.sign("user-9", &session(vec![1, 2], two.clone()), [3; 32], &[], &mut rng).await;
    assert!(matches!(gone, Err(mpc_node_client::PartyError::UnknownKey(_))), "{gone:?}");

    // The new phone and the server sign under the unchanged public key.
    assert_eq!(
        phone_and_server_sign(&new_phone, &server, session(vec![1, 2], two_new), "user-9", [2; 32])
            .await,
        pk
    );
}
