//! The relay restarts (same port, empty memory store) in the middle of an exchange; clients
//! reconnect, re-issue what was outstanding, republish their messages, and the exchange
//! completes.

use std::sync::Arc;
use std::time::Duration;

use msg_relay_api::Relay;
use msg_relay_client::{ClientConfig, WsRelay};
use msg_relay_svc::testing::{spawn_relay, spawn_relay_on};
use tokio::sync::{mpsc, watch};

use crate::common::small_config;
use crate::exchange::{PARTIES, ROUNDS, party};

#[tokio::test]
async fn exchange_survives_a_relay_restart() {
    let relay = spawn_relay(small_config()).await.unwrap();
    let addr = relay.addr();
    let config = ClientConfig {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..ClientConfig::default()
    };
    let (halfway_tx, mut halfway_rx) = mpsc::channel::<u8>(8);
    let (go_tx, go_rx) = watch::channel(false);
    let mut parties = Vec::new();
    let mut clients = Vec::new();
    for me in 0..PARTIES {
        let client = Arc::new(WsRelay::connect(relay.url(), config.clone()).await.unwrap());
        clients.push(Arc::clone(&client));
        let halfway = halfway_tx.clone();
        let mut go = go_rx.clone();
        parties.push(tokio::spawn(async move {
            let relay: Arc<dyn Relay> = client;
            party(Arc::clone(&relay), 2, me, 0..2).await;
            halfway.send(me).await.unwrap();
            go.wait_for(|g| *g).await.unwrap();
            // Rounds 2 and 3 start while the relay is down.
            party(relay, 2, me, 2..ROUNDS).await;
        }));
    }
    for _ in 0..PARTIES {
        halfway_rx.recv().await.unwrap();
    }
    relay.stop().await;
    go_tx.send_replace(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(clients.iter().all(|c| !c.is_connected()));

    let relay = spawn_relay_on(addr, small_config()).await.unwrap();
    for p in parties {
        tokio::time::timeout(Duration::from_secs(30), p).await.unwrap().unwrap();
    }
    assert!(clients.iter().all(|c| c.is_connected()));
    // The restarted relay got the later rounds, and the earlier ones again (republished).
    let stats = relay.state().engine().store().stats();
    assert_eq!(stats.messages, u64::from(PARTIES) * u64::from(PARTIES - 1) * u64::from(ROUNDS));
    relay.stop().await;
}
