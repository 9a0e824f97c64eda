//! The key-encryption key: derived from the master password with Argon2id (salt and
//! parameters kept in `meta`) and checked against a sealed check value, so a wrong password
//! fails instead of producing garbage.

use rusqlite::{Connection, TransactionBehavior};

use super::sql::{corrupt, db, meta};
use crate::envelope::{Aad, DOMAIN_CHECK, KdfParams, SALT_LEN, SecretKey, fill_random};
use crate::error::StoreError;

/// Plaintext of the password check value (its tag is what matters).
const CHECK_PLAINTEXT: &[u8] = b"mpc-node-store password check";

/// The associated data of the password check: binds the salt and the parameters.
fn check_aad(salt: &[u8], params: KdfParams) -> Aad {
    let mut aad = Aad::new(DOMAIN_CHECK);
    aad.bytes(salt).bytes(&params.encode());
    aad
}

/// The check value of `kek` for a database with `salt` and `params`.
pub(super) fn seal_check(
    kek: &SecretKey,
    salt: &[u8],
    params: KdfParams,
) -> Result<Vec<u8>, StoreError> {
    kek.seal(check_aad(salt, params).as_slice(), CHECK_PLAINTEXT)
}

type KdfRows = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

fn read_kdf(conn: &Connection) -> Result<KdfRows, StoreError> {
    Ok((meta(conn, "kdf_salt")?, meta(conn, "kdf_params")?, meta(conn, "kdf_check")?))
}

/// Derives the KEK from stored settings and verifies it against the check value.
fn verify_kek(
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

/// Reads (or, for a new database, creates) the KDF salt, parameters and check value, derives the
/// KEK and verifies it. An existing database is only read.
pub(super) fn unlock(
    conn: &mut Connection,
    password: &[u8],
    create_params: KdfParams,
) -> Result<SecretKey, StoreError> {
    match read_kdf(conn)? {
        (Some(salt), Some(params), Some(check)) => {
            return verify_kek(password, &salt, &params, &check);
        }
        (None, None, None) => {}
        _ => return Err(StoreError::Corrupt("key derivation settings incomplete".into())),
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let kek = match read_kdf(&tx)? {
        // Another process created them meanwhile.
        (Some(salt), Some(params), Some(check)) => verify_kek(password, &salt, &params, &check)?,
        (None, None, None) => {
            let mut salt = [0u8; SALT_LEN];
            fill_random(&mut salt)?;
            let kek = SecretKey::derive_kek(password, &salt, create_params)?;
            let check = seal_check(&kek, &salt, create_params)?;
            let put = "INSERT INTO meta (name, value) VALUES (?1, ?2)";
            tx.execute(put, ("kdf_salt", salt.as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_params", create_params.encode().as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_check", check)).map_err(db)?;
            kek
        }
        _ => return Err(StoreError::Corrupt("key derivation settings incomplete".into())),
    };
    tx.commit().map_err(db)?;
    Ok(kek)
}
