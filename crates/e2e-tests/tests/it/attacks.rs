//! Outsiders who can reach the relay: one that publishes first under every message id of a
//! session, and one that tries to fill the relay. Neither stops the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dkls23_core::KeyShare;
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::message::{ABORT_ROUND, Header, Kind, mid};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_runner::{RunContext, RunOptions, run_dkg};
use futures_util::{SinkExt, StreamExt};
use msg_relay_api::wire::{ErrorCode, Frame};
use msg_relay_api::{MessageId, Relay};
use msg_relay_client::{ClientConfig, WsRelay};
use msg_relay_svc::testing::{TestRelay, spawn_relay};
use msg_relay_svc::{Limits, RelayConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::Message;

use crate::Party;

async fn parties(seed: u64, relay: &TestRelay) -> Vec<Party> {
    let mut out = Vec::new();
    for i in 0..3u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed + i);
        let signer = Arc::new(Ed25519Identity::generate(&mut rng));
        let client = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
        out.push(Party { signer, guard: MemoryReplayGuard::new(), rng, relay: client });
    }
    out
}

fn keys(parties: &[Party]) -> Vec<(u16, IdentityPublicKey)> {
    parties.iter().enumerate().map(|(i, p)| (i as u16 + 1, p.signer.public_key())).collect()
}

async fn dkg(parties: Vec<Party>, setup: &Setup) -> Vec<Result<KeyShare, dkls23_core::Error>> {
    let opts = RunOptions {
        round_timeout: Duration::from_secs(20),
        message_ttl: Some(Duration::from_secs(120)),
        ..RunOptions::default()
    };
    let mut tasks = Vec::new();
    for mut p in parties {
        let setup = setup.clone();
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let signer: SharedSigner = p.signer.clone();
            run_dkg(
                &RunContext::new(&p.relay, signer, &p.guard).with_options(opts.clone()),
                &setup,
                &mut p.rng,
            )
            .await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Every id a DKG among `keys` could use: broadcasts, p2p both ways, abort notices.
fn every_id(iid: &[u8; 32], keys: &[(u16, IdentityPublicKey)]) -> Vec<(MessageId, Kind)> {
    let mut ids = Vec::new();
    for (_, from) in keys {
        ids.push((MessageId(mid(iid, from, None, ProtocolId::Dkg, ABORT_ROUND)), Kind::Abort));
        for round in 1..=8u16 {
            ids.push((MessageId(mid(iid, from, None, ProtocolId::Dkg, round)), Kind::Broadcast));
            for (_, to) in keys.iter().filter(|(_, k)| k != from) {
                let id = MessageId(mid(iid, from, Some(to), ProtocolId::Dkg, round));
                ids.push((id, Kind::P2p));
            }
        }
    }
    ids
}

/// An outsider knows the setup (it is not secret) and publishes, before the session starts,
/// a well-formed message with a wrong signature under every id of it. The relay keeps the
/// parties' real messages as further candidates, the receivers skip what does not
/// authenticate, and the DKG completes. (With first-write-wins it failed for every party.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squatting_every_message_id_of_a_session_does_not_stop_it() {
    let relay = spawn_relay(RelayConfig::default()).await.unwrap();
    let parties = parties(100, &relay).await;
    let keys = keys(&parties);
    let setup = Setup::new(ProtocolId::Dkg, [0x5a; 32], 3, 2, keys.clone(), vec![], 600).unwrap();

    let squatter = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let ids = every_id(setup.iid(), &keys);
    for (id, kind) in &ids {
        let mut garbage = Header { mid: id.0, kind: *kind }.to_bytes().to_vec();
        let mut tail = vec![0u8; 160];
        rng.fill_bytes(&mut tail);
        garbage.extend_from_slice(&tail);
        squatter.publish(*id, Duration::from_secs(120), garbage).await.unwrap();
    }

    let shares = dkg(parties, &setup).await;
    let shares: Vec<KeyShare> = shares.into_iter().map(|s| s.unwrap()).collect();
    assert!(shares.iter().all(|s| s.public_key() == shares[0].public_key()));
    // The parties' messages were consumed; every squatted message is still there (candidate
    // 0 of its id), skipped by the receivers.
    // (Consumes are sent without waiting for an answer: give the last ones a moment.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut stats = relay.state().engine().store().stats();
    while stats.messages > ids.len() as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = relay.state().engine().store().stats();
    }
    assert_eq!(stats.messages, ids.len() as u64, "{stats:?}");
    assert!(stats.consumed_total > 0, "{stats:?}");
    relay.stop().await;
}

