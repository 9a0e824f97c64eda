//! What the relay server (`msg-relay-svc`) decodes from clients: WebSocket messages through
//! `msg_relay_svc::ws::serve_connection` (frame decoding, publish / ask / cancel handling and
//! the error frames for everything else) and HTTP requests through `msg_relay_svc::app` (the
//! message-id path segment, the `ttl_ms` / `wait_ms` / `forwarded` query and the body).
//!
//! Input: records `kind u8 ‖ len u16 ‖ bytes`. Kinds 0–2 are WebSocket messages of one
//! connection (binary, text, ping); kinds 3–5 are HTTP requests (GET, PUT, DELETE) whose bytes
//! are `path?query` up to the first newline and the body after it. The WebSocket connection runs
//! first, then the HTTP requests against the same relay state, on a paused Tokio clock (waits
//! and TTLs elapse instantly).
//!
//! Invariants: nothing panics; everything the server sends on the socket is a close message or
//! a binary frame that decodes and is of a server kind (ack, deliver, error); every client
//! publish frame that decodes is answered with an ack or an error carrying its request id; and
//! no HTTP request gets a 500, and every error response has a JSON body (except the known
//! plain-text rejection of a non-UTF-8 message id, finding 1 of docs/fuzzing.md, which is
//! tolerated unless DKLS_FUZZ_STRICT=1).
#![no_main]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::Message;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use msg_relay_api::wire::Frame;
use msg_relay_svc::{AppState, RelayConfig, app, ws::serve_connection};
use tower::ServiceExt;

enum Record<'a> {
    Ws(Message),
    Http(http::Method, &'a [u8]),
}

fn records(mut data: &[u8]) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    while let [kind, l0, l1, rest @ ..] = data {
        let len = usize::from(u16::from_be_bytes([*l0, *l1])).min(rest.len());
        let (body, tail) = rest.split_at(len);
        data = tail;
        out.push(match kind % 6 {
            0 => Record::Ws(Message::Binary(bytes::Bytes::copy_from_slice(body))),
            1 => Record::Ws(Message::Text(String::from_utf8_lossy(body).into_owned().into())),
            2 => Record::Ws(Message::Ping(bytes::Bytes::copy_from_slice(body))),
            3 => Record::Http(http::Method::GET, body),
            4 => Record::Http(http::Method::PUT, body),
            _ => Record::Http(http::Method::DELETE, body),
        });
    }
    out
}

async fn run(recs: Vec<Record<'_>>) {
    let config =
        RelayConfig { sweep_interval: Duration::from_millis(250), ..RelayConfig::default() };
    let state = AppState::new(config).expect("default relay config");

    let mut ws_in = Vec::new();
    let mut http_in = Vec::new();
    for r in recs {
        match r {
            Record::Ws(m) => ws_in.push(m),
            Record::Http(m, b) => http_in.push((m, b)),
        }
    }

    // Publish frames the server must answer.
    let publishes: Vec<u32> = ws_in
        .iter()
        .filter_map(|m| match m {
            Message::Binary(b) => match Frame::decode(b) {
                Ok(Frame::Publish { req, .. }) => Some(req),
                _ => None,
            },
            _ => None,
        })
        .collect();

    let sent: Arc<Mutex<Vec<Message>>> = Arc::new(Mutex::new(Vec::new()));
    let sink_log = Arc::clone(&sent);
    let sink = Box::pin(futures_util::sink::unfold((), move |(), m: Message| {
        let log = Arc::clone(&sink_log);
        async move {
            log.lock().expect("sink log").push(m);
            Ok::<(), Infallible>(())
        }
    }));
    let stream = futures_util::stream::iter(ws_in.into_iter().map(Ok::<Message, Infallible>));
    serve_connection(state.clone(), sink, stream).await;

    let sent = std::mem::take(&mut *sent.lock().expect("sink log"));
    let mut answered = Vec::new();
    for m in &sent {
        match m {
            Message::Binary(b) => match Frame::decode(b) {
                Ok(Frame::Ack { req, .. } | Frame::Error { req, .. }) => answered.push(req),
                Ok(Frame::Deliver { .. }) => {}
                Ok(other) => panic!("server sent a client frame: {other:?}"),
                Err(e) => panic!("server sent an undecodable frame ({e}): {b:?}"),
            },
            Message::Close(_) => {}
            other => panic!("server sent a non-binary message: {other:?}"),
        }
    }
    for req in publishes {
        assert!(answered.contains(&req), "publish {req} was not answered");
    }

    for (method, bytes) in http_in {
        let split = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
        let (target, body) = bytes.split_at(split);
        let body = body.get(1..).unwrap_or_default().to_vec();
        let Ok(target) = std::str::from_utf8(target) else { continue };
        let uri = format!("http://relay.invalid{target}");
        let Ok(req) = http::Request::builder().method(method).uri(uri).body(Body::from(body))
        else {
            continue;
        };
        let resp = app(state.clone()).oneshot(req).await.expect("the router is infallible");
        let status = resp.status();
        assert_ne!(status, http::StatusCode::INTERNAL_SERVER_ERROR, "HTTP 500 for {target:?}");
        let body = resp.into_body().collect().await.expect("response body").to_bytes();
        // Finding 1 (docs/fuzzing.md): a `{id}` path segment that percent-decodes to invalid
        // UTF-8 (`GET /v1/msg/%ff`) is rejected by axum's `Path` extractor with a plain-text
        // 400, not the JSON error body the protocol document promises. Tolerated so the run
        // can look for other failures; DKLS_FUZZ_STRICT=1 asserts it too (fixed since: the
        // relay answers it with the JSON bad_request).
        let known = body.starts_with(b"Invalid URL") && !strict();
        if (status.is_client_error() || status.is_server_error()) && !known {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
                "error response {status} without a JSON body: {body:?}"
            );
        }
    }
    state.close();
}

fn strict() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("DKLS_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let recs = records(data);
    if recs.is_empty() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(run(recs));
});
