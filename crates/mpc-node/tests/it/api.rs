//! Authentication, tenancy, request limits, error bodies, OpenAPI, metrics.

use http::Method;
use mpc_node_client::Client;
use mpc_node_client::api::ErrorBody;

use crate::common::*;

async fn raw(c: &Client, m: Method, path: &str, body: Option<&str>, auth: bool) -> (u16, String) {
    let (st, b) = c.raw(m, path, body.map(|b| b.as_bytes().to_vec()), auth).await.unwrap();
    (st.as_u16(), String::from_utf8_lossy(&b).into_owned())
}

fn code(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body).unwrap().error.code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tenancy_limits_and_documents() {
    let cluster = Cluster::three().await;
    cluster.generate("app-a", "shared-name", 2, &[1, 2, 3]).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let a = cluster.client(1, "app-a");
    let b = cluster.client(1, "app-b");

    // 401 without a key or with an unknown one.
    let (st, body) = raw(&a, Method::GET, "/v1/keys", None, false).await;
    assert_eq!((st, code(&body).as_str()), (401, "unauthorized"));
    let wrong = Client::new(&cluster.url(1), "not-a-key").unwrap();
    assert_eq!(wrong.list_keys().await.unwrap_err().status(), Some(401));
    // Another node's key is not valid here either.
    let other = Client::new(&cluster.url(1), &api_key("app-a", 2)).unwrap();
    assert_eq!(other.list_keys().await.unwrap_err().status(), Some(401));

    // Application B sees nothing of application A.
    assert!(b.list_keys().await.unwrap().keys.is_empty());
    assert_eq!(a.list_keys().await.unwrap().keys.len(), 1);
    assert_eq!(b.get_key("shared-name").await.unwrap_err().status(), Some(404));
    assert_eq!(b.public_key("shared-name", "m").await.unwrap_err().status(), Some(404));
    assert_eq!(b.delete_key("shared-name").await.unwrap_err().status(), Some(404));
    let sign_b = cluster.sign("app-b", "shared-name", &[1, 2], [1; 32], "m").await;
    assert!(sign_b.iter().all(|r| r.as_ref().unwrap_err().status() == Some(404)));
    assert_eq!(a.get_key("shared-name").await.unwrap().status, "READY");

    // Malformed JSON: 400 with a precise message; unknown fields and wrong types too.
    let (st, body) = raw(&a, Method::POST, "/v1/keys", Some("{\"threshold\": 2,"), true).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("malformed JSON"), "{body}");
    let (st, body) = raw(
        &a,
        Method::POST,
        "/v1/keys",
        Some("{\"threshold\": \"two\", \"session\": {\"session_id\": \"00\", \"players\": []}}"),
        true,
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.contains("threshold"), "{body}");
    let (st, body) = raw(
        &a,
        Method::POST,
        "/v1/keys",
        Some("{\"threshold\": 2, \"bogus\": 1, \"session\": {\"session_id\": \"00\", \"players\": [1]}}"),
        true,
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.contains("bogus"), "{body}");
    // Semantic errors: bad session id, bad threshold, player without a key.
    let bad = |sid: &str, t: u16, players: &str| {
        format!(
            "{{\"threshold\": {t}, \"session\": {{\"session_id\": \"{sid}\", \"players\": {players}}}}}"
        )
    };
    let (st, body) =
        raw(&a, Method::POST, "/v1/keys", Some(&bad("abcd", 2, "[1,2,3]")), true).await;
    assert_eq!(st, 400);
    assert!(body.contains("session_id"), "{body}");
    let (st, body) =
        raw(&a, Method::POST, "/v1/keys", Some(&bad(&random_sid(), 5, "[1,2,3]")), true).await;
    assert_eq!(st, 400);
    assert!(body.contains("threshold"), "{body}");
    let (st, body) =
        raw(&a, Method::POST, "/v1/keys", Some(&bad(&random_sid(), 2, "[1,2,3,4]")), true).await;
    assert_eq!(st, 400);
    assert!(body.contains("player 4"), "{body}");
    let (st, body) = raw(
        &a,
        Method::POST,
        "/v1/keys/shared-name/sign",
        Some(&format!(
            "{{\"session\": {{\"session_id\": \"{}\", \"players\": [1,2]}}, \"message\": \"00\"}}",
            random_sid()
        )),
        true,
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.contains("hash_algorithm"), "{body}");
    let (st, body) = raw(
        &a,
        Method::POST,
        "/v1/keys/shared-name/sign",
        Some(&format!(
            "{{\"session\": {{\"session_id\": \"{}\", \"players\": [1,2]}}, \"message_hash\": \"00\", \"path\": \"m/1'\"}}",
            random_sid()
        )),
        true,
    )
    .await;
    assert_eq!(st, 400, "{body}");

    // Oversize body: 413.
    let big = format!("{{\"threshold\": 2, \"key_id\": \"{}\"}}", "x".repeat(100 * 1024));
    let (st, body) = raw(&a, Method::POST, "/v1/keys", Some(&big), true).await;
    assert_eq!((st, code(&body).as_str()), (413, "too_large"));

    // Unknown route and not-implemented endpoints answer JSON.
    let (st, body) = raw(&a, Method::GET, "/v2/nothing", None, true).await;
    assert_eq!((st, code(&body).as_str()), (404, "no_route"));
    let (st, body) = raw(&a, Method::POST, "/v1/keys/import", Some("{}"), true).await;
    assert_eq!((st, code(&body).as_str()), (400, "bad_request"));
    let (st, _) = raw(&a, Method::POST, "/v1/keys/import", Some("{}"), false).await;
    assert_eq!(st, 401);

    // Health, metrics and the OpenAPI document need no key.
    let (st, _) = raw(&a, Method::GET, "/healthz", None, false).await;
    assert_eq!(st, 200);
    for r in cluster.sign("app-a", "shared-name", &[1, 2], [7; 32], "m").await {
        r.unwrap();
    }
    let (st, metrics) = raw(&a, Method::GET, "/metrics", None, false).await;
    assert_eq!(st, 200);
    assert!(
        metrics.contains("mpc_node_sessions_total{protocol=\"dkg\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    // Round latency, fed by the runner's observer: one sample per round of the DKG and the sign.
    for protocol in ["dkg", "sign"] {
        for round in 1..=4 {
            let line = format!(
                "mpc_node_round_seconds_count{{protocol=\"{protocol}\",round=\"{round}\"}} 1"
            );
            assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}");
        }
    }
    assert!(!metrics.contains("round=\"5\""), "{metrics}");
    assert!(metrics.contains("mpc_node_http_errors_total{status=\"401\"}"), "{metrics}");
    let (st, doc) = raw(&a, Method::GET, "/openapi.json", None, false).await;
    assert_eq!(st, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for path in [
        "/v1/keys",
        "/v1/keys/{key_id}",
        "/v1/keys/{key_id}/sign",
        "/v1/keys/{key_id}/public-key",
        "/v1/keys/{key_id}/presign",
        "/v1/keys/{key_id}/refresh",
        "/v1/keys/{key_id}/reshare",
        "/v1/keys/{key_id}/export",
        "/v1/keys/{key_id}/xpub",
        "/v1/keys/import",
        "/v1/operations/{operation_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from openapi.json");
    }

    // Delete: the share is gone on this node, the others keep theirs.
    a.delete_key("shared-name").await.unwrap();
    assert_eq!(a.get_key("shared-name").await.unwrap_err().status(), Some(404));
    assert_eq!(cluster.client(2, "app-a").get_key("shared-name").await.unwrap().status, "READY");
}

