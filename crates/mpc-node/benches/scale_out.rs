//! The node on its two SQL stores, side by side in one run: 2-of-3 signing through the SDK API
//! with SQLite, with PostgreSQL, and with PostgreSQL and two replicas per player (requests
//! alternate between the replicas); then key look-ups through the API with a million keys in
//! PostgreSQL. The relay and every node run in this process on loopback sockets; PostgreSQL is
//! the server `.ci/services` starts (each node its own database).
//!
//! `source .ci/services && cargo bench -p mpc-node --bench scale_out` (release). Optional
//! arguments: concurrency levels, signatures per level, keys for the look-up table, e.g.
//! `-- 1,8,32 300 1000000`.
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
use support::{node_toml_with, sid};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Three players, each with `replicas` nodes; `clients[player][replica]`.
struct Setup {
    nodes: Vec<RunningNode>,
    clients: Arc<Vec<Vec<Client>>>,
    db_urls: Vec<String>,
}

async fn start(relay: &str, store: &str, replicas: usize, dir: &std::path::Path) -> Setup {
    let ca = mpc_node_store::testing::postgres_ca();
    let mut nodes = Vec::new();
    let mut clients = Vec::new();
    let mut db_urls = Vec::new();
    for i in 1..=3u16 {
        let db = if store == "sqlite" {
            let url = format!("sqlite://{}/{store}-{replicas}-node{i}.sqlite", dir.display());
            db_urls.push(url.clone());
            format!("database_url = \"{url}\"\n")
        } else {
            let url = mpc_node_store::testing::postgres_database().unwrap();
            db_urls.push(url.clone());
            let ca = ca
                .as_ref()
                .map_or(String::new(), |p| format!("database_ca_file = \"{}\"\n", p.display()));
            format!("database_url = \"{url}\"\n{ca}database_pool_size = 32\n")
        };
        let mut of_player = Vec::new();
        for _ in 0..replicas {
            let text = node_toml_with(i, "127.0.0.1:0", relay, &db);
            let cfg = config::parse(&text, dir, &|_| None).unwrap();
            let node = RunningNode::start(cfg).await.unwrap();
            of_player.push(Client::new(&node.url(), &format!("bench-{i}")).unwrap());
            nodes.push(node);
        }
        clients.push(of_player);
    }
    Setup { nodes, clients: Arc::new(clients), db_urls }
}

async fn one_signature(clients: &[Vec<Client>], pair: [usize; 2], k: usize) -> Duration {
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
    // Replica by request number: a load balancer's round robin.
    let a = &clients[pair[0]][k % clients[pair[0]].len()];
    let b = &clients[pair[1]][(k / 3) % clients[pair[1]].len()];
    let start = Instant::now();
    let (x, y) = tokio::join!(a.sign("bench-key", &body), b.sign("bench-key", &body));
    let took = start.elapsed();
    assert_eq!(x.unwrap(), y.unwrap());
    took
}

/// Signing at each level: `(concurrency, signatures/s, p50, p99)`.
async fn signing(setup: &Setup, levels: &[usize], per_level: usize) -> Vec<(usize, f64, f64, f64)> {
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
    let c = &setup.clients;
    let (a, b, d) = tokio::join!(
        c[0][0].generate_key(&req),
        c[1][0].generate_key(&req),
        c[2][0].generate_key(&req)
    );
    a.unwrap();
    b.unwrap();
    d.unwrap();
    let clients = setup.clients.clone();
    for k in 0..10 {
        one_signature(&clients, [0, 1], k).await;
    }
    const PAIRS: [[usize; 2]; 3] = [[0, 1], [0, 2], [1, 2]];
    let mut rows = Vec::new();
    for &level in levels {
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let workers: Vec<_> = (0..level)
            .map(|_| {
                let (clients, next) = (clients.clone(), next.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= per_level {
                            return lat;
                        }
                        lat.push(one_signature(&clients, PAIRS[k % 3], k).await);
                    }
                })
            })
            .collect();
        let mut lat = Vec::new();
        for w in workers {
            lat.extend(w.await.unwrap());
        }
        let wall = start.elapsed();
        lat.sort();
        rows.push((
            level,
            lat.len() as f64 / wall.as_secs_f64(),
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
        ));
        eprintln!("  … {level} in flight: {:.1} signatures/s", rows.last().unwrap().1);
    }
    rows
}

