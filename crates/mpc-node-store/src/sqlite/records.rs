//! Rows of the `keys` table: their columns, decoding into [`KeyRecord`]s (range errors are
//! corruption) and the record look-ups every other module starts from.

use rusqlite::{Connection, OptionalExtension, Row};

use super::sql::{corrupt, db, fixed};
use crate::error::StoreError;
use crate::record::{KeyRecord, decode_status};

/// The columns [`read_record`] expects, in order.
const RECORD_COLUMNS: &str = "app, key_name, status, error, threshold, parties, player, epoch, \
                              public_key, chain_code, core_key_id, created_at, updated_at";

/// A raw row: decoded into a [`KeyRecord`] by [`RawRecord::decode`] (so range errors are
/// reported as corruption, outside rusqlite's row callback).
struct RawRecord {
    app: String,
    key: String,
    status: String,
    error: Option<String>,
    threshold: i64,
    parties: i64,
    player: i64,
    epoch: i64,
    public_key: Option<Vec<u8>>,
    chain_code: Option<Vec<u8>>,
    core_key_id: Option<Vec<u8>>,
    created_at: i64,
    updated_at: i64,
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        app: row.get(0)?,
        key: row.get(1)?,
        status: row.get(2)?,
        error: row.get(3)?,
        threshold: row.get(4)?,
        parties: row.get(5)?,
        player: row.get(6)?,
        epoch: row.get(7)?,
        public_key: row.get(8)?,
        chain_code: row.get(9)?,
        core_key_id: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

impl RawRecord {
    fn decode(self) -> Result<KeyRecord, StoreError> {
        let status = decode_status(&self.status, self.error)?;
        let small = |v: i64, what: &str| u16::try_from(v).map_err(|_| corrupt(what));
        Ok(KeyRecord {
            app: self.app,
            key: self.key,
            status,
            threshold: small(self.threshold, "threshold")?,
            parties: small(self.parties, "parties")?,
            player: small(self.player, "player")?,
            epoch: u32::try_from(self.epoch).map_err(|_| corrupt("epoch"))?,
            public_key: fixed(self.public_key, "public key")?,
            chain_code: fixed(self.chain_code, "chain code")?,
            core_key_id: fixed(self.core_key_id, "key id")?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(super) fn get_record(
    tx: &Connection,
    app: &str,
    key: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM keys WHERE app = ?1 AND key_name = ?2");
    tx.query_row(&sql, (app, key), read_record)
        .optional()
        .map_err(db)?
        .map(RawRecord::decode)
        .transpose()
}

pub(super) fn require_record(
    tx: &Connection,
    app: &str,
    key: &str,
) -> Result<KeyRecord, StoreError> {
    get_record(tx, app, key)?.ok_or(StoreError::NotFound)
}

/// All records of `app`, ordered by key name.
pub(super) fn list_records(tx: &Connection, app: &str) -> Result<Vec<KeyRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM keys WHERE app = ?1 ORDER BY key_name");
    let mut stmt = tx.prepare(&sql).map_err(db)?;
    let rows = stmt.query_map([app], read_record).map_err(db)?;
    rows.map(|r| r.map_err(db).and_then(RawRecord::decode)).collect()
}

/// Every READY record of every application, ordered by application and key name.
pub(super) fn ready_records(tx: &Connection) -> Result<Vec<KeyRecord>, StoreError> {
    let sql =
        format!("SELECT {RECORD_COLUMNS} FROM keys WHERE status = 'READY' ORDER BY app, key_name");
    let mut stmt = tx.prepare(&sql).map_err(db)?;
    stmt.query_map([], read_record)
        .map_err(db)?
        .map(|r| r.map_err(db).and_then(RawRecord::decode))
        .collect()
}
