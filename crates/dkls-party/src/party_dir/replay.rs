//! The persisted replay guard (`used-iids`): every instance id this party ran, so that no
//! setup runs twice, even across processes.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dkls23_core::setup::{ReplayError, ReplayGuard};

use super::{DirLock, PartyDir};
use crate::encoding::hex_array;
use crate::error::{CliError, CliResult};
use crate::files;

/// The replay guard persisted as a file of used instance ids (appended and fsynced before the
/// session starts). Several runs may share the directory: a check takes the directory lock and
/// re-reads the file under it, so one instance id is accepted by exactly one run.
#[derive(Debug)]
pub struct FileReplayGuard {
    path: PathBuf,
    lock: PathBuf,
    seen: Mutex<HashSet<[u8; 32]>>,
}

const MAX_USED_IIDS_FILE: u64 = 256 * 1024 * 1024;

fn read_used(path: &Path) -> CliResult<HashSet<[u8; 32]>> {
    let mut seen = HashSet::new();
    if path.exists() {
        let text = files::read_bounded(path, MAX_USED_IIDS_FILE, "used instance ids")?;
        for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.is_empty()) {
            let iid = hex_array(line.trim())
                .ok_or_else(|| CliError::corrupted(format!("{} is damaged", path.display())))?;
            seen.insert(iid);
        }
    }
    Ok(seen)
}

impl PartyDir {
    /// The persisted replay guard of this party.
    ///
    /// # Errors
    /// Corrupted data if the file cannot be read.
    pub fn replay_guard(&self) -> CliResult<FileReplayGuard> {
        FileReplayGuard::open(self.used_iids_path(), self.lock_path())
    }
}

impl FileReplayGuard {
    /// Loads the guard at `path`, locking with `lock` (a missing file is an empty set).
    ///
    /// # Errors
    /// Corrupted data if the file does not parse.
    pub fn open(path: PathBuf, lock: PathBuf) -> CliResult<Self> {
        let seen = read_used(&path)?;
        Ok(Self { path, lock, seen: Mutex::new(seen) })
    }

    /// Whether `iid` was used (without recording it), as of when the guard was opened.
    pub fn was_used(&self, iid: &[u8; 32]) -> bool {
        self.seen.lock().map(|s| s.contains(iid)).unwrap_or(true)
    }

    fn record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        let storage = |e: CliError| ReplayError::Storage(e.message);
        let _lock = DirLock::acquire(&self.lock).map_err(storage)?;
        // Another run may have recorded ids since this guard was opened.
        let on_disk = read_used(&self.path).map_err(storage)?;
        let mut seen =
            self.seen.lock().map_err(|_| ReplayError::Storage("lock poisoned".into()))?;
        seen.extend(on_disk);
        if seen.contains(iid) {
            return Err(ReplayError::Reused);
        }
        let io = |e: std::io::Error| ReplayError::Storage(e.to_string());
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&self.path).map_err(io)?;
        f.write_all(format!("{}\n", hex::encode(iid)).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        seen.insert(*iid);
        Ok(())
    }
}

impl ReplayGuard for FileReplayGuard {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        self.record(iid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn replay_guard_persists() {
        let dir = std::env::temp_dir().join(format!("dkls-party-guard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let g = FileReplayGuard::open(dir.join("used-iids"), dir.join(".lock")).unwrap();
        g.check_and_record(&[1; 32]).unwrap();
        assert_eq!(g.check_and_record(&[1; 32]), Err(ReplayError::Reused));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("used-iids")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let g = FileReplayGuard::open(dir.join("used-iids"), dir.join(".lock")).unwrap();
        assert!(g.was_used(&[1; 32]) && !g.was_used(&[2; 32]));
        assert_eq!(g.check_and_record(&[1; 32]), Err(ReplayError::Reused));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_runs_on_one_directory_accept_an_instance_id_once() {
        // Two guards opened before either recorded anything (two processes started together).
        let dir = std::env::temp_dir().join(format!("dkls-party-guard2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let open = || FileReplayGuard::open(dir.join("used-iids"), dir.join(".lock")).unwrap();
        let (a, b) = (open(), open());
        let results = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                (0..50u8).map(|i| a.check_and_record(&[i; 32]).is_ok()).collect::<Vec<_>>()
            });
            let tb = s.spawn(|| {
                (0..50u8).map(|i| b.check_and_record(&[i; 32]).is_ok()).collect::<Vec<_>>()
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        for i in 0..50 {
            assert!(results.0[i] ^ results.1[i], "instance id {i} accepted by both runs or none");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
