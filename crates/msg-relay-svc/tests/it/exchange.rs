//! A multi-party round-based exchange through the real relay, via the clients.

use std::sync::Arc;
use std::time::Duration;

use msg_relay_api::Relay;
use msg_relay_client::{ClientConfig, HttpRelay, WsRelay};
use msg_relay_svc::testing::spawn_relay;

use crate::common::{TTL, round_id, round_payload, small_config};

pub const PARTIES: u8 = 3;
pub const ROUNDS: u8 = 4;

/// One party: in each round, publish a message to every other party, then ask for every other
/// party's message to it and check the bytes.
pub async fn party(relay: Arc<dyn Relay>, session: u8, me: u8, rounds: std::ops::Range<u8>) {
    for round in rounds {
        for to in (0..PARTIES).filter(|p| *p != me) {
            relay
                .publish(round_id(session, me, to, round), TTL, round_payload(me, to, round))
                .await
                .unwrap();
        }
        for from in (0..PARTIES).filter(|p| *p != me) {
            let got = relay.ask(round_id(session, from, me, round)).await.unwrap();
            assert_eq!(got, round_payload(from, me, round));
        }
    }
}

#[tokio::test]
async fn three_parties_four_rounds_over_websocket_and_http() {
    let relay = spawn_relay(small_config()).await.unwrap();
    let mut parties = Vec::new();
    for me in 0..PARTIES {
        // Party 2 cannot hold a socket and uses HTTP long-poll.
        let client: Arc<dyn Relay> = if me == 2 {
            Arc::new(HttpRelay::new(relay.url(), ClientConfig::default()).unwrap())
        } else {
            Arc::new(WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap())
        };
        parties.push(tokio::spawn(party(client, 1, me, 0..ROUNDS)));
    }
    for p in parties {
        tokio::time::timeout(Duration::from_secs(30), p).await.unwrap().unwrap();
    }
    let stats = relay.state().engine().store().stats();
    assert_eq!(stats.messages, u64::from(PARTIES) * u64::from(PARTIES - 1) * u64::from(ROUNDS));
    assert_eq!(stats.waiters, 0);
    relay.stop().await;
}

#[tokio::test]
async fn client_errors_map_to_relay_errors() {
    use msg_relay_api::RelayError;
    let relay = spawn_relay(small_config()).await.unwrap();
    let ws = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
    let http = HttpRelay::new(relay.url(), ClientConfig::default()).unwrap();
    let clients: [(&str, &dyn Relay); 2] = [("ws", &ws), ("http", &http)];
    for (n, (name, client)) in clients.into_iter().enumerate() {
        let id = round_id(9, n as u8, 0, 0);
        client.publish(id, TTL, b"a".to_vec()).await.unwrap();
        client.publish(id, TTL, b"a".to_vec()).await.unwrap();
        assert_eq!(
            client.publish(id, TTL, b"b".to_vec()).await,
            Err(RelayError::Conflict(id)),
            "{name}"
        );
        assert_eq!(
            client.publish(id, TTL, vec![0; 2000]).await,
            Err(RelayError::TooLarge { size: 2000, max: 1024 }),
            "{name}"
        );
        assert_eq!(
            client.publish(id, Duration::from_secs(601), b"a".to_vec()).await,
            Err(RelayError::TtlTooLong {
                requested: Duration::from_secs(601),
                max: Duration::from_secs(600)
            }),
            "{name}"
        );
        assert_eq!(client.ask(id).await.unwrap(), b"a");
    }
    relay.stop().await;
}

#[tokio::test]
async fn dropped_asks_are_withdrawn_from_the_relay() {
    let relay = spawn_relay(small_config()).await.unwrap(); // 8 asks per connection
    let ws = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
    // Many more abandoned asks than the per-connection limit: each is cancelled when dropped.
    for n in 0..40u8 {
        let ask =
            tokio::time::timeout(Duration::from_millis(5), ws.ask(round_id(7, n, 0, 0))).await;
        assert!(ask.is_err());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(relay.state().engine().store().stats().waiters, 0);
    ws.publish(round_id(7, 99, 0, 0), TTL, b"still fine".to_vec()).await.unwrap();
    assert_eq!(ws.ask(round_id(7, 99, 0, 0)).await.unwrap(), b"still fine");
    relay.stop().await;
}

/// The same exchange with the message lifecycle: every message is published for its readers
/// and consumed once read, so the relay ends empty (and no message lingers for its TTL).
#[tokio::test]
async fn consumed_messages_leave_the_relay_over_websocket_and_http() {
    let relay = spawn_relay(small_config()).await.unwrap();
    let mut parties = Vec::new();
    for me in 0..PARTIES {
        let client: Arc<dyn Relay> = if me == 2 {
            Arc::new(HttpRelay::new(relay.url(), ClientConfig::default()).unwrap())
        } else {
            Arc::new(WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap())
        };
        parties.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                // A broadcast every other party reads, and one p2p message per party.
                let bcast = round_id(2, me, 0xff, round);
                client.publish_for(bcast, TTL, 2, format!("b{me}").into_bytes()).await.unwrap();
                for to in (0..PARTIES).filter(|p| *p != me) {
                    let id = round_id(2, me, to, round);
                    client.publish_for(id, TTL, 1, round_payload(me, to, round)).await.unwrap();
                }
                for from in (0..PARTIES).filter(|p| *p != me) {
                    let id = round_id(2, from, me, round);
                    assert_eq!(client.ask(id).await.unwrap(), round_payload(from, me, round));
                    client.consume(id, u16::from(me)).await.unwrap();
                    let bcast = round_id(2, from, 0xff, round);
                    assert_eq!(client.ask(bcast).await.unwrap(), format!("b{from}").into_bytes());
                    client.consume(bcast, u16::from(me)).await.unwrap();
                }
            }
        }));
    }
    for p in parties {
        tokio::time::timeout(Duration::from_secs(30), p).await.unwrap().unwrap();
    }
    // Consumes are not answered: give the last ones a moment to land.
    let engine = relay.state().engine();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.store().stats().messages > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = engine.store().stats();
    let sent = u64::from(PARTIES) * u64::from(PARTIES) * u64::from(ROUNDS);
    assert_eq!((stats.messages, stats.charged_bytes, stats.consumed_total), (0, 0, sent));
    relay.stop().await;
}

#[tokio::test]
async fn a_full_relay_is_reported_as_full_over_both_clients() {
    use msg_relay_api::RelayError;
    let mut config = small_config();
    config.limits.max_total_bytes = 1000 + 64;
    let relay = spawn_relay(config).await.unwrap();
    let ws = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
    let http = HttpRelay::new(relay.url(), ClientConfig::default()).unwrap();
    ws.publish_for(id_of(1), TTL, 1, vec![7; 1000]).await.unwrap();
    let full = RelayError::StoreFull { held: 1064, limit: 1064 };
    assert_eq!(ws.publish(id_of(2), TTL, b"x".to_vec()).await, Err(full.clone()));
    assert_eq!(http.publish(id_of(2), TTL, b"x".to_vec()).await, Err(full));
    // Once its reader consumed the message there is room again.
    http.consume(id_of(1), 0).await.unwrap();
    http.publish(id_of(2), TTL, b"x".to_vec()).await.unwrap();
    relay.stop().await;
}

fn id_of(n: u8) -> msg_relay_api::MessageId {
    round_id(3, n, 0, 0)
}
