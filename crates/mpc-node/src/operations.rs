//! Asynchronous operations: a session-bearing call sent with `Prefer: respond-async` is
//! answered at once with `202 Accepted`, the operation's id and `Location:
//! /v1/operations/{id}`; the operation runs detached (as every such call does, see
//! [`crate::outcomes`]) and its outcome is kept in the store, so `GET /v1/operations/{id}`
//! answers it from any replica and after a restart. When it ends, the application's webhook,
//! if it has one, is told (see [`crate::webhooks`]).
//!
//! The id is derived from the request (application, operation, session id and body), so the
//! same request sent again, with or without a dropped connection in between, names the same
//! operation instead of starting another. An operation still running when its node stopped is
//! failed at the next start (`interrupted`): its outcome is unknown, the key says where it is.

use std::future::Future;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mpc_node_client::api::{ErrorBody, ErrorDetail, OperationInfo};
use mpc_node_store::{OperationEnd, OperationRecord, OperationState};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::error::ApiError;
use crate::node::Node;
use crate::outcomes::Outcome;

/// How long an ended operation can be looked up (ended ones are purged at start-up).
pub const KEEP_SECS: u64 = 7 * 24 * 3600;

/// The error stored for an operation its node did not finish.
pub fn interrupted() -> String {
    error_text(
        StatusCode::SERVICE_UNAVAILABLE,
        "interrupted",
        "the node stopped while the operation ran, so its outcome is unknown: look at the key \
         (GET /v1/keys/{key_id}) and, if needed, retry with a new session id",
    )
    .1
}

fn error_text(status: StatusCode, code: &str, message: &str) -> (u16, String) {
    let body =
        ErrorBody { error: ErrorDetail { code: code.to_owned(), message: message.to_owned() } };
    (status.as_u16(), serde_json::to_string(&body).unwrap_or_default())
}

/// Whether `Prefer` (RFC 7240) asks for `respond-async`.
pub fn wants_async(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|pref| {
            pref.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("respond-async"))
        })
    })
}

/// The id of the operation a request starts: 32 hex digits of SHA-256 over this node's player
/// index, the application, the operation, the session id and the request's digest (the same
/// on every replica of the player, another on each player of the session).
pub fn operation_id(
    player: u16,
    app: &str,
    operation: &str,
    session_id: &str,
    digest: &[u8; 32],
) -> String {
    let mut h = Sha256::new();
    h.update(b"mpc-node operation v1\0");
    h.update(player.to_be_bytes());
    for part in [app, operation, &session_id.to_ascii_lowercase()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(digest);
    let full = h.finalize();
    hex::encode(full.get(..16).unwrap_or_default())
}

/// The API view of a stored operation.
pub fn info(r: &OperationRecord) -> OperationInfo {
    let value = r.result.as_deref().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
    let (result, error) = match r.state {
        OperationState::Running => (None, None),
        OperationState::Succeeded => (value, None),
        OperationState::Failed => {
            (None, value.and_then(|v| serde_json::from_value::<ErrorBody>(v).ok()).map(|b| b.error))
        }
    };
    OperationInfo {
        operation_id: r.id.clone(),
        operation: r.operation.clone(),
        status: r.state.as_str().to_owned(),
        http_status: r.http_status,
        result,
        error,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

tokio::task_local! {
    /// Set while an asynchronous operation's future runs: told when its session starts.
    static STARTED: std::cell::RefCell<Option<oneshot::Sender<()>>>;
}

/// Called where a session starts (every check of the request passed): an asynchronous
/// operation running in this task is answered 202 from now on.
pub(crate) fn session_started() {
    let _ = STARTED.try_with(|cell| {
        if let Some(tx) = cell.borrow_mut().take() {
            let _ = tx.send(());
        }
    });
}

/// Starts `op` as the asynchronous operation of this request (or finds the one an identical
/// request started) and answers 202 with it once its session has started. A request refused
/// before that (a bad request, an unknown key, a conflict, busy) is answered with that error
/// at once, as the synchronous call would be, and leaves no operation behind.
pub(crate) async fn start<T, F>(
    node: &std::sync::Arc<Node>,
    app: &str,
    operation: &'static str,
    session_id: &str,
    digest: [u8; 32],
    op: F,
) -> Result<Response, ApiError>
where
    T: Serialize + Send + 'static,
    F: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let id = operation_id(node.config().index, app, operation, session_id, &digest);
    let (a, i) = (app.to_owned(), id.clone());
    if let Some(known) = node.store_call(move |s| s.get_operation(&a, &i)).await? {
        return Ok(accepted(&info(&known)));
    }
    let (started_tx, started) = oneshot::channel();
    let op = STARTED.scope(std::cell::RefCell::new(Some(started_tx)), op);
    let (reply_tx, reply) = oneshot::channel::<Result<OperationRecord, ApiError>>();
    let (node, app, session_id) = (node.clone(), app.to_owned(), session_id.to_owned());
    tokio::spawn(async move {
        let run = node.outcomes().run(&app, operation, &session_id, digest, op);
        tokio::pin!(run);
        let early = tokio::select! {
            biased;
            outcome = &mut run => Some(outcome),
            told = started => match told {
                Ok(()) => None,
                // Ended without a session: wait for how.
                Err(_) => Some((&mut run).await),
            },
        };
        if let Some(outcome) = &early
            && !crate::outcomes::worth_remembering(outcome)
        {
            let refusal = match outcome {
                Err(e) => e.clone(),
                Ok(_) => ApiError::Internal,
            };
            let _ = reply_tx.send(Err(refusal));
            return;
        }
        let (a, i) = (app.clone(), id.clone());
        let created = node
            .store_call(move |s| {
                s.create_operation(&a, &i, operation)?;
                s.get_operation(&a, &i)
            })
            .await;
        let record = match created {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                let _ = reply_tx.send(Err(ApiError::Internal));
                return;
            }
        };
        info!(app, operation, operation_id = %id, session_id, "asynchronous operation started");
        let _ = reply_tx.send(Ok(record));
        let outcome = match early {
            Some(outcome) => outcome,
            None => run.await,
        };
        finish(&node, &app, &id, &outcome).await;
    });
    match reply.await {
        Ok(Ok(record)) => Ok(accepted(&info(&record))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::Internal),
    }
}

/// 202 with the operation and its `Location`.
fn accepted(info: &OperationInfo) -> Response {
    let location = format!("/v1/operations/{}", info.operation_id);
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(info)).into_response()
}

