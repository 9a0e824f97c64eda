//! The presignature generation of a party directory (`protocols.md` §3.6).
//!
//! A presignature finished twice (with two messages) reveals the key, so a party directory that
//! comes back from a backup, a VM snapshot or a copy must not give back a presignature it
//! already used. Every time a presignature is taken, a counter kept *outside* the directory is
//! bumped, then the directory's own copy (`presignatures/GENERATION`). When the two differ (the
//! directory was restored or copied, or a crash fell between the two writes), every stored
//! presignature is deleted and both move past either value.
//!
//! The outside counter lives in `$DKLS_STATE_DIR` (default `$XDG_STATE_HOME/dkls-party`, else
//! `~/.local/state/dkls-party`), one file per party directory, named by the SHA-256 of the
//! directory's canonical path. Restoring the directory *and* that state directory together
//! (a whole-machine snapshot) is not detected here; the other signers' finish records stop
//! the reuse then unless the restored party has only one co-signer, who is the attacker.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{CliError, CliResult};
use crate::files;

/// Where the outside counters live, from the environment.
///
/// # Errors
/// Bad input when no state directory can be found.
pub fn state_dir() -> CliResult<PathBuf> {
    if let Some(d) = std::env::var_os("DKLS_STATE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("dkls-party"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(h).join(".local/state/dkls-party"));
    }
    Err(CliError::bad_input("no state directory for the presignature generation counter")
        .hint("set DKLS_STATE_DIR to a directory outside the party's data directory"))
}

/// The two copies of one party directory's presignature generation.
#[derive(Debug)]
pub struct PresigGeneration {
    inside: PathBuf,
    outside: PathBuf,
    presig_dir: PathBuf,
}

fn read_counter(path: &Path) -> CliResult<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(t) => t.trim().parse().map(Some).map_err(|_| {
            CliError::corrupted(format!("presignature generation {} is damaged", path.display()))
                .hint("delete it: every stored presignature is then discarded")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::internal(format!("reading {}: {e}", path.display()))),
    }
}

fn write_counter(path: &Path, value: u64) -> CliResult<()> {
    files::write_atomic(path, format!("{value}\n").as_bytes(), 0o600)
}

impl PresigGeneration {
    /// The generation files of the party directory `root` (whose presignatures are in
    /// `presig_dir`), with the outside counter under `state`.
    ///
    /// # Errors
    /// Internal errors if the directory cannot be created or resolved.
    pub fn new(root: &Path, presig_dir: PathBuf, state: &Path) -> CliResult<Self> {
        files::create_private_dir_all(root)
            .map_err(|e| CliError::internal(format!("creating {}: {e}", root.display())))?;
        let canonical = std::fs::canonicalize(root)
            .map_err(|e| CliError::internal(format!("resolving {}: {e}", root.display())))?;
        let name = hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
        Ok(Self {
            inside: presig_dir.join("GENERATION"),
            outside: state.join("presig-generation").join(name),
            presig_dir,
        })
    }

    /// Brings the two copies together; when they differ, deletes every stored presignature
    /// first. Returns how many were deleted. Call it under the directory lock.
    ///
    /// # Errors
    /// I/O failures.
    pub fn reconcile(&self) -> CliResult<u64> {
        let inside = read_counter(&self.inside)?;
        let outside = read_counter(&self.outside)?;
        match (inside, outside) {
            (Some(a), Some(b)) if a == b => return Ok(0),
            (None, None) => {
                // A new directory (or one from before the counter): start both at 0. Any
                // presignature in it was never taken under a counter, so none was used.
                write_counter(&self.outside, 0)?;
                write_counter(&self.inside, 0)?;
                return Ok(0);
            }
            _ => {}
        }
        let mut wiped = 0u64;
        if let Ok(entries) = std::fs::read_dir(&self.presig_dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".presig") {
                    files::remove_durably(&e.path())?;
                    wiped += 1;
                }
            }
        }
        let next = inside.unwrap_or(0).max(outside.unwrap_or(0)).saturating_add(1);
        write_counter(&self.outside, next)?;
        write_counter(&self.inside, next)?;
        Ok(wiped)
    }

    /// Moves both copies one generation on (the outside one first): call it, under the
    /// directory lock and after [`Self::reconcile`], right before a presignature is taken.
    ///
    /// # Errors
    /// I/O failures.
    pub fn bump(&self) -> CliResult<()> {
        let now = read_counter(&self.inside)?.unwrap_or(0);
        let next = now.saturating_add(1);
        write_counter(&self.outside, next)?;
        write_counter(&self.inside, next)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_back_directory_loses_its_presignatures() {
        let base = std::env::temp_dir().join(format!("dkls-presig-gen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, state) = (base.join("party"), base.join("state"));
        let presigs = root.join("presignatures");
        std::fs::create_dir_all(&presigs).unwrap();
        std::fs::write(presigs.join("a.presig"), b"x").unwrap();
        std::fs::write(presigs.join("b.presig"), b"y").unwrap();
        let g = PresigGeneration::new(&root, presigs.clone(), &state).unwrap();
        assert_eq!(g.reconcile().unwrap(), 0);
        // Back up the directory, then take presignature a.
        let backup = base.join("backup");
        std::fs::create_dir_all(&backup).unwrap();
        for f in ["a.presig", "b.presig", "GENERATION"] {
            std::fs::copy(presigs.join(f), backup.join(f)).unwrap();
        }
        g.bump().unwrap();
        std::fs::remove_file(presigs.join("a.presig")).unwrap();
        assert_eq!(g.reconcile().unwrap(), 0);
        // Restore the backup: a is back, but the directory is behind its counter.
        for f in ["a.presig", "b.presig", "GENERATION"] {
            std::fs::copy(backup.join(f), presigs.join(f)).unwrap();
        }
        assert_eq!(g.reconcile().unwrap(), 2);
        assert!(!presigs.join("a.presig").exists() && !presigs.join("b.presig").exists());
        assert_eq!(g.reconcile().unwrap(), 0);
        let _ = std::fs::remove_dir_all(&base);
    }
}
