//! The WebSocket protocol over a real socket, frame by frame, with a raw client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use msg_relay_api::wire::{AckStatus, ErrorCode, Frame};
use msg_relay_svc::testing::spawn_relay;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{id, small_config};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Ws {
    let ws_url = format!("{}/v1/msg-relay", url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(ws_url).await.unwrap().0
}

async fn send(ws: &mut Ws, frame: Frame<'_>) {
    ws.send(Message::Binary(frame.encode().into())).await.unwrap();
}

/// The next binary message (skipping pings), within 5 s.
async fn recv(ws: &mut Ws) -> Vec<u8> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no answer within 5 s")
            .expect("connection closed")
            .unwrap();
        if let Message::Binary(b) = msg {
            return b.to_vec();
        }
    }
}

#[tokio::test]
async fn publish_ack_ask_deliver() {
    let relay = spawn_relay(small_config()).await.unwrap();
    let mut ws = connect(relay.url()).await;
    // Ask first: the deliver comes once the message is published on another connection.
    send(&mut ws, Frame::Ask { req: 1, id: id(1), forwarded: false, from: None }).await;
    let mut other = connect(relay.url()).await;
    send(
        &mut other,
        Frame::Publish { req: 9, id: id(1), ttl_ms: 60_000, readers: 0, payload: b"hi" },
    )
    .await;
    assert_eq!(
        Frame::decode(&recv(&mut other).await).unwrap(),
        Frame::Ack { req: 9, id: id(1), status: AckStatus::Stored }
    );
    assert_eq!(
        Frame::decode(&recv(&mut ws).await).unwrap(),
        Frame::Deliver { req: 1, id: id(1), candidate: None, payload: b"hi" }
    );
    // Publish again: duplicate; ask again: delivered at once.
    send(&mut ws, Frame::Publish { req: 2, id: id(1), ttl_ms: 60_000, readers: 0, payload: b"hi" })
        .await;
    assert_eq!(
        Frame::decode(&recv(&mut ws).await).unwrap(),
        Frame::Ack { req: 2, id: id(1), status: AckStatus::Duplicate }
    );
    // A different payload from another connection is a second candidate, not a conflict: a
    // plain ask still gets the first, a candidate ask from 1 gets the second.
    send(&mut ws, Frame::Publish { req: 3, id: id(1), ttl_ms: 60_000, readers: 0, payload: b"ho" })
        .await;
    assert_eq!(
        Frame::decode(&recv(&mut ws).await).unwrap(),
        Frame::Ack { req: 3, id: id(1), status: AckStatus::Stored }
    );
    send(&mut ws, Frame::Ask { req: 4, id: id(1), forwarded: false, from: None }).await;
    assert_eq!(
        Frame::decode(&recv(&mut ws).await).unwrap(),
        Frame::Deliver { req: 4, id: id(1), candidate: None, payload: b"hi" }
    );
    send(&mut ws, Frame::Ask { req: 5, id: id(1), forwarded: false, from: Some(1) }).await;
    assert_eq!(
        Frame::decode(&recv(&mut ws).await).unwrap(),
        Frame::Deliver { req: 5, id: id(1), candidate: Some(1), payload: b"ho" }
    );
    // The same connection publishing yet another payload under the id is a conflict.
    send(&mut ws, Frame::Publish { req: 6, id: id(1), ttl_ms: 60_000, readers: 0, payload: b"hu" })
        .await;
    let buf = recv(&mut ws).await;
    let Frame::Error { req: 6, code: ErrorCode::Conflict, .. } = Frame::decode(&buf).unwrap()
    else {
        panic!("expected a conflict error");
    };
    relay.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_frames_get_errors_and_the_connection_survives() {
    let relay = spawn_relay(small_config()).await.unwrap(); // 1024-byte payload limit
    let mut ws = connect(relay.url()).await;

    let cases: Vec<(Vec<u8>, u32, ErrorCode)> = vec![
        (vec![], 0, ErrorCode::Malformed),
        (vec![1, 2, 0, 0, 0, 5], 5, ErrorCode::Malformed), // ask without a body
        (vec![9, 1, 0, 0, 0, 6], 6, ErrorCode::UnsupportedVersion),
        (vec![1, 0x55, 0, 0, 0, 7], 7, ErrorCode::UnknownKind),
        (
            Frame::Ack { req: 8, id: id(1), status: AckStatus::Stored }.encode(),
            8,
            ErrorCode::UnknownKind,
        ),
        (
            Frame::Publish { req: 10, id: id(1), ttl_ms: 601_000, readers: 0, payload: b"x" }
                .encode(),
            10,
            ErrorCode::BadTtl,
        ),
    ];
    for (bytes, want_req, want_code) in cases {
        ws.send(Message::Binary(bytes.clone().into())).await.unwrap();
        let buf = recv(&mut ws).await;
        let Frame::Error { req, code, .. } = Frame::decode(&buf).unwrap() else {
            panic!("expected an error frame for {bytes:?}");
        };
        assert_eq!((req, code), (want_req, want_code), "{bytes:?}");
    }

    // Oversized payload: a clear error naming size and limit.
    let big = vec![0u8; 1500];
    send(&mut ws, Frame::Publish { req: 11, id: id(2), ttl_ms: 1000, readers: 0, payload: &big })
        .await;
    assert_eq!(
        Frame::decode(&recv(&mut ws).await).unwrap(),
        Frame::Error {
            req: 11,
            code: ErrorCode::TooLarge,
            actual: 1500,
            limit: 1024,
            text: "message of 1500 bytes exceeds the limit of 1024 bytes",
        }
    );

    // Text messages are refused too.
    ws.send(Message::Text("hello".into())).await.unwrap();
    let buf = recv(&mut ws).await;
    assert!(matches!(
        Frame::decode(&buf).unwrap(),
        Frame::Error { code: ErrorCode::Malformed, .. }
    ));

    // Still alive: a normal exchange works on the same connection.
    send(&mut ws, Frame::Publish { req: 12, id: id(3), ttl_ms: 1000, readers: 0, payload: b"ok" })
        .await;
    assert!(matches!(Frame::decode(&recv(&mut ws).await).unwrap(), Frame::Ack { req: 12, .. }));
    let metrics = relay.state().engine().metrics().render(&relay.state().engine().store().stats());
    assert!(metrics.contains("relay_rejections_total{reason=\"malformed\"} 5"), "{metrics}");
    assert!(metrics.contains("relay_rejections_total{reason=\"too_large\"} 1"), "{metrics}");

    // A message beyond the WebSocket limit closes that connection, not the server.
    let huge = vec![0u8; 64 * 1024];
    let _ = send_raw(&mut ws, &huge).await;
    let mut fresh = connect(relay.url()).await;
    send(&mut fresh, Frame::Ask { req: 1, id: id(3), forwarded: false, from: None }).await;
    assert!(matches!(Frame::decode(&recv(&mut fresh).await).unwrap(), Frame::Deliver { .. }));
    relay.stop().await;
}

async fn send_raw(ws: &mut Ws, bytes: &[u8]) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::Binary(bytes.to_vec().into())).await
}

