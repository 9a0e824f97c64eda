//! The embedded SQLite [`Store`]: one database file, WAL mode, migrations at open, shares and
//! presignatures sealed with envelope encryption ([`crate::envelope`]).
//!
//! Every method runs in one `BEGIN IMMEDIATE` transaction, so a crash leaves either the old or
//! the new state, never a half-written share, and two processes opening the same file serialise
//! on SQLite's write lock (with a busy timeout). The SQL sticks to what PostgreSQL also accepts
//! (`ON CONFLICT ... DO NOTHING`, no `INSERT OR REPLACE`, no `rowid`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior};
use zeroize::Zeroizing;

use crate::clock::now_secs;
use crate::envelope::{
    Aad, DOMAIN_CHECK, DOMAIN_DATA_KEY, DOMAIN_PRESIG, DOMAIN_SHARE, DOMAIN_STAGED, KdfParams,
    SALT_LEN, SecretKey, fill_random,
};
use crate::error::StoreError;
use crate::record::{CreateOutcome, KeyRecord, KeyStatus, NewShare, ReadyKey, StagedShare};
use crate::rules::{
    check_app_key, check_can_mark_error, check_can_mark_ready, check_new_epoch, check_params,
    check_presig_id, check_ready, truncate_reason,
};
use crate::store::{Store, guard_result};

/// Plaintext of the password check value (its tag is what matters).
const CHECK_PLAINTEXT: &[u8] = b"mpc-node-store password check";

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
];

/// Where the presignature generation counter of a database lives (`protocols.md` §3.6): a
/// small file *outside* the database, bumped before every presignature is taken. A database
/// whose own generation differs from the counter's (a restored backup, a copied file, a VM
/// image rolled back without the counter) has every presignature deleted when it is opened,
/// so a presignature that was used can never come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerationCounter {
    /// `<database path>.presig-generation` (the default).
    BesideDatabase,
    /// A file at this path (e.g. on another volume than the database's backups).
    At(PathBuf),
}

/// Options of [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Argon2id parameters used when the database is created (an existing database keeps the
    /// parameters it was created with).
    pub kdf: KdfParams,
    /// How long a statement waits for another connection's lock before failing.
    pub busy_timeout: Duration,
    /// The presignature generation counter.
    pub generation: GenerationCounter,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            kdf: KdfParams::RECOMMENDED,
            busy_timeout: Duration::from_secs(5),
            generation: GenerationCounter::BesideDatabase,
        }
    }
}

impl OpenOptions {
    /// Default options with cheap key derivation: for tests only.
    #[cfg(any(test, feature = "testing"))]
    pub fn insecure_for_tests() -> Self {
        Self { kdf: KdfParams::INSECURE_FOR_TESTS, ..Self::default() }
    }
}

/// Name of the database's own copy of the presignature generation in `meta`.
const META_GENERATION: &str = "presig_generation";

/// The presignature generation counter file: 8 bytes, big-endian, replaced atomically.
#[derive(Debug)]
struct CounterFile {
    path: PathBuf,
}

