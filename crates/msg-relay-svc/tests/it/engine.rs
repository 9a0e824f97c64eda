//! Engine semantics and limits, on the in-memory store, with paused time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use msg_relay_api::{MemoryRelay, Relay};
use msg_relay_svc::engine::{AskBudget, Engine, EngineError, Limits};
use msg_relay_svc::store::{MemoryStore, MessageStore, PutOutcome, QuotaScope, Source, StoreError};

use crate::common::id;

fn engine(limits: Limits) -> Engine {
    let store = Arc::new(MemoryStore::new(limits.max_total_bytes));
    Engine::new(store, limits, Vec::new())
}

fn permit() -> msg_relay_svc::engine::AskPermit {
    AskBudget::new(1).try_acquire().unwrap()
}

const TTL: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn publish_then_ask() {
    let e = engine(Limits::default());
    assert_eq!(e.publish(id(1), TTL, 0, Bytes::from_static(b"one")).await, Ok(PutOutcome::Stored));
    assert_eq!(e.ask(permit(), id(1), WAIT, true).await.unwrap(), &b"one"[..]);
    // Asking again still finds it: messages are kept until their TTL, not consumed.
    assert_eq!(e.ask(permit(), id(1), WAIT, true).await.unwrap(), &b"one"[..]);
}