/// Stores how the operation ended and tells the application's webhook.
async fn finish(node: &std::sync::Arc<Node>, app: &str, id: &str, outcome: &Outcome) {
    let (succeeded, http_status, result) = match outcome {
        Ok(body) => (true, 200, String::from_utf8_lossy(body).into_owned()),
        Err(e) => {
            let (status, _) = e.parts();
            (false, status.as_u16(), serde_json::to_string(&e.body()).unwrap_or_default())
        }
    };
    let (a, i) = (app.to_owned(), id.to_owned());
    let stored = node
        .store_call(move |s| {
            s.finish_operation(&a, &i, &OperationEnd { succeeded, http_status, result: &result })?;
            s.get_operation(&a, &i)
        })
        .await;
    match stored {
        Ok(Some(record)) => {
            info!(app, operation_id = %id, status = record.state.as_str(), "asynchronous operation ended");
            node.webhooks().deliver(app, &info(&record));
        }
        Ok(None) => error!(app, operation_id = %id, "the ended operation is gone from the store"),
        Err(_) => error!(app, operation_id = %id, "could not store the operation's outcome"),
    }
}

/// `GET /v1/operations/{id}`: 404 for an id this application does not have.
pub(crate) async fn get(node: &Node, app: &str, id: &str) -> Result<OperationInfo, ApiError> {
    let not_found = || ApiError::NotFound(format!("no operation {id:?}"));
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let (a, i) = (app.to_owned(), id.to_ascii_lowercase());
    let record = node.store_call(move |s| s.get_operation(&a, &i)).await?;
    record.as_ref().map(info).ok_or_else(not_found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefer_respond_async_is_found_among_other_preferences() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("prefer", v.parse().unwrap());
            wants_async(&h)
        };
        assert!(with("respond-async"));
        assert!(with("return=minimal, Respond-Async; wait=10"));
        assert!(!with("return=minimal"));
        assert!(!with("respond-asynchronously"));
        assert!(!wants_async(&HeaderMap::new()));
    }

    #[test]
    fn the_id_depends_on_every_part_of_the_request() {
        let id = operation_id(1, "app", "sign", "AB", &[1; 32]);
        assert_eq!(id.len(), 32);
        assert_eq!(id, operation_id(1, "app", "sign", "ab", &[1; 32]), "session ids are case-free");
        for other in [
            operation_id(2, "app", "sign", "ab", &[1; 32]),
            operation_id(1, "app2", "sign", "ab", &[1; 32]),
            operation_id(1, "app", "presign", "ab", &[1; 32]),
            operation_id(1, "app", "sign", "ac", &[1; 32]),
            operation_id(1, "app", "sign", "ab", &[2; 32]),
        ] {
            assert_ne!(id, other);
        }
    }
}