/// A raw WebSocket connection from `local` (a loopback address other than the parties').
async fn raw_connection(
    local: [u8; 4],
    relay: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    let stream = socket.connect(relay).await.unwrap();
    let url = format!("ws://{relay}/v1/msg-relay");
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws
}

/// Publishes 64 KiB messages under fresh ids until the relay refuses one; returns the code.
async fn fill(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    rng: &mut ChaCha20Rng,
) -> (ErrorCode, u64) {
    let payload = vec![0xee; 64 * 1024];
    for req in 1..=10_000u32 {
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let frame = Frame::Publish {
            req,
            id: MessageId(id),
            ttl_ms: 600_000,
            readers: 0,
            payload: &payload,
        };
        ws.send(Message::Binary(frame.encode().into())).await.unwrap();
        let answer = loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => break b,
                _ => continue,
            }
        };
        match Frame::decode(&answer).unwrap() {
            Frame::Ack { .. } => {}
            Frame::Error { code, actual, .. } => return (code, actual),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    panic!("the relay never refused a publish");
}

/// One client (one address, many connections) publishes as much as the relay takes. Its
/// connections and its address run into their quotas, well below the relay's limit, and a
/// DKG among other clients runs at the same time and completes. (Without quotas the client
/// filled the relay and the DKG failed with "relay full".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_filling_the_relay_does_not_stop_a_concurrent_session() {
    let mut config = RelayConfig {
        limits: Limits {
            max_total_bytes: 16 * 1024 * 1024,
            max_bytes_per_connection: 2 * 1024 * 1024,
            max_bytes_per_address: 6 * 1024 * 1024,
            ..Limits::default()
        },
        ..RelayConfig::default()
    };
    config.serve.max_connections_per_address = 8;
    let relay = spawn_relay(config).await.unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);

    // One connection stops at its own quota.
    let mut first = raw_connection([127, 0, 0, 2], relay.addr()).await;
    let (code, held) = fill(&mut first, &mut rng).await;
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(held <= 2 * 1024 * 1024, "held {held}");

    // More connections from the same address stop at the address's quota.
    let mut more = Vec::new();
    for _ in 0..4 {
        let mut ws = raw_connection([127, 0, 0, 2], relay.addr()).await;
        let (code, _) = fill(&mut ws, &mut rng).await;
        assert_eq!(code, ErrorCode::QuotaExceeded);
        more.push(ws);
    }
    let charged = relay.state().engine().store().stats().charged_bytes;
    assert!(charged <= 6 * 1024 * 1024, "one address holds {charged} bytes");

    // Connections beyond the per-address limit are closed at once.
    let mut refused = 0;
    let mut kept = Vec::new();
    for _ in 0..8 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        let stream = socket.connect(relay.addr()).await.unwrap();
        let url = format!("ws://{}/v1/msg-relay", relay.addr());
        match tokio_tungstenite::client_async(url, stream).await {
            Ok(ws) => kept.push(ws),
            Err(_) => refused += 1,
        }
    }
    // 5 are open and the limit is 8: 3 more get in, the other 5 are refused.
    assert_eq!((kept.len(), refused), (3, 5));

    // Meanwhile a session among other clients runs and completes.
    let parties = parties(200, &relay).await;
    let keys = keys(&parties);
    let setup = Setup::new(ProtocolId::Dkg, [0x6b; 32], 3, 2, keys, vec![], 600).unwrap();
    let shares = dkg(parties, &setup).await;
    assert!(shares.iter().all(Result::is_ok), "{shares:?}");
    drop((first, more, kept));
    relay.stop().await;
}
