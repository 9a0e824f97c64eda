//! Store failures.

/// Store failures. `Display` never contains secrets or SQL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The master password does not open this database.
    #[error("wrong master password")]
    WrongPassword,
    /// No such key (or no share / presignature where one was required).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the stored state or the store's rules (wrong status, stale
    /// epoch, duplicate presignature id, invalid name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data failed authentication or is malformed (tampering, swapped rows, bad schema).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// File system or operating-system failure (including the random number generator).
    #[error("I/O error: {0}")]
    Io(String),
    /// The database engine failed (busy, full, constraint, ...).
    #[error("database error: {0}")]
    Database(String),
}
