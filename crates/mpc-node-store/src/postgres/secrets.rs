//! Everything sealed on PostgreSQL: the key-encryption key's settings, shares and their data
//! keys, staged shares and presignatures. The same envelope encryption and associated data as
//! the SQLite store (`crate::envelope`): the server only ever holds ciphertext and wrapped keys.

use postgres::{GenericClient, Transaction};
use zeroize::Zeroizing;

use super::conn::db;
use super::keys::{get_record, lock_record, small};
use crate::clock::now_secs;
use crate::envelope::{
    Aad, DOMAIN_DATA_KEY, DOMAIN_PRESIG, DOMAIN_SHARE, DOMAIN_STAGED, KdfParams, SALT_LEN,
    SecretKey, fill_random,
};
use crate::error::StoreError;
use crate::kek::{seal_check, verify_kek};
use crate::record::{KeyRecord, KeyStatus, NewShare, StagedShare, corrupt};
use crate::rules::{check_new_epoch, check_ready};

fn meta(tx: &mut Transaction<'_>, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let row = tx.query_opt("SELECT value FROM mpc_meta WHERE name = $1", &[&name]).map_err(db)?;
    row.map(|r| r.try_get(0).map_err(|_| corrupt("meta value"))).transpose()
}

fn set_meta(tx: &mut Transaction<'_>, name: &str, value: &[u8]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO mpc_meta (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&name, &value],
    )
    .map_err(db)?;
    Ok(())
}

/// Reads (or, for a new database, creates) the KDF salt, parameters and check value, derives
/// the KEK and verifies it (inside the open transaction, under the open lock).
pub(super) fn unlock(
    tx: &mut Transaction<'_>,
    password: &[u8],
    create_params: KdfParams,
) -> Result<SecretKey, StoreError> {
    let found = (meta(tx, "kdf_salt")?, meta(tx, "kdf_params")?, meta(tx, "kdf_check")?);
    match found {
        (Some(salt), Some(params), Some(check)) => verify_kek(password, &salt, &params, &check),
        (None, None, None) => {
            let mut salt = [0u8; SALT_LEN];
            fill_random(&mut salt)?;
            let kek = SecretKey::derive_kek(password, &salt, create_params)?;
            let check = seal_check(&kek, &salt, create_params)?;
            set_meta(tx, "kdf_salt", &salt)?;
            set_meta(tx, "kdf_params", &create_params.encode())?;
            set_meta(tx, "kdf_check", &check)?;
            Ok(kek)
        }
        _ => Err(StoreError::Corrupt("key derivation settings incomplete".into())),
    }
}

/// Where this database lives now: the cluster's system identifier and timeline and the
/// database's oid. Parts the login may not read are left out (the oid always is readable).
fn origin(tx: &mut Transaction<'_>) -> Result<Vec<u8>, StoreError> {
    let oid: u32 = tx
        .query_one("SELECT oid FROM pg_database WHERE datname = current_database()", &[])
        .map_err(db)?
        .try_get(0)
        .map_err(|_| corrupt("database oid"))?;
    let mut text = format!("oid={oid}");
    // pg_control_* may be restricted to privileged roles: read them in a savepoint so that a
    // refusal leaves the transaction usable.
    for (name, sql) in [
        ("system", "SELECT system_identifier::text FROM pg_control_system()"),
        ("timeline", "SELECT timeline_id::text FROM pg_control_checkpoint()"),
    ] {
        let mut sp = tx.savepoint("origin").map_err(db)?;
        match sp.query_one(sql, &[]) {
            Ok(row) => {
                let v: String = row.try_get(0).map_err(|_| corrupt("database origin"))?;
                text.push_str(&format!(" {name}={v}"));
                sp.commit().map_err(db)?;
            }
            Err(_) => sp.rollback().map_err(db)?,
        }
    }
    Ok(text.into_bytes())
}

/// The rule of the presignature generation (`protocols.md` §3.6) for a database that is not a
/// file: a database whose origin is not the recorded one (restored from a backup, recovered to
/// a point in time, a promoted standby, a dump loaded elsewhere) loses every presignature, so
/// none that was used can come back. Returns how many were deleted.
pub(super) fn check_origin(tx: &mut Transaction<'_>) -> Result<u64, StoreError> {
    let now = origin(tx)?;
    let recorded = meta(tx, "origin")?;
    if recorded.as_deref() == Some(now.as_slice()) {
        return Ok(0);
    }
    let wiped = if recorded.is_some() {
        tx.execute("DELETE FROM mpc_presignatures", &[]).map_err(db)?
    } else {
        0
    };
    set_meta(tx, "origin", &now)?;
    Ok(wiped)
}

