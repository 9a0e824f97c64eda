//! The key record lifecycle: PENDING on creation, READY with its first share, ERROR with a
//! reason, and deletion (crypto-shredding every secret of the key).

use rusqlite::Connection;

use super::records::{get_record, require_record};
use super::shares::{delete_secrets, store_share};
use super::sql::db;
use crate::clock::now_secs;
use crate::envelope::SecretKey;
use crate::error::StoreError;
use crate::record::{CreateOutcome, ReadyKey};
use crate::rules::{check_can_mark_error, check_can_mark_ready, truncate_reason};

/// The shape of a new PENDING key.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingKey {
    pub(super) threshold: u16,
    pub(super) parties: u16,
    pub(super) player: u16,
}

/// Inserts a PENDING record unless (app, key) exists.
pub(super) fn create_pending(
    tx: &Connection,
    app: &str,
    key: &str,
    shape: PendingKey,
) -> Result<CreateOutcome, StoreError> {
    if let Some(existing) = get_record(tx, app, key)? {
        return Ok(CreateOutcome::Existing(existing));
    }
    let now = now_secs();
    let PendingKey { threshold, parties, player } = shape;
    tx.execute(
        "INSERT INTO keys (app, key_name, status, threshold, parties, player, epoch, \
         created_at, updated_at) VALUES (?1, ?2, 'PENDING', ?3, ?4, ?5, 0, ?6, ?6)",
        (app, key, threshold, parties, player, now),
    )
    .map_err(db)?;
    Ok(CreateOutcome::Created)
}

/// PENDING → READY: stores the first share (sealed under a new data key) and the public fields.
pub(super) fn mark_ready(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
    ready: &ReadyKey<'_>,
) -> Result<(), StoreError> {
    let r = require_record(tx, app, key)?;
    check_can_mark_ready(&r.status)?;
    store_share(tx, kek, app, key, r.player, ready.epoch, ready.share)?;
    tx.execute(
        "UPDATE keys SET status = 'READY', error = NULL, epoch = ?3, public_key = ?4, \
         chain_code = ?5, core_key_id = ?6, updated_at = ?7 \
         WHERE app = ?1 AND key_name = ?2",
        (
            app,
            key,
            i64::from(ready.epoch),
            ready.public_key.as_slice(),
            ready.chain_code.as_slice(),
            ready.core_key_id.as_slice(),
            now_secs(),
        ),
    )
    .map_err(db)?;
    Ok(())
}

/// PENDING (or ERROR) → ERROR with `reason`.
pub(super) fn mark_error(
    tx: &Connection,
    app: &str,
    key: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let r = require_record(tx, app, key)?;
    check_can_mark_error(&r.status)?;
    tx.execute(
        "UPDATE keys SET status = 'ERROR', error = ?3, updated_at = ?4 \
         WHERE app = ?1 AND key_name = ?2",
        (app, key, truncate_reason(reason), now_secs()),
    )
    .map_err(db)?;
    Ok(())
}

/// PENDING records last changed before `before` (unix seconds) → ERROR with `reason`;
/// returns how many.
pub(super) fn fail_pending(tx: &Connection, reason: &str, before: i64) -> Result<u64, StoreError> {
    let n = tx
        .execute(
            "UPDATE keys SET status = 'ERROR', error = ?1, updated_at = ?2 \
             WHERE status = 'PENDING' AND updated_at < ?3",
            (truncate_reason(reason), now_secs(), before),
        )
        .map_err(db)?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Deletes the record with its data key, ciphertexts, presignatures and bans.
pub(super) fn delete(tx: &Connection, app: &str, key: &str) -> Result<(), StoreError> {
    delete_secrets(tx, app, key)?;
    tx.execute("DELETE FROM bans WHERE app = ?1 AND key_name = ?2", (app, key)).map_err(db)?;
    let n =
        tx.execute("DELETE FROM keys WHERE app = ?1 AND key_name = ?2", (app, key)).map_err(db)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}
