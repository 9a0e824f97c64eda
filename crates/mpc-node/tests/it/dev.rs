//! `mpc-node dev`: relay + three nodes from a fresh directory; keys survive a restart.

use std::collections::BTreeMap;

use mpc_node::dev::{self, DevOptions};
use mpc_node_client::api::{GenerateKeyRequest, SessionConfig, SignRequestBody};
use mpc_node_client::{Client, ClientError};
use msg_relay_client::{ClientConfig, ClientTls, WsRelay};

use crate::common::{futures_join_all, random_sid, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_generates_signs_and_keeps_keys_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DevOptions {
        dir: dir.path().to_owned(),
        port: 0,
        session_timeout_secs: 20,
        tls: false,
        webhook: None,
    };
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

/// `mpc-node dev --tls`: the relay and the three SDK APIs speak TLS with certificates of a
/// local CA; a 2-of-3 keygen and a signature go through them, and the clients that get it
/// wrong are told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_tls_cluster_generates_and_signs_through_a_tls_relay_and_tls_apis() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DevOptions {
        dir: dir.path().to_owned(),
        port: 0,
        session_timeout_secs: 20,
        tls: true,
        webhook: None,
    };
    let cluster = dev::start(&opts).await.unwrap();
    assert!(cluster.relay.url().starts_with("https://127.0.0.1:"), "{}", cluster.relay.url());
    let ca = cluster.ca_file.clone().unwrap();
    assert!(cluster.curl_examples().contains(&format!("curl --cacert {}", ca.display())));
    let trust = ClientTls::builder().public_roots(false).ca_file(&ca).unwrap().build().unwrap();
    let clients: Vec<Client> = cluster
        .nodes
        .iter()
        .zip(&cluster.api_keys)
        .map(|(n, k)| {
            assert!(n.url().starts_with("https://"), "{}", n.url());
            Client::new(&n.url(), k).unwrap().with_tls(trust.clone()).unwrap()
        })
        .collect();
    let req = GenerateKeyRequest {
        key_id: Some("tls-key".into()),
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
    for info in &infos {
        assert_eq!(info.as_ref().unwrap().public_key, pk);
    }
    let body = SignRequestBody {
        session: SessionConfig {
            session_id: random_sid(),
            players: vec![1, 3],
            public_keys: BTreeMap::new(),
        },
        message_hash: None,
        message: Some(hex::encode(b"over TLS")),
        hash_algorithm: Some("KECCAK256".into()),
        path: None,
        presignature_id: None,
    };
    let signers = [&clients[0], &clients[2]];
    let sigs = futures_join_all(signers.iter().map(|c| c.sign("tls-key", &body))).await;
    verify(&sigs.into_iter().next().unwrap().unwrap());

    // A client that does not trust the local CA (only the public roots).
    let node_url = cluster.nodes[0].url();
    let untrusted = Client::new(&node_url, &cluster.api_keys[0]).unwrap();
    match untrusted.list_keys().await {
        Err(ClientError::Tls(m)) => assert!(m.contains("not signed by a trusted CA"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Plain HTTP to the TLS port: a JSON 400 that says so.
    let plain =
        Client::new(&node_url.replace("https://", "http://"), &cluster.api_keys[0]).unwrap();
    match plain.list_keys().await {
        Err(ClientError::Api { status: 400, code, message }) => {
            assert_eq!(code, "tls_required");
            assert!(message.contains("https://"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The relay: without the CA the connection is refused at once with the cause; plain
    // ws:// to its TLS port is told to use TLS.
    let relay_url = cluster.relay.url().to_owned();
    let err = WsRelay::connect(&relay_url, ClientConfig::default()).await.unwrap_err();
    assert!(err.to_string().contains("not signed by a trusted CA"), "{err}");
    let plain_relay = relay_url.replace("https://", "http://");
    let err = WsRelay::connect(&plain_relay, ClientConfig::default()).await.unwrap_err();
    assert!(err.to_string().contains("speaks TLS on this port"), "{err}");
    cluster.stop().await;
}