/// Inserts `n` READY-looking key records (no shares: look-ups read the record only) into the
/// database at `url`, under application `bench`.
fn fill_keys(url: &str, n: usize) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.execute(
        "INSERT INTO mpc_keys (app, key_name, status, threshold, parties, player, epoch, \
         public_key, chain_code, core_key_id, created_at, updated_at) \
         SELECT 'bench', 'key-' || g, 'READY', 2, 3, 1, 0, \
         decode('02' || repeat('11', 32), 'hex'), decode(repeat('22', 32), 'hex'), \
         decode(repeat('33', 32), 'hex'), 0, 0 FROM generate_series(1, $1::bigint) g",
        &[&(n as i64)],
    )
    .unwrap();
    // The steady state of a table that has all its keys (not autovacuum's first pass over a
    // million fresh rows while the look-ups run).
    c.batch_execute("VACUUM (ANALYZE) mpc_keys").unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let levels: Vec<usize> = args
        .first()
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1, 8, 32]);
    let per_level: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(300);
    let keys: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
    if mpc_node_store::testing::postgres_server().is_none() {
        eprintln!("this benchmark needs PostgreSQL: run `source .ci/services` first");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let relay = msg_relay_svc::testing::spawn_relay(Default::default()).await.unwrap();
        let mut table = Vec::new();
        let mut pg_node1 = None;
        for (store, replicas) in [("sqlite", 1), ("postgres", 1), ("postgres", 2)] {
            eprintln!("{store}, {replicas} replica(s) per player");
            let setup = start(relay.url(), store, replicas, dir.path()).await;
            table.push((store, replicas, signing(&setup, &levels, per_level).await));
            if store == "postgres" && replicas == 1 {
                pg_node1 = Some(setup.db_urls[0].clone());
            }
            for n in setup.nodes {
                n.stop().await;
            }
        }
        println!("2-of-3 signing through the SDK API (relay + nodes in one process, loopback)\n");
        println!("| store | replicas per player | in flight | signatures/s | p50 | p99 |");
        println!("|---|---|---|---|---|---|");
        for (store, replicas, rows) in &table {
            for (level, rate, p50, p99) in rows {
                println!(
                    "| {store} | {replicas} | {level} | {rate:.1} | {p50:.1} ms | {p99:.1} ms |"
                );
            }
        }
        let (sqlite, pg) = (&table[0].2, &table[1].2);
        println!();
        for (s, p) in sqlite.iter().zip(pg) {
            println!(
                "PostgreSQL vs SQLite at {} in flight: {:+.0} % throughput",
                s.0,
                (p.1 / s.1 - 1.0) * 100.0
            );
        }
        for (one, two) in table[1].2.iter().zip(&table[2].2) {
            println!(
                "two replicas vs one (PostgreSQL) at {} in flight: {:+.0} % throughput",
                one.0,
                (two.1 / one.1 - 1.0) * 100.0
            );
        }

        // Look-ups with `keys` keys in the PostgreSQL database of player 1.
        let url = pg_node1.unwrap();
        let t = Instant::now();
        let u = url.clone();
        tokio::task::spawn_blocking(move || fill_keys(&u, keys)).await.unwrap();
        eprintln!("inserted {keys} keys in {:.1} s", t.elapsed().as_secs_f64());
        let ca = mpc_node_store::testing::postgres_ca()
            .map_or(String::new(), |p| format!("database_ca_file = \"{}\"\n", p.display()));
        let db = format!("database_url = \"{url}\"\n{ca}");
        let cfg =
            config::parse(&node_toml_with(1, "127.0.0.1:0", relay.url(), &db), dir.path(), &|_| {
                None
            })
            .unwrap();
        let node = RunningNode::start(cfg).await.unwrap();
        let client = Client::new(&node.url(), "bench-1").unwrap();
        let mut lat = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            // xorshift: keys spread over the whole table.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = format!("key-{}", 1 + x % keys as u64);
            let t = Instant::now();
            let info = client.get_key(&id).await.unwrap();
            lat.push(t.elapsed());
            assert_eq!(info.status, "READY");
        }
        lat.sort();
        println!();
        println!(
            "| key look-up through the API (GET /v1/keys/{{id}}) | keys in PostgreSQL | p50 | p99 |"
        );
        println!("|---|---|---|---|");
        println!(
            "| 5000 random look-ups, one at a time | {keys} | {:.2} ms | {:.2} ms |",
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99))
        );
        node.stop().await;
        relay.stop().await;
    });
}
