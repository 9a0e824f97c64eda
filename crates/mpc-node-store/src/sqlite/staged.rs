//! Staged shares of refreshes and reshares: sealed under the key's current data key, bound to
//! their new epoch and to the setup of the session that produced them.

use rusqlite::{Connection, OptionalExtension};

use super::records::require_record;
use super::shares::data_key;
use super::sql::db;
use crate::clock::now_secs;
use crate::envelope::{Aad, DOMAIN_STAGED, SecretKey};
use crate::error::StoreError;
use crate::record::{KeyRecord, StagedShare};
use crate::rules::{check_new_epoch, check_ready};

/// A staged share is sealed under the key's current data key, bound to its new epoch and to
/// the setup of the session that produced it.
fn staged_aad(r: &KeyRecord, epoch: u32, setup: &[u8]) -> Aad {
    let mut aad = Aad::for_key(DOMAIN_STAGED, &r.app, &r.key, r.player, r.epoch);
    aad.bytes(&epoch.to_be_bytes()).bytes(setup);
    aad
}

/// Keeps `share` (epoch `epoch`, from the session `setup`) as the key's staged share,
/// replacing an earlier one.
pub(super) fn stage_share(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
    epoch: u32,
    setup: &[u8],
    share: &[u8],
) -> Result<(), StoreError> {
    let r = require_record(tx, app, key)?;
    check_ready(&r.status)?;
    check_new_epoch(r.epoch, epoch)?;
    let dk = data_key(tx, kek, &r)?;
    let ct = dk.seal(staged_aad(&r, epoch, setup).as_slice(), share)?;
    tx.execute(
        "INSERT INTO staged_shares (app, key_name, epoch, setup, ciphertext, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (app, key_name) DO UPDATE SET \
         epoch = excluded.epoch, setup = excluded.setup, \
         ciphertext = excluded.ciphertext, created_at = excluded.created_at",
        (app, key, i64::from(epoch), setup, ct, now_secs()),
    )
    .map_err(db)?;
    Ok(())
}

/// The key's staged share, decrypted, if it has one.
pub(super) fn staged_share(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
) -> Result<Option<StagedShare>, StoreError> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = tx
        .query_row(
            "SELECT epoch, setup, ciphertext FROM staged_shares \
             WHERE app = ?1 AND key_name = ?2",
            (app, key),
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(db)?;
    let Some((epoch, setup, ct)) = row else { return Ok(None) };
    let epoch = u32::try_from(epoch)
        .map_err(|_| StoreError::Corrupt("staged epoch out of range".into()))?;
    let r = require_record(tx, app, key)?;
    let dk = data_key(tx, kek, &r)?;
    let share = dk.open(staged_aad(&r, epoch, &setup).as_slice(), &ct, "staged share")?;
    Ok(Some(StagedShare { epoch, setup, share }))
}

/// Drops the key's staged share (no error without one).
pub(super) fn clear_staged(tx: &Connection, app: &str, key: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM staged_shares WHERE app = ?1 AND key_name = ?2", (app, key))
        .map_err(db)?;
    Ok(())
}

/// `(app, key)` of every key with a staged share.
pub(super) fn list_staged(tx: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt =
        tx.prepare("SELECT app, key_name FROM staged_shares ORDER BY app, key_name").map_err(db)?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(db)?
        .collect::<Result<Vec<(String, String)>, _>>()
        .map_err(db)?;
    Ok(rows)
}