/// One raw HTTP/1.1 exchange (for headers the typed client never sends).
async fn raw_http(url: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scheme_case_405_bodies_and_canonical_paths() {
    let cluster = Cluster::start(vec![NodeSpec::new(1, 1)]).await;
    let url = cluster.url(1);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = raw_http(
            &url,
            &format!(
                "GET /v1/keys HTTP/1.1\r\nHost: n\r\nAuthorization: {scheme} {}\r\n\
                 Connection: close\r\n\r\n",
                api_key("app-a", 1)
            ),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{scheme}: {r}");
    }
    let r = raw_http(
        &url,
        &format!(
            "GET /v1/keys HTTP/1.1\r\nHost: n\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
            api_key("app-a", 1)
        ),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    // A known route with another method: 405 with a JSON error body.
    let a = cluster.client(1, "app-a");
    let (st, body) = raw(&a, Method::PUT, "/v1/keys", None, true).await;
    assert_eq!((st, code(&body).as_str()), (405, "method_not_allowed"));
    // Non-canonical derivation paths are refused.
    for bad in ["m12", "m/+5", "m/01", "m/1/"] {
        let q = format!("/v1/keys/nope/public-key?path={}", bad.replace('+', "%2B"));
        let (st, body) = raw(&a, Method::GET, &q, None, true).await;
        assert_eq!(st, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut spec = NodeSpec::new(1, 1);
    spec.header_read_timeout_secs = 1;
    let cluster = Cluster::start(vec![spec]).await;
    let addr = cluster.url(1).trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /v1/keys HTTP/1.1\r\nHost: n\r\nAuthor").await.unwrap();
        slow.push(s);
    }
    let started = std::time::Instant::now();
    for s in &mut slow {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("a half-sent request was left open"),
            }
        }
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let a = cluster.client(1, "app-a");
    assert!(a.list_keys().await.unwrap().keys.is_empty());
}

/// Every route under `/v1/keys/{key_id}` refuses a malformed key id with the same 400 answer
/// (authentication is checked first), whatever the route does with a well-formed body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_key_id_is_refused_on_every_key_route() {
    let cluster = Cluster::three().await;
    let a = cluster.client(1, "app-a");
    let session = format!("{{\"session_id\": \"{}\", \"players\": [1, 2, 3]}}", random_sid());
    let sign = format!("{{\"session\": {session}, \"message_hash\": \"{}\"}}", "00".repeat(32));
    let presign = format!("{{\"session\": {session}, \"count\": 1}}");
    let refresh = format!("{{\"session\": {session}}}");
    let reshare =
        format!("{{\"session\": {session}, \"old_players\": [1, 2], \"new_threshold\": 2}}");
    let export = format!(
        "{{\"session\": {session}, \"recipient_index\": 1, \"recipient_identity\": \"x\", \
         \"recipient_x25519\": \"y\", \"confirmation\": \"z\"}}"
    );
    let routes: Vec<(Method, &str, Option<&str>)> = vec![
        (Method::GET, "", None),
        (Method::DELETE, "", None),
        (Method::GET, "/public-key", None),
        (Method::GET, "/xpub?network=testnet", None),
        (Method::POST, "/sign", Some(&sign)),
        (Method::POST, "/presign", Some(&presign)),
        (Method::POST, "/refresh", Some(&refresh)),
        (Method::POST, "/reshare", Some(&reshare)),
        (Method::POST, "/reshare-spec", Some(&reshare)),
        (Method::POST, "/export", Some(&export)),
    ];
    let long = "k".repeat(129);
    let cases = [
        ("bad!id", "key_id may only contain A-Z, a-z, 0-9, '.', '_' and '-'"),
        (long.as_str(), "key_id must be 1 to 128 characters"),
    ];
    for (id, message) in cases {
        for (method, tail, body) in &routes {
            let path = format!("/v1/keys/{id}{tail}");
            let (st, text) = raw(&a, method.clone(), &path, *body, true).await;
            assert_eq!(st, 400, "{method} {path}: {text}");
            let err = serde_json::from_str::<ErrorBody>(&text).unwrap().error;
            assert_eq!((err.code.as_str(), err.message.as_str()), ("bad_request", message));
            let (st, text) = raw(&a, method.clone(), &path, *body, false).await;
            assert_eq!((st, code(&text).as_str()), (401, "unauthorized"), "{method} {path}");
        }
    }
}
