//! The HTTP server's connection limits: half-sent requests are closed after the header read
//! deadline, and connections beyond the limit wait until a slot frees.

use std::time::{Duration, Instant};

use msg_relay_svc::RelayConfig;
use msg_relay_svc::serve::ServeLimits;
use msg_relay_svc::testing::spawn_relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::small_config;

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection or `limit` passes; returns what came and
/// whether the connection was closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn half_sent_requests_are_closed_at_the_header_deadline() {
    let config = RelayConfig {
        serve: ServeLimits {
            max_connections: 64,
            header_read_timeout: Duration::from_millis(300),
            ..ServeLimits::default()
        },
        ..small_config()
    };
    let relay = spawn_relay(config).await.unwrap();
    let addr = addr_of(relay.url());
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: re").await.unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    for s in &mut slow {
        let (_, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed, "a half-sent request was left open");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server still answers complete requests.
    let mut ok = TcpStream::connect(&addr).await.unwrap();
    ok.write_all(GET).await.unwrap();
    let (resp, _) = read_until_closed(&mut ok, Duration::from_secs(5)).await;
    assert!(resp.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&resp));
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let config = RelayConfig {
        serve: ServeLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(30),
            ..ServeLimits::default()
        },
        ..small_config()
    };
    let relay = spawn_relay(config).await.unwrap();
    let addr = addr_of(relay.url());
    // Two idle connections take both slots.
    let idle1 = TcpStream::connect(&addr).await.unwrap();
    let _idle2 = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(GET).await.unwrap();
    let (resp, _) = read_until_closed(&mut third, Duration::from_millis(400)).await;
    assert!(resp.is_empty(), "served beyond the connection limit");
    // One slot frees: the waiting request is served.
    drop(idle1);
    let (resp, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(resp.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&resp));
}
