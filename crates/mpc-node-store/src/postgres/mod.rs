//! The PostgreSQL [`Store`]: one database shared by every replica of a node's player.
//!
//! Same tables and rules as the SQLite store (names prefixed `mpc_` so the schema can live
//! beside other applications'), the same envelope encryption (the server sees only sealed
//! shares and wrapped data keys), migrations at open under an advisory lock. The single-use
//! rules hold across processes: a presignature leaves through `DELETE … RETURNING`, an
//! instance id and a key's PENDING record through their primary keys, and every change of a
//! key locks its row first. `docs/scale-out.md` has the deployment.
//!
//! [`conn`] holds the pool and the transactions; [`keys`] the records, bans and instance ids;
//! [`secrets`] everything sealed.

mod conn;
mod keys;
mod operations;
mod schema;
mod secrets;

use zeroize::Zeroizing;

pub use conn::{PgOptions, PgStore, check_postgres_url};

use crate::clock::now_secs;
use crate::error::StoreError;
use crate::record::{
    CreateOutcome, KeyRecord, NewShare, OperationEnd, OperationRecord, ReadyKey, StagedShare,
};
use crate::rules::{
    check_app_key, check_operation, check_params, check_presig_id, operation_cutoffs,
};
use crate::store::{Store, guard_result};

impl Store for PgStore {
    fn create_pending(
        &self,
        app: &str,
        key: &str,
        threshold: u16,
        parties: u16,
        player: u16,
    ) -> Result<CreateOutcome, StoreError> {
        check_app_key(app, key)?;
        check_params(threshold, parties)?;
        self.write(|tx| keys::create_pending(tx, app, key, (threshold, parties, player)))
    }

    fn mark_ready(&self, app: &str, key: &str, ready: &ReadyKey<'_>) -> Result<(), StoreError> {
        self.write(|tx| keys::mark_ready(tx, &self.kek, app, key, ready))
    }

    fn mark_error(&self, app: &str, key: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| keys::mark_error(tx, app, key, reason))
    }

    fn fail_pending(&self, reason: &str) -> Result<u64, StoreError> {
        self.write(|tx| keys::fail_pending(tx, reason, None))
    }

    fn fail_stale_pending(&self, reason: &str, max_age_secs: u64) -> Result<u64, StoreError> {
        let age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        let before = now_secs().saturating_sub(age);
        self.write(|tx| keys::fail_pending(tx, reason, Some(before)))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn get(&self, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.single(true, |c| keys::get_record(c, app, key))
    }

    fn list(&self, app: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.single(true, |c| keys::list_records(c, app))
    }

    fn load_share(&self, app: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.read(|tx| secrets::load_share(tx, &self.kek, app, key))
    }

    fn replace_share(&self, app: &str, key: &str, new: &NewShare<'_>) -> Result<(), StoreError> {
        check_params(new.threshold, new.parties)?;
        self.write(|tx| secrets::replace_share(tx, &self.kek, app, key, new))
    }

    fn stage_share(
        &self,
        app: &str,
        key: &str,
        epoch: u32,
        setup: &[u8],
        share: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|tx| secrets::stage_share(tx, &self.kek, app, key, (epoch, setup, share)))
    }

    fn staged_share(&self, app: &str, key: &str) -> Result<Option<StagedShare>, StoreError> {
        self.read(|tx| secrets::staged_share(tx, &self.kek, app, key))
    }

    fn clear_staged(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.write(|tx| secrets::clear_staged(tx, app, key))
    }

    fn list_staged(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.single(true, secrets::list_staged)
    }

    fn delete(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.write(|tx| keys::delete(tx, app, key))
    }

    fn record_iid(&self, iid: &[u8; 32]) -> Result<bool, StoreError> {
        self.single(false, |c| keys::record_iid(c, iid))
    }

    fn record_ban(&self, app: &str, key: &str, party: u16, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| keys::record_ban(tx, app, key, party, reason))
    }

    fn bans(&self, app: &str, key: &str) -> Result<Vec<u16>, StoreError> {
        self.single(true, |c| keys::bans(c, app, key))
    }

    fn put_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        check_presig_id(id)?;
        self.write(|tx| secrets::put_presignature(tx, &self.kek, app, key, (id, bytes)))
    }

    fn take_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.write(|tx| secrets::open_presignature(tx, &self.kek, app, key, id, true))
    }

    fn peek_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.read(|tx| secrets::open_presignature(tx, &self.kek, app, key, id, false))
    }

    fn list_presignatures(&self, app: &str, key: &str) -> Result<Vec<String>, StoreError> {
        self.single(true, |c| secrets::list_presignatures(c, app, key))
    }

    fn create_operation(&self, app: &str, id: &str, operation: &str) -> Result<bool, StoreError> {
        check_operation(app, id, operation)?;
        self.write(|tx| operations::create(tx, app, id, operation))
    }

    fn finish_operation(
        &self,
        app: &str,
        id: &str,
        end: &OperationEnd<'_>,
    ) -> Result<(), StoreError> {
        self.write(|tx| operations::finish(tx, app, id, end))
    }

    fn get_operation(&self, app: &str, id: &str) -> Result<Option<OperationRecord>, StoreError> {
        self.single(true, |c| operations::get(c, app, id))
    }

    fn fail_running_operations(
        &self,
        end: &OperationEnd<'_>,
        max_age_secs: u64,
        keep_secs: u64,
    ) -> Result<u64, StoreError> {
        let (before, forget_before) = operation_cutoffs(max_age_secs, keep_secs);
        self.write(|tx| operations::fail_running(tx, end, before, forget_before))
    }
}

impl dkls23_core::setup::ReplayGuard for PgStore {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), dkls23_core::setup::ReplayError> {
        guard_result(self.record_iid(iid))
    }
}
