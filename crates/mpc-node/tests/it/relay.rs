//! The node and its relay: messages leave the relay once consumed, a full relay is reported as
//! full, `/readyz` follows the relay connection, and a relay restart is survived.

use std::time::Duration;

use http::Method;
use msg_relay_svc::testing::spawn_relay_on;
use msg_relay_svc::{Limits, RelayConfig};
use serde_json::Value;

use crate::common::{Cluster, NodeSpec, verify};

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(c: &Cluster, i: u16) -> (u16, Value) {
    let (st, body) = c.client(i, "app-a").raw(Method::GET, "/readyz", None, false).await.unwrap();
    (st.as_u16(), serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_leaves_nothing_at_the_relay() {
    let c = Cluster::three().await;
    for r in c.generate("app-a", "k", 2, &[1, 2, 3]).await {
        r.unwrap();
    }
    for (n, signers) in [[1, 2], [2, 3], [1, 3], [1, 2]].iter().enumerate() {
        for r in c.sign("app-a", "k", signers, [n as u8; 32], "m/1").await {
            verify(&r.unwrap());
        }
    }
    // Every message of the keygen and the four signatures was consumed by its receivers
    // (consumes are not answered, so the last ones may land a moment later).
    let store = c.relay.state().engine().store().clone();
    wait_until("the relay is empty", || store.stats().messages == 0).await;
    let stats = store.stats();
    assert_eq!((stats.charged_bytes, stats.expired_total), (0, 0));
    assert!(stats.consumed_total > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_relay_is_reported_as_full_not_unreachable() {
    let relay = RelayConfig {
        limits: Limits { max_total_bytes: 16 * 1024, ..Limits::default() },
        ..RelayConfig::default()
    };
    let c = Cluster::start_with_relay((1..=3).map(|i| NodeSpec::new(i, 3)).collect(), relay).await;
    for r in c.generate("app-a", "k", 2, &[1, 2, 3]).await {
        let e = r.unwrap_err();
        let mpc_node_client::ClientError::Api { status, code, message } = &e else {
            panic!("expected an API error, got {e}")
        };
        assert_eq!((*status, code.as_str()), (503, "relay_full"), "{message}");
        assert!(message.contains("relay is full"), "{message}");
    }
    // Nothing was decided: the key id is ERROR (a failed run), not stuck PENDING.
    let info = c.client(1, "app-a").get_key("k").await.unwrap();
    assert_eq!(info.status, "ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_relay_and_a_restarted_relay_serves_again() {
    let mut c = Cluster::three().await;
    assert_eq!(
        readyz(&c, 1).await,
        (200, serde_json::json!({"status": "ready", "relay": "connected"}))
    );
    for r in c.generate("app-a", "k", 2, &[1, 2, 3]).await {
        r.unwrap();
    }

    let addr = c.relay.addr();
    let config = RelayConfig::default();
    let relay = std::mem::replace(
        &mut c.relay,
        spawn_relay_on("127.0.0.1:0".parse().unwrap(), config.clone()).await.unwrap(),
    );
    relay.stop().await;
    let mut down = (0, Value::Null);
    for _ in 0..200 {
        down = readyz(&c, 2).await;
        if down.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(down.0, 503, "{down:?}");
    assert_eq!(down.1["error"]["code"], "not_ready");
    assert!(down.1["error"]["message"].as_str().unwrap().contains("relay"), "{down:?}");
    // `/healthz` is liveness only: the process is fine.
    let (st, _) = c.client(2, "app-a").raw(Method::GET, "/healthz", None, false).await.unwrap();
    assert_eq!(st.as_u16(), 200);

    // The relay comes back (empty) at the same address: nodes reconnect and sign again.
    let old = std::mem::replace(&mut c.relay, spawn_relay_on(addr, config).await.unwrap());
    old.stop().await;
    let mut up = (0, Value::Null);
    for _ in 0..400 {
        up = readyz(&c, 2).await;
        if up.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(up.0, 200, "{up:?}");
    for r in c.sign("app-a", "k", &[2, 3], [9; 32], "m").await {
        verify(&r.unwrap());
    }
}

/// Two relay replicas on one Redis, listed by every node. Node 2 starts a signature (and waits
/// for node 3) on replica A; A stops; node 3 joins; node 2 fails over to B during the run and
/// the signature completes. Later signatures go through B alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_fail_over_to_another_relay_replica_during_a_signature() {
    use msg_relay_svc::testing::{redis_store, spawn_relay_with_store, unique_prefix};
    const TEST: &str = "node_relay_failover";
    let prefix = unique_prefix(TEST);
    let config = RelayConfig::default();
    let mut relays = Vec::new();
    for _ in 0..2 {
        let Some(store) = redis_store(TEST, Some(&prefix), config.limits.quotas()).await else {
            return;
        };
        relays.push(
            spawn_relay_with_store(config.clone(), std::sync::Arc::new(store)).await.unwrap(),
        );
    }
    let mut c =
        Cluster::start_with_relays((1..=3).map(|i| NodeSpec::new(i, 3)).collect(), relays).await;
    for r in c.generate("app-a", "k", 2, &[1, 2, 3]).await {
        r.unwrap();
    }

    let req = mpc_node_client::api::SignRequestBody {
        session: mpc_node_client::api::SessionConfig {
            session_id: crate::common::random_sid(),
            players: vec![2, 3],
            public_keys: Default::default(),
        },
        message_hash: Some(hex::encode([5u8; 32])),
        message: None,
        hash_algorithm: None,
        path: Some("m".into()),
        presignature_id: None,
    };
    let first = {
        let client = c.client(2, "app-a");
        let req = req.clone();
        tokio::spawn(async move { client.sign("k", &req).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = std::mem::replace(&mut c.relay, c.other_relays.remove(0));
    a.stop().await;
    let second = c.client(3, "app-a").sign("k", &req).await.unwrap();
    let first = first.await.unwrap().unwrap();
    verify(&first);
    verify(&second);
    assert_eq!(first.der, second.der);
    for r in c.sign("app-a", "k", &[1, 3], [6; 32], "m").await {
        verify(&r.unwrap());
    }
}
