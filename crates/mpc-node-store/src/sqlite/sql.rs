//! Small helpers every SQLite module uses: engine errors without SQL text, corruption
//! reports, fixed-size columns, the `meta` table, log checkpoints and file permissions.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OptionalExtension};

use crate::error::StoreError;

/// Maps an engine error to a [`StoreError`] without SQL text or row contents.
pub(super) fn db(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                StoreError::Corrupt("not a database, or a damaged one".into())
            }
            ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly => StoreError::Io(f.to_string()),
            _ => StoreError::Database(f.to_string()),
        },
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt("malformed row".into()),
        _ => StoreError::Database("internal database error".into()),
    }
}

pub(super) use crate::record::{corrupt, fixed};

/// The value of `name` in the `meta` table.
pub(super) fn meta(tx: &Connection, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    tx.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .map_err(db)
}

/// Truncates the write-ahead log (old frames with destroyed secrets go with it).
pub(super) fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(db)
}

#[cfg(unix)]
pub(super) fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Io(format!("cannot set database file permissions: {}", e.kind())))
}

#[cfg(not(unix))]
pub(super) fn restrict_permissions(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}
