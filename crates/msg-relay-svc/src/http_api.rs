//! The HTTP front end: `PUT /v1/msg/{id}?ttl_ms=N[&readers=K]` publishes the request body,
//! `GET /v1/msg/{id}?wait_ms=N[&candidate=C][&forwarded=1]` long-polls for a message (with
//! `candidate`, for the candidates numbered C or later; the answer's `Relay-Candidate` header
//! names the one returned; `forwarded` only from authenticated peer relays), and
//! `DELETE /v1/msg/{id}?reader=R[&candidate=C]` consumes it.
//!
//! HTTP publishes are charged to, and keyed by, the client's address.

use std::net::SocketAddr;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use msg_relay_api::wire::CANDIDATE_HEADER;
use msg_relay_api::{MESSAGE_ID_LEN, MessageId};
use serde::Deserialize;
use serde_json::json;

use crate::engine::EngineError;
use crate::error::ApiError;
use crate::metrics::Rejection;
use crate::state::AppState;
use crate::store::{PutOutcome, Source};

type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

fn source_of(peer: &Peer) -> Source {
    peer.as_ref().map_or(Source::LOCAL, |c| Source::http(c.0.0.ip()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublishParams {
    ttl_ms: Option<u64>,
    readers: Option<u16>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConsumeParams {
    reader: Option<u16>,
    candidate: Option<u16>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AskParams {
    wait_ms: Option<u64>,
    forwarded: Option<String>,
    candidate: Option<u16>,
}

/// Parses a message id written as 64 hex digits.
pub(crate) fn parse_id(text: &str) -> Result<MessageId, ApiError> {
    let mut id = [0u8; MESSAGE_ID_LEN];
    hex::decode_to_slice(text, &mut id).map_err(|_| {
        ApiError::BadRequest(format!("message id must be {} hex digits", MESSAGE_ID_LEN * 2))
    })?;
    Ok(MessageId(id))
}

/// A path segment that does not decode (e.g. invalid UTF-8 after percent-decoding): the JSON
/// `bad_request` like every other error, never the framework's plain-text body.
fn bad_path(state: &AppState, e: &PathRejection) -> ApiError {
    state.engine().metrics().reject(Rejection::Malformed);
    ApiError::BadRequest(format!("invalid message id in the path: {}", e.body_text()))
}

fn bad_query(state: &AppState, e: &QueryRejection) -> ApiError {
    state.engine().metrics().reject(Rejection::Malformed);
    ApiError::BadRequest(format!("invalid query: {}", e.body_text()))
}

pub(crate) async fn put_message(
    State(state): State<AppState>,
    peer: Peer,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<PublishParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| bad_path(&state, &e))?;
    let id = parse_id(&id)?;
    let Query(params) = params.map_err(|e| bad_query(&state, &e))?;
    let ttl_ms = params.ttl_ms.ok_or_else(|| {
        ApiError::BadRequest("query parameter ttl_ms (milliseconds, at least 1) is required".into())
    })?;
    let max = state.engine().limits().max_message_bytes;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            state.engine().metrics().reject(Rejection::TooLarge);
            let size = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            ApiError::BodyTooLarge { size, max }
        } else {
            ApiError::BadRequest("could not read the request body".into())
        }
    })?;
    let readers = params.readers.unwrap_or(0);
    let ttl = Duration::from_millis(ttl_ms);
    let outcome = state.engine().publish_from(source_of(&peer), id, ttl, readers, body).await?;
    let (status, word) = match outcome {
        PutOutcome::Stored => (StatusCode::CREATED, "stored"),
        PutOutcome::Duplicate => (StatusCode::OK, "duplicate"),
    };
    Ok((status, axum::Json(json!({ "status": word }))).into_response())
}

pub(crate) async fn delete_message(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<ConsumeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| bad_path(&state, &e))?;
    let id = parse_id(&id)?;
    let Query(params) = params.map_err(|e| bad_query(&state, &e))?;
    let reader = params.reader.ok_or_else(|| {
        ApiError::BadRequest("query parameter reader (0 ..= 65535) is required".into())
    })?;
    state.engine().consume_candidate(id, params.candidate.unwrap_or(0), reader).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn get_message(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<AskParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| bad_path(&state, &e))?;
    let id = parse_id(&id)?;
    let Query(params) = params.map_err(|e| bad_query(&state, &e))?;
    let engine = state.engine();
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0)).min(engine.limits().max_poll);
    let forwarded = matches!(params.forwarded.as_deref(), Some("1" | "true"));
    if forwarded && !state.is_peer(&headers) {
        engine.metrics().reject(Rejection::Forbidden);
        return Err(EngineError::ForwardNotAllowed.into());
    }
    let permit = state.http_waiters().try_acquire().inspect_err(|_| {
        engine.metrics().reject(Rejection::TooManyAsks);
    })?;
    let _waiting = engine.metrics().http_waiter();
    let answer = tokio::select! {
        answer = engine.ask_from(permit, id, params.candidate.unwrap_or(0), wait, !forwarded) => answer,
        () = state.closed() => return Err(ApiError::ShuttingDown),
    };
    match answer {
        Ok((n, payload)) => Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::HeaderName::from_static(CANDIDATE_HEADER), n.to_string()),
            ],
            payload,
        )
            .into_response()),
        Err(EngineError::WaitExpired(id)) => Err(ApiError::Engine(EngineError::WaitExpired(id))),
        Err(e) => Err(e.into()),
    }
}
