//! Relay throughput over loopback: many WebSocket connections, each publishing messages and
//! asking for the messages of the next connection, through the real relay and client.
//!
//! Run with `cargo bench -p msg-relay-svc --bench throughput`. A message counts once it was
//! published (acknowledged) and delivered to its asker. Relay and clients share this process
//! (and so the machine's cores). With `MPC_TEST_REDIS_URL` set (e.g. `source .ci/services`),
//! every case also runs on the Redis store, the Redis server being one more process on the
//! same cores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use msg_relay_api::{MessageId, Relay};
use msg_relay_client::{ClientConfig, WsRelay};
use msg_relay_svc::RelayConfig;
use msg_relay_svc::testing::spawn_relay;

/// Requests in flight per connection and direction.
const WINDOW: usize = 64;
const TTL: Duration = Duration::from_secs(120);

struct Case {
    name: &'static str,
    size: usize,
    connections: usize,
    per_connection: usize,
}

fn message_id(case: u8, conn: usize, k: usize) -> MessageId {
    let mut id = [0u8; 32];
    id[0] = case;
    id[1..9].copy_from_slice(&(conn as u64).to_be_bytes());
    id[9..17].copy_from_slice(&(k as u64).to_be_bytes());
    MessageId(id)
}

#[derive(Clone, Copy)]
enum Store {
    Memory,
    Redis,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Redis => "Redis",
        }
    }
}

async fn run_case(tag: u8, case: &Case, store: Store) -> anyhow::Result<(f64, f64, Duration)> {
    // Every client is 127.0.0.1: the per-address quota must hold a whole case (the 60 KB case
    // keeps 295 MB, all messages being kept for their TTL).
    let limits = msg_relay_svc::Limits { max_bytes_per_address: 1 << 30, ..Default::default() };
    let config = RelayConfig { limits, ..RelayConfig::default() };
    let relay = match store {
        Store::Memory => spawn_relay(config).await?,
        Store::Redis => {
            let store = msg_relay_svc::testing::redis_store("bench", None, config.limits.quotas())
                .await
                .ok_or_else(|| anyhow::anyhow!("no Redis"))?;
            msg_relay_svc::testing::spawn_relay_with_store(config, Arc::new(store)).await?
        }
    };
    let mut clients = Vec::new();
    for _ in 0..case.connections {
        clients.push(Arc::new(WsRelay::connect(relay.url(), ClientConfig::default()).await?));
    }
    let payload = vec![0x5au8; case.size];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (conn, client) in clients.iter().enumerate() {
        let next = (conn + 1) % case.connections;
        let publisher = Arc::clone(client);
        let asker = Arc::clone(client);
        let payload = payload.clone();
        let n = case.per_connection;
        let size = case.size;
        tasks.push(tokio::spawn(async move {
            let publishes = stream::iter(0..n)
                .map(|k| {
                    let bytes = payload.clone();
                    let relay = &publisher;
                    async move { relay.publish(message_id(tag, conn, k), TTL, bytes).await }
                })
                .buffer_unordered(WINDOW)
                .for_each(|r| async move { r.unwrap() });
            let asks = stream::iter(0..n)
                .map(|k| {
                    let relay = &asker;
                    async move { relay.ask(message_id(tag, next, k)).await }
                })
                .buffer_unordered(WINDOW)
                .for_each(|r| async move { assert_eq!(r.unwrap().len(), size) });
            tokio::join!(publishes, asks);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed();
    let messages = (case.connections * case.per_connection) as f64;
    let secs = elapsed.as_secs_f64();
    drop(clients);
    relay.stop().await;
    Ok((messages / secs, messages * case.size as f64 / secs / 1e6, elapsed))
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs bench binaries in test mode; keep that instant.
    if std::env::args().any(|a| a == "--test") {
        return Ok(());
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let cases = [
        Case { name: "200 B", size: 200, connections: 16, per_connection: 10_000 },
        Case { name: "60 KB", size: 60 * 1024, connections: 16, per_connection: 300 },
        Case { name: "200 B", size: 200, connections: 1, per_connection: 50_000 },
    ];
    let mut stores = vec![Store::Memory];
    if std::env::var("MPC_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty()) {
        stores.push(Store::Redis);
    }
    runtime.block_on(async {
        println!("| store | payload | connections | messages | time | messages/s | MB/s |");
        println!("|---|---|---|---|---|---|---|");
        for store in stores {
            // Warm-up (allocator, connections, code paths, scripts).
            let warm_up =
                Case { name: "warm-up", size: 200, connections: 4, per_connection: 2_000 };
            run_case(0, &warm_up, store).await?;
            for (i, case) in cases.iter().enumerate() {
                let (rate, mbps, elapsed) = run_case(u8::try_from(i + 1)?, case, store).await?;
                println!(
                    "| {} | {} | {} | {} | {:.2} s | {:.0} | {:.1} |",
                    store.name(),
                    case.name,
                    case.connections,
                    case.connections * case.per_connection,
                    elapsed.as_secs_f64(),
                    rate,
                    mbps
                );
            }
        }
        anyhow::Ok(())
    })
}
