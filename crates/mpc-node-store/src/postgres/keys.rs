//! Key records and their lifecycle, bans and used instance ids on PostgreSQL. A statement that
//! changes a key first locks its row (`FOR UPDATE`), so two replicas changing one key take
//! turns; inserts that must happen once use the primary key (`ON CONFLICT DO NOTHING`).

use postgres::{GenericClient, Row, Transaction};

use super::conn::db;
use super::secrets::{delete_secrets, store_share};
use crate::clock::now_secs;
use crate::envelope::SecretKey;
use crate::error::StoreError;
use crate::record::{CreateOutcome, KeyRecord, ReadyKey, corrupt, decode_status, fixed};
use crate::rules::{check_can_mark_error, check_can_mark_ready, truncate_reason};

/// The columns [`decode`] expects, in order.
const RECORD_COLUMNS: &str = "app, key_name, status, error, threshold, parties, player, epoch, \
                              public_key, chain_code, core_key_id, created_at, updated_at";

pub(super) fn small(v: u16) -> i32 {
    i32::from(v)
}

fn decode(row: &Row) -> Result<KeyRecord, StoreError> {
    let int = |i: usize, what: &str| -> Result<u16, StoreError> {
        let v: i32 = row.try_get(i).map_err(|_| corrupt(what))?;
        u16::try_from(v).map_err(|_| corrupt(what))
    };
    let bytes = |i: usize| -> Result<Option<Vec<u8>>, StoreError> {
        row.try_get(i).map_err(|_| corrupt("key record"))
    };
    let status: String = row.try_get(2).map_err(|_| corrupt("key status"))?;
    let error: Option<String> = row.try_get(3).map_err(|_| corrupt("key record"))?;
    let epoch: i64 = row.try_get(7).map_err(|_| corrupt("epoch"))?;
    Ok(KeyRecord {
        app: row.try_get(0).map_err(|_| corrupt("key record"))?,
        key: row.try_get(1).map_err(|_| corrupt("key record"))?,
        status: decode_status(&status, error)?,
        threshold: int(4, "threshold")?,
        parties: int(5, "parties")?,
        player: int(6, "player")?,
        epoch: u32::try_from(epoch).map_err(|_| corrupt("epoch"))?,
        public_key: fixed(bytes(8)?, "public key")?,
        chain_code: fixed(bytes(9)?, "chain code")?,
        core_key_id: fixed(bytes(10)?, "key id")?,
        created_at: row.try_get(11).map_err(|_| corrupt("key record"))?,
        updated_at: row.try_get(12).map_err(|_| corrupt("key record"))?,
    })
}

/// The record of (app, key), if any.
pub(super) fn get_record(
    tx: &mut impl GenericClient,
    app: &str,
    key: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM mpc_keys WHERE app = $1 AND key_name = $2");
    tx.query_opt(&sql, &[&app, &key]).map_err(db)?.as_ref().map(decode).transpose()
}

/// The record of (app, key), its row locked until the transaction ends.
pub(super) fn lock_record(
    tx: &mut Transaction<'_>,
    app: &str,
    key: &str,
) -> Result<KeyRecord, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM mpc_keys WHERE app = $1 AND key_name = $2 FOR UPDATE"
    );
    let row = tx.query_opt(&sql, &[&app, &key]).map_err(db)?.ok_or(StoreError::NotFound)?;
    decode(&row)
}

/// All records of `app`, ordered by key name.
pub(super) fn list_records(
    tx: &mut impl GenericClient,
    app: &str,
) -> Result<Vec<KeyRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM mpc_keys WHERE app = $1 ORDER BY key_name");
    tx.query(&sql, &[&app]).map_err(db)?.iter().map(decode).collect()
}

/// Inserts a PENDING record unless (app, key) exists (then returns the existing one). Two
/// replicas racing on one key: the primary key lets exactly one insert succeed.
pub(super) fn create_pending(
    tx: &mut Transaction<'_>,
    app: &str,
    key: &str,
    (threshold, parties, player): (u16, u16, u16),
) -> Result<CreateOutcome, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO mpc_keys (app, key_name, status, threshold, parties, player, epoch, \
             created_at, updated_at) VALUES ($1, $2, 'PENDING', $3, $4, $5, 0, $6, $6) \
             ON CONFLICT (app, key_name) DO NOTHING",
            &[&app, &key, &small(threshold), &small(parties), &small(player), &now_secs()],
        )
        .map_err(db)?;
    if n == 1 {
        return Ok(CreateOutcome::Created);
    }
    match get_record(tx, app, key)? {
        Some(existing) => Ok(CreateOutcome::Existing(existing)),
        // Deleted between the insert and the read (by another replica): let the caller retry.
        None => Err(StoreError::Conflict("the key changed meanwhile; try again".into())),
    }
}

