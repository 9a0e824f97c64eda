//! Per-application limits on real nodes: a request rate and a share of the operations running
//! at once, each answered 429 with `Retry-After` while other applications are served.

use std::time::Duration;

use http::Method;

use crate::common::{Cluster, NodeSpec, api_key, random_sid, verify};

/// `GET path` on node `port` as `app` over plain HTTP/1.1: (status line, `Retry-After`, body).
async fn get_as(port: u16, key: String, path: &'static str) -> (String, Option<String>, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.lines().next().unwrap_or_default().to_owned();
        let retry = head
            .lines()
            .find_map(|l| l.strip_prefix("retry-after: ").or_else(|| l.strip_prefix("Retry-After: ")))
            .map(str::to_owned);
        (status, retry, body.to_owned())
    })
    .await
    .unwrap()
}

fn limited(tables: &str) -> Vec<NodeSpec> {
    (1..=3).map(|i| NodeSpec { tables: tables.to_owned(), ..NodeSpec::new(i, 3) }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_rate_gets_429_and_others_do_not() {
    let c = Cluster::start(limited(
        "\n[[app_limits]]\napp = \"app-b\"\nrequests_per_second = 0.5\nburst = 2\n",
    ))
    .await;
    let port = c.specs[0].port;
    for _ in 0..2 {
        let (status, _, _) = get_as(port, api_key("app-b", 1), "/v1/keys").await;
        assert!(status.contains("200"), "{status}");
    }
    let (status, retry, body) = get_as(port, api_key("app-b", 1), "/v1/keys").await;
    assert!(status.contains("429"), "{status}");
    assert_eq!(retry.as_deref(), Some("2"), "a token every 2 s");
    assert!(body.contains("rate_limited"), "{body}");
    // Another application, and the same application on another node, are served.
    for _ in 0..10 {
        assert!(get_as(port, api_key("app-a", 1), "/v1/keys").await.0.contains("200"));
    }
    assert!(get_as(c.specs[1].port, api_key("app-b", 2), "/v1/keys").await.0.contains("200"));
    // The unauthenticated routes are not counted.
    let (st, _) = c.client(1, "app-b").raw(Method::GET, "/healthz", None, false).await.unwrap();
    assert_eq!(st.as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_operation_share_gets_429_while_others_run() {
    let c = Cluster::start(limited(
        "\n[[app_limits]]\napp = \"app-b\"\nmax_concurrent_operations = 1\n",
    ))
    .await;
    for app in ["app-a", "app-b"] {
        for r in c.generate(app, "k", 2, &[1, 2, 3]).await {
            r.unwrap();
        }
    }
    // app-b's signature on node 1 waits for node 2, holding app-b's only slot there.
    let req = mpc_node_client::api::SignRequestBody {
        session: mpc_node_client::api::SessionConfig {
            session_id: random_sid(),
            players: vec![1, 2],
            public_keys: Default::default(),
        },
        message_hash: Some(hex::encode([3u8; 32])),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    };
    let waiting = {
        let client = c.client(1, "app-b");
        let req = req.clone();
        tokio::spawn(async move { client.sign("k", &req).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut other = req.clone();
    other.session.session_id = random_sid();
    other.session.players = vec![1, 3];
    let started = std::time::Instant::now();
    let err = c.client(1, "app-b").sign("k", &other).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not queued");
    assert!(err.contains("429") || err.contains("too_many_operations"), "{err}");
    assert!(err.contains("max_concurrent_operations"), "{err}");
    // app-a is served meanwhile.
    for r in c.sign("app-a", "k", &[1, 2], [5; 32], "m").await {
        verify(&r.unwrap());
    }
    let second = c.client(2, "app-b").sign("k", &req).await.unwrap();
    let first = waiting.await.unwrap().unwrap();
    assert_eq!(first.der, second.der);
    // The slot is free again.
    for r in c.sign("app-b", "k", &[1, 2], [6; 32], "m").await {
        verify(&r.unwrap());
    }
}
