//! A party's data directory: identity, encrypted key shares with their public metadata, the
//! persisted instance-id replay guard, ban lists and presignatures.
//!
//! This module holds the layout (every path below) and the directory lock; the files are read
//! and written by its submodules: `share_info` (the public data of the shares), `share_files`
//! (sealed shares), `ban_files` (ban lists) and `replay` (the replay guard).
//!
//! ```text
//! $DEST[/$PARTY_ID]/
//!   identity.pem                 PKCS#8 PEM identity key (0600)
//!   .lock                        advisory lock held while bans, the replay guard or the
//!                                presignature generation are updated (several runs at once)
//!   used-iids                    one hex instance id per line (replay guard; also the finish
//!                                markers of used presignatures)
//!   shares/<key_id>.share        sealed key share (Argon2id + ChaCha20-Poly1305, 0600)
//!   shares/<key_id>.json         public data of that share (no secret)
//!   shares/<key_id>.e<epoch>.bans  authenticated ban list of that epoch (see `bans`)
//!   presignatures/<setup_hash>.presig   sealed presignatures (consumed by use)
//!   presignatures/GENERATION     presignature generation (see `presig_gen`)
//! ```

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{CliError, CliResult};
use crate::files;
use crate::presig_gen::{self, PresigGeneration};

mod ban_files;
mod replay;
mod share_files;
mod share_info;

pub use replay::FileReplayGuard;
pub use share_info::ShareInfo;

/// Largest share metadata or ban-list file read.
const MAX_JSON_FILE: u64 = 1024 * 1024;

/// One party's data directory.
#[derive(Debug, Clone)]
pub struct PartyDir {
    root: PathBuf,
}

/// An exclusive advisory lock (`flock`) on a party directory, released when dropped. Runs of
/// this program that update the same directory's bans, replay guard or presignature generation
/// take it, re-read the state under it, and write before releasing it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(lock_file: &Path) -> CliResult<Self> {
        let io = |e: std::io::Error| {
            CliError::internal(format!("locking {}: {e}", lock_file.display()))
                .hint("check the permissions of the data directory")
        };
        if let Some(dir) = lock_file.parent() {
            create_private_dir(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_file)
            .map_err(io)?;
        f.lock().map_err(io)?;
        Ok(Self { _file: f })
    }
}

/// Creates `dir` (and its parents) with mode 0700 for what this program creates.
fn create_private_dir(dir: &Path) -> CliResult<()> {
    files::create_private_dir_all(dir)
        .map_err(|e| CliError::internal(format!("creating {}: {e}", dir.display())))
}

impl PartyDir {
    /// The directory `dest/party_id`, or `dest` itself without a party id.
    pub fn new(dest: &Path, party_id: Option<&str>) -> Self {
        let root = match party_id {
            Some(id) if !id.is_empty() => dest.join(id),
            _ => dest.to_path_buf(),
        };
        Self { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Default identity file.
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity.pem")
    }

    fn shares_dir(&self) -> PathBuf {
        self.root.join("shares")
    }

    /// Sealed key share file of `key_id`.
    pub fn share_path(&self, key_id: &[u8; 32]) -> PathBuf {
        self.shares_dir().join(format!("{}.share", hex::encode(key_id)))
    }

    fn info_path(&self, key_id: &[u8; 32]) -> PathBuf {
        self.shares_dir().join(format!("{}.json", hex::encode(key_id)))
    }

    /// The unauthenticated ban list of shares from before ban lists were authenticated.
    fn legacy_ban_path(&self, key_id: &[u8; 32]) -> PathBuf {
        self.shares_dir().join(format!("{}.banned", hex::encode(key_id)))
    }

    /// The authenticated ban list of `key_id`'s share of epoch `epoch`.
    fn ban_path(&self, key_id: &[u8; 32], epoch: u32) -> PathBuf {
        self.shares_dir().join(format!("{}.e{epoch}.bans", hex::encode(key_id)))
    }

    /// Every ban-list file of `key_id` (any epoch, and the legacy one).
    fn ban_files(&self, key_id: &[u8; 32]) -> Vec<PathBuf> {
        let prefix = format!("{}.e", hex::encode(key_id));
        let mut out = vec![self.legacy_ban_path(key_id)];
        if let Ok(entries) = std::fs::read_dir(self.shares_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".bans") {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// Takes this directory's lock (see [`DirLock`]).
    ///
    /// # Errors
    /// Internal errors if the lock file cannot be opened.
    pub fn lock(&self) -> CliResult<DirLock> {
        DirLock::acquire(&self.lock_path())
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// The replay guard's file (see `replay`).
    fn used_iids_path(&self) -> PathBuf {
        self.root.join("used-iids")
    }

    /// The presignature generation of this directory (see [`crate::presig_gen`]).
    ///
    /// # Errors
    /// Bad input without a state directory; I/O failures.
    pub fn presig_generation(&self) -> CliResult<PresigGeneration> {
        let state = presig_gen::state_dir()?;
        PresigGeneration::new(&self.root, self.presig_dir(), &state)
    }

    /// Directory of presignatures.
    pub fn presig_dir(&self) -> PathBuf {
        self.root.join("presignatures")
    }
}