#[tokio::test(start_paused = true)]
async fn ask_then_publish() {
    let e = Arc::new(engine(Limits::default()));
    let asker = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { e.ask(permit(), id(2), WAIT, true).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(e.store().stats().waiters, 1);
    e.publish(id(2), TTL, 0, Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(asker.await.unwrap().unwrap(), &b"two"[..]);
    assert_eq!(e.store().stats().waiters, 0);
}

#[tokio::test(start_paused = true)]
async fn many_waiters_for_one_id_all_get_it() {
    let e = Arc::new(engine(Limits::default()));
    let askers: Vec<_> = (0..5)
        .map(|_| {
            let e = Arc::clone(&e);
            tokio::spawn(async move { e.ask(permit(), id(3), WAIT, true).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    e.publish(id(3), TTL, 0, Bytes::from_static(b"x")).await.unwrap();
    for a in askers {
        assert_eq!(a.await.unwrap().unwrap(), &b"x"[..]);
    }
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_lazy_and_swept() {
    let e = engine(Limits::default());
    e.publish(id(1), Duration::from_secs(1), 0, Bytes::from_static(b"short")).await.unwrap();
    e.publish(id(2), Duration::from_secs(1), 0, Bytes::from_static(b"short")).await.unwrap();
    e.publish(id(3), Duration::from_secs(100), 0, Bytes::from_static(b"long")).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    // Lazy: an ask does not see the expired message.
    assert_eq!(
        e.ask(permit(), id(1), Duration::from_millis(10), true).await,
        Err(EngineError::WaitExpired(id(1)))
    );
    // Swept: the purge removes the other one; the long-lived message stays.
    e.purge_expired().await;
    let stats = e.store().stats();
    assert_eq!(stats.messages, 1);
    assert_eq!(stats.expired_total, 2);
    assert_eq!(stats.payload_bytes, 4);
    // After expiry the id is free again, even for different bytes.
    assert_eq!(e.publish(id(1), TTL, 0, Bytes::from_static(b"new")).await, Ok(PutOutcome::Stored));
}

#[tokio::test(start_paused = true)]
async fn duplicate_identical_is_idempotent_and_conflict_is_rejected() {
    let e = engine(Limits::default());
    assert_eq!(e.publish(id(1), TTL, 0, Bytes::from_static(b"a")).await, Ok(PutOutcome::Stored));
    assert_eq!(e.publish(id(1), TTL, 0, Bytes::from_static(b"a")).await, Ok(PutOutcome::Duplicate));
    assert_eq!(
        e.publish(id(1), TTL, 0, Bytes::from_static(b"b")).await,
        Err(EngineError::Conflict(id(1)))
    );
    assert_eq!(e.ask(permit(), id(1), WAIT, true).await.unwrap(), &b"a"[..]);
    assert_eq!(e.store().stats().messages, 1);
    let metrics = e.metrics().render(&e.store().stats());
    assert!(metrics.contains("relay_rejections_total{reason=\"conflict\"} 1"));
    assert!(metrics.contains("relay_duplicate_publishes_total 1"));
}

#[tokio::test(start_paused = true)]
async fn size_and_ttl_limits() {
    let limits = Limits { max_message_bytes: 10, max_ttl: TTL, ..Limits::default() };
    let e = engine(limits);
    assert_eq!(
        e.publish(id(1), TTL, 0, Bytes::from(vec![0; 11])).await,
        Err(EngineError::TooLarge { size: 11, max: 10 })
    );
    e.publish(id(1), TTL, 0, Bytes::from(vec![0; 10])).await.unwrap();
    assert_eq!(
        e.publish(id(2), TTL + Duration::from_millis(1), 0, Bytes::new()).await,
        Err(EngineError::BadTtl { requested: TTL + Duration::from_millis(1), max: TTL })
    );
    assert!(matches!(
        e.publish(id(2), Duration::ZERO, 0, Bytes::new()).await,
        Err(EngineError::BadTtl { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn total_bytes_limit() {
    // Room for exactly two 100-byte messages (each charged 100 + 64).
    let limits = Limits { max_total_bytes: 2 * 164, ..Limits::default() };
    let e = engine(limits);
    e.publish(id(1), Duration::from_secs(1), 0, Bytes::from(vec![1; 100])).await.unwrap();
    e.publish(id(2), TTL, 0, Bytes::from(vec![2; 100])).await.unwrap();
    assert_eq!(
        e.publish(id(3), TTL, 0, Bytes::from(vec![3; 100])).await,
        Err(EngineError::StoreFull { held: 328, limit: 328 })
    );
    // Identical re-publish of a stored message is still fine when full.
    assert_eq!(
        e.publish(id(2), TTL, 0, Bytes::from(vec![2; 100])).await,
        Ok(PutOutcome::Duplicate)
    );
    // Expiry frees room.
    tokio::time::advance(Duration::from_secs(2)).await;
    e.purge_expired().await;
    assert_eq!(e.publish(id(3), TTL, 0, Bytes::from(vec![3; 100])).await, Ok(PutOutcome::Stored));
}

#[tokio::test(start_paused = true)]
async fn outstanding_ask_budget() {
    let budget = AskBudget::new(2);
    let a = budget.try_acquire().unwrap();
    let _b = budget.try_acquire().unwrap();
    assert_eq!(budget.try_acquire().unwrap_err(), EngineError::TooManyAsks { limit: 2 });
    drop(a);
    assert_eq!(budget.outstanding(), 1);
    budget.try_acquire().unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiters_are_released_at_the_wait_limit_and_on_cancel() {
    let limits = Limits { max_wait: Duration::from_secs(5), ..Limits::default() };
    let e = Arc::new(engine(limits));
    // Asking for longer than max_wait is capped.
    let waiting = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { e.ask(permit(), id(9), Duration::from_secs(3600), true).await })
    };
    let cancelled = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { e.ask(permit(), id(8), Duration::from_secs(3600), true).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(e.store().stats().waiters, 2);
    cancelled.abort();
    let _ = cancelled.await;
    assert_eq!(e.store().stats().waiters, 1);
    assert_eq!(waiting.await.unwrap(), Err(EngineError::WaitExpired(id(9))));
    assert_eq!(e.store().stats().waiters, 0);
    assert!(e.metrics().render(&e.store().stats()).contains("relay_asks_expired_total 1"));
}

#[tokio::test(start_paused = true)]
async fn unanswered_asks_go_to_peers_once() {
    let peer = MemoryRelay::new();
    peer.publish(id(5), TTL, b"from peer".to_vec()).await.unwrap();
    let store = Arc::new(MemoryStore::new(1 << 20));
    let e = Engine::new(store, Limits::default(), vec![Arc::new(peer.clone())]);
    assert_eq!(e.ask(permit(), id(5), WAIT, true).await.unwrap(), &b"from peer"[..]);
    // What a peer served is kept here as a local candidate for further receivers.
    assert_eq!(e.ask(permit(), id(5), WAIT, false).await.unwrap(), &b"from peer"[..]);
    // A forwarded ask (forward = false) is answered locally only.
    peer.publish(id(7), TTL, b"only on the peer".to_vec()).await.unwrap();
    assert_eq!(
        e.ask(permit(), id(7), Duration::from_secs(1), false).await,
        Err(EngineError::WaitExpired(id(7)))
    );
    // The local store still wins when the message is published here.
    let e = Arc::new(e);
    let asker = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { e.ask(permit(), id(6), WAIT, true).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    e.publish(id(6), TTL, 0, Bytes::from_static(b"local")).await.unwrap();
    assert_eq!(asker.await.unwrap().unwrap(), &b"local"[..]);
}

#[tokio::test(start_paused = true)]
async fn memory_store_directly() {
    let store = MemoryStore::new(1000);
    let me = Source::LOCAL;
    assert_eq!(
        store.put(id(1), me, TTL, 0, Bytes::from_static(b"a")).await,
        Ok(PutOutcome::Stored)
    );
    assert_eq!(
        store.put(id(1), me, TTL, 0, Bytes::from_static(b"b")).await,
        Err(StoreError::Conflict(id(1)))
    );
    assert_eq!(store.get(id(1), 0).await.unwrap(), Some((0, Bytes::from_static(b"a"))));
    assert_eq!(store.get(id(1), 1).await.unwrap(), None);
    assert_eq!(store.get(id(2), 0).await.unwrap(), None);
    assert_eq!(store.wait(id(2), 0, Duration::from_millis(5)).await.unwrap(), None);
    assert_eq!(store.stats().waiters, 0);
    assert_eq!(store.stats().charged_bytes, 65);
}

#[tokio::test(start_paused = true)]
async fn a_message_for_readers_is_dropped_once_all_consumed_it() {
    let e = engine(Limits::default());
    e.publish(id(1), TTL, 2, Bytes::from_static(b"bcast")).await.unwrap();
    e.publish(id(2), TTL, 1, Bytes::from_static(b"p2p")).await.unwrap();
    e.publish(id(3), TTL, 0, Bytes::from_static(b"ttl only")).await.unwrap();
    assert_eq!(e.store().stats().messages, 3);

    e.consume(id(2), 5).await.unwrap();
    assert_eq!(e.store().stats().messages, 2, "a p2p message goes with its only reader");

    e.consume(id(1), 1).await.unwrap();
    e.consume(id(1), 1).await.unwrap();
    assert_eq!(e.ask(permit(), id(1), WAIT, true).await.unwrap(), &b"bcast"[..]);
    e.consume(id(1), 3).await.unwrap();
    let stats = e.store().stats();
    assert_eq!((stats.messages, stats.consumed_total), (1, 2));
    assert_eq!(stats.charged_bytes, 8 + 64, "the bytes of consumed messages are released");

    // Unknown readers: kept for the TTL whatever is consumed; unknown ids are ignored.
    e.consume(id(3), 1).await.unwrap();
    e.consume(id(9), 1).await.unwrap();
    assert_eq!(e.store().stats().messages, 1);
    let metrics = e.metrics().render(&e.store().stats());
    assert!(metrics.contains("relay_consumed_total 2\n"), "{metrics}");

    // The expiry index entries of consumed messages are skipped, not double-counted.
    tokio::time::advance(TTL + Duration::from_secs(1)).await;
    e.purge_expired().await;
    let stats = e.store().stats();
    assert_eq!((stats.messages, stats.expired_total, stats.charged_bytes), (0, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn consuming_frees_room_in_a_full_store() {
    let limits = Limits { max_total_bytes: 2 * 164, ..Limits::default() };
    let e = engine(limits);
    e.publish(id(1), TTL, 1, Bytes::from(vec![1; 100])).await.unwrap();
    e.publish(id(2), TTL, 1, Bytes::from(vec![2; 100])).await.unwrap();
    assert!(matches!(
        e.publish(id(3), TTL, 1, Bytes::from(vec![3; 100])).await,
        Err(EngineError::StoreFull { .. })
    ));
    e.consume(id(1), 0).await.unwrap();
    assert_eq!(e.publish(id(3), TTL, 1, Bytes::from(vec![3; 100])).await, Ok(PutOutcome::Stored));
}

#[tokio::test(start_paused = true)]
async fn the_expiry_index_does_not_keep_consumed_messages() {
    let e = engine(Limits::default());
    for n in 0..5000u32 {
        let mut raw = [0u8; 32];
        raw[..4].copy_from_slice(&n.to_be_bytes());
        let id = msg_relay_api::MessageId(raw);
        e.publish(id, TTL, 1, Bytes::from_static(b"m")).await.unwrap();
        e.consume(id, 0).await.unwrap();
    }
    e.publish(id(1), TTL, 0, Bytes::from_static(b"live")).await.unwrap();
    assert_eq!(e.store().stats().index_entries, 5001);
    e.purge_expired().await;
    let stats = e.store().stats();
    assert_eq!((stats.messages, stats.index_entries), (1, 1), "compacted at the next sweep");
}

fn conn(addr: [u8; 4], conn: u64) -> Source {
    Source { addr: std::net::IpAddr::from(addr), conn }
}

/// Every source may place one payload under an id; they are numbered in arrival order, a
/// waiter for "candidate N or later" is woken by the next one, and consuming a candidate
/// removes only it.
#[tokio::test(start_paused = true)]
async fn candidates_per_source() {
    let e = Arc::new(engine(Limits::default()));
    let (squatter, party) = (conn([10, 0, 0, 1], 1), conn([10, 0, 0, 2], 2));
    let b = Bytes::from_static;
    assert_eq!(e.publish_from(squatter, id(1), TTL, 1, b(b"junk")).await, Ok(PutOutcome::Stored));
    let waiter = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { e.ask_from(permit(), id(1), 1, WAIT, false).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(e.publish_from(party, id(1), TTL, 1, b(b"real")).await, Ok(PutOutcome::Stored));
    assert_eq!(waiter.await.unwrap().unwrap(), (1, b(b"real")));
    // Identical bytes from anyone are a duplicate; the same source with other bytes conflicts.
    assert_eq!(
        e.publish_from(squatter, id(1), TTL, 1, b(b"real")).await,
        Ok(PutOutcome::Duplicate)
    );
    assert_eq!(
        e.publish_from(squatter, id(1), TTL, 1, b(b"more junk")).await,
        Err(EngineError::Conflict(id(1)))
    );
    assert_eq!(e.ask(permit(), id(1), WAIT, false).await.unwrap(), b(b"junk"));
    assert_eq!(e.store().stats().contested_ids, 1);
    e.consume_candidate(id(1), 1, 1).await.unwrap();
    assert_eq!(e.store().stats().messages, 1);
    assert_eq!(
        e.ask_from(permit(), id(1), 1, Duration::from_millis(5), false).await,
        Err(EngineError::WaitExpired(id(1)))
    );
    assert_eq!(e.ask_from(permit(), id(1), 0, WAIT, false).await.unwrap(), (0, b(b"junk")));
}

/// Publishes are charged to their connection and their address: one client stops at its
/// quotas while others still publish; removed messages give the quota back.
#[tokio::test(start_paused = true)]
async fn quotas_per_connection_and_address() {
    let limits = Limits {
        max_total_bytes: 10_000,
        max_bytes_per_connection: 1_000,
        max_bytes_per_address: 2_500,
        ..Limits::default()
    };
    let store = Arc::new(MemoryStore::with_quotas(limits.quotas()));
    let e = Engine::new(store, limits, Vec::new());
    let payload = Bytes::from(vec![0u8; 436]); // 500 bytes charged
    let mut n = 0u8;
    let mut publish = |source| {
        n += 1;
        e.publish_from(source, id(n), Duration::from_secs(1), 1, payload.clone())
    };
    let first = conn([10, 0, 0, 1], 1);
    publish(first).await.unwrap();
    publish(first).await.unwrap();
    let refused = publish(first).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::QuotaExceeded {
                scope: QuotaScope::Connection,
                held: 1000,
                limit: 1000
            })
        ),
        "{refused:?}"
    );
    for c in 2..=4 {
        let _ = publish(conn([10, 0, 0, 1], c)).await;
        let _ = publish(conn([10, 0, 0, 1], c)).await;
    }
    let refused = publish(conn([10, 0, 0, 1], 9)).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::QuotaExceeded { scope: QuotaScope::Address, limit: 2500, .. })
        ),
        "{refused:?}"
    );
    assert_eq!(e.store().stats().charged_bytes, 2500);
    // Another client is not affected; over HTTP (conn 0) only the address quota applies.
    publish(Source::http(std::net::IpAddr::from([10, 0, 0, 2]))).await.unwrap();
    publish(Source::http(std::net::IpAddr::from([10, 0, 0, 2]))).await.unwrap();
    publish(Source::http(std::net::IpAddr::from([10, 0, 0, 2]))).await.unwrap();
    // Expired messages free their quota.
    tokio::time::advance(Duration::from_secs(2)).await;
    e.purge_expired().await;
    publish(first).await.unwrap();
}
