//! Identity key files: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), file mode 0600.

use std::path::Path;
use std::sync::Arc;

use dkls23_core::identity::{
    Ed25519Identity, IdentityPublicKey, IdentitySigner, P256Identity, SharedSigner,
};
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};
use crate::files;

/// The identity algorithms a party can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentityKind {
    /// Ed25519 (default).
    Ed25519,
    /// ECDSA P-256 (for keys kept in phone secure enclaves).
    P256,
}

/// A loaded identity key.
pub type Signer = SharedSigner;

const PEM_LABEL: &str = "PRIVATE KEY";
const MAX_IDENTITY_FILE: u64 = 16 * 1024;

/// Generates an identity of `kind` and returns its PEM encoding and public key.
///
/// # Errors
/// An internal error if the OS has no randomness or encoding fails.
pub fn generate(kind: IdentityKind) -> CliResult<(Zeroizing<String>, IdentityPublicKey)> {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (der, public) = match kind {
        IdentityKind::Ed25519 => {
            let id = Ed25519Identity::generate(&mut rng);
            (id.to_pkcs8_der(), id.public_key())
        }
        IdentityKind::P256 => {
            let id = P256Identity::generate(&mut rng);
            (id.to_pkcs8_der(), id.public_key())
        }
    };
    let der = der.map_err(|e| CliError::internal(format!("encoding the identity key: {e}")))?;
    let pem = pem_rfc7468::encode_string(PEM_LABEL, pem_rfc7468::LineEnding::LF, &der)
        .map_err(|e| CliError::internal(format!("PEM encoding: {e}")))?;
    Ok((Zeroizing::new(pem), public))
}

/// Parses a PEM identity file (Ed25519 or P-256 PKCS#8).
///
/// # Errors
/// Corrupted data if the file is not a PKCS#8 PEM private key of a supported kind.
pub fn parse(pem: &[u8]) -> CliResult<Signer> {
    let bad = || {
        CliError::corrupted("the identity file is not a PKCS#8 PEM Ed25519 or P-256 private key")
            .hint("create one with `dkls-party identity new`")
    };
    let (label, der) = pem_rfc7468::decode_vec(pem).map_err(|_| bad())?;
    let der = Zeroizing::new(der);
    if label != PEM_LABEL {
        return Err(bad());
    }
    if let Ok(id) = Ed25519Identity::from_pkcs8_der(&der) {
        return Ok(Arc::new(id));
    }
    P256Identity::from_pkcs8_der(&der).map(|id| Arc::new(id) as Signer).map_err(|_| bad())
}

/// Loads the identity at `path`.
///
/// # Errors
/// Bad input if it does not exist, corrupted data if it does not parse.
pub fn load(path: &Path) -> CliResult<Signer> {
    let bytes = Zeroizing::new(files::read_bounded(path, MAX_IDENTITY_FILE, "identity file")?);
    parse(&bytes).map_err(|e| {
        if e.message.contains("does not exist") {
            e
        } else {
            CliError { message: format!("{} ({})", e.message, path.display()), ..e }
        }
    })
}

/// Lowercase hex of the canonical encoding (kind byte ‖ key), the form used on the command line.
pub fn public_hex(key: &IdentityPublicKey) -> String {
    hex::encode(key.to_bytes())
}

/// Parses [`public_hex`] output.
///
/// # Errors
/// Bad input for anything that is not a valid identity public key.
pub fn parse_public_hex(s: &str) -> CliResult<IdentityPublicKey> {
    let bytes = hex::decode(s.trim()).map_err(|_| {
        CliError::bad_input(format!("{s:?} is not hex"))
            .hint("pass the public key printed by `dkls-party identity show`")
    })?;
    IdentityPublicKey::from_bytes(&bytes).map_err(|e| {
        CliError::bad_input(format!("{s:?} is not an identity public key: {e}"))
            .hint("pass the public key printed by `dkls-party identity show`")
    })
}

/// The algorithm name of an identity key.
pub fn kind_name(key: &IdentityPublicKey) -> &'static str {
    match key {
        IdentityPublicKey::Ed25519(_) => "ed25519",
        IdentityPublicKey::P256(_) => "p256",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_both_kinds() {
        for kind in [IdentityKind::Ed25519, IdentityKind::P256] {
            let (pem, public) = generate(kind).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let signer = parse(pem.as_bytes()).unwrap();
            assert_eq!(signer.public_key(), public);
            assert_eq!(parse_public_hex(&public_hex(&public)).unwrap(), public);
        }
        assert!(parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        assert!(parse_public_hex("00ff").is_err());
    }
}
