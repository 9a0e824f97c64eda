//! Crash-safe file writes (write to a temporary file, fsync, rename, fsync the directory) and
//! bounded reads.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{CliError, CliResult};

/// Writes `bytes` to `path` atomically: a crash leaves either the old file or the new one,
/// never a half-written file. On Unix the file gets `mode` (e.g. `0o600`).
///
/// # Errors
/// Any I/O failure, as an internal error naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> CliResult<()> {
    let io = |what: &str, e: std::io::Error| {
        CliError::internal(format!("{what} {}: {e}", path.display()))
            .hint("check free space and permissions of the data directory")
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| CliError::internal(format!("OS randomness: {e}")))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let result = (|| -> std::io::Result<()> {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io("cannot write", e));
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700 (existing directories keep theirs):
/// a party's data directory holds its identity key and its sealed shares.
///
/// # Errors
/// Any I/O failure.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Removes `path` durably (the directory entry is synced). A missing file is not an error.
///
/// # Errors
/// Any other I/O failure.
pub fn remove_durably(path: &Path) -> CliResult<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CliError::internal(format!("cannot remove {}: {e}", path.display())));
        }
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    sync_dir(dir).map_err(|e| CliError::internal(format!("cannot sync {}: {e}", dir.display())))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Reads at most `max` bytes of `path`; a longer file is an error (checked before reading it
/// whole). `what` names the file in messages ("key share", "setup file", …).
///
/// # Errors
/// Bad input if the file does not exist, corrupted data if it is too long or unreadable.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> CliResult<Vec<u8>> {
    let f = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::bad_input(format!("{what} {} does not exist", path.display()))
        } else {
            CliError::corrupted(format!("cannot open {what} {}: {e}", path.display()))
        }
    })?;
    let mut buf = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::corrupted(format!("cannot read {what} {}: {e}", path.display())))?;
    if buf.len() as u64 > max {
        return Err(CliError::corrupted(format!(
            "{what} {} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = std::env::temp_dir().join(format!("dkls-party-files-{}", std::process::id()));
        let path = dir.join("a.bin");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert!(read_bounded(&path, 2, "test file").is_err());
        assert_eq!(read_bounded(&path, 3, "test file").unwrap(), b"two");
        remove_durably(&path).unwrap();
        remove_durably(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn new_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("dkls-files-dirs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let file = base.join("a/b/secret");
        write_atomic(&file, b"x", 0o600).unwrap();
        for d in [base.join("a"), base.join("a/b")] {
            assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{d:?}");
        }
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        fs::remove_dir_all(&base).unwrap();
    }
}
