//! The presignature generation counter (`protocols.md` §3.6): a file outside the database,
//! and the database's own copy of it, kept in step so that a restored or copied database
//! never gives out a presignature twice.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::sql::{corrupt, db, meta, restrict_permissions};
use crate::error::StoreError;

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

/// Name of the database's own copy of the presignature generation in `meta`.
const META_GENERATION: &str = "presig_generation";

/// The presignature generation counter file: 8 bytes, big-endian, replaced atomically.
#[derive(Debug)]
pub(super) struct CounterFile {
    pub(super) path: PathBuf,
}

impl CounterFile {
    /// The counter of the database at `db_path`.
    pub(super) fn for_database(db_path: &Path, at: &GenerationCounter) -> Self {
        let path = match at {
            GenerationCounter::BesideDatabase => {
                let mut p = db_path.as_os_str().to_owned();
                p.push(".presig-generation");
                PathBuf::from(p)
            }
            GenerationCounter::At(p) => p.clone(),
        };
        Self { path }
    }

    pub(super) fn read(&self) -> Result<Option<u64>, StoreError> {
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
    pub(super) fn write(&self, value: u64) -> Result<(), StoreError> {
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

    /// Brings the database's presignature generation in line with the counter file (inside the
    /// write transaction `tx`): equal → nothing; otherwise every presignature is deleted and
    /// both move to a generation above either. Returns the number of presignatures deleted.
    pub(super) fn sync(&self, tx: &Connection) -> Result<u64, StoreError> {
        let in_db = db_generation(tx)?;
        let counter = self.read()?;
        match counter {
            Some(c) if c == in_db => return Ok(0),
            // A new database (or one from before the counter existed) that never gave out a
            // presignature: start the counter at its value.
            None if in_db == 0 => {
                self.write(0)?;
                return Ok(0);
            }
            _ => {}
        }
        let wiped = tx.execute("DELETE FROM presignatures", []).map_err(db)?;
        let next = counter.unwrap_or(0).max(in_db).saturating_add(1);
        self.write(next)?;
        set_db_generation(tx, next)?;
        Ok(u64::try_from(wiped).unwrap_or(u64::MAX))
    }
}

pub(super) fn db_generation(tx: &Connection) -> Result<u64, StoreError> {
    match meta(tx, META_GENERATION)? {
        None => Ok(0),
        Some(v) => {
            let arr: [u8; 8] =
                v.as_slice().try_into().map_err(|_| corrupt("presignature generation"))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

pub(super) fn set_db_generation(tx: &Connection, value: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (META_GENERATION, value.to_be_bytes().to_vec()),
    )
    .map_err(db)?;
    Ok(())
}
