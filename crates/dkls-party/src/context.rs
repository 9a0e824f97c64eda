//! The context every command runs in: the party's directory and identity, the relay and the
//! round timeout, from the global flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{CliResult, ExitCode};
use crate::identity_file;
use crate::party_dir::PartyDir;

/// Shared context of a command.
#[derive(Debug)]
pub struct Ctx {
    /// The party's data directory.
    pub dir: PartyDir,
    /// Identity file.
    pub identity_path: PathBuf,
    /// Relay URL.
    pub relay_url: String,
    /// Round timeout.
    pub timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
}

impl Ctx {
    /// Loads the identity, with a hint to create it.
    ///
    /// # Errors
    /// Bad input if there is no identity, corrupted data if it does not parse.
    pub fn load_identity(&self) -> CliResult<identity_file::Signer> {
        identity_file::load(&self.identity_path).map_err(|e| {
            if e.code == ExitCode::BadInput {
                e.hint("create it with `dkls-party identity new` (check DEST and PARTY_ID)")
            } else {
                e
            }
        })
    }
}