/// PENDING → READY with the first share.
pub(super) fn mark_ready(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    app: &str,
    key: &str,
    ready: &ReadyKey<'_>,
) -> Result<(), StoreError> {
    let r = lock_record(tx, app, key)?;
    check_can_mark_ready(&r.status)?;
    store_share(tx, kek, app, key, r.player, ready.epoch, ready.share)?;
    tx.execute(
        "UPDATE mpc_keys SET status = 'READY', error = NULL, epoch = $3, public_key = $4, \
         chain_code = $5, core_key_id = $6, updated_at = $7 WHERE app = $1 AND key_name = $2",
        &[
            &app,
            &key,
            &i64::from(ready.epoch),
            &ready.public_key.as_slice(),
            &ready.chain_code.as_slice(),
            &ready.core_key_id.as_slice(),
            &now_secs(),
        ],
    )
    .map_err(db)?;
    Ok(())
}

/// PENDING (or ERROR) → ERROR with `reason`.
pub(super) fn mark_error(
    tx: &mut Transaction<'_>,
    app: &str,
    key: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let r = lock_record(tx, app, key)?;
    check_can_mark_error(&r.status)?;
    tx.execute(
        "UPDATE mpc_keys SET status = 'ERROR', error = $3, updated_at = $4 \
         WHERE app = $1 AND key_name = $2",
        &[&app, &key, &truncate_reason(reason), &now_secs()],
    )
    .map_err(db)?;
    Ok(())
}

/// PENDING records last changed before `before` (unix seconds; `None`: all) → ERROR.
pub(super) fn fail_pending(
    tx: &mut Transaction<'_>,
    reason: &str,
    before: Option<i64>,
) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE mpc_keys SET status = 'ERROR', error = $1, updated_at = $2 \
         WHERE status = 'PENDING' AND updated_at < $3",
        &[&truncate_reason(reason), &now_secs(), &before.unwrap_or(i64::MAX)],
    )
    .map_err(db)
}

/// Deletes the record with its data key, ciphertexts, presignatures and bans.
pub(super) fn delete(tx: &mut Transaction<'_>, app: &str, key: &str) -> Result<(), StoreError> {
    lock_record(tx, app, key)?;
    delete_secrets(tx, app, key)?;
    tx.execute("DELETE FROM mpc_bans WHERE app = $1 AND key_name = $2", &[&app, &key])
        .map_err(db)?;
    tx.execute("DELETE FROM mpc_keys WHERE app = $1 AND key_name = $2", &[&app, &key])
        .map_err(db)?;
    Ok(())
}

/// Records a used instance id; `false` if it was already used (by any replica).
pub(super) fn record_iid(tx: &mut impl GenericClient, iid: &[u8; 32]) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO mpc_used_iids (iid, used_at) VALUES ($1, $2) \
             ON CONFLICT (iid) DO NOTHING",
            &[&iid.as_slice(), &now_secs()],
        )
        .map_err(db)?;
    Ok(n == 1)
}

/// Bans `party` from sessions of (app, key); a second ban keeps the first reason.
pub(super) fn record_ban(
    tx: &mut Transaction<'_>,
    app: &str,
    key: &str,
    party: u16,
    reason: &str,
) -> Result<(), StoreError> {
    lock_record(tx, app, key)?;
    tx.execute(
        "INSERT INTO mpc_bans (app, key_name, party, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, key_name, party) DO NOTHING",
        &[&app, &key, &small(party), &truncate_reason(reason), &now_secs()],
    )
    .map_err(db)?;
    Ok(())
}

/// Banned parties of (app, key), ascending.
pub(super) fn bans(
    tx: &mut impl GenericClient,
    app: &str,
    key: &str,
) -> Result<Vec<u16>, StoreError> {
    let rows = tx
        .query(
            "SELECT party FROM mpc_bans WHERE app = $1 AND key_name = $2 ORDER BY party",
            &[&app, &key],
        )
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            let p: i32 = r.try_get(0).map_err(|_| corrupt("ban"))?;
            u16::try_from(p).map_err(|_| corrupt("ban"))
        })
        .collect()
}
