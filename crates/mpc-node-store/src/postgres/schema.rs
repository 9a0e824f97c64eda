//! The PostgreSQL schema: migrations applied in order at open, under an advisory lock so that
//! replicas starting together migrate once.

use postgres::Transaction;

use super::conn::db;
use crate::clock::now_secs;
use crate::error::StoreError;

/// Schema migrations; entry i brings the schema to version i + 1. Never edit a released
/// entry: append a new one. The tables are those of the SQLite store (same names and
/// meaning), with PostgreSQL types.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE mpc_meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE mpc_keys (
    app         TEXT    NOT NULL,
    key_name    TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('PENDING', 'READY', 'ERROR')),
    error       TEXT,
    threshold   INTEGER NOT NULL,
    parties     INTEGER NOT NULL,
    player      INTEGER NOT NULL,
    epoch       BIGINT  NOT NULL,
    public_key  BYTEA,
    chain_code  BYTEA,
    core_key_id BYTEA,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (app, key_name)
);
CREATE INDEX mpc_keys_pending ON mpc_keys (updated_at) WHERE status = 'PENDING';
CREATE TABLE mpc_data_keys (
    app      TEXT  NOT NULL,
    key_name TEXT  NOT NULL,
    wrapped  BYTEA NOT NULL,
    PRIMARY KEY (app, key_name),
    FOREIGN KEY (app, key_name) REFERENCES mpc_keys (app, key_name)
);
CREATE TABLE mpc_shares (
    app        TEXT  NOT NULL,
    key_name   TEXT  NOT NULL,
    ciphertext BYTEA NOT NULL,
    PRIMARY KEY (app, key_name),
    FOREIGN KEY (app, key_name) REFERENCES mpc_keys (app, key_name)
);
CREATE TABLE mpc_staged_shares (
    app        TEXT   NOT NULL,
    key_name   TEXT   NOT NULL,
    epoch      BIGINT NOT NULL,
    setup      BYTEA  NOT NULL,
    ciphertext BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app, key_name),
    FOREIGN KEY (app, key_name) REFERENCES mpc_keys (app, key_name)
);
CREATE TABLE mpc_presignatures (
    app        TEXT   NOT NULL,
    key_name   TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    ciphertext BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app, key_name, id),
    FOREIGN KEY (app, key_name) REFERENCES mpc_keys (app, key_name)
);
CREATE TABLE mpc_bans (
    app        TEXT    NOT NULL,
    key_name   TEXT    NOT NULL,
    party      INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (app, key_name, party),
    FOREIGN KEY (app, key_name) REFERENCES mpc_keys (app, key_name)
);
CREATE TABLE mpc_used_iids (
    iid     BYTEA  PRIMARY KEY,
    used_at BIGINT NOT NULL
);
",
    r"
CREATE TABLE mpc_operations (
    app         TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    operation   TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    http_status INTEGER,
    result      TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (app, id)
);
CREATE INDEX mpc_operations_by_age ON mpc_operations (updated_at);
",
];

/// The advisory lock every opening store takes while it migrates and sets up the key
/// derivation (a constant: "mpc-node" in ASCII).
pub(super) const OPEN_LOCK: i64 = 0x6d70_632d_6e6f_6465;

/// Runs the pending migrations inside `tx` (which holds [`OPEN_LOCK`]).
pub(super) fn migrate(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS mpc_schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT  NOT NULL
         )",
    )
    .map_err(db)?;
    let row = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM mpc_schema_migrations", &[])
        .map_err(db)?;
    let current: i32 = row.try_get(0).map_err(db)?;
    let current = usize::try_from(current)
        .map_err(|_| StoreError::Corrupt("malformed schema version".into()))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt("database schema is newer than this program".into()));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql).map_err(db)?;
        let version = i32::try_from(i + 1)
            .map_err(|_| StoreError::Corrupt("malformed schema version".into()))?;
        tx.execute(
            "INSERT INTO mpc_schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &now_secs()],
        )
        .map_err(db)?;
    }
    Ok(())
}
