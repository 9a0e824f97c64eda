//! Reconnect, re-issue, cancel, timeouts and error mapping of the WebSocket client.

use std::time::Duration;

use msg_relay_api::wire::{AckStatus, ErrorCode, Frame};
use msg_relay_api::{MessageId, Relay, RelayError, Release};
use msg_relay_client::{ClientConfig, ClientError, HttpRelay, WsRelay};

use crate::fake::FakeRelay;

const TTL: Duration = Duration::from_secs(60);

fn id(b: u8) -> MessageId {
    MessageId([b; 32])
}

fn fast() -> ClientConfig {
    ClientConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn unacknowledged_publish_and_outstanding_ask_are_reissued_after_reconnect() {
    let fake = FakeRelay::bind().await;
    let client = WsRelay::new(&fake.url(), fast()).unwrap();
    let publish = client.publish(id(1), TTL, b"p".to_vec());
    let ask = client.ask(id(2));
    let both = async { tokio::join!(publish, ask) };
    let script = async {
        let mut first = fake.accept().await;
        let mut got = [first.recv().await, first.recv().await];
        got.sort();
        assert!(
            matches!(Frame::decode(&got[0]).unwrap(), Frame::Publish { id: i, .. } if i == id(1))
        );
        assert!(
            matches!(Frame::decode(&got[1]).unwrap(), Frame::Ask { id: i, forwarded: false, .. } if i == id(2))
        );
        first.kill();

        let mut second = fake.accept().await;
        for _ in 0..2 {
            let buf = second.recv().await;
            match Frame::decode(&buf).unwrap() {
                Frame::Publish { req, id, payload, .. } => {
                    assert_eq!(payload, b"p");
                    second.send(Frame::Ack { req, id, status: AckStatus::Stored }).await;
                }
                Frame::Ask { req, id, .. } => {
                    second
                        .send(Frame::Deliver { req, id, candidate: None, payload: b"answer" })
                        .await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        second
    };
    let ((published, asked), _conn) = tokio::join!(both, script);
    assert_eq!(published, Ok(()));
    assert_eq!(asked.unwrap(), b"answer");
}

#[tokio::test]
async fn published_messages_are_republished_after_reconnect() {
    let fake = FakeRelay::bind().await;
    let client = WsRelay::new(&fake.url(), fast()).unwrap();
    let script = async {
        let mut first = fake.accept().await;
        let Frame::Publish { req, id, .. } = Frame::decode(&first.recv().await).unwrap().clone()
        else {
            panic!()
        };
        first.send(Frame::Ack { req, id, status: AckStatus::Stored }).await;
        first
    };
    let (published, first) = tokio::join!(client.publish(id(3), TTL, b"keep".to_vec()), script);
    published.unwrap();
    first.kill();
    // The relay "restarted": the client publishes its message again on its own.
    let mut second = fake.accept().await;
    let buf = second.recv().await;
    let Frame::Publish { id: got, payload, ttl_ms, .. } = Frame::decode(&buf).unwrap() else {
        panic!()
    };
    assert_eq!((got, payload), (id(3), &b"keep"[..]));
    assert!(ttl_ms <= 60_000 && ttl_ms > 50_000);
}

#[tokio::test]
async fn expired_asks_are_asked_again_and_dropped_asks_cancelled() {
    let fake = FakeRelay::bind().await;
    let client = WsRelay::new(&fake.url(), fast()).unwrap();
    let ask = client.ask(id(4));
    let script = async {
        let mut conn = fake.accept().await;
        let Frame::Ask { req, .. } = Frame::decode(&conn.recv().await).unwrap() else { panic!() };
        conn.send(Frame::Error { req, code: ErrorCode::AskExpired, actual: 0, limit: 0, text: "" })
            .await;
        let Frame::Ask { req: again, .. } = Frame::decode(&conn.recv().await).unwrap() else {
            panic!()
        };
        assert_eq!(again, req);
        conn
    };
    let (timed_out, mut conn) =
        tokio::join!(tokio::time::timeout(Duration::from_millis(300), ask), script);
    assert!(timed_out.is_err());
    // The ask future was dropped by the timeout: the relay is told to forget it.
    assert!(matches!(Frame::decode(&conn.recv().await).unwrap(), Frame::Cancel { .. }));
}

#[tokio::test]
async fn error_frames_map_to_relay_errors() {
    let fake = FakeRelay::bind().await;
    let client = WsRelay::new(&fake.url(), fast()).unwrap();
    let cases = [
        (ErrorCode::Conflict, 0, 0, RelayError::Conflict(id(5))),
        (ErrorCode::TooLarge, 10, 5, RelayError::TooLarge { size: 10, max: 5 }),
        (
            ErrorCode::BadTtl,
            7000,
            5000,
            RelayError::TtlTooLong {
                requested: Duration::from_secs(7),
                max: Duration::from_secs(5),
            },
        ),
        (ErrorCode::StoreFull, 1, 2, RelayError::StoreFull { held: 1, limit: 2 }),
        (ErrorCode::TooManyAsks, 0, 2, RelayError::LimitExceeded("full".into())),
    ];
    let script = async {
        let mut conn = fake.accept().await;
        for (code, actual, limit, _) in &cases {
            let Frame::Publish { req, .. } = Frame::decode(&conn.recv().await).unwrap() else {
                panic!()
            };
            conn.send(Frame::Error {
                req,
                code: *code,
                actual: *actual,
                limit: *limit,
                text: "full",
            })
            .await;
        }
        conn
    };
    let publishes = async {
        let mut out = Vec::new();
        for _ in &cases {
            out.push(client.publish(id(5), TTL, b"x".to_vec()).await);
        }
        out
    };
    let (results, _conn) = tokio::join!(publishes, script);
    for (got, (_, _, _, want)) in results.into_iter().zip(cases) {
        assert_eq!(got, Err(want));
    }
}

#[tokio::test]
async fn publish_times_out_and_poison_publish_fails_after_resends() {
    let fake = FakeRelay::bind().await;
    let config =
        ClientConfig { request_timeout: Duration::from_millis(300), max_resends: 3, ..fast() };
    let client = WsRelay::new(&fake.url(), config).unwrap();
    // Never acknowledged.
    let (result, _conn) = tokio::join!(client.publish(id(6), TTL, b"x".to_vec()), async {
        let mut conn = fake.accept().await;
        conn.recv().await;
        conn
    });
    assert!(matches!(result, Err(RelayError::Unavailable(_))), "{result:?}");

    // A publish whose connection always dies fails after max_resends drops.
    let fake = FakeRelay::bind().await;
    let config = ClientConfig { max_resends: 3, ..fast() };
    let client = WsRelay::new(&fake.url(), config).unwrap();
    let killer = async {
        for _ in 0..3 {
            let mut conn = fake.accept().await;
            conn.recv().await;
            conn.kill();
        }
    };
    let (result, ()) = tokio::join!(client.publish(id(7), TTL, b"x".to_vec()), killer);
    assert!(matches!(result, Err(RelayError::Unavailable(_))), "{result:?}");
}

#[tokio::test]
async fn unreachable_relay() {
    // A port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(300),
        give_up_after: Duration::from_millis(200),
        ..fast()
    };
    assert!(matches!(
        WsRelay::connect(&url, config.clone()).await,
        Err(ClientError::Connect { .. })
    ));
    let client = WsRelay::new(&url, config.clone()).unwrap();
    assert!(matches!(client.ask(id(8)).await, Err(RelayError::Unavailable(_))));
    let http = HttpRelay::new(&url, config).unwrap();
    assert!(matches!(http.ask(id(8)).await, Err(RelayError::Unavailable(_))));
    assert!(matches!(
        http.publish(id(8), TTL, b"x".to_vec()).await,
        Err(RelayError::Unavailable(_))
    ));
}

#[test]
fn constructors_check_url_and_runtime() {
    assert!(matches!(
        WsRelay::new("ftp://relay.example", ClientConfig::default()),
        Err(ClientError::InvalidUrl { .. })
    ));
    assert!(matches!(
        WsRelay::new("http://127.0.0.1:1", ClientConfig::default()),
        Err(ClientError::NoRuntime)
    ));
    assert!(HttpRelay::new("http://127.0.0.1:1", ClientConfig::default()).is_ok());
}

#[tokio::test]
async fn released_messages_are_not_republished_and_readers_are_kept() {
    let fake = FakeRelay::bind().await;
    let config = ClientConfig { release_grace: Duration::from_millis(100), ..fast() };
    let client = WsRelay::new(&fake.url(), config).unwrap();
    let script = async {
        let mut first = fake.accept().await;
        for _ in 0..3 {
            let Frame::Publish { req, id, .. } = Frame::decode(&first.recv().await).unwrap() else {
                panic!()
            };
            first.send(Frame::Ack { req, id, status: AckStatus::Stored }).await;
        }
        first
    };
    let publishes = async {
        client.publish_for(id(4), TTL, 2, b"over".to_vec()).await.unwrap();
        client.publish_for(id(5), TTL, 3, b"live".to_vec()).await.unwrap();
        client.publish_for(id(6), TTL, 1, b"read".to_vec()).await.unwrap();
    };
    let ((), mut first) = tokio::join!(publishes, script);
    assert_eq!(client.retained().await, 3);
    client.release(&[id(6)], Release::Now);
    assert_eq!(client.retained().await, 2, "a message every receiver has is let go at once");
    client.release(&[id(4)], Release::AfterGrace);
    assert_eq!(client.retained().await, 2, "kept during the grace period");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(client.retained().await, 1, "let go after the grace period");

    client.consume(id(9), 1).await.unwrap();
    let Frame::Consume { id: got, reader, .. } = Frame::decode(&first.recv().await).unwrap() else {
        panic!()
    };
    assert_eq!((got, reader), (id(9), 1));

    first.kill();
    let mut second = fake.accept().await;
    let Frame::Publish { id: got, readers, .. } = Frame::decode(&second.recv().await).unwrap()
    else {
        panic!()
    };
    assert_eq!((got, readers), (id(5), 3), "only the live message comes back, for its readers");
    let nothing = tokio::time::timeout(Duration::from_millis(200), second.recv()).await;
    assert!(nothing.is_err(), "the released message must not be re-published");
}
