//! The key-encryption key's check value: a sealed constant that makes a wrong master password
//! fail with [`StoreError::WrongPassword`] instead of producing garbage (both SQL stores).

use crate::envelope::{Aad, DOMAIN_CHECK, KdfParams, SALT_LEN, SecretKey};
use crate::error::StoreError;
use crate::record::corrupt;

/// Plaintext of the password check value (its tag is what matters).
const CHECK_PLAINTEXT: &[u8] = b"mpc-node-store password check";

/// The associated data of the password check: binds the salt and the parameters.
fn check_aad(salt: &[u8], params: KdfParams) -> Aad {
    let mut aad = Aad::new(DOMAIN_CHECK);
    aad.bytes(salt).bytes(&params.encode());
    aad
}

/// The check value of `kek` for a database with `salt` and `params`.
pub(crate) fn seal_check(
    kek: &SecretKey,
    salt: &[u8],
    params: KdfParams,
) -> Result<Vec<u8>, StoreError> {
    kek.seal(check_aad(salt, params).as_slice(), CHECK_PLAINTEXT)
}

/// Derives the KEK from stored settings and verifies it against the check value.
pub(crate) fn verify_kek(
    password: &[u8],
    salt: &[u8],
    params: &[u8],
    check: &[u8],
) -> Result<SecretKey, StoreError> {
    let params = KdfParams::decode(params)?;
    if salt.len() != SALT_LEN {
        return Err(corrupt("key derivation salt"));
    }
    let kek = SecretKey::derive_kek(password, salt, params)?;
    kek.open(check_aad(salt, params).as_slice(), check, "password check")
        .map_err(|_| StoreError::WrongPassword)?;
    Ok(kek)
}
