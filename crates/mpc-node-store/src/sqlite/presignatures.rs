//! Presignatures: sealed under the key's data key, bound to its epoch and to their id, and
//! taken at most once (the generation counter moves before one leaves the store).

use rusqlite::{Connection, OptionalExtension};
use zeroize::Zeroizing;

use super::generation::{CounterFile, db_generation, set_db_generation};
use super::records::{get_record, require_record};
use super::shares::data_key;
use super::sql::db;
use crate::clock::now_secs;
use crate::envelope::{Aad, DOMAIN_PRESIG, SecretKey};
use crate::error::StoreError;
use crate::record::KeyRecord;
use crate::rules::check_ready;

fn presig_aad(r: &KeyRecord, id: &str) -> Aad {
    let mut aad = Aad::for_key(DOMAIN_PRESIG, &r.app, &r.key, r.player, r.epoch);
    aad.bytes(id.as_bytes());
    aad
}

fn presig_ciphertext(
    tx: &Connection,
    app: &str,
    key: &str,
    id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    tx.query_row(
        "SELECT ciphertext FROM presignatures WHERE app = ?1 AND key_name = ?2 AND id = ?3",
        (app, key, id),
        |row| row.get(0),
    )
    .optional()
    .map_err(db)
}

/// The presignature `id` of (app, key), decrypted, if it exists.
fn open_presig(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
    id: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let Some(r) = get_record(tx, app, key)? else { return Ok(None) };
    let Some(ct) = presig_ciphertext(tx, app, key, id)? else { return Ok(None) };
    let dk = data_key(tx, kek, &r)?;
    dk.open(presig_aad(&r, id).as_slice(), &ct, "presignature").map(Some)
}

/// Stores a presignature of a READY key under a new id.
pub(super) fn put_presignature(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
    id: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let r = require_record(tx, app, key)?;
    check_ready(&r.status)?;
    let dk = data_key(tx, kek, &r)?;
    let ct = dk.seal(presig_aad(&r, id).as_slice(), bytes)?;
    let n = tx
        .execute(
            "INSERT INTO presignatures (app, key_name, id, ciphertext, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (app, key_name, id) DO NOTHING",
            (app, key, id, ct, now_secs()),
        )
        .map_err(db)?;
    if n == 1 { Ok(()) } else { Err(StoreError::Conflict("presignature id already used".into())) }
}

/// Deletes and returns a presignature (inside the write transaction `tx`), moving the
/// generation `counter` first.
pub(super) fn take_presignature(
    tx: &Connection,
    kek: &SecretKey,
    counter: &CounterFile,
    app: &str,
    key: &str,
    id: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    // A database that fell behind its counter (swapped or restored under a running node)
    // gives out nothing it held before.
    if counter.sync(tx)? > 0 {
        return Ok(None);
    }
    let Some(pt) = open_presig(tx, kek, app, key, id)? else { return Ok(None) };
    // The counter moves first: if the commit below fails, the database is behind it and its
    // presignatures are dropped at the next take or open (never reused).
    let next = db_generation(tx)?.saturating_add(1);
    counter.write(next)?;
    set_db_generation(tx, next)?;
    let n = tx
        .execute(
            "DELETE FROM presignatures WHERE app = ?1 AND key_name = ?2 AND id = ?3",
            (app, key, id),
        )
        .map_err(db)?;
    // The write lock is held since BEGIN IMMEDIATE, so the row cannot have gone.
    if n == 1 { Ok(Some(pt)) } else { Ok(None) }
}

/// A presignature without taking it.
pub(super) fn peek_presignature(
    tx: &Connection,
    kek: &SecretKey,
    app: &str,
    key: &str,
    id: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    open_presig(tx, kek, app, key, id)
}

/// Ids of the stored presignatures of (app, key), ascending.
pub(super) fn list_presignatures(
    tx: &Connection,
    app: &str,
    key: &str,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx
        .prepare("SELECT id FROM presignatures WHERE app = ?1 AND key_name = ?2 ORDER BY id")
        .map_err(db)?;
    let rows = stmt.query_map((app, key), |r| r.get::<_, String>(0)).map_err(db)?;
    rows.map(|r| r.map_err(db)).collect()
}
