//! Staged shares of refreshes and reshares: kept before this node's acknowledgement leaves,
//! activated once the other members are proven to hold theirs (at start-up and before the key
//! is next used), so a node never stays at an older epoch than its peers without knowing it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dkls23_core::KeyShare;
use dkls23_core::setup::Setup;
use dkls23_runner::{Confirmation, StageShare, confirm_staged};
use getrandom::SysRng;
use mpc_node_store::Store;
use rand_core::UnwrapErr;
use tracing::{error, info, warn};

use super::keys::{KeyRef, key_ref};
use super::state::Node;
use crate::error::ApiError;

/// How often a staged share that could not be confirmed is looked at again.
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// Longest wait for the acknowledgements when confirming (they are at the relay already, or
/// not at all).
const CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// The staging hook of one refresh/reshare run of one key.
struct NodeStage {
    store: Arc<dyn Store>,
    key: KeyRef,
    setup: Vec<u8>,
}

impl StageShare for NodeStage {
    fn stage<'a>(
        &'a self,
        share: &'a KeyShare,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        let store = self.store.clone();
        let (app, key) = self.key.clone();
        let setup = self.setup.clone();
        let (epoch, bytes) = (share.epoch(), share.to_bytes());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                store.stage_share(&app, &key, epoch, &setup, &bytes).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

impl Node {
    /// The staging hook for a refresh/reshare of (`app`, `key`) in session `setup`.
    pub(super) fn stage_hook(&self, app: &str, key: &str, setup: &Setup) -> Arc<dyn StageShare> {
        self.staged.mark(key_ref(app, key));
        Arc::new(NodeStage {
            store: self.db.store(),
            key: key_ref(app, key),
            setup: setup.to_bytes(),
        })
    }

    /// The epoch of the key's staged share, if it has one that is not confirmed yet.
    pub(super) async fn staged_epoch(&self, app: &str, key: &str) -> Option<u32> {
        if !self.staged.contains(&key_ref(app, key)) {
            return None;
        }
        let (a, k) = (app.to_owned(), key.to_owned());
        self.db.call(move |s| s.staged_share(&a, &k)).await.ok().flatten().map(|s| s.epoch)
    }

    /// Before the key is used: if it has a staged share, try to confirm it (at most every
    /// [`RETRY_EVERY`] after a failed try) and activate it when every other member's
    /// acknowledgement is found. Undecided shares stay staged; the key keeps its epoch.
    pub(super) async fn settle_staged(&self, app: &str, key: &str) {
        let id = key_ref(app, key);
        match self.staged.last_failure(&id) {
            None => return,
            Some(Some(failed)) if failed.elapsed() < RETRY_EVERY => return,
            Some(_) => {}
        }
        match self.try_settle(app, key).await {
            Ok(true) => self.staged.settled(&id),
            Ok(false) | Err(()) => self.staged.failed(id),
        }
    }

    /// `Ok(true)` when nothing is staged any more (activated, dropped or never there).
    async fn try_settle(&self, app: &str, key: &str) -> Result<bool, ()> {
        let (a, k) = (app.to_owned(), key.to_owned());
        let staged = self.db.call(move |s| s.staged_share(&a, &k)).await.map_err(|_| ())?;
        let Some(staged) = staged else { return Ok(true) };
        let parsed =
            Setup::from_bytes(&staged.setup).map_err(|e| e.to_string()).and_then(|setup| {
                Ok((setup, KeyShare::from_bytes(&staged.share).map_err(|e| e.to_string())?))
            });
        let (setup, share) = match parsed {
            Ok(p) => p,
            Err(e) => {
                error!(app, key, error = %e, "staged share does not decode; dropping it");
                self.drop_staged(app, key).await;
                return Ok(true);
            }
        };
        let env = self.runtime.env().round_timeout_at_most(CONFIRM_WAIT);
        let mut rng = UnwrapErr(SysRng);
        let checked = confirm_staged(&env.context(), &setup, &share, &mut rng).await;
        self.settle_outcome(app, key, &share, checked).await
    }

    /// What a confirmation attempt of the staged `share` found: activate it, keep it, or drop it.
    async fn settle_outcome(
        &self,
        app: &str,
        key: &str,
        share: &KeyShare,
        checked: Result<Confirmation, dkls23_core::Error>,
    ) -> Result<bool, ()> {
        match checked {
            Ok(Confirmation::Confirmed) => {
                let epoch = share.epoch();
                match self.replace_share(app, key, share).await {
                    Ok(_) => {
                        info!(
                            app,
                            key, epoch, "staged share activated: every member acknowledged it"
                        );
                        Ok(true)
                    }
                    Err(_) => Err(()),
                }
            }
            Ok(Confirmation::Missing(players)) => {
                warn!(
                    app, key, epoch = share.epoch(), missing = ?players,
                    "a staged share cannot be confirmed: no acknowledgement from these members \
                     was found at the relay; the key stays at its current epoch (its peers may \
                     be at the staged one)"
                );
                Ok(false)
            }
            Err(dkls23_core::Error::ViewMismatch { party, .. }) => {
                warn!(
                    app,
                    key, party, "a member acknowledged other data; dropping the staged share"
                );
                self.drop_staged(app, key).await;
                Ok(true)
            }
            Err(e) => {
                warn!(app, key, error = %e, "could not confirm a staged share; trying again later");
                Err(())
            }
        }
    }

    async fn drop_staged(&self, app: &str, key: &str) {
        let (a, k) = (app.to_owned(), key.to_owned());
        let _ = self.db.call(move |s| s.clear_staged(&a, &k)).await;
    }

    /// At start-up: every key with a staged share is confirmed (or reported) in the background.
    pub(super) fn settle_all_staged(self: &Arc<Self>, keys: Vec<KeyRef>) {
        if keys.is_empty() {
            return;
        }
        warn!(keys = keys.len(), "keys with a staged share from an earlier run; confirming them");
        for k in &keys {
            self.staged.mark(k.clone());
        }
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            for (app, key) in keys {
                let Some(node) = node.upgrade() else { return };
                let _lock = node.keys.write_lock(&app, &key).await;
                node.settle_staged(&app, &key).await;
            }
        });
    }

    /// Why an operation on a key with an unconfirmed staged share may have failed.
    pub(super) async fn staged_hint(&self, app: &str, key: &str, e: ApiError) -> ApiError {
        match (&e, self.staged_epoch(app, key).await) {
            (ApiError::Protocol(p), Some(epoch)) if p.culprits().is_empty() => {
                ApiError::StagedUnconfirmed { epoch, cause: p.to_string() }
            }
            _ => e,
        }
    }
}
