//! The `MessageStore` contract, run against the memory store and the Redis store alike (real
//! time, short TTLs). Every test works on two handles of one store: the same memory store
//! twice, or two Redis stores (two replicas) on one prefix, so the rules are shown to hold
//! across relay processes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use msg_relay_svc::store::{
    MemoryStore, MessageStore, PutOutcome, QuotaScope, Source, StoreError, StoreQuotas, StoreStats,
};

use crate::common::id;

const TTL: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

#[derive(Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

type Pair = (Arc<dyn MessageStore>, Arc<dyn MessageStore>);

impl Backend {
    /// Two handles on one empty store, or `None` when Redis is not there (skipped).
    async fn pair(self, test: &str, quotas: StoreQuotas) -> Option<Pair> {
        match self {
            Backend::Memory => {
                let store: Arc<dyn MessageStore> = Arc::new(MemoryStore::with_quotas(quotas));
                Some((Arc::clone(&store), store))
            }
            Backend::Redis => {
                let prefix = msg_relay_svc::testing::unique_prefix(test);
                let a = msg_relay_svc::testing::redis_store(test, Some(&prefix), quotas).await?;
                let b = msg_relay_svc::testing::redis_store(test, Some(&prefix), quotas).await?;
                Some((Arc::new(a), Arc::new(b)))
            }
        }
    }
}

fn http(last: u8) -> Source {
    Source::http(IpAddr::from([10, 0, 0, last]))
}

fn ws(last: u8, conn: u64) -> Source {
    Source { addr: IpAddr::from([10, 0, 0, last]), conn }
}

