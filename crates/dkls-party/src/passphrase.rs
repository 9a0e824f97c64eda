//! The passphrase that seals key shares and presignatures: from `DKLS_PASSPHRASE`, or asked on
//! the terminal.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

/// A passphrase held in memory (zeroized on drop).
pub type Passphrase = Zeroizing<Vec<u8>>;

/// The passphrase protecting key shares: DKLS_PASSPHRASE, or a prompt on a terminal
/// (`confirm` asks twice, for a new share).
///
/// # Errors
/// Bad input when neither is available or the passphrase is empty or not confirmed.
pub fn read(confirm: bool) -> CliResult<Passphrase> {
    if let Ok(p) = std::env::var("DKLS_PASSPHRASE") {
        if p.is_empty() {
            return Err(
                CliError::bad_input("DKLS_PASSPHRASE is empty").hint("set a non-empty passphrase")
            );
        }
        return Ok(Zeroizing::new(p.into_bytes()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::bad_input("no passphrase for the key shares")
            .hint("set DKLS_PASSPHRASE or run in a terminal to be prompted"));
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map(|s| Zeroizing::new(s.into_bytes()))
            .map_err(|e| CliError::bad_input(format!("cannot read the passphrase: {e}")))
    };
    let p = prompt("Passphrase for key shares: ")?;
    if p.is_empty() {
        return Err(CliError::bad_input("empty passphrase").hint("choose a non-empty passphrase"));
    }
    if confirm && prompt("Repeat the passphrase: ")? != p {
        return Err(CliError::bad_input("the passphrases differ").hint("try again"));
    }
    Ok(p)
}