impl CounterFile {
    fn read(&self) -> Result<Option<u64>, StoreError> {
        match std::fs::read(&self.path) {
            Ok(b) => {
                let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| {
                    StoreError::Corrupt(format!(
                        "presignature generation file {} is damaged",
                        self.path.display()
                    ))
                })?;
                Ok(Some(u64::from_be_bytes(arr)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io(format!(
                "presignature generation file {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Writes `value` durably (temporary file, fsync, rename, fsync of the directory).
    fn write(&self, value: u64) -> Result<(), StoreError> {
        use std::io::Write;
        let io = |e: std::io::Error| {
            StoreError::Io(format!("presignature generation file {}: {e}", self.path.display()))
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            restrict_permissions(&tmp)?;
            f.write_all(&value.to_be_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Best effort on platforms where a directory cannot be opened for syncing.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

fn db_generation(tx: &Connection) -> Result<u64, StoreError> {
    match meta(tx, META_GENERATION)? {
        None => Ok(0),
        Some(v) => {
            let arr: [u8; 8] =
                v.as_slice().try_into().map_err(|_| corrupt("presignature generation"))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

fn set_db_generation(tx: &Connection, value: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (META_GENERATION, value.to_be_bytes().to_vec()),
    )
    .map_err(db)?;
    Ok(())
}

/// The SQLite [`Store`]. One connection behind a mutex; several `SqliteStore`s (threads or
/// processes) may open the same file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    kek: SecretKey,
    path: PathBuf,
    counter: CounterFile,
    /// Presignatures deleted at open because the database was behind its counter.
    wiped_at_open: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Maps an engine error to a [`StoreError`] without SQL text or row contents.
fn db(e: rusqlite::Error) -> StoreError {
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

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("malformed {what}"))
}

fn fixed<const N: usize>(v: Option<Vec<u8>>, what: &str) -> Result<Option<[u8; N]>, StoreError> {
    v.map(|b| <[u8; N]>::try_from(b.as_slice()).map_err(|_| corrupt(what))).transpose()
}

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
        let status = match (self.status.as_str(), self.error) {
            ("PENDING", _) => KeyStatus::Pending,
            ("READY", _) => KeyStatus::Ready,
            ("ERROR", reason) => KeyStatus::Error(reason.unwrap_or_default()),
            _ => return Err(corrupt("key status")),
        };
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

fn get_record(tx: &Connection, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM keys WHERE app = ?1 AND key_name = ?2");
    tx.query_row(&sql, (app, key), read_record)
        .optional()
        .map_err(db)?
        .map(RawRecord::decode)
        .transpose()
}

fn require_record(tx: &Connection, app: &str, key: &str) -> Result<KeyRecord, StoreError> {
    get_record(tx, app, key)?.ok_or(StoreError::NotFound)
}

fn meta(tx: &Connection, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    tx.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .map_err(db)
}

/// The associated data of the password check: binds the salt and the parameters.
fn check_aad(salt: &[u8], params: KdfParams) -> Aad {
    let mut aad = Aad::new(DOMAIN_CHECK);
    aad.bytes(salt).bytes(&params.encode());
    aad
}

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
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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

type KdfRows = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

fn read_kdf(conn: &Connection) -> Result<KdfRows, StoreError> {
    Ok((meta(conn, "kdf_salt")?, meta(conn, "kdf_params")?, meta(conn, "kdf_check")?))
}

/// Derives the KEK from stored settings and verifies it against the check value.
fn verify_kek(
    password: &[u8],
    salt: &[u8],
    params: &[u8],
    check: &[u8],
) -> Result<SecretKey, StoreError> {
    let params = KdfParams::decode(params)?;
    if salt.len() != SALT_LEN {
        return Err(corrupt("key derivation salt"));
    }
    let kek = SecretKey::derive_kek(password, salt, params)?;
    kek.open(check_aad(salt, params).as_slice(), check, "password check")
        .map_err(|_| StoreError::WrongPassword)?;
    Ok(kek)
}

/// Reads (or, for a new database, creates) the KDF salt, parameters and check value, derives the
/// KEK and verifies it. An existing database is only read.
fn unlock(
    conn: &mut Connection,
    password: &[u8],
    create_params: KdfParams,
) -> Result<SecretKey, StoreError> {
    match read_kdf(conn)? {
        (Some(salt), Some(params), Some(check)) => {
            return verify_kek(password, &salt, &params, &check);
        }
        (None, None, None) => {}
        _ => return Err(StoreError::Corrupt("key derivation settings incomplete".into())),
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let kek = match read_kdf(&tx)? {
        // Another process created them meanwhile.
        (Some(salt), Some(params), Some(check)) => verify_kek(password, &salt, &params, &check)?,
        (None, None, None) => {
            let mut salt = [0u8; SALT_LEN];
            fill_random(&mut salt)?;
            let kek = SecretKey::derive_kek(password, &salt, create_params)?;
            let check = kek.seal(check_aad(&salt, create_params).as_slice(), CHECK_PLAINTEXT)?;
            let put = "INSERT INTO meta (name, value) VALUES (?1, ?2)";
            tx.execute(put, ("kdf_salt", salt.as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_params", create_params.encode().as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_check", check)).map_err(db)?;
            kek
        }
        _ => return Err(StoreError::Corrupt("key derivation settings incomplete".into())),
    };
    tx.commit().map_err(db)?;
    Ok(kek)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Io(format!("cannot set database file permissions: {}", e.kind())))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

impl SqliteStore {
    /// Opens/creates `path`, runs migrations, derives the KEK from `master_password` with
    /// Argon2id (salt + parameters stored in the DB; a stored check value makes a wrong password
    /// fail with [`StoreError::WrongPassword`] instead of producing garbage). A new database
    /// uses [`KdfParams::RECOMMENDED`].
    ///
    /// # Errors
    /// [`StoreError::WrongPassword`]; [`StoreError::Io`] if the file cannot be opened;
    /// [`StoreError::Corrupt`] for a file that is not this store's database.
    pub fn open(path: &Path, master_password: &[u8]) -> Result<Self, StoreError> {
        Self::open_with(path, master_password, &OpenOptions::default())
    }

    /// [`SqliteStore::open`] with explicit options.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_with(
        path: &Path,
        master_password: &[u8],
        options: &OpenOptions,
    ) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(db)?;
        restrict_permissions(path)?;
        conn.busy_timeout(options.busy_timeout).map_err(db)?;
        let mode: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database("cannot enable write-ahead logging".into()));
        }
        // FULL: a committed share survives power loss, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        // Deleted rows (shares, data keys) are overwritten with zeros, not just unlinked.
        conn.pragma_update(None, "secure_delete", "ON").map_err(db)?;
        // Temporary tables and indices (sorts, VACUUM) stay in memory, never in stray files.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(db)?;
        migrate(&mut conn)?;
        let kek = unlock(&mut conn, master_password, options.kdf)?;
        let counter = CounterFile {
            path: match &options.generation {
                GenerationCounter::BesideDatabase => {
                    let mut p = path.as_os_str().to_owned();
                    p.push(".presig-generation");
                    PathBuf::from(p)
                }
                GenerationCounter::At(p) => p.clone(),
            },
        };
        let mut store =
            Self { conn: Mutex::new(conn), kek, path: path.to_owned(), counter, wiped_at_open: 0 };
        // Only a database that is not at its counter needs the write lock (an up-to-date one
        // is only read, so opening never waits for a busy writer).
        let in_step = store.read(|tx| Ok(store.counter.read()? == Some(db_generation(tx)?)))?;
        if !in_step {
            store.wiped_at_open = store.write(|tx| store.sync_generation(tx))?;
        }
        Ok(store)
    }

    /// How many presignatures were deleted when the store was opened because the database's
    /// presignature generation was not its counter's (a restored or copied database).
    pub fn presignatures_wiped_at_open(&self) -> u64 {
        self.wiped_at_open
    }

    /// The path of the presignature generation counter file.
    pub fn generation_counter_path(&self) -> &Path {
        &self.counter.path
    }

    /// Brings the database's presignature generation in line with the counter file (inside the
    /// write transaction `tx`): equal → nothing; otherwise every presignature is deleted and
    /// both move to a generation above either. Returns the number of presignatures deleted.
    fn sync_generation(&self, tx: &Connection) -> Result<u64, StoreError> {
        let in_db = db_generation(tx)?;
        let counter = self.counter.read()?;
        match counter {
            Some(c) if c == in_db => return Ok(0),
            // A new database (or one from before the counter existed) that never gave out a
            // presignature: start the counter at its value.
            None if in_db == 0 => {
                self.counter.write(0)?;
                return Ok(0);
            }
            _ => {}
        }
        let wiped = tx.execute("DELETE FROM presignatures", []).map_err(db)?;
        let next = counter.unwrap_or(0).max(in_db).saturating_add(1);
        self.counter.write(next)?;
        set_db_generation(tx, next)?;
        Ok(u64::try_from(wiped).unwrap_or(u64::MAX))
    }

    /// Changes the master password: derives a new KEK (new salt, `kdf` parameters) and rewraps
    /// every data key under it in one transaction. Shares and presignatures are not re-encrypted
    /// (their data keys do not change). Other open handles on the same file keep the old KEK
    /// and must be reopened.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a data key does not unwrap (nothing is changed then);
    /// database failures.
    pub fn change_master_password(
        &mut self,
        new_password: &[u8],
        kdf: KdfParams,
    ) -> Result<(), StoreError> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let new_kek = SecretKey::derive_kek(new_password, &salt, kdf)?;
        let check = new_kek.seal(check_aad(&salt, kdf).as_slice(), CHECK_PLAINTEXT)?;
        self.write(|tx| {
            let sql = format!(
                "SELECT {RECORD_COLUMNS} FROM keys WHERE status = 'READY' ORDER BY app, key_name"
            );
            let mut stmt = tx.prepare(&sql).map_err(db)?;
            let records = stmt
                .query_map([], read_record)
                .map_err(db)?
                .map(|r| r.map_err(db).and_then(RawRecord::decode))
                .collect::<Result<Vec<_>, _>>()?;
            for r in &records {
                let dk = self.data_key(tx, r)?;
                let aad = Aad::for_key(DOMAIN_DATA_KEY, &r.app, &r.key, r.player, r.epoch);
                tx.execute(
                    "UPDATE data_keys SET wrapped = ?3 WHERE app = ?1 AND key_name = ?2",
                    (&r.app, &r.key, dk.wrap(&new_kek, aad.as_slice())?),
                )
                .map_err(db)?;
            }
            let put = "UPDATE meta SET value = ?2 WHERE name = ?1";
            tx.execute(put, ("kdf_salt", salt.as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_params", kdf.encode().as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_check", check)).map_err(db)?;
            Ok(())
        })?;
        self.kek = new_kek;
        // The old wrapped keys are overwritten (secure_delete) once the log is checkpointed.
        self.shred_log();
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rebuilds the database file (`VACUUM`) and truncates the write-ahead log, so no freed
    /// page or old log frame keeps deleted data. `delete` and `replace_share` already
    /// checkpoint; this is for maintenance.
    ///
    /// # Errors
    /// Database failures.
    pub fn compact(&self) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute_batch("VACUUM").map_err(db)?;
        checkpoint(&conn)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Database("store lock poisoned".into()))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed only if `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// Runs `f` in a read transaction (one consistent snapshot).
    fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(db)?;
        f(&tx)
    }

    /// The data key of a READY record, unwrapped.
    fn data_key(&self, tx: &Connection, r: &KeyRecord) -> Result<SecretKey, StoreError> {
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
        SecretKey::unwrap_with(&self.kek, aad.as_slice(), &wrapped)
    }

    /// Writes a new data key and the share sealed under it (replacing any previous ones).
    fn store_share(
        &self,
        tx: &Connection,
        app: &str,
        key: &str,
        player: u16,
        epoch: u32,
        share: &[u8],
    ) -> Result<(), StoreError> {
        let dk = SecretKey::random()?;
        let wrapped =
            dk.wrap(&self.kek, Aad::for_key(DOMAIN_DATA_KEY, app, key, player, epoch).as_slice())?;
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

    /// Truncates the write-ahead log after a secret was destroyed (best effort: a reader still
    /// holding an old snapshot makes SQLite skip part of it; the next checkpoint finishes).
    fn shred_log(&self) {
        if let Ok(conn) = self.lock() {
            let _ = checkpoint(&conn);
        }
    }
}

fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(db)
}

/// Deletes presignatures, share ciphertext and data key of a key (in the caller's transaction).
fn delete_secrets(tx: &Connection, app: &str, key: &str) -> Result<(), StoreError> {
    for table in ["presignatures", "staged_shares", "shares", "data_keys"] {
        tx.execute(&format!("DELETE FROM {table} WHERE app = ?1 AND key_name = ?2"), (app, key))
            .map_err(db)?;
    }
    Ok(())
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

/// A staged share is sealed under the key's current data key, bound to its new epoch and to
/// the setup of the session that produced it.
fn staged_aad(r: &KeyRecord, epoch: u32, setup: &[u8]) -> Aad {
    let mut aad = Aad::for_key(DOMAIN_STAGED, &r.app, &r.key, r.player, r.epoch);
    aad.bytes(&epoch.to_be_bytes()).bytes(setup);
    aad
}

fn presig_aad(r: &KeyRecord, id: &str) -> Aad {
    let mut aad = Aad::for_key(DOMAIN_PRESIG, &r.app, &r.key, r.player, r.epoch);
    aad.bytes(id.as_bytes());
    aad
}

impl Store for SqliteStore {
    fn create_pending(
        &self,
        app: &str,
        key: &str,
        threshold: u16,
        parties: u16,
        player: u16,
    ) -> Result<CreateOutcome, StoreError> {
        check_app_key(app, key)?;
        check_params(threshold, parties)?;
        self.write(|tx| {
            if let Some(existing) = get_record(tx, app, key)? {
                return Ok(CreateOutcome::Existing(existing));
            }
            let now = now_secs();
            tx.execute(
                "INSERT INTO keys (app, key_name, status, threshold, parties, player, epoch, \
                 created_at, updated_at) VALUES (?1, ?2, 'PENDING', ?3, ?4, ?5, 0, ?6, ?6)",
                (app, key, threshold, parties, player, now),
            )
            .map_err(db)?;
            Ok(CreateOutcome::Created)
        })
    }

    fn mark_ready(&self, app: &str, key: &str, ready: &ReadyKey<'_>) -> Result<(), StoreError> {
        self.write(|tx| {
            let r = require_record(tx, app, key)?;
            check_can_mark_ready(&r.status)?;
            self.store_share(tx, app, key, r.player, ready.epoch, ready.share)?;
            tx.execute(
                "UPDATE keys SET status = 'READY', error = NULL, epoch = ?3, public_key = ?4, \
                 chain_code = ?5, core_key_id = ?6, updated_at = ?7 \
                 WHERE app = ?1 AND key_name = ?2",
                (
                    app,
                    key,
                    i64::from(ready.epoch),
                    ready.public_key.as_slice(),
                    ready.chain_code.as_slice(),
                    ready.core_key_id.as_slice(),
                    now_secs(),
                ),
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn mark_error(&self, app: &str, key: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let r = require_record(tx, app, key)?;
            check_can_mark_error(&r.status)?;
            tx.execute(
                "UPDATE keys SET status = 'ERROR', error = ?3, updated_at = ?4 \
                 WHERE app = ?1 AND key_name = ?2",
                (app, key, truncate_reason(reason), now_secs()),
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn fail_pending(&self, reason: &str) -> Result<u64, StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE keys SET status = 'ERROR', error = ?1, updated_at = ?2 \
                     WHERE status = 'PENDING'",
                    (truncate_reason(reason), now_secs()),
                )
                .map_err(db)?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }

    fn get(&self, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.read(|tx| get_record(tx, app, key))
    }

    fn list(&self, app: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|tx| {
            let sql = format!("SELECT {RECORD_COLUMNS} FROM keys WHERE app = ?1 ORDER BY key_name");
            let mut stmt = tx.prepare(&sql).map_err(db)?;
            let rows = stmt.query_map([app], read_record).map_err(db)?;
            rows.map(|r| r.map_err(db).and_then(RawRecord::decode)).collect()
        })
    }

    fn load_share(&self, app: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.read(|tx| {
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
            let dk = self.data_key(tx, &r)?;
            dk.open(
                Aad::for_key(DOMAIN_SHARE, app, key, r.player, r.epoch).as_slice(),
                &ct,
                "share",
            )
        })
    }

    fn replace_share(&self, app: &str, key: &str, new: &NewShare<'_>) -> Result<(), StoreError> {
        check_params(new.threshold, new.parties)?;
        self.write(|tx| {
            let r = require_record(tx, app, key)?;
            check_ready(&r.status)?;
            check_new_epoch(r.epoch, new.epoch)?;
            // Replaces data key and share, drops presignatures (bound to the old epoch anyway).
            self.store_share(tx, app, key, new.player, new.epoch, new.share)?;
            tx.execute("DELETE FROM bans WHERE app = ?1 AND key_name = ?2", (app, key))
                .map_err(db)?;
            tx.execute(
                "UPDATE keys SET epoch = ?3, player = ?4, threshold = ?5, parties = ?6, \
                 updated_at = ?7 WHERE app = ?1 AND key_name = ?2",
                (
                    app,
                    key,
                    i64::from(new.epoch),
                    new.player,
                    new.threshold,
                    new.parties,
                    now_secs(),
                ),
            )
            .map_err(db)?;
            Ok(())
        })?;
        self.shred_log();
        Ok(())
    }

    fn stage_share(
        &self,
        app: &str,
        key: &str,
        epoch: u32,
        setup: &[u8],
        share: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let r = require_record(tx, app, key)?;
            check_ready(&r.status)?;
            check_new_epoch(r.epoch, epoch)?;
            let dk = self.data_key(tx, &r)?;
            let ct = dk.seal(staged_aad(&r, epoch, setup).as_slice(), share)?;
            tx.execute(
                "INSERT INTO staged_shares (app, key_name, epoch, setup, ciphertext, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (app, key_name) DO UPDATE SET \
                 epoch = excluded.epoch, setup = excluded.setup, \
                 ciphertext = excluded.ciphertext, created_at = excluded.created_at",
                (app, key, i64::from(epoch), setup, ct, now_secs()),
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn staged_share(&self, app: &str, key: &str) -> Result<Option<StagedShare>, StoreError> {
        self.read(|tx| {
            let row: Option<(i64, Vec<u8>, Vec<u8>)> = tx
                .query_row(
                    "SELECT epoch, setup, ciphertext FROM staged_shares \
                     WHERE app = ?1 AND key_name = ?2",
                    (app, key),
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(db)?;
            let Some((epoch, setup, ct)) = row else { return Ok(None) };
            let epoch = u32::try_from(epoch)
                .map_err(|_| StoreError::Corrupt("staged epoch out of range".into()))?;
            let r = require_record(tx, app, key)?;
            let dk = self.data_key(tx, &r)?;
            let share = dk.open(staged_aad(&r, epoch, &setup).as_slice(), &ct, "staged share")?;
            Ok(Some(StagedShare { epoch, setup, share }))
        })
    }

    fn clear_staged(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM staged_shares WHERE app = ?1 AND key_name = ?2", (app, key))
                .map_err(db)?;
            Ok(())
        })
    }

    fn list_staged(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare("SELECT app, key_name FROM staged_shares ORDER BY app, key_name")
                .map_err(db)?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(db)?
                .collect::<Result<Vec<(String, String)>, _>>()
                .map_err(db)?;
            Ok(rows)
        })
    }

    fn delete(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            delete_secrets(tx, app, key)?;
            tx.execute("DELETE FROM bans WHERE app = ?1 AND key_name = ?2", (app, key))
                .map_err(db)?;
            let n = tx
                .execute("DELETE FROM keys WHERE app = ?1 AND key_name = ?2", (app, key))
                .map_err(db)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })?;
        self.shred_log();
        Ok(())
    }

    fn record_iid(&self, iid: &[u8; 32]) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO used_iids (iid, used_at) VALUES (?1, ?2) \
                     ON CONFLICT (iid) DO NOTHING",
                    (iid.as_slice(), now_secs()),
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    fn record_ban(&self, app: &str, key: &str, party: u16, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            require_record(tx, app, key)?;
            tx.execute(
                "INSERT INTO bans (app, key_name, party, reason, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (app, key_name, party) DO NOTHING",
                (app, key, party, truncate_reason(reason), now_secs()),
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn bans(&self, app: &str, key: &str) -> Result<Vec<u16>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare("SELECT party FROM bans WHERE app = ?1 AND key_name = ?2 ORDER BY party")
                .map_err(db)?;
            let rows = stmt.query_map((app, key), |r| r.get::<_, i64>(0)).map_err(db)?;
            rows.map(|r| r.map_err(db).and_then(|p| u16::try_from(p).map_err(|_| corrupt("ban"))))
                .collect()
        })
    }

    fn put_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        check_presig_id(id)?;
        self.write(|tx| {
            let r = require_record(tx, app, key)?;
            check_ready(&r.status)?;
            let dk = self.data_key(tx, &r)?;
            let ct = dk.seal(presig_aad(&r, id).as_slice(), bytes)?;
            let n = tx
                .execute(
                    "INSERT INTO presignatures (app, key_name, id, ciphertext, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (app, key_name, id) DO NOTHING",
                    (app, key, id, ct, now_secs()),
                )
                .map_err(db)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict("presignature id already used".into()))
            }
        })
    }

    fn take_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.write(|tx| {
            // A database that fell behind its counter (swapped or restored under a running
            // node) gives out nothing it held before.
            if self.sync_generation(tx)? > 0 {
                return Ok(None);
            }
            let Some(r) = get_record(tx, app, key)? else { return Ok(None) };
            let Some(ct) = presig_ciphertext(tx, app, key, id)? else { return Ok(None) };
            let dk = self.data_key(tx, &r)?;
            let pt = dk.open(presig_aad(&r, id).as_slice(), &ct, "presignature")?;
            // The counter moves first: if the commit below fails, the database is behind it
            // and its presignatures are dropped at the next take or open (never reused).
            let next = db_generation(tx)?.saturating_add(1);
            self.counter.write(next)?;
            set_db_generation(tx, next)?;
            let n = tx
                .execute(
                    "DELETE FROM presignatures WHERE app = ?1 AND key_name = ?2 AND id = ?3",
                    (app, key, id),
                )
                .map_err(db)?;
            // The write lock is held since BEGIN IMMEDIATE, so the row cannot have gone.
            if n == 1 { Ok(Some(pt)) } else { Ok(None) }
        })
    }

    fn peek_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.read(|tx| {
            let Some(r) = get_record(tx, app, key)? else { return Ok(None) };
            let Some(ct) = presig_ciphertext(tx, app, key, id)? else { return Ok(None) };
            let dk = self.data_key(tx, &r)?;
            dk.open(presig_aad(&r, id).as_slice(), &ct, "presignature").map(Some)
        })
    }

    fn list_presignatures(&self, app: &str, key: &str) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT id FROM presignatures WHERE app = ?1 AND key_name = ?2 ORDER BY id",
                )
                .map_err(db)?;
            let rows = stmt.query_map((app, key), |r| r.get::<_, String>(0)).map_err(db)?;
            rows.map(|r| r.map_err(db)).collect()
        })
    }
}

impl dkls23_core::setup::ReplayGuard for SqliteStore {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), dkls23_core::setup::ReplayError> {
        guard_result(self.record_iid(iid))
    }
}
