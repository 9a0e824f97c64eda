//! The embedded SQLite [`Store`]: one database file, WAL mode, migrations at open, shares and
//! presignatures sealed with envelope encryption ([`crate::envelope`]).
//!
//! Every method runs in one `BEGIN IMMEDIATE` transaction, so a crash leaves either the old or
//! the new state, never a half-written share, and two processes opening the same file serialise
//! on SQLite's write lock (with a busy timeout). The SQL sticks to what PostgreSQL also accepts
//! (`ON CONFLICT ... DO NOTHING`, no `INSERT OR REPLACE`, no `rowid`).
//!
//! [`conn`] opens the database and runs transactions; each other module holds the SQL of one
//! group of tables, as functions of a transaction (and of the key-encryption key where they
//! seal or open secrets). This file only wires the [`Store`] methods to them.

mod bans;
mod conn;
mod generation;
mod kdf;
mod keys;
mod operations;
mod presignatures;
mod records;
mod schema;
mod shares;
mod sql;
mod staged;

use zeroize::Zeroizing;

pub use conn::{OpenOptions, SqliteStore};
use keys::PendingKey;

use crate::clock::now_secs;
use crate::error::StoreError;
use crate::record::{
    CreateOutcome, KeyRecord, NewShare, OperationEnd, OperationRecord, ReadyKey, StagedShare,
};
use crate::rules::{
    check_app_key, check_operation, check_params, check_presig_id, operation_cutoffs,
};
use crate::store::{Store, guard_result};

impl Store for SqliteStore {
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
        let shape = PendingKey { threshold, parties, player };
        self.write(|tx| keys::create_pending(tx, app, key, shape))
    }

    fn mark_ready(&self, app: &str, key: &str, ready: &ReadyKey<'_>) -> Result<(), StoreError> {
        self.write(|tx| keys::mark_ready(tx, &self.kek, app, key, ready))
    }

    fn mark_error(&self, app: &str, key: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| keys::mark_error(tx, app, key, reason))
    }

    fn fail_pending(&self, reason: &str) -> Result<u64, StoreError> {
        self.write(|tx| keys::fail_pending(tx, reason, i64::MAX))
    }

    fn fail_stale_pending(&self, reason: &str, max_age_secs: u64) -> Result<u64, StoreError> {
        let age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        let before = now_secs().saturating_sub(age);
        self.write(|tx| keys::fail_pending(tx, reason, before))
    }

    fn get(&self, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.read(|tx| records::get_record(tx, app, key))
    }

    fn list(&self, app: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|tx| records::list_records(tx, app))
    }

    fn load_share(&self, app: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.read(|tx| shares::load_share(tx, &self.kek, app, key))
    }

    fn replace_share(&self, app: &str, key: &str, new: &NewShare<'_>) -> Result<(), StoreError> {
        check_params(new.threshold, new.parties)?;
        self.write(|tx| shares::replace_share(tx, &self.kek, app, key, new))?;
        self.shred_log();
        Ok(())
    }

    fn stage_share(
        &self,
        app: &str,
        key: &str,
        epoch: u32,
        setup: &[u8],
        share: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|tx| staged::stage_share(tx, &self.kek, app, key, epoch, setup, share))
    }

    fn staged_share(&self, app: &str, key: &str) -> Result<Option<StagedShare>, StoreError> {
        self.read(|tx| staged::staged_share(tx, &self.kek, app, key))
    }

    fn clear_staged(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.write(|tx| staged::clear_staged(tx, app, key))
    }

    fn list_staged(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|tx| staged::list_staged(tx))
    }

    fn delete(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.write(|tx| keys::delete(tx, app, key))?;
        self.shred_log();
        Ok(())
    }

    fn record_iid(&self, iid: &[u8; 32]) -> Result<bool, StoreError> {
        self.write(|tx| bans::record_iid(tx, iid))
    }

    fn record_ban(&self, app: &str, key: &str, party: u16, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| bans::record_ban(tx, app, key, party, reason))
    }

    fn bans(&self, app: &str, key: &str) -> Result<Vec<u16>, StoreError> {
        self.read(|tx| bans::bans(tx, app, key))
    }

    fn put_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        check_presig_id(id)?;
        self.write(|tx| presignatures::put_presignature(tx, &self.kek, app, key, id, bytes))
    }

    fn take_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.write(|tx| {
            presignatures::take_presignature(tx, &self.kek, &self.counter, app, key, id)
        })
    }

    fn peek_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.read(|tx| presignatures::peek_presignature(tx, &self.kek, app, key, id))
    }

    fn list_presignatures(&self, app: &str, key: &str) -> Result<Vec<String>, StoreError> {
        self.read(|tx| presignatures::list_presignatures(tx, app, key))
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
        self.read(|tx| operations::get(tx, app, id))
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

impl dkls23_core::setup::ReplayGuard for SqliteStore {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), dkls23_core::setup::ReplayError> {
        guard_result(self.record_iid(iid))
    }
}
