//! Signatures per second and latency percentiles for 2-of-3 signing through the SDK API, with
//! the relay and all three nodes (SQLite stores) in this process on loopback sockets.
//!
//! `cargo bench -p mpc-node --bench api_sign` (release). Optional arguments: the concurrency
//! levels and the number of signatures per level, e.g. `-- 1,8,32 400`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;

use mpc_node::config;
use mpc_node::server::RunningNode;
use mpc_node_client::Client;
use mpc_node_client::api::{GenerateKeyRequest, SessionConfig, SignRequestBody};
use support::{node_toml, sid};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

async fn one_signature(clients: &[Client], pair: [usize; 2], k: usize) -> Duration {
    let mut m = [0u8; 32];
    m[..8].copy_from_slice(&(k as u64).to_be_bytes());
    let body = SignRequestBody {
        session: SessionConfig {
            session_id: sid(),
            players: vec![pair[0] as u16 + 1, pair[1] as u16 + 1],
            public_keys: BTreeMap::new(),
        },
        message_hash: Some(hex::encode(m)),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    };
    let start = Instant::now();
    let (a, b) = tokio::join!(
        clients[pair[0]].sign("bench-key", &body),
        clients[pair[1]].sign("bench-key", &body)
    );
    let took = start.elapsed();
    assert_eq!(a.unwrap(), b.unwrap());
    took
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let levels: Vec<usize> = args
        .first()
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1, 8, 32]);
    let per_level: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let relay = msg_relay_svc::testing::spawn_relay(Default::default()).await.unwrap();
        let mut nodes = Vec::new();
        for i in 1..=3u16 {
            let cfg = config::parse(
                &node_toml(i, "127.0.0.1:0", relay.url(), dir.path()),
                dir.path(),
                &|_| None,
            )
            .unwrap();
            nodes.push(RunningNode::start(cfg).await.unwrap());
        }
        let clients: Arc<Vec<Client>> = Arc::new(
            nodes
                .iter()
                .enumerate()
                .map(|(k, n)| Client::new(&n.url(), &format!("bench-{}", k + 1)).unwrap())
                .collect(),
        );
        let req = GenerateKeyRequest {
            key_id: Some("bench-key".into()),
            threshold: 2,
            curve: "secp256k1".into(),
            session: SessionConfig {
                session_id: sid(),
                players: vec![1, 2, 3],
                public_keys: BTreeMap::new(),
            },
        };
        let t = Instant::now();
        let (a, b, c) = tokio::join!(
            clients[0].generate_key(&req),
            clients[1].generate_key(&req),
            clients[2].generate_key(&req)
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();
        println!(
            "key generation 2-of-3 through the API: {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        // Warm-up (connections, page cache).
        for k in 0..10 {
            one_signature(&clients, [0, 1], k).await;
        }
        println!();
        println!("| concurrency | signatures | signatures/s | p50 latency | p99 latency |");
        println!("|---|---|---|---|---|");
        const PAIRS: [[usize; 2]; 3] = [[0, 1], [0, 2], [1, 2]];
        for &c in &levels {
            let next = Arc::new(AtomicUsize::new(0));
            let start = Instant::now();
            let mut workers = Vec::new();
            for _ in 0..c {
                let clients = clients.clone();
                let next = next.clone();
                workers.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= per_level {
                            return lat;
                        }
                        lat.push(one_signature(&clients, PAIRS[k % 3], k).await);
                    }
                }));
            }
            let mut lat = Vec::new();
            for w in workers {
                lat.extend(w.await.unwrap());
            }
            let wall = start.elapsed();
            lat.sort();
            println!(
                "| {c} | {} | {:.1} | {:.1} ms | {:.1} ms |",
                lat.len(),
                lat.len() as f64 / wall.as_secs_f64(),
                percentile(&lat, 0.50).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3
            );
        }
        for n in nodes {
            n.stop().await;
        }
        relay.stop().await;
    });
}