fn b(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

async fn stats(store: &Arc<dyn MessageStore>) -> StoreStats {
    store.current_stats().await.unwrap()
}

async fn candidates_duplicates_and_conflicts(backend: Backend) {
    let quotas = StoreQuotas::total(1 << 20);
    let Some((one, two)) = backend.pair("candidates", quotas).await else { return };
    assert_eq!(one.put(id(1), http(1), TTL, 0, b(b"first")).await, Ok(PutOutcome::Stored));
    // Identical bytes are a duplicate whoever sends them, through any replica.
    assert_eq!(two.put(id(1), http(2), TTL, 0, b(b"first")).await, Ok(PutOutcome::Duplicate));
    assert_eq!(one.put(id(1), ws(3, 7), TTL, 0, b(b"first")).await, Ok(PutOutcome::Duplicate));
    // An HTTP client is one source on every replica: other bytes from it conflict.
    assert_eq!(
        two.put(id(1), http(1), TTL, 0, b(b"other")).await,
        Err(StoreError::Conflict(id(1)))
    );
    // Another source places a second candidate, numbered after the first.
    assert_eq!(two.put(id(1), http(2), TTL, 0, b(b"second")).await, Ok(PutOutcome::Stored));
    assert_eq!(one.get(id(1), 0).await.unwrap(), Some((0, b(b"first"))));
    assert_eq!(one.get(id(1), 1).await.unwrap(), Some((1, b(b"second"))));
    assert_eq!(two.get(id(1), 2).await.unwrap(), None);
    assert_eq!(two.get(id(2), 0).await.unwrap(), None);
    // A WebSocket connection may also place only one payload per id.
    assert_eq!(one.put(id(3), ws(3, 7), TTL, 0, b(b"x")).await, Ok(PutOutcome::Stored));
    assert_eq!(one.put(id(3), ws(3, 7), TTL, 0, b(b"y")).await, Err(StoreError::Conflict(id(3))));
    assert_eq!(one.put(id(3), ws(3, 8), TTL, 0, b(b"y")).await, Ok(PutOutcome::Stored));
    let s = stats(&two).await;
    assert_eq!((s.messages, s.contested_ids), (4, 2));
    assert_eq!(s.payload_bytes, 5 + 6 + 1 + 1);
    assert_eq!(s.charged_bytes, 13 + 4 * 64);
}

async fn waiters_are_woken_from_any_replica(backend: Backend) {
    let Some((one, two)) = backend.pair("waiters", StoreQuotas::total(1 << 24)).await else {
        return;
    };
    let big = Bytes::from(vec![0xab; 40 * 1024]);
    let waiting = |store: &Arc<dyn MessageStore>, id, from| {
        let store = Arc::clone(store);
        tokio::spawn(async move { store.wait(id, from, Duration::from_secs(10)).await })
    };
    let small_waiter = waiting(&two, id(1), 0);
    let big_waiter = waiting(&two, id(2), 0);
    let second_waiter = waiting(&one, id(1), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // (The memory "pair" is one store seen twice; Redis replicas count their own waiters.)
    let waiters = || match backend {
        Backend::Memory => one.stats().waiters,
        Backend::Redis => one.stats().waiters + two.stats().waiters,
    };
    assert_eq!(waiters(), 3);
    one.put(id(1), http(1), TTL, 0, b(b"small")).await.unwrap();
    one.put(id(2), http(1), TTL, 0, big.clone()).await.unwrap();
    assert_eq!(small_waiter.await.unwrap().unwrap(), Some((0, b(b"small"))));
    assert_eq!(big_waiter.await.unwrap().unwrap(), Some((0, big)));
    // Candidate 0 does not answer a waiter for "1 or later"; candidate 1 does.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!second_waiter.is_finished());
    two.put(id(1), http(2), TTL, 0, b(b"later")).await.unwrap();
    assert_eq!(second_waiter.await.unwrap().unwrap(), Some((1, b(b"later"))));
    assert_eq!(waiters(), 0);
    // Stored already: answered at once. Nothing stored: `None` at the deadline.
    assert_eq!(two.wait(id(1), 0, Duration::from_secs(5)).await.unwrap(), Some((0, b(b"small"))));
    let started = std::time::Instant::now();
    assert_eq!(two.wait(id(9), 0, Duration::from_millis(300)).await.unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(two.stats().waiters, 0);
}

async fn expiry_is_lazy_and_swept(backend: Backend) {
    let Some((one, two)) = backend.pair("expiry", StoreQuotas::total(1 << 20)).await else {
        return;
    };
    one.put(id(1), http(1), SHORT, 0, b(b"short")).await.unwrap();
    two.put(id(2), http(1), SHORT, 0, b(b"short")).await.unwrap();
    one.put(id(3), http(1), TTL, 0, b(b"long")).await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    // An expired message is not served, and does not hold its id.
    assert_eq!(two.get(id(1), 0).await.unwrap(), None);
    assert_eq!(two.wait(id(1), 0, Duration::from_millis(50)).await.unwrap(), None);
    assert_eq!(two.put(id(1), http(1), TTL, 0, b(b"new")).await, Ok(PutOutcome::Stored));
    one.purge_expired().await.unwrap();
    two.purge_expired().await.unwrap();
    let s = stats(&one).await;
    assert_eq!((s.messages, s.expired_total), (2, 2));
    assert_eq!(s.payload_bytes, 3 + 4);
    assert_eq!(s.charged_bytes, 7 + 2 * 64);
    assert_eq!(s.index_entries, 2);
    assert_eq!(one.get(id(1), 0).await.unwrap(), Some((0, b(b"new"))));
}

async fn quotas_count_every_replica(backend: Backend) {
    let quotas = StoreQuotas { total: 10_000, per_connection: 1_000, per_address: 2_500 };
    let Some((one, two)) = backend.pair("quotas", quotas).await else { return };
    let payload = Bytes::from(vec![0u8; 436]); // 500 bytes charged
    let mut n = 0u8;
    let mut put = |store: &Arc<dyn MessageStore>, source| {
        n += 1;
        let store = Arc::clone(store);
        let payload = payload.clone();
        let id = id(n);
        async move { store.put(id, source, SHORT, 1, payload).await }
    };
    put(&one, ws(1, 1)).await.unwrap();
    put(&one, ws(1, 1)).await.unwrap();
    let refused = put(&one, ws(1, 1)).await;
    assert_eq!(
        refused,
        Err(StoreError::Quota { scope: QuotaScope::Connection, held: 1000, limit: 1000 })
    );
    // The address quota counts what the address holds through both replicas.
    put(&two, ws(1, 2)).await.unwrap();
    put(&two, http(1)).await.unwrap();
    put(&one, http(1)).await.unwrap();
    let refused = put(&two, ws(1, 3)).await;
    assert_eq!(
        refused,
        Err(StoreError::Quota { scope: QuotaScope::Address, held: 2500, limit: 2500 })
    );
    assert_eq!(stats(&one).await.charged_bytes, 2500);
    // Others are not affected.
    put(&one, http(2)).await.unwrap();
    // Consuming or expiring gives the bytes back.
    one.consume(id(1), 0, 9).await.unwrap();
    put(&one, ws(1, 1)).await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    one.purge_expired().await.unwrap();
    assert_eq!(stats(&two).await.charged_bytes, 0);
    put(&two, http(1)).await.unwrap();
}

async fn consumed_by_all_readers_then_gone(backend: Backend) {
    let Some((one, two)) = backend.pair("consume", StoreQuotas::total(1 << 20)).await else {
        return;
    };
    one.put(id(1), http(1), TTL, 2, b(b"bcast")).await.unwrap();
    one.put(id(2), http(1), TTL, 1, b(b"p2p")).await.unwrap();
    one.put(id(3), http(1), TTL, 0, b(b"ttl only")).await.unwrap();
    assert!(two.consume(id(2), 0, 5).await.unwrap(), "a p2p message goes with its reader");
    assert!(!two.consume(id(1), 0, 1).await.unwrap());
    assert!(!one.consume(id(1), 0, 1).await.unwrap(), "a repeated reader counts once");
    assert_eq!(two.get(id(1), 0).await.unwrap(), Some((0, b(b"bcast"))));
    assert!(one.consume(id(1), 0, 3).await.unwrap());
    assert_eq!(two.get(id(1), 0).await.unwrap(), None);
    assert!(!one.consume(id(3), 0, 1).await.unwrap(), "unknown readers: kept for the TTL");
    assert!(!one.consume(id(9), 0, 1).await.unwrap());
    assert!(!one.consume(id(3), 4, 1).await.unwrap());
    let s = stats(&one).await;
    assert_eq!((s.messages, s.consumed_total), (1, 2));
    assert_eq!(s.charged_bytes, 8 + 64);
    // A consumed id is free again.
    assert_eq!(one.put(id(2), http(1), TTL, 1, b(b"again")).await, Ok(PutOutcome::Stored));
}

async fn racing_puts_stay_within_the_limit(backend: Backend) {
    let quotas = StoreQuotas::total(10 * 164);
    let Some((one, two)) = backend.pair("race_limit", quotas).await else { return };
    let mut tasks = Vec::new();
    for n in 0..40u8 {
        let store = Arc::clone(if n % 2 == 0 { &one } else { &two });
        tasks.push(tokio::spawn(async move {
            store.put(id(n), http(n), TTL, 0, Bytes::from(vec![n; 100])).await
        }));
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(PutOutcome::Stored) => stored += 1,
            Err(StoreError::Full { limit, .. }) => assert_eq!(limit, 1640),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 10);
    assert_eq!(stats(&one).await.charged_bytes, 1640);
}

async fn racing_candidates_are_numbered_once(backend: Backend) {
    let Some((one, two)) = backend.pair("race_numbers", StoreQuotas::total(1 << 20)).await else {
        return;
    };
    let mut tasks = Vec::new();
    for n in 0..30u8 {
        let store = Arc::clone(if n % 2 == 0 { &one } else { &two });
        tasks.push(tokio::spawn(async move {
            store.put(id(7), http(n), TTL, 0, Bytes::from(vec![n; 8])).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(PutOutcome::Stored));
    }
    let mut seen = Vec::new();
    let mut from = 0;
    while let Some((k, payload)) = one.get(id(7), from).await.unwrap() {
        assert_eq!(k, from, "numbers are dense");
        seen.push(payload[0]);
        from = k + 1;
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..30).collect::<Vec<u8>>());
    assert_eq!(stats(&two).await.contested_ids, 1);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Memory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Redis).await;
                }
            )*
        }
    };
}

contract!(
    candidates_duplicates_and_conflicts,
    waiters_are_woken_from_any_replica,
    expiry_is_lazy_and_swept,
    quotas_count_every_replica,
    consumed_by_all_readers_then_gone,
    racing_puts_stay_within_the_limit,
    racing_candidates_are_numbered_once,
);
