//! The HTTP API through the router, with `oneshot` (no socket).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use msg_relay_svc::{AppState, app};
use serde_json::Value;
use tower::ServiceExt;

use crate::common::small_config;

const HEX_ID: &str = "abababababababababababababababababababababababababababababababab";

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, body)
}

fn put(path: &str, body: &'static [u8]) -> Request<Body> {
    Request::builder().method(Method::PUT).uri(path).body(Body::from(body)).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::builder().uri(path).body(Body::empty()).unwrap()
}

fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn healthz_and_metrics() {
    let state = AppState::new(small_config()).unwrap();
    let (status, body) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["status"], "ok");

    call(&state, put(&format!("/v1/msg/{HEX_ID}?ttl_ms=60000"), b"hello")).await;
    let resp = app(state.clone()).oneshot(get("/metrics")).await.unwrap();
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text =
        String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for family in [
        "relay_messages 1",
        "relay_bytes 5",
        "relay_waiters 0",
        "relay_expirations_total 0",
        "relay_published_total 1",
        "relay_rejections_total{reason=\"too_large\"} 0",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
}

#[tokio::test]
async fn publish_and_get_over_http() {
    let state = AppState::new(small_config()).unwrap();
    let path = format!("/v1/msg/{HEX_ID}?ttl_ms=60000");
    let (status, body) = call(&state, put(&path, b"payload")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["status"], "stored");
    let (status, body) = call(&state, put(&path, b"payload")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["status"], "duplicate");
    let (status, body) = call(&state, put(&path, b"other")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "conflict");

    let (status, body) = call(&state, get(&format!("/v1/msg/{HEX_ID}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"payload");
}

#[tokio::test]
async fn long_poll_is_answered_by_a_later_publish() {
    let state = AppState::new(small_config()).unwrap();
    let waiter = {
        let state = state.clone();
        tokio::spawn(
            async move { call(&state, get(&format!("/v1/msg/{HEX_ID}?wait_ms=5000"))).await },
        )
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    call(&state, put(&format!("/v1/msg/{HEX_ID}?ttl_ms=1000"), b"late")).await;
    let (status, body) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"late");
}

#[tokio::test]
async fn missing_message_is_404_not_found_after_the_wait() {
    let state = AppState::new(small_config()).unwrap();
    let (status, body) = call(&state, get(&format!("/v1/msg/{HEX_ID}?wait_ms=20"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let state = AppState::new(small_config()).unwrap();
    let cases = [
        (put("/v1/msg/abcd?ttl_ms=5", b"x"), StatusCode::BAD_REQUEST, "bad_request"),
        (put(&format!("/v1/msg/{HEX_ID}"), b"x"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            put(&format!("/v1/msg/{HEX_ID}?ttl_ms=abc"), b"x"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (put(&format!("/v1/msg/{HEX_ID}?ttl_ms=0"), b"x"), StatusCode::BAD_REQUEST, "bad_ttl"),
        (put(&format!("/v1/msg/{HEX_ID}?ttl_ms=600001"), b"x"), StatusCode::BAD_REQUEST, "bad_ttl"),
        (get("/v1/msg/not-hex"), StatusCode::BAD_REQUEST, "bad_request"),
        (get("/nowhere"), StatusCode::NOT_FOUND, "no_route"),
        (
            Request::builder().method(Method::DELETE).uri("/healthz").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (get("/v1/msg-relay"), StatusCode::BAD_REQUEST, "bad_request"),
    ];
    for (req, want_status, want_code) in cases {
        let uri = req.uri().clone();
        let (status, body) = call(&state, req).await;
        assert_eq!(status, want_status, "{uri}");
        assert_eq!(error_code(&body), want_code, "{uri}");
    }
}

#[tokio::test]
async fn oversized_body_is_413_with_the_limit() {
    let state = AppState::new(small_config()).unwrap();
    let big: &'static [u8] = Box::leak(vec![7u8; 1025].into_boxed_slice());
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/msg/{HEX_ID}?ttl_ms=1000"))
        .header(header::CONTENT_LENGTH, "1025")
        .body(Body::from(big))
        .unwrap();
    let (status, body) = call(&state, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "too_large");
    assert_eq!(v["error"]["limit"], 1024);
    assert_eq!(v["error"]["actual"], 1025);
    // Exactly at the limit is fine.
    let ok: &'static [u8] = Box::leak(vec![7u8; 1024].into_boxed_slice());
    let (status, _) = call(&state, put(&format!("/v1/msg/{HEX_ID}?ttl_ms=1000"), ok)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn http_waiter_limit() {
    let state = AppState::new(small_config()).unwrap(); // max_http_waiters = 4
    let mut waiters = Vec::new();
    for n in 0..4u8 {
        let state = state.clone();
        let hex = format!("{n:02x}").repeat(32);
        waiters.push(tokio::spawn(async move {
            call(&state, get(&format!("/v1/msg/{hex}?wait_ms=5000"))).await
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, body) = call(&state, get(&format!("/v1/msg/{HEX_ID}?wait_ms=10"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "too_many_asks");
    state.close();
    for w in waiters {
        let (status, body) = w.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(&body), "unavailable");
    }
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let state = AppState::new(small_config()).unwrap();
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("/v1/msg/{HEX_ID}"))
        .header(header::ORIGIN, "https://wallet.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
        .body(Body::empty())
        .unwrap();
    let resp = app(state).oneshot(req).await.unwrap();
    assert!(resp.status().is_success());
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[test]
fn state_needs_a_runtime_and_valid_config() {
    assert!(matches!(AppState::new(small_config()), Err(msg_relay_svc::ConfigError::NoRuntime)));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut bad = small_config();
        bad.peers = vec!["ftp://nope".into()];
        assert!(matches!(AppState::new(bad), Err(msg_relay_svc::ConfigError::Peer { .. })));
        let mut bad = small_config();
        bad.limits.max_asks_per_connection = 0;
        assert!(matches!(AppState::new(bad), Err(msg_relay_svc::ConfigError::Limit(_))));
    });
}

#[tokio::test]
async fn an_id_that_is_not_utf8_gets_a_json_error() {
    // Found by the relay_server fuzz target: `%a0` percent-decodes to invalid UTF-8.
    let state = AppState::new(small_config()).unwrap();
    for req in [put("/v1/msg/%a0?ttl_ms=1000", b"x"), get("/v1/msg/%a0")] {
        let (status, body) = call(&state, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_slice(&body).expect("a JSON error body");
        assert_eq!(v["error"]["code"], "bad_request", "{v}");
    }
}

fn get_with(path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().uri(path);
    if let Some(value) = authorization {
        req = req.header(header::AUTHORIZATION, value);
    }
    req.body(Body::empty()).unwrap()
}

/// A forwarded ask (which a relay answers from its own store only, with a larger budget) is
/// accepted only with the peer relays' shared token.
#[tokio::test]
async fn forwarded_asks_need_the_peer_token() {
    let state = AppState::new(small_config()).unwrap();
    call(&state, put(&format!("/v1/msg/{HEX_ID}?ttl_ms=60000"), b"hello")).await;
    let path = format!("/v1/msg/{HEX_ID}?forwarded=1");
    for auth in [None, Some("Bearer wrong-secret"), Some("Basic peer-secret-for-tests")] {
        let (status, body) = call(&state, get_with(&path, auth)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{auth:?}");
        assert_eq!(error_code(&body), "forbidden");
    }
    let (status, body) = call(&state, get_with(&path, Some("Bearer peer-secret-for-tests"))).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"hello"[..]));
    // Ordinary asks need no token.
    let (status, _) = call(&state, get(&format!("/v1/msg/{HEX_ID}"))).await;
    assert_eq!(status, StatusCode::OK);
}

/// Several clients publishing under one id: each payload is a numbered candidate, asked for
/// with `candidate=N` and named in the `Relay-Candidate` header; a consume names its candidate.
#[tokio::test]
async fn candidates_over_http() {
    let state = AppState::new(small_config()).unwrap();
    // In-process requests all come from the same (unknown) address: one candidate each.
    call(&state, put(&format!("/v1/msg/{HEX_ID}?ttl_ms=60000&readers=1"), b"first")).await;
    let (status, body) =
        call(&state, put(&format!("/v1/msg/{HEX_ID}?ttl_ms=60000"), b"second")).await;
    assert_eq!(status, StatusCode::CONFLICT, "one source, one candidate per id");
    assert_eq!(error_code(&body), "conflict");
    state
        .engine()
        .publish_from(
            msg_relay_svc::store::Source::http("10.0.0.9".parse().unwrap()),
            msg_relay_api::MessageId([0xab; 32]),
            std::time::Duration::from_secs(60),
            1,
            bytes::Bytes::from_static(b"second"),
        )
        .await
        .unwrap();
    let resp =
        app(state.clone()).oneshot(get(&format!("/v1/msg/{HEX_ID}?candidate=1"))).await.unwrap();
    assert_eq!(resp.headers()["relay-candidate"], "1");
    assert_eq!(&resp.into_body().collect().await.unwrap().to_bytes()[..], b"second");
    let resp = app(state.clone()).oneshot(get(&format!("/v1/msg/{HEX_ID}"))).await.unwrap();
    assert_eq!(resp.headers()["relay-candidate"], "0");
    // Consuming candidate 1 drops it alone.
    let del = Request::builder()
        .method(Method::DELETE)
        .uri(format!("/v1/msg/{HEX_ID}?reader=2&candidate=1"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&state, del).await.0, StatusCode::NO_CONTENT);
    assert_eq!(state.engine().store().stats().messages, 1);
    let (status, _) = call(&state, get(&format!("/v1/msg/{HEX_ID}?candidate=1&wait_ms=10"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
