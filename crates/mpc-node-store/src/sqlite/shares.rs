//! Key shares and their data keys: each share is sealed under its own random data key, which
//! is wrapped by the key-encryption key; both are bound to application, key, player and epoch.

use rusqlite::{Connection, OptionalExtension};
use zeroize::Zeroizing;

use super::records::require_record;
use super::sql::db;
use crate::clock::now_secs;
use crate::envelope::{Aad, DOMAIN_DATA_KEY, DOMAIN_SHARE, SecretKey};
use crate::error::StoreError;
use crate::record::{KeyRecord, KeyStatus, NewShare};
use crate::rules::{check_new_epoch, check_ready};

/// The data key of a READY record, unwrapped with `kek`.
pub(super) fn data_key(
    tx: &Connection,
    kek: &SecretKey,
    r: &KeyRecord,
) -> Result<SecretKey, StoreError> {
    let wrapped: Vec<u8> = tx
        .query_row(
            "SELECT wrapped FROM data_keys WHERE app = ?1 AND key_name = ?2",
            (&r.app, &r.key),
            |row| row.get(0),
        )
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::Corrupt("data key missing".into()))?;
    let aad = Aad::for_key(DOMAIN_DATA_KEY, &r.app, &r.key, r.player, r.epoch);
    SecretKey::unwrap_with(kek, aad.as_slice(), &wrapped)
}

/// Writes a new data key and the share sealed under it (replacing any previous ones), for
/// `player` at `epoch`.
pub(super) fn store_share(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
    player: u16,
    epoch: u32,
    share: &[u8],
) -> Result<(), StoreError> {
    let dk = SecretKey::random()?;
    let wrapped =
        dk.wrap(kek, Aad::for_key(DOMAIN_DATA_KEY, app, key, player, epoch).as_slice())?;
    let ct = dk.seal(Aad::for_key(DOMAIN_SHARE, app, key, player, epoch).as_slice(), share)?;
    delete_secrets(tx, app, key)?;
    tx.execute(
        "INSERT INTO data_keys (app, key_name, wrapped) VALUES (?1, ?2, ?3)",
        (app, key, wrapped),
    )
    .map_err(db)?;
    tx.execute(
        "INSERT INTO shares (app, key_name, ciphertext) VALUES (?1, ?2, ?3)",
        (app, key, ct),
    )
    .map_err(db)?;
    Ok(())
}

/// Deletes presignatures, staged share, share ciphertext and data key of a key (in the
/// caller's transaction).
pub(super) fn delete_secrets(tx: &Connection, app: &str, key: &str) -> Result<(), StoreError> {
    for table in ["presignatures", "staged_shares", "shares", "data_keys"] {
        tx.execute(&format!("DELETE FROM {table} WHERE app = ?1 AND key_name = ?2"), (app, key))
            .map_err(db)?;
    }
    Ok(())
}

/// The decrypted share of a READY key.
pub(super) fn load_share(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let r = require_record(tx, app, key)?;
    if r.status != KeyStatus::Ready {
        return Err(StoreError::NotFound);
    }
    let ct: Vec<u8> = tx
        .query_row(
            "SELECT ciphertext FROM shares WHERE app = ?1 AND key_name = ?2",
            (app, key),
            |row| row.get(0),
        )
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::Corrupt("share missing".into()))?;
    let dk = data_key(tx, kek, &r)?;
    dk.open(Aad::for_key(DOMAIN_SHARE, app, key, r.player, r.epoch).as_slice(), &ct, "share")
}

/// Refresh/reshare: the key's share becomes `new` (new data key); its presignatures, staged
/// share and bans go.
pub(super) fn replace_share(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
    new: &NewShare<'_>,
) -> Result<(), StoreError> {
    let r = require_record(tx, app, key)?;
    check_ready(&r.status)?;
    check_new_epoch(r.epoch, new.epoch)?;
    // Replaces data key and share, drops presignatures (bound to the old epoch anyway).
    store_share(tx, kek, app, key, new.player, new.epoch, new.share)?;
    tx.execute("DELETE FROM bans WHERE app = ?1 AND key_name = ?2", (app, key)).map_err(db)?;
    tx.execute(
        "UPDATE keys SET epoch = ?3, player = ?4, threshold = ?5, parties = ?6, \
         updated_at = ?7 WHERE app = ?1 AND key_name = ?2",
        (app, key, i64::from(new.epoch), new.player, new.threshold, new.parties, now_secs()),
    )
    .map_err(db)?;
    Ok(())
}
