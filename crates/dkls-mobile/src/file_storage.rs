//! A [`SecureStorage`] in files, for tests, desktops and servers (a phone uses the Keychain or
//! Keystore-backed storage instead).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{ForeignError, MobileError};
use crate::storage::SecureStorage;

/// One file per entry in a directory (created with mode 0700), each written to a temporary
/// file, flushed to disk and renamed into place, so that a crash leaves the old value or the
/// new one, never a part.
struct Files {
    dir: PathBuf,
    /// Numbers the temporary files, so that concurrent writes of one key never share one.
    writes: std::sync::atomic::AtomicU64,
}

impl Files {
    /// The file of `key`: its bytes hex-encoded, so that no key can name a path outside the
    /// directory.
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(hex::encode(key.as_bytes()))
    }
}

fn failed(what: &str, key: &str, e: &std::io::Error) -> ForeignError {
    ForeignError::Failed { message: format!("cannot {what} {key:?}: {e}") }
}

fn write_synced(file: &std::fs::File, value: &[u8]) -> std::io::Result<()> {
    let mut f = file;
    f.write_all(value)?;
    f.sync_all()
}

impl SecureStorage for Files {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, ForeignError> {
        match std::fs::read(self.path(&key)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed("read", &key, &e)),
        }
    }

    fn put(&self, key: String, value: Vec<u8>) -> Result<(), ForeignError> {
        let path = self.path(&key);
        let n = self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{n}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(|e| failed("write", &key, &e))?;
        write_synced(&file, &value).map_err(|e| failed("write", &key, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| failed("write", &key, &e))?;
        sync_dir(&self.dir).map_err(|e| failed("write", &key, &e))
    }

    fn put_if_absent(&self, key: String, value: Vec<u8>) -> Result<bool, ForeignError> {
        let opened = std::fs::OpenOptions::new().write(true).create_new(true).open(self.path(&key));
        match opened {
            Ok(file) => {
                write_synced(&file, &value).map_err(|e| failed("write", &key, &e))?;
                sync_dir(&self.dir).map_err(|e| failed("write", &key, &e))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(failed("write", &key, &e)),
        }
    }

    fn delete(&self, key: String) -> Result<(), ForeignError> {
        match std::fs::remove_file(self.path(&key)) {
            Ok(()) => sync_dir(&self.dir).map_err(|e| failed("delete", &key, &e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(failed("delete", &key, &e)),
        }
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Secure storage in the directory `dir` (created if missing; on Unix only its owner may
/// read it). The files are not encrypted: use it where the directory itself is protected
/// (tests, a desktop's per-user data directory, a server's volume).
///
/// # Errors
/// [`MobileError::Storage`] when the directory cannot be created.
#[uniffi::export]
pub fn file_storage(dir: String) -> Result<Arc<dyn SecureStorage>, MobileError> {
    let dir = PathBuf::from(dir);
    let storage = |e: std::io::Error| MobileError::Storage {
        message: format!("cannot create the storage directory {}: {e}", dir.display()),
    };
    std::fs::create_dir_all(&dir).map_err(storage)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(storage)?;
    }
    Ok(Arc::new(Files { dir, writes: std::sync::atomic::AtomicU64::new(0) }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::file_storage;

    #[test]
    fn values_round_trip_and_put_if_absent_stores_once() {
        let dir = std::env::temp_dir().join(format!("dkls-files-{}", std::process::id()));
        let s = file_storage(dir.display().to_string()).unwrap();
        assert_eq!(s.get("share/k".into()).unwrap(), None);
        s.put("share/k".into(), b"one".to_vec()).unwrap();
        s.put("share/k".into(), b"two".to_vec()).unwrap();
        assert_eq!(s.get("share/k".into()).unwrap(), Some(b"two".to_vec()));
        assert!(s.put_if_absent("iid/aa".into(), vec![1]).unwrap());
        assert!(!s.put_if_absent("iid/aa".into(), vec![2]).unwrap());
        assert_eq!(s.get("iid/aa".into()).unwrap(), Some(vec![1]));
        // A key cannot reach outside the directory.
        s.put("../../escape".into(), vec![3]).unwrap();
        assert!(!dir.join("../../escape").exists());
        s.delete("share/k".into()).unwrap();
        s.delete("share/k".into()).unwrap();
        assert_eq!(s.get("share/k".into()).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
