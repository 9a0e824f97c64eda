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

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::ApiError;

/// What an operation ended with: its JSON answer (encoded once, kept compact: a remembered
/// signature costs a few hundred bytes) or its error.
pub type Outcome = Result<axum::body::Bytes, ApiError>;

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
    map: Mutex<Remembered>,
}

/// The outcomes and their keys in insertion (= age) order, for eviction from the oldest.
#[derive(Default)]
struct Remembered {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
}

impl std::fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outcomes")
    }
}

/// How long an outcome is kept for a retry.
const KEEP: Duration = Duration::from_secs(15 * 60);
/// Most outcomes kept (about 1 KiB each); the oldest finished ones go first. At a sustained
/// 150 operations/s this still answers retries for two minutes.
const MAX_ENTRIES: usize = 20_000;

/// The digest a retry must match: SHA-256 of the request's JSON encoding.
pub fn digest_of(req: &impl Serialize) -> [u8; 32] {
    let bytes = serde_json::to_vec(req).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

fn encode(v: &impl Serialize) -> Outcome {
    serde_json::to_vec(v).map(axum::body::Bytes::from).map_err(|_| ApiError::Internal)
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
pub(crate) fn worth_remembering(outcome: &Outcome) -> bool {
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
            match map.entries.get(&key) {
                Some(e) if e.digest == digest => Some(e.outcome.clone()),
                // Same session id, other request: run it (the session id check refuses it).
                Some(_) => None,
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.evict();
                    map.order.push_back(key.clone());
                    map.entries.insert(
                        key,
                        Entry { digest, outcome: rx.clone(), started: Instant::now() },
                    );
                    if let Some(op) = op.take() {
                        tokio::spawn(async move {
                            let outcome = op.await.and_then(|v| encode(&v));
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
                    if map.entries.get(&key).is_some_and(|e| e.digest == digest) {
                        // Its place in `order` goes when it reaches the front.
                        map.entries.remove(&key);
                    }
                }
                outcome
            }
            None => match op {
                Some(op) => op.await.and_then(|v| encode(&v)),
                None => Err(ApiError::Internal),
            },
        }
    }
}

impl Remembered {
    /// Drops, oldest first, outcomes older than [`KEEP`] and finished ones beyond
    /// [`MAX_ENTRIES`]; a running operation is never forgotten (it moves to the back).
    fn evict(&mut self) {
        let mut looked = 0;
        while let Some(key) = self.order.pop_front() {
            looked += 1;
            let Some(e) = self.entries.get(&key) else { continue };
            let finished = e.outcome.borrow().is_some();
            let too_old = e.started.elapsed() >= KEEP;
            if finished && (too_old || self.entries.len() >= MAX_ENTRIES) {
                self.entries.remove(&key);
                continue;
            }
            self.order.push_front(key);
            if !finished && self.entries.len() >= MAX_ENTRIES && looked <= self.order.len() {
                // Running at the front of a full map: look behind it (bounded by one pass).
                if let Some(k) = self.order.pop_front() {
                    self.order.push_back(k);
                }
                continue;
            }
            break;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_finished_outcomes_go_first_and_the_count_stays_bounded() {
        let outcomes = Outcomes::default();
        for n in 0..MAX_ENTRIES + 100 {
            let sid = format!("{n:064x}");
            let got = outcomes.run("app", "sign", &sid, [1; 32], async move { Ok(n) }).await;
            assert_eq!(got.unwrap(), n.to_string().as_bytes());
        }
        let map = outcomes.map.lock().unwrap();
        assert_eq!(map.entries.len(), MAX_ENTRIES);
        assert!(!map.entries.contains_key(&("app".into(), "sign", format!("{:064x}", 0))));
        let newest = format!("{:064x}", MAX_ENTRIES + 99);
        assert!(map.entries.contains_key(&("app".into(), "sign", newest)));
    }
}