/// The data key of a record, unwrapped with `kek`.
fn data_key(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    r: &KeyRecord,
) -> Result<SecretKey, StoreError> {
    let row = tx
        .query_opt(
            "SELECT wrapped FROM mpc_data_keys WHERE app = $1 AND key_name = $2",
            &[&r.app, &r.key],
        )
        .map_err(db)?
        .ok_or_else(|| StoreError::Corrupt("data key missing".into()))?;
    let wrapped: Vec<u8> = row.try_get(0).map_err(|_| corrupt("data key"))?;
    let aad = Aad::for_key(DOMAIN_DATA_KEY, &r.app, &r.key, r.player, r.epoch);
    SecretKey::unwrap_with(kek, aad.as_slice(), &wrapped)
}

/// Writes a new data key and the share sealed under it (replacing any previous ones).
pub(super) fn store_share(
    tx: &mut Transaction<'_>,
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
        "INSERT INTO mpc_data_keys (app, key_name, wrapped) VALUES ($1, $2, $3)",
        &[&app, &key, &wrapped],
    )
    .map_err(db)?;
    tx.execute(
        "INSERT INTO mpc_shares (app, key_name, ciphertext) VALUES ($1, $2, $3)",
        &[&app, &key, &ct],
    )
    .map_err(db)?;
    Ok(())
}

/// Deletes presignatures, staged share, share ciphertext and data key of a key.
pub(super) fn delete_secrets(
    tx: &mut Transaction<'_>,
    app: &str,
    key: &str,
) -> Result<(), StoreError> {
    for table in ["mpc_presignatures", "mpc_staged_shares", "mpc_shares", "mpc_data_keys"] {
        tx.execute(&format!("DELETE FROM {table} WHERE app = $1 AND key_name = $2"), &[&app, &key])
            .map_err(db)?;
    }
    Ok(())
}

/// The decrypted share of a READY key.
pub(super) fn load_share(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    app: &str,
    key: &str,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let r = get_record(tx, app, key)?.ok_or(StoreError::NotFound)?;
    if r.status != KeyStatus::Ready {
        return Err(StoreError::NotFound);
    }
    let row = tx
        .query_opt(
            "SELECT ciphertext FROM mpc_shares WHERE app = $1 AND key_name = $2",
            &[&app, &key],
        )
        .map_err(db)?
        .ok_or_else(|| StoreError::Corrupt("share missing".into()))?;
    let ct: Vec<u8> = row.try_get(0).map_err(|_| corrupt("share"))?;
    let dk = data_key(tx, kek, &r)?;
    dk.open(Aad::for_key(DOMAIN_SHARE, app, key, r.player, r.epoch).as_slice(), &ct, "share")
}

/// Refresh/reshare: the key's share becomes `new`; presignatures, staged share and bans go.
pub(super) fn replace_share(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    app: &str,
    key: &str,
    new: &NewShare<'_>,
) -> Result<(), StoreError> {
    let r = lock_record(tx, app, key)?;
    check_ready(&r.status)?;
    check_new_epoch(r.epoch, new.epoch)?;
    store_share(tx, kek, app, key, new.player, new.epoch, new.share)?;
    tx.execute("DELETE FROM mpc_bans WHERE app = $1 AND key_name = $2", &[&app, &key])
        .map_err(db)?;
    tx.execute(
        "UPDATE mpc_keys SET epoch = $3, player = $4, threshold = $5, parties = $6, \
         updated_at = $7 WHERE app = $1 AND key_name = $2",
        &[
            &app,
            &key,
            &i64::from(new.epoch),
            &small(new.player),
            &small(new.threshold),
            &small(new.parties),
            &now_secs(),
        ],
    )
    .map_err(db)?;
    Ok(())
}

fn staged_aad(r: &KeyRecord, epoch: u32, setup: &[u8]) -> Aad {
    let mut aad = Aad::for_key(DOMAIN_STAGED, &r.app, &r.key, r.player, r.epoch);
    aad.bytes(&epoch.to_be_bytes()).bytes(setup);
    aad
}

/// Keeps `share` (epoch `epoch`, from the session `setup`) as the key's staged share.
pub(super) fn stage_share(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    app: &str,
    key: &str,
    (epoch, setup, share): (u32, &[u8], &[u8]),
) -> Result<(), StoreError> {
    let r = lock_record(tx, app, key)?;
    check_ready(&r.status)?;
    check_new_epoch(r.epoch, epoch)?;
    let dk = data_key(tx, kek, &r)?;
    let ct = dk.seal(staged_aad(&r, epoch, setup).as_slice(), share)?;
    tx.execute(
        "INSERT INTO mpc_staged_shares (app, key_name, epoch, setup, ciphertext, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (app, key_name) DO UPDATE SET \
         epoch = excluded.epoch, setup = excluded.setup, \
         ciphertext = excluded.ciphertext, created_at = excluded.created_at",
        &[&app, &key, &i64::from(epoch), &setup, &ct, &now_secs()],
    )
    .map_err(db)?;
    Ok(())
}

