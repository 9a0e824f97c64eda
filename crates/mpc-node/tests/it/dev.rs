//! `mpc-node dev`: relay + three nodes from a fresh directory; keys survive a restart.

use std::collections::BTreeMap;

use mpc_node::dev::{self, DevOptions};
use mpc_node_client::Client;
use mpc_node_client::api::{GenerateKeyRequest, SessionConfig, SignRequestBody};

use crate::common::{futures_join_all, random_sid, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_generates_signs_and_keeps_keys_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DevOptions { dir: dir.path().to_owned(), port: 0, session_timeout_secs: 20 };
    let cluster = dev::start(&opts).await.unwrap();
    let examples = cluster.curl_examples();
    assert!(examples.contains("/v1/keys/demo-key/sign"));
    assert!(examples.contains(&cluster.api_keys[0]));
    let clients: Vec<Client> = cluster
        .nodes
        .iter()
        .zip(&cluster.api_keys)
        .map(|(n, k)| Client::new(&n.url(), k).unwrap())
        .collect();
    let req = GenerateKeyRequest {
        key_id: Some("demo-key".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: SessionConfig {
            session_id: random_sid(),
            players: vec![1, 2, 3],
            public_keys: BTreeMap::new(),
        },
    };
    let infos = futures_join_all(clients.iter().map(|c| c.generate_key(&req))).await;
    let pk = infos[0].as_ref().unwrap().public_key.clone();
    cluster.stop().await;
    for f in ["node1.toml", "node2.toml", "node3.toml", "api-keys.txt", "node1/mpc-node.sqlite"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }

    // Second start on the same directory: same API keys, the key is still there and signs.
    let cluster = dev::start(&opts).await.unwrap();
    let clients: Vec<Client> = cluster
        .nodes
        .iter()
        .zip(&cluster.api_keys)
        .map(|(n, k)| Client::new(&n.url(), k).unwrap())
        .collect();
    assert_eq!(clients[2].get_key("demo-key").await.unwrap().public_key, pk);
    let body = SignRequestBody {
        session: SessionConfig {
            session_id: random_sid(),
            players: vec![2, 3],
            public_keys: BTreeMap::new(),
        },
        message_hash: None,
        message: Some(hex::encode(b"hello")),
        hash_algorithm: Some("KECCAK256".into()),
        path: Some("m/44/60/0/0/0".into()),
        presignature_id: None,
    };
    let sigs = futures_join_all(clients[1..].iter().map(|c| c.sign("demo-key", &body))).await;
    let sig = sigs.into_iter().next().unwrap().unwrap();
    verify(&sig);
    cluster.stop().await;
}
