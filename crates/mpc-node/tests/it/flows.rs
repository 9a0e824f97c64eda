//! Key generation and signing through the API with three nodes and the relay.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_2_of_3_sign_with_every_pair_and_idempotent_key_id() {
    let cluster = Cluster::three().await;
    let infos = cluster.generate("app-a", "wallet-1", 2, &[1, 2, 3]).await;
    let infos: Vec<_> = infos.into_iter().map(Result::unwrap).collect();
    for (k, info) in infos.iter().enumerate() {
        assert_eq!(info.status, "READY");
        assert_eq!(info.player, k as u16 + 1);
        assert_eq!((info.threshold, info.parties), (2, 3));
        assert_eq!(info.public_key, infos[0].public_key);
        assert!(info.ethereum_address.as_deref().unwrap().starts_with("0x"));
    }

    for pair in [[1u16, 2], [1, 3], [2, 3]] {
        let m = [pair[0] as u8 * 16 + pair[1] as u8; 32];
        let sigs = cluster.sign("app-a", "wallet-1", &pair, m, "m").await;
        let sigs: Vec<_> = sigs.into_iter().map(Result::unwrap).collect();
        assert_eq!(sigs[0], sigs[1], "both nodes return the same signature");
        assert_eq!(&sigs[0].public_key, infos[0].public_key.as_ref().unwrap());
        verify(&sigs[0]);
    }

    // Under a path: the signature verifies under the derived key the API reports.
    let sigs = cluster.sign("app-a", "wallet-1", &[3, 1], [9; 32], "m/44/60/0/0/7").await;
    let sig = sigs.into_iter().next().unwrap().unwrap();
    verify(&sig);
    let pk = cluster.client(2, "app-a").public_key("wallet-1", "m/44/60/0/0/7").await.unwrap();
    assert_eq!(pk.public_key, sig.public_key);
    assert_eq!(pk.path, "m/44/60/0/0/7");

    // Same key id again (new session): the READY key comes back unchanged, no new DKG.
    let again = cluster.generate("app-a", "wallet-1", 2, &[1, 2, 3]).await;
    for a in again {
        assert_eq!(a.unwrap().public_key, infos[0].public_key);
    }
    let list = cluster.client(1, "app-a").list_keys().await.unwrap();
    assert_eq!(list.keys.len(), 1);

    // A session id that was used before is refused at once (here: a new key id).
    let sid = random_sid();
    let r = cluster.generate_partial("app-a", "wallet-2", 2, &[1, 2, 3], &[1, 2, 3], &sid).await;
    assert!(r.iter().all(Result::is_ok));
    let r = cluster.generate_partial("app-a", "wallet-3", 2, &[1, 2, 3], &[1], &sid).await;
    let e = r[0].as_ref().unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(e.to_string().contains("session_id was already used"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_conflict_then_error_then_retry_with_a_new_key_id() {
    let mut specs: Vec<NodeSpec> = (1..=3).map(|i| NodeSpec::new(i, 3)).collect();
    for s in &mut specs {
        s.session_timeout_secs = 2;
    }
    let mut cluster = Cluster::start(specs).await;

    // Only node 1 is asked: its DKG waits for the others, the key is PENDING meanwhile.
    let sid = random_sid();
    let lonely = cluster.generate_partial("app-a", "k1", 2, &[1, 2, 3], &[1], &sid);
    let probe = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let req = serde_json::json!({
            "key_id": "k1", "threshold": 2,
            "session": {"session_id": random_sid(), "players": [1, 2, 3]}
        });
        let (st, body) = cluster
            .client(1, "app-a")
            .raw(http::Method::POST, "/v1/keys", Some(req.to_string().into()), true)
            .await
            .unwrap();
        let info = cluster.client(1, "app-a").get_key("k1").await.unwrap();
        (st, String::from_utf8_lossy(&body).into_owned(), info)
    };
    let (results, (st, body, info)) = tokio::join!(lonely, probe);
    assert_eq!(st.as_u16(), 409, "{body}");
    assert!(body.contains("PENDING"), "{body}");
    assert_eq!(info.status, "PENDING");
    assert_eq!(results[0].as_ref().unwrap_err().status(), Some(504));
    let info = cluster.client(1, "app-a").get_key("k1").await.unwrap();
    assert_eq!(info.status, "ERROR");
    assert!(info.error.unwrap().contains("timed out"));
    // The same key id again: a conflict that names the failure.
    let again = cluster.generate_partial("app-a", "k1", 2, &[1, 2, 3], &[1], &random_sid()).await;
    let e = again[0].as_ref().unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("failed to generate"), "{e}");

    // Node 3 is killed during key generation: the others fail with a timeout, key in ERROR.
    let all = cluster.generate("app-a", "k2", 2, &[1, 2, 3]);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let n = cluster.nodes[2].as_ref().unwrap().node().clone();
        n.close();
        n.abort_sessions();
    };
    let (results, ()) = tokio::join!(all, kill);
    assert!(
        results[..2].iter().all(|r| r.as_ref().unwrap_err().status() == Some(504)),
        "{results:?}"
    );
    assert!(results[2].is_err());
    cluster.kill(3).await;
    for i in [1, 2] {
        let info = cluster.client(i, "app-a").get_key("k2").await.unwrap();
        assert_eq!(info.status, "ERROR", "node {i}");
    }

    // Node 3 comes back; a retry with a new key id succeeds.
    cluster.restart(3).await;
    let results = cluster.generate("app-a", "k3", 2, &[1, 2, 3]).await;
    for r in results {
        assert_eq!(r.unwrap().status, "READY");
    }
}

/// The application is bound into the key-generation setup: a keygen whose nodes are called by
/// different applications (same key id and session id) never completes, and no node holds a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keygen_split_across_applications_fails_everywhere() {
    use mpc_node_client::api::{GenerateKeyRequest, SessionConfig};
    use std::collections::BTreeMap;
    let specs = (1..=3)
        .map(|i| {
            let mut s = NodeSpec::new(i, 3);
            s.session_timeout_secs = 3;
            s
        })
        .collect();
    let cluster = Cluster::start(specs).await;
    let session = SessionConfig {
        session_id: random_sid(),
        players: vec![1, 2, 3],
        public_keys: BTreeMap::new(),
    };
    let req = GenerateKeyRequest {
        key_id: Some("split".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session,
    };
    let (a, b, c) =
        (cluster.client(1, "app-a"), cluster.client(2, "app-b"), cluster.client(3, "app-b"));
    let (ra, rb, rc) =
        tokio::join!(a.generate_key(&req), b.generate_key(&req), c.generate_key(&req));
    for (who, r) in [("node 1 (app-a)", ra), ("node 2 (app-b)", rb), ("node 3 (app-b)", rc)] {
        let e = r.expect_err(who);
        assert!(matches!(e.status(), Some(504 | 502)), "{who}: {e}");
    }
    assert_ne!(a.get_key("split").await.unwrap().status, "READY");
    assert_ne!(b.get_key("split").await.unwrap().status, "READY");
}
