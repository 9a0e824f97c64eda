//! Two replicas of one player on one PostgreSQL database (`.ci/services`), with players 2 and
//! 3 on SQLite, through a real relay and the SDK API: a key made through one replica is used
//! through the other; the single-use rules hold across them (a presignature is finished once, a
//! key generation runs once); a ban written by one is enforced by the other at once. Without a
//! test server (and outside CI) the tests skip with a message.

use std::collections::BTreeMap;

use mpc_node::server::RunningNode;
use mpc_node_client::Client;
use mpc_node_client::api::{PresignRequestBody, SessionConfig, SignRequestBody};

use crate::common::{Cluster, NodeSpec, api_key, futures_join_all, random_sid, verify};

const APP: &str = "app-a";

/// Players 1..=3; player 1's node on a new PostgreSQL database, and a second replica of it
/// (same configuration, its own port). `None` without a test server.
async fn cluster_with_replica() -> Option<(Cluster, RunningNode)> {
    let url = mpc_node_store::testing::postgres_database()?;
    let ca = mpc_node_store::testing::postgres_ca().expect("MPC_TEST_POSTGRES_CA");
    let mut specs: Vec<NodeSpec> = (1..=3).map(|i| NodeSpec::new(i, 3)).collect();
    specs[0].database_url = url;
    specs[0].extra = format!("database_ca_file = \"{}\"\n", ca.display());
    let cluster = Cluster::start(specs).await;
    let mut second = cluster.specs[0].clone();
    second.port = 0;
    let replica = RunningNode::start(second.config(cluster.relay.url())).await.unwrap();
    Some((cluster, replica))
}

fn client_of(node: &RunningNode) -> Client {
    Client::new(&node.url(), &api_key(APP, 1))
        .unwrap()
        .with_timeout(std::time::Duration::from_secs(90))
}

