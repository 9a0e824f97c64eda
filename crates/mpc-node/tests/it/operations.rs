//! Asynchronous operations on real nodes: `Prefer: respond-async` answers 202 at once, the
//! outcome is looked up with `GET /v1/operations/{id}` (also after a restart), and each
//! application's webhook gets a signed delivery, retried when the receiver fails.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use mpc_node_client::api::{OperationInfo, SessionConfig, SignRequestBody, SignatureResponse};
use mpc_node_client::{Client, ClientError};
use mpc_node_store::Store as _;

use crate::common::{Cluster, NodeSpec, random_sid, verify};

const SECRET: &str = "webhook secret of app-a, 40 characters..";

/// What the receiver got: headers and body of each request.
type Deliveries = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on loopback: records every delivery, answers 500 to the very first one.
#[derive(Clone, Default)]
struct Receiver {
    got: Deliveries,
}

impl Receiver {
    async fn start(&self) -> u16 {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hooks/mpc",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let mut got = me.got.lock().unwrap();
                    got.push((headers, body.to_vec()));
                    if got.len() == 1 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    /// The verified deliveries of operation `id` (each checked as a receiver must).
    fn deliveries(&self, id: &str) -> Vec<OperationInfo> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|(h, _)| h.get("x-mpc-webhook-id").is_some_and(|v| v == id))
            .map(|(h, body)| {
                let header = |n: &str| h.get(n).unwrap().to_str().unwrap().to_owned();
                mpc_node::webhooks::verify(
                    SECRET.as_bytes(),
                    &header("x-mpc-webhook-timestamp"),
                    &header("x-mpc-webhook-signature"),
                    body,
                    now,
                    Duration::from_secs(300),
                )
                .unwrap();
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }
}

fn sign_request(players: &[u16]) -> SignRequestBody {
    SignRequestBody {
        session: SessionConfig {
            session_id: random_sid(),
            players: players.to_vec(),
            public_keys: BTreeMap::new(),
        },
        message_hash: Some(hex::encode([9u8; 32])),
        message: None,
        hash_algorithm: None,
        path: Some("m/1".into()),
        presignature_id: None,
    }
}

/// Polls `GET /v1/operations/{id}` until it is no longer running.
async fn ended(client: &Client, id: &str) -> OperationInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let op = client.get_operation(id).await.unwrap();
        if op.status != "running" {
            return op;
        }
        assert!(Instant::now() < deadline, "{id} still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cluster_with_webhooks(port: u16, session_timeout_secs: u64) -> Cluster {
    let table = format!(
        "\n[[webhooks]]\napp = \"app-a\"\nurl = \"http://127.0.0.1:{port}/hooks/mpc\"\nsecret = \"{SECRET}\"\n"
    );
    Cluster::start(
        (1..=3)
            .map(|i| NodeSpec {
                tables: table.clone(),
                session_timeout_secs,
                ..NodeSpec::new(i, 3)
            })
            .collect(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_signature_is_answered_at_once_kept_across_a_restart_and_sent_to_the_webhook() {
    let receiver = Receiver::default();
    let port = receiver.start().await;
    let mut c = cluster_with_webhooks(port, 20).await;
    for r in c.generate("app-a", "k", 2, &[1, 2, 3]).await {
        r.unwrap();
    }
    let req = sign_request(&[1, 2]);
    let path = "/v1/keys/k/sign";

    // Node 1 alone cannot finish: it answers at once, running.
    let started = Instant::now();
    let op1 = c.client(1, "app-a").start_async(path, &req).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((op1.status.as_str(), op1.operation.as_str()), ("running", "sign"), "{op1:?}");
    assert_eq!(op1.operation_id.len(), 32);
    // The same request again names the same operation (no second run).
    let again = c.client(1, "app-a").start_async(path, &req).await.unwrap();
    assert_eq!(again.operation_id, op1.operation_id);
    // Another application cannot see it; an unknown id is 404.
    for (app, id) in [
        ("app-b", op1.operation_id.as_str()),
        ("app-a", "00000000000000000000000000000000"),
        ("app-a", "../keys"),
    ] {
        match c.client(1, app).get_operation(id).await {
            Err(ClientError::Api { status: 404, .. }) => {}
            other => panic!("{app} {id}: {other:?}"),
        }
    }

    let op2 = c.client(2, "app-a").start_async(path, &req).await.unwrap();
    assert_ne!(op2.operation_id, op1.operation_id, "each player names its own operation");
    let (end1, end2) = (
        ended(&c.client(1, "app-a"), &op1.operation_id).await,
        ended(&c.client(2, "app-a"), &op2.operation_id).await,
    );
    for end in [&end1, &end2] {
        assert_eq!((end.status.as_str(), end.http_status), ("succeeded", Some(200)), "{end:?}");
        let sig: SignatureResponse = serde_json::from_value(end.result.clone().unwrap()).unwrap();
        verify(&sig);
    }
    assert_eq!(end1.result.as_ref().unwrap()["der"], end2.result.as_ref().unwrap()["der"]);

    // Each node's webhook delivery arrives, signed; the receiver failed the very first one,
    // so it came again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (d1, d2) =
            (receiver.deliveries(&op1.operation_id), receiver.deliveries(&op2.operation_id));
        let ok =
            |d: &[OperationInfo]| d.iter().any(|o| o.status == "succeeded" && o.result.is_some());
        // The refused first delivery and its retry, and the other node's delivery.
        if ok(&d1) && ok(&d2) && d1.len() + d2.len() >= 3 {
            let first = if d1.len() == 2 { &d1 } else { &d2 };
            assert_eq!(first[0], first[1], "the retry carries the same operation");
            assert_eq!(d1.last().unwrap().result, end1.result);
            break;
        }
        assert!(Instant::now() < deadline, "deliveries missing (or not retried): {d1:?} {d2:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A restart keeps the outcome.
    c.stop_node(1).await;
    c.restart(1).await;
    let after = c.client(1, "app-a").get_operation(&op1.operation_id).await.unwrap();
    assert_eq!(after, end1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_cut_off_operation_says_why() {
    let receiver = Receiver::default();
    let port = receiver.start().await;
    let mut c = cluster_with_webhooks(port, 2).await;
    // Refused before a session starts: the synchronous call's error at once, and no operation.
    let unknown =
        c.client(1, "app-a").start_async("/v1/keys/nope/sign", &sign_request(&[1, 2])).await;
    assert!(
        matches!(&unknown, Err(ClientError::Api { status: 404, code, .. }) if code == "not_found"),
        "{unknown:?}"
    );
    let refused =
        c.client(1, "app-a").start_async("/v1/keys/k/sign", &serde_json::json!({"x": 1})).await;
    assert!(matches!(refused, Err(ClientError::Api { status: 400, .. })), "{refused:?}");
    let bad_threshold = mpc_node_client::api::GenerateKeyRequest {
        key_id: Some("t1".into()),
        threshold: 1,
        curve: "secp256k1".into(),
        session: sign_request(&[1, 2]).session,
    };
    let refused = c.client(1, "app-a").start_async("/v1/keys", &bad_threshold).await;
    assert!(matches!(refused, Err(ClientError::Api { status: 400, .. })), "{refused:?}");

    // Failed while running (node 2 never joins; 2-second rounds): 202, then failed with the
    // synchronous call's status and error, also to the webhook.
    for r in c.generate("app-a", "k", 2, &[1, 2, 3]).await {
        r.unwrap();
    }
    let op =
        c.client(1, "app-a").start_async("/v1/keys/k/sign", &sign_request(&[1, 2])).await.unwrap();
    assert_eq!(op.status, "running");
    let end = ended(&c.client(1, "app-a"), &op.operation_id).await;
    assert_eq!((end.status.as_str(), end.http_status), ("failed", Some(504)), "{end:?}");
    assert_eq!(end.error.as_ref().unwrap().code, "timeout");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !receiver.deliveries(&op.operation_id).iter().any(|d| d.status == "failed") {
        assert!(Instant::now() < deadline, "no delivery of the failure");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An operation left running by a node that died (its record says running when the node
    // starts again): failed as interrupted.
    c.stop_node(1).await;
    let path = c.dir.path().join("node1.sqlite");
    let id = "0123456789abcdef0123456789abcdef";
    {
        let store = mpc_node_store::SqliteStore::open(&path, b"correct horse").unwrap();
        assert!(store.create_operation("app-a", id, "sign").unwrap());
    }
    c.restart(1).await;
    let end = c.client(1, "app-a").get_operation(id).await.unwrap();
    assert_eq!((end.status.as_str(), end.http_status), ("failed", Some(503)), "{end:?}");
    let error = end.error.unwrap();
    assert_eq!(error.code, "interrupted");
    assert!(error.message.contains("outcome is unknown"), "{}", error.message);
}
