//! A key's record and share as operations use them: the READY record (after settling a staged
//! share), the decoded share (cached) with the key's bans, and replacing or forgetting them.

use std::sync::Arc;

use dkls23_core::KeyShare;
use mpc_node_client::api::KeyInfo;
use mpc_node_store::{KeyRecord, KeyStatus, NewShare};
use tracing::{error, info};

use super::keys::ShareStamp;
use super::records::{not_found, status_name};
use super::state::Node;
use crate::error::ApiError;

impl Node {
    /// The record of a READY key (a staged share is settled first); 404 or 409 otherwise.
    pub(super) async fn ready_record(&self, app: &str, key: &str) -> Result<KeyRecord, ApiError> {
        self.settle_staged(app, key).await;
        let (a, k) = (app.to_owned(), key.to_owned());
        let r = self.db.call(move |s| s.get(&a, &k)).await?.ok_or_else(|| not_found(key))?;
        if r.status != KeyStatus::Ready {
            return Err(ApiError::Conflict(format!(
                "key {key:?} is {}, not READY",
                status_name(&r.status)
            )));
        }
        Ok(r)
    }

    /// This node's decoded share of `key` (from the in-memory cache when it holds the record's
    /// epoch, else loaded, decrypted and validated off the async threads) and the key's bans,
    /// always read from the store.
    pub(super) async fn load_share(
        &self,
        record: &KeyRecord,
    ) -> Result<(Arc<KeyShare>, Vec<u16>), ApiError> {
        let id = (record.app.clone(), record.key.clone());
        let stamp = ShareStamp::of(record);
        if let Some(share) = self.keys.cached_share(&id, stamp) {
            let (a, k) = id;
            let bans = self.db.call(move |s| s.bans(&a, &k)).await?;
            return Ok((share, bans));
        }
        let (a, k) = id.clone();
        let (bytes, bans) =
            self.db.call(move |s| Ok((s.load_share(&a, &k)?, s.bans(&a, &k)?))).await?;
        let share = tokio::task::spawn_blocking(move || KeyShare::from_bytes(&bytes))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|e| {
                error!(error = %e, "stored share does not decode");
                ApiError::Internal
            })?;
        let share = Arc::new(share);
        if share.epoch() == record.epoch && Some(*share.key_id()) == record.core_key_id {
            self.keys.cache_share(id, stamp, share.clone());
        }
        Ok((share, bans))
    }

    /// Drops what this process remembers of (app, key): its cached share and ban signals.
    pub(super) fn forget_key(&self, app: &str, key: &str) {
        self.keys.forget_share(app, key);
        self.bans.forget(app, key);
    }

    /// Makes `new` the key's share (a refresh or reshare committed) and answers the key.
    pub(super) async fn replace_share(
        &self,
        app: &str,
        key: &str,
        new: &KeyShare,
    ) -> Result<KeyInfo, ApiError> {
        self.forget_key(app, key);
        let bytes = new.to_bytes();
        let (epoch, me, t, n) = (new.epoch(), new.index(), new.threshold(), new.parties());
        let (a, k) = (app.to_owned(), key.to_owned());
        self.db
            .call(move |s| {
                let new = NewShare { share: &bytes, epoch, player: me, threshold: t, parties: n };
                s.replace_share(&a, &k, &new)
            })
            .await?;
        info!(epoch, player = me, t, n, "share replaced");
        self.get_key(app, key).await
    }
}
