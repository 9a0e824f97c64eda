//! Presignature files: `presignatures/<id>.presig` in a party directory, where the id is the
//! hex of the setup's hash. A presignature is sealed like a key share ([`crate::sealed`]),
//! together with the setup it was made with, because the online round must use the same
//! setup. The plaintext is `u32 BE length of the setup ‖ setup encoding ‖ presignature
//! encoding`.

use std::path::{Path, PathBuf};

use dkls23_core::KeyShare;
use dkls23_core::setup::Setup;
use dkls23_core::sign::{PresignRequest, Presignature};
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult, ExitCode};
use crate::files;
use crate::sealed::{self, KdfParams, SealError};
use crate::setup_file;

const MAX_PRESIG_FILE: u64 = 1024 * 1024;

/// The id of the presignature made with `setup`.
pub fn id(setup: &Setup) -> String {
    hex::encode(setup.hash())
}

/// The file of presignature `id` in the presignature directory `dir`.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.presig"))
}

/// The sealed file content of `pre`, made with `setup`.
///
/// # Errors
/// Internal errors if sealing fails.
pub fn seal(setup: &Setup, pre: &Presignature, passphrase: &[u8]) -> CliResult<Vec<u8>> {
    let setup_bytes = setup.to_bytes();
    let mut plain = Zeroizing::new(Vec::new());
    plain.extend_from_slice(&(setup_bytes.len() as u32).to_be_bytes());
    plain.extend_from_slice(&setup_bytes);
    plain.extend_from_slice(&pre.to_bytes());
    sealed::seal(sealed::Kind::Presignature, &plain, passphrase, KdfParams::default())
        .map_err(|e| CliError::internal(format!("sealing the presignature: {e}")))
}

/// The presignature file `what` names in `dir`: the path of a file in it, or its id or a
/// unique id prefix (at least 4 hex digits).
///
/// # Errors
/// Bad input for a file elsewhere, or an id that matches none or several.
pub fn resolve(dir: &Path, what: &str) -> CliResult<PathBuf> {
    let p = PathBuf::from(what);
    if p.is_file() {
        // Only presignatures of this party's directory: its generation guards them.
        let canonical_dir = std::fs::canonicalize(dir).ok();
        let parent = std::fs::canonicalize(&p).ok().and_then(|f| f.parent().map(PathBuf::from));
        if canonical_dir.is_none() || parent != canonical_dir {
            return Err(CliError::bad_input(format!(
                "{what} is not in this party's presignature directory {}",
                dir.display()
            ))
            .hint("use the presignature id printed by `dkls-party presign`"));
        }
        return Ok(p);
    }
    let want = what.trim().to_ascii_lowercase();
    let mut found = Vec::new();
    if want.len() >= 4
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".presig") && name.starts_with(&want) {
                found.push(e.path());
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::bad_input(format!("no presignature {what:?} (it may have been used)"))
            .hint("make a new one with `dkls-party presign`")),
        _ => Err(CliError::bad_input(format!("{what:?} matches several presignatures"))
            .hint("give more digits of the presignature id")),
    }
}

/// The sealed content of the presignature file at `path`.
///
/// # Errors
/// Corrupted data if it cannot be read or is too large.
pub fn read(path: &Path) -> CliResult<Vec<u8>> {
    files::read_bounded(path, MAX_PRESIG_FILE, "presignature")
}

/// A presignature file opened with the passphrase: the setup the presignature was made with
/// and its still encoded presignature.
pub struct Opened {
    /// The setup of the presignature's session.
    pub setup: Setup,
    /// What the setup presigns.
    pub request: PresignRequest,
    path: PathBuf,
    presignature: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Opens `file`, the content of the presignature file at `path`.
///
/// # Errors
/// Wrong passphrase; corrupted data if it does not decrypt or decode.
pub fn open(path: &Path, file: &[u8], passphrase: &[u8]) -> CliResult<Opened> {
    let plain =
        sealed::open(sealed::Kind::Presignature, file, passphrase).map_err(|e| match e {
            SealError::WrongPassphrase => CliError::new(
                ExitCode::WrongPassphrase,
                format!("wrong passphrase for presignature {}", path.display()),
            )
            .hint("set DKLS_PASSPHRASE to the passphrase of this party's key shares"),
            SealError::Corrupted(why) => {
                CliError::corrupted(format!("presignature {} is corrupted: {why}", path.display()))
                    .hint("delete it and make a new one with `dkls-party presign`")
            }
            SealError::Crypto(why) => CliError::internal(format!("decrypting: {why}")),
        })?;
    let corrupted = || {
        CliError::corrupted(format!("presignature {} does not decode", path.display()))
            .hint("delete it and make a new one with `dkls-party presign`")
    };
    let (len, rest) = plain.split_at_checked(4).ok_or_else(corrupted)?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupted())?) as usize;
    let (setup_bytes, pre_bytes) = rest.split_at_checked(len).ok_or_else(corrupted)?;
    let setup = Setup::from_bytes(setup_bytes).map_err(|_| corrupted())?;
    let request = setup_file::presign_request(&setup).map_err(|_| corrupted())?;
    Ok(Opened {
        setup,
        request,
        path: path.to_path_buf(),
        presignature: Zeroizing::new(pre_bytes.to_vec()),
    })
}

impl Opened {
    /// The presignature, decoded against `share` (the share it was made with).
    ///
    /// # Errors
    /// Corrupted data if it belongs to another key or epoch or does not decode.
    pub fn presignature(&self, share: &KeyShare) -> CliResult<Presignature> {
        Presignature::from_bytes(&self.presignature, share).map_err(|e| {
            CliError::corrupted(format!("presignature {}: {e}", self.path.display()))
                .hint("it belongs to another key or epoch; delete it and presign again")
        })
    }
}