#[tokio::test]
async fn ask_limit_cancel_and_duplicate_request_ids() {
    let relay = spawn_relay(small_config()).await.unwrap(); // 8 asks per connection
    let mut ws = connect(relay.url()).await;
    for req in 1..=8u32 {
        send(&mut ws, Frame::Ask { req, id: id(req as u8), forwarded: false, from: None }).await;
    }
    send(&mut ws, Frame::Ask { req: 1, id: id(1), forwarded: false, from: None }).await;
    let Frame::Error { req: 1, code: ErrorCode::DuplicateRequest, .. } =
        Frame::decode(&recv(&mut ws).await).unwrap()
    else {
        panic!("expected duplicate request");
    };
    send(&mut ws, Frame::Ask { req: 9, id: id(9), forwarded: false, from: None }).await;
    let buf = recv(&mut ws).await;
    let Frame::Error { req: 9, code: ErrorCode::TooManyAsks, limit: 8, .. } =
        Frame::decode(&buf).unwrap()
    else {
        panic!("expected too many asks, got {:?}", Frame::decode(&buf));
    };
    // A forwarded ask from a client that did not authenticate as a peer relay is refused.
    send(&mut ws, Frame::Ask { req: 10, id: id(10), forwarded: true, from: None }).await;
    let buf = recv(&mut ws).await;
    let Frame::Error { req: 10, code: ErrorCode::Forbidden, .. } = Frame::decode(&buf).unwrap()
    else {
        panic!("expected forbidden, got {:?}", Frame::decode(&buf));
    };
    // Cancelling one frees a slot.
    send(&mut ws, Frame::Cancel { req: 1 }).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(relay.state().engine().store().stats().waiters, 7);
    send(&mut ws, Frame::Ask { req: 11, id: id(11), forwarded: false, from: None }).await;
    let mut publisher = connect(relay.url()).await;
    send(
        &mut publisher,
        Frame::Publish { req: 1, id: id(11), ttl_ms: 1000, readers: 0, payload: b"z" },
    )
    .await;
    assert_eq!(
        Frame::decode(&recv(&mut ws).await).unwrap(),
        Frame::Deliver { req: 11, id: id(11), candidate: None, payload: b"z" }
    );
    // Closing the connection withdraws all its waiters.
    drop(ws);
    let mut left = u64::MAX;
    for _ in 0..50 {
        left = relay.state().engine().store().stats().waiters;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0);
    relay.stop().await;
}

#[tokio::test]
async fn ask_is_released_at_the_wait_limit() {
    let mut config = small_config();
    config.limits.max_wait = Duration::from_millis(200);
    let relay = spawn_relay(config).await.unwrap();
    let mut ws = connect(relay.url()).await;
    send(&mut ws, Frame::Ask { req: 4, id: id(4), forwarded: false, from: None }).await;
    let Frame::Error { req: 4, code: ErrorCode::AskExpired, .. } =
        Frame::decode(&recv(&mut ws).await).unwrap()
    else {
        panic!("expected ask expired");
    };
    assert_eq!(relay.state().engine().store().stats().waiters, 0);
    relay.stop().await;
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    let relay = spawn_relay(small_config()).await.unwrap();
    let mut ws = connect(relay.url()).await;
    send(&mut ws, Frame::Ask { req: 1, id: id(1), forwarded: false, from: None }).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay.stop().await;
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let config = small_config();
    let limit = msg_relay_svc::ws::ws_message_limit(config.limits.max_message_bytes);
    let relay = spawn_relay(config).await.unwrap();
    let mut ws = connect(relay.url()).await;
    ws.send(Message::Binary(vec![0u8; limit + 1].into())).await.unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("no close") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1009, "{frame:?}");
    relay.stop().await;
}
