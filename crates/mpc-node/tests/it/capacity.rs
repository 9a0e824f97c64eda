//! More concurrent key generations than the nodes' session limits: every key id ends READY on
//! every node, or was refused everywhere with nothing created — never ERROR or PENDING because
//! one node was busy. Busy nodes tell their peers at once (signed abort notices), so the refused
//! runs end in well under the round timeout.

use std::time::{Duration, Instant};

use crate::common::{Cluster, NodeSpec, futures_join_all, random_sid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_keygens_end_ready_or_cleanly_refused() {
    let specs = (1..=3)
        .map(|i| {
            let mut s = NodeSpec::new(i, 3);
            s.max_concurrent_sessions = 8;
            s.session_timeout_secs = 30;
            s
        })
        .collect();
    let c = Cluster::start(specs).await;
    let keys: Vec<String> = (0..200).map(|k| format!("cap-{k}")).collect();
    let start = Instant::now();
    let runs =
        keys.iter().map(|key| {
            let c = &c;
            async move {
                c.generate_partial("app-a", key, 2, &[1, 2, 3], &[1, 2, 3], &random_sid()).await
            }
        });
    let results = futures_join_all(runs).await;
    let took = start.elapsed();

    let (mut ready, mut refused) = (0, 0);
    for (key, per_node) in keys.iter().zip(&results) {
        let statuses: Vec<Option<u16>> =
            per_node.iter().map(|r| r.as_ref().err().and_then(|e| e.status())).collect();
        if per_node.iter().all(Result::is_ok) {
            ready += 1;
            for i in 1..=3 {
                assert_eq!(c.client(i, "app-a").get_key(key).await.unwrap().status, "READY");
            }
            continue;
        }
        // Refused: every node answered 503 (busy itself, or a peer was) and holds nothing.
        assert!(statuses.iter().all(|s| *s == Some(503)), "{key}: {per_node:?}");
        for i in 1..=3 {
            let got = c.client(i, "app-a").get_key(key).await;
            assert_eq!(got.unwrap_err().status(), Some(404), "{key} left state on node {i}");
        }
        refused += 1;
    }
    // At most 8 of the 200 fit in a node's slots at once; which ones fit on all three nodes
    // (if any) depends on timing.
    assert!(refused >= 192, "ready {ready}, refused {refused}");
    // Refused runs fail at once, not at the 30-second round timeout.
    assert!(took < Duration::from_secs(25), "took {took:?}");
    eprintln!("{ready} READY, {refused} refused in {took:?}");

    // A refused key id is free: generating it again (new session id) works.
    let again = keys
        .iter()
        .zip(&results)
        .find(|(_, r)| r.iter().any(Result::is_err))
        .map(|(k, _)| k.clone())
        .unwrap();
    for r in c.generate("app-a", &again, 2, &[1, 2, 3]).await {
        assert_eq!(r.unwrap().status, "READY");
    }
}
