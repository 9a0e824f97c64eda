//! The SQLite store's handle: opening a database (pragmas, migrations, unlocking, the
//! generation check), its transactions, and master-password changes.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::generation::{CounterFile, GenerationCounter, db_generation};
use super::kdf::{seal_check, unlock};
use super::records::ready_records;
use super::schema::migrate;
use super::shares::data_key;
use super::sql::{checkpoint, db, restrict_permissions};
use crate::envelope::{Aad, DOMAIN_DATA_KEY, KdfParams, SALT_LEN, SecretKey, fill_random};
use crate::error::StoreError;

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

/// The SQLite [`Store`](crate::Store). One connection behind a mutex; several `SqliteStore`s (threads or
/// processes) may open the same file.
pub struct SqliteStore {
    pub(super) conn: Mutex<Connection>,
    pub(super) kek: SecretKey,
    pub(super) path: PathBuf,
    pub(super) counter: CounterFile,
    /// Presignatures deleted at open because the database was behind its counter.
    pub(super) wiped_at_open: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
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
        let counter = CounterFile::for_database(path, &options.generation);
        let mut store =
            Self { conn: Mutex::new(conn), kek, path: path.to_owned(), counter, wiped_at_open: 0 };
        // Only a database that is not at its counter needs the write lock (an up-to-date one
        // is only read, so opening never waits for a busy writer).
        let in_step = store.read(|tx| Ok(store.counter.read()? == Some(db_generation(tx)?)))?;
        if !in_step {
            store.wiped_at_open = store.write(|tx| store.counter.sync(tx))?;
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
        let check = seal_check(&new_kek, &salt, kdf)?;
        self.write(|tx| {
            for r in &ready_records(tx)? {
                let dk = data_key(tx, &self.kek, r)?;
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
    pub(super) fn write<T>(
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
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(db)?;
        f(&tx)
    }

    /// Truncates the write-ahead log after a secret was destroyed (best effort: a reader still
    /// holding an old snapshot makes SQLite skip part of it; the next checkpoint finishes).
    pub(super) fn shred_log(&self) {
        if let Ok(conn) = self.lock() {
            let _ = checkpoint(&conn);
        }
    }
}
