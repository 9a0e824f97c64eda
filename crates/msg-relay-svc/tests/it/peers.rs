//! Two peered relays: either one can serve a session.

use std::time::Duration;

use msg_relay_api::Relay;
use msg_relay_client::{ClientConfig, HttpRelay, WsRelay};
use msg_relay_svc::RelayConfig;
use msg_relay_svc::testing::{TestRelay, spawn_relay, spawn_relay_on};

use crate::common::{TTL, id, small_config};

/// Starts relays A and B, each listing the other as its peer.
async fn pair() -> (TestRelay, TestRelay) {
    // B must know A's URL and A must know B's: bind A, start B pointing at A, then restart A
    // on its port pointing at B.
    let a = spawn_relay(small_config()).await.unwrap();
    let b = spawn_relay(RelayConfig { peers: vec![a.url().to_owned()], ..small_config() })
        .await
        .unwrap();
    let a_addr = a.addr();
    a.stop().await;
    let a =
        spawn_relay_on(a_addr, RelayConfig { peers: vec![b.url().to_owned()], ..small_config() })
            .await
            .unwrap();
    (a, b)
}

#[tokio::test]
async fn publish_on_one_ask_on_the_other() {
    let (a, b) = pair().await;
    let on_a = WsRelay::connect(a.url(), ClientConfig::default()).await.unwrap();
    let on_b = WsRelay::connect(b.url(), ClientConfig::default()).await.unwrap();

    // Published before the ask.
    on_a.publish(id(1), TTL, b"from a".to_vec()).await.unwrap();
    assert_eq!(on_b.ask(id(1)).await.unwrap(), b"from a");

    // Asked before the publish, in both directions.
    let waiting_on_a = tokio::spawn(async move {
        let r = on_a.ask(id(2)).await;
        (on_a, r)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    on_b.publish(id(2), TTL, b"from b".to_vec()).await.unwrap();
    let (on_a, got) = waiting_on_a.await.unwrap();
    assert_eq!(got.unwrap(), b"from b");

    // HTTP clients reach the peer too.
    let http_b = HttpRelay::new(b.url(), ClientConfig::default()).unwrap();
    on_a.publish(id(3), TTL, b"via http".to_vec()).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), http_b.ask(id(3))).await.unwrap().unwrap(),
        b"via http"
    );

    let text = b.state().engine().metrics().render(&b.state().engine().store().stats());
    assert!(!text.contains("relay_peer_hits_total 0\n"), "{text}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn forwarded_asks_are_not_forwarded_again() {
    let (a, b) = pair().await;
    let on_a = WsRelay::connect(a.url(), ClientConfig::default()).await.unwrap();
    // An ask for a message nobody has: A forwards it to B once; B must not bounce it back.
    let ask = tokio::time::timeout(Duration::from_millis(500), on_a.ask(id(9))).await;
    assert!(ask.is_err());
    let forwards = |r: &TestRelay| {
        let text = r.state().engine().metrics().render(&r.state().engine().store().stats());
        text.lines()
            .find_map(|l| l.strip_prefix("relay_peer_forwards_total "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(forwards(&a), 1);
    assert_eq!(forwards(&b), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn peers_must_share_a_token() {
    // Configuring peers without a token is refused at start.
    let config = RelayConfig {
        peers: vec!["http://127.0.0.1:9".to_owned()],
        peer_token: None,
        ..small_config()
    };
    assert!(matches!(
        msg_relay_svc::AppState::new(config),
        Err(msg_relay_svc::ConfigError::PeerTokenMissing)
    ));

    // A relay presenting a different token is not served forwarded asks.
    let a = spawn_relay(small_config()).await.unwrap();
    let b = spawn_relay(RelayConfig {
        peers: vec![a.url().to_owned()],
        peer_token: msg_relay_client::PeerToken::new("not-the-shared-secret"),
        ..small_config()
    })
    .await
    .unwrap();
    let on_a = WsRelay::connect(a.url(), ClientConfig::default()).await.unwrap();
    let on_b = WsRelay::connect(b.url(), ClientConfig::default()).await.unwrap();
    on_a.publish(id(1), TTL, b"only on a".to_vec()).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), on_b.ask(id(1))).await.is_err());
    let text = a.state().engine().metrics().render(&a.state().engine().store().stats());
    assert!(text.contains("relay_rejections_total{reason=\"forbidden\"} 1"), "{text}");
    a.stop().await;
    b.stop().await;
}
