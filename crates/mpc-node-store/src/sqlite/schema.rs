//! The schema: its migrations, applied in order at open, and the version a database is at.

use rusqlite::{Connection, TransactionBehavior};

use super::sql::{corrupt, db};
use crate::clock::now_secs;
use crate::error::StoreError;

/// Schema migrations, applied in order; entry i brings the schema to version i + 1. Never edit
/// a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE keys (
    app         TEXT    NOT NULL,
    key_name    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    error       TEXT,
    threshold   INTEGER NOT NULL,
    parties     INTEGER NOT NULL,
    player      INTEGER NOT NULL,
    epoch       BIGINT  NOT NULL,
    public_key  BLOB,
    chain_code  BLOB,
    core_key_id BLOB,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (app, key_name)
);
CREATE TABLE data_keys (
    app      TEXT NOT NULL,
    key_name TEXT NOT NULL,
    wrapped  BLOB NOT NULL,
    PRIMARY KEY (app, key_name),
    FOREIGN KEY (app, key_name) REFERENCES keys (app, key_name)
);
CREATE TABLE shares (
    app        TEXT NOT NULL,
    key_name   TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (app, key_name),
    FOREIGN KEY (app, key_name) REFERENCES keys (app, key_name)
);
CREATE TABLE presignatures (
    app        TEXT   NOT NULL,
    key_name   TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    ciphertext BLOB   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app, key_name, id),
    FOREIGN KEY (app, key_name) REFERENCES keys (app, key_name)
);
CREATE TABLE bans (
    app        TEXT    NOT NULL,
    key_name   TEXT    NOT NULL,
    party      INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (app, key_name, party),
    FOREIGN KEY (app, key_name) REFERENCES keys (app, key_name)
);
CREATE TABLE used_iids (
    iid     BLOB   PRIMARY KEY,
    used_at BIGINT NOT NULL
);
",
    r"
CREATE TABLE staged_shares (
    app        TEXT    NOT NULL,
    key_name   TEXT    NOT NULL,
    epoch      BIGINT  NOT NULL,
    setup      BLOB    NOT NULL,
    ciphertext BLOB    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (app, key_name),
    FOREIGN KEY (app, key_name) REFERENCES keys (app, key_name)
);
",
    r"
CREATE TABLE operations (
    app         TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    operation   TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    http_status INTEGER,
    result      TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (app, id)
);
CREATE INDEX operations_by_age ON operations (updated_at);
",
];

/// The schema version of the database (0 for a new file), read without taking the write lock.
fn schema_version(conn: &Connection) -> Result<usize, StoreError> {
    let has_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    if has_table == 0 {
        return Ok(0);
    }
    let v: i64 = conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
        .map_err(db)?;
    let v = usize::try_from(v).map_err(|_| corrupt("schema version"))?;
    if v > MIGRATIONS.len() {
        return Err(StoreError::Corrupt("database schema is newer than this program".into()));
    }
    Ok(v)
}

/// Runs the pending migrations in one transaction. An up-to-date database is only read, so
/// opening never waits for the write lock of a busy writer.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    if schema_version(conn)? == MIGRATIONS.len() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT  NOT NULL
         );",
    )
    .map_err(db)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let current = schema_version(&tx)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(db)?;
        let version = i64::try_from(i + 1).map_err(|_| corrupt("schema version"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (version, now_secs()),
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)
}
