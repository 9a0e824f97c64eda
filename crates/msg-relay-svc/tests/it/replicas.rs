//! Relay replicas: several relay processes on one Redis act as one relay, and clients given
//! several relay URLs fail over among them.

use std::sync::Arc;
use std::time::Duration;

use msg_relay_api::Relay;
use msg_relay_client::{ClientConfig, WsRelay};
use msg_relay_svc::store::MessageStore;
use msg_relay_svc::testing::{TestRelay, redis_store, spawn_relay, spawn_relay_with_store};
use tokio::sync::{mpsc, watch};

use crate::common::small_config;
use crate::exchange::{PARTIES, ROUNDS, party};

fn fast_reconnect() -> ClientConfig {
    ClientConfig {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

/// Two relays on one Redis prefix, or `None` (skipped) without a Redis server.
async fn two_replicas(test: &str) -> Option<(TestRelay, TestRelay)> {
    let prefix = msg_relay_svc::testing::unique_prefix(test);
    let quotas = small_config().limits.quotas();
    let a: Arc<dyn MessageStore> = Arc::new(redis_store(test, Some(&prefix), quotas).await?);
    let b: Arc<dyn MessageStore> = Arc::new(redis_store(test, Some(&prefix), quotas).await?);
    let a = spawn_relay_with_store(small_config(), a).await.unwrap();
    let b = spawn_relay_with_store(small_config(), b).await.unwrap();
    Some((a, b))
}

#[tokio::test]
async fn an_unreachable_first_url_is_skipped() {
    let relay = spawn_relay(small_config()).await.unwrap();
    // Port 9 (discard) on loopback refuses connections.
    let urls = ["http://127.0.0.1:9", relay.url()];
    let client = WsRelay::connect_any(&urls, fast_reconnect()).await.unwrap();
    assert_eq!(client.current_url(), &client.urls()[1]);
    client.publish(crate::common::id(1), crate::common::TTL, b"x".to_vec()).await.unwrap();
    assert_eq!(client.ask(crate::common::id(1)).await.unwrap(), b"x");
    // One string may list the URLs too; errors name every URL tried.
    let err = WsRelay::connect_any(
        &["http://127.0.0.1:9, http://127.0.0.1:7"],
        ClientConfig { connect_timeout: Duration::from_millis(500), ..fast_reconnect() },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("127.0.0.1:9") && err.contains("127.0.0.1:7"), "{err}");
    relay.stop().await;
}

#[tokio::test]
async fn parties_on_different_replicas_complete_an_exchange() {
    let Some((a, b)) = two_replicas("replicas_exchange").await else { return };
    let mut parties = Vec::new();
    for me in 0..PARTIES {
        // Party 0 on replica A, party 1 on B, party 2 on A again.
        let url = if me == 1 { b.url() } else { a.url() };
        let client: Arc<dyn Relay> =
            Arc::new(WsRelay::connect(url, ClientConfig::default()).await.unwrap());
        parties.push(tokio::spawn(party(client, 11, me, 0..ROUNDS)));
    }
    for p in parties {
        tokio::time::timeout(Duration::from_secs(30), p).await.unwrap().unwrap();
    }
    // Both replicas see the one store.
    let held = u64::from(PARTIES) * u64::from(PARTIES - 1) * u64::from(ROUNDS);
    for relay in [&a, &b] {
        let stats = relay.state().engine().store().current_stats().await.unwrap();
        assert_eq!(stats.messages, held);
    }
    a.stop().await;
    b.stop().await;
}

/// All parties start on replica A (B listed second); A goes away after two rounds; the
/// clients fail over to B, re-issue what was outstanding, and the exchange completes. The
/// messages of the first rounds were never lost: they are in Redis.
#[tokio::test]
async fn a_replica_that_goes_away_mid_exchange_is_failed_over() {
    let Some((a, b)) = two_replicas("replicas_failover").await else { return };
    let urls = [a.url().to_owned(), b.url().to_owned()];
    let (halfway_tx, mut halfway_rx) = mpsc::channel::<u8>(8);
    let (go_tx, go_rx) = watch::channel(false);
    let mut parties = Vec::new();
    let mut clients = Vec::new();
    for me in 0..PARTIES {
        let client = Arc::new(WsRelay::connect_any(&urls, fast_reconnect()).await.unwrap());
        assert_eq!(client.current_url(), &client.urls()[0]);
        clients.push(Arc::clone(&client));
        let halfway = halfway_tx.clone();
        let mut go = go_rx.clone();
        parties.push(tokio::spawn(async move {
            let relay: Arc<dyn Relay> = client;
            party(Arc::clone(&relay), 12, me, 0..2).await;
            halfway.send(me).await.unwrap();
            go.wait_for(|g| *g).await.unwrap();
            party(relay, 12, me, 2..ROUNDS).await;
        }));
    }
    for _ in 0..PARTIES {
        halfway_rx.recv().await.unwrap();
    }
    a.stop().await;
    go_tx.send_replace(true);
    for p in parties {
        tokio::time::timeout(Duration::from_secs(30), p).await.unwrap().unwrap();
    }
    for client in &clients {
        assert!(client.is_connected());
        assert_eq!(client.current_url(), &client.urls()[1], "failed over to replica B");
    }
    let stats = b.state().engine().store().current_stats().await.unwrap();
    assert_eq!(stats.messages, u64::from(PARTIES) * u64::from(PARTIES - 1) * u64::from(ROUNDS));
    b.stop().await;
}

/// A Redis server of this test's own, on a free loopback port, stopped on drop.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""])
            .args(["--appendonly", "no", "--maxmemory-policy", "noeviction"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (install it, or unset MPC_TEST_REDIS_URL)");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Redis goes away and comes back (empty): `/readyz` says 503 meanwhile, requests fail with
/// a clear error instead of hanging, and afterwards the store serves again, including a
/// waiter that was waiting through the outage (the wake-up subscription is renewed).
#[tokio::test]
async fn a_redis_restart_is_survived() {
    // Runs where a Redis server can be started (CI, or `source .ci/services`).
    if msg_relay_svc::testing::redis_url("redis_restart").is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut redis = OwnRedis::start(port);
    let config = msg_relay_svc::redis_store::RedisConfig {
        url: format!("redis://127.0.0.1:{}/", redis.port),
        prefix: "restart:".into(),
        quotas: small_config().limits.quotas(),
    };
    let store = Arc::new(msg_relay_svc::redis_store::RedisStore::connect(config).await.unwrap());
    let relay = spawn_relay_with_store(small_config(), store.clone()).await.unwrap();
    // `GET /readyz` over plain HTTP/1.1; the whole answer.
    let readyz = |url: String| async move {
        let addr = url.trim_start_matches("http://").to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap()
    };
    assert!(readyz(relay.url().to_owned()).await.starts_with("HTTP/1.1 200"));

    redis.kill();
    let answer = readyz(relay.url().to_owned()).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("unavailable"), "{answer}");
    let id = crate::common::id(42);
    let refused =
        store.put(id, msg_relay_svc::store::Source::LOCAL, crate::common::TTL, 0, "x".into());
    let refused = tokio::time::timeout(Duration::from_secs(30), refused).await.unwrap();
    assert!(matches!(refused, Err(msg_relay_svc::store::StoreError::Backend(_))), "{refused:?}");
    // A waiter through the outage.
    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.wait(id, 0, Duration::from_secs(30)).await })
    };

    let _redis = OwnRedis::start(port);
    let started = std::time::Instant::now();
    while !readyz(relay.url().to_owned()).await.starts_with("HTTP/1.1 200") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not ready again after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = WsRelay::connect(relay.url(), fast_reconnect()).await.unwrap();
    client.publish(id, crate::common::TTL, b"after".to_vec()).await.unwrap();
    let found = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
    assert_eq!(found.unwrap().map(|(_, p)| p), Some(bytes::Bytes::from_static(b"after")));
    relay.stop().await;
}
