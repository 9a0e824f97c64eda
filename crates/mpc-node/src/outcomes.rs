//! Protocol operations detached from their HTTP request, and their remembered outcomes.
//!
//! A node's part of a session must not depend on its API client staying connected: if the
//! client goes away during a refresh, the peers finish the run and commit the new epoch, so
//! this node must finish and commit too. Every operation that runs a session is therefore
//! spawned as its own task (dropping the request only drops the wait for it), and its outcome
//! is remembered by (application, operation, session id): the same request sent again — a
//! client retrying after a dropped connection — waits for or receives that outcome instead of
//! a 409 for a used session id. A request that reuses a session id with a different body runs
//! as usual (and is refused for the used session id).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::ApiError;

/// What an operation ended with: its JSON answer or its error.
pub type Outcome = Result<serde_json::Value, ApiError>;

/// (application, operation, session id in lowercase).
type Key = (String, &'static str, String);

struct Entry {
    digest: [u8; 32],
    outcome: watch::Receiver<Option<Outcome>>,
    started: Instant,
}

/// Remembered outcomes (bounded by count and age).
#[derive(Default)]
pub struct Outcomes {
    map: Mutex<HashMap<Key, Entry>>,
}

impl std::fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outcomes")
    }
}

/// How long an outcome is kept for a retry.
const KEEP: Duration = Duration::from_secs(15 * 60);
/// Most outcomes kept.
const MAX_ENTRIES: usize = 50_000;

/// The digest a retry must match: SHA-256 of the request's JSON encoding.
pub fn digest_of(req: &impl Serialize) -> [u8; 32] {
    let bytes = serde_json::to_vec(req).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

async fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone().unwrap_or(Err(ApiError::Internal)),
        // The task ended without an outcome: only if it panicked (already logged).
        Err(_) => Err(ApiError::Internal),
    }
}

/// Whether a retry must get this outcome: a success, or the failure of a protocol run that took
/// place (the session id is spent). Refusals that ran nothing are not remembered.
fn worth_remembering(outcome: &Outcome) -> bool {
    matches!(outcome, Ok(_) | Err(ApiError::Protocol(_)))
}

impl Outcomes {
    /// Runs `op` for (app, operation, session id) detached from the caller, or joins the run
    /// (or returns the outcome) of an identical earlier request.
    pub async fn run<T, F>(
        &self,
        app: &str,
        operation: &'static str,
        session_id: &str,
        digest: [u8; 32],
        op: F,
    ) -> Outcome
    where
        T: Serialize + Send + 'static,
        F: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let key = (app.to_owned(), operation, session_id.to_ascii_lowercase());
        let mut op = Some(op);
        let existing = {
            let key = key.clone();
            let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match map.get(&key) {
                Some(e) if e.digest == digest => Some(e.outcome.clone()),
                // Same session id, other request: run it (the session id check refuses it).
                Some(_) => None,
                None => {
                    let (tx, rx) = watch::channel(None);
                    Self::evict(&mut map);
                    map.insert(key, Entry { digest, outcome: rx.clone(), started: Instant::now() });
                    if let Some(op) = op.take() {
                        tokio::spawn(async move {
                            let outcome = op.await.and_then(|v| {
                                serde_json::to_value(v).map_err(|_| ApiError::Internal)
                            });
                            let _ = tx.send(Some(outcome));
                        });
                    }
                    Some(rx)
                }
            }
        };
        match existing {
            Some(rx) => {
                let outcome = wait(rx).await;
                if !worth_remembering(&outcome) {
                    // Refused before anything ran (busy, shutting down, a bad or conflicting
                    // request): a retry must be tried afresh.
                    let mut map =
                        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if map.get(&key).is_some_and(|e| e.digest == digest) {
                        map.remove(&key);
                    }
                }
                outcome
            }
            None => match op {
                Some(op) => {
                    op.await.and_then(|v| serde_json::to_value(v).map_err(|_| ApiError::Internal))
                }
                None => Err(ApiError::Internal),
            },
        }
    }

    fn evict(map: &mut HashMap<Key, Entry>) {
        // (see `run`)
        if map.len() < MAX_ENTRIES / 2 {
            return;
        }
        let finished = |e: &Entry| e.outcome.borrow().is_some();
        map.retain(|_, e| !finished(e) || e.started.elapsed() < KEEP);
        if map.len() >= MAX_ENTRIES {
            // Still full of recent entries: drop the finished ones (retries then get the 409).
            map.retain(|_, e| !finished(e));
        }
    }
}
