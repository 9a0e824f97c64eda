//! Bans of parties per key, and the used instance ids (the persistent replay guard).

use rusqlite::Connection;

use super::records::require_record;
use super::sql::{corrupt, db};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::rules::truncate_reason;

/// Records a used instance id; `false` if it was already used.
pub(super) fn record_iid(tx: &Connection, iid: &[u8; 32]) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO used_iids (iid, used_at) VALUES (?1, ?2) ON CONFLICT (iid) DO NOTHING",
            (iid.as_slice(), now_secs()),
        )
        .map_err(db)?;
    Ok(n == 1)
}

/// Bans `party` from sessions of (app, key); a second ban keeps the first reason.
pub(super) fn record_ban(
    tx: &Connection,
    app: &str,
    key: &str,
    party: u16,
    reason: &str,
) -> Result<(), StoreError> {
    require_record(tx, app, key)?;
    tx.execute(
        "INSERT INTO bans (app, key_name, party, reason, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (app, key_name, party) DO NOTHING",
        (app, key, party, truncate_reason(reason), now_secs()),
    )
    .map_err(db)?;
    Ok(())
}

/// Banned parties of (app, key), ascending.
pub(super) fn bans(tx: &Connection, app: &str, key: &str) -> Result<Vec<u16>, StoreError> {
    let mut stmt = tx
        .prepare("SELECT party FROM bans WHERE app = ?1 AND key_name = ?2 ORDER BY party")
        .map_err(db)?;
    let rows = stmt.query_map((app, key), |r| r.get::<_, i64>(0)).map_err(db)?;
    rows.map(|r| r.map_err(db).and_then(|p| u16::try_from(p).map_err(|_| corrupt("ban")))).collect()
}