/// The key's staged share, decrypted, if it has one.
pub(super) fn staged_share(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    app: &str,
    key: &str,
) -> Result<Option<StagedShare>, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT epoch, setup, ciphertext FROM mpc_staged_shares \
             WHERE app = $1 AND key_name = $2",
            &[&app, &key],
        )
        .map_err(db)?
    else {
        return Ok(None);
    };
    let epoch: i64 = row.try_get(0).map_err(|_| corrupt("staged share"))?;
    let setup: Vec<u8> = row.try_get(1).map_err(|_| corrupt("staged share"))?;
    let ct: Vec<u8> = row.try_get(2).map_err(|_| corrupt("staged share"))?;
    let epoch = u32::try_from(epoch)
        .map_err(|_| StoreError::Corrupt("staged epoch out of range".into()))?;
    let r = get_record(tx, app, key)?.ok_or(StoreError::NotFound)?;
    let dk = data_key(tx, kek, &r)?;
    let share = dk.open(staged_aad(&r, epoch, &setup).as_slice(), &ct, "staged share")?;
    Ok(Some(StagedShare { epoch, setup, share }))
}

/// Drops the key's staged share (no error without one).
pub(super) fn clear_staged(
    tx: &mut Transaction<'_>,
    app: &str,
    key: &str,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM mpc_staged_shares WHERE app = $1 AND key_name = $2", &[&app, &key])
        .map_err(db)?;
    Ok(())
}

/// `(app, key)` of every key with a staged share.
pub(super) fn list_staged(
    tx: &mut impl GenericClient,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = tx
        .query("SELECT app, key_name FROM mpc_staged_shares ORDER BY app, key_name", &[])
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(|_| corrupt("staged share"))?,
                r.try_get(1).map_err(|_| corrupt("staged share"))?,
            ))
        })
        .collect()
}

fn presig_aad(r: &KeyRecord, id: &str) -> Aad {
    let mut aad = Aad::for_key(DOMAIN_PRESIG, &r.app, &r.key, r.player, r.epoch);
    aad.bytes(id.as_bytes());
    aad
}

/// Stores a presignature of a READY key under a new id.
pub(super) fn put_presignature(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    app: &str,
    key: &str,
    (id, bytes): (&str, &[u8]),
) -> Result<(), StoreError> {
    // A shared lock: refresh, reshare and delete (which drop presignatures) wait for it.
    let sql = "SELECT 1 FROM mpc_keys WHERE app = $1 AND key_name = $2 FOR SHARE";
    tx.query_opt(sql, &[&app, &key]).map_err(db)?.ok_or(StoreError::NotFound)?;
    let r = get_record(tx, app, key)?.ok_or(StoreError::NotFound)?;
    check_ready(&r.status)?;
    let dk = data_key(tx, kek, &r)?;
    let ct = dk.seal(presig_aad(&r, id).as_slice(), bytes)?;
    let n = tx
        .execute(
            "INSERT INTO mpc_presignatures (app, key_name, id, ciphertext, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, key_name, id) DO NOTHING",
            &[&app, &key, &id, &ct, &now_secs()],
        )
        .map_err(db)?;
    if n == 1 { Ok(()) } else { Err(StoreError::Conflict("presignature id already used".into())) }
}

/// The presignature `id`, decrypted; with `take`, deleted in the same statement
/// (`DELETE … RETURNING`): of any number of concurrent takers on any number of replicas,
/// exactly one gets the row. A row that fails authentication is an error and, the
/// transaction being rolled back, stays in place.
pub(super) fn open_presignature(
    tx: &mut Transaction<'_>,
    kek: &SecretKey,
    app: &str,
    key: &str,
    id: &str,
    take: bool,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let Some(r) = get_record(tx, app, key)? else { return Ok(None) };
    let sql = if take {
        "DELETE FROM mpc_presignatures WHERE app = $1 AND key_name = $2 AND id = $3 \
         RETURNING ciphertext"
    } else {
        "SELECT ciphertext FROM mpc_presignatures WHERE app = $1 AND key_name = $2 AND id = $3"
    };
    let Some(row) = tx.query_opt(sql, &[&app, &key, &id]).map_err(db)? else {
        return Ok(None);
    };
    let ct: Vec<u8> = row.try_get(0).map_err(|_| corrupt("presignature"))?;
    let dk = data_key(tx, kek, &r)?;
    dk.open(presig_aad(&r, id).as_slice(), &ct, "presignature").map(Some)
}

/// Ids of the stored presignatures of (app, key), ascending.
pub(super) fn list_presignatures(
    tx: &mut impl GenericClient,
    app: &str,
    key: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = tx
        .query(
            "SELECT id FROM mpc_presignatures WHERE app = $1 AND key_name = $2 ORDER BY id",
            &[&app, &key],
        )
        .map_err(db)?;
    rows.iter().map(|r| r.try_get(0).map_err(|_| corrupt("presignature id"))).collect()
}
