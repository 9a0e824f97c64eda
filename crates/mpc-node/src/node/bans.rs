//! Bans seen by sessions in flight: when a session bans a party, every other session of the
//! same key with that party among its signers is aborted at once (`protocols.md` §3.7).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use mpc_node_store::KeyRecord;
use tokio::sync::watch;

use super::keys::{KeyRef, key_ref};
use crate::error::ApiError;

/// Past this many keys, the signals nobody watches are dropped.
const MAX_IDLE_SIGNALS: usize = 4096;

/// 409 for a session with a banned player.
pub(crate) fn banned_conflict(player: u16) -> ApiError {
    ApiError::Conflict(format!(
        "player {player} is banned for this key; reshare the key to replace it"
    ))
}

/// 409 if one of `signers` is `banned`.
pub(crate) fn refuse_banned(signers: &[u16], banned: &[u16]) -> Result<(), ApiError> {
    match signers.iter().find(|s| banned.contains(s)) {
        Some(b) => Err(banned_conflict(*b)),
        None => Ok(()),
    }
}

/// Which in-flight session a ban must abort: one of `signers` of key `key`.
#[derive(Debug)]
pub(crate) struct BanScope {
    key: KeyRef,
    signers: Vec<u16>,
}

impl BanScope {
    /// The scope of a session of `record`'s key with `signers`.
    pub(crate) fn of(record: &KeyRecord, signers: &[u16]) -> Self {
        Self { key: (record.app.clone(), record.key.clone()), signers: signers.to_vec() }
    }
}

/// Per key: the parties banned while sessions were in flight (those sessions watch it).
#[derive(Default)]
pub(crate) struct BanSignals(Mutex<HashMap<KeyRef, watch::Sender<Vec<u16>>>>);

impl BanSignals {
    fn map(&self) -> MutexGuard<'_, HashMap<KeyRef, watch::Sender<Vec<u16>>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A watcher of the bans of `scope`'s key recorded from now on.
    pub(crate) fn watch(&self, scope: BanScope) -> BanWatch {
        let mut m = self.map();
        if m.len() > MAX_IDLE_SIGNALS {
            m.retain(|_, tx| tx.receiver_count() > 0);
        }
        let rx = m.entry(scope.key).or_insert_with(|| watch::Sender::new(Vec::new())).subscribe();
        BanWatch { rx, signers: scope.signers }
    }

    /// Tells every in-flight session of (app, key) that `party` is banned.
    pub(crate) fn signal(&self, app: &str, key: &str, party: u16) {
        if let Some(tx) = self.map().get(&key_ref(app, key)) {
            tx.send_modify(|v| v.push(party));
        }
    }

    /// Drops the signals of (app, key): after a refresh or reshare (whose new OT material
    /// starts with no bans) or a delete.
    pub(crate) fn forget(&self, app: &str, key: &str) {
        self.map().remove(&key_ref(app, key));
    }
}

/// One session's view of the bans of its key.
#[derive(Debug)]
pub(crate) struct BanWatch {
    rx: watch::Receiver<Vec<u16>>,
    signers: Vec<u16>,
}

impl BanWatch {
    /// Resolves with the first of the session's signers that is banned; never otherwise.
    pub(crate) async fn banned(&mut self) -> u16 {
        let signers = &self.signers;
        let hit = self
            .rx
            .wait_for(|b| signers.iter().any(|s| b.contains(s)))
            .await
            .ok()
            .and_then(|b| signers.iter().copied().find(|s| b.contains(s)));
        match hit {
            Some(p) => p,
            None => std::future::pending().await,
        }
    }
}
