//! The [`Store`] trait every backend implements, and the replay guards built on it.

use std::sync::Arc;

use dkls23_core::setup::{ReplayError, ReplayGuard};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::record::{
    CreateOutcome, KeyRecord, NewShare, OperationEnd, OperationRecord, ReadyKey, StagedShare,
};

/// The node's storage. Synchronous; every method is one transaction.
pub trait Store: Send + Sync + 'static {
    /// Inserts a PENDING record unless (app,key) exists; returns the existing record otherwise.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] for an invalid app/key name or `threshold` not in `1..=parties`.
    fn create_pending(
        &self,
        app: &str,
        key: &str,
        threshold: u16,
        parties: u16,
        player: u16,
    ) -> Result<CreateOutcome, StoreError>;

    /// One transaction: encrypt + store the share (new random data key wrapped by the KEK,
    /// AEAD associated data = app ‖ key ‖ player ‖ epoch), set READY and the public fields.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] unless it is PENDING.
    fn mark_ready(&self, app: &str, key: &str, ready: &ReadyKey<'_>) -> Result<(), StoreError>;

    /// Sets a PENDING (or already failed) record to ERROR with `reason` (truncated to
    /// [`MAX_REASON_LEN`](crate::MAX_REASON_LEN) bytes).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] for a READY key.
    fn mark_error(&self, app: &str, key: &str, reason: &str) -> Result<(), StoreError>;

    /// Sets every PENDING record (of every application) to ERROR with `reason`: at start-up,
    /// no session of this node is running, so a PENDING key was interrupted. Returns how many.
    ///
    /// # Errors
    /// Database failures only.
    fn fail_pending(&self, reason: &str) -> Result<u64, StoreError>;

    /// Sets the PENDING records that have not changed for `max_age_secs` to ERROR with
    /// `reason`: on a store that several node processes share, only a record older than the
    /// longest session can be known to be abandoned. Returns how many.
    ///
    /// # Errors
    /// Database failures only.
    fn fail_stale_pending(&self, reason: &str, max_age_secs: u64) -> Result<u64, StoreError>;

    /// Whether several node processes (replicas of one player) may use this store at once, so
    /// that one process cannot assume that a PENDING key is abandoned at start-up.
    fn is_shared(&self) -> bool {
        false
    }

    /// The record of (app, key), if any.
    ///
    /// # Errors
    /// Database failures only.
    fn get(&self, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// All records of `app`, ordered by key name.
    ///
    /// # Errors
    /// Database failures only.
    fn list(&self, app: &str) -> Result<Vec<KeyRecord>, StoreError>;

    /// Decrypts the current share (zeroized buffer).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a READY record; [`StoreError::Corrupt`] if the stored
    /// share fails authentication.
    fn load_share(&self, app: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, StoreError>;

    /// Refresh/reshare: atomically replace the share with `new.share` at `new.epoch` (new data
    /// key), drop all presignatures, bans and the staged share of the key. `player`, threshold
    /// and parties may change on reshare.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] unless the key is
    /// READY and `new.epoch` is greater than the current epoch, or for `new.threshold` not in
    /// `1..=new.parties`.
    fn replace_share(&self, app: &str, key: &str, new: &NewShare<'_>) -> Result<(), StoreError>;

    /// Keeps `share` (epoch `epoch`, produced by the reshare session `setup`) as the key's
    /// staged share, replacing an earlier one. [`Store::replace_share`] and [`Store::delete`]
    /// drop it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] unless the key is
    /// READY and `epoch` is greater than its current epoch.
    fn stage_share(
        &self,
        app: &str,
        key: &str,
        epoch: u32,
        setup: &[u8],
        share: &[u8],
    ) -> Result<(), StoreError>;

    /// The key's staged share, if any (decrypted).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it fails authentication; database failures.
    fn staged_share(&self, app: &str, key: &str) -> Result<Option<StagedShare>, StoreError>;

    /// Drops the key's staged share (no error without one).
    ///
    /// # Errors
    /// Database failures only.
    fn clear_staged(&self, app: &str, key: &str) -> Result<(), StoreError>;

    /// `(app, key)` of every key with a staged share (checked at start-up).
    ///
    /// # Errors
    /// Database failures only.
    fn list_staged(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Crypto-shredding: delete data key, ciphertext, presignatures, bans, record.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record.
    fn delete(&self, app: &str, key: &str) -> Result<(), StoreError>;

    /// Records a used instance id; Ok(false) if it was already used (replay).
    ///
    /// # Errors
    /// Database failures only.
    fn record_iid(&self, iid: &[u8; 32]) -> Result<bool, StoreError>;

    /// Records that `party` is banned from sessions of (app, key). Idempotent: a second ban of
    /// the same party keeps the first reason.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record.
    fn record_ban(&self, app: &str, key: &str, party: u16, reason: &str) -> Result<(), StoreError>;

    /// Banned parties of (app, key), ascending; empty for an unknown key.
    ///
    /// # Errors
    /// Database failures only.
    fn bans(&self, app: &str, key: &str) -> Result<Vec<u16>, StoreError>;

    /// Stores a presignature (encrypted like shares, bound to the key's current epoch).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] if the key is not
    /// READY, `id` is invalid (same rules as key names) or already present.
    fn put_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError>;

    /// Deletes and returns a presignature in one transaction (Fresh → Consumed), so a
    /// presignature can never be returned twice. `Ok(None)` if it does not exist (any more).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it fails authentication (it is then left in place).
    fn take_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;

    /// A presignature without taking it (to check that a request matches it before it is
    /// consumed). `Ok(None)` if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it fails authentication.
    fn peek_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;

    /// Ids of the stored presignatures of (app, key), ascending.
    ///
    /// # Errors
    /// Database failures only.
    fn list_presignatures(&self, app: &str, key: &str) -> Result<Vec<String>, StoreError>;

    /// Records the asynchronous operation `id` of `app` as running; `false` (and nothing
    /// changes) when that id exists already.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] for a malformed app, id or operation name.
    fn create_operation(&self, app: &str, id: &str, operation: &str) -> Result<bool, StoreError>;

    /// Records how the running operation `id` of `app` ended; an operation that is not
    /// running (ended, or failed by [`Store::fail_running_operations`]) keeps its outcome.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    fn finish_operation(
        &self,
        app: &str,
        id: &str,
        end: &OperationEnd<'_>,
    ) -> Result<(), StoreError>;

    /// The operation `id` of `app`.
    ///
    /// # Errors
    /// Database failures only.
    fn get_operation(&self, app: &str, id: &str) -> Result<Option<OperationRecord>, StoreError>;

    /// At start-up: ends as failed (with `end`) every running operation that has not changed
    /// for `max_age_secs` (0: all of them, for a store no other process uses), and deletes the
    /// ended ones older than `keep_secs`. Returns how many were failed.
    ///
    /// # Errors
    /// Database failures only.
    fn fail_running_operations(
        &self,
        end: &OperationEnd<'_>,
        max_age_secs: u64,
        keep_secs: u64,
    ) -> Result<u64, StoreError>;
}

pub(crate) fn guard_result(r: Result<bool, StoreError>) -> Result<(), ReplayError> {
    match r {
        Ok(true) => Ok(()),
        Ok(false) => Err(ReplayError::Reused),
        Err(e) => Err(ReplayError::Storage(e.to_string())),
    }
}

/// Lets `&dyn Store` (e.g. `&*arc`) be passed as the runner's replay guard.
impl ReplayGuard for dyn Store {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        guard_result(self.record_iid(iid))
    }
}

/// An owned replay guard over a shared store (for spawned tasks holding an `Arc<dyn Store>`).
#[derive(Clone)]
pub struct StoreReplayGuard(pub Arc<dyn Store>);

impl std::fmt::Debug for StoreReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreReplayGuard")
    }
}

impl ReplayGuard for StoreReplayGuard {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        guard_result(self.0.record_iid(iid))
    }
}
