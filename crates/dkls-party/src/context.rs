//! The context every command runs in: the party's directory and identity, the relay and the
//! round timeout, from the global flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{CliError, CliResult, ExitCode};
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
    /// Extra CA certificates for a TLS relay.
    pub relay_ca_file: Option<PathBuf>,
    /// Pins of the relay's certificate (`cert-sha256:` / `spki-sha256:`).
    pub relay_pins: Vec<String>,
    /// Round timeout.
    pub timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
}

impl Ctx {
    /// The TLS settings for the relay: `None` (the bundled public roots) unless a CA file or
    /// pins are given.
    ///
    /// # Errors
    /// Bad input naming the unusable CA file or pin.
    pub fn relay_tls(&self) -> CliResult<Option<msg_relay_client::ClientTls>> {
        if self.relay_ca_file.is_none() && self.relay_pins.is_empty() {
            return Ok(None);
        }
        let bad = |e: String| CliError::bad_input(e).hint("check RELAY_CA_FILE and RELAY_PINS");
        let mut builder = msg_relay_client::ClientTls::builder();
        if let Some(ca) = &self.relay_ca_file {
            builder = builder.ca_file(ca).map_err(|e| bad(e.to_string()))?;
        }
        for pin in &self.relay_pins {
            let pin = pin.parse().map_err(|e: String| bad(format!("relay pin: {e}")))?;
            builder = builder.pin(pin);
        }
        builder.build().map(Some).map_err(|e| bad(e.to_string()))
    }

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