fn session(sid: &str, players: &[u16]) -> SessionConfig {
    SessionConfig {
        session_id: sid.to_owned(),
        players: players.to_vec(),
        public_keys: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_through_one_replica_signs_through_the_other() {
    let Some((cluster, replica)) = cluster_with_replica().await else { return };
    let made = cluster.generate(APP, "w", 2, &[1, 2, 3]).await;
    let pk = made[0].as_ref().unwrap().public_key.clone();
    let b = client_of(&replica);
    assert_eq!(b.get_key("w").await.unwrap().public_key, pk);
    let req = SignRequestBody {
        session: session(&random_sid(), &[1, 2]),
        message_hash: Some(hex::encode([5; 32])),
        message: None,
        hash_algorithm: None,
        path: Some("m/1".into()),
        presignature_id: None,
    };
    let c2 = cluster.client(2, APP);
    let (s1, s2) = tokio::join!(b.sign("w", &req), c2.sign("w", &req));
    let sig = s1.unwrap();
    assert_eq!(sig, s2.unwrap());
    verify(&sig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presignature_finished_100_times_through_two_replicas_signs_once() {
    let Some((cluster, replica)) = cluster_with_replica().await else { return };
    cluster.generate(APP, "w", 2, &[1, 2, 3]).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let pre = PresignRequestBody { session: session(&random_sid(), &[1, 2]), count: 1, path: None };
    let (a, b) = (cluster.client(1, APP), client_of(&replica));
    let c2 = cluster.client(2, APP);
    let made = futures_join_all([a.presign("w", &pre), c2.presign("w", &pre)]).await;
    let id = made[0].as_ref().unwrap().presignature_ids[0].clone();
    let finish = SignRequestBody {
        session: session(&id, &[1, 2]),
        message_hash: Some(hex::encode([7; 32])),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: Some(id.clone()),
    };
    // 100 finishes of player 1's half, alternating between the replicas, and player 2's once.
    let player1 = futures_join_all((0..100).map(|i| {
        let c = if i % 2 == 0 { &a } else { &b };
        let body = &finish;
        async move { (i % 2, c.sign("w", body).await) }
    }));
    let (player1, theirs) = tokio::join!(player1, c2.sign("w", &finish));
    let theirs = theirs.unwrap();
    verify(&theirs);
    let mut winners = std::collections::BTreeSet::new();
    for (replica, r) in &player1 {
        match r {
            Ok(sig) => {
                assert_eq!(sig, &theirs, "one signature, whoever answers");
                winners.insert(*replica);
            }
            Err(e) => assert!(matches!(e.status(), Some(404 | 409)), "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one replica finished the presignature");
    // Gone on both replicas.
    for c in [&a, &b] {
        let again = SignRequestBody { message_hash: Some(hex::encode([8; 32])), ..finish.clone() };
        let e = c.sign("w", &again).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_on_one_key_generation_run_it_once() {
    let Some((cluster, replica)) = cluster_with_replica().await else { return };
    let sid = random_sid();
    let req = mpc_node_client::api::GenerateKeyRequest {
        key_id: Some("raced".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: session(&sid, &[1, 2, 3]),
    };
    let (a, b) = (cluster.client(1, APP), client_of(&replica));
    let (c2, c3) = (cluster.client(2, APP), cluster.client(3, APP));
    let (ra, rb, r2, r3) = tokio::join!(
        a.generate_key(&req),
        b.generate_key(&req),
        c2.generate_key(&req),
        c3.generate_key(&req)
    );
    let pk = r2.unwrap().public_key;
    assert_eq!(r3.unwrap().public_key, pk);
    // One replica ran the generation; the other was refused (the key was PENDING, or the
    // session id already spent) without running a second one.
    let (ok, refused): (Vec<_>, Vec<_>) = [ra, rb].into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 1, "{refused:?}");
    assert_eq!(ok[0].as_ref().unwrap().public_key, pk);
    let e = refused[0].as_ref().unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    // Both replicas answer the READY key now.
    for c in [&a, &b] {
        let info = c.get_key("raced").await.unwrap();
        assert_eq!((info.status.as_str(), &info.public_key), ("READY", &pk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_written_through_one_replica_is_enforced_by_the_other_at_once() {
    let Some((cluster, replica)) = cluster_with_replica().await else { return };
    cluster.generate(APP, "w", 2, &[1, 2, 3]).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let b = client_of(&replica);
    let req = |players: &[u16]| SignRequestBody {
        session: session(&random_sid(), players),
        message_hash: Some(hex::encode([1; 32])),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    };
    // Replica B signs with player 2 once, so it has the share cached.
    let r = req(&[1, 2]);
    let c2 = cluster.client(2, APP);
    let (x, y) = tokio::join!(b.sign("w", &r), c2.sign("w", &r));
    x.unwrap();
    y.unwrap();
    // Another handle on the shared database records that player 2 is banned (as replica A's
    // protocol run would).
    let url = cluster.specs[0].database_url.clone();
    tokio::task::spawn_blocking(move || {
        let ca = mpc_node_store::testing::postgres_ca().unwrap();
        let tls = dkls_tls::ClientTls::builder().public_roots(false).ca_file(ca).unwrap().build();
        let options = mpc_node_store::PgOptions { tls: Some(tls.unwrap()), ..Default::default() };
        let store = mpc_node_store::PgStore::open_with(&url, b"correct horse", &options).unwrap();
        mpc_node_store::Store::record_ban(&store, APP, "w", 2, "test: bad proof").unwrap();
    })
    .await
    .unwrap();
    let e = b.sign("w", &req(&[1, 2])).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(e.to_string().contains("player 2 is banned"), "{e}");
    // Signing without player 2 still works through B.
    let r = req(&[1, 3]);
    let c3 = cluster.client(3, APP);
    let (x, y) = tokio::join!(b.sign("w", &r), c3.sign("w", &r));
    verify(&x.unwrap());
    y.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_and_made_again_through_one_replica_is_not_served_stale_by_the_other() {
    let Some((cluster, replica)) = cluster_with_replica().await else { return };
    cluster.generate(APP, "w", 2, &[1, 2, 3]).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let b = client_of(&replica);
    let c2 = cluster.client(2, APP);
    let sign = |m: u8| SignRequestBody {
        session: session(&random_sid(), &[1, 2]),
        message_hash: Some(hex::encode([m; 32])),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    };
    // Replica B signs once: it now holds the share of the first key in memory.
    let r = sign(1);
    let (x, y) = tokio::join!(b.sign("w", &r), c2.sign("w", &r));
    x.unwrap();
    y.unwrap();
    // Through replica A (and players 2, 3): delete the key and generate a new one, same name,
    // same epoch 0.
    for i in 1..=3 {
        cluster.client(i, APP).delete_key("w").await.unwrap();
    }
    let made = cluster.generate(APP, "w", 2, &[1, 2, 3]).await;
    let pk = made[0].as_ref().unwrap().public_key.clone();
    // Replica B signs with the new share, under the new public key.
    let r = sign(2);
    let (x, y) = tokio::join!(b.sign("w", &r), c2.sign("w", &r));
    let sig = x.unwrap();
    assert_eq!(sig, y.unwrap());
    assert_eq!(Some(sig.public_key.clone()), pk);
    verify(&sig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starting_does_not_fail_the_key_another_replica_is_generating() {
    let Some((cluster, replica)) = cluster_with_replica().await else { return };
    drop(replica);
    // Only player 1 (replica A) is asked: its generation waits for the others, PENDING.
    let sid = random_sid();
    let waiting = cluster.generate_partial(APP, "slow", 2, &[1, 2, 3], &[1], &sid);
    let start_replica = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut spec = cluster.specs[0].clone();
        spec.port = 0;
        let b = RunningNode::start(spec.config(cluster.relay.url())).await.unwrap();
        let info = client_of(&b).get_key("slow").await.unwrap();
        // Then players 2 and 3 join the session, and it completes.
        let rest = cluster.generate_partial(APP, "slow", 2, &[1, 2, 3], &[2, 3], &sid).await;
        (info, rest)
    };
    let (first, (info, rest)) = tokio::join!(waiting, start_replica);
    assert_eq!(info.status, "PENDING", "{:?}", info.error);
    let pk = first[0].as_ref().unwrap().public_key.clone();
    assert!(rest.iter().all(|r| r.as_ref().unwrap().public_key == pk));
}

/// An asynchronous signature started through one replica: the other replica answers for it
/// (the same id for the same request, then its outcome), as the store is shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_operation_started_on_one_replica_is_answered_by_the_other() {
    let Some((cluster, replica)) = cluster_with_replica().await else { return };
    for r in cluster.generate(APP, "w", 2, &[1, 2, 3]).await {
        r.unwrap();
    }
    let req = SignRequestBody {
        session: session(&random_sid(), &[1, 2]),
        message_hash: Some(hex::encode([8; 32])),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    };
    let (a, b) = (cluster.client(1, APP), client_of(&replica));
    let op = a.start_async("/v1/keys/w/sign", &req).await.unwrap();
    let same = b.start_async("/v1/keys/w/sign", &req).await.unwrap();
    assert_eq!(same.operation_id, op.operation_id);
    cluster.client(2, APP).sign("w", &req).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let end = loop {
        let got = b.get_operation(&op.operation_id).await.unwrap();
        if got.status != "running" {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(end.status, "succeeded", "{end:?}");
    let sig: mpc_node_client::api::SignatureResponse =
        serde_json::from_value(end.result.unwrap()).unwrap();
    verify(&sig);
}
